//! Translation validation: the compiled tables decide every flow of the
//! inventory exactly as the policy IR does.
//!
//! The solver looks for a source workload, a destination workload, a port
//! (0-65535) and a protocol on which [`TableEncoding`] and [`Semantics`]
//! differ; none exists when the tables are right. A pod reaching itself is
//! left out (both always allow it).

use ambit_compiler::model::{Cluster, Protocol, WorkloadKind};
use ambit_compiler::table::Tables;
use z3::ast::{BV, Bool};
use z3::{SatResult, Solver};

use crate::encode::{
    Namespaces, Pod, Semantics, Service, TableEncoding, TableEnd, Vocabulary, idx, idx_const,
};

/// A flow on which the tables and the semantics differ: a compiler bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
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
    for (slot, addr) in pod.ips.iter().enumerate() {
        parts.push(addr.is(w.ips.get(slot).copied()));
    }
    for (name, np) in &pod.named_ports {
        match w.ports.iter().find(|p| p.name.as_deref() == Some(name)) {
            None => parts.push(np.declared.not()),
            Some(cp) => parts.extend([
                np.declared.clone(),
                np.port.eq(BV::from_u64(cp.port as u64, 16)),
                np.protocol.eq(idx(cp.protocol.index() as u64)),
            ]),
        }
    }
    Bool::and(&parts)
}

/// Prove that `tables` decides every flow between workloads of `cluster`
/// (every port, every protocol) as the policy semantics does.
pub fn check(cluster: &Cluster, tables: &Tables) -> Outcome {
    let n = cluster.workloads.len();
    assert_eq!(n, tables.workloads.len(), "tables of this cluster");
    if n == 0 {
        return Outcome::Proved { workloads: 0 };
    }
    let vocabulary = Vocabulary::of(cluster);
    let namespaces = Namespaces::of(cluster);
    crate::encode::set_index_domain(n.max(tables.classes.len()).max(namespaces.names.len() + 1));
    let solver = Solver::new();
    let (sw, dw) = (idx_const("src"), idx_const("dst"));
    let (cs, cd) = (idx_const("src.class"), idx_const("dst.class"));
    let src = Pod::new("src", &vocabulary);
    let dst = Pod::new("dst", &vocabulary);
    let svc = Service::new();

    for (w, pod, class) in [(&sw, &src, &cs), (&dw, &dst, &cd)] {
        solver.assert(w.bvuge(idx(0)));
        solver.assert(w.bvult(idx(n as u64)));
        for i in 0..n {
            let here = w.eq(idx(i as u64));
            solver.assert(here.implies(Bool::and(&[
                is_workload(pod, cluster, &namespaces, i),
                class.eq(idx(tables.workloads[i].class as u64)),
            ])));
        }
    }
    solver.assert(svc.protocol.bvuge(idx(0)));
    solver.assert(svc.protocol.bvule(idx(2)));
    for (i, w) in cluster.workloads.iter().enumerate() {
        if w.kind == WorkloadKind::Pod {
            let i = idx(i as u64);
            solver.assert(Bool::and(&[sw.eq(&i), dw.eq(&i)]).not());
        }
    }

    let semantics = Semantics {
        cluster,
        namespaces: &namespaces,
    }
    .allowed(&src, &dst, &svc);
    let table = TableEncoding::new(tables).allowed(
        &TableEnd::class(cs.clone(), "src"),
        &TableEnd::class(cd.clone(), "dst"),
        &svc,
    );
    solver.assert(semantics.iff(&table).not());
    match solver.check() {
        SatResult::Unsat => Outcome::Proved { workloads: n },
        SatResult::Unknown => Outcome::Unknown(
            solver
                .get_reason_unknown()
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
        SatResult::Sat => {
            let model = solver.get_model().expect("sat has a model");
            let decision = |b: &Bool| {
                model
                    .eval(b, true)
                    .and_then(|v| v.as_bool())
                    .unwrap_or_default()
            };
            let index = |x: &BV| {
                model
                    .eval(x, true)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default() as usize
            };
            Outcome::Mismatch(Mismatch {
                from: cluster.workloads[index(&sw)].id(),
                to: cluster.workloads[index(&dw)].id(),
                port: model
                    .eval(&svc.port, true)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default() as u16,
                protocol: Protocol::ALL[index(&svc.protocol).min(2)],
                tables: decision(&table),
                semantics: decision(&semantics),
            })
        }
    }
}
