//! Semantic diff: `ambit diff BASE HEAD`. Which flows does a change open
//! (denied in BASE, allowed in HEAD) and close?
//!
//! Workloads are matched by namespace and name; those on one side only are
//! listed as added or removed, and their flows are not counted as opened or
//! closed. For every ordered pair of workloads present on both sides the
//! allowed ports of both versions (exact port ranges from the decision
//! tables, every tier and the L4 view of authorization) are compared; for
//! addresses outside the workloads, the address space is cut at every CIDR
//! boundary of either version (ipBlocks, admin networks, node addresses,
//! authorization CIDRs), one address of each piece is asked, and pieces
//! that change alike are merged into maximal CIDRs.
//!
//! A flow's decision is a function of its ends (their labels, addresses,
//! ports, identity), the policies applying to the source's egress and the
//! destination's ingress, and the mesh settings: only flows with an end
//! whose own attributes or applying policies changed are asked.
//!
//! Then Z3 proves the lists exact over both versions' tables (any common
//! workloads or outside address, any port, any protocol): no flow outside
//! them changes, and every flow in them changes as its list says. When the
//! lists are empty, that is the proof that the versions are equivalent;
//! should the solver find a flow, the diff stops with an internal error
//! instead of a wrong answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ambit_compiler::authz::Pattern;
use ambit_compiler::model::{Cluster, Protocol, WorkloadKind};
use ambit_compiler::probe::{self, DecidedBy, Probe};
use ambit_compiler::table::{Endpoint, PortSet, Tables};
use ipnet::IpNet;
use rayon::prelude::*;
use z3::ast::Bool;
use z3::{SatResult, Solver};

use crate::encode::{
    Addr, Service, TableEncoding, TableEnd, idx, idx_const, reason_unknown, set_index_domain,
};

/// One version: the cluster and its tables.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub cluster: &'a Cluster,
    pub tables: &'a Tables,
}

/// A flow set whose decision changed: from one end to another, on ports.
#[derive(Debug, Clone)]
pub struct Change {
    /// `namespace/name`, or `ip:CIDR` for addresses outside the workloads.
    pub from: String,
    pub to: String,
    pub ports: PortSet,
    /// One flow of the set.
    pub witness: Witness,
    /// What decides the witness in BASE and in HEAD (`ambit query`'s
    /// `decided_by`).
    pub base: Vec<DecidedBy>,
    pub head: Vec<DecidedBy>,
}

/// A probe of the change: the format of `ambit query --probes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Witness {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// The answer of a diff.
#[derive(Debug, Clone)]
pub struct Diff {
    pub opened: Vec<Change>,
    pub closed: Vec<Change>,
    /// `namespace/name`, sorted.
    pub added_workloads: Vec<String>,
    pub removed_workloads: Vec<String>,
    /// Workloads on both sides.
    pub common: usize,
}

impl Diff {
    /// No flow between workloads present on both sides (or between one of
    /// them and an outside address) changes.
    pub fn equivalent(&self) -> bool {
        self.opened.is_empty() && self.closed.is_empty()
    }
}

/// Why a diff has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffError {
    Unknown(String),
    Internal(String),
}

impl std::fmt::Display for DiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffError::Unknown(why) => write!(f, "the solver could not decide: {why}"),
            DiffError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

/// A workload on both sides: its index in each version's tables.
#[derive(Debug, Clone)]
struct Common {
    id: String,
    base: u32,
    head: u32,
}

/// An end as the enumeration sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum End {
    /// A workload on both sides, by index into the common ones.
    Workload(usize),
    /// An address outside the workloads.
    Outside(IpAddr),
}

/// Allowed ports of both versions, asked once per pair of classes.
struct Enumerator<'a> {
    base: Version<'a>,
    head: Version<'a>,
    common: &'a [Common],
    /// (from, to) as class pairs or addresses → (base, head) ports.
    memo: HashMap<(Side, Side), (PortSet, PortSet)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Classes(u32, u32),
    /// A workload that is a Pod: a pod to itself is always allowed, so it
    /// is its own key when it meets itself.
    Itself(usize),
    Address(IpAddr),
}

impl Enumerator<'_> {
    fn endpoint(&self, e: End, head: bool) -> Endpoint {
        match e {
            End::Workload(i) => Endpoint::Workload(if head {
                self.common[i].head
            } else {
                self.common[i].base
            }),
            End::Outside(ip) => Endpoint::Ip(ip),
        }
    }

    fn side(&self, e: End, same: bool) -> Side {
        match e {
            End::Workload(i) if same => Side::Itself(i),
            End::Workload(i) => {
                let c = &self.common[i];
                Side::Classes(
                    self.base.tables.workloads[c.base as usize].class,
                    self.head.tables.workloads[c.head as usize].class,
                )
            }
            End::Outside(ip) => Side::Address(ip),
        }
    }

    /// (BASE, HEAD) allowed ports from `from` to `to`.
    fn ports(&mut self, from: End, to: End) -> (PortSet, PortSet) {
        let same = from == to;
        let key = (self.side(from, same), self.side(to, same));
        if let Some(hit) = self.memo.get(&key) {
            return hit.clone();
        }
        let b = self
            .base
            .tables
            .allowed_ports(self.endpoint(from, false), self.endpoint(to, false));
        let h = self
            .head
            .tables
            .allowed_ports(self.endpoint(from, true), self.endpoint(to, true));
        self.memo.insert(key, (b.clone(), h.clone()));
        (b, h)
    }

    fn name(&self, e: End) -> String {
        match e {
            End::Workload(i) => self.common[i].id.clone(),
            End::Outside(ip) => format!("ip:{ip}"),
        }
    }

    /// What decides the first flow of `ports` in BASE and in HEAD.
    fn decided(&self, from: End, to: End, ports: &PortSet) -> (Vec<DecidedBy>, Vec<DecidedBy>) {
        let (protocol, port) = ports.first().expect("a change has a port");
        let decided = |v: Version<'_>, head: bool| {
            let probe = Probe {
                from_name: self.name(from),
                to_name: self.name(to),
                from: self.endpoint(from, head),
                to: self.endpoint(to, head),
                port,
                protocol,
                request: None,
                ext_authz: ambit_compiler::authz::ExtAuthz::Unknown,
            };
            probe::answer(v.tables, &probe).decided_by
        };
        (decided(self.base, false), decided(self.head, true))
    }

    /// A change of `ports` from `from` to `to` (named `names`), its witness
    /// the first flow, decided as `decided` says (alike for the ends'
    /// classes).
    fn change(
        &self,
        from: End,
        to: End,
        names: (String, String),
        ports: PortSet,
        decided: &(Vec<DecidedBy>, Vec<DecidedBy>),
    ) -> Change {
        let (protocol, port) = ports.first().expect("a change has a port");
        Change {
            from: names.0,
            to: names.1,
            witness: Witness {
                from: self.name(from),
                to: self.name(to),
                port,
                protocol,
            },
            base: decided.0.clone(),
            head: decided.1.clone(),
            ports,
        }
    }
}

/// Compare two versions.
pub fn diff(base: Version<'_>, head: Version<'_>) -> Result<Diff, DiffError> {
    let ids = |v: Version<'_>| -> BTreeSet<String> {
        v.cluster.workloads.iter().map(|w| w.id()).collect()
    };
    let (base_ids, head_ids) = (ids(base), ids(head));
    let added_workloads: Vec<String> = head_ids.difference(&base_ids).cloned().collect();
    let removed_workloads: Vec<String> = base_ids.difference(&head_ids).cloned().collect();
    let common: Vec<Common> = base
        .cluster
        .workloads
        .iter()
        .filter_map(|w| {
            Some(Common {
                id: w.id(),
                base: base.tables.workload_index(&w.namespace, &w.name)?,
                head: head.tables.workload_index(&w.namespace, &w.name)?,
            })
        })
        .collect();
    let pieces = outside_pieces(base, head);
    let mut e = Enumerator {
        base,
        head,
        common: &common,
        memo: HashMap::new(),
    };
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    // Workloads of one class in each version decide alike: one pair of
    // each pair of groups is asked, and its answer is every pair's. A
    // workload to itself is a flow too (replicas of a controller are
    // different pods), but a Pod to itself is always allowed.
    let mut by_class: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, c) in common.iter().enumerate() {
        let key = (
            base.tables.workloads[c.base as usize].class,
            head.tables.workloads[c.head as usize].class,
        );
        by_class.entry(key).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = by_class.into_values().collect();
    let dirty = dirty(base, head, &common);
    let any = |group: &[usize], of: &[bool]| group.iter().any(|&i| of[i]);
    // Each common workload is a Pod in BASE, in HEAD; the lists count it a
    // Pod when it is one in either version.
    let pod: Vec<(bool, bool)> = common
        .iter()
        .map(|c| {
            (
                base.tables.workloads[c.base as usize].kind == WorkloadKind::Pod,
                head.tables.workloads[c.head as usize].kind == WorkloadKind::Pod,
            )
        })
        .collect();
    let is_pod = |i: usize| pod[i].0 || pod[i].1;
    let dst_dirty: Vec<bool> = groups.iter().map(|g| any(g, &dirty.dst)).collect();
    let dirty_dst_groups: Vec<usize> = (0..groups.len()).filter(|&g| dst_dirty[g]).collect();
    let every: Vec<usize> = (0..groups.len()).collect();
    for ga in &groups {
        // A clean source needs asking only towards dirty destinations.
        let towards = if any(ga, &dirty.src) {
            &every
        } else {
            &dirty_dst_groups
        };
        for gb in towards.iter().map(|&g| &groups[g]) {
            let Some((ra, rb)) = ga
                .iter()
                .flat_map(|&a| gb.iter().map(move |&b| (a, b)))
                .find(|&(a, b)| a != b || !is_pod(a))
            else {
                continue;
            };
            let (pb, ph) = e.ports(End::Workload(ra), End::Workload(rb));
            for (list, ports) in [(&mut opened, ph.minus(&pb)), (&mut closed, pb.minus(&ph))] {
                if ports.is_empty() {
                    continue;
                }
                let decided = e.decided(End::Workload(ra), End::Workload(rb), &ports);
                for &a in ga {
                    for &b in gb {
                        if a == b && is_pod(a) {
                            continue;
                        }
                        let (from, to) = (End::Workload(a), End::Workload(b));
                        list.push(e.change(
                            from,
                            to,
                            (e.name(from), e.name(to)),
                            ports.clone(),
                            &decided,
                        ));
                    }
                }
            }
        }
    }
    // Outside addresses, to and from each group: neighbouring pieces that
    // change alike merge into maximal CIDRs.
    for group in &groups {
        let w = group[0];
        for inbound in [true, false] {
            if !any(group, if inbound { &dirty.dst } else { &dirty.src }) {
                continue;
            }
            let mut runs: Vec<(usize, usize, PortSet, PortSet)> = Vec::new();
            for (p, piece) in pieces.iter().enumerate() {
                let outside = End::Outside(piece.representative);
                let (from, to) = if inbound {
                    (outside, End::Workload(w))
                } else {
                    (End::Workload(w), outside)
                };
                let (pb, ph) = e.ports(from, to);
                let (open, close) = (ph.minus(&pb), pb.minus(&ph));
                if open.is_empty() && close.is_empty() {
                    continue;
                }
                match runs.last_mut() {
                    Some((_, last, o, c))
                        if pieces[*last].v6 == piece.v6
                            && pieces[*last].hi.checked_add(1) == Some(piece.lo)
                            && *o == open
                            && *c == close =>
                    {
                        *last = p
                    }
                    _ => runs.push((p, p, open, close)),
                }
            }
            for (first, last, open, close) in runs {
                for net in cidrs(pieces[first].v6, pieces[first].lo, pieces[last].hi) {
                    let outside = End::Outside(net.network());
                    let cidr = format!("ip:{net}");
                    for (list, ports) in [(&mut opened, &open), (&mut closed, &close)] {
                        if ports.is_empty() {
                            continue;
                        }
                        let ends = |w: usize| {
                            if inbound {
                                (outside, End::Workload(w))
                            } else {
                                (End::Workload(w), outside)
                            }
                        };
                        let (from, to) = ends(w);
                        let decided = e.decided(from, to, ports);
                        for &m in group {
                            let (from, to) = ends(m);
                            let names = if inbound {
                                (cidr.clone(), e.name(to))
                            } else {
                                (e.name(from), cidr.clone())
                            };
                            list.push(e.change(from, to, names, ports.clone(), &decided));
                        }
                    }
                }
            }
        }
    }
    // One order whatever the grouping: by source, then destination.
    for list in [&mut opened, &mut closed] {
        list.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
    }
    let diff = Diff {
        opened,
        closed,
        added_workloads,
        removed_workloads,
        common: common.len(),
    };
    // The proof: Z3 finds no flow outside the lists whose decision
    // changes, and none inside them that does not change as they say.
    prove(base, head, &common, &groups, &pod, &dirty, &diff)?;
    Ok(diff)
}

/// Which common workloads' flows can change: a flow's decision is a
/// function of its ends' own attributes (labels, namespace labels, ports,
/// addresses, identity), the policies that apply to the source's egress and
/// to the destination's ingress and authorization, and the mesh settings.
/// A flow whose ends are alike in both versions, with the same policies
/// applying, is decided alike; only the others are asked (and proved).
struct Dirty {
    /// As a source: the workload or its egress policies changed.
    src: Vec<bool>,
    /// As a destination: the workload, or its ingress or authorization
    /// policies changed.
    dst: Vec<bool>,
}

fn dirty(base: Version<'_>, head: Version<'_>, common: &[Common]) -> Dirty {
    let (b, h) = (base.cluster, head.cluster);
    let everything = b.mesh != h.mesh
        || b.nodes != h.nodes
        || b.services != h.services
        || base.tables.authz.trust != head.tables.authz.trust
        || base.tables.authz.root_namespace != head.tables.authz.root_namespace;
    if everything {
        return Dirty {
            src: vec![true; common.len()],
            dst: vec![true; common.len()],
        };
    }
    // Policies that differ (or exist on one side), by kind, namespace, name.
    let mut changed: BTreeSet<(String, String, String)> = BTreeSet::new();
    fn differ<T: PartialEq>(
        changed: &mut BTreeSet<(String, String, String)>,
        kind: &str,
        a: BTreeMap<(String, String), &T>,
        b: BTreeMap<(String, String), &T>,
    ) {
        for k in a.keys().chain(b.keys()) {
            if a.get(k) != b.get(k) {
                changed.insert((kind.to_owned(), k.0.clone(), k.1.clone()));
            }
        }
    }
    fn keyed<T>(
        items: &[T],
        key: impl Fn(&T) -> (String, String),
    ) -> BTreeMap<(String, String), &T> {
        items.iter().map(|p| (key(p), p)).collect()
    }
    let np_key = |p: &ambit_compiler::model::NetworkPolicy| (p.namespace.clone(), p.name.clone());
    differ(
        &mut changed,
        "NetworkPolicy",
        keyed(&b.network_policies, np_key),
        keyed(&h.network_policies, np_key),
    );
    let admin_key =
        |p: &ambit_compiler::admin::AdminPolicy| (p.kind.as_str().to_owned(), p.name.clone());
    let mut admin_changed = BTreeSet::new();
    differ(
        &mut admin_changed,
        "admin",
        keyed(&b.admin_policies, admin_key),
        keyed(&h.admin_policies, admin_key),
    );
    for (_, kind, name) in admin_changed {
        changed.insert((kind, String::new(), name));
    }
    let authz_key = |p: &ambit_compiler::authz::AuthzPolicy| (p.namespace.clone(), p.name.clone());
    differ(
        &mut changed,
        "AuthorizationPolicy",
        keyed(&b.authorization_policies, authz_key),
        keyed(&h.authorization_policies, authz_key),
    );
    let peer_key = |p: &ambit_compiler::authz::PeerAuthn| (p.namespace.clone(), p.name.clone());
    differ(
        &mut changed,
        "PeerAuthentication",
        keyed(&b.peer_authentications, peer_key),
        keyed(&h.peer_authentications, peer_key),
    );

    // Per class of a version: does a changed policy apply to its egress,
    // to its ingress?
    let classes = |v: Version<'_>| -> (Vec<bool>, Vec<bool>) {
        let t = v.tables;
        let policy = |i: u32| {
            let e = &t.policies[i as usize];
            changed.contains(&(e.kind.clone(), e.namespace.clone(), e.name.clone()))
        };
        let rule = |r: &u32| policy(t.rules[*r as usize].policy);
        let side = |iso: &ambit_compiler::table::Isolation| {
            iso.policies.iter().any(|&p| policy(p))
                || iso
                    .admin
                    .iter()
                    .chain(&iso.baseline)
                    .chain(&iso.rules)
                    .any(rule)
        };
        let authz = |name: (&str, &str), kind: &str| {
            changed.contains(&(kind.to_owned(), name.0.to_owned(), name.1.to_owned()))
        };
        let egress = t.egress.iter().map(side).collect();
        let ingress = t
            .ingress
            .iter()
            .enumerate()
            .map(|(c, iso)| {
                side(iso)
                    || t.authz.classes.get(c).is_some_and(|a| {
                        a.policies.iter().chain(&a.waypoint_policies).any(|&p| {
                            let p = &t.authz.policies[p as usize];
                            authz((&p.namespace, &p.name), "AuthorizationPolicy")
                        }) || a
                            .mtls
                            .from
                            .iter()
                            .chain(a.mtls.ports.iter().map(|(_, _, i)| i))
                            .any(|&i| {
                                let (ns, name) = &t.authz.peer_authentications[i as usize];
                                authz((ns, name), "PeerAuthentication")
                            })
                    })
            })
            .collect();
        (egress, ingress)
    };
    let (b_out, b_in) = classes(base);
    let (h_out, h_in) = classes(head);
    let mut out = Dirty {
        src: Vec::with_capacity(common.len()),
        dst: Vec::with_capacity(common.len()),
    };
    for c in common {
        let (wb, wh) = (
            &base.tables.workloads[c.base as usize],
            &head.tables.workloads[c.head as usize],
        );
        let (xb, xh) = (
            b.workload(&wb.namespace, &wb.name)
                .expect("a workload of the base"),
            h.workload(&wh.namespace, &wh.name)
                .expect("a workload of the head"),
        );
        let ns_labels = |c: &Cluster| c.namespaces.get(&xb.namespace).map(|n| n.labels.clone());
        let itself = xb.labels != xh.labels
            || xb.ports != xh.ports
            || xb.ips != xh.ips
            || xb.host_network != xh.host_network
            || xb.service_account != xh.service_account
            || xb.inject_annotation != xh.inject_annotation
            || xb.kind != xh.kind
            || ns_labels(b) != ns_labels(h);
        out.src
            .push(itself || b_out[wb.class as usize] || h_out[wh.class as usize]);
        out.dst
            .push(itself || b_in[wb.class as usize] || h_in[wh.class as usize]);
    }
    out
}

/// A piece of the outside address space: inclusive bounds and an address
/// of it that no workload has.
#[derive(Debug, Clone)]
struct Piece {
    v6: bool,
    lo: u128,
    hi: u128,
    representative: IpAddr,
}

fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn to_ip(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

/// The address space cut at every boundary either version draws, less the
/// workloads' own addresses.
fn outside_pieces(base: Version<'_>, head: Version<'_>) -> Vec<Piece> {
    let mut nets: Vec<IpNet> = Vec::new();
    let mut own: BTreeSet<IpAddr> = BTreeSet::new();
    for v in [base, head] {
        for rule in &v.tables.rules {
            for b in &rule.peers.ip_blocks {
                nets.push(b.cidr);
                nets.extend(b.except.iter().copied());
            }
        }
        for p in &v.tables.authz.policies {
            for rule in &p.rules {
                for f in rule.fields() {
                    for value in f.values.iter().chain(&f.not_values) {
                        if let Pattern::Cidr(net) = value {
                            nets.push(*net);
                        }
                    }
                }
            }
        }
        for n in &v.cluster.nodes {
            nets.extend(n.addresses.iter().map(|a| IpNet::from(*a)));
        }
        own.extend(
            v.cluster
                .workloads
                .iter()
                .flat_map(|w| w.ips.iter().copied()),
        );
    }
    let mut pieces = Vec::new();
    for v6 in [false, true] {
        let top: u128 = if v6 { u128::MAX } else { u32::MAX as u128 };
        // Cut points: the first address of each piece.
        let mut cuts: BTreeSet<u128> = BTreeSet::from([0]);
        let mut add = |lo: u128, hi: u128| {
            cuts.insert(lo);
            if hi < top {
                cuts.insert(hi + 1);
            }
        };
        for net in nets.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6) {
            let (_, lo) = bits(net.network());
            let (_, hi) = bits(net.broadcast());
            add(lo, hi);
        }
        let own_here: Vec<u128> = own
            .iter()
            .map(|ip| bits(*ip))
            .filter(|(f, _)| *f == v6)
            .map(|(_, x)| x)
            .collect();
        for &x in &own_here {
            add(x, x);
        }
        let cuts: Vec<u128> = cuts.into_iter().collect();
        for (i, &lo) in cuts.iter().enumerate() {
            let hi = cuts.get(i + 1).map_or(top, |next| next - 1);
            if lo == hi && own_here.binary_search(&lo).is_ok() {
                continue; // a workload's own address
            }
            pieces.push(Piece {
                v6,
                lo,
                hi,
                representative: to_ip(v6, lo),
            });
        }
    }
    pieces
}

/// The maximal CIDRs that cover `lo..=hi` exactly.
fn cidrs(v6: bool, lo: u128, hi: u128) -> Vec<IpNet> {
    let width: u32 = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    let mut start = lo;
    loop {
        // The largest aligned block at `start` that ends at or before `hi`.
        let mut size_bits = if start == 0 {
            width
        } else {
            start.trailing_zeros().min(width)
        };
        while size_bits > 0 {
            let last = if size_bits >= 128 {
                u128::MAX
            } else {
                start + ((1u128 << size_bits) - 1)
            };
            if last <= hi {
                break;
            }
            size_bits -= 1;
        }
        let prefix = (width - size_bits) as u8;
        out.push(IpNet::new(to_ip(v6, start), prefix).expect("a valid prefix"));
        let last = if size_bits >= 128 {
            u128::MAX
        } else {
            start + ((1u128 << size_bits) - 1)
        };
        if last >= hi {
            break;
        }
        start = last + 1;
    }
    out
}

/// An end of a list entry as the proof reads it: a group of common
/// workloads (one class in each version) or outside addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Group(usize),
    Net(IpNet),
}

/// The lists condensed to one entry per pair of ends: every pair of members
/// of two groups (or every member of a group and a CIDR) is listed alike,
/// or the lists are not what the proof at the level of groups reads.
fn condense(
    list: &[Change],
    common: &[Common],
    groups: &[Vec<usize>],
    is_pod: &[bool],
) -> Result<Vec<(Key, Key, PortSet)>, DiffError> {
    let group_of: HashMap<&str, (usize, usize)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, members)| members.iter().map(move |&i| (g, i)))
        .map(|(g, i)| (common[i].id.as_str(), (g, i)))
        .collect();
    let internal = |why: String| DiffError::Internal(format!("the lists {why}"));
    let key = |name: &str| -> Result<(Key, Option<usize>), DiffError> {
        if let Some(net) = name
            .strip_prefix("ip:")
            .and_then(|c| c.parse::<IpNet>().ok())
        {
            return Ok((Key::Net(net), None));
        }
        group_of
            .get(name)
            .map(|&(g, i)| (Key::Group(g), Some(i)))
            .ok_or_else(|| internal(format!("name {name}, not a common workload")))
    };
    // Per pair of ends: the ports, and the member pairs listed (an address
    // counts as member usize::MAX).
    type Listed = (PortSet, BTreeSet<(usize, usize)>);
    let mut by: HashMap<(Key, Key), Listed> = HashMap::new();
    // The entries in the lists' order: the same question to the solver on
    // every run.
    let mut order = Vec::new();
    for c in list {
        let ((kf, mf), (kt, mt)) = (key(&c.from)?, key(&c.to)?);
        if let (Some(a), Some(b)) = (mf, mt)
            && a == b
            && is_pod[a]
        {
            return Err(internal(format!("the pod {} to itself", c.from)));
        }
        let pair = (mf.unwrap_or(usize::MAX), mt.unwrap_or(usize::MAX));
        let entry = by.entry((kf, kt)).or_insert_with(|| {
            order.push((kf, kt));
            (c.ports.clone(), BTreeSet::new())
        });
        if entry.0 != c.ports {
            return Err(internal(format!(
                "{} -> {} with ports unlike its group's",
                c.from, c.to
            )));
        }
        if !entry.1.insert(pair) {
            return Err(internal(format!("{} -> {} twice", c.from, c.to)));
        }
    }
    order
        .into_iter()
        .map(|(kf, kt)| {
            let (ports, pairs) = by.remove(&(kf, kt)).expect("an entry of the order");
            let expected = match (kf, kt) {
                (Key::Group(a), Key::Group(b)) => {
                    let selves = if a == b {
                        groups[a].iter().filter(|&&i| is_pod[i]).count()
                    } else {
                        0
                    };
                    groups[a].len() * groups[b].len() - selves
                }
                (Key::Group(g), Key::Net(_)) | (Key::Net(_), Key::Group(g)) => groups[g].len(),
                (Key::Net(a), Key::Net(b)) => {
                    return Err(internal(format!("ip:{a} -> ip:{b}")));
                }
            };
            if pairs.len() != expected {
                return Err(internal(format!(
                    "{} of {expected} member pairs of a pair of groups",
                    pairs.len()
                )));
            }
            Ok((kf, kt, ports))
        })
        .collect()
}

/// Prove the lists exact with Z3 over both versions' tables: ends that are
/// workloads present on both sides or an address no workload has, any
/// port, any protocol. A flow that changes but is in no list, or is in a
/// list but does not change so, is an internal error. With empty lists this
/// is the proof of equivalence.
///
/// The tables read a workload only through its class, so an end ranges
/// over the groups of common workloads (one class in each version), not
/// over the workloads: the lists, checked to list every member pair of a
/// pair of groups alike, are asked once per pair of groups. A group of one
/// Pod does not meet itself (a pod to itself is always allowed); a larger
/// group does, its members being different workloads.
///
/// Only flows with a changed end can change, so the question is asked in
/// parts, one per changed group as the source (any destination) and one
/// per changed group as the destination (any source): with one end a
/// constant class, the solver's preprocessing settles every rule about
/// that end before the search, and each part is small where one question
/// over every pair of groups is not.
fn prove(
    base: Version<'_>,
    head: Version<'_>,
    common: &[Common],
    groups: &[Vec<usize>],
    pod: &[(bool, bool)],
    dirty: &Dirty,
    diff: &Diff,
) -> Result<(), DiffError> {
    let n = groups.len();
    let changed = |of: &[bool]| -> Vec<usize> {
        (0..n)
            .filter(|&g| groups[g].iter().any(|&i| of[i]))
            .collect()
    };
    let (src_parts, dst_parts) = (changed(&dirty.src), changed(&dirty.dst));
    if src_parts.is_empty() && dst_parts.is_empty() {
        // Nothing that decides a flow changed.
        return Ok(());
    }
    // As the lists count it: a Pod in either version.
    let is_pod: Vec<bool> = pod.iter().map(|&(b, h)| b || h).collect();
    let proof = Proof {
        base,
        head,
        common,
        groups,
        opened: condense(&diff.opened, common, groups, &is_pod)?,
        closed: condense(&diff.closed, common, groups, &is_pod)?,
        own_runs: own_runs(base, head),
        // A group of one Pod, which does not meet itself.
        lone_pod: groups
            .iter()
            .map(|m| matches!(m[..], [only] if pod[only] == (true, true)))
            .collect(),
    };
    let domain = (n + 1)
        .max(base.tables.classes.len())
        .max(head.tables.classes.len());
    // The other end in chunks of groups (the outside addresses with the
    // first): the solver's effort per group grows with the size of the
    // formula, and a chunk's formula holds only its classes' entries. The
    // parts run on every core, each in its own solver context; the error
    // reported is the first in part order.
    let every: Vec<usize> = (0..n).collect();
    let parts: Vec<(Fixed, usize, &[usize])> = src_parts
        .iter()
        .map(|&g| Fixed::Src(g))
        .chain(dst_parts.iter().map(|&g| Fixed::Dst(g)))
        .flat_map(|fixed| {
            every
                .chunks(PROOF_CHUNK)
                .enumerate()
                .map(move |(i, among)| (fixed, i, among))
        })
        .collect();
    match parts.par_iter().find_map_first(|&(fixed, i, among)| {
        z3::with_z3_config(&z3::Config::new(), || {
            set_index_domain(domain);
            proof.part(fixed, among, i == 0).err()
        })
    }) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Groups of workloads per part of the proof (measured: 128 is fastest at
/// 1,000 and 10,000 pods).
const PROOF_CHUNK: usize = 128;

/// The workloads' addresses as runs of consecutive addresses (pod IPs are
/// mostly allocated in sequence): a few ranges, not one inequality per
/// address.
fn own_runs(base: Version<'_>, head: Version<'_>) -> Vec<(IpAddr, IpAddr)> {
    let own: BTreeSet<IpAddr> = [base, head]
        .iter()
        .flat_map(|v| {
            v.cluster
                .workloads
                .iter()
                .flat_map(|w| w.ips.iter().copied())
        })
        .collect();
    let mut runs: Vec<(IpAddr, IpAddr)> = Vec::new();
    for &ip in &own {
        match runs.last_mut() {
            Some((_, hi))
                if bits(*hi).0 == bits(ip).0 && bits(*hi).1.checked_add(1) == Some(bits(ip).1) =>
            {
                *hi = ip
            }
            _ => runs.push((ip, ip)),
        }
    }
    runs
}

/// What every part of the proof reads.
struct Proof<'a> {
    base: Version<'a>,
    head: Version<'a>,
    common: &'a [Common],
    groups: &'a [Vec<usize>],
    opened: Vec<(Key, Key, PortSet)>,
    closed: Vec<(Key, Key, PortSet)>,
    own_runs: Vec<(IpAddr, IpAddr)>,
    lone_pod: Vec<bool>,
}

/// One end of a part: which group (or, past the last, an outside address)
/// and its ends in both versions' tables.
struct PartEnd {
    which: z3::ast::BV,
    base: TableEnd,
    head: TableEnd,
}

/// The end a part fixes to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    Src(usize),
    Dst(usize),
}

impl Proof<'_> {
    fn classes(&self, g: usize) -> (u64, u64) {
        let c = &self.common[self.groups[g][0]];
        (
            self.base.tables.workloads[c.base as usize].class as u64,
            self.head.tables.workloads[c.head as usize].class as u64,
        )
    }

    /// The fixed end: a constant group and its constant classes.
    fn fixed_end(&self, prefix: &str, g: usize) -> PartEnd {
        let (cb, ch) = self.classes(g);
        PartEnd {
            which: idx(g as u64),
            base: TableEnd::class(idx(cb), prefix),
            head: TableEnd::class(idx(ch), prefix),
        }
    }

    /// The free end: one of the groups `among`, or with `outside` an
    /// address no workload has.
    fn free_end(&self, solver: &Solver, prefix: &str, among: &[usize], outside: bool) -> PartEnd {
        let n = self.groups.len();
        let addr = Addr::new(&format!("{prefix}.addr"));
        let which = idx_const(format!("{prefix}.which"));
        let external = which.eq(idx(n as u64));
        let end = |version: &str| TableEnd {
            class: idx_const(format!("{prefix}.{version}")),
            external: external.clone(),
            addr: addr.clone(),
        };
        let (b, h) = (end("base"), end("head"));
        let ids: Vec<u32> = among.iter().map(|&g| g as u32).collect();
        let mut domain = vec![crate::encode::in_ranges(&ids, &which)];
        if outside {
            domain.push(external.clone());
        }
        solver.assert(Bool::or(&domain));
        for &g in among {
            let (cb, ch) = self.classes(g);
            // A workload's address is read only through its class.
            solver.assert(
                which
                    .eq(idx(g as u64))
                    .implies(Bool::and(&[b.class.eq(idx(cb)), h.class.eq(idx(ch))])),
            );
        }
        if outside {
            let mut address = vec![addr.valid.clone(), addr.well_formed()];
            address.extend(
                self.own_runs
                    .iter()
                    .map(|&(lo, hi)| addr.in_range(lo, hi).not()),
            );
            solver.assert(external.implies(Bool::and(&address)));
        }
        PartEnd {
            which,
            base: b,
            head: h,
        }
    }

    /// The flows between the fixed group and the groups `among` (and with
    /// `outside` the addresses no workload has), every port and protocol.
    fn part(&self, fixed: Fixed, among: &[usize], outside: bool) -> Result<(), DiffError> {
        let n = self.groups.len();
        // Bit-vectors only: the authorization's texts are known per class.
        let solver = Solver::new_for_logic("QF_BV").unwrap_or_default();
        let svc = Service::new();
        solver.assert(svc.protocol.bvule(idx(2)));
        // Ports 1-65535, as the lists count them.
        solver.assert(svc.port.bvuge(z3::ast::BV::from_u64(1, 16)));
        let (g, src_fixed) = match fixed {
            Fixed::Src(g) => (g, true),
            Fixed::Dst(g) => (g, false),
        };
        let one = self.fixed_end(if src_fixed { "src" } else { "dst" }, g);
        let free = self.free_end(
            &solver,
            if src_fixed { "dst" } else { "src" },
            among,
            outside,
        );
        if self.lone_pod[g] {
            // A lone Pod does not meet itself.
            solver.assert(free.which.eq(idx(g as u64)).not());
        }
        let (s, d) = if src_fixed {
            (&one, &free)
        } else {
            (&free, &one)
        };
        // The classes each end can be in, per version: the entries of the
        // others are left out of the formula.
        let classes = |head: bool| -> [BTreeSet<u32>; 2] {
            let of = |g: usize| {
                let (b, h) = self.classes(g);
                (if head { h } else { b }) as u32
            };
            let fixed = BTreeSet::from([of(g)]);
            let free: BTreeSet<u32> = among.iter().map(|&g| of(g)).collect();
            if src_fixed {
                [fixed, free]
            } else {
                [free, fixed]
            }
        };
        let allowed = |v: Version<'_>, head: bool, s: &TableEnd, d: &TableEnd| {
            let [from, to] = classes(head);
            TableEncoding::within(v.tables, [&from, &to]).allowed_among(s, d, &svc, [&from, &to])
        };
        let in_base = allowed(self.base, false, &s.base, &d.base);
        let in_head = allowed(self.head, true, &s.head, &d.head);

        // Which flows of the part a list holds.
        let key_end = |key: Key, e: &PartEnd, is_fixed: bool| -> Option<Bool> {
            match (key, is_fixed) {
                (Key::Group(k), true) => (k == g).then(|| Bool::from_bool(true)),
                (Key::Net(_), true) => None,
                (Key::Group(k), false) => among
                    .binary_search(&k)
                    .is_ok()
                    .then(|| e.which.eq(idx(k as u64))),
                (Key::Net(net), false) => outside
                    .then(|| Bool::and(&[e.which.eq(idx(n as u64)), e.base.addr.in_cidr(&net)])),
            }
        };
        let holds = |list: &[(Key, Key, PortSet)]| -> Bool {
            let each: Vec<Bool> = list
                .iter()
                .filter_map(|(from, to, ports)| {
                    let from = key_end(*from, s, src_fixed)?;
                    let to = key_end(*to, d, !src_fixed)?;
                    let ports: Vec<Bool> = Protocol::ALL
                        .iter()
                        .flat_map(|&p| {
                            let svc = &svc;
                            ports.ranges[p.index()].iter().map(move |&(lo, hi)| {
                                Bool::and(&[svc.is_protocol(p), svc.in_range(lo, hi)])
                            })
                        })
                        .collect();
                    Some(Bool::and(&[from, to, Bool::or(&ports)]))
                })
                .collect();
            Bool::or(&each)
        };
        let (opened, closed) = (holds(&self.opened), holds(&self.closed));
        let wrong = Bool::or(&[
            // A change no list holds.
            Bool::and(&[in_base.iff(&in_head).not(), opened.not(), closed.not()]),
            // A listed flow that does not change as its list says.
            Bool::and(&[opened, Bool::and(&[in_base.not(), in_head.clone()]).not()]),
            Bool::and(&[closed, Bool::and(&[in_base.clone(), in_head.not()]).not()]),
        ]);
        solver.assert(wrong);
        match solver.check() {
            SatResult::Unsat => Ok(()),
            SatResult::Unknown => Err(DiffError::Unknown(reason_unknown(&solver))),
            SatResult::Sat => {
                let model = solver.get_model().expect("sat has a model");
                let value = |x: &z3::ast::BV| crate::encode::eval_u64(&model, x);
                // A member of the group stands for it.
                let name = |e: &PartEnd| match self.groups.get(value(&e.which) as usize) {
                    Some(members) => self.common[members[0]].id.clone(),
                    None => e
                        .base
                        .addr
                        .value_in(&model)
                        .map_or_else(|| "ip:?".to_owned(), |ip| format!("ip:{ip}")),
                };
                Err(DiffError::Internal(format!(
                    "the solver finds the flow {} -> {} {}/{} listed wrongly or missed",
                    name(s),
                    name(d),
                    value(&svc.port),
                    Protocol::ALL[(value(&svc.protocol) as usize).min(2)],
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v6: bool, lo: &str, hi: &str) -> Vec<String> {
        let (_, lo) = bits(lo.parse().unwrap());
        let (_, hi) = bits(hi.parse().unwrap());
        cidrs(v6, lo, hi).iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn ranges_become_maximal_cidrs() {
        assert_eq!(nets(false, "0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            nets(false, "192.0.2.128", "192.0.2.191"),
            ["192.0.2.128/26"]
        );
        assert_eq!(
            nets(false, "10.0.0.1", "10.0.0.6"),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(
            nets(true, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ["::/0"]
        );
        assert_eq!(
            nets(true, "2001:db8::", "2001:db8::ffff"),
            ["2001:db8::/112"]
        );
    }

    /// The proof reads a pair of groups as one entry: the lists must list
    /// every member pair of it alike, or the diff stops.
    #[test]
    fn lists_condense_only_when_every_member_pair_is_listed_alike() {
        let common: Vec<Common> = ["ns/a", "ns/b", "ns/c"]
            .iter()
            .enumerate()
            .map(|(i, id)| Common {
                id: (*id).to_owned(),
                base: i as u32,
                head: i as u32,
            })
            .collect();
        let groups = vec![vec![0, 1], vec![2]];
        let mut http = PortSet::default();
        http.ranges[0] = vec![(80, 80)];
        let change = |from: &str, to: &str, ports: &PortSet| Change {
            from: from.to_owned(),
            to: to.to_owned(),
            ports: ports.clone(),
            witness: Witness {
                from: from.to_owned(),
                to: to.to_owned(),
                port: 80,
                protocol: Protocol::Tcp,
            },
            base: Vec::new(),
            head: Vec::new(),
        };
        let not_pods = [false; 3];
        let whole = [change("ns/a", "ns/c", &http), change("ns/b", "ns/c", &http)];
        let condensed = condense(&whole, &common, &groups, &not_pods).unwrap();
        assert_eq!(condensed.len(), 1);
        assert_eq!(
            (condensed[0].0, condensed[0].1),
            (Key::Group(0), Key::Group(1))
        );
        // One member pair missing, or listed with other ports.
        assert!(condense(&whole[..1], &common, &groups, &not_pods).is_err());
        let mut other = http.clone();
        other.ranges[0] = vec![(81, 81)];
        let unlike = [
            change("ns/a", "ns/c", &http),
            change("ns/b", "ns/c", &other),
        ];
        assert!(condense(&unlike, &common, &groups, &not_pods).is_err());
        // Within a group: every ordered pair, a workload to itself too,
        // unless it is a Pod.
        let within: Vec<Change> = [("ns/a", "ns/a"), ("ns/a", "ns/b"), ("ns/b", "ns/a")]
            .iter()
            .map(|(f, t)| change(f, t, &http))
            .collect();
        assert!(condense(&within, &common, &groups, &not_pods).is_err());
        assert!(condense(&within, &common, &groups, &[false, true, false]).is_ok());
        // An address to every member of a group.
        let outside = [
            change("ip:192.0.2.0/24", "ns/a", &http),
            change("ip:192.0.2.0/24", "ns/b", &http),
        ];
        assert!(condense(&outside, &common, &groups, &not_pods).is_ok());
        assert!(condense(&outside[1..], &common, &groups, &not_pods).is_err());
    }

    #[test]
    fn port_sets_subtract() {
        let mut a = PortSet::default();
        a.ranges[0] = vec![(1, 100), (200, 300)];
        let mut b = PortSet::default();
        b.ranges[0] = vec![(50, 60), (100, 250)];
        b.ranges[1] = vec![(1, 65535)];
        assert_eq!(a.minus(&b).ranges[0], [(1, 49), (61, 99), (251, 300)]);
        assert!(b.minus(&b).is_empty());
        assert_eq!(PortSet::all().minus(&b).ranges[1], []);
        assert_eq!(PortSet::all().minus(&PortSet::default()), PortSet::all());
    }
}
