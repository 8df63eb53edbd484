//! # ambit-verifier
//!
//! Proves properties of ambit decision tables with the Z3 SMT solver (linked
//! to the system libz3 through the `z3` crate). It reads only
//! [`ambit_compiler::table::Tables`], never YAML.
//!
//! - [`encode`]: the SMT encoding of the policy semantics and of the tables;
//! - [`check`]: translation validation (`ambit compile --check`).

pub mod check;
pub mod diff;
pub mod encode;
pub mod graph;
pub mod verify;

/// The version of the Z3 library ambit is linked against, e.g. `Z3 4.8.12.0`.
pub fn solver_version() -> String {
    z3::full_version().to_owned()
}

#[cfg(test)]
mod tests {
    use z3::ast::Int;
    use z3::{SatResult, Solver};

    #[test]
    fn the_linked_solver_answers() {
        assert!(super::solver_version().contains('.'));
        let solver = Solver::new();
        let x = Int::new_const("x");
        solver.assert(x.gt(Int::from_i64(6)));
        solver.assert(x.lt(Int::from_i64(8)));
        assert_eq!(solver.check(), SatResult::Sat);
        let model = solver.get_model().expect("sat has a model");
        assert_eq!(model.eval(&x, true).and_then(|v| v.as_i64()), Some(7));
    }
}
