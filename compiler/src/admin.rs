//! Cluster-scoped admin policies of kubernetes-sigs/network-policy-api, read
//! in both API versions and lowered into one tier model:
//!
//! - `policy.networking.k8s.io/v1alpha2` `ClusterNetworkPolicy` (tier `Admin`
//!   or `Baseline`, priority 0-1000, actions `Accept`/`Deny`/`Pass`, ports as
//!   `protocols`);
//! - `policy.networking.k8s.io/v1alpha1` `AdminNetworkPolicy` (the Admin
//!   tier, actions `Allow`/`Deny`/`Pass`) and `BaselineAdminNetworkPolicy`
//!   (the singleton `default`, the Baseline tier, actions `Allow`/`Deny`),
//!   ports as `ports` (`portNumber`, `namedPort`, `portRange`).
//!
//! Field names and limits follow the Go API types and their CRD validation
//! (`MinItems`/`MaxItems`, `MinProperties`/`MaxProperties`, the CEL rules).
//!
//! # The tier model
//!
//! Each direction (the source's egress, the destination's ingress) is decided
//! on its own: the Admin tier (CNPs of tier Admin and ANPs, by priority, lower
//! first; equal priorities by name, then kind), then NetworkPolicy (only for
//! pods a NetworkPolicy isolates in that direction), then the Baseline tier
//! (CNPs of tier Baseline by priority, then the BANP), then default allow.
//! Within a policy the rules of a direction are read in order; the first rule
//! that matches decides: Accept/Allow and Deny end the direction, Pass skips
//! the rest of its tier.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::diag::{Code, Diagnostic};
use crate::labels::Selector;
use crate::model::Protocol;
use crate::netpol::{self, Collector, Locate};
use crate::yaml::Seg;

// ---------------------------------------------------------------------------
// Source types (serde), as the API defines them.

/// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterNetworkPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: CnpSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpSpec {
    pub tier: String,
    pub priority: i64,
    pub subject: SubjectSpec,
    pub ingress: Option<Vec<CnpIngressRule>>,
    pub egress: Option<Vec<CnpEgressRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpIngressRule {
    pub name: Option<String>,
    pub action: String,
    pub from: Vec<IngressPeerSpec>,
    pub protocols: Option<Vec<ProtocolSpec>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpEgressRule {
    pub name: Option<String>,
    pub action: String,
    pub to: Vec<EgressPeerSpec>,
    pub protocols: Option<Vec<ProtocolSpec>>,
}

/// One entry of `protocols`: exactly one field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtocolSpec {
    pub tcp: Option<TransportSpec>,
    pub udp: Option<TransportSpec>,
    pub sctp: Option<TransportSpec>,
    pub destination_named_port: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportSpec {
    pub destination_port: Option<PortSpecV2>,
}

/// `Port`: exactly one of `number` and `range`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpecV2 {
    pub number: Option<i64>,
    pub range: Option<RangeSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeSpec {
    pub start: i64,
    pub end: i64,
}

/// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminNetworkPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: AnpSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpSpec {
    pub priority: i64,
    pub subject: SubjectSpec,
    pub ingress: Option<Vec<AnpIngressRule>>,
    pub egress: Option<Vec<AnpEgressRule>>,
}

/// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy.
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineAdminNetworkPolicy {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: BanpSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanpSpec {
    pub subject: SubjectSpec,
    pub ingress: Option<Vec<AnpIngressRule>>,
    pub egress: Option<Vec<AnpEgressRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpIngressRule {
    pub name: Option<String>,
    pub action: String,
    pub from: Vec<IngressPeerSpec>,
    pub ports: Option<Vec<AnpPortSpec>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpEgressRule {
    pub name: Option<String>,
    pub action: String,
    pub to: Vec<EgressPeerSpec>,
    pub ports: Option<Vec<AnpPortSpec>>,
}

/// One entry of `ports`: exactly one field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnpPortSpec {
    pub port_number: Option<PortNumberSpec>,
    pub named_port: Option<String>,
    pub port_range: Option<PortRangeSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortNumberSpec {
    pub protocol: Option<String>,
    pub port: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRangeSpec {
    pub protocol: Option<String>,
    pub start: i64,
    pub end: i64,
}

/// The subject of both versions: exactly one of `namespaces` and `pods`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectSpec {
    pub namespaces: Option<LabelSelector>,
    pub pods: Option<NamespacedPodSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedPodSpec {
    /// Optional in v1alpha2 (omitted: every namespace); required in v1alpha1.
    pub namespace_selector: Option<LabelSelector>,
    pub pod_selector: LabelSelector,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressPeerSpec {
    pub namespaces: Option<LabelSelector>,
    pub pods: Option<NamespacedPodSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressPeerSpec {
    pub namespaces: Option<LabelSelector>,
    pub pods: Option<NamespacedPodSpec>,
    pub nodes: Option<LabelSelector>,
    pub networks: Option<Vec<String>>,
    pub domain_names: Option<Vec<String>>,
}

impl From<&IngressPeerSpec> for EgressPeerSpec {
    fn from(p: &IngressPeerSpec) -> Self {
        EgressPeerSpec {
            namespaces: p.namespaces.clone(),
            pods: p.pods.clone(),
            ..EgressPeerSpec::default()
        }
    }
}

impl From<&EgressPeerSpec> for EgressPeerSpec {
    fn from(p: &EgressPeerSpec) -> Self {
        p.clone()
    }
}

/// The port list of a rule, in either API version.
#[derive(Debug, Clone, Copy)]
pub enum PortsSpec<'a> {
    /// v1alpha2 `protocols`.
    V2(Option<&'a [ProtocolSpec]>),
    /// v1alpha1 `ports`.
    V1(Option<&'a [AnpPortSpec]>),
}

/// What the rule types of both versions and both directions share.
pub trait RuleSpec {
    fn name(&self) -> Option<&str>;
    fn action(&self) -> &str;
    /// The peers; ingress peers have the egress-only fields unset.
    fn peers(&self) -> Vec<EgressPeerSpec>;
    /// `from` or `to`.
    fn peers_key(&self) -> &'static str;
    fn ports(&self) -> PortsSpec<'_>;
}

macro_rules! rule_spec {
    ($ty:ty, $peers:ident, $ports:ident, $version:ident) => {
        impl RuleSpec for $ty {
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
            fn action(&self) -> &str {
                &self.action
            }
            fn peers(&self) -> Vec<EgressPeerSpec> {
                self.$peers.iter().map(EgressPeerSpec::from).collect()
            }
            fn peers_key(&self) -> &'static str {
                stringify!($peers)
            }
            fn ports(&self) -> PortsSpec<'_> {
                PortsSpec::$version(self.$ports.as_deref())
            }
        }
    };
}

rule_spec!(CnpIngressRule, from, protocols, V2);
rule_spec!(CnpEgressRule, to, protocols, V2);
rule_spec!(AnpIngressRule, from, ports, V1);
rule_spec!(AnpEgressRule, to, ports, V1);

fn as_specs<T: RuleSpec>(list: &Option<Vec<T>>) -> Vec<&dyn RuleSpec> {
    list.iter().flatten().map(|r| r as &dyn RuleSpec).collect()
}

impl AdminSource {
    pub fn subject(&self) -> &SubjectSpec {
        match self {
            AdminSource::Cluster(c) => &c.spec.subject,
            AdminSource::Admin(a) => &a.spec.subject,
            AdminSource::Baseline(b) => &b.spec.subject,
        }
    }

    /// The rules of one direction, in order.
    pub fn rules(&self, direction: crate::model::Direction) -> Vec<&dyn RuleSpec> {
        let ingress = direction == crate::model::Direction::Ingress;
        match self {
            AdminSource::Cluster(c) if ingress => as_specs(&c.spec.ingress),
            AdminSource::Cluster(c) => as_specs(&c.spec.egress),
            AdminSource::Admin(a) if ingress => as_specs(&a.spec.ingress),
            AdminSource::Admin(a) => as_specs(&a.spec.egress),
            AdminSource::Baseline(b) if ingress => as_specs(&b.spec.ingress),
            AdminSource::Baseline(b) => as_specs(&b.spec.egress),
        }
    }
}

/// An admin policy as read, in its own API version.
#[derive(Debug, Clone)]
pub enum AdminSource {
    Cluster(ClusterNetworkPolicy),
    Admin(AdminNetworkPolicy),
    Baseline(BaselineAdminNetworkPolicy),
}

// ---------------------------------------------------------------------------
// The IR.

/// Which resource a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AdminKind {
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
}

impl AdminKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            AdminKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            AdminKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
        }
    }

    /// The word the kind uses for admitting traffic.
    pub fn accept_word(self) -> &'static str {
        match self {
            AdminKind::ClusterNetworkPolicy => "Accept",
            _ => "Allow",
        }
    }

    /// The largest number of rules per direction, and of peers per rule.
    fn max_items(self) -> usize {
        match self {
            AdminKind::ClusterNetworkPolicy => 25,
            _ => 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    Admin,
    Baseline,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

/// What a matching rule does. ANP/BANP `Allow` is `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Deny,
    Pass,
}

/// An admin policy, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPolicy {
    pub kind: AdminKind,
    pub name: String,
    pub tier: Tier,
    /// `None` for the BaselineAdminNetworkPolicy, which has no priority and
    /// comes after every Baseline ClusterNetworkPolicy.
    pub priority: Option<u32>,
    pub subject: PodSet,
    pub ingress: Vec<AdminRule>,
    pub egress: Vec<AdminRule>,
}

impl AdminPolicy {
    /// The order of evaluation within a tier: priority, then name, then kind.
    pub fn order_key(&self) -> (u32, &str, AdminKind) {
        (self.priority.unwrap_or(u32::MAX), &self.name, self.kind)
    }

    pub fn rules(&self, direction: crate::model::Direction) -> &[AdminRule] {
        match direction {
            crate::model::Direction::Ingress => &self.ingress,
            crate::model::Direction::Egress => &self.egress,
        }
    }
}

/// Pods in namespaces: `namespaces: S` is `{namespaces: S, pods: everything}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSet {
    pub namespaces: Selector,
    pub pods: Selector,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRule {
    pub name: Option<String>,
    pub action: Action,
    pub peers: Vec<AdminPeer>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<AdminPort>>,
}

impl AdminRule {
    /// A peer sets no field: the rule fails closed.
    pub fn fails_closed(&self) -> bool {
        self.peers.iter().any(|p| matches!(p, AdminPeer::Unset))
    }

    /// What the rule does in effect: a failing-closed Accept matches nothing,
    /// a failing-closed Deny or Pass denies everything.
    pub fn effective_action(&self) -> Action {
        if self.fails_closed() && self.action == Action::Pass {
            Action::Deny
        } else {
            self.action
        }
    }

    pub fn has_domain_names(&self) -> bool {
        self.peers
            .iter()
            .any(|p| matches!(p, AdminPeer::DomainNames(_)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminPeer {
    /// Pods (never host-network ones) of matching namespaces.
    Pods(PodSet),
    /// Addresses in these CIDRs, pod IPs included.
    Networks(Vec<IpNet>),
    /// The addresses (`status.addresses`) of matching Nodes.
    Nodes(Selector),
    /// Domain names: no address matches them in a static analysis.
    DomainNames(Vec<String>),
    /// A peer with no field set (an unknown field of a newer API): fails
    /// closed.
    Unset,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminPort {
    /// `start..=end` of one protocol (`start == end` for one port).
    Range {
        protocol: Protocol,
        start: u16,
        end: u16,
    },
    /// A container port of the destination pod, by name, with the protocol
    /// the container port declares.
    Named(String),
}

/// A Node: what `nodes` peers match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub labels: crate::labels::Labels,
    /// The IP addresses among `status.addresses`.
    pub addresses: Vec<IpAddr>,
}

// ---------------------------------------------------------------------------
// Lowering.

struct Cx<'a> {
    at: &'a dyn Locate,
    kind: AdminKind,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn report(&mut self, code: Code, path: &[Seg], message: String, help: impl Into<String>) {
        self.diags.push(
            Diagnostic::new(code, message)
                .with_help(help)
                .at_location(self.at.locate(path)),
        );
    }

    fn has_errors(&self) -> bool {
        self.diags
            .iter()
            .any(|d| d.severity == crate::diag::Severity::Error)
    }

    fn selector(&mut self, s: Option<&LabelSelector>, at: &[Seg]) -> Selector {
        let mut c = Collector {
            at: self.at,
            diags: &mut self.diags,
        };
        netpol::selector(&mut c, s, at)
    }

    /// Check a list's length against `min..=max`; `empty_help` says what
    /// to do about an empty list.
    fn length(
        &mut self,
        len: usize,
        (min, max): (usize, usize),
        path: &[Seg],
        what: &str,
        empty_help: &str,
    ) {
        if len < min {
            self.report(
                Code::InvalidLength,
                path,
                format!("`{what}` is empty"),
                empty_help,
            );
        } else if len > max {
            self.report(
                Code::InvalidLength,
                path,
                format!("`{what}` has {len} items, more than the {max} the API allows"),
                format!(
                    "a {} allows at most {max} {what} entries; split the policy",
                    self.kind.as_str()
                ),
            );
        }
    }
}

fn p(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// What lowering one object gives: the policy when there is no error, and
/// every diagnostic (warnings too).
pub type Lowered = (Option<AdminPolicy>, Vec<Diagnostic>);

pub fn lower_cnp(cnp: &ClusterNetworkPolicy, at: &dyn Locate) -> Lowered {
    let mut cx = Cx {
        at,
        kind: AdminKind::ClusterNetworkPolicy,
        diags: Vec::new(),
    };
    let spec = &cnp.spec;
    let sp = vec![Seg::Key("spec")];
    let tier = match spec.tier.as_str() {
        "Admin" => Some(Tier::Admin),
        "Baseline" => Some(Tier::Baseline),
        other => {
            let help = match other.to_ascii_lowercase().as_str() {
                "admin" => "tiers are capitalized: write `Admin`".to_owned(),
                "baseline" => "tiers are capitalized: write `Baseline`".to_owned(),
                _ => "the tier is `Admin` (before NetworkPolicies) or `Baseline` (after them)"
                    .to_owned(),
            };
            cx.report(
                Code::UnknownTier,
                &p(&sp, [Seg::Key("tier")]),
                format!("unknown tier `{other}`"),
                help,
            );
            None
        }
    };
    let priority = priority(&mut cx, spec.priority, &p(&sp, [Seg::Key("priority")]));
    let subject = subject(&mut cx, &spec.subject, &p(&sp, [Seg::Key("subject")]));
    let ingress = rules(&mut cx, &as_specs(&spec.ingress), "ingress");
    let egress = rules(&mut cx, &as_specs(&spec.egress), "egress");
    finish(
        cx,
        cnp.metadata.name.clone(),
        tier,
        Some(priority),
        subject,
        ingress,
        egress,
    )
}

pub fn lower_anp(anp: &AdminNetworkPolicy, at: &dyn Locate) -> Lowered {
    let mut cx = Cx {
        at,
        kind: AdminKind::AdminNetworkPolicy,
        diags: Vec::new(),
    };
    let spec = &anp.spec;
    let sp = vec![Seg::Key("spec")];
    let priority = priority(&mut cx, spec.priority, &p(&sp, [Seg::Key("priority")]));
    let subject = subject(&mut cx, &spec.subject, &p(&sp, [Seg::Key("subject")]));
    let ingress = rules(&mut cx, &as_specs(&spec.ingress), "ingress");
    let egress = rules(&mut cx, &as_specs(&spec.egress), "egress");
    finish(
        cx,
        anp.metadata.name.clone(),
        Some(Tier::Admin),
        Some(priority),
        subject,
        ingress,
        egress,
    )
}

pub fn lower_banp(banp: &BaselineAdminNetworkPolicy, at: &dyn Locate) -> Lowered {
    let mut cx = Cx {
        at,
        kind: AdminKind::BaselineAdminNetworkPolicy,
        diags: Vec::new(),
    };
    let name = banp.metadata.name.clone().unwrap_or_default();
    if name != "default" {
        cx.report(
            Code::InvalidBaselineName,
            &[Seg::Key("metadata"), Seg::Key("name")],
            format!("a BaselineAdminNetworkPolicy must be named `default`, not `{name}`"),
            "there is one BaselineAdminNetworkPolicy per cluster, named `default`; for several baseline policies use ClusterNetworkPolicy with `tier: Baseline`",
        );
    }
    let spec = &banp.spec;
    let sp = vec![Seg::Key("spec")];
    let subject = subject(&mut cx, &spec.subject, &p(&sp, [Seg::Key("subject")]));
    let ingress = rules(&mut cx, &as_specs(&spec.ingress), "ingress");
    let egress = rules(&mut cx, &as_specs(&spec.egress), "egress");
    finish(
        cx,
        Some(name),
        Some(Tier::Baseline),
        None,
        subject,
        ingress,
        egress,
    )
}

fn finish(
    cx: Cx<'_>,
    name: Option<String>,
    tier: Option<Tier>,
    priority: Option<u32>,
    subject: Option<PodSet>,
    ingress: Vec<AdminRule>,
    egress: Vec<AdminRule>,
) -> Lowered {
    if cx.has_errors() {
        return (None, cx.diags);
    }
    let (Some(tier), Some(subject)) = (tier, subject) else {
        return (None, cx.diags);
    };
    let policy = AdminPolicy {
        kind: cx.kind,
        name: name.unwrap_or_default(),
        tier,
        priority,
        subject,
        ingress,
        egress,
    };
    (Some(policy), cx.diags)
}

fn priority(cx: &mut Cx<'_>, n: i64, at: &[Seg]) -> u32 {
    match u32::try_from(n) {
        Ok(v) if v <= 1000 => v,
        _ => {
            cx.report(
                Code::InvalidPriority,
                at,
                format!("priority {n} is outside 0-1000"),
                "priorities run from 0 (evaluated first) to 1000",
            );
            0
        }
    }
}

fn subject(cx: &mut Cx<'_>, s: &SubjectSpec, at: &[Seg]) -> Option<PodSet> {
    match (&s.namespaces, &s.pods) {
        (Some(ns), None) => Some(PodSet {
            namespaces: cx.selector(Some(ns), &p(at, [Seg::Key("namespaces")])),
            pods: Selector::everything(),
        }),
        (None, Some(pods)) => pod_set(cx, pods, &p(at, [Seg::Key("pods")])),
        (Some(_), Some(_)) => {
            cx.report(
                Code::InvalidSubject,
                at,
                "the subject sets both `namespaces` and `pods`".to_owned(),
                "set exactly one: `namespaces` selects every pod of the namespaces, `pods` narrows them with a podSelector",
            );
            None
        }
        (None, None) => {
            cx.report(
                Code::InvalidSubject,
                at,
                "the subject sets neither `namespaces` nor `pods`".to_owned(),
                "set exactly one, e.g. `subject: {namespaces: {}}` for every pod",
            );
            None
        }
    }
}

fn pod_set(cx: &mut Cx<'_>, pods: &NamespacedPodSpec, at: &[Seg]) -> Option<PodSet> {
    if pods.namespace_selector.is_none() && cx.kind != AdminKind::ClusterNetworkPolicy {
        cx.report(
            Code::WrongType,
            at,
            "missing field `namespaceSelector`".to_owned(),
            "v1alpha1 needs `namespaceSelector` next to `podSelector`; `{}` selects every namespace",
        );
        return None;
    }
    Some(PodSet {
        namespaces: cx.selector(
            pods.namespace_selector.as_ref(),
            &p(at, [Seg::Key("namespaceSelector")]),
        ),
        pods: cx.selector(Some(&pods.pod_selector), &p(at, [Seg::Key("podSelector")])),
    })
}

/// The rules of `spec.<direction>`.
fn rules(cx: &mut Cx<'_>, list: &[&dyn RuleSpec], direction: &'static str) -> Vec<AdminRule> {
    let at = [Seg::Key("spec"), Seg::Key(direction)];
    cx.length(list.len(), (0, cx.kind.max_items()), &at, direction, "");
    list.iter()
        .enumerate()
        .filter_map(|(i, r)| rule(cx, *r, &p(&at, [Seg::Index(i)])))
        .collect()
}

fn rule(cx: &mut Cx<'_>, r: &dyn RuleSpec, at: &[Seg]) -> Option<AdminRule> {
    let errors_before = cx.diags.len();
    if let Some(name) = r.name()
        && name.chars().count() > 100
    {
        cx.report(
            Code::InvalidLength,
            &p(at, [Seg::Key("name")]),
            format!("the rule name is {} characters long", name.chars().count()),
            "a rule name is at most 100 characters",
        );
    }
    let action_path = p(at, [Seg::Key("action")]);
    let action = match (cx.kind, r.action()) {
        (AdminKind::ClusterNetworkPolicy, "Accept") => Some(Action::Accept),
        (AdminKind::AdminNetworkPolicy | AdminKind::BaselineAdminNetworkPolicy, "Allow") => {
            Some(Action::Accept)
        }
        (_, "Deny") => Some(Action::Deny),
        (AdminKind::ClusterNetworkPolicy | AdminKind::AdminNetworkPolicy, "Pass") => {
            Some(Action::Pass)
        }
        (kind, other) => {
            let allowed = match kind {
                AdminKind::ClusterNetworkPolicy => "`Accept`, `Deny` or `Pass`",
                AdminKind::AdminNetworkPolicy => "`Allow`, `Deny` or `Pass`",
                AdminKind::BaselineAdminNetworkPolicy => "`Allow` or `Deny`",
            };
            let hint = match (kind, other) {
                (AdminKind::ClusterNetworkPolicy, "Allow") => {
                    " (ClusterNetworkPolicy says `Accept` where AdminNetworkPolicy said `Allow`)"
                        .to_owned()
                }
                (
                    AdminKind::AdminNetworkPolicy | AdminKind::BaselineAdminNetworkPolicy,
                    "Accept",
                ) => " (v1alpha1 says `Allow`; `Accept` is ClusterNetworkPolicy's word)".to_owned(),
                (AdminKind::BaselineAdminNetworkPolicy, "Pass") => {
                    " (the baseline is the last tier: there is nothing to pass to)".to_owned()
                }
                _ => String::new(),
            };
            cx.report(
                Code::UnknownAction,
                &action_path,
                format!("unknown action `{other}` for a {}", kind.as_str()),
                format!("the action is {allowed}{hint}"),
            );
            None
        }
    };

    let peers_spec = r.peers();
    let peers_path = p(at, [Seg::Key(r.peers_key())]);
    cx.length(
        peers_spec.len(),
        (1, cx.kind.max_items()),
        &peers_path,
        r.peers_key(),
        "a rule needs at least one peer; `namespaces: {}` matches every pod",
    );
    let mut peers = Vec::new();
    for (i, peer_spec) in peers_spec.iter().enumerate() {
        if let Some(peer) = peer(cx, peer_spec, &p(&peers_path, [Seg::Index(i)])) {
            peers.push(peer);
        }
    }
    if let Some(a) = action
        && a != Action::Accept
        && let Some(i) = peers
            .iter()
            .position(|p| matches!(p, AdminPeer::DomainNames(_)))
    {
        cx.report(
            Code::InvalidDomainNames,
            &p(&peers_path, [Seg::Index(i), Seg::Key("domainNames")]),
            format!("`domainNames` in a rule whose action is `{}`", r.action()),
            format!(
                "domainNames are only supported in {} rules: allow-list the domains, then deny the rest with a later rule",
                cx.kind.accept_word()
            ),
        );
    }

    let ports = match r.ports() {
        PortsSpec::V2(list) => list.map(|l| protocols(cx, l, &p(at, [Seg::Key("protocols")]))),
        PortsSpec::V1(list) => list.map(|l| v1_ports(cx, l, &p(at, [Seg::Key("ports")]))),
    };
    if let Some(ports) = &ports
        && r.peers_key() == "to"
        && ports.iter().any(|p| matches!(p, AdminPort::Named(_)))
        && let Some(i) = peers.iter().position(|p| {
            matches!(
                p,
                AdminPeer::Networks(_) | AdminPeer::Nodes(_) | AdminPeer::DomainNames(_)
            )
        })
    {
        cx.report(
            Code::NamedPortWithoutPods,
            &p(&peers_path, [Seg::Index(i)]),
            "a named port with a networks, nodes or domainNames peer".to_owned(),
            "named ports belong to pods; use port numbers, or move the non-pod peers to a rule of their own",
        );
    }
    let errors = cx.diags[errors_before..]
        .iter()
        .any(|d| d.severity == crate::diag::Severity::Error);
    if errors {
        return None;
    }
    Some(AdminRule {
        name: r.name().map(str::to_owned),
        action: action?,
        peers,
        ports,
    })
}

fn peer(cx: &mut Cx<'_>, s: &EgressPeerSpec, at: &[Seg]) -> Option<AdminPeer> {
    let set: Vec<&'static str> = [
        ("namespaces", s.namespaces.is_some()),
        ("pods", s.pods.is_some()),
        ("nodes", s.nodes.is_some()),
        ("networks", s.networks.is_some()),
        ("domainNames", s.domain_names.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| k)
    .collect();
    match set.as_slice() {
        [] => {
            cx.report(
                Code::EmptyPeer,
                at,
                "the peer sets no field; it fails closed".to_owned(),
                "an Accept/Allow rule with this peer matches nothing, a Deny or Pass rule denies everything; set one of the peer's fields",
            );
            Some(AdminPeer::Unset)
        }
        [_] => {
            if let Some(ns) = &s.namespaces {
                return Some(AdminPeer::Pods(PodSet {
                    namespaces: cx.selector(Some(ns), &p(at, [Seg::Key("namespaces")])),
                    pods: Selector::everything(),
                }));
            }
            if let Some(pods) = &s.pods {
                return pod_set(cx, pods, &p(at, [Seg::Key("pods")])).map(AdminPeer::Pods);
            }
            if let Some(nodes) = &s.nodes {
                return Some(AdminPeer::Nodes(
                    cx.selector(Some(nodes), &p(at, [Seg::Key("nodes")])),
                ));
            }
            if let Some(networks) = &s.networks {
                return networks_peer(cx, networks, &p(at, [Seg::Key("networks")]));
            }
            let names = s.domain_names.as_deref().unwrap_or_default();
            domain_names(cx, names, &p(at, [Seg::Key("domainNames")]))
        }
        many => {
            cx.report(
                Code::InvalidPeer,
                at,
                format!(
                    "the peer sets {}; a peer sets exactly one field",
                    many.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                "split it into several peers (list entries), which are ORed",
            );
            None
        }
    }
}

fn networks_peer(cx: &mut Cx<'_>, list: &[String], at: &[Seg]) -> Option<AdminPeer> {
    cx.length(
        list.len(),
        (1, 25),
        at,
        "networks",
        "list at least one CIDR",
    );
    let mut nets = Vec::new();
    let mut ok = true;
    for (i, s) in list.iter().enumerate() {
        let here = p(at, [Seg::Index(i)]);
        let embedded_v4 = s.contains(':') && s.contains('.');
        match s.parse::<IpNet>() {
            Ok(net) if !embedded_v4 => nets.push(net.trunc()),
            _ => {
                ok = false;
                let help = if s.parse::<IpAddr>().is_ok() {
                    "add a prefix length, e.g. `/32` for one IPv4 address or `/128` for IPv6"
                } else if embedded_v4 {
                    "IPv4 addresses embedded in IPv6 are not accepted; write the IPv4 network"
                } else {
                    "write an IPv4 or IPv6 network in CIDR notation, e.g. `10.0.0.0/16`"
                };
                cx.report(
                    Code::InvalidCidr,
                    &here,
                    format!("invalid CIDR `{s}`"),
                    help,
                );
            }
        }
    }
    nets.sort();
    nets.dedup();
    ok.then_some(AdminPeer::Networks(nets))
}

fn domain_names(cx: &mut Cx<'_>, list: &[String], at: &[Seg]) -> Option<AdminPeer> {
    cx.length(
        list.len(),
        (1, 25),
        at,
        "domainNames",
        "list at least one domain name",
    );
    let mut ok = true;
    for (i, name) in list.iter().enumerate() {
        if let Err(why) = check_domain_name(name) {
            ok = false;
            cx.report(
                Code::InvalidDomainNames,
                &p(at, [Seg::Index(i)]),
                format!("`{name}` is not a domain name: {why}"),
                "write a name such as `api.example.com`, or `*.example.com` for its subdomains",
            );
        }
    }
    ok.then(|| AdminPeer::DomainNames(list.to_vec()))
}

/// The API's pattern: an optional `*.` prefix, then two or more labels of
/// letters, digits, `-` and `_` (not at either end), an optional final dot.
pub fn check_domain_name(name: &str) -> Result<(), &'static str> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() < 2 {
        return Err("it needs at least two labels (`example.com`)");
    }
    for l in labels {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let first_last_ok = l
            .chars()
            .next()
            .zip(l.chars().last())
            .is_some_and(|(a, b)| a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric());
        if l.is_empty() || !l.chars().all(ok_char) || !first_last_ok {
            return Err(
                "labels are letters, digits, `-` and `_`, beginning and ending with a letter or digit; `*` only as a whole first label",
            );
        }
    }
    Ok(())
}

fn protocols(cx: &mut Cx<'_>, list: &[ProtocolSpec], at: &[Seg]) -> Vec<AdminPort> {
    cx.length(
        list.len(),
        (1, 25),
        at,
        "protocols",
        "leave `protocols` out to match every port and protocol",
    );
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let here = p(at, [Seg::Index(i)]);
        let set: Vec<(&'static str, Option<Protocol>, Option<&TransportSpec>)> = [
            ("tcp", Some(Protocol::Tcp), e.tcp.as_ref()),
            ("udp", Some(Protocol::Udp), e.udp.as_ref()),
            ("sctp", Some(Protocol::Sctp), e.sctp.as_ref()),
        ]
        .into_iter()
        .filter(|(_, _, t)| t.is_some())
        .chain(
            e.destination_named_port
                .as_ref()
                .map(|_| ("destinationNamedPort", None, None)),
        )
        .collect();
        match set.as_slice() {
            [] => cx.report(
                Code::InvalidProtocolEntry,
                &here,
                "the protocols entry sets no field".to_owned(),
                "set one of `tcp`, `udp`, `sctp` (with a `destinationPort`) or `destinationNamedPort`; leave `protocols` out to match every port",
            ),
            [(key, Some(proto), Some(t))] => {
                let tp = p(&here, [Seg::Key(key)]);
                match &t.destination_port {
                    None => cx.report(
                        Code::InvalidProtocolEntry,
                        &tp,
                        format!("`{key}` has no `destinationPort`"),
                        "give `destinationPort: {number: N}` or `destinationPort: {range: {start: A, end: B}}`",
                    ),
                    Some(port) => {
                        let pp = p(&tp, [Seg::Key("destinationPort")]);
                        match (port.number, &port.range) {
                            (Some(n), None) => {
                                if let Some(n) = port_number(cx, n, &p(&pp, [Seg::Key("number")])) {
                                    out.push(AdminPort::Range {
                                        protocol: *proto,
                                        start: n,
                                        end: n,
                                    });
                                }
                            }
                            (None, Some(r)) => {
                                if let Some((start, end)) =
                                    range(cx, r.start, r.end, &p(&pp, [Seg::Key("range")]))
                                {
                                    out.push(AdminPort::Range {
                                        protocol: *proto,
                                        start,
                                        end,
                                    });
                                }
                            }
                            (n, _) => cx.report(
                                Code::InvalidProtocolEntry,
                                &pp,
                                if n.is_some() {
                                    "`destinationPort` sets both `number` and `range`".to_owned()
                                } else {
                                    "`destinationPort` sets neither `number` nor `range`".to_owned()
                                },
                                "set exactly one: `number: N` or `range: {start: A, end: B}`",
                            ),
                        }
                    }
                }
            }
            [_] => {
                let name = e.destination_named_port.as_deref().unwrap_or_default();
                if let Some(n) = named_port(cx, name, &p(&here, [Seg::Key("destinationNamedPort")]))
                {
                    out.push(n);
                }
            }
            many => cx.report(
                Code::InvalidProtocolEntry,
                &here,
                format!(
                    "the protocols entry sets {}; an entry sets exactly one",
                    many.iter()
                        .map(|(k, _, _)| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                "write one list entry per protocol",
            ),
        }
    }
    out
}

fn v1_ports(cx: &mut Cx<'_>, list: &[AnpPortSpec], at: &[Seg]) -> Vec<AdminPort> {
    cx.length(
        list.len(),
        (1, 100),
        at,
        "ports",
        "leave `ports` out to match every port and protocol",
    );
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let here = p(at, [Seg::Index(i)]);
        let set: Vec<&'static str> = [
            ("portNumber", e.port_number.is_some()),
            ("namedPort", e.named_port.is_some()),
            ("portRange", e.port_range.is_some()),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| k)
        .collect();
        if set.len() != 1 {
            cx.report(
                Code::InvalidProtocolEntry,
                &here,
                if set.is_empty() {
                    "the ports entry sets no field".to_owned()
                } else {
                    format!(
                        "the ports entry sets {}; an entry sets exactly one",
                        set.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    )
                },
                "set one of `portNumber`, `namedPort` or `portRange`; leave `ports` out to match every port",
            );
            continue;
        }
        if let Some(pn) = &e.port_number {
            let pp = p(&here, [Seg::Key("portNumber")]);
            let proto = protocol(cx, pn.protocol.as_deref(), &p(&pp, [Seg::Key("protocol")]));
            let n = port_number(cx, pn.port, &p(&pp, [Seg::Key("port")]));
            if let (Some(protocol), Some(n)) = (proto, n) {
                out.push(AdminPort::Range {
                    protocol,
                    start: n,
                    end: n,
                });
            }
        } else if let Some(r) = &e.port_range {
            let pp = p(&here, [Seg::Key("portRange")]);
            let proto = protocol(cx, r.protocol.as_deref(), &p(&pp, [Seg::Key("protocol")]));
            let bounds = range(cx, r.start, r.end, &pp);
            if let (Some(protocol), Some((start, end))) = (proto, bounds) {
                out.push(AdminPort::Range {
                    protocol,
                    start,
                    end,
                });
            }
        } else if let Some(name) = &e.named_port
            && let Some(n) = named_port(cx, name, &p(&here, [Seg::Key("namedPort")]))
        {
            out.push(n);
        }
    }
    out
}

fn protocol(cx: &mut Cx<'_>, s: Option<&str>, at: &[Seg]) -> Option<Protocol> {
    match s {
        None => Some(Protocol::Tcp),
        Some(s) => Protocol::parse(s).or_else(|| {
            cx.report(
                Code::UnknownProtocol,
                at,
                format!("unknown protocol `{s}`"),
                "use `TCP`, `UDP` or `SCTP` (upper case)",
            );
            None
        }),
    }
}

fn port_number(cx: &mut Cx<'_>, n: i64, at: &[Seg]) -> Option<u16> {
    match u16::try_from(n) {
        Ok(v) if v >= 1 => Some(v),
        _ => {
            cx.report(
                Code::PortOutOfRange,
                at,
                format!("port {n} is out of range"),
                "ports are numbers from 1 to 65535",
            );
            None
        }
    }
}

fn range(cx: &mut Cx<'_>, start: i64, end: i64, at: &[Seg]) -> Option<(u16, u16)> {
    let s = port_number(cx, start, &p(at, [Seg::Key("start")]));
    let e = port_number(cx, end, &p(at, [Seg::Key("end")]));
    let (s, e) = (s?, e?);
    if s >= e {
        cx.report(
            Code::InvalidPortRange,
            &p(at, [Seg::Key("end")]),
            format!("the range {s}-{e} does not have start < end"),
            if s == e {
                "for a single port use `number` (or `portNumber`) instead of a range"
            } else {
                "write the lower port as `start` and the higher as `end`"
            },
        );
        return None;
    }
    Some((s, e))
}

fn named_port(cx: &mut Cx<'_>, name: &str, at: &[Seg]) -> Option<AdminPort> {
    match netpol::check_port_name(name) {
        Ok(()) => Some(AdminPort::Named(name.to_owned())),
        Err(why) => {
            cx.report(
                Code::PortOutOfRange,
                at,
                format!("invalid named port `{name}`: {why}"),
                "a named port is an IANA service name (e.g. `http`) declared by a container",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_follow_the_api_pattern() {
        for ok in [
            "kubernetes.io",
            "*.kubernetes.io",
            "blog.kubernetes.io.",
            "a_b.example.com",
        ] {
            assert!(check_domain_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "localhost",
            "*.com",
            "foo.*.com",
            "-a.example.com",
            "a..b",
            "*example.com",
            "",
        ] {
            assert!(check_domain_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failing_closed_pass_denies() {
        let rule = AdminRule {
            name: None,
            action: Action::Pass,
            peers: vec![AdminPeer::Unset],
            ports: None,
        };
        assert!(rule.fails_closed());
        assert_eq!(rule.effective_action(), Action::Deny);
    }
}
