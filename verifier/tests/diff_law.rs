//! The diff as a law: on random clusters, the diff of a version against
//! another (the same workloads, one maybe relabelled; the policies of a
//! second random cluster, or the same) lists exactly the flows whose
//! decision changes. `diff` checks its lists
//! with Z3 and fails on any flow listed wrongly or missed; here the lists
//! are also checked against the tables on the workload pairs and the
//! equivalence verdict against `compare` over the policy semantics.

#[path = "../../compiler/tests/generators/netpol.rs"]
mod netpol;

use ambit_compiler::compile::{CompileOptions, compile};
use ambit_compiler::model::Protocol;
use ambit_compiler::table::Endpoint;
use ambit_verifier::check::{Outcome, compare};
use ambit_verifier::diff::{Version, diff};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_diff_lists_exactly_what_changes(
        (base, _, _) in netpol::cluster(),
        (other, _, _) in netpol::cluster(),
        keep_admin in any::<bool>(),
        relabel in any::<Option<(usize, usize)>>(),
        keep_policies in any::<bool>(),
    ) {
        let mut head = base.clone();
        if !keep_policies {
            head.network_policies = other.network_policies.clone();
        }
        if !keep_admin {
            head.admin_policies = other.admin_policies.clone();
        }
        // A workload that carries another's labels in HEAD.
        if let Some((i, j)) = relabel {
            let n = head.workloads.len();
            head.workloads[i % n].labels = base.workloads[j % n].labels.clone();
        }
        let (tb, th) = (compile(&base), compile(&head));
        let d = diff(
            Version { cluster: &base, tables: &tb },
            Version { cluster: &head, tables: &th },
        );
        prop_assert!(d.is_ok(), "{:?}", d.err());
        let d = d.unwrap();
        // Workload pairs on a few ports, against the tables directly.
        let n = base.workloads.len() as u32;
        for a in 0..n {
            for b in 0..n {
                for port in [1u16, 80, 81, 443, 5432, 65535] {
                    for protocol in Protocol::ALL {
                        let (from, to) = (Endpoint::Workload(a), Endpoint::Workload(b));
                        let was = tb.decide(from, to, protocol, port);
                        let is = th.decide(from, to, protocol, port);
                        let listed = |list: &[ambit_verifier::diff::Change]| {
                            list.iter().any(|c| {
                                c.from == base.workloads[a as usize].id()
                                    && c.to == base.workloads[b as usize].id()
                                    && c.ports.ranges[protocol.index()]
                                        .iter()
                                        .any(|&(lo, hi)| lo <= port && port <= hi)
                            })
                        };
                        prop_assert_eq!(listed(&d.opened), !was && is);
                        prop_assert_eq!(listed(&d.closed), was && !is);
                    }
                }
            }
        }
        // Over one inventory, equivalence is a question for the semantics
        // too (`compare` reads the workloads of its first cluster).
        if relabel.is_none() {
            let outcome = compare(&base, &head, &CompileOptions::default());
            let same = matches!(outcome, Outcome::Proved { .. });
            prop_assert_eq!(d.equivalent(), same, "{:?}", outcome);
        }
    }

    #[test]
    fn a_version_against_itself_is_equivalent((cluster, _, _) in netpol::cluster()) {
        let tables = compile(&cluster);
        let v = Version { cluster: &cluster, tables: &tables };
        let d = diff(v, v).expect("the diff's proof holds");
        prop_assert!(d.equivalent(), "opened {:?}, closed {:?}", d.opened, d.closed);
        prop_assert!(d.opened.is_empty() && d.closed.is_empty());
    }
}
