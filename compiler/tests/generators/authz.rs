//! Random meshes for the laws: ambient, sidecar and plain namespaces,
//! opted-out pods, random AuthorizationPolicies with L4 and L7 rules of
//! every action, random PeerAuthentications, trust domains and a
//! NetworkPolicy layer. Shared by the compiler's authorization law and the
//! verifier's translation-validation law.

#![allow(dead_code)]

use std::collections::BTreeMap;

use ambit_compiler::authz::{MeshSettings, MtlsMode, PeerAuthn, Request};
use ambit_compiler::compile::CompileOptions;
use ambit_compiler::istio::{
    AuthorizationPolicy, AuthzSpec, ConditionSpec, FromSpec, OperationSpec, ProviderSpec, RuleSpec,
    SourceSpec, ToSpec, WorkloadSelector, lower_authz,
};
use ambit_compiler::model::{Cluster, Namespace, Workload, WorkloadKind};
use ambit_compiler::netpol::{Nowhere, lower};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use proptest::prelude::*;

pub const NAMESPACES: [&str; 4] = ["a", "b", "c", "istio-system"];
pub const IPS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "10.0.1.5", "192.0.2.7"];

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(pool, 1..=2).prop_map(|v| v.iter().map(|s| s.to_string()).collect())
}

/// One field of a source: (field index, negated, values).
fn source() -> impl Strategy<Value = SourceSpec> {
    let field = (0..6usize, any::<bool>()).prop_flat_map(|(f, not)| {
        let pool: &'static [&'static str] = match f {
            0 => &[
                "cluster.local/ns/a/sa/web",
                "*/sa/api",
                "cluster.local/ns/b/*",
                "*",
                "example.org/ns/a/sa/default",
                "old.org/ns/b/sa/web",
            ],
            1 => &["a", "b*", "*", "*c"],
            2 => &["web", "b/api", "a/default"],
            3 => &["10.0.0.0/24", "10.0.0.2", "192.0.2.0/24"],
            4 => &["10.0.0.1", "10.0.1.0/24"],
            _ => &["*", "issuer/subject"],
        };
        strings(pool).prop_map(move |v| (f, not, v))
    });
    prop::collection::vec(field, 1..=2).prop_map(|fields| {
        let mut s = SourceSpec::default();
        for (f, not, v) in fields {
            let slot = match (f, not) {
                (0, false) => &mut s.principals,
                (0, true) => &mut s.not_principals,
                (1, false) => &mut s.namespaces,
                (1, true) => &mut s.not_namespaces,
                (2, false) => &mut s.service_accounts,
                (2, true) => &mut s.not_service_accounts,
                (3, false) => &mut s.ip_blocks,
                (3, true) => &mut s.not_ip_blocks,
                (4, false) => &mut s.remote_ip_blocks,
                (4, true) => &mut s.not_remote_ip_blocks,
                (_, false) => &mut s.request_principals,
                (_, true) => &mut s.not_request_principals,
            };
            *slot = Some(v);
        }
        s
    })
}

fn operation() -> impl Strategy<Value = OperationSpec> {
    let field = (0..4usize, any::<bool>()).prop_flat_map(|(f, not)| {
        let pool: &'static [&'static str] = match f {
            0 => &["80", "8080"],
            1 => &["*.example.com", "API", "api*"],
            2 => &["GET", "PO*", "*"],
            _ => &["/api/*", "/api/{*}/x", "/admin", "*/x", "/files/{**}"],
        };
        strings(pool).prop_map(move |v| (f, not, v))
    });
    prop::collection::vec(field, 1..=2).prop_map(|fields| {
        let mut o = OperationSpec::default();
        for (f, not, v) in fields {
            let slot = match (f, not) {
                (0, false) => &mut o.ports,
                (0, true) => &mut o.not_ports,
                (1, false) => &mut o.hosts,
                (1, true) => &mut o.not_hosts,
                (2, false) => &mut o.methods,
                (2, true) => &mut o.not_methods,
                (_, false) => &mut o.paths,
                (_, true) => &mut o.not_paths,
            };
            *slot = Some(v);
        }
        o
    })
}

fn condition() -> impl Strategy<Value = ConditionSpec> {
    prop::sample::select(vec![
        ("source.ip", vec!["10.0.0.0/24"]),
        ("remote.ip", vec!["10.0.0.2"]),
        ("source.namespace", vec!["a", "c"]),
        ("source.principal", vec!["cluster.local/ns/b/sa/web", "*"]),
        ("destination.ip", vec!["10.0.0.1", "10.0.1.0/24"]),
        ("destination.port", vec!["8080"]),
        ("connection.sni", vec!["*"]),
        ("request.headers[x-tenant]", vec!["acme", "*"]),
        ("request.auth.claims[iss]", vec!["x"]),
    ])
    .prop_flat_map(|(key, values)| {
        any::<bool>().prop_map(move |not| {
            let v = Some(values.iter().map(|s| s.to_string()).collect());
            ConditionSpec {
                key: Some(key.to_owned()),
                values: if not { None } else { v.clone() },
                not_values: if not { v } else { None },
            }
        })
    })
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        prop::option::of(prop::collection::vec(source(), 1..=2)),
        prop::option::of(prop::collection::vec(operation(), 1..=2)),
        prop::collection::vec(condition(), 0..=1),
    )
        .prop_map(|(from, to, when)| RuleSpec {
            from: from.map(|v| {
                v.into_iter()
                    .map(|s| Some(FromSpec { source: Some(s) }))
                    .collect()
            }),
            to: to.map(|v| {
                v.into_iter()
                    .map(|o| Some(ToSpec { operation: Some(o) }))
                    .collect()
            }),
            when: (!when.is_empty()).then(|| when.into_iter().map(Some).collect()),
        })
}

pub fn authz_policy() -> impl Strategy<Value = AuthorizationPolicy> {
    (
        0..NAMESPACES.len(),
        prop::option::of(prop::sample::select(vec!["web", "db", "api"])),
        prop::sample::select(vec!["ALLOW", "ALLOW", "DENY", "DENY", "AUDIT", "CUSTOM"]),
        prop::option::of(prop::collection::vec(rule(), 0..=2)),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(ns, app, action, rules, dry_run)| AuthorizationPolicy {
            metadata: ObjectMeta {
                namespace: Some(NAMESPACES[ns].to_owned()),
                annotations: dry_run
                    .then(|| [("istio.io/dry-run".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            spec: AuthzSpec {
                selector: app.map(|a| WorkloadSelector {
                    match_labels: Some([("app".to_owned(), a.to_owned())].into()),
                }),
                rules: rules.map(|r| r.into_iter().map(Some).collect()),
                action: Some(action.to_owned()),
                provider: (action == "CUSTOM").then(|| ProviderSpec {
                    name: Some("ext".into()),
                }),
                ..Default::default()
            },
        })
}

fn mode() -> impl Strategy<Value = MtlsMode> {
    prop::sample::select(vec![
        MtlsMode::Unset,
        MtlsMode::Disable,
        MtlsMode::Permissive,
        MtlsMode::Strict,
    ])
}

fn peer_authn() -> impl Strategy<Value = PeerAuthn> {
    (
        0..NAMESPACES.len(),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        mode(),
        prop::option::of(mode()),
    )
        .prop_map(|(ns, app, mode, port)| {
            let selector: Option<BTreeMap<String, String>> =
                app.map(|a| [("app".to_owned(), a.to_owned())].into());
            PeerAuthn {
                namespace: NAMESPACES[ns].to_owned(),
                name: String::new(),
                port_level: match (&selector, port) {
                    (Some(_), Some(m)) => [(8080, m)].into(),
                    _ => BTreeMap::new(),
                },
                selector,
                mode,
                created: None,
            }
        })
}

type WorkloadParts = (
    usize,
    Option<&'static str>,
    &'static str,
    Option<usize>,
    Option<&'static str>,
);

fn workload() -> impl Strategy<Value = WorkloadParts> {
    (
        0..3usize,
        prop::option::of(prop::sample::select(vec!["web", "db", "api"])),
        prop::sample::select(vec!["default", "web", "api"]),
        prop::option::of(0..IPS.len() - 1),
        prop::sample::select(vec![
            None,
            None,
            Some("istio.io/dataplane-mode=none"),
            Some("istio.io/dataplane-mode=ambient"),
            Some("sidecar.istio.io/inject=false"),
            Some("sidecar.istio.io/inject=true"),
        ]),
    )
}

#[derive(Debug)]
pub struct Case {
    pub cluster: Cluster,
    pub sources: Vec<AuthorizationPolicy>,
    pub netpols: Vec<NetworkPolicy>,
    pub options: CompileOptions,
}

pub fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["ambient", "inject", "rev", "none"]),
            3,
        ),
        prop::collection::vec(workload(), 1..=5),
        prop::collection::vec(authz_policy(), 0..=4),
        prop::collection::vec(peer_authn(), 0..=2),
        prop::option::of(0..3usize),
        prop::sample::select(vec![None, Some("example.org")]),
        prop::sample::select(vec![None, Some(vec!["old.org".to_owned()])]),
    )
        .prop_map(|(modes, wls, mut aps, mut pas, np_ns, td, aliases)| {
            let mut cluster = Cluster::default();
            for (i, name) in NAMESPACES.iter().enumerate() {
                let mut ns = Namespace::implied(name);
                match modes.get(i).copied() {
                    Some("ambient") => {
                        ns.labels
                            .insert("istio.io/dataplane-mode".into(), "ambient".into());
                    }
                    Some("inject") => {
                        ns.labels.insert("istio-injection".into(), "enabled".into());
                    }
                    Some("rev") => {
                        ns.labels.insert("istio.io/rev".into(), "canary".into());
                    }
                    _ => {}
                }
                cluster.namespaces.insert(name.to_string(), ns);
            }
            for (i, (ns, app, sa, ip, extra)) in wls.into_iter().enumerate() {
                let mut labels = BTreeMap::new();
                if let Some(a) = app {
                    labels.insert("app".to_owned(), a.to_owned());
                }
                if let Some((k, v)) = extra.and_then(|e| e.split_once('=')) {
                    labels.insert(k.to_owned(), v.to_owned());
                }
                cluster.workloads.push(Workload {
                    namespace: NAMESPACES[ns].to_owned(),
                    name: format!("w{i}"),
                    kind: WorkloadKind::Pod,
                    labels,
                    service_account: sa.to_owned(),
                    ports: Vec::new(),
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
            for (i, ap) in aps.iter_mut().enumerate() {
                ap.metadata.name = Some(format!("ap{i}"));
            }
            aps.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name)
                    .cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            for ap in &aps {
                let ns = ap.metadata.namespace.clone().unwrap();
                let ir = lower_authz(ap, &ns, &Nowhere).expect("generated policies are valid");
                cluster.authorization_policies.push(ir);
            }
            for (i, pa) in pas.iter_mut().enumerate() {
                pa.name = format!("pa{i}");
            }
            pas.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            cluster.peer_authentications = pas;
            // A NetworkPolicy layer: ingress only from namespace `a`.
            let mut netpols = Vec::new();
            if let Some(ns) = np_ns {
                let np = NetworkPolicy {
                    metadata: ObjectMeta {
                        namespace: Some(NAMESPACES[ns].to_owned()),
                        name: Some("from-a".into()),
                        ..Default::default()
                    },
                    spec: Some(NetworkPolicySpec {
                        pod_selector: Some(LabelSelector::default()),
                        ingress: Some(vec![NetworkPolicyIngressRule {
                            from: Some(vec![NetworkPolicyPeer {
                                namespace_selector: Some(LabelSelector {
                                    match_labels: Some(
                                        [(
                                            "kubernetes.io/metadata.name".to_owned(),
                                            "a".to_owned(),
                                        )]
                                        .into(),
                                    ),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }]),
                            ports: None,
                        }]),
                        ..Default::default()
                    }),
                };
                cluster
                    .network_policies
                    .push(lower(&np, NAMESPACES[ns], &Nowhere).unwrap());
                netpols.push(np);
            }
            let options = CompileOptions {
                mesh: MeshSettings {
                    root_namespace: None,
                    trust_domain: td.map(str::to_owned),
                    trust_domain_aliases: aliases,
                },
            };
            Case {
                cluster,
                sources: aps,
                netpols,
                options,
            }
        })
}

/// A request with its headers also as pairs (the reference's form).
pub type Probe = Option<(Request, Vec<(&'static str, &'static str)>)>;

pub fn requests() -> Vec<Probe> {
    let r = |m: &str, p: &str, h: Option<&str>, hd: Vec<(&'static str, &'static str)>| {
        Some((
            Request {
                method: Some(m.to_owned()),
                path: Some(p.to_owned()),
                host: h.map(str::to_owned),
                headers: hd
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            hd,
        ))
    };
    vec![
        None,
        r(
            "GET",
            "/api/v1/x",
            Some("api.example.com"),
            vec![("x-tenant", "acme")],
        ),
        r("POST", "/admin?x=1", Some("API"), vec![]),
        r("PUT", "/files/a/b", None, vec![("x-tenant", "other")]),
    ]
}
