//! NP003 as a law: on random clusters (NetworkPolicies of every shape with
//! admin tier stacks, from the compiler's generators), removing every rule
//! reported shadowed, all together, changes no decision: Z3 finds no flow
//! (any workloads or outside address, any port, any protocol) that the
//! pruned cluster decides differently.

#[path = "../../compiler/tests/generators/netpol.rs"]
mod netpol;

use ambit_compiler::compile::{CompileOptions, compile};
use ambit_compiler::model::Direction;
use ambit_lint::{LintOptions, shadowed_rules};
use ambit_verifier::check::{Outcome, compare};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn removing_every_shadowed_rule_changes_nothing((cluster, _, _) in netpol::cluster()) {
        let tables = compile(&cluster);
        let mut shadowed = shadowed_rules(&cluster, &tables, &LintOptions::default());
        let mut pruned = cluster.clone();
        // Highest index first, so the others keep theirs.
        shadowed.sort_by(|a, b| b.cmp(a));
        for id in &shadowed {
            let np = &mut pruned.network_policies[id.policy];
            let rules = match id.direction {
                Direction::Ingress => np.ingress.as_mut(),
                Direction::Egress => np.egress.as_mut(),
            };
            rules.expect("a shadowed rule's direction").remove(id.rule);
        }
        let outcome = compare(&cluster, &pruned, &CompileOptions::default());
        prop_assert!(
            matches!(outcome, Outcome::Proved { .. }),
            "removing {:?} changed {:?}",
            shadowed,
            outcome
        );
    }
}
