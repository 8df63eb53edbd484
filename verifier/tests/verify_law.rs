//! The law of `verify` in the inventory scope: the solver's answer equals
//! the enumeration of every flow of the set through `Tables::decide`, on the
//! NetworkPolicy and admin-tier conformance clusters with random assertions.
//! And `any-pod` only adds pods: an assertion that holds for every pod that
//! could exist holds for today's.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ambit_compiler::assertion::{Assertion, Ends, Expect, PortRange, Scope};
use ambit_compiler::compile::{CompileOptions, compile};
use ambit_compiler::labels::{Requirement, Selector};
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::model::{Cluster, Protocol, WorkloadKind};
use ambit_compiler::table::{Endpoint, Tables};
use ambit_verifier::verify::verify;
use ipnet::IpNet;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn clusters() -> Vec<(String, Cluster)> {
    let mut out = Vec::new();
    for suite in ["netpol", "tiers", "authz"] {
        let base = testdata().join("conformance").join(suite);
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&base)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        cases.sort();
        for case in cases {
            let (cluster, _, diags) = load_paths(
                &[base.join("cluster.yaml"), case.join("policies.yaml")],
                &LoadOptions::default(),
            );
            assert!(!diags.has_errors());
            out.push((format!("{suite}/{}", case.display()), cluster));
        }
    }
    out
}

/// xorshift: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn is_in(key: &str, value: &str) -> Selector {
    Selector {
        requirements: vec![Requirement::In {
            key: key.to_owned(),
            values: [value.to_owned()].into(),
        }],
    }
}

/// Every CIDR the tables' rules mention.
fn cidrs(tables: &Tables) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap()];
    for r in &tables.rules {
        for b in &r.peers.ip_blocks {
            out.push(b.cidr);
            out.extend(b.except.iter().copied());
        }
    }
    // AuthorizationPolicies' ipBlocks.
    for p in &tables.authz.policies {
        for f in p.rules.iter().flat_map(|r| r.fields()) {
            for v in f.values.iter().chain(&f.not_values) {
                if let ambit_compiler::authz::Pattern::Cidr(net) = v {
                    out.push(*net);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn random_ends(rng: &mut Rng, cluster: &Cluster, tables: &Tables, addresses: bool) -> Ends {
    let w = &cluster.workloads[rng.below(cluster.workloads.len())];
    let ns_names: Vec<&String> = cluster.namespaces.keys().collect();
    let mut e = Ends::default();
    match rng.below(if addresses { 8 } else { 7 }) {
        0 => {}
        1 => e.workload = Some((w.namespace.clone(), w.name.clone())),
        2 => e.namespace = Some(ns_names[rng.below(ns_names.len())].clone()),
        3 | 4 => {
            if let Some((k, v)) = w.labels.iter().nth(rng.below(w.labels.len().max(1))) {
                e.pod_selector = Some(is_in(k, v));
            }
            if rng.below(2) == 0 {
                e.namespace = Some(w.namespace.clone());
            }
        }
        5 => {
            let ns = &cluster.namespaces[ns_names[rng.below(ns_names.len())]];
            if let Some((k, v)) = ns.labels.iter().nth(rng.below(ns.labels.len().max(1))) {
                e.namespace_selector = Some(is_in(k, v));
            }
        }
        6 => {
            if let Some((k, v)) = w.labels.iter().next() {
                e.pod_selector = Some(Selector {
                    requirements: vec![Requirement::NotIn {
                        key: k.clone(),
                        values: [v.clone()].into(),
                    }],
                });
            }
        }
        _ => {
            let all = cidrs(tables);
            e.ip_block = Some((all[rng.below(all.len())], Vec::new()));
        }
    }
    e
}

fn random_ports(rng: &mut Rng) -> Vec<PortRange> {
    let r = |protocol, start, end| PortRange {
        protocol,
        start,
        end,
    };
    match rng.below(9) {
        6 => vec![r(Protocol::Tcp, 8080, 8080)],
        7 => vec![r(Protocol::Tcp, 9090, 9090), r(Protocol::Udp, 8080, 8080)],
        8 => vec![r(Protocol::Tcp, 8000, 9100)],
        0 => vec![r(Protocol::Tcp, 80, 80)],
        1 => vec![r(Protocol::Tcp, 81, 81)],
        2 => vec![r(Protocol::Tcp, 80, 81), r(Protocol::Udp, 80, 80)],
        3 => vec![r(Protocol::Sctp, 80, 81)],
        4 => vec![r(Protocol::Tcp, 1, 100)],
        _ => vec![r(Protocol::Udp, 53, 53), r(Protocol::Tcp, 53, 53)],
    }
}

/// Addresses outside the cluster that stand for every region the CIDRs cut
/// the address space into: each CIDR's first address and the one past its
/// last, and their neighbours.
fn representatives(tables: &Tables, taken: &BTreeSet<IpAddr>) -> Vec<IpAddr> {
    let mut out = BTreeSet::new();
    let step = |ip: IpAddr, d: i128| -> Option<IpAddr> {
        match ip {
            IpAddr::V4(a) => u32::try_from(u32::from(a) as i128 + d)
                .ok()
                .map(|v| IpAddr::V4(v.into())),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                let w = if d >= 0 {
                    v.checked_add(d as u128)
                } else {
                    v.checked_sub((-d) as u128)
                };
                w.map(|v| IpAddr::V6(v.into()))
            }
        }
    };
    for net in cidrs(tables) {
        for base in [net.network(), net.broadcast()] {
            for d in [-1, 0, 1, 2] {
                if let Some(ip) = step(base, d) {
                    out.insert(ip);
                }
            }
        }
    }
    out.insert("::".parse().unwrap());
    out.into_iter().filter(|ip| !taken.contains(ip)).collect()
}

/// Enumerate the flow set through the tables.
fn brute_force(cluster: &Cluster, tables: &Tables, a: &Assertion) -> bool {
    let taken: BTreeSet<IpAddr> = cluster
        .workloads
        .iter()
        .flat_map(|w| w.ips.iter().copied())
        .chain(
            cluster
                .nodes
                .iter()
                .flat_map(|n| n.addresses.iter().copied()),
        )
        .collect();
    let externals = representatives(tables, &taken);
    let ends = |e: &Ends, inside: bool| -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = cluster
            .workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                let labels = &cluster.namespaces[&w.namespace].labels;
                e.has_pod(w, labels) == inside
            })
            .map(|(i, _)| Endpoint::Workload(i as u32))
            .collect();
        out.extend(
            externals
                .iter()
                .filter(|ip| e.has_address(**ip) == inside)
                .map(|ip| Endpoint::Ip(*ip)),
        );
        out
    };
    let sources = ends(&a.from, a.expect != Expect::Only);
    let destinations = ends(&a.to, true);
    for &s in &sources {
        for &d in &destinations {
            match (s, d) {
                (Endpoint::Ip(_), Endpoint::Ip(_)) => continue,
                (Endpoint::Workload(x), Endpoint::Workload(y))
                    if x == y && cluster.workloads[x as usize].kind == WorkloadKind::Pod =>
                {
                    continue;
                }
                _ => {}
            }
            for r in &a.ports {
                for port in r.start..=r.end {
                    let allowed = tables.decide(s, d, r.protocol, port);
                    let broken = match a.expect {
                        Expect::Deny | Expect::Only => allowed,
                        Expect::Allow => !allowed,
                    };
                    if broken {
                        return false;
                    }
                }
            }
        }
    }
    true
}

#[test]
fn verify_agrees_with_enumerating_the_flows() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut counts = [0usize; 2];
    for (name, cluster) in clusters() {
        let tables = compile(&cluster);
        // Clusters whose rules name addresses also get flows from and to
        // the world outside: every pod as `from` of an `only` (the sources
        // outside are addresses), and address ends.
        let extra = if cidrs(&tables).len() > 1 { 3 } else { 0 };
        for i in 0..3 + extra {
            let mut expect = [Expect::Deny, Expect::Allow, Expect::Only][rng.below(3)];
            let mut from = random_ends(&mut rng, &cluster, &tables, true);
            let mut to = random_ends(&mut rng, &cluster, &tables, !from.admits_addresses());
            let all = cidrs(&tables);
            match i {
                3 => {
                    expect = Expect::Only;
                    from = Ends::default();
                    to = random_ends(&mut rng, &cluster, &tables, false);
                }
                4 => {
                    from = Ends {
                        ip_block: Some((all[rng.below(all.len())], Vec::new())),
                        ..Ends::default()
                    };
                    to = random_ends(&mut rng, &cluster, &tables, false);
                }
                5 => {
                    from = random_ends(&mut rng, &cluster, &tables, false);
                    to = Ends {
                        ip_block: Some((all[rng.below(all.len())], Vec::new())),
                        ..Ends::default()
                    };
                }
                _ => {}
            }
            let mut a = Assertion {
                name: format!("a{i}"),
                expect,
                from,
                to,
                ports: random_ports(&mut rng),
                scope: Scope::Inventory,
            };
            let options = CompileOptions::default();
            let found =
                verify(&cluster, &tables, &options, &a).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = brute_force(&cluster, &tables, &a);
            assert_eq!(found.holds, expected, "{name}: {a:?}\n{found:?}");
            counts[found.holds as usize] += 1;
            a.scope = Scope::AnyPod;
            let any =
                verify(&cluster, &tables, &options, &a).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !any.holds || found.holds,
                "{name}: any-pod holds but the inventory breaks it: {a:?}"
            );
        }
    }
    // Both answers occur often enough for the law to mean something.
    assert!(counts[0] > 50 && counts[1] > 50, "{counts:?}");
}
