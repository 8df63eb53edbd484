//! The decision tables: the one contract between the compiler, the verifier
//! and the runtime.
//!
//! This module has no parser types: it depends on serde, `ipnet` and the plain
//! enums of `model` only, so it could move into its own crate unchanged.
//!
//! # Format (`ambit.tables/v1`)
//!
//! A JSON object, byte-for-byte deterministic for the same input semantics
//! (whatever the order of files and documents):
//!
//! | field | meaning |
//! | --- | --- |
//! | `format` | `"ambit.tables/v1"`; readers refuse other values |
//! | `input_hash` | `sha256:<hex>` of the canonical input semantics (namespaces, workloads, policy IR) |
//! | `namespaces` | `[{name, labels}]`, sorted by name; labels include `kubernetes.io/metadata.name` |
//! | `classes` | equivalence classes of workloads: `[{namespace, labels, service_account, ports}]`; workloads of one class are decided identically |
//! | `workloads` | `[{namespace, name, kind, class, ips}]`, sorted by namespace/name |
//! | `policies` | `[{kind, namespace, name, tier?, priority?}]`: what `rules` point back to; admin policies are cluster-scoped (`namespace` empty) and carry their tier and priority |
//! | `rules` | `[{policy, direction, index, peers, ports, action?, name?, fail_closed?, domain_names?}]`: every rule of every policy, resolved against the classes; admin rules carry their `action` (`accept`, `deny`, `pass`) |
//! | `ingress`, `egress` | one entry per class: `{admin, policies, rules, baseline}`: the Admin-tier rules that apply, in evaluation order; the NetworkPolicies that isolate the class in that direction (empty: not isolated) and their rules that may admit a flow; the Baseline-tier rules, in evaluation order |
//! | `authz` | the authorization layer (Istio): `{trust, root_namespace, policies, peer_authentications, classes}`; `policies` are the lowered AuthorizationPolicies (see [`crate::authz`]); `classes` has one entry per class: `{mesh, principal, policies, waypoint_policies, mtls}` (mesh mode `none`/`ambient`/`sidecar`, identity, the policies that apply, those attached to its waypoint, the effective mTLS mode and port overrides) |
//!
//! A rule's `peers` is `{all, classes, ip_classes, ip_blocks}`: `all` admits
//! every remote endpoint; `classes` are the classes its selectors match;
//! `ip_classes` those whose pod IPs an `ipBlock` matches; `ip_blocks` match
//! addresses outside the inventory. `ports` is `null` for every port, else a
//! list of `{any_port: P}`, `{range: {protocol, start, end}}` or
//! `{named: {protocol, name}}`; a named port is looked up in the destination
//! class's `ports` (name and protocol must both match). Admin rules use
//! `{named_any_protocol: {name}}`: the container port's protocol decides.
//! An admin rule that fails closed has `all` peers and every port (a Deny)
//! or no peers (an Accept); `networks` are `ip_blocks`, `nodes` the nodes'
//! addresses as host blocks.
//!
//! # Deciding
//!
//! Each direction goes through the tiers: the first matching rule of `admin`
//! decides (accept or deny; pass goes on); then, if `policies` is not empty,
//! one of `rules` must admit the flow; else the first matching rule of
//! `baseline` decides (deny denies); else the flow is allowed. A flow from
//! `S` to `D` on `port/protocol` is allowed when `S`'s egress and `D`'s
//! ingress both allow it, and (TCP only) `D`'s authorization admits it
//! in the view asked for ([`Tables::decide`]: the L4 view the agent
//! enforces; [`Tables::decide_full`]: an L7 proxy's). A workload reaching
//! itself (a Pod to itself) is always allowed. [`Tables::decide`] does this
//! with no allocation.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::admin::{Action, Tier};
use crate::authz::{ExtAuthz, MeshMode, Note, Request, Source, View};
use crate::labels::Labels;
use crate::model::{ContainerPort, Direction, PortSpec, Protocol, WorkloadKind, ip_block_contains};

pub const FORMAT: &str = "ambit.tables/v1";

pub type ClassId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tables {
    pub format: String,
    pub input_hash: String,
    pub namespaces: Vec<NamespaceEntry>,
    pub classes: Vec<Class>,
    pub workloads: Vec<WorkloadEntry>,
    pub policies: Vec<PolicyEntry>,
    pub rules: Vec<TableRule>,
    pub ingress: Vec<Isolation>,
    pub egress: Vec<Isolation>,
    /// The authorization layer (Istio): see [`crate::authz`].
    #[serde(default)]
    pub authz: crate::authz::AuthzTables,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceEntry {
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    pub namespace: String,
    pub labels: Labels,
    pub service_account: String,
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEntry {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    pub class: ClassId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEntry {
    pub kind: String,
    /// Empty for cluster-scoped policies.
    pub namespace: String,
    pub name: String,
    /// The tier of an admin policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// The priority of an admin policy (none for the
    /// BaselineAdminNetworkPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRule {
    pub policy: u32,
    pub direction: Direction,
    pub index: u32,
    pub peers: Peers,
    pub ports: Option<Vec<PortSpec>>,
    /// What an admin policy's rule does when it matches (a failing-closed
    /// Pass is a Deny); `None` for a NetworkPolicy rule, which admits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The rule's `name`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A peer of the rule sets no field: the rule fails closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_closed: bool,
    /// The rule has `domainNames` peers, which match no address here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub domain_names: bool,
}

impl TableRule {
    /// `ingress[0]`, or `ingress[0] (allow-dns)` for a named rule.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{}[{}] ({n})", self.direction.as_str(), self.index),
            None => format!("{}[{}]", self.direction.as_str(), self.index),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Peers {
    pub all: bool,
    pub classes: ClassSet,
    pub ip_classes: ClassSet,
    pub ip_blocks: Vec<IpBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpBlock {
    pub cidr: IpNet,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

impl Peers {
    fn admit(&self, remote: Remote) -> bool {
        self.all
            || match remote {
                Remote::Class(c) => self.classes.contains(c) || self.ip_classes.contains(c),
                Remote::Ip(ip) => self.ip_blocks.iter().any(|b| b.contains(ip)),
            }
    }
}

impl IpBlock {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip_block_contains(&self.cidr, &self.except, ip)
    }
}

/// What decides one direction of a class: the Admin-tier rules in
/// evaluation order, the NetworkPolicies isolating it and their rules, the
/// Baseline-tier rules in evaluation order. No NetworkPolicy: the class is not
/// isolated and the Baseline tier (then default allow) decides what the Admin
/// tier leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Isolation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<u32>,
    pub policies: Vec<u32>,
    pub rules: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<u32>,
}

impl Isolation {
    pub fn isolated(&self) -> bool {
        !self.policies.is_empty()
    }
}

/// A set of classes: a bitset in memory, a sorted list of ids in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassSet {
    words: Vec<u64>,
}

impl ClassSet {
    pub fn insert(&mut self, c: ClassId) {
        let (w, b) = (c as usize / 64, c % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    pub fn contains(&self, c: ClassId) -> bool {
        self.words
            .get(c as usize / 64)
            .is_some_and(|w| w & (1 << (c % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Add every class of `other`.
    pub fn union_with(&mut self, other: &ClassSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Some class is in both sets.
    pub fn intersects(&self, other: &ClassSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = ClassId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| (i * 64 + b) as ClassId)
        })
    }
}

impl Serialize for ClassSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ClassSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<ClassId>::deserialize(d)?;
        let mut set = ClassSet::default();
        for id in ids {
            if id > 10_000_000 {
                return Err(serde::de::Error::custom("class id out of range"));
            }
            set.insert(id);
        }
        Ok(set)
    }
}

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A workload of the inventory, by index into `workloads`.
    Workload(u32),
    /// An address outside the inventory.
    Ip(IpAddr),
}

/// A remote end as a rule sees it: a workload of a class, or an address.
#[derive(Debug, Clone, Copy)]
pub enum Remote {
    Class(ClassId),
    Ip(IpAddr),
}

/// Why one direction allowed or denied a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The side was not checked (the endpoint is an address, not a workload).
    NotApplicable,
    /// No tier decided: no NetworkPolicy isolates the workload in this
    /// direction and no admin rule matched (default allow).
    NotIsolated,
    /// These NetworkPolicy rules admit the flow.
    Allowed(Vec<u32>),
    /// These NetworkPolicies isolate the workload and none of their rules
    /// admits it.
    Denied(Vec<u32>),
    /// An Admin- or Baseline-tier rule matched and decided.
    Rule { rule: u32, allows: bool },
}

impl Verdict {
    pub fn allows(&self) -> bool {
        match self {
            Verdict::Denied(_) => false,
            Verdict::Rule { allows, .. } => *allows,
            _ => true,
        }
    }
}

/// One direction's decision: the verdict, and the admin rules met on the way
/// that did not decide it (Pass rules that matched, domainNames rules that
/// cannot match), in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideExplanation {
    pub verdict: Verdict,
    pub trail: Vec<u32>,
}

/// A decision with what made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub allowed: bool,
    /// The flow is a pod reaching itself: allowed whatever the policies say.
    pub self_traffic: bool,
    pub egress: Verdict,
    pub ingress: Verdict,
    /// Pass and domainNames rules met on the source's egress side.
    pub egress_trail: Vec<u32>,
    /// Pass and domainNames rules met on the destination's ingress side.
    pub ingress_trail: Vec<u32>,
}

/// Errors of reading a table file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("not a decision table: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported table format `{0}` (this ambit reads `{FORMAT}`)")]
    Format(String),
    #[error("inconsistent table: {0}")]
    Inconsistent(String),
}

impl Tables {
    /// Parse and check a table file.
    pub fn from_json(bytes: &[u8]) -> Result<Tables, TableError> {
        let t: Tables = serde_json::from_slice(bytes)?;
        if t.format != FORMAT {
            return Err(TableError::Format(t.format));
        }
        t.check()?;
        Ok(t)
    }

    /// Check the cross-references, so that lookups never index out of bounds.
    pub fn check(&self) -> Result<(), TableError> {
        let bad = |m: &str| Err(TableError::Inconsistent(m.to_owned()));
        let n = self.classes.len();
        if self.ingress.len() != n || self.egress.len() != n {
            return bad("ingress and egress need one entry per class");
        }
        if self.workloads.iter().any(|w| w.class as usize >= n) {
            return bad("a workload names a class that does not exist");
        }
        for r in &self.rules {
            if r.policy as usize >= self.policies.len() {
                return bad("a rule names a policy that does not exist");
            }
            if r.action.is_some() != self.policies[r.policy as usize].tier.is_some() {
                return bad("a rule's action does not fit its policy's kind");
            }
            if r.peers
                .classes
                .iter()
                .chain(r.peers.ip_classes.iter())
                .any(|c| c as usize >= n)
            {
                return bad("a rule names a class that does not exist");
            }
        }
        let a = &self.authz;
        if a.classes.len() != n {
            return bad("the authorization layer needs one entry per class");
        }
        for c in &a.classes {
            if c.policies
                .iter()
                .chain(&c.waypoint_policies)
                .any(|&p| p as usize >= a.policies.len())
                || c.mtls
                    .from
                    .iter()
                    .chain(c.mtls.ports.iter().map(|(_, _, p)| p))
                    .any(|&p| p as usize >= a.peer_authentications.len())
            {
                return bad("an authorization entry names a policy that does not exist");
            }
        }
        for iso in self.ingress.iter().chain(&self.egress) {
            let tiered = |ids: &[u32], tier: Tier| {
                ids.iter().all(|&r| {
                    self.rules
                        .get(r as usize)
                        .is_some_and(|rule| self.policies[rule.policy as usize].tier == Some(tier))
                })
            };
            if !tiered(&iso.admin, Tier::Admin) || !tiered(&iso.baseline, Tier::Baseline) {
                return bad("a tier entry names a rule that does not exist or is of another tier");
            }
            if iso.rules.iter().any(|&r| {
                self.rules
                    .get(r as usize)
                    .is_some_and(|r| r.action.is_some())
            }) {
                return bad("a NetworkPolicy entry names an admin rule");
            }
            if iso.rules.iter().any(|&r| r as usize >= self.rules.len())
                || iso
                    .policies
                    .iter()
                    .any(|&p| p as usize >= self.policies.len())
            {
                return bad("an isolation entry names a rule or policy that does not exist");
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("tables serialize to JSON");
        s.push('\n');
        s
    }

    /// Index of a workload by namespace and name.
    pub fn workload_index(&self, namespace: &str, name: &str) -> Option<u32> {
        self.workloads
            .binary_search_by(|w| (w.namespace.as_str(), w.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| i as u32)
    }

    /// Is the connection allowed by what an L4 enforcer applies: the
    /// NetworkPolicy layer and the L4 view of authorization (what ztunnel
    /// and the ambit agent enforce)? Allocation-free.
    pub fn decide(&self, from: Endpoint, to: Endpoint, protocol: Protocol, port: u16) -> bool {
        self.decide_network(from, to, protocol, port)
            && (self.is_self(from, to)
                || self.authorize(
                    from,
                    to,
                    protocol,
                    port,
                    None,
                    ExtAuthz::Unknown,
                    View::L4,
                    None,
                ))
    }

    /// The full decision of an L7-capable enforcer for a connection (and its
    /// HTTP request, when given).
    pub fn decide_full(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
        request: Option<&Request>,
        ext_authz: ExtAuthz,
    ) -> bool {
        self.decide_network(from, to, protocol, port)
            && (self.is_self(from, to)
                || self.authorize(
                    from,
                    to,
                    protocol,
                    port,
                    request,
                    ext_authz,
                    View::Full,
                    None,
                ))
    }

    /// The NetworkPolicy layer alone: the source's egress and the
    /// destination's ingress. Allocation-free.
    pub fn decide_network(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> bool {
        self.decide_side(0, from, to, protocol, port)
            && self.decide_side(1, from, to, protocol, port)
    }

    /// The source's egress alone: what an enforcer on the source's side
    /// checks before a flow leaves it. Allocation-free.
    pub fn decide_egress(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> bool {
        self.decide_side(0, from, to, protocol, port)
    }

    /// The destination's ingress alone (through the tiers). Allocation-free.
    pub fn decide_ingress(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> bool {
        self.decide_side(1, from, to, protocol, port)
    }

    /// One side of [`Tables::sides`] (0: egress, 1: ingress); a pod
    /// reaching itself is allowed on both.
    fn decide_side(
        &self,
        side: usize,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> bool {
        self.is_self(from, to)
            || self.sides(from, to)[side]
                .is_none_or(|(iso, remote, dst)| self.side_allows(iso, remote, dst, protocol, port))
    }

    /// The authorization layer alone, in one view. Only TCP is proxied by the
    /// mesh: other protocols, and destinations outside the inventory, are not
    /// subject to it. `notes` receives what decided.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
        request: Option<&Request>,
        ext_authz: ExtAuthz,
        view: View,
        notes: Option<&mut Vec<Note>>,
    ) -> bool {
        let Endpoint::Workload(dw) = to else {
            return true;
        };
        if protocol != Protocol::Tcp {
            return true;
        }
        let dst = &self.workloads[dw as usize];
        let source = match from {
            Endpoint::Workload(sw) => {
                let w = &self.workloads[sw as usize];
                let c = &self.classes[w.class as usize];
                let a = &self.authz.classes[w.class as usize];
                Source {
                    mesh: a.mesh,
                    principal: a.principal.as_deref(),
                    namespace: Some(&c.namespace),
                    service_account: Some(&c.service_account),
                    ip: w.ips.first().copied(),
                }
            }
            Endpoint::Ip(ip) => Source {
                mesh: MeshMode::None,
                principal: None,
                namespace: None,
                service_account: None,
                ip: Some(ip),
            },
        };
        self.authz.authorize(
            &source,
            &self.authz.classes[dst.class as usize],
            dst.ips.first().copied(),
            port,
            request,
            ext_authz,
            view,
            notes,
        )
    }

    /// The decision and the rules or policies that made it.
    pub fn explain(
        &self,
        from: Endpoint,
        to: Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> Explanation {
        let [egress, ingress] = self.sides(from, to).map(|side| match side {
            None => SideExplanation {
                verdict: Verdict::NotApplicable,
                trail: Vec::new(),
            },
            Some((iso, remote, dst)) => self.verdict(iso, remote, dst, protocol, port),
        });
        let self_traffic = self.is_self(from, to);
        Explanation {
            allowed: self_traffic || (egress.verdict.allows() && ingress.verdict.allows()),
            self_traffic,
            egress: egress.verdict,
            ingress: ingress.verdict,
            egress_trail: egress.trail,
            ingress_trail: ingress.trail,
        }
    }

    /// What each side checks: the source's egress entry, then the
    /// destination's ingress entry, each with the remote end and the class
    /// whose named ports apply. `None` for an `ip:` end, which no policy
    /// selects.
    fn sides(
        &self,
        from: Endpoint,
        to: Endpoint,
    ) -> [Option<(&Isolation, Remote, Option<ClassId>)>; 2] {
        let dst_class = self.class_of(to);
        let egress = self
            .class_of(from)
            .map(|c| (&self.egress[c as usize], self.remote(to), dst_class));
        let ingress = dst_class.map(|c| (&self.ingress[c as usize], self.remote(from), Some(c)));
        [egress, ingress]
    }

    /// A pod reaching itself: allowed whatever the policies say.
    pub fn is_self(&self, from: Endpoint, to: Endpoint) -> bool {
        match (from, to) {
            (Endpoint::Workload(a), Endpoint::Workload(b)) => {
                a == b && self.workloads[a as usize].kind == WorkloadKind::Pod
            }
            _ => false,
        }
    }

    fn class_of(&self, e: Endpoint) -> Option<ClassId> {
        match e {
            Endpoint::Workload(w) => Some(self.workloads[w as usize].class),
            Endpoint::Ip(_) => None,
        }
    }

    fn remote(&self, e: Endpoint) -> Remote {
        match e {
            Endpoint::Workload(w) => Remote::Class(self.workloads[w as usize].class),
            Endpoint::Ip(ip) => Remote::Ip(ip),
        }
    }

    /// One direction, through the tiers: Admin, NetworkPolicy (for an
    /// isolated class), Baseline, default allow.
    fn side_allows(
        &self,
        iso: &Isolation,
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> bool {
        self.through_tiers(
            [&iso.admin, &iso.rules, &iso.baseline],
            iso.isolated(),
            |rule| self.rule_admits(rule, remote, dst, proto, port),
        )
    }

    /// The tiers of one direction over the rule lists `[admin, rules,
    /// baseline]`, with `matches` telling which rules match the flow: the
    /// first matching Admin rule with an action decides (a pass goes on), then
    /// an isolated side allows what one of its rules matches, else the first
    /// matching Baseline rule denies or the flow is allowed.
    fn through_tiers(
        &self,
        [admin, rules, baseline]: [&[u32]; 3],
        isolated: bool,
        matches: impl Fn(&TableRule) -> bool,
    ) -> bool {
        match self.first_matching(admin, &matches) {
            Some((_, Action::Accept)) => return true,
            Some((_, Action::Deny)) => return false,
            Some((_, Action::Pass)) | None => {}
        }
        if isolated {
            return rules.iter().any(|&r| matches(&self.rules[r as usize]));
        }
        !matches!(
            self.first_matching(baseline, &matches),
            Some((_, Action::Deny))
        )
    }

    /// The first rule of a tier with an action that `matches`, and the action.
    fn first_matching(
        &self,
        ids: &[u32],
        matches: impl Fn(&TableRule) -> bool,
    ) -> Option<(u32, Action)> {
        ids.iter().find_map(|&r| {
            let rule = &self.rules[r as usize];
            let action = rule.action?;
            matches(rule).then_some((r, action))
        })
    }

    /// The first rule of a tier that matches, with its action.
    fn first_match(
        &self,
        rules: &[u32],
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> Option<(u32, Action)> {
        self.first_matching(rules, |rule| {
            self.rule_admits(rule, remote, dst, proto, port)
        })
    }

    fn verdict(
        &self,
        iso: &Isolation,
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> SideExplanation {
        let mut trail = Vec::new();
        // Rules with domainNames that come before the decision in a tier.
        let domain_rules = |ids: &[u32], upto: Option<u32>, trail: &mut Vec<u32>| {
            for &r in ids {
                if Some(r) == upto {
                    break;
                }
                if self.rules[r as usize].domain_names {
                    trail.push(r);
                }
            }
        };
        let tier = |ids: &[u32], trail: &mut Vec<u32>| {
            let hit = self.first_match(ids, remote, dst, proto, port);
            domain_rules(ids, hit.map(|(r, _)| r), trail);
            hit
        };
        match tier(&iso.admin, &mut trail) {
            Some((rule, Action::Pass)) => trail.push(rule),
            Some((rule, action)) => {
                return SideExplanation {
                    verdict: Verdict::Rule {
                        rule,
                        allows: action == Action::Accept,
                    },
                    trail,
                };
            }
            None => {}
        }
        if iso.isolated() {
            let admitting: Vec<u32> = iso
                .rules
                .iter()
                .copied()
                .filter(|&r| self.rule_admits(&self.rules[r as usize], remote, dst, proto, port))
                .collect();
            let verdict = if admitting.is_empty() {
                Verdict::Denied(iso.policies.clone())
            } else {
                Verdict::Allowed(admitting)
            };
            return SideExplanation { verdict, trail };
        }
        let verdict = match tier(&iso.baseline, &mut trail) {
            Some((rule, Action::Pass)) => {
                trail.push(rule);
                Verdict::NotIsolated
            }
            Some((rule, action)) => Verdict::Rule {
                rule,
                allows: action == Action::Accept,
            },
            None => Verdict::NotIsolated,
        };
        SideExplanation { verdict, trail }
    }

    /// Where a Pass rule sends the flow, for the class on that side:
    /// `NetworkPolicy` (which isolates it), on through a NetworkPolicy tier
    /// that does not isolate it to `Baseline`, or (from the Baseline tier)
    /// `default allow`.
    pub fn pass_target(&self, rule: u32, side_class: ClassId) -> &'static str {
        let r = &self.rules[rule as usize];
        let iso = match r.direction {
            Direction::Ingress => &self.ingress[side_class as usize],
            Direction::Egress => &self.egress[side_class as usize],
        };
        match self.policies[r.policy as usize].tier {
            Some(Tier::Admin) if iso.isolated() => "NetworkPolicy",
            Some(Tier::Admin) => "NetworkPolicy (none isolates this pod) -> Baseline",
            _ => "default allow",
        }
    }

    /// What the Admin tier decides for one direction of `class` (the first
    /// of its Admin-tier rules that matches, with its action; none: the flow
    /// goes on to the NetworkPolicies), with `remote` at the other end, to a
    /// destination of class `dst`, on `port/proto`.
    pub fn admin_decision(
        &self,
        class: ClassId,
        direction: Direction,
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> Option<Action> {
        let iso = match direction {
            Direction::Ingress => &self.ingress[class as usize],
            Direction::Egress => &self.egress[class as usize],
        };
        self.first_match(&iso.admin, remote, dst, proto, port)
            .map(|(_, action)| action)
    }

    /// Does table rule `rule` admit a flow with `remote` at the other end,
    /// to a destination of class `dst` (named ports resolve there), on
    /// `port/proto`?
    pub fn rule_admits_flow(
        &self,
        rule: u32,
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> bool {
        self.rule_admits(&self.rules[rule as usize], remote, dst, proto, port)
    }

    fn rule_admits(
        &self,
        rule: &TableRule,
        remote: Remote,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> bool {
        rule.peers.admit(remote) && self.ports_admit(rule, dst, proto, port)
    }

    /// The ports of `rule` admit `port/proto` to a destination of class `dst`.
    fn ports_admit(
        &self,
        rule: &TableRule,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> bool {
        match &rule.ports {
            None => true,
            Some(specs) => specs.iter().any(|s| self.port_matches(s, dst, proto, port)),
        }
    }

    fn port_matches(
        &self,
        spec: &PortSpec,
        dst: Option<ClassId>,
        proto: Protocol,
        port: u16,
    ) -> bool {
        match spec {
            PortSpec::AnyPort(p) => *p == proto,
            PortSpec::Range {
                protocol,
                start,
                end,
            } => *protocol == proto && (*start..=*end).contains(&port),
            PortSpec::Named { protocol, name } => {
                *protocol == proto && self.has_named_port(dst, name, proto, port)
            }
            PortSpec::NamedAnyProtocol { name } => self.has_named_port(dst, name, proto, port),
        }
    }

    /// Does the destination class declare `port/proto` under `name`?
    fn has_named_port(&self, dst: Option<ClassId>, name: &str, proto: Protocol, port: u16) -> bool {
        dst.is_some_and(|c| {
            self.classes[c as usize].ports.iter().any(|cp| {
                cp.port == port && cp.protocol == proto && cp.name.as_deref() == Some(name)
            })
        })
    }

    /// Did the rule admit the remote class through an ipBlock matching its
    /// pod IPs (an implementation-defined behaviour worth flagging)?
    pub fn admitted_by_pod_ip(&self, rule: u32, remote: Endpoint) -> bool {
        let r = &self.rules[rule as usize];
        match remote {
            Endpoint::Workload(w) => {
                let c = self.workloads[w as usize].class;
                !r.peers.all && !r.peers.classes.contains(c) && r.peers.ip_classes.contains(c)
            }
            Endpoint::Ip(_) => false,
        }
    }

    /// Every port allowed from `from` to `to`, per protocol, as inclusive
    /// ranges.
    pub fn allowed_ports(&self, from: Endpoint, to: Endpoint) -> PortSet {
        if self.is_self(from, to) {
            return PortSet::all();
        }
        let mut cuts: Vec<u32> = Vec::with_capacity(32);
        cuts.extend([1, 65536]);
        let dst_class = self.class_of(to);
        // Each side's rules that can match this pair, in order (a rule whose
        // peers exclude the remote end decides nothing here), and their
        // port bounds.
        let mut keep = |iso: &Isolation, remote: Remote| {
            let lists = [&iso.admin, &iso.rules, &iso.baseline].map(|ids| {
                let mut kept = Vec::with_capacity(ids.len());
                kept.extend(
                    ids.iter()
                        .copied()
                        .filter(|&r| self.rules[r as usize].peers.admit(remote)),
                );
                kept
            });
            for &r in lists.iter().flatten() {
                for s in self.rules[r as usize].ports.iter().flatten() {
                    match s {
                        PortSpec::AnyPort(_) => {}
                        PortSpec::Range { start, end, .. } => {
                            cuts.push(*start as u32);
                            cuts.push(*end as u32 + 1);
                        }
                        PortSpec::Named { .. } | PortSpec::NamedAnyProtocol { .. } => {
                            if let Some(c) = dst_class {
                                for cp in &self.classes[c as usize].ports {
                                    cuts.push(cp.port as u32);
                                    cuts.push(cp.port as u32 + 1);
                                }
                            }
                        }
                    }
                }
            }
            (lists, iso.isolated())
        };
        let [egress, ingress] = self
            .sides(from, to)
            .map(|side| side.map(|(iso, remote, _)| keep(iso, remote)));
        if let Some(c) = dst_class {
            // Ports that authorization singles out.
            let a = &self.authz.classes[c as usize];
            for &(port, _, _) in &a.mtls.ports {
                cuts.extend([port as u32, port as u32 + 1]);
            }
            for &pi in &a.policies {
                for rule in &self.authz.policies[pi as usize].rules {
                    for f in rule.fields() {
                        for v in f.values.iter().chain(&f.not_values) {
                            if let crate::authz::Pattern::Port(port) = v {
                                cuts.extend([*port as u32, *port as u32 + 1]);
                            }
                        }
                    }
                }
            }
        }
        cuts.retain(|&c| c >= 1);
        cuts.sort_unstable();
        cuts.dedup();
        // Each window decided as `decide` would, the peers already settled.
        let side_allows = |side: &Option<([Vec<u32>; 3], bool)>, proto, port| {
            side.as_ref().is_none_or(|(lists, isolated)| {
                self.through_tiers([&lists[0], &lists[1], &lists[2]], *isolated, |rule| {
                    self.ports_admit(rule, dst_class, proto, port)
                })
            })
        };
        let mut set = PortSet::default();
        for proto in Protocol::ALL {
            for win in cuts.windows(2) {
                let (lo, hi) = (win[0] as u16, (win[1] - 1) as u16);
                if side_allows(&egress, proto, lo)
                    && side_allows(&ingress, proto, lo)
                    && self.authorize(from, to, proto, lo, None, ExtAuthz::Unknown, View::L4, None)
                {
                    set.push(proto, lo, hi);
                }
            }
        }
        set
    }
}

/// Ports per protocol, as sorted, merged, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct PortSet {
    pub ranges: [Vec<(u16, u16)>; 3],
}

impl PortSet {
    pub fn all() -> Self {
        Self {
            ranges: [vec![(1, 65535)], vec![(1, 65535)], vec![(1, 65535)]],
        }
    }

    fn push(&mut self, proto: Protocol, lo: u16, hi: u16) {
        let v = &mut self.ranges[proto.index()];
        match v.last_mut() {
            Some(last) if last.1 as u32 + 1 == lo as u32 => last.1 = hi,
            _ => v.push((lo, hi)),
        }
    }

    pub fn is_all(&self) -> bool {
        *self == Self::all()
    }

    /// The ports of either set.
    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut out = PortSet::default();
        for p in Protocol::ALL {
            let mut all: Vec<(u16, u16)> = self.ranges[p.index()]
                .iter()
                .chain(&other.ranges[p.index()])
                .copied()
                .collect();
            all.sort();
            let v = &mut out.ranges[p.index()];
            for (lo, hi) in all {
                match v.last_mut() {
                    Some(last) if lo as u32 <= last.1 as u32 + 1 => last.1 = last.1.max(hi),
                    _ => v.push((lo, hi)),
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    /// The ports of `self` that `other` lacks.
    pub fn minus(&self, other: &PortSet) -> PortSet {
        let mut out = PortSet::default();
        for p in Protocol::ALL {
            let cut = &other.ranges[p.index()];
            for &(lo, hi) in &self.ranges[p.index()] {
                let mut next = lo as u32;
                for &(clo, chi) in cut {
                    let (clo, chi) = (clo as u32, chi as u32);
                    if chi < next || clo > hi as u32 {
                        continue;
                    }
                    if clo > next {
                        out.push(p, next as u16, (clo - 1) as u16);
                    }
                    next = chi + 1;
                }
                if next <= hi as u32 {
                    out.push(p, next as u16, hi);
                }
            }
        }
        out
    }

    /// The first port of the set, with its protocol.
    pub fn first(&self) -> Option<(Protocol, u16)> {
        Protocol::ALL
            .iter()
            .find_map(|&p| self.ranges[p.index()].first().map(|&(lo, _)| (p, lo)))
    }
}

impl std::fmt::Display for PortSet {
    /// `all`, `none`, or e.g. `TCP 80-81,443 UDP 53`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for proto in Protocol::ALL {
            let v = &self.ranges[proto.index()];
            if v.is_empty() {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if v == &[(1, 65535)] {
                write!(f, "{proto} all")?;
                continue;
            }
            let parts: Vec<String> = v
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            write!(f, "{proto} {}", parts.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_union_holds_the_classes_of_both_sets() {
        let set = |ids: &[ClassId]| {
            let mut s = ClassSet::default();
            for &c in ids {
                s.insert(c);
            }
            s
        };
        let mut a = set(&[1, 64]);
        a.union_with(&set(&[2, 200]));
        assert_eq!(a.iter().collect::<Vec<_>>(), [1, 2, 64, 200]);
        let mut b = set(&[300]);
        b.union_with(&set(&[5]));
        b.union_with(&ClassSet::default());
        assert_eq!(b.iter().collect::<Vec<_>>(), [5, 300]);
        assert!(!b.contains(6) && b.contains(300));
    }
}
