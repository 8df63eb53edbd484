//! Assertions: the reachability invariants of `ambit verify`.
//!
//! ```yaml
//! assertions:
//! - name: db-only-from-api
//!   expect: only            # deny | allow | only
//!   from: {namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: api}}}
//!   to:   {podSelector: {matchLabels: {app: db}}, namespace: pay}
//!   ports: [{port: 5432}]   # port, endPort, protocol (TCP when omitted)
//!   scope: any-pod          # inventory (default) | any-pod
//! ```
//!
//! A flow set is every flow from an end `from` selects to an end `to`
//! selects, on the ports listed (omitted: every port 1-65535 of every
//! protocol), never a pod to itself. The keys of one end are ANDed: a
//! `workload` (`namespace/name`), a `namespace` by name, a
//! `namespaceSelector`, a `podSelector` (alone: pods of every namespace), an
//! `ipBlock`. An `ipBlock` alone selects addresses outside the cluster (no
//! pod); with other keys it narrows their pods to those with an address in
//! the block. An end with no key is every pod.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use crate::diag::{Code, Diagnostic};
use crate::labels::{Labels, Selector};
use crate::model::{Cluster, Peer, PortSpec, Protocol, Workload, ip_block_contains};
use crate::netpol::{self, Ctx};
use crate::source::SourceFile;
use crate::yaml::{self, Seg};

/// What an assertion expects of its flow set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No flow of the set is allowed.
    Deny,
    /// Every flow of the set is allowed.
    Allow,
    /// The `to` ends are reachable (on the ports) from nothing outside `from`.
    Only,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Deny => "deny",
            Expect::Allow => "allow",
            Expect::Only => "only",
        }
    }
}

/// Which pods an assertion speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The workloads of the inventory.
    Inventory,
    /// Every pod that could exist: today's, and any pod deployed tomorrow
    /// into an existing or a new namespace, with any labels and named ports.
    AnyPod,
}

/// One end of an assertion's flows: the ANDed keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ends {
    /// `namespace/name` of a workload.
    pub workload: Option<(String, String)>,
    pub namespace: Option<String>,
    pub namespace_selector: Option<Selector>,
    pub pod_selector: Option<Selector>,
    pub ip_block: Option<(IpNet, Vec<IpNet>)>,
}

impl Ends {
    /// Does a pod of workload `w` (in a namespace with `namespace_labels`)
    /// belong to the end?
    pub fn has_pod(&self, w: &Workload, namespace_labels: &Labels) -> bool {
        !self.admits_addresses()
            && self
                .workload
                .as_ref()
                .is_none_or(|(ns, name)| *ns == w.namespace && *name == w.name)
            && self.namespace.as_ref().is_none_or(|ns| *ns == w.namespace)
            && self
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(namespace_labels))
            && self
                .pod_selector
                .as_ref()
                .is_none_or(|s| s.matches(&w.labels))
            && self.ip_block.as_ref().is_none_or(|(cidr, except)| {
                w.ips.iter().any(|ip| ip_block_contains(cidr, except, *ip))
            })
    }

    /// Does an address outside the cluster belong to the end?
    pub fn has_address(&self, ip: IpAddr) -> bool {
        self.workload.is_none()
            && self.namespace.is_none()
            && self.namespace_selector.is_none()
            && self.pod_selector.is_none()
            && self
                .ip_block
                .as_ref()
                .is_some_and(|(cidr, except)| ip_block_contains(cidr, except, ip))
    }

    /// Only an `ipBlock`: the end is addresses outside the cluster.
    pub fn admits_addresses(&self) -> bool {
        self.ip_block.is_some()
            && self.workload.is_none()
            && self.namespace.is_none()
            && self.namespace_selector.is_none()
            && self.pod_selector.is_none()
    }
}

/// A port range of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub protocol: Protocol,
    pub start: u16,
    pub end: u16,
}

/// One assertion, validated.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub name: String,
    pub expect: Expect,
    pub from: Ends,
    pub to: Ends,
    /// Every port 1-65535 of every protocol when the file lists none.
    pub ports: Vec<PortRange>,
    pub scope: Scope,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertionSpec {
    name: String,
    expect: String,
    from: EndsSpec,
    to: EndsSpec,
    #[serde(default)]
    ports: Option<Vec<k8s::NetworkPolicyPort>>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EndsSpec {
    #[serde(default)]
    workload: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pod_selector: Option<LabelSelector>,
    #[serde(default)]
    ip_block: Option<k8s::IPBlock>,
}

/// Read an assertions file (a mapping with an `assertions` list) and check
/// every assertion against the cluster. All problems are reported.
pub fn read_assertions(
    file: &SourceFile,
    cluster: &Cluster,
) -> Result<Vec<Assertion>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let docs = yaml::documents(file, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    let invalid = |message: String, help: &str| {
        Diagnostic::new(Code::InvalidAssertion, message).with_help(help.to_owned())
    };
    let shape_help = "an assertions file is a mapping with an `assertions` list of `{name, expect, from, to, ports, scope}`";
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    let mut any = false;
    for doc in &docs {
        let root = doc.root();
        let Some(len) = root.sequence_len(&[Seg::Key("assertions")]) else {
            let message = if root.node_at(&[Seg::Key("assertions")]).is_some() {
                "`assertions` is not a list"
            } else {
                "no `assertions` list"
            };
            diags.push(
                invalid(message.into(), shape_help)
                    .at(file, root.locate(&[Seg::Key("assertions")])),
            );
            continue;
        };
        for key in root.keys_at(&[]) {
            if key != "assertions" {
                let span = root.locate_key(&[Seg::Owned(key.clone())]);
                diags.push(invalid(format!("unknown key `{key}`"), shape_help).at(file, span));
            }
        }
        for i in 0..len {
            any = true;
            let Some(item) = root.child(&[Seg::Key("assertions"), Seg::Index(i)]) else {
                continue;
            };
            let spec = match item.typed::<AssertionSpec>() {
                Ok(spec) => spec,
                Err(mut d) => {
                    d.code = Code::InvalidAssertion;
                    d.help = Some(
                        "an assertion has `name`, `expect`, `from`, `to`, and optionally `ports` and `scope`; an end has `workload`, `namespace`, `namespaceSelector`, `podSelector`, `ipBlock`".into(),
                    );
                    diags.push(d);
                    continue;
                }
            };
            if let Some(a) = assertion(&spec, &item, cluster, &mut names, &mut diags) {
                out.push(a);
            }
        }
    }
    if !any && diags.is_empty() {
        diags.push(invalid(
            "the assertions file lists no assertion".into(),
            shape_help,
        ));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn assertion(
    spec: &AssertionSpec,
    item: &yaml::Object<'_>,
    cluster: &Cluster,
    names: &mut BTreeSet<String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Assertion> {
    let mut cx = Ctx {
        at: item,
        diags: Vec::new(),
    };
    if spec.name.is_empty() {
        cx.error(
            Code::InvalidAssertion,
            &[Seg::Key("name")],
            "the assertion has an empty name".into(),
            "name each assertion; the name identifies it in the output",
        );
    } else if !names.insert(spec.name.clone()) {
        cx.error(
            Code::InvalidAssertion,
            &[Seg::Key("name")],
            format!("a second assertion is named `{}`", spec.name),
            "give each assertion its own name",
        );
    }
    let expect = match spec.expect.as_str() {
        "deny" => Some(Expect::Deny),
        "allow" => Some(Expect::Allow),
        "only" => Some(Expect::Only),
        other => {
            cx.error(
                Code::InvalidAssertion,
                &[Seg::Key("expect")],
                format!("unknown expectation `{other}`"),
                "`deny`: no flow of the set is allowed; `allow`: every flow is; `only`: `to` is reachable from nothing outside `from`",
            );
            None
        }
    };
    let scope = match spec.scope.as_deref() {
        None | Some("inventory") => Some(Scope::Inventory),
        Some("any-pod") => Some(Scope::AnyPod),
        Some(other) => {
            cx.error(
                Code::InvalidAssertion,
                &[Seg::Key("scope")],
                format!("unknown scope `{other}`"),
                "`inventory` (default): the workloads of the cluster; `any-pod`: every pod that could exist",
            );
            None
        }
    };
    let from = ends(&mut cx, &spec.from, "from", cluster);
    let to = ends(&mut cx, &spec.to, "to", cluster);
    let mut ports = Vec::new();
    match &spec.ports {
        None => ports.extend(Protocol::ALL.iter().map(|&protocol| PortRange {
            protocol,
            start: 1,
            end: 65535,
        })),
        Some(list) if list.is_empty() => cx.error(
            Code::InvalidAssertion,
            &[Seg::Key("ports")],
            "`ports` is empty".into(),
            "list ports, or leave `ports` out for every port of every protocol",
        ),
        Some(list) => {
            for (i, p) in list.iter().enumerate() {
                let at = [Seg::Key("ports"), Seg::Index(i)];
                match netpol::port(&mut cx, p, &at) {
                    Some(PortSpec::AnyPort(protocol)) => ports.push(PortRange {
                        protocol,
                        start: 1,
                        end: 65535,
                    }),
                    Some(PortSpec::Range { protocol, start, end }) => ports.push(PortRange { protocol, start, end }),
                    Some(PortSpec::Named { name, .. } | PortSpec::NamedAnyProtocol { name }) => cx.error(
                        Code::InvalidAssertion,
                        &[Seg::Key("ports"), Seg::Index(i), Seg::Key("port")],
                        format!("the named port `{name}` in an assertion"),
                        "assertions take port numbers (`port`, `endPort`), which mean the same on every pod",
                    ),
                    None => {}
                }
            }
        }
    }
    if let (Some(from), Some(to)) = (&from, &to)
        && from.admits_addresses()
        && to.admits_addresses()
    {
        cx.error(
            Code::InvalidAssertion,
            &[Seg::Key("to")],
            "both ends are only addresses: no pod is on either side of these flows".into(),
            "give one end a `workload`, `namespace`, `namespaceSelector` or `podSelector`",
        );
    }
    let ok = cx.diags.is_empty();
    diags.extend(cx.diags);
    if !ok {
        return None;
    }
    Some(Assertion {
        name: spec.name.clone(),
        expect: expect?,
        from: from?,
        to: to?,
        ports,
        scope: scope?,
    })
}

fn ends(cx: &mut Ctx<'_>, spec: &EndsSpec, key: &'static str, cluster: &Cluster) -> Option<Ends> {
    let at = [Seg::Key(key)];
    let before = cx.diags.len();
    let mut out = Ends::default();
    if let Some(w) = &spec.workload {
        let wpath = netpol::path(&at, [Seg::Key("workload")]);
        match w.split_once('/') {
            Some((ns, name)) if cluster.workload(ns, name).is_some() => {
                out.workload = Some((ns.to_owned(), name.to_owned()))
            }
            Some(_) => {
                let mut near: Vec<(f64, String)> = cluster
                    .workloads
                    .iter()
                    .map(|x| (strsim::jaro_winkler(w, &x.id()), x.id()))
                    .filter(|(s, _)| *s > 0.7)
                    .collect();
                near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let help = match near.first() {
                    Some((_, n)) => format!("did you mean `{n}`?"),
                    None => "workloads are Pods and the pod templates of controllers, named `namespace/name`".into(),
                };
                cx.error(
                    Code::UnknownWorkload,
                    &wpath,
                    format!("no workload `{w}` in the cluster"),
                    &help,
                );
            }
            None => cx.error(
                Code::InvalidAssertion,
                &wpath,
                format!("`{w}` is not `namespace/name`"),
                "name a workload as `namespace/name`",
            ),
        }
    }
    out.namespace = spec.namespace.clone();
    out.namespace_selector = spec.namespace_selector.as_ref().map(|s| {
        netpol::selector(
            cx,
            Some(s),
            &netpol::path(&at, [Seg::Key("namespaceSelector")]),
        )
    });
    out.pod_selector = spec
        .pod_selector
        .as_ref()
        .map(|s| netpol::selector(cx, Some(s), &netpol::path(&at, [Seg::Key("podSelector")])));
    if let Some(b) = &spec.ip_block
        && let Some(Peer::IpBlock { cidr, except }) =
            netpol::ip_block(cx, b, &netpol::path(&at, [Seg::Key("ipBlock")]))
    {
        out.ip_block = Some((cidr, except));
    }
    (cx.diags.len() == before).then_some(out)
}
