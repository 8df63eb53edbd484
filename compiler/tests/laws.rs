//! Laws beyond agreement with the reference evaluators, on random clusters:
//! tables survive serialization unchanged; compiling does not depend on the
//! order of files or documents; each tier is monotone where its semantics
//! make it so: a rule added to a NetworkPolicy never closes a flow, an Admin
//! or Baseline rule turned Deny never opens one and turned Allow never
//! closes one, an Istio DENY policy added never opens one.

#[path = "generators/authz.rs"]
mod authz;
#[path = "generators/netpol.rs"]
mod netpol;

use std::net::IpAddr;
use std::path::Path;

use ambit_compiler::admin::Action;
use ambit_compiler::compile::{compile, compile_with};
use ambit_compiler::diag::Diagnostics;
use ambit_compiler::istio::lower_authz;
use ambit_compiler::load::{LoadOptions, load};
use ambit_compiler::model::Protocol;
use ambit_compiler::netpol::{Nowhere, lower};
use ambit_compiler::source::SourceFile;
use ambit_compiler::table::{Endpoint, Tables};
use ambit_compiler::yaml::split_documents;
use proptest::prelude::*;

const PORTS: [u16; 7] = [1, 53, 79, 80, 81, 8080, 65535];

/// Every decision of `a` implies the same decision in `b` (`a ⊆ b`), over
/// workloads, outside addresses, protocols and ports.
fn included(a: &Tables, b: &Tables, outside: &[IpAddr]) -> Result<(), TestCaseError> {
    let mut ends: Vec<Endpoint> = (0..a.workloads.len() as u32)
        .map(Endpoint::Workload)
        .collect();
    ends.extend(outside.iter().map(|&ip| Endpoint::Ip(ip)));
    for &from in &ends {
        for &to in &ends {
            if matches!((from, to), (Endpoint::Ip(_), Endpoint::Ip(_))) {
                continue;
            }
            for protocol in Protocol::ALL {
                for port in PORTS {
                    if a.decide(from, to, protocol, port) {
                        prop_assert!(
                            b.decide(from, to, protocol, port),
                            "{:?} -> {:?} {}/{}",
                            from,
                            to,
                            port,
                            protocol
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every document of a cluster directory of `testdata/`.
fn corpus(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let mut docs = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            stack.extend(entries);
        } else if path.extension().is_some_and(|x| x == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains("probes") && !name.contains("assertions") {
                let text = std::fs::read_to_string(&path).unwrap();
                docs.extend(
                    split_documents(&text)
                        .into_iter()
                        .map(|(_, d)| d.trim_start_matches("---").to_owned()),
                );
            }
        }
    }
    docs
}

fn compile_files(files: &[SourceFile]) -> String {
    let mut diags = Diagnostics::default();
    let cluster = load(files, &LoadOptions::default(), &mut diags);
    assert!(
        !diags.has_errors(),
        "{:?}",
        diags.0.first().map(ToString::to_string)
    );
    compile(&cluster).to_json()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tables_round_trip_through_json((cluster, _, _) in netpol::cluster(), c in authz::case()) {
        for tables in [compile(&cluster), compile_with(&c.cluster, &c.options)] {
            let back = Tables::from_json(tables.to_json().as_bytes()).unwrap();
            prop_assert_eq!(&back, &tables);
            prop_assert_eq!(back.to_json(), tables.to_json());
        }
    }

    #[test]
    fn a_rule_added_to_a_network_policy_never_closes_a_flow(
        (cluster, _, _) in netpol::cluster(),
        extra in netpol::policy(),
        pick in any::<prop::sample::Index>(),
    ) {
        prop_assume!(!cluster.network_policies.is_empty());
        let before = compile(&cluster);
        let mut grown = cluster.clone();
        let i = pick.index(grown.network_policies.len());
        let target = &mut grown.network_policies[i];
        let ns = target.namespace.clone();
        let extra = lower(&extra, &ns, &Nowhere).expect("generated policies are valid");
        // A list that exists only grows: a direction the policy did not
        // isolate stays as it was (isolating it is not adding a rule).
        if let (Some(rules), Some(more)) = (target.ingress.as_mut(), extra.ingress) {
            rules.extend(more);
        }
        if let (Some(rules), Some(more)) = (target.egress.as_mut(), extra.egress) {
            rules.extend(more);
        }
        let after = compile(&grown);
        let outside: Vec<IpAddr> = netpol::IPS.iter().map(|s| s.parse().unwrap()).collect();
        included(&before, &after, &outside)?;
    }

    #[test]
    fn an_admin_deny_added_never_opens_a_flow_and_an_allow_never_closes_one(
        (cluster, _, _) in netpol::cluster(),
        pick in any::<prop::sample::Index>(),
        deny in any::<bool>(),
    ) {
        // A copy of one of the generated ClusterNetworkPolicies or
        // AdminNetworkPolicies (the BaselineAdminNetworkPolicy is a
        // singleton), all its rules turned to Deny, or to Allow.
        let candidates: Vec<_> = cluster.admin_policies.iter().filter(|p| p.priority.is_some()).collect();
        prop_assume!(!candidates.is_empty());
        let mut added = candidates[pick.index(candidates.len())].clone();
        added.name = format!("{}-added", added.name);
        let action = if deny { Action::Deny } else { Action::Accept };
        for rule in added.ingress.iter_mut().chain(added.egress.iter_mut()) {
            rule.action = action;
        }
        let before = compile(&cluster);
        let mut grown = cluster.clone();
        grown.admin_policies.push(added);
        let after = compile(&grown);
        let outside: Vec<IpAddr> = netpol::IPS.iter().map(|s| s.parse().unwrap()).collect();
        if deny {
            included(&after, &before, &outside)?;
        } else {
            included(&before, &after, &outside)?;
        }
    }

    #[test]
    fn a_deny_policy_added_never_opens_a_flow(c in authz::case(), extra in authz::authz_policy()) {
        let before = compile_with(&c.cluster, &c.options);
        let mut extra = extra;
        extra.metadata.name = Some("added-deny".into());
        extra.spec.action = Some("DENY".into());
        extra.spec.provider = None;
        let ns = extra.metadata.namespace.clone().unwrap();
        let mut grown = c.cluster.clone();
        grown
            .authorization_policies
            .push(lower_authz(&extra, &ns, &Nowhere).expect("generated policies are valid"));
        let after = compile_with(&grown, &c.options);
        let outside: Vec<IpAddr> = authz::IPS.iter().map(|s| s.parse().unwrap()).collect();
        included(&after, &before, &outside)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn compiling_does_not_depend_on_the_order_of_files_or_documents(
        keys in prop::collection::vec(any::<u32>(), 64),
        cuts in prop::collection::vec(1..6usize, 1..40),
    ) {
        for dir in ["demo", "mesh"] {
            let docs = corpus(dir);
            let whole = SourceFile::new("all.yaml", docs.join("---\n"));
            let want = compile_files(&[whole]);
            let mut order: Vec<usize> = (0..docs.len()).collect();
            order.sort_by_key(|&i| (keys[i % keys.len()].rotate_left(i as u32), i));
            let mut files = Vec::new();
            let (mut at, mut k) = (0, 0);
            while at < order.len() {
                let n = cuts[k % cuts.len()].min(order.len() - at);
                let text: Vec<&str> = order[at..at + n].iter().map(|&i| docs[i].as_str()).collect();
                files.push(SourceFile::new(format!("{k:02}.yaml"), text.join("---\n")));
                at += n;
                k += 1;
            }
            prop_assert_eq!(compile_files(&files), want, "{}", dir);
        }
    }
}
