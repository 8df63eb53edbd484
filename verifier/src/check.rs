//! Translation validation: the compiled tables decide every flow of the
//! inventory exactly as the policy IR does.
//!
//! The solver looks for a source, a destination (workloads, or one of them
//! any address outside the cluster), a port (0-65535) and a protocol on
//! which [`TableEncoding`] and [`Semantics`] differ; none exists when the
//! tables are right. With Istio policies in the cluster the authorization
//! layer is part of both, and a second question asks the same of an L7
//! enforcer's decision, with any HTTP request or none. A pod reaching itself
//! is left out (both always allow it). Each question is asked of one
//! workload of each group that no formula of the check tells apart
//! ([`Groups`]), in parts of [`PART`] workloads per end, on every core.

use std::collections::{BTreeSet, HashMap};

use ambit_compiler::authz::{Request as HttpRequest, View};
use ambit_compiler::compile::CompileOptions;
use ambit_compiler::labels::Labels;
use ambit_compiler::model::{Cluster, ContainerPort, Protocol, WorkloadKind};
use ambit_compiler::table::{ClassId, Tables};
use rayon::prelude::*;
use z3::ast::{BV, Bool};
use z3::{SatResult, Solver};

use crate::encode::authz::Request;
use crate::encode::{
    AddrRange, Identities, Namespaces, Pod, Semantics, Service, TableEncoding, TableEnd,
    Vocabulary, address_ranges, eval_bool, eval_u64, idx, idx_const, not_to_itself, reason_unknown,
};

/// A flow on which the tables and the semantics differ: a compiler bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `namespace/name` or `ip:ADDRESS`.
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    /// The enforcer whose decision differs: `L4` (what `ambit query` and
    /// the agent decide) or `Full` (an L7 proxy's, for `request`).
    pub view: View,
    /// The HTTP request of a full-view mismatch (`None`: opaque TCP).
    pub request: Option<HttpRequest>,
    /// What the tables decide.
    pub tables: bool,
    /// What the policy semantics decides.
    pub semantics: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No flow differs.
    Proved {
        workloads: usize,
        /// The authorization layer was checked too, in both views.
        authz: bool,
    },
    Mismatch(Mismatch),
    /// The solver gave up (with its reason).
    Unknown(String),
}

/// Tie a symbolic pod to workload `i` of the inventory.
pub fn is_workload(pod: &Pod, cluster: &Cluster, namespaces: &Namespaces, i: usize) -> Bool {
    let w = &cluster.workloads[i];
    let mut parts = vec![
        namespaces.is(pod, &w.namespace),
        pod.labels.are(&w.labels),
        pod.host_network.iff(Bool::from_bool(w.host_network)),
        pod.external.not(),
    ];
    if let Some(ns) = cluster.namespaces.get(&w.namespace) {
        parts.push(pod.namespace_labels.are(&ns.labels));
    }
    if pod.authz {
        let identity = pod.identities.as_ref().and_then(|ids| {
            ids.names
                .iter()
                .position(|(ns, sa)| *ns == w.namespace && *sa == w.service_account)
                .map(|k| ids.is(k))
        });
        parts.push(identity.unwrap_or_else(|| {
            pod.service_account
                .eq(crate::encode::authz::literal(&w.service_account))
        }));
        let inject = match w.inject_annotation.as_deref() {
            None => 0,
            Some("true") => 1,
            Some("false") => 2,
            Some(_) => 3,
        };
        parts.push(pod.inject.eq(BV::from_u64(inject, 2)));
    }
    for (slot, addr) in pod.ips.iter().enumerate() {
        parts.push(addr.is(w.ips.get(slot).copied()));
    }
    for (name, slots) in &pod.named_ports {
        let mut declared = w.ports.iter().filter(|p| p.name.as_deref() == Some(name));
        for np in slots {
            match declared.next() {
                None => parts.push(np.declared.not()),
                Some(cp) => parts.extend([
                    np.declared.clone(),
                    np.port.eq(BV::from_u64(cp.port as u64, 16)),
                    np.protocol.eq(idx(cp.protocol.index() as u64)),
                ]),
            }
        }
    }
    Bool::and(&parts)
}

/// One end of a flow over the inventory: `which` is the index of a workload
/// of `members`, or, with `outside`, the number of workloads for an address
/// outside the cluster (its first address; no labels, no named ports).
#[derive(Debug)]
pub struct InventoryEnd {
    pub which: BV,
    pub pod: Pod,
}

/// Constrain a fresh end (variables named after `prefix`) to `members` and,
/// with `outside`, addresses outside the cluster.
pub fn inventory_end(
    solver: &Solver,
    prefix: &str,
    cluster: &Cluster,
    namespaces: &Namespaces,
    vocabulary: &Vocabulary,
    members: &[usize],
    outside: bool,
) -> InventoryEnd {
    let n = cluster.workloads.len();
    let which = idx_const(format!("{prefix}.which"));
    let mut pod = Pod::new(prefix, vocabulary);
    if pod.authz {
        // The members' identities, known texts: the solver's formula keeps
        // no text variable for them.
        let names: BTreeSet<(String, String)> = members
            .iter()
            .map(|&i| {
                let w = &cluster.workloads[i];
                (w.namespace.clone(), w.service_account.clone())
            })
            .collect();
        let bits = (usize::BITS - names.len().leading_zeros()).max(1);
        pod.identities = Some(Identities {
            which: BV::new_const(format!("{prefix}.identity"), bits),
            names: std::rc::Rc::new(names.into_iter().collect()),
        });
    }
    let mut any: Vec<Bool> = members
        .iter()
        .map(|&i| {
            let is = which.eq(idx(i as u64));
            solver.assert(is.implies(is_workload(&pod, cluster, namespaces, i)));
            is
        })
        .collect();
    if outside {
        let mut external = vec![
            pod.external.clone(),
            pod.host_network.not(),
            pod.ips[0].valid.clone(),
            pod.ips[0].well_formed(),
            pod.namespace.eq(idx(u32::MAX as u64)),
        ];
        external.extend(pod.ips[1..].iter().map(|a| a.valid.not()));
        external.extend(pod.named_port_slots().map(|np| np.declared.not()));
        let is = which.eq(idx(n as u64));
        solver.assert(is.implies(Bool::and(&external)));
        any.push(is);
    }
    solver.assert(Bool::or(&any));
    InventoryEnd { which, pod }
}

/// Prove that `tables` decides every flow between workloads of `cluster`,
/// and between a workload and any address outside it (every port, every
/// protocol) as the policy semantics does: the L4 decision, and with an
/// authorization layer also an L7 enforcer's for every HTTP request.
pub fn check(cluster: &Cluster, tables: &Tables, options: &CompileOptions) -> Outcome {
    check_in_parts(cluster, tables, options, PART)
}

/// [`check`] with `part` workloads per end in each part of the proof (at
/// least one; `check` takes [`PART`]): the outcome is the same, the time
/// is not.
pub fn check_in_parts(
    cluster: &Cluster,
    tables: &Tables,
    options: &CompileOptions,
    part: usize,
) -> Outcome {
    let n = cluster.workloads.len();
    assert_eq!(n, tables.workloads.len(), "tables of this cluster");
    if n == 0 {
        return Outcome::Proved {
            workloads: 0,
            authz: false,
        };
    }
    let authz = crate::encode::authz::has_authz(cluster);
    let views: &[View] = if authz {
        &[View::L4, View::Full]
    } else {
        &[View::L4]
    };
    let groups = Groups::of(cluster, tables, options);
    for &view in views {
        match check_view(cluster, tables, options, view, part.max(1), &groups) {
            Outcome::Proved { .. } => {}
            other => return other,
        }
    }
    Outcome::Proved {
        workloads: n,
        authz,
    }
}

/// The workloads of the inventory in groups that neither side of the check
/// can tell apart: the same namespace, kind, labels, service account,
/// container ports, host networking, injection annotation and class, and
/// addresses that every address range the semantics tests holds alike.
/// Every formula of the check reads a workload through these alone
/// ([`is_workload`] ties a symbolic pod to them; the tables' side reads the
/// class, and an address only for an end outside the cluster; the name
/// only in [`not_to_itself`], which the kind decides), so a flow from
/// or to one member is decided on both sides as the same flow from or to
/// another: proving it for one member of each group proves it for all.
/// A group of several Pods also needs one flow between two of its
/// members, which no Pod's flow to itself stands for.
#[derive(Debug)]
struct Groups {
    /// The first member of each group, in inventory order.
    first: Vec<usize>,
    /// The first two members of each group of several Pods.
    twins: Vec<(usize, usize)>,
}

#[derive(PartialEq, Eq, Hash)]
struct Signature<'a> {
    namespace: &'a str,
    kind: WorkloadKind,
    labels: &'a Labels,
    service_account: &'a str,
    ports: &'a [ContainerPort],
    host_network: bool,
    inject: Option<&'a str>,
    /// Per address slot of the encoding: the family, and which of the
    /// tested ranges hold the address.
    addresses: Vec<Option<(bool, Vec<bool>)>>,
    class: ClassId,
}

impl Groups {
    fn of(cluster: &Cluster, tables: &Tables, options: &CompileOptions) -> Groups {
        let (slots, ranges) = tested_address_ranges(cluster, options);
        let mut index: HashMap<Signature<'_>, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, w) in cluster.workloads.iter().enumerate() {
            let signature = Signature {
                namespace: &w.namespace,
                kind: w.kind,
                labels: &w.labels,
                service_account: &w.service_account,
                ports: &w.ports,
                host_network: w.host_network,
                inject: w.inject_annotation.as_deref(),
                addresses: (0..slots)
                    .map(|slot| {
                        w.ips.get(slot).map(|ip| {
                            (
                                ip.is_ipv6(),
                                ranges.iter().map(|r| r.contains(*ip)).collect(),
                            )
                        })
                    })
                    .collect(),
                class: tables.workloads[i].class,
            };
            let next = members.len();
            let g = *index.entry(signature).or_insert(next);
            if g == next {
                members.push(Vec::new());
            }
            members[g].push(i);
        }
        Groups {
            first: members.iter().map(|m| m[0]).collect(),
            twins: members
                .iter()
                .filter(|m| m.len() > 1 && cluster.workloads[m[0]].kind == WorkloadKind::Pod)
                .map(|m| (m[0], m[1]))
                .collect(),
        }
    }
}

/// The address slots of a symbolic pod, and every address range the
/// semantics of `cluster` tests one against, in either view.
fn tested_address_ranges(
    cluster: &Cluster,
    options: &CompileOptions,
) -> (usize, BTreeSet<AddrRange>) {
    z3::with_z3_config(&z3::Config::new(), || {
        let vocabulary = Vocabulary::of(cluster);
        let namespaces = Namespaces::of(cluster);
        crate::encode::set_index_domain(cluster.workloads.len() + namespaces.names.len() + 1);
        address_ranges(|| {
            let (src, dst) = (Pod::new("src", &vocabulary), Pod::new("dst", &vocabulary));
            let svc = Service::new();
            let semantics = Semantics::new(cluster, &namespaces, options);
            let _ = semantics.allowed(&src, &dst, &svc);
            if crate::encode::authz::has_authz(cluster) {
                let request = Request::new("request", &cluster.authorization_policies);
                let _ = semantics.allowed_full(&src, &dst, &svc, &request);
            }
            src.ips.len()
        })
    })
}

/// Workloads per end in one part of a check. Measured on the generated
/// cluster of 1,000 pods and 300 NetworkPolicies: 100 and 200 take the
/// same time, 50 twice as long; the whole inventory at once takes 15 times
/// as long.
pub const PART: usize = 100;

/// The check of one view, in parts, over the first member of each group
/// ([`Groups`]): each part pairs a chunk of `part` of them as the sources
/// (the first chunk with the outside addresses) with a chunk as the
/// destinations, so that every flow between groups is in exactly one part;
/// then the flows between twins, `part` pairs at a time. The solver's
/// effort grows faster than the formula, whose size is the policies times
/// the workloads an end can be: many small questions take a tenth of the
/// time of one over the inventory. Parts run on every core, each in its own
/// solver context; the mismatch reported is the first in part order,
/// whichever finishes first.
fn check_view(
    cluster: &Cluster,
    tables: &Tables,
    options: &CompileOptions,
    view: View,
    part: usize,
    groups: &Groups,
) -> Outcome {
    let n = cluster.workloads.len();
    let chunks: Vec<&[usize]> = groups.first.chunks(part).collect();
    let twins: Vec<&[(usize, usize)]> = groups.twins.chunks(part).collect();
    let parts: Vec<Part<'_>> = (0..chunks.len())
        .flat_map(|d| (0..chunks.len()).map(move |s| (s, d)))
        .map(|(s, d)| Part::Between((chunks[s], s == 0), (chunks[d], d == 0)))
        .chain(twins.iter().map(|t| Part::Twins(t)))
        .collect();
    parts
        .par_iter()
        .find_map_first(|part| {
            match z3::with_z3_config(&z3::Config::new(), || {
                check_part(cluster, tables, options, view, part)
            }) {
                Outcome::Proved { .. } => None,
                other => Some(other),
            }
        })
        .unwrap_or(Outcome::Proved {
            workloads: n,
            authz: view == View::Full,
        })
}

/// The flows of one part of a check.
enum Part<'a> {
    /// From the workloads `.0` (and with `.1` the addresses outside the
    /// cluster) to the workloads `.0` (and with `.1` outside addresses).
    Between((&'a [usize], bool), (&'a [usize], bool)),
    /// From the first of each pair to the second.
    Twins(&'a [(usize, usize)]),
}

/// The flows of `part`, every port and protocol: the tables decide each as
/// the semantics does, or a mismatch.
fn check_part(
    cluster: &Cluster,
    tables: &Tables,
    options: &CompileOptions,
    view: View,
    part: &Part<'_>,
) -> Outcome {
    let n = cluster.workloads.len();
    let (src_firsts, dst_seconds): (Vec<usize>, Vec<usize>);
    let (src_members, dst_members) = match *part {
        Part::Between(src, dst) => (src, dst),
        Part::Twins(pairs) => {
            (src_firsts, dst_seconds) = pairs.iter().copied().unzip();
            ((&src_firsts[..], false), (&dst_seconds[..], false))
        }
    };
    let vocabulary = Vocabulary::of(cluster);
    let namespaces = Namespaces::of(cluster);
    crate::encode::set_index_domain(
        (n + 1)
            .max(tables.classes.len())
            .max(namespaces.names.len() + 1),
    );
    // The formula is gathered first: it goes to a bit-blasting solver, and
    // to the general one when text the bit-blaster cannot take is left.
    let solver = Solver::new();
    let svc = Service::new();
    let mut ends = Vec::new();
    let mut classes: Vec<BTreeSet<u32>> = Vec::new();
    for (prefix, (members, outside)) in [("src", src_members), ("dst", dst_members)] {
        // A workload of `members`, or an address outside the cluster (`n`).
        let InventoryEnd { which, pod } = inventory_end(
            &solver,
            prefix,
            cluster,
            &namespaces,
            &vocabulary,
            members,
            outside,
        );
        let class = idx_const(format!("{prefix}.class"));
        let table = TableEnd {
            class: class.clone(),
            external: which.eq(idx(n as u64)),
            addr: pod.ips[0].clone(),
        };
        for &i in members {
            solver.assert(
                which
                    .eq(idx(i as u64))
                    .implies(class.eq(idx(tables.workloads[i].class as u64))),
            );
        }
        classes.push(members.iter().map(|&i| tables.workloads[i].class).collect());
        ends.push((which, pod, table));
    }
    let [(sw, src, src_table), (dw, dst, dst_table)]: [_; 2] = ends.try_into().expect("two ends");
    // Not two addresses; not a pod to itself.
    solver.assert(Bool::and(&[sw.eq(idx(n as u64)), dw.eq(idx(n as u64))]).not());
    solver.assert(svc.protocol.bvule(idx(2)));
    solver.assert(not_to_itself(cluster, &sw, &dw));
    if let Part::Twins(pairs) = part {
        for &(a, b) in pairs.iter() {
            solver.assert(sw.eq(idx(a as u64)).implies(dw.eq(idx(b as u64))));
        }
    }

    let semantics =
        Semantics::new(cluster, &namespaces, options).among(src_members.0, dst_members.0);
    let within = [&classes[0], &classes[1]];
    let encoding = TableEncoding::within(tables, within);
    let request = Request::new("request", &cluster.authorization_policies);
    let (semantics, table) = match view {
        View::L4 => (
            semantics.allowed(&src, &dst, &svc),
            encoding.allowed_among(&src_table, &dst_table, &svc, within),
        ),
        View::Full => {
            solver.assert(request.well_formed());
            (
                semantics.allowed_full(&src, &dst, &svc, &request),
                encoding.allowed_full_among(&src_table, &dst_table, &svc, &request, within),
            )
        }
    };
    solver.assert(semantics.iff(&table).not());
    let fast = crate::encode::bit_blasting();
    for a in solver.get_assertions() {
        fast.assert(&a);
    }
    let (solver, result) = match fast.check() {
        SatResult::Unknown => {
            let result = solver.check();
            (solver, result)
        }
        result => (fast, result),
    };
    match result {
        SatResult::Unsat => Outcome::Proved {
            workloads: n,
            authz: view == View::Full,
        },
        SatResult::Unknown => Outcome::Unknown(reason_unknown(&solver)),
        SatResult::Sat => {
            let model = solver.get_model().expect("sat has a model");
            let decision = |b: &Bool| eval_bool(&model, b);
            let index = |x: &BV| eval_u64(&model, x) as usize;
            let end = |which: &BV, pod: &Pod| match cluster.workloads.get(index(which)) {
                Some(w) => w.id(),
                None => pod.ips[0]
                    .value_in(&model)
                    .map_or_else(|| "ip:?".to_owned(), |ip| format!("ip:{ip}")),
            };
            Outcome::Mismatch(Mismatch {
                from: end(&sw, &src),
                to: end(&dw, &dst),
                port: model
                    .eval(&svc.port, true)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default() as u16,
                protocol: Protocol::ALL[index(&svc.protocol).min(2)],
                view,
                request: match view {
                    View::Full => request.value_in(&model),
                    View::L4 => None,
                },
                tables: decision(&table),
                semantics: decision(&semantics),
            })
        }
    }
}

/// A flow on which two clusters over the same inventory (the same workloads,
/// in the same order; their policies may differ) decide differently in the
/// L4 view, or a proof that there is none (`Proved`): ends that are
/// workloads or an address none of them has, ports 1-65535. The `tables` and
/// `semantics` fields of a mismatch are the decisions of `a` and `b`.
pub fn compare(a: &Cluster, b: &Cluster, options: &CompileOptions) -> Outcome {
    let n = a.workloads.len();
    assert_eq!(n, b.workloads.len(), "one inventory");
    if n == 0 {
        return Outcome::Proved {
            workloads: 0,
            authz: false,
        };
    }
    let vocabulary = Vocabulary::of(a).merge(Vocabulary::of(b));
    let namespaces = Namespaces::of(a);
    crate::encode::set_index_domain(n + 1 + namespaces.names.len());
    let solver = Solver::new();
    let svc = Service::new();
    solver.assert(svc.protocol.bvule(idx(2)));
    let all: Vec<usize> = (0..n).collect();
    // Ports 1-65535; an outside address is none of the workloads'.
    solver.assert(svc.port.bvuge(BV::from_u64(1, 16)));
    let src = inventory_end(&solver, "src", a, &namespaces, &vocabulary, &all, true);
    let dst = inventory_end(&solver, "dst", a, &namespaces, &vocabulary, &all, true);
    for end in [&src, &dst] {
        for ip in a
            .workloads
            .iter()
            .chain(&b.workloads)
            .flat_map(|w| w.ips.iter())
        {
            solver.assert(
                end.which
                    .eq(idx(n as u64))
                    .implies(end.pod.ips[0].is(Some(*ip)).not()),
            );
        }
    }
    solver.assert(Bool::and(&[src.which.eq(idx(n as u64)), dst.which.eq(idx(n as u64))]).not());
    // A pod reaching itself is always allowed.
    solver.assert(not_to_itself(a, &src.which, &dst.which));
    let decide =
        |c: &Cluster| Semantics::new(c, &namespaces, options).allowed(&src.pod, &dst.pod, &svc);
    let (in_a, in_b) = (decide(a), decide(b));
    solver.assert(in_a.iff(&in_b).not());
    match solver.check() {
        SatResult::Unsat => Outcome::Proved {
            workloads: n,
            authz: false,
        },
        SatResult::Unknown => Outcome::Unknown(reason_unknown(&solver)),
        SatResult::Sat => {
            let model = solver.get_model().expect("sat has a model");
            let value = |x: &BV| eval_u64(&model, x);
            let decision = |b: &Bool| eval_bool(&model, b);
            let end = |e: &InventoryEnd| match a.workloads.get(value(&e.which) as usize) {
                Some(w) => w.id(),
                None => e.pod.ips[0]
                    .value_in(&model)
                    .map_or_else(|| "ip:?".to_owned(), |ip| format!("ip:{ip}")),
            };
            Outcome::Mismatch(Mismatch {
                from: end(&src),
                to: end(&dst),
                port: value(&svc.port) as u16,
                protocol: Protocol::ALL[(value(&svc.protocol) as usize).min(2)],
                view: View::L4,
                request: None,
                tables: decision(&in_a),
                semantics: decision(&in_b),
            })
        }
    }
}
