//! The SMT encoding: one function per policy construct, so that it reads like
//! the semantics.
//!
//! A flow is `src → dst` on `port`/`protocol`. An end is a [`Pod`]: symbolic
//! attributes (namespace, label atoms, namespace label atoms, IP addresses,
//! host network, named container ports) that the caller ties to the
//! inventory, or leaves free for a pod that does not exist yet. The port is a
//! 16-bit vector, the protocol an integer of [`Protocol::index`].
//!
//! Labels are Boolean atoms `key=value` over the values the policies and the
//! inventory mention, plus one atom per key for "some other value"; at most
//! one atom of a key holds, and `key` exists exactly when one does
//! ([`Labels::well_formed`]). Addresses are 128-bit vectors with an IPv6
//! flag (an IPv4 address in the low 32 bits); a CIDR is a prefix constraint.
//!
//! Two encodings of one decision live here: [`Semantics`] reads the policy IR
//! (NetworkPolicies, admin tiers) as the Kubernetes and network-policy-api
//! documentation define it; [`TableEncoding`] reads the compiled decision
//! tables. Translation validation asks the solver for a flow on which they
//! differ.

pub mod authz;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ambit_compiler::admin::{Action, AdminPeer, AdminPolicy, AdminPort, Node, PodSet, Tier};
use ambit_compiler::authz::{MeshSettings, View};
use ambit_compiler::labels::{Labels as LabelMap, Requirement, Selector};
use ambit_compiler::model::{Cluster, Direction, NetworkPolicy, Peer, PortSpec, Protocol, Rule};
use ambit_compiler::table::{ClassSet, Peers, Tables};
use ipnet::IpNet;
use z3::ast::{BV, Bool, String as Str};

thread_local! {
    static INDEX_BITS: std::cell::Cell<u32> = const { std::cell::Cell::new(32) };
}

/// Indices (of workloads, classes, namespaces, protocols, tier decisions)
/// are bit-vectors just wide enough for the largest domain of the problem:
/// finite domains that the solver bit-blasts into small circuits, which is
/// much faster here than integer arithmetic. Set before encoding.
pub fn set_index_domain(largest: usize) {
    let bits = (usize::BITS - (largest + 2).leading_zeros()).max(4);
    INDEX_BITS.with(|b| b.set(bits));
}

/// The value of a bit-vector in a model (0 when it has none).
pub fn eval_u64(model: &z3::Model, x: &BV) -> u64 {
    model
        .eval(x, true)
        .and_then(|v| v.as_u64())
        .unwrap_or_default()
}

/// The value of a Boolean in a model (false when it has none).
pub fn eval_bool(model: &z3::Model, x: &Bool) -> bool {
    model
        .eval(x, true)
        .and_then(|v| v.as_bool())
        .unwrap_or_default()
}

/// An index literal.
pub fn idx(v: u64) -> BV {
    BV::from_u64(v, INDEX_BITS.with(|b| b.get()))
}

/// An index variable.
pub fn idx_const(name: impl Into<z3::Symbol>) -> BV {
    BV::new_const(name, INDEX_BITS.with(|b| b.get()))
}

/// The label keys and values an encoding needs atoms for.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Pod label keys and their known values.
    pub pod: BTreeMap<String, BTreeSet<String>>,
    /// Namespace label keys and their known values.
    pub namespace: BTreeMap<String, BTreeSet<String>>,
    /// Container port names the policies use.
    pub port_names: BTreeSet<String>,
    /// The most container ports of one workload that share a name (the API
    /// server refuses duplicates; the compiler matches each).
    pub port_slots: usize,
    /// The most IP addresses one workload has.
    pub ip_slots: usize,
    /// The cluster has an authorization layer (Istio policies): pods carry
    /// their service account and injection annotation.
    pub authz: bool,
}

impl Vocabulary {
    /// Everything the cluster's policies and inventory mention.
    pub fn of(cluster: &Cluster) -> Vocabulary {
        let mut v = Vocabulary::default();
        let add = |m: &mut BTreeMap<String, BTreeSet<String>>, labels: &LabelMap| {
            for (k, val) in labels {
                m.entry(k.clone()).or_default().insert(val.clone());
            }
        };
        for w in &cluster.workloads {
            add(&mut v.pod, &w.labels);
            v.ip_slots = v.ip_slots.max(w.ips.len());
        }
        for ns in cluster.namespaces.values() {
            add(&mut v.namespace, &ns.labels);
        }
        let sel = |m: &mut BTreeMap<String, BTreeSet<String>>, s: &Selector| add_selector(m, s);
        for np in &cluster.network_policies {
            sel(&mut v.pod, &np.pod_selector);
            for rule in np
                .ingress
                .iter()
                .flatten()
                .chain(np.egress.iter().flatten())
            {
                for peer in rule.peers.iter().flatten() {
                    if let Peer::Pods { namespaces, pods } = peer {
                        sel(&mut v.pod, pods);
                        if let Some(ns) = namespaces {
                            sel(&mut v.namespace, ns);
                        }
                    }
                }
                for port in rule.ports.iter().flatten() {
                    if let PortSpec::Named { name, .. } = port {
                        v.port_names.insert(name.clone());
                    }
                }
            }
        }
        for ap in &cluster.admin_policies {
            sel(&mut v.namespace, &ap.subject.namespaces);
            sel(&mut v.pod, &ap.subject.pods);
            for rule in ap.ingress.iter().chain(&ap.egress) {
                for peer in &rule.peers {
                    if let AdminPeer::Pods(set) = peer {
                        sel(&mut v.namespace, &set.namespaces);
                        sel(&mut v.pod, &set.pods);
                    }
                }
                for port in rule.ports.iter().flatten() {
                    if let AdminPort::Named(name) = port {
                        v.port_names.insert(name.clone());
                    }
                }
            }
        }
        v.ip_slots = v.ip_slots.max(1);
        for w in &cluster.workloads {
            for name in &v.port_names {
                let same = w
                    .ports
                    .iter()
                    .filter(|p| p.name.as_deref() == Some(name.as_str()))
                    .count();
                v.port_slots = v.port_slots.max(same);
            }
        }
        v.port_slots = v.port_slots.max(1);
        v.authz = authz::has_authz(cluster);
        if v.authz {
            authz::add_vocabulary(&mut v.pod, &mut v.namespace, cluster);
        }
        v
    }
}

impl Vocabulary {
    /// What either vocabulary needs.
    pub fn merge(mut self, other: Vocabulary) -> Vocabulary {
        for (mine, theirs) in [
            (&mut self.pod, other.pod),
            (&mut self.namespace, other.namespace),
        ] {
            for (k, values) in theirs {
                mine.entry(k).or_default().extend(values);
            }
        }
        self.port_names.extend(other.port_names);
        self.port_slots = self.port_slots.max(other.port_slots);
        self.ip_slots = self.ip_slots.max(other.ip_slots);
        self.authz |= other.authz;
        self
    }
}

/// Add the keys and values a selector mentions.
pub fn add_selector(m: &mut BTreeMap<String, BTreeSet<String>>, s: &Selector) {
    for r in &s.requirements {
        let entry = m.entry(r.key().to_owned()).or_default();
        if let Requirement::In { values, .. } | Requirement::NotIn { values, .. } = r {
            entry.extend(values.iter().cloned());
        }
    }
}

/// The labels of one object: per known key, a small bit-vector holding
/// which value it has: 0 for none, `i + 1` for the `i`-th known value, and
/// one more for "some other value". A key thus has at most one value, and
/// `Exists` / `DoesNotExist` agree with `In` by construction.
#[derive(Debug, Clone)]
pub struct Labels {
    keys: BTreeMap<String, (Vec<String>, BV)>,
}

impl Labels {
    pub fn new(prefix: &str, vocabulary: &BTreeMap<String, BTreeSet<String>>) -> Labels {
        let keys = vocabulary
            .iter()
            .map(|(k, values)| {
                let values: Vec<String> = values.iter().cloned().collect();
                let bits = (usize::BITS - (values.len() + 1).leading_zeros()).max(1);
                (
                    k.clone(),
                    (values, BV::new_const(format!("{prefix}|{k}"), bits)),
                )
            })
            .collect();
        Labels { keys }
    }

    fn code(values: &[String], var: &BV, value: Option<&String>) -> BV {
        let code = match value {
            None => 0,
            Some(v) => match values.binary_search(v) {
                Ok(i) => i + 1,
                Err(_) => values.len() + 1,
            },
        };
        BV::from_u64(code as u64, var.get_size())
    }

    /// Every key holds none, a known value, or "some other value".
    pub fn well_formed(&self) -> Bool {
        let each: Vec<Bool> = self
            .keys
            .values()
            .map(|(values, var)| var.bvule(BV::from_u64(values.len() as u64 + 1, var.get_size())))
            .collect();
        Bool::and(&each)
    }

    /// The labels are exactly these concrete ones (over the known keys).
    pub fn are(&self, labels: &LabelMap) -> Bool {
        let each: Vec<Bool> = self
            .keys
            .iter()
            .map(|(k, (values, var))| var.eq(Self::code(values, var, labels.get(k))))
            .collect();
        Bool::and(&each)
    }

    /// `key` exists.
    pub fn exists(&self, key: &str) -> Bool {
        match self.keys.get(key) {
            None => Bool::from_bool(false),
            Some((_, var)) => var.eq(BV::from_u64(0, var.get_size())).not(),
        }
    }

    /// `key` has one of `values`.
    pub fn is_in(&self, key: &str, values: &BTreeSet<String>) -> Bool {
        match self.keys.get(key) {
            None => Bool::from_bool(false),
            Some((known, var)) => {
                let hits: Vec<Bool> = values
                    .iter()
                    .filter(|v| known.binary_search(v).is_ok())
                    .map(|v| var.eq(Self::code(known, var, Some(v))))
                    .collect();
                Bool::or(&hits)
            }
        }
    }

    /// The value of `key` in a model, for counterexamples (`<other>` for a
    /// value no policy or workload mentions).
    pub fn value_in(&self, model: &z3::Model, key: &str) -> Option<String> {
        let (values, var) = self.keys.get(key)?;
        let code = model.eval(var, true)?.as_u64()? as usize;
        match code {
            0 => None,
            c if c <= values.len() => Some(values[c - 1].clone()),
            _ => Some("<other>".to_owned()),
        }
    }

    /// "The key is present", per key (to ask a model for as few labels as
    /// it needs).
    pub fn present(&self) -> Vec<Bool> {
        self.keys.keys().map(|k| self.exists(k)).collect()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// A label selector: the conjunction of its requirements.
pub fn selector(sel: &Selector, labels: &Labels) -> Bool {
    let reqs: Vec<Bool> = sel
        .requirements
        .iter()
        .map(|r| requirement(r, labels))
        .collect();
    Bool::and(&reqs)
}

/// One requirement: `In`, `NotIn` (true without the key), `Exists`,
/// `DoesNotExist`.
pub fn requirement(r: &Requirement, labels: &Labels) -> Bool {
    match r {
        Requirement::In { key, values } => labels.is_in(key, values),
        Requirement::NotIn { key, values } => labels.is_in(key, values).not(),
        Requirement::Exists { key } => labels.exists(key),
        Requirement::DoesNotExist { key } => labels.exists(key).not(),
    }
}

/// One address: `v6` and 128 bits (an IPv4 address in the low 32).
#[derive(Debug, Clone)]
pub struct Addr {
    pub valid: Bool,
    pub v6: Bool,
    pub bits: BV,
}

impl Addr {
    pub fn new(prefix: &str) -> Addr {
        Addr {
            valid: Bool::new_const(format!("{prefix}.valid")),
            v6: Bool::new_const(format!("{prefix}.v6")),
            bits: BV::new_const(format!("{prefix}.bits"), 128),
        }
    }

    /// An IPv4 address has zeros above its 32 bits, so that equal
    /// addresses have equal bits.
    pub fn well_formed(&self) -> Bool {
        self.v6
            .not()
            .implies(self.bits.extract(127, 32).eq(BV::from_u64(0, 96)))
    }

    /// The address is this concrete one (or, with `None`, absent).
    pub fn is(&self, ip: Option<IpAddr>) -> Bool {
        match ip {
            None => self.valid.not(),
            Some(ip) => {
                let (v6, value) = bits_of(ip);
                AddrRange::note(v6, value, value);
                Bool::and(&[
                    self.valid.clone(),
                    self.v6.iff(Bool::from_bool(v6)),
                    self.bits.eq(bv128(value)),
                ])
            }
        }
    }

    /// Between two addresses of one family, inclusive.
    pub fn in_range(&self, lo: IpAddr, hi: IpAddr) -> Bool {
        let (v6, lo) = bits_of(lo);
        let (_, hi) = bits_of(hi);
        AddrRange::note(v6, lo, hi);
        Bool::and(&[
            self.valid.clone(),
            self.v6.iff(Bool::from_bool(v6)),
            bv128(lo).bvule(&self.bits),
            self.bits.bvule(bv128(hi)),
        ])
    }

    /// Inside the CIDR: the family matches and the prefix bits are equal.
    pub fn in_cidr(&self, net: &IpNet) -> Bool {
        let (v6, value) = bits_of(net.network());
        AddrRange::note(v6, value, bits_of(net.broadcast()).1);
        let len = net.prefix_len() as u32;
        let width = if v6 { 128 } else { 32 };
        let family = self.v6.iff(Bool::from_bool(v6));
        if len == 0 {
            return Bool::and(&[self.valid.clone(), family]);
        }
        let (hi, lo) = (width - 1, width - len);
        let mask = bv128(value).extract(hi, lo);
        Bool::and(&[
            self.valid.clone(),
            family,
            self.bits.extract(hi, lo).eq(mask),
        ])
    }

    /// The concrete address of a model.
    pub fn value_in(&self, model: &z3::Model) -> Option<IpAddr> {
        if model.eval(&self.valid, true)?.as_bool()? {
            let v6 = model.eval(&self.v6, true)?.as_bool()?;
            let bits = model.eval(&self.bits, true)?;
            let s = bits.to_string();
            let value = parse_bv_literal(&s)?;
            Some(if v6 {
                IpAddr::V6(std::net::Ipv6Addr::from(value))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(value as u32))
            })
        } else {
            None
        }
    }
}

fn parse_bv_literal(s: &str) -> Option<u128> {
    if let Some(hex) = s.strip_prefix("#x") {
        u128::from_str_radix(hex, 16).ok()
    } else if let Some(bin) = s.strip_prefix("#b") {
        u128::from_str_radix(bin, 2).ok()
    } else {
        s.parse().ok()
    }
}

/// A range of addresses of one family, inclusive, that a formula tests a
/// symbolic address against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrRange {
    pub v6: bool,
    pub lo: u128,
    pub hi: u128,
}

thread_local! {
    /// The ranges [`Addr`]'s predicates were built over, while
    /// [`address_ranges`] records them on this thread.
    static ADDRESS_RANGES: std::cell::RefCell<Option<BTreeSet<AddrRange>>> =
        const { std::cell::RefCell::new(None) };
}

impl AddrRange {
    /// Whether the range holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, bits) = bits_of(ip);
        v6 == self.v6 && self.lo <= bits && bits <= self.hi
    }

    fn note(v6: bool, lo: u128, hi: u128) {
        ADDRESS_RANGES.with(|r| {
            if let Some(set) = r.borrow_mut().as_mut() {
                set.insert(AddrRange { v6, lo, hi });
            }
        });
    }
}

/// Run `f` and return, with its result, every range of addresses that the
/// formulas it built test a symbolic address against ([`Addr::is`],
/// [`Addr::in_range`], [`Addr::in_cidr`]: the only predicates over an
/// address besides its presence and family). Two concrete addresses of one
/// family that each of these ranges holds alike are told apart by none of
/// those formulas.
pub fn address_ranges<R>(f: impl FnOnce() -> R) -> (R, BTreeSet<AddrRange>) {
    struct Recording;
    impl Drop for Recording {
        fn drop(&mut self) {
            ADDRESS_RANGES.with(|r| r.borrow_mut().take());
        }
    }
    ADDRESS_RANGES.with(|r| *r.borrow_mut() = Some(BTreeSet::new()));
    let recording = Recording;
    let out = f();
    let ranges = ADDRESS_RANGES.with(|r| r.borrow_mut().take().unwrap_or_default());
    drop(recording);
    (out, ranges)
}

fn bits_of(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn bv128(value: u128) -> BV {
    BV::from_str(128, &value.to_string()).expect("a 128-bit literal")
}

/// A container port declared under a name the policies use.
#[derive(Debug, Clone)]
pub struct NamedPort {
    pub declared: Bool,
    pub port: BV,
    pub protocol: BV,
}

/// One end of a flow, symbolically.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Index into the namespaces of the encoding (the last index is "a
    /// namespace that does not exist yet").
    pub namespace: BV,
    pub labels: Labels,
    pub namespace_labels: Labels,
    pub ips: Vec<Addr>,
    pub host_network: Bool,
    /// Per name, its declarations (more than one only where the inventory
    /// has duplicates).
    pub named_ports: BTreeMap<String, Vec<NamedPort>>,
    /// Not a pod: an address outside the cluster (its first address). Pod
    /// selectors never match it and it has no policy of its own.
    pub external: Bool,
    /// Whether the encoding reads the authorization layer (and so the
    /// fields below).
    pub authz: bool,
    pub service_account: Str,
    /// For an end that is one of known workloads: its namespace and service
    /// account as an index into these pairs, so that the authorization
    /// layer reads known texts instead of `service_account`.
    pub identities: Option<Identities>,
    /// The `sidecar.istio.io/inject` annotation: 0 none, 1 `true`, 2
    /// `false`, 3 another value.
    pub inject: BV,
    /// The name of a namespace that does not exist yet.
    pub namespace_name: Str,
}

/// The identities an end can have, each a namespace and a service account.
#[derive(Debug, Clone)]
pub struct Identities {
    pub which: BV,
    pub names: std::rc::Rc<Vec<(String, String)>>,
}

impl Identities {
    /// The end's identity is `names[k]` (the index of the pair).
    pub fn is(&self, k: usize) -> Bool {
        self.which.eq(BV::from_u64(k as u64, self.which.get_size()))
    }
}

impl Pod {
    pub fn new(prefix: &str, vocabulary: &Vocabulary) -> Pod {
        Pod {
            namespace: idx_const(format!("{prefix}.ns")),
            labels: Labels::new(&format!("{prefix}.label"), &vocabulary.pod),
            namespace_labels: Labels::new(&format!("{prefix}.nslabel"), &vocabulary.namespace),
            ips: (0..vocabulary.ip_slots)
                .map(|i| Addr::new(&format!("{prefix}.ip{i}")))
                .collect(),
            host_network: Bool::new_const(format!("{prefix}.hostNetwork")),
            external: Bool::new_const(format!("{prefix}.external")),
            authz: vocabulary.authz,
            service_account: Str::new_const(format!("{prefix}.serviceAccount")),
            identities: None,
            inject: BV::new_const(format!("{prefix}.inject"), 2),
            namespace_name: Str::new_const(format!("{prefix}.namespaceName")),
            named_ports: vocabulary
                .port_names
                .iter()
                .map(|n| {
                    let slots = (0..vocabulary.port_slots)
                        .map(|i| NamedPort {
                            declared: Bool::new_const(format!("{prefix}.port[{n}]{i}")),
                            port: BV::new_const(format!("{prefix}.port[{n}]{i}.number"), 16),
                            protocol: idx_const(format!("{prefix}.port[{n}]{i}.protocol")),
                        })
                        .collect();
                    (n.clone(), slots)
                })
                .collect(),
        }
    }

    /// Every declaration slot of every named port.
    pub fn named_port_slots(&self) -> impl Iterator<Item = &NamedPort> {
        self.named_ports.values().flatten()
    }

    /// Some address of the pod is inside the CIDR.
    pub fn has_ip_in(&self, net: &IpNet) -> Bool {
        let each: Vec<Bool> = self.ips.iter().map(|a| a.in_cidr(net)).collect();
        Bool::or(&each)
    }

    /// Some address of the pod is this one.
    pub fn has_ip(&self, ip: IpAddr) -> Bool {
        let each: Vec<Bool> = self.ips.iter().map(|a| a.is(Some(ip))).collect();
        Bool::or(&each)
    }
}

/// The flow's port and protocol.
#[derive(Debug, Clone)]
pub struct Service {
    pub port: BV,
    pub protocol: BV,
}

impl Service {
    pub fn new() -> Service {
        Service {
            port: BV::new_const("port", 16),
            protocol: idx_const("protocol"),
        }
    }

    pub fn is_protocol(&self, p: Protocol) -> Bool {
        self.protocol.eq(idx(p.index() as u64))
    }

    pub fn in_range(&self, start: u16, end: u16) -> Bool {
        Bool::and(&[
            BV::from_u64(start as u64, 16).bvule(&self.port),
            self.port.bvule(BV::from_u64(end as u64, 16)),
        ])
    }

    /// The destination declares this named port, with the flow's port and
    /// protocol.
    pub fn named(&self, dst: &Pod, name: &str) -> Bool {
        let each: Vec<Bool> = dst
            .named_ports
            .get(name)
            .into_iter()
            .flatten()
            .map(|np| {
                Bool::and(&[
                    np.declared.clone(),
                    np.port.eq(&self.port),
                    np.protocol.eq(&self.protocol),
                ])
            })
            .collect();
        Bool::or(&each)
    }
}

impl Default for Service {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------
// The semantics of the policy IR.

/// The namespaces of the encoding, by index.
#[derive(Debug, Clone)]
pub struct Namespaces {
    pub names: Vec<String>,
}

impl Namespaces {
    pub fn of(cluster: &Cluster) -> Namespaces {
        Namespaces {
            names: cluster.namespaces.keys().cloned().collect(),
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The pod is in namespace `name` (false for a namespace the inventory
    /// does not have).
    pub fn is(&self, pod: &Pod, name: &str) -> Bool {
        match self.index(name) {
            Some(i) => pod.namespace.eq(idx(i as u64)),
            None => Bool::from_bool(false),
        }
    }
}

/// The IR's decision for one flow.
#[derive(Debug)]
pub struct Semantics<'a> {
    pub cluster: &'a Cluster,
    pub namespaces: &'a Namespaces,
    /// The effective mesh settings (root namespace, trust domains).
    pub mesh: MeshSettings,
    /// The namespaces the source's and the destination's workloads are in,
    /// when each end is known to be one of given workloads or an address
    /// outside the cluster ([`Semantics::among`]).
    scope: Option<[BTreeSet<&'a str>; 2]>,
}

impl<'a> Semantics<'a> {
    /// The semantics of `cluster` compiled with `options`.
    pub fn new(
        cluster: &'a Cluster,
        namespaces: &'a Namespaces,
        options: &ambit_compiler::compile::CompileOptions,
    ) -> Self {
        Semantics {
            cluster,
            namespaces,
            mesh: options.mesh.over(&cluster.mesh),
            scope: None,
        }
    }

    /// The same semantics for a source among the workloads `src` (or an
    /// address outside the cluster) and a destination among `dst` (or an
    /// address outside). A NetworkPolicy selects pods of its own namespace
    /// only, and an AuthorizationPolicy without `targetRefs` outside the
    /// root namespace applies to pods of its own namespace only: those of
    /// other namespaces select neither end, and their terms, false for
    /// every member, are left out of the formula.
    pub fn among(mut self, src: &[usize], dst: &[usize]) -> Self {
        let cluster = self.cluster;
        let namespaces = |members: &[usize]| {
            members
                .iter()
                .map(|&i| cluster.workloads[i].namespace.as_str())
                .collect()
        };
        self.scope = Some([namespaces(src), namespaces(dst)]);
        self
    }

    /// Whether the end (`0` the source, `1` the destination) can be a pod
    /// of namespace `ns`.
    fn can_be_in(&self, end: usize, ns: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s[end].contains(ns))
    }

    /// What `ambit query` and the agent decide: the network layer and the
    /// authorization an L4 enforcer applies.
    pub fn allowed(&self, src: &Pod, dst: &Pod, svc: &Service) -> Bool {
        Bool::and(&[
            self.network_allowed(src, dst, svc),
            self.authz_allows(src, dst, svc, View::L4, None),
        ])
    }

    /// What an L7-capable enforcer decides for a connection and, when
    /// present, its HTTP request.
    pub fn allowed_full(
        &self,
        src: &Pod,
        dst: &Pod,
        svc: &Service,
        request: &authz::Request,
    ) -> Bool {
        Bool::and(&[
            self.network_allowed(src, dst, svc),
            self.authz_allows(src, dst, svc, View::Full, Some(request)),
        ])
    }

    /// The source's egress and the destination's ingress both allow (an
    /// address outside the cluster has no side of its own).
    pub fn network_allowed(&self, src: &Pod, dst: &Pod, svc: &Service) -> Bool {
        Bool::and(&[
            Bool::or(&[
                src.external.clone(),
                self.direction(Direction::Egress, src, dst, dst, svc),
            ]),
            Bool::or(&[
                dst.external.clone(),
                self.direction(Direction::Ingress, dst, src, dst, svc),
            ]),
        ])
    }

    /// One direction of `pod` through the tiers: Admin, NetworkPolicy (when
    /// a policy isolates the pod), Baseline, default allow. `pod` is the
    /// source for egress and the destination for ingress.
    pub fn direction(
        &self,
        direction: Direction,
        pod: &Pod,
        remote: &Pod,
        dst: &Pod,
        svc: &Service,
    ) -> Bool {
        let admin = self.tier(Tier::Admin, direction, pod, remote, dst, svc);
        let baseline = self.tier(Tier::Baseline, direction, pod, remote, dst, svc);
        let (isolated, admitted) = self.network_policies(direction, pod, remote, dst, svc);
        through_tiers(&admin, &isolated, &admitted, &baseline)
    }

    /// Whether a NetworkPolicy isolates `pod` in `direction`, and whether one
    /// of the isolating policies' rules admits the flow.
    pub fn network_policies(
        &self,
        direction: Direction,
        pod: &Pod,
        remote: &Pod,
        dst: &Pod,
        svc: &Service,
    ) -> (Bool, Bool) {
        let mut isolating = Vec::new();
        let mut admitting = Vec::new();
        let end = match direction {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        };
        for np in &self.cluster.network_policies {
            let Some(rules) = np.rules(direction) else {
                continue;
            };
            if !self.can_be_in(end, &np.namespace) {
                continue;
            }
            let selects = self.np_selects(np, pod);
            let any_rule: Vec<Bool> = rules
                .iter()
                .map(|r| self.np_rule(np, r, remote, dst, svc))
                .collect();
            admitting.push(Bool::and(&[selects.clone(), Bool::or(&any_rule)]));
            isolating.push(selects);
        }
        (Bool::or(&isolating), Bool::or(&admitting))
    }

    /// A NetworkPolicy selects the pods of its namespace its podSelector
    /// matches.
    pub fn np_selects(&self, np: &NetworkPolicy, pod: &Pod) -> Bool {
        Bool::and(&[
            self.namespaces.is(pod, &np.namespace),
            selector(&np.pod_selector, &pod.labels),
        ])
    }

    /// A rule admits when a peer matches the remote end and a port entry the
    /// flow (omitted: all).
    pub fn np_rule(
        &self,
        np: &NetworkPolicy,
        rule: &Rule,
        remote: &Pod,
        dst: &Pod,
        svc: &Service,
    ) -> Bool {
        let peers = match &rule.peers {
            None => Bool::from_bool(true),
            Some(list) => {
                let each: Vec<Bool> = list.iter().map(|p| self.np_peer(np, p, remote)).collect();
                Bool::or(&each)
            }
        };
        let ports = match &rule.ports {
            None => Bool::from_bool(true),
            Some(list) => {
                let each: Vec<Bool> = list.iter().map(|p| port_spec(p, dst, svc)).collect();
                Bool::or(&each)
            }
        };
        Bool::and(&[peers, ports])
    }

    /// `namespaceSelector` AND `podSelector` (no namespaceSelector: the
    /// policy's namespace); an ipBlock by the pod's addresses.
    pub fn np_peer(&self, np: &NetworkPolicy, peer: &Peer, remote: &Pod) -> Bool {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let ns = match namespaces {
                    None => self.namespaces.is(remote, &np.namespace),
                    Some(sel) => selector(sel, &remote.namespace_labels),
                };
                Bool::and(&[remote.external.not(), ns, selector(pods, &remote.labels)])
            }
            Peer::IpBlock { cidr, except } => ip_block(remote, cidr, except),
        }
    }

    /// The first matching rule of a tier's policies (in priority order, then
    /// name, then kind) that select `pod`.
    pub fn tier(
        &self,
        tier: Tier,
        direction: Direction,
        pod: &Pod,
        remote: &Pod,
        dst: &Pod,
        svc: &Service,
    ) -> TierDecision {
        let mut policies: Vec<&AdminPolicy> = self
            .cluster
            .admin_policies
            .iter()
            .filter(|p| p.tier == tier)
            .collect();
        policies.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        // Build the first-match chain from the last rule backwards.
        let mut decision = TierDecision::none();
        for p in policies.iter().rev() {
            let subject = self.subject(&p.subject, pod);
            for rule in p.rules(direction).iter().rev() {
                let (matches, action) = self.admin_rule(rule, remote, dst, svc);
                decision =
                    TierDecision::ite(&Bool::and(&[subject.clone(), matches]), action, &decision);
            }
        }
        decision
    }

    /// Host-network pods are never subjects.
    pub fn subject(&self, set: &PodSet, pod: &Pod) -> Bool {
        Bool::and(&[pod.host_network.not(), self.pod_set(set, pod)])
    }

    pub fn pod_set(&self, set: &PodSet, pod: &Pod) -> Bool {
        Bool::and(&[
            selector(&set.namespaces, &pod.namespace_labels),
            selector(&set.pods, &pod.labels),
        ])
    }

    /// Whether an admin rule matches, and what it does. A peer with no field
    /// fails closed: an Accept matches nothing, a Deny or Pass denies all.
    pub fn admin_rule(
        &self,
        rule: &ambit_compiler::admin::AdminRule,
        remote: &Pod,
        dst: &Pod,
        svc: &Service,
    ) -> (Bool, Decision) {
        if rule.fails_closed() {
            return match rule.action {
                Action::Accept => (Bool::from_bool(false), Decision::Accept),
                Action::Deny | Action::Pass => (Bool::from_bool(true), Decision::Deny),
            };
        }
        let peers: Vec<Bool> = rule
            .peers
            .iter()
            .map(|p| self.admin_peer(p, remote))
            .collect();
        let ports = match &rule.ports {
            None => Bool::from_bool(true),
            Some(list) => {
                let each: Vec<Bool> = list.iter().map(|p| admin_port(p, dst, svc)).collect();
                Bool::or(&each)
            }
        };
        let decision = match rule.action {
            Action::Accept => Decision::Accept,
            Action::Deny => Decision::Deny,
            Action::Pass => Decision::Pass,
        };
        (Bool::and(&[Bool::or(&peers), ports]), decision)
    }

    /// Pods (never host-network ones), networks (any address of the end),
    /// nodes (their addresses), domain names (nothing).
    pub fn admin_peer(&self, peer: &AdminPeer, remote: &Pod) -> Bool {
        match peer {
            AdminPeer::Pods(set) => Bool::and(&[
                remote.external.not(),
                remote.host_network.not(),
                self.pod_set(set, remote),
            ]),
            AdminPeer::Networks(nets) => {
                let each: Vec<Bool> = nets.iter().map(|n| remote.has_ip_in(n)).collect();
                Bool::or(&each)
            }
            AdminPeer::Nodes(sel) => {
                let each: Vec<Bool> = nodes_matching(&self.cluster.nodes, sel)
                    .map(|ip| remote.has_ip(ip))
                    .collect();
                Bool::or(&each)
            }
            AdminPeer::DomainNames(_) | AdminPeer::Unset => Bool::from_bool(false),
        }
    }
}

fn nodes_matching<'a>(nodes: &'a [Node], sel: &'a Selector) -> impl Iterator<Item = IpAddr> + 'a {
    nodes
        .iter()
        .filter(|n| sel.matches(&n.labels))
        .flat_map(|n| n.addresses.iter().copied())
}

/// An ipBlock: inside `cidr` and outside every `except`.
pub fn ip_block(pod: &Pod, cidr: &IpNet, except: &[IpNet]) -> Bool {
    let each: Vec<Bool> = pod
        .ips
        .iter()
        .map(|a| {
            let mut parts = vec![a.in_cidr(cidr)];
            parts.extend(except.iter().map(|e| a.in_cidr(e).not()));
            Bool::and(&parts)
        })
        .collect();
    Bool::or(&each)
}

/// A NetworkPolicy port entry.
pub fn port_spec(spec: &PortSpec, dst: &Pod, svc: &Service) -> Bool {
    match spec {
        PortSpec::AnyPort(p) => svc.is_protocol(*p),
        PortSpec::Range {
            protocol,
            start,
            end,
        } => Bool::and(&[svc.is_protocol(*protocol), svc.in_range(*start, *end)]),
        PortSpec::Named { protocol, name } => {
            Bool::and(&[svc.is_protocol(*protocol), svc.named(dst, name)])
        }
        PortSpec::NamedAnyProtocol { name } => svc.named(dst, name),
    }
}

/// An admin policy port entry; a named port binds its own protocol.
pub fn admin_port(port: &AdminPort, dst: &Pod, svc: &Service) -> Bool {
    match port {
        AdminPort::Range {
            protocol,
            start,
            end,
        } => Bool::and(&[svc.is_protocol(*protocol), svc.in_range(*start, *end)]),
        AdminPort::Named(name) => svc.named(dst, name),
    }
}

/// One direction through the tiers: the Admin tier's Accept or Deny ends
/// it; otherwise an isolating NetworkPolicy decides; otherwise only a
/// Baseline Deny denies.
pub fn through_tiers(
    admin: &TierDecision,
    isolated: &Bool,
    admitted: &Bool,
    baseline: &TierDecision,
) -> Bool {
    let after_admin = isolated.ite(admitted, &baseline.is(Decision::Deny).not());
    admin.is(Decision::Accept).ite(
        &Bool::from_bool(true),
        &admin
            .is(Decision::Deny)
            .not()
            .ite(&after_admin, &Bool::from_bool(false)),
    )
}

/// What a tier decides: nothing, accept, deny or pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    None = 0,
    Accept = 1,
    Deny = 2,
    Pass = 3,
}

/// A tier's decision as an integer term.
#[derive(Debug, Clone)]
pub struct TierDecision(BV);

impl TierDecision {
    pub fn none() -> TierDecision {
        TierDecision(idx(Decision::None as u64))
    }

    pub fn ite(cond: &Bool, then: Decision, otherwise: &TierDecision) -> TierDecision {
        TierDecision(cond.ite(&idx(then as u64), &otherwise.0))
    }

    pub fn is(&self, d: Decision) -> Bool {
        self.0.eq(idx(d as u64))
    }
}

// ---------------------------------------------------------------------------
// The decision tables.

/// One end of a flow for the tables: a class of the inventory, or an
/// address outside it.
#[derive(Debug, Clone)]
pub struct TableEnd {
    pub class: BV,
    pub external: Bool,
    pub addr: Addr,
}

impl TableEnd {
    /// A free end: a class or an address.
    pub fn new(prefix: &str) -> TableEnd {
        TableEnd {
            class: idx_const(format!("{prefix}.class")),
            external: Bool::new_const(format!("{prefix}.external")),
            addr: Addr::new(&format!("{prefix}.addr")),
        }
    }

    /// An end that is a class of the inventory.
    pub fn class(class: BV, prefix: &str) -> TableEnd {
        TableEnd {
            class,
            external: Bool::from_bool(false),
            addr: Addr::new(&format!("{prefix}.addr")),
        }
    }
}

/// The tables' decision for one flow between two ends. One encoding serves
/// one flow: the formula of each rule is built once per direction and shared
/// by every class whose entry holds the rule.
#[derive(Debug)]
pub struct TableEncoding<'a> {
    pub tables: &'a Tables,
    rules: std::cell::RefCell<std::collections::HashMap<(u32, Direction), Bool>>,
    /// The destination has a port of a name (and protocol), for the flow.
    named: std::cell::RefCell<std::collections::HashMap<(String, Option<Protocol>), Bool>>,
    /// The classes the source and the destination can be in, when known.
    domain: [Option<Vec<u32>>; 2],
}

impl<'a> TableEncoding<'a> {
    pub fn new(tables: &'a Tables) -> Self {
        TableEncoding {
            tables,
            rules: Default::default(),
            named: Default::default(),
            domain: [None, None],
        }
    }

    /// An encoding for ends known to be in one of `domain`'s classes (the
    /// source's, the destination's) unless they are addresses: a rule's
    /// test of a class set asks only which of those classes it holds, and
    /// ranges of them, bridging the classes no end can be in, stay few.
    pub fn within(tables: &'a Tables, domain: [&BTreeSet<u32>; 2]) -> Self {
        TableEncoding {
            domain: domain.map(|d| Some(d.iter().copied().collect())),
            ..TableEncoding::new(tables)
        }
    }

    /// `x`, the class of the end `side` (0 the source, 1 the destination),
    /// is one for which `holds` holds.
    fn class_in(&self, side: usize, x: &BV, holds: impl Fn(u32) -> bool) -> Bool {
        match &self.domain[side] {
            None => {
                let ids: Vec<u32> = (0..self.tables.classes.len() as u32)
                    .filter(|&c| holds(c))
                    .collect();
                in_ranges(&ids, x)
            }
            Some(domain) => {
                // Runs of the domain's classes that hold, as ranges over
                // the class ids: what lies between two of the domain's
                // classes no end can be.
                let mut each = Vec::new();
                let mut run: Option<(u32, u32)> = None;
                for &c in domain {
                    if holds(c) {
                        run = Some(run.map_or((c, c), |(lo, _)| (lo, c)));
                    } else if let Some(r) = run.take() {
                        each.push(r);
                    }
                }
                each.extend(run);
                if let [(lo, hi)] = each[..]
                    && lo == domain[0]
                    && hi == domain[domain.len() - 1]
                {
                    return Bool::from_bool(true);
                }
                let each: Vec<Bool> = each
                    .into_iter()
                    .map(|(lo, hi)| {
                        if lo == hi {
                            x.eq(idx(lo as u64))
                        } else {
                            Bool::and(&[x.bvuge(idx(lo as u64)), x.bvule(idx(hi as u64))])
                        }
                    })
                    .collect();
                Bool::or(&each)
            }
        }
    }

    /// Each workload end's side allows (an address has no side), and the
    /// destination's authorization as an L4 enforcer applies it.
    pub fn allowed(&self, src: &TableEnd, dst: &TableEnd, svc: &Service) -> Bool {
        let every = self.every_class();
        self.allowed_among(src, dst, svc, [&every, &every])
    }

    fn every_class(&self) -> BTreeSet<u32> {
        (0..self.tables.classes.len() as u32).collect()
    }

    /// [`Self::allowed`] with the authorization of an L7-capable enforcer,
    /// for a connection and, when present, its HTTP request.
    pub fn allowed_full(
        &self,
        src: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        request: &authz::Request,
    ) -> Bool {
        let every = self.every_class();
        self.allowed_full_among(src, dst, svc, request, [&every, &every])
    }

    /// [`Self::allowed_full`] when the source's class is one of
    /// `classes[0]` and the destination's one of `classes[1]`.
    pub fn allowed_full_among(
        &self,
        src: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        request: &authz::Request,
        classes: [&BTreeSet<u32>; 2],
    ) -> Bool {
        Bool::and(&[
            self.network_allowed(src, dst, svc, classes),
            self.authz_allows(src, dst, svc, classes, View::Full, Some(request)),
        ])
    }

    /// [`Self::allowed`] when the source's class is one of `classes[0]`
    /// and the destination's one of `classes[1]` (the entries of other
    /// classes are left out of the formula).
    pub fn allowed_among(
        &self,
        src: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        classes: [&BTreeSet<u32>; 2],
    ) -> Bool {
        Bool::and(&[
            self.network_allowed(src, dst, svc, classes),
            self.authz_allows(src, dst, svc, classes, View::L4, None),
        ])
    }

    /// The network layer alone: the source's egress and the destination's
    /// ingress.
    pub fn network_allowed(
        &self,
        src: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        classes: [&BTreeSet<u32>; 2],
    ) -> Bool {
        Bool::and(&[
            Bool::or(&[
                src.external.clone(),
                self.direction(Direction::Egress, &src.class, dst, dst, svc, classes[0]),
            ]),
            Bool::or(&[
                dst.external.clone(),
                self.direction(Direction::Ingress, &dst.class, src, dst, svc, classes[1]),
            ]),
        ])
    }

    /// One direction of the class `own` (its egress or ingress entry) for a
    /// flow with the end `remote`; `dst` is the destination end.
    pub fn direction(
        &self,
        direction: Direction,
        own: &BV,
        remote: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        classes: &BTreeSet<u32>,
    ) -> Bool {
        self.per_class(direction, own, classes.iter().copied(), |iso| {
            self.side(iso, remote, dst, svc)
        })
    }

    /// `own` is one of `classes` and `what` holds of its entry for the
    /// direction.
    fn per_class(
        &self,
        direction: Direction,
        own: &BV,
        classes: impl Iterator<Item = u32>,
        what: impl Fn(&ambit_compiler::table::Isolation) -> Bool,
    ) -> Bool {
        let entries = match direction {
            Direction::Egress => &self.tables.egress,
            Direction::Ingress => &self.tables.ingress,
        };
        let each: Vec<Bool> = classes
            .map(|c| Bool::and(&[own.eq(idx(c as u64)), what(&entries[c as usize])]))
            .collect();
        Bool::or(&each)
    }

    /// The Admin tier denies one direction of the class `own` (one of
    /// `classes`) for a flow with the end `remote`; `dst` is the
    /// destination end.
    pub fn admin_denies(
        &self,
        direction: Direction,
        own: &BV,
        remote: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
        classes: &[u32],
    ) -> Bool {
        self.per_class(direction, own, classes.iter().copied(), |iso| {
            self.chain(&iso.admin, remote, dst, svc).is(Decision::Deny)
        })
    }

    /// The decision of a tier's rules, in evaluation order (the first that
    /// matches decides).
    fn chain(&self, ids: &[u32], remote: &TableEnd, dst: &TableEnd, svc: &Service) -> TierDecision {
        let mut d = TierDecision::none();
        for &r in ids.iter().rev() {
            let rule = &self.tables.rules[r as usize];
            let action = match rule.action {
                Some(Action::Accept) => Decision::Accept,
                Some(Action::Deny) => Decision::Deny,
                Some(Action::Pass) | None => Decision::Pass,
            };
            d = TierDecision::ite(&self.rule_cached(r, remote, dst, svc), action, &d);
        }
        d
    }

    fn side(
        &self,
        iso: &ambit_compiler::table::Isolation,
        remote: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
    ) -> Bool {
        let admin = self.chain(&iso.admin, remote, dst, svc);
        let baseline = self.chain(&iso.baseline, remote, dst, svc);
        let admitted: Vec<Bool> = iso
            .rules
            .iter()
            .map(|&r| self.rule_cached(r, remote, dst, svc))
            .collect();
        through_tiers(
            &admin,
            &Bool::from_bool(iso.isolated()),
            &Bool::or(&admitted),
            &baseline,
        )
    }

    /// Rule `r` of the tables (`Tables::rules`) matches: its peers the
    /// remote end, its ports the flow (named ports at `dst`).
    pub fn rule_matches(&self, r: u32, remote: &TableEnd, dst: &TableEnd, svc: &Service) -> Bool {
        self.rule_cached(r, remote, dst, svc)
    }

    fn rule_cached(&self, r: u32, remote: &TableEnd, dst: &TableEnd, svc: &Service) -> Bool {
        let rule = &self.tables.rules[r as usize];
        let key = (r, rule.direction);
        if let Some(b) = self.rules.borrow().get(&key) {
            return b.clone();
        }
        let b = self.rule(rule, remote, dst, svc);
        self.rules.borrow_mut().insert(key, b.clone());
        b
    }

    fn rule(
        &self,
        rule: &ambit_compiler::table::TableRule,
        remote: &TableEnd,
        dst: &TableEnd,
        svc: &Service,
    ) -> Bool {
        let peers = self.peers(&rule.peers, rule.direction, remote);
        let ports = match &rule.ports {
            None => Bool::from_bool(true),
            Some(list) => {
                let each: Vec<Bool> = list.iter().map(|p| self.port(p, dst, svc)).collect();
                Bool::or(&each)
            }
        };
        Bool::and(&[peers, ports])
    }

    /// A rule's peers: every remote; a class of its sets (as ranges of
    /// consecutive ids, to keep the formula small); an address in its
    /// blocks. The remote is the destination of an egress rule, the source
    /// of an ingress one.
    fn peers(&self, p: &Peers, direction: Direction, remote: &TableEnd) -> Bool {
        if p.all {
            return Bool::from_bool(true);
        }
        let side = match direction {
            Direction::Egress => 1,
            Direction::Ingress => 0,
        };
        let classes = if self.domain[side].is_some() {
            self.class_in(side, &remote.class, |c| {
                p.classes.contains(c) || p.ip_classes.contains(c)
            })
        } else {
            let mut each = class_ranges(&p.classes, &remote.class);
            each.extend(class_ranges(&p.ip_classes, &remote.class));
            Bool::or(&each)
        };
        let blocks: Vec<Bool> = p
            .ip_blocks
            .iter()
            .map(|b| {
                let mut parts = vec![remote.addr.in_cidr(&b.cidr)];
                parts.extend(b.except.iter().map(|e| remote.addr.in_cidr(e).not()));
                Bool::and(&parts)
            })
            .collect();
        remote.external.ite(&Bool::or(&blocks), &classes)
    }

    fn port(&self, spec: &PortSpec, dst: &TableEnd, svc: &Service) -> Bool {
        let named = |name: &str, protocol: Option<Protocol>| {
            let key = (name.to_owned(), protocol);
            if let Some(b) = self.named.borrow().get(&key) {
                return b.clone();
            }
            // The classes with a port of the name, by the number and
            // protocol it resolves to: one range test of classes each.
            let mut by_port: BTreeMap<(Protocol, u16), BTreeSet<u32>> = BTreeMap::new();
            for (c, class) in self.tables.classes.iter().enumerate() {
                for cp in &class.ports {
                    if cp.name.as_deref() == Some(name) && protocol.is_none_or(|p| p == cp.protocol)
                    {
                        by_port
                            .entry((cp.protocol, cp.port))
                            .or_default()
                            .insert(c as u32);
                    }
                }
            }
            let each: Vec<Bool> = by_port
                .iter()
                .map(|(&(protocol, port), classes)| {
                    Bool::and(&[
                        self.class_in(1, &dst.class, |c| classes.contains(&c)),
                        svc.is_protocol(protocol),
                        svc.port.eq(BV::from_u64(port as u64, 16)),
                    ])
                })
                .collect();
            // An address outside the cluster has no named ports.
            let b = Bool::and(&[dst.external.not(), Bool::or(&each)]);
            self.named.borrow_mut().insert(key, b.clone());
            b
        };
        match spec {
            PortSpec::AnyPort(p) => svc.is_protocol(*p),
            PortSpec::Range {
                protocol,
                start,
                end,
            } => Bool::and(&[svc.is_protocol(*protocol), svc.in_range(*start, *end)]),
            PortSpec::Named { protocol, name } => named(name, Some(*protocol)),
            PortSpec::NamedAnyProtocol { name } => named(name, None),
        }
    }
}

/// Why the solver gave up (`unknown` when it does not say).
pub fn reason_unknown(solver: &z3::Solver) -> String {
    solver
        .get_reason_unknown()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Not a Pod reaching itself, for ends that index `cluster.workloads` (a
/// Pod's connection to itself is always allowed, so no question asks about
/// it; a workload of several pods does reach itself): one constraint over
/// the ranges of the Pods' indices, not one per Pod.
pub fn not_to_itself(cluster: &Cluster, src: &BV, dst: &BV) -> Bool {
    let pods: Vec<u32> = cluster
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.kind == ambit_compiler::model::WorkloadKind::Pod)
        .map(|(i, _)| i as u32)
        .collect();
    Bool::and(&[src.eq(dst), in_ranges(&pods, src)]).not()
}

/// A solver for a formula of bit-vectors and Booleans: simplified, the
/// equalities solved, bit-blasted and given to the SAT solver. One part of
/// a check at 1,000 pods takes 50-300 ms with it against ~1 s with the
/// default solver, which adds preprocessing of its own. A formula with
/// text left after the simplification is undecided here.
pub fn bit_blasting() -> z3::Solver {
    [
        "propagate-values",
        "solve-eqs",
        "elim-uncnstr",
        "bit-blast",
        "sat",
    ]
    .iter()
    .fold(z3::Tactic::new("simplify"), |t, next| {
        t.and_then(&z3::Tactic::new(next))
    })
    .solver()
}

/// Is `solver`'s formula, with `extra`, satisfiable? Asked of
/// [`bit_blasting`] first, and of `solver` itself when that chain leaves
/// it undecided.
pub fn satisfiable(solver: &z3::Solver, extra: &[&Bool]) -> z3::SatResult {
    let fast = bit_blasting();
    for a in solver.get_assertions().iter().chain(extra.iter().copied()) {
        fast.assert(a);
    }
    match fast.check() {
        z3::SatResult::Unknown => {
            solver.push();
            for a in extra {
                solver.assert(*a);
            }
            let result = solver.check();
            solver.pop(1);
            result
        }
        result => result,
    }
}

/// `x` is one of `ids`, as ranges of consecutive ids.
pub fn in_ranges(ids: &[u32], x: &BV) -> Bool {
    if ids.is_empty() {
        return Bool::from_bool(false);
    }
    Bool::or(&ranges(ids, x))
}

fn class_ranges(set: &ClassSet, x: &BV) -> Vec<Bool> {
    let ids: Vec<u32> = set.iter().collect();
    ranges(&ids, x)
}

fn ranges(ids: &[u32], x: &BV) -> Vec<Bool> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            x.eq(idx(start as u64))
        } else {
            Bool::and(&[x.bvuge(idx(start as u64)), x.bvule(idx(end as u64))])
        });
        i += 1;
    }
    out
}
