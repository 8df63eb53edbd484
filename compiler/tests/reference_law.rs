//! The law that lets the tables be trusted: on random clusters and random
//! NetworkPolicies of every shape, the decision read from the compiled tables
//! equals the reference evaluator's, for every probe.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ambit_compiler::compile::compile;
use ambit_compiler::model::{Cluster, ContainerPort, Namespace, Protocol, Workload, WorkloadKind};
use ambit_compiler::netpol::{Nowhere, lower};
use ambit_compiler::reference::{self, End, World};
use ambit_compiler::table::Endpoint;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const IPS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.1.9", "192.0.2.7"];

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::of(prop::sample::select(vec!["web", "db", "api"])),
        prop::option::of(prop::sample::select(vec!["fe", "be"])),
    )
        .prop_map(|(app, tier)| {
            let mut l = BTreeMap::new();
            if let Some(a) = app {
                l.insert("app".to_owned(), a.to_owned());
            }
            if let Some(t) = tier {
                l.insert("tier".to_owned(), t.to_owned());
            }
            l
        })
}

fn ns_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::option::of(prop::sample::select(vec!["dev", "prod"])).prop_map(|env| {
        env.map(|e| [("env".to_owned(), e.to_owned())].into())
            .unwrap_or_default()
    })
}

fn container_ports() -> impl Strategy<Value = Vec<ContainerPort>> {
    let all = vec![
        (Some("http"), Protocol::Tcp, 80u16),
        (Some("alt"), Protocol::Tcp, 81),
        (Some("dns"), Protocol::Udp, 53),
        (Some("http"), Protocol::Udp, 8080),
        (None, Protocol::Sctp, 80),
    ];
    prop::sample::subsequence(all, 0..=3).prop_map(|v| {
        let mut ports: Vec<ContainerPort> = v
            .into_iter()
            .map(|(n, protocol, port)| ContainerPort {
                name: n.map(str::to_owned),
                protocol,
                port,
            })
            .collect();
        // a pod cannot declare one name twice
        ports.dedup_by(|a, b| a.name.is_some() && a.name == b.name);
        ports
    })
}

fn workload() -> impl Strategy<
    Value = (
        usize,
        BTreeMap<String, String>,
        Vec<ContainerPort>,
        Option<usize>,
        bool,
    ),
> {
    (
        0..NAMESPACES.len(),
        labels(),
        container_ports(),
        prop::option::of(0..IPS.len() - 1),
        any::<bool>(),
    )
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    let req = (
        prop::sample::select(vec!["app", "tier", "env"]),
        prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
        prop::sample::subsequence(vec!["web", "db", "fe", "dev", "prod"], 1..=2),
    )
        .prop_map(|(key, op, values)| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: matches!(op, "In" | "NotIn")
                .then(|| values.iter().map(|s| s.to_string()).collect()),
        });
    (
        prop::option::of((
            prop::sample::select(vec!["app", "tier", "env"]),
            prop::sample::select(vec!["web", "db", "be", "prod"]),
        )),
        prop::collection::vec(req, 0..=1),
    )
        .prop_map(|(ml, exprs)| LabelSelector {
            match_labels: ml.map(|(k, v)| [(k.to_owned(), v.to_owned())].into()),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        })
}

fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    prop_oneof![
        (prop::option::of(selector()), selector()).prop_map(|(ns, pod)| NetworkPolicyPeer {
            namespace_selector: ns,
            pod_selector: Some(pod),
            ip_block: None,
        }),
        selector().prop_map(|ns| NetworkPolicyPeer {
            namespace_selector: Some(ns),
            ..Default::default()
        }),
        prop::sample::select(vec![
            ("10.0.0.0/24", vec!["10.0.0.4/30"]),
            ("10.0.0.1/32", vec![]),
            ("0.0.0.0/0", vec!["10.0.0.0/8"]),
            ("10.0.0.0/8", vec![]),
        ])
        .prop_map(|(cidr, except)| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_owned(),
                except: (!except.is_empty())
                    .then(|| except.iter().map(|s| s.to_string()).collect()),
            }),
            ..Default::default()
        }),
    ]
}

fn np_port() -> impl Strategy<Value = NetworkPolicyPort> {
    (
        prop::option::of(prop::sample::select(vec!["TCP", "UDP", "SCTP"])),
        prop_oneof![
            Just((None, None)),
            (
                prop::sample::select(vec![53, 80, 81]),
                prop::option::of(0..3i32)
            )
                .prop_map(|(p, e)| (Some(IntOrString::Int(p)), e.map(|d| p + d))),
            prop::sample::select(vec!["http", "dns", "alt"])
                .prop_map(|n| (Some(IntOrString::String(n.to_owned())), None)),
        ],
    )
        .prop_map(|(protocol, (port, end_port))| NetworkPolicyPort {
            protocol: protocol.map(str::to_owned),
            port,
            end_port,
        })
}

type RuleParts = (
    Option<Vec<NetworkPolicyPeer>>,
    Option<Vec<NetworkPolicyPort>>,
);

fn rule_parts() -> impl Strategy<Value = RuleParts> {
    (
        prop::option::of(prop::collection::vec(peer(), 0..=2)),
        prop::option::of(prop::collection::vec(np_port(), 0..=2)),
    )
}

fn policy() -> impl Strategy<Value = NetworkPolicy> {
    (
        0..NAMESPACES.len(),
        selector(),
        prop::sample::select(vec![
            None,
            Some(vec!["Ingress"]),
            Some(vec!["Egress"]),
            Some(vec!["Ingress", "Egress"]),
            Some(vec![]),
        ]),
        prop::option::of(prop::collection::vec(rule_parts(), 0..=2)),
        prop::option::of(prop::collection::vec(rule_parts(), 0..=2)),
    )
        .prop_map(|(ns, pod_selector, types, ingress, egress)| NetworkPolicy {
            metadata: ObjectMeta {
                namespace: Some(NAMESPACES[ns].to_owned()),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(pod_selector),
                policy_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
                ingress: ingress.map(|rules| {
                    rules
                        .into_iter()
                        .map(|(from, ports)| NetworkPolicyIngressRule { from, ports })
                        .collect()
                }),
                egress: egress.map(|rules| {
                    rules
                        .into_iter()
                        .map(|(to, ports)| NetworkPolicyEgressRule { to, ports })
                        .collect()
                }),
            }),
        })
}

fn cluster() -> impl Strategy<Value = (Cluster, Vec<NetworkPolicy>)> {
    (
        prop::collection::vec(ns_labels(), NAMESPACES.len()),
        prop::collection::vec(workload(), 1..=6),
        prop::collection::vec(policy(), 0..=4),
    )
        .prop_map(|(nsl, wls, mut policies)| {
            let mut cluster = Cluster::default();
            for (name, labels) in NAMESPACES.iter().zip(nsl) {
                let mut ns = Namespace::implied(name);
                ns.labels.extend(labels);
                cluster.namespaces.insert(name.to_string(), ns);
            }
            for (i, (ns, labels, ports, ip, is_pod)) in wls.into_iter().enumerate() {
                cluster.workloads.push(Workload {
                    namespace: NAMESPACES[ns].to_owned(),
                    name: format!("w{i}"),
                    kind: if is_pod {
                        WorkloadKind::Pod
                    } else {
                        WorkloadKind::Deployment
                    },
                    labels,
                    service_account: "default".into(),
                    ports,
                    ips: ip
                        .map(|i| vec![IPS[i].parse().unwrap()])
                        .unwrap_or_default(),
                    host_network: false,
                    inject_annotation: None,
                    location: None,
                });
            }
            cluster
                .workloads
                .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            for (i, p) in policies.iter_mut().enumerate() {
                p.metadata.name = Some(format!("p{i}"));
            }
            policies.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name)
                    .cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            for p in &policies {
                let ns = p.metadata.namespace.clone().unwrap();
                let ir = lower(p, &ns, &Nowhere).expect("generated policies are valid");
                cluster.network_policies.push(ir);
            }
            (cluster, policies)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tables_decide_as_the_reference_evaluator((cluster, policies) in cluster()) {
        let tables = compile(&cluster);
        let world = World { namespaces: &cluster.namespaces, workloads: &cluster.workloads, policies: &policies };
        let outside: Vec<IpAddr> = vec![IPS[2].parse().unwrap(), IPS[4].parse().unwrap()];
        let mut ends: Vec<(Endpoint, End)> = cluster
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (Endpoint::Workload(i as u32), End::Pod(w)))
            .collect();
        ends.extend(outside.iter().map(|&ip| (Endpoint::Ip(ip), End::Ip(ip))));
        for &(from_t, from_r) in &ends {
            for &(to_t, to_r) in &ends {
                if matches!((from_t, to_t), (Endpoint::Ip(_), Endpoint::Ip(_))) {
                    continue;
                }
                for protocol in Protocol::ALL {
                    for port in [53u16, 80, 81, 82, 8080] {
                        let table = tables.decide(from_t, to_t, protocol, port);
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
