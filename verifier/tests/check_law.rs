//! Translation validation as a law: on the random clusters of the compiler's
//! laws (NetworkPolicies of every shape with admin tier stacks; meshes with
//! AuthorizationPolicies, PeerAuthentications and trust domains), Z3 proves
//! that the compiled tables decide every flow as the policy semantics does,
//! in every view. The compiler's laws compare the tables with a reference
//! evaluator on chosen probes; this one covers every port, protocol, outside
//! address and HTTP request at once.

#[path = "../../compiler/tests/generators/authz.rs"]
mod authz;
#[path = "../../compiler/tests/generators/netpol.rs"]
mod netpol;

use ambit_compiler::compile::{CompileOptions, compile, compile_with};
use ambit_verifier::check::{Outcome, check};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tables_of_random_clusters_are_proved((cluster, _, _) in netpol::cluster()) {
        let tables = compile(&cluster);
        let outcome = check(&cluster, &tables, &CompileOptions::default());
        prop_assert!(matches!(outcome, Outcome::Proved { .. }), "{:?}", outcome);
    }

    #[test]
    fn tables_of_random_meshes_are_proved(c in authz::case()) {
        let tables = compile_with(&c.cluster, &c.options);
        let outcome = check(&c.cluster, &tables, &c.options);
        prop_assert!(matches!(outcome, Outcome::Proved { .. }), "{:?}", outcome);
    }
}
