//! The law that lets the tables be trusted: on random clusters, random
//! NetworkPolicies of every shape and random tier stacks of
//! ClusterNetworkPolicies, AdminNetworkPolicies and a
//! BaselineAdminNetworkPolicy, the decision read from the compiled tables
//! equals the reference evaluator's, for every probe.

#[path = "generators/netpol.rs"]
mod generators;
#[path = "generators/matrix_law.rs"]
mod matrix_law;

use std::net::IpAddr;

use ambit_compiler::compile::compile;
use ambit_compiler::matrix::Matrix;
use ambit_compiler::model::Protocol;
use ambit_compiler::reference::{self, End, World};
use ambit_compiler::table::Endpoint;
use generators::{IPS, cluster};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tables_decide_as_the_reference_evaluator((cluster, policies, admin) in cluster()) {
        let tables = compile(&cluster);
        let world = World {
            namespaces: &cluster.namespaces,
            workloads: &cluster.workloads,
            policies: &policies,
            admin: &admin,
            nodes: &cluster.nodes,
        };
        let outside: Vec<IpAddr> = vec![IPS[2].parse().unwrap(), IPS[4].parse().unwrap()];
        let mut ends: Vec<(Endpoint, End)> = cluster
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (Endpoint::Workload(i as u32), End::Pod(w)))
            .collect();
        ends.extend(outside.iter().map(|&ip| (Endpoint::Ip(ip), End::Ip(ip))));
        // The all-pairs matrix agrees with `allowed_ports` (which follows
        // the L4 decision) on every pair of workloads.
        matrix_law::matrix_agrees(&tables)?;
        let on_80 = Matrix::compute(&tables, Some((80, Protocol::Tcp)));
        let n = tables.workloads.len();
        for i in 0..n {
            for j in 0..n {
                let want = tables.decide(Endpoint::Workload(i as u32), Endpoint::Workload(j as u32), Protocol::Tcp, 80);
                prop_assert_eq!(!on_80.get(i, j).is_empty(), want, "matrix on 80/TCP {} -> {}", i, j);
            }
        }
        for &(from_t, from_r) in &ends {
            for &(to_t, to_r) in &ends {
                if matches!((from_t, to_t), (Endpoint::Ip(_), Endpoint::Ip(_))) {
                    continue;
                }
                // The port sets of `matrix` agree with decide.
                let port_set = tables.allowed_ports(from_t, to_t);
                for protocol in Protocol::ALL {
                    for port in [53u16, 54, 79, 80, 81, 82, 83, 8080, 65535] {
                        let table = tables.decide(from_t, to_t, protocol, port);
                        let in_set = port_set.ranges[protocol.index()]
                            .iter()
                            .any(|&(lo, hi)| (lo..=hi).contains(&port));
                        prop_assert_eq!(in_set, table, "allowed_ports {:?} -> {:?} {}/{}", from_t, to_t, port, protocol);
                        let reference = reference::allowed(world, from_r, to_r, protocol.as_str(), port);
                        prop_assert_eq!(
                            table, reference,
                            "{:?} -> {:?} {}/{}", from_t, to_t, port, protocol
                        );
                        // explain agrees with decide
                        prop_assert_eq!(tables.explain(from_t, to_t, protocol, port).allowed, table);
                    }
                }
            }
        }
    }
}
