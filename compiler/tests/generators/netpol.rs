//! Random clusters for the laws: namespaces, workloads of every kind, random
//! NetworkPolicies of every shape and random tier stacks of
//! ClusterNetworkPolicies, AdminNetworkPolicies and a
//! BaselineAdminNetworkPolicy. Shared by the compiler's reference law and
//! the verifier's translation-validation law.

#![allow(dead_code)]

use std::collections::BTreeMap;

use ambit_compiler::admin::{self, AdminSource, Node};
use ambit_compiler::model::{Cluster, ContainerPort, Namespace, Protocol, Workload, WorkloadKind};
use ambit_compiler::netpol::{Nowhere, lower};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use serde_json::{Value, json};

pub const NAMESPACES: [&str; 3] = ["a", "b", "c"];
pub const IPS: [&str; 5] = ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.1.9", "192.0.2.7"];

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

/// Two nodes whose addresses are also addresses of the probes (and, for a
/// host-network workload, its own).
fn nodes() -> Vec<Node> {
    vec![
        Node {
            name: "n1".into(),
            labels: [("role".to_owned(), "worker".to_owned())].into(),
            addresses: vec![IPS[2].parse().unwrap()],
        },
        Node {
            name: "n2".into(),
            labels: [("role".to_owned(), "infra".to_owned())].into(),
            addresses: vec![IPS[4].parse().unwrap()],
        },
    ]
}

/// Admin selectors match everything half of the time, so that policies of
/// a stack meet on the same flows.
fn sel_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        selector().prop_map(|s| serde_json::to_value(s).unwrap()),
    ]
}

/// A peer of an admin rule; `egress` adds networks, nodes and domainNames.
fn admin_peer(egress: bool) -> impl Strategy<Value = Value> {
    let common = prop_oneof![
        4 => sel_json().prop_map(|s| json!({"namespaces": s})),
        4 => (prop::option::of(sel_json()), sel_json()).prop_map(|(ns, pod)| match ns {
            Some(ns) => json!({"pods": {"namespaceSelector": ns, "podSelector": pod}}),
            None => json!({"pods": {"namespaceSelector": {}, "podSelector": pod}}),
        }),
        1 => Just(json!({})),
    ];
    let egress_only = prop_oneof![
        prop::sample::subsequence(
            vec![
                "10.0.0.0/30",
                "10.0.0.4/30",
                "0.0.0.0/0",
                "192.0.2.0/24",
                "10.0.0.5/32"
            ],
            1..=2
        )
        .prop_map(|n| json!({"networks": n})),
        sel_json().prop_map(|s| json!({"nodes": s})),
        Just(json!({"domainNames": ["example.com"]})),
    ];
    if egress {
        prop_oneof![3 => common, 2 => egress_only].boxed()
    } else {
        common.boxed()
    }
}

/// A port entry: `protocols` of v1alpha2 or `ports` of v1alpha1.
fn admin_port(v2: bool) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["TCP", "UDP", "SCTP"]),
        prop::sample::select(vec![53i64, 80, 81]),
        prop::option::of(1..3i64),
        prop::sample::select(vec!["http", "dns", "alt"]),
        0..4u8,
    )
        .prop_map(move |(proto, port, span, name, shape)| {
            let lower = proto.to_ascii_lowercase();
            match (v2, shape) {
                (true, 0) => json!({"destinationNamedPort": name}),
                (true, _) => match span {
                    None => json!({lower: {"destinationPort": {"number": port}}}),
                    Some(d) => {
                        json!({lower: {"destinationPort": {"range": {"start": port, "end": port + d}}}})
                    }
                },
                (false, 0) => json!({"namedPort": name}),
                (false, 1) => json!({"portNumber": {"port": port}}),
                (false, _) => match span {
                    None => json!({"portNumber": {"protocol": proto, "port": port}}),
                    Some(d) => {
                        json!({"portRange": {"protocol": proto, "start": port, "end": port + d}})
                    }
                },
            }
        })
}

fn admin_rule(
    v2: bool,
    egress: bool,
    actions: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(actions.to_vec()),
        prop::collection::vec(admin_peer(egress), 1..=2),
        prop::option::of(prop::collection::vec(admin_port(v2), 1..=2)),
        any::<bool>(),
    )
        .prop_map(move |(action, peers, ports, named)| {
            let mut r = json!({"action": action, if egress { "to" } else { "from" }: peers});
            if named {
                r["name"] = json!("r");
            }
            if let Some(ports) = ports {
                r[if v2 { "protocols" } else { "ports" }] = json!(ports);
            }
            r
        })
}

/// One admin policy as written: a ClusterNetworkPolicy (either tier), an
/// AdminNetworkPolicy or the BaselineAdminNetworkPolicy.
fn admin_policy() -> impl Strategy<Value = (u8, Value)> {
    (0..4u8).prop_flat_map(|kind| {
        let v2 = kind < 2;
        let actions: &'static [&'static str] = match kind {
            0 | 1 => &["Accept", "Deny", "Pass"],
            2 => &["Allow", "Deny", "Pass"],
            _ => &["Allow", "Deny"],
        };
        (
            prop::sample::select(vec![0i64, 5, 5, 5, 10]),
            prop_oneof![
                sel_json().prop_map(|s| json!({"namespaces": s})),
                (sel_json(), sel_json()).prop_map(
                    |(ns, pod)| json!({"pods": {"namespaceSelector": ns, "podSelector": pod}})
                ),
            ],
            prop::collection::vec(admin_rule(v2, false, actions), 0..=3),
            prop::collection::vec(admin_rule(v2, true, actions), 0..=3),
        )
            .prop_map(move |(priority, subject, ingress, egress)| {
                let mut spec = json!({"subject": subject, "ingress": ingress, "egress": egress});
                match kind {
                    0 => {
                        spec["tier"] = json!("Admin");
                        spec["priority"] = json!(priority);
                    }
                    1 => {
                        spec["tier"] = json!("Baseline");
                        spec["priority"] = json!(priority);
                    }
                    2 => spec["priority"] = json!(priority),
                    _ => {}
                }
                (kind, json!({"spec": spec}))
            })
    })
}

/// Lower what lowers (the generator may write forms the API rejects, such
/// as a named port next to a networks peer); keep the typed and the lowered
/// forms of the same policies.
fn admin_policies(written: Vec<(u8, Value)>) -> (Vec<AdminSource>, Vec<admin::AdminPolicy>) {
    let mut sources = Vec::new();
    let mut lowered = Vec::new();
    let mut baseline_seen = false;
    for (i, (kind, mut v)) in written.into_iter().enumerate() {
        let name = if kind == 3 {
            if baseline_seen {
                continue;
            }
            baseline_seen = true;
            "default".to_owned()
        } else {
            // Names out of index order, so that ties by name are exercised.
            format!("{}{i}", ["m", "b", "z", "a"][i % 4])
        };
        v["metadata"] = json!({"name": name});
        let (source, (policy, _)) = match kind {
            0 | 1 => {
                let t: admin::ClusterNetworkPolicy = serde_json::from_value(v).unwrap();
                let l = admin::lower_cnp(&t, &Nowhere);
                (AdminSource::Cluster(t), l)
            }
            2 => {
                let t: admin::AdminNetworkPolicy = serde_json::from_value(v).unwrap();
                let l = admin::lower_anp(&t, &Nowhere);
                (AdminSource::Admin(t), l)
            }
            _ => {
                let t: admin::BaselineAdminNetworkPolicy = serde_json::from_value(v).unwrap();
                let l = admin::lower_banp(&t, &Nowhere);
                (AdminSource::Baseline(t), l)
            }
        };
        if let Some(p) = policy {
            sources.push(source);
            lowered.push(p);
        }
    }
    (sources, lowered)
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

pub fn policy() -> impl Strategy<Value = NetworkPolicy> {
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

pub type Generated = (Cluster, Vec<NetworkPolicy>, Vec<AdminSource>);

pub fn cluster() -> impl Strategy<Value = Generated> {
    (
        prop::collection::vec(ns_labels(), NAMESPACES.len()),
        prop::collection::vec(workload(), 1..=6),
        prop::collection::vec(policy(), 0..=4),
        prop::collection::vec(admin_policy(), 0..=6),
        prop::option::of(0..6usize),
    )
        .prop_map(|(nsl, wls, mut policies, admin_written, host_net)| {
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
                    // A host-network pod has its node's address.
                    ips: if host_net == Some(i) {
                        vec![IPS[2].parse().unwrap()]
                    } else {
                        ip.map(|i| vec![IPS[i].parse().unwrap()])
                            .unwrap_or_default()
                    },
                    host_network: host_net == Some(i),
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
            let (sources, lowered) = admin_policies(admin_written);
            cluster.admin_policies = lowered;
            cluster.nodes = nodes();
            (cluster, policies, sources)
        })
}
