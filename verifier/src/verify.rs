//! Invariants: `ambit verify`. An assertion holds when the solver finds no
//! flow of its set that breaks it; otherwise the flow it finds is the
//! counterexample.
//!
//! - `scope: inventory` reads the compiled tables: each end is a workload of
//!   the inventory (its class) or, where the assertion allows it, an address
//!   outside the cluster. The tables are what `ambit query` and the agent
//!   decide with, and `compile --check` proves them equal to the semantics.
//! - `scope: any-pod` reads the policy semantics ([`Semantics`]), where an
//!   end may also be a pod that does not exist yet: in an existing namespace
//!   (with its labels) or a new one, with any labels, any named container
//!   ports and an address no pod or node has.
//!
//! Every counterexample is decided again by the compiler: a hypothetical pod
//! is added to the cluster, the cluster compiled, and the flow asked of the
//! tables as `ambit query` would, which gives `decided_by`. Should that
//! answer differ from the solver's, the run stops with an internal error
//! rather than report a flow it cannot explain.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ambit_compiler::assertion::{Assertion, Ends, Expect, PortRange, Scope};
use ambit_compiler::compile::{CompileOptions, compile_with};
use ambit_compiler::labels::Labels as LabelMap;
use ambit_compiler::model::{
    Cluster, ContainerPort, NAMESPACE_NAME_LABEL, Namespace, Protocol, Workload, WorkloadKind,
};
use ambit_compiler::probe::{self, DecidedBy, Probe};
use ambit_compiler::table::{Endpoint, Tables};
use ipnet::IpNet;
use serde::Serialize;
use z3::ast::{BV, Bool, Regexp};
use z3::{Model, SatResult, Solver};

use crate::check::is_workload;
use crate::encode::authz::literal;
use crate::encode::{
    Namespaces, Pod, Semantics, Service, TableEncoding, TableEnd, Vocabulary, add_selector,
    eval_bool, eval_u64, idx, idx_const, in_ranges, ip_block, not_to_itself, reason_unknown,
    selector,
};

/// The answer for one assertion: the JSON object of `ambit verify -o json`.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub name: String,
    pub holds: bool,
    pub counterexample: Option<Counterexample>,
}

/// A flow that breaks an assertion.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// `namespace/name`, `ip:ADDRESS`, or `hypothetical:NAMESPACE`.
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: Protocol,
    /// `null` for an address outside the cluster.
    pub from_labels: Option<LabelMap>,
    pub to_labels: Option<LabelMap>,
    pub decided_by: Vec<DecidedBy>,
    /// For human output: what else describes a hypothetical end.
    #[serde(skip)]
    pub details: Vec<String>,
}

/// Why an assertion got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The solver gave up.
    Unknown(String),
    /// The solver's flow and the compiled tables disagree: a bug in ambit.
    Internal(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Unknown(why) => write!(f, "the solver could not decide: {why}"),
            VerifyError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

/// Verify one assertion.
pub fn verify(
    cluster: &Cluster,
    tables: &Tables,
    options: &CompileOptions,
    assertion: &Assertion,
) -> Result<Finding, VerifyError> {
    // A fresh solver context per assertion: the terms of earlier questions
    // would otherwise change how the solver orders its search, and with it
    // the time and the counterexample an assertion gets from its place in
    // the file.
    z3::with_z3_config(&z3::Config::new(), || {
        verify_alone(cluster, tables, options, assertion)
    })
}

fn verify_alone(
    cluster: &Cluster,
    tables: &Tables,
    options: &CompileOptions,
    assertion: &Assertion,
) -> Result<Finding, VerifyError> {
    let problem = Problem::new(cluster, assertion, options);
    crate::encode::set_index_domain(
        (cluster.workloads.len() + 2)
            .max(tables.classes.len())
            .max(cluster.namespaces.len() + 2),
    );
    if assertion.scope == Scope::AnyPod {
        // Today's workloads first: when two of them break the assertion,
        // such a pair is the counterexample `prefer` settles on (workloads
        // before hypothetical pods and outside addresses), and the tables
        // find one in a fraction of the time two symbolic pods over every
        // policy take.
        let today = Solver::new();
        let (src, dst, svc) = problem.inventory(&today, tables, false);
        match today.check() {
            SatResult::Sat => {
                let model = today.get_model().expect("sat has a model");
                return problem.finding(tables, options, &model, [&src, &dst], &svc);
            }
            SatResult::Unknown => {
                return Err(VerifyError::Unknown(reason_unknown(&today)));
            }
            SatResult::Unsat => {}
        }
    }
    let solver = Solver::new();
    let (src, dst, svc) = match assertion.scope {
        Scope::Inventory => problem.inventory(&solver, tables, true),
        Scope::AnyPod => {
            // Two symbolic pods over every policy: the solver's incremental
            // core (which a scope selects) decides the bits it needs as it
            // searches, where the bit-vector tactic it would otherwise pick
            // bit-blasts the whole formula first — 2 s against 10 s on a
            // violated assertion at 2,000 pods and 1,000 policies, and
            // cheap re-checks for the preferences of `prefer`.
            solver.push();
            problem.any_pod(&solver)
        }
    };
    // Names of hypothetical pods must be DNS labels: a regular expression
    // the solver is slow with, so it is added only when a model breaks it
    // (without it the question is wider: "holds" stays exact).
    let mut names_checked = false;
    let model = loop {
        match solver.check() {
            SatResult::Unsat => {
                return Ok(Finding {
                    name: assertion.name.clone(),
                    holds: true,
                    counterexample: None,
                });
            }
            SatResult::Unknown => {
                return Err(VerifyError::Unknown(reason_unknown(&solver)));
            }
            SatResult::Sat => {}
        }
        let model = match assertion.scope {
            Scope::AnyPod => problem.prefer(&solver, &src, &dst),
            Scope::Inventory => solver.get_model().expect("sat has a model"),
        };
        if names_checked || problem.names_are_dns_labels(&model, [&src, &dst]) {
            break model;
        }
        for end in [&src, &dst] {
            solver.assert(problem.names_are_dns(end));
        }
        names_checked = true;
    };
    problem.finding(tables, options, &model, [&src, &dst], &svc)
}

/// A DNS-1123 label (length aside): lower-case letters, digits and `-`,
/// starting and ending with a letter or digit.
fn is_dns_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty() && s.chars().all(|c| ok(c) || c == '-') && s.starts_with(ok) && s.ends_with(ok)
}

/// One symbolic end: which of the inventory's workloads (`0..n`), a
/// hypothetical pod (`n`) or an address outside the cluster (`n + 1`).
struct End {
    which: BV,
    /// For the semantics (any-pod).
    pod: Option<Pod>,
    /// For the tables (inventory).
    table: Option<TableEnd>,
}

/// A concrete end of a counterexample.
#[derive(Debug, Clone)]
enum Concrete {
    Workload(usize),
    Hypothetical {
        namespace: String,
        namespace_labels: Option<LabelMap>,
        labels: LabelMap,
        ports: Vec<ContainerPort>,
        ip: Option<IpAddr>,
        service_account: String,
        inject_annotation: Option<String>,
    },
    Address(IpAddr),
}

struct Problem<'a> {
    cluster: &'a Cluster,
    options: &'a CompileOptions,
    assertion: &'a Assertion,
    vocabulary: Vocabulary,
    namespaces: Namespaces,
    /// Every address a pod or node of the inventory has, as ranges of
    /// consecutive addresses (to keep formulas small).
    taken: Vec<(IpAddr, IpAddr)>,
}

impl<'a> Problem<'a> {
    fn new(cluster: &'a Cluster, assertion: &'a Assertion, options: &'a CompileOptions) -> Self {
        let mut vocabulary = Vocabulary::of(cluster);
        for ends in [&assertion.from, &assertion.to] {
            if let Some(s) = &ends.pod_selector {
                add_selector(&mut vocabulary.pod, s);
            }
            if let Some(s) = &ends.namespace_selector {
                add_selector(&mut vocabulary.namespace, s);
            }
            if let Some(ns) = &ends.namespace {
                vocabulary
                    .namespace
                    .entry(NAMESPACE_NAME_LABEL.to_owned())
                    .or_default()
                    .insert(ns.clone());
            }
        }
        vocabulary
            .namespace
            .entry(NAMESPACE_NAME_LABEL.to_owned())
            .or_default()
            .extend(cluster.namespaces.keys().cloned());
        let mut taken: BTreeSet<IpAddr> = cluster
            .workloads
            .iter()
            .flat_map(|w| w.ips.iter().copied())
            .collect();
        taken.extend(
            cluster
                .nodes
                .iter()
                .flat_map(|n| n.addresses.iter().copied()),
        );
        let mut ranges: Vec<(IpAddr, IpAddr)> = Vec::new();
        for ip in taken {
            match ranges.last_mut() {
                Some((_, hi)) if next(*hi) == Some(ip) => *hi = ip,
                _ => ranges.push((ip, ip)),
            }
        }
        Problem {
            cluster,
            options,
            assertion,
            vocabulary,
            namespaces: Namespaces::of(cluster),
            taken: ranges,
        }
    }

    fn n(&self) -> u64 {
        self.cluster.workloads.len() as u64
    }

    fn namespace_labels(&self, w: &Workload) -> LabelMap {
        self.cluster
            .namespaces
            .get(&w.namespace)
            .map(|ns| ns.labels.clone())
            .unwrap_or_else(|| Namespace::implied(&w.namespace).labels)
    }

    /// The violation a model shows, with its counterexample.
    fn finding(
        &self,
        tables: &Tables,
        options: &CompileOptions,
        model: &Model,
        [src, dst]: [&End; 2],
        svc: &Service,
    ) -> Result<Finding, VerifyError> {
        let port = eval_u64(model, &svc.port) as u16;
        let protocol = Protocol::ALL[(eval_u64(model, &svc.protocol) as usize).min(2)];
        let from = self.concrete(model, src);
        let to = self.concrete(model, dst);
        let counterexample = self.explain(tables, options, from, to, port, protocol)?;
        Ok(Finding {
            name: self.assertion.name.clone(),
            holds: false,
            counterexample: Some(counterexample),
        })
    }

    /// The flow set and the expectation's negation, over the tables: the
    /// ends are workloads of the inventory and, with `addresses`, the
    /// outside addresses the assertion admits.
    fn inventory(&self, solver: &Solver, tables: &Tables, addresses: bool) -> (End, End, Service) {
        let n = self.n();
        let svc = Service::new();
        let only = self.assertion.expect == Expect::Only;
        // The workloads each end can be (`only`: the sources outside
        // `from`), and what an address outside the cluster must satisfy to
        // be one.
        let sides = [
            self.candidates(&self.assertion.from, only),
            self.candidates(&self.assertion.to, false),
        ];
        let mut ends = Vec::new();
        let mut classes = Vec::new();
        for (prefix, (members, outside)) in ["src", "dst"].into_iter().zip(&sides) {
            let which = idx_const(format!("{prefix}.which"));
            let table = TableEnd::new(prefix);
            solver.assert(table.external.iff(which.eq(idx(n + 1))));
            let mut any = vec![in_ranges(members, &which)];
            if let Some(addr_ok) = outside.as_ref().filter(|_| addresses) {
                any.push(Bool::and(&[
                    which.eq(idx(n + 1)),
                    self.fresh(&table.addr),
                    addr_ok(&table.addr),
                ]));
            }
            solver.assert(Bool::or(&any));
            let mut own: BTreeSet<u32> = BTreeSet::new();
            for &i in members {
                let class = tables.workloads[i as usize].class;
                own.insert(class);
                solver.assert(
                    which
                        .eq(idx(i as u64))
                        .implies(table.class.eq(idx(class as u64))),
                );
            }
            classes.push(own);
            ends.push(End {
                which,
                pod: None,
                table: Some(table),
            });
        }
        let [src, dst]: [End; 2] = ends.try_into().ok().expect("two ends");
        // Each end is one of its classes or an outside address.
        let allowed = TableEncoding::within(tables, [&classes[0], &classes[1]]).allowed_among(
            src.table.as_ref().expect("table end"),
            dst.table.as_ref().expect("table end"),
            &svc,
            [&classes[0], &classes[1]],
        );
        self.assert_flows(solver, &src, &dst, &svc, allowed);
        (src, dst, svc)
    }

    /// The workloads of the inventory an end can be (with `outside`: those
    /// not in it), and, when it can be an address outside the cluster, what
    /// the address must satisfy.
    #[allow(clippy::type_complexity)]
    fn candidates(
        &self,
        ends: &Ends,
        outside: bool,
    ) -> (
        Vec<u32>,
        Option<Box<dyn Fn(&crate::encode::Addr) -> Bool + '_>>,
    ) {
        let members: Vec<u32> = self
            .cluster
            .workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| ends.has_pod(w, &self.namespace_labels(w)) != outside)
            .map(|(i, _)| i as u32)
            .collect();
        let block = ends.ip_block.clone().filter(|_| ends.admits_addresses());
        let in_block = move |addr: &crate::encode::Addr, (cidr, except): &(IpNet, Vec<IpNet>)| {
            let mut inside = vec![addr.in_cidr(cidr)];
            inside.extend(except.iter().map(|e| addr.in_cidr(e).not()));
            Bool::and(&inside)
        };
        let addresses: Option<Box<dyn Fn(&crate::encode::Addr) -> Bool>> = match (block, outside) {
            (Some(b), false) => Some(Box::new(move |a| in_block(a, &b))),
            (Some(b), true) => Some(Box::new(move |a| in_block(a, &b).not())),
            (None, true) => Some(Box::new(|_| Bool::from_bool(true))),
            (None, false) => None,
        };
        (members, addresses)
    }

    /// The flow set and the expectation's negation, over the semantics, with
    /// hypothetical pods.
    fn any_pod(&self, solver: &Solver) -> (End, End, Service) {
        let n = self.n();
        let svc = Service::new();
        let k = self.namespaces.names.len() as u64;
        // The workloads of the inventory each end can be, as the inventory
        // scope finds them (`only`: the sources outside `from`); the others
        // would fail the membership below, so they are left out of the
        // formula.
        let only = self.assertion.expect == Expect::Only;
        let members = [
            self.candidates(&self.assertion.from, only).0,
            self.candidates(&self.assertion.to, false).0,
        ];
        let ends: Vec<End> = ["src", "dst"]
            .into_iter()
            .zip(&members)
            .map(|(prefix, members)| {
                let which = idx_const(format!("{prefix}.which"));
                let pod = Pod::new(prefix, &self.vocabulary);
                solver.assert(Bool::or(&[
                    in_ranges(members, &which),
                    which.eq(idx(n)),
                    which.eq(idx(n + 1)),
                ]));
                for &i in members {
                    solver.assert(which.eq(idx(i as u64)).implies(is_workload(
                        &pod,
                        self.cluster,
                        &self.namespaces,
                        i as usize,
                    )));
                }
                // A hypothetical pod.
                let mut hypothetical = vec![
                    pod.external.not(),
                    pod.host_network.not(),
                    pod.labels.well_formed(),
                    pod.namespace.bvuge(idx(0)),
                    pod.namespace.bvule(idx(k)),
                ];
                for (j, name) in self.namespaces.names.iter().enumerate() {
                    let labels = &self.cluster.namespaces[name].labels;
                    hypothetical.push(
                        pod.namespace
                            .eq(idx(j as u64))
                            .implies(pod.namespace_labels.are(labels)),
                    );
                }
                let existing: BTreeSet<String> = self.namespaces.names.iter().cloned().collect();
                hypothetical.push(
                    pod.namespace.eq(idx(k)).implies(Bool::and(&[
                        pod.namespace_labels.well_formed(),
                        pod.namespace_labels.exists(NAMESPACE_NAME_LABEL),
                        pod.namespace_labels
                            .is_in(NAMESPACE_NAME_LABEL, &existing)
                            .not(),
                    ])),
                );
                hypothetical.extend(self.one_fresh_address(&pod));
                if pod.authz {
                    hypothetical.push(self.names_well_formed(&pod, &existing));
                }
                // A new pod declares each name once.
                for slots in pod.named_ports.values() {
                    let (np, rest) = slots.split_first().expect("one slot at least");
                    hypothetical.push(np.declared.implies(Bool::and(&[
                        np.port.bvuge(BV::from_u64(1, 16)),
                        np.protocol.bvuge(idx(0)),
                        np.protocol.bvule(idx(2)),
                    ])));
                    hypothetical.extend(rest.iter().map(|np| np.declared.not()));
                }
                solver.assert(which.eq(idx(n)).implies(Bool::and(&hypothetical)));
                // An address outside the cluster.
                let mut external = vec![pod.external.clone(), pod.host_network.not()];
                external.extend(self.one_fresh_address(&pod));
                external.extend(pod.named_port_slots().map(|np| np.declared.not()));
                external.push(pod.namespace.eq(idx(u32::MAX as u64)));
                solver.assert(which.eq(idx(n + 1)).implies(Bool::and(&external)));
                End {
                    which,
                    pod: Some(pod),
                    table: None,
                }
            })
            .collect();
        let [src, dst]: [End; 2] = ends.try_into().ok().expect("two ends");
        let from_in = self.member_symbolic(&self.assertion.from, &src);
        solver.assert(match self.assertion.expect {
            Expect::Deny | Expect::Allow => from_in,
            Expect::Only => from_in.not(),
        });
        solver.assert(self.member_symbolic(&self.assertion.to, &dst));
        let allowed = Semantics::new(self.cluster, &self.namespaces, self.options).allowed(
            src.pod.as_ref().expect("pod end"),
            dst.pod.as_ref().expect("pod end"),
            &svc,
        );
        self.assert_flows(solver, &src, &dst, &svc, allowed);
        (src, dst, svc)
    }

    /// A counterexample people can read, in the any-pod scope: workloads
    /// of the inventory before hypothetical pods, then as few labels and
    /// named ports as the flow needs and an IPv4 address in 10.0.0.0/8. Each
    /// preference is kept when the solver can still satisfy everything with
    /// it. (The port and protocol are chosen afterwards from the tables.)
    fn prefer(&self, solver: &Solver, src: &End, dst: &End) -> Model {
        let n = idx(self.n());
        let mut kept: Vec<Bool> = Vec::new();
        let try_keep = |kept: &mut Vec<Bool>, p: Vec<Bool>| {
            let len = kept.len();
            kept.extend(p);
            let ok = solver.check_assumptions(kept) == SatResult::Sat;
            if !ok {
                kept.truncate(len);
            }
            ok
        };
        for end in [src, dst] {
            try_keep(&mut kept, vec![end.which.bvult(&n)]);
        }
        for end in [src, dst] {
            let Some(pod) = &end.pod else {
                continue;
            };
            let result = solver.check_assumptions(&kept);
            debug_assert_eq!(result, SatResult::Sat);
            let model = solver.get_model().expect("sat has a model");
            if eval_u64(&model, &end.which) != self.n() {
                continue;
            }
            let mut atoms = pod.labels.present();
            atoms.extend(pod.namespace_labels.present());
            atoms.extend(pod.named_port_slots().map(|np| np.declared.clone()));
            // What the model leaves out stays out (the model shows that is
            // possible); then drop what it has, all at once, else one by one.
            let (present, absent): (Vec<Bool>, Vec<Bool>) =
                atoms.iter().cloned().partition(|a| eval_bool(&model, a));
            kept.extend(absent.iter().map(Bool::not));
            let mut nice: Vec<Bool> = present.iter().map(Bool::not).collect();
            if pod.authz {
                nice.push(pod.service_account.eq(literal("default")));
                nice.push(pod.inject.eq(BV::from_u64(0, 2)));
                let taken: BTreeSet<String> = self.namespaces.names.iter().cloned().collect();
                nice.push(
                    pod.namespace_name
                        .eq(literal(&free_name("new-namespace", &taken))),
                );
            }
            if let Some(addr) = pod.ips.first() {
                nice.push(addr.v6.not());
                nice.push(addr.in_cidr(&"10.0.0.0/8".parse().expect("a CIDR")));
            }
            if !try_keep(&mut kept, nice.clone()) {
                for a in nice {
                    try_keep(&mut kept, vec![a]);
                }
            }
        }
        let result = solver.check_assumptions(&kept);
        debug_assert_eq!(result, SatResult::Sat);
        solver.get_model().expect("sat has a model")
    }

    /// A hypothetical pod's service account is a DNS label; a new
    /// namespace's name too, none of the existing ones, and the value of
    /// its `kubernetes.io/metadata.name` label. When no AuthorizationPolicy
    /// reads identities, neither name matters: the service account is
    /// `default` and the namespace's name is its label's or a fresh one.
    fn names_well_formed(&self, pod: &Pod, existing: &BTreeSet<String>) -> Bool {
        let k = self.namespaces.names.len() as u64;
        let reads = reads_identities(self.cluster);
        let mut parts = Vec::new();
        let mut new_ns = Vec::new();
        if reads {
            // The names are DNS labels: see [`Self::names_are_dns`].
            parts.push(pod.service_account.eq(literal("")).not());
            new_ns.push(pod.namespace_name.eq(literal("")).not());
        } else {
            parts.push(pod.service_account.eq(literal("default")));
            let unlabelled: Vec<Bool> = self
                .vocabulary
                .namespace
                .get(NAMESPACE_NAME_LABEL)
                .into_iter()
                .flatten()
                .map(|v| {
                    pod.namespace_labels
                        .is_in(NAMESPACE_NAME_LABEL, &[v.clone()].into())
                        .not()
                })
                .collect();
            new_ns.push(
                Bool::and(&unlabelled).implies(
                    pod.namespace_name
                        .eq(literal(&free_name("new-namespace", existing))),
                ),
            );
        }
        new_ns.extend(
            existing
                .iter()
                .map(|name| pod.namespace_name.eq(literal(name)).not()),
        );
        let known = self
            .vocabulary
            .namespace
            .get(NAMESPACE_NAME_LABEL)
            .cloned()
            .unwrap_or_default();
        for v in &known {
            new_ns.push(
                pod.namespace_labels
                    .is_in(NAMESPACE_NAME_LABEL, &[v.clone()].into())
                    .iff(pod.namespace_name.eq(literal(v))),
            );
        }
        parts.push(pod.namespace.eq(idx(k)).implies(Bool::and(&new_ns)));
        Bool::and(&parts)
    }

    /// A hypothetical end's service account, and its new namespace's name,
    /// are DNS labels.
    fn names_are_dns(&self, end: &End) -> Bool {
        let Some(pod) = end.pod.as_ref().filter(|p| p.authz) else {
            return Bool::from_bool(true);
        };
        let k = self.namespaces.names.len() as u64;
        end.which.eq(idx(self.n())).implies(Bool::and(&[
            pod.service_account.regex_matches(&dns_label()),
            pod.namespace
                .eq(idx(k))
                .implies(pod.namespace_name.regex_matches(&dns_label())),
        ]))
    }

    /// Whether the model's hypothetical ends have DNS-label names.
    fn names_are_dns_labels(&self, model: &Model, ends: [&End; 2]) -> bool {
        let k = self.namespaces.names.len() as u64;
        ends.iter().all(|end| {
            let Some(pod) = end.pod.as_ref().filter(|p| p.authz) else {
                return true;
            };
            if eval_u64(model, &end.which) != self.n() {
                return true;
            }
            let text = |s: &z3::ast::String| {
                model
                    .eval(s, true)
                    .and_then(|v| v.as_string())
                    .unwrap_or_default()
            };
            is_dns_label(&text(&pod.service_account))
                && (eval_u64(model, &pod.namespace) != k
                    || is_dns_label(&text(&pod.namespace_name)))
        })
    }

    /// The first address is valid and no pod's or node's; no other.
    fn one_fresh_address(&self, pod: &Pod) -> Vec<Bool> {
        let mut out = Vec::new();
        for (slot, addr) in pod.ips.iter().enumerate() {
            if slot == 0 {
                out.push(self.fresh(addr));
            } else {
                out.push(addr.valid.not());
            }
        }
        out
    }

    /// A valid address that no pod or node has.
    fn fresh(&self, addr: &crate::encode::Addr) -> Bool {
        let mut parts = vec![addr.valid.clone(), addr.well_formed()];
        parts.extend(
            self.taken
                .iter()
                .map(|(lo, hi)| addr.in_range(*lo, *hi).not()),
        );
        Bool::and(&parts)
    }

    /// The constraints common to both scopes: the ends are in the set
    /// (`only`: the source outside `from`), the port is listed, no pod talks
    /// to itself, and the flow breaks the expectation.
    fn assert_flows(&self, solver: &Solver, src: &End, dst: &End, svc: &Service, allowed: Bool) {
        let n = self.n();
        solver.assert(ports(&self.assertion.ports, svc));
        // Not two addresses.
        let external = idx(n + 1);
        solver.assert(Bool::and(&[src.which.eq(&external), dst.which.eq(&external)]).not());
        // Not a pod to itself.
        solver.assert(not_to_itself(self.cluster, &src.which, &dst.which));
        match self.assertion.expect {
            Expect::Deny | Expect::Only => solver.assert(&allowed),
            Expect::Allow => solver.assert(allowed.not()),
        }
    }

    /// Membership of a symbolic end (inventory, hypothetical or address).
    fn member_symbolic(&self, ends: &Ends, end: &End) -> Bool {
        let pod = end.pod.as_ref().expect("pod end");
        // An `ipBlock` alone is addresses outside the cluster; any other
        // key makes the end pods.
        let mut parts = vec![if ends.admits_addresses() {
            pod.external.clone()
        } else {
            pod.external.not()
        }];
        if let Some((ns, name)) = &ends.workload {
            let i = self
                .cluster
                .workloads
                .iter()
                .position(|w| w.namespace == *ns && w.name == *name)
                .expect("assertions name workloads of the cluster");
            parts.push(end.which.eq(idx(i as u64)));
        }
        if let Some(ns) = &ends.namespace {
            parts.push(match self.namespaces.index(ns) {
                Some(j) => pod.namespace.eq(idx(j as u64)),
                // A namespace that does not exist yet.
                None => Bool::and(&[
                    pod.namespace.eq(idx(self.namespaces.names.len() as u64)),
                    pod.namespace_labels
                        .is_in(NAMESPACE_NAME_LABEL, &[ns.clone()].into()),
                ]),
            });
        }
        if let Some(s) = &ends.namespace_selector {
            parts.push(selector(s, &pod.namespace_labels));
        }
        if let Some(s) = &ends.pod_selector {
            parts.push(selector(s, &pod.labels));
        }
        if let Some((cidr, except)) = &ends.ip_block {
            parts.push(ip_block(pod, cidr, except));
        }
        Bool::and(&parts)
    }

    /// Read one end from the model.
    fn concrete(&self, model: &Model, end: &End) -> Concrete {
        let n = self.n();
        let which = eval_u64(model, &end.which);
        if which < n {
            return Concrete::Workload(which as usize);
        }
        if let Some(table) = &end.table {
            let ip = table
                .addr
                .value_in(model)
                .expect("an external end has an address");
            return Concrete::Address(ip);
        }
        let pod = end.pod.as_ref().expect("pod end");
        let ip = pod.ips.first().and_then(|a| a.value_in(model));
        if which == n + 1 {
            return Concrete::Address(ip.expect("an external end has an address"));
        }
        let used = |known: &BTreeMap<String, BTreeSet<String>>, key: &str| {
            known.get(key).cloned().unwrap_or_default()
        };
        let read_labels = |labels: &crate::encode::Labels,
                           known: &BTreeMap<String, BTreeSet<String>>| {
            let mut out = LabelMap::new();
            for key in labels.keys() {
                if let Some(v) = labels.value_in(model, key) {
                    let v = if v == "<other>" {
                        other_value(&used(known, key))
                    } else {
                        v
                    };
                    out.insert(key.to_owned(), v);
                }
            }
            out
        };
        let ns_index = eval_u64(model, &pod.namespace) as usize;
        let (namespace, namespace_labels) = match self.namespaces.names.get(ns_index) {
            Some(name) => (name.clone(), None),
            None => {
                let labels = read_labels(&pod.namespace_labels, &self.vocabulary.namespace);
                let symbolic = pod
                    .authz
                    .then(|| model.eval(&pod.namespace_name, true)?.as_string())
                    .flatten();
                let name = pod
                    .namespace_labels
                    .value_in(model, NAMESPACE_NAME_LABEL)
                    .filter(|v| v != "<other>")
                    .or(symbolic)
                    .unwrap_or_else(|| {
                        let taken: BTreeSet<String> =
                            self.namespaces.names.iter().cloned().collect();
                        free_name("new-namespace", &taken)
                    });
                (name, Some(labels))
            }
        };
        let mut namespace_labels = namespace_labels;
        if let Some(labels) = &mut namespace_labels {
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.clone());
        }
        let labels = read_labels(&pod.labels, &self.vocabulary.pod);
        let mut ports = Vec::new();
        for (name, slots) in &pod.named_ports {
            let np = &slots[0];
            if eval_bool(model, &np.declared) {
                ports.push(ContainerPort {
                    name: Some(name.clone()),
                    protocol: Protocol::ALL[(eval_u64(model, &np.protocol) as usize).min(2)],
                    port: eval_u64(model, &np.port) as u16,
                });
            }
        }
        let (service_account, inject_annotation) = if pod.authz {
            let sa = model
                .eval(&pod.service_account, true)
                .and_then(|v| v.as_string())
                .unwrap_or_else(|| "default".to_owned());
            let inject = match eval_u64(model, &pod.inject) {
                0 => None,
                1 => Some("true".to_owned()),
                2 => Some("false".to_owned()),
                _ => Some("other".to_owned()),
            };
            (sa, inject)
        } else {
            ("default".to_owned(), None)
        };
        Concrete::Hypothetical {
            namespace,
            namespace_labels,
            labels,
            ports,
            ip,
            service_account,
            inject_annotation,
        }
    }

    /// Decide the flow again with the compiler's tables (with the
    /// hypothetical pods added), for `decided_by` and as a cross-check.
    fn explain(
        &self,
        tables: &Tables,
        options: &CompileOptions,
        from: Concrete,
        to: Concrete,
        port: u16,
        protocol: Protocol,
    ) -> Result<Counterexample, VerifyError> {
        let hypothetical = [&from, &to]
            .iter()
            .any(|c| matches!(c, Concrete::Hypothetical { .. }));
        let own;
        let tables = if hypothetical {
            let mut c = self.cluster.clone();
            for (i, end) in [&from, &to].into_iter().enumerate() {
                add_hypothetical(&mut c, end, i);
            }
            own = compile_with(&c, options);
            &own
        } else {
            tables
        };
        let mut details = Vec::new();
        let mut endpoint = |end: &Concrete, i: usize| -> (Endpoint, String, Option<LabelMap>) {
            match end {
                Concrete::Workload(w) => {
                    let w = &self.cluster.workloads[*w];
                    let index = tables
                        .workload_index(&w.namespace, &w.name)
                        .expect("a workload of the cluster");
                    (Endpoint::Workload(index), w.id(), Some(w.labels.clone()))
                }
                Concrete::Address(ip) => (Endpoint::Ip(*ip), format!("ip:{ip}"), None),
                Concrete::Hypothetical {
                    namespace,
                    namespace_labels,
                    labels,
                    ports,
                    ip,
                    service_account,
                    inject_annotation,
                } => {
                    let name = hypothetical_name(i);
                    let index = tables
                        .workload_index(namespace, &name)
                        .expect("the hypothetical pod was added");
                    let id = format!("hypothetical:{namespace}");
                    if let Some(nl) = namespace_labels {
                        details.push(format!(
                            "{id} is in a new namespace labelled {}",
                            show_labels(nl)
                        ));
                    }
                    if !ports.is_empty() {
                        let list: Vec<String> = ports
                            .iter()
                            .map(|p| {
                                format!(
                                    "{} {}/{}",
                                    p.name.as_deref().unwrap_or_default(),
                                    p.port,
                                    p.protocol
                                )
                            })
                            .collect();
                        details.push(format!("{id} declares the ports {}", list.join(", ")));
                    }
                    if let Some(ip) = ip {
                        details.push(format!("{id} has the address {ip}"));
                    }
                    if service_account != "default" {
                        details.push(format!(
                            "{id} runs as the service account {service_account}"
                        ));
                    }
                    if let Some(a) = inject_annotation {
                        details.push(format!("{id} is annotated sidecar.istio.io/inject={a}"));
                    }
                    (Endpoint::Workload(index), id, Some(labels.clone()))
                }
            }
        };
        let (from_ep, from_name, from_labels) = endpoint(&from, 0);
        let (to_ep, to_name, to_labels) = endpoint(&to, 1);
        // Of the flows between these two ends that break the assertion (the
        // solver's among them), show one on a usual port, TCP first.
        let allowed = tables.allowed_ports(from_ep, to_ep);
        let expected = !matches!(self.assertion.expect, Expect::Allow);
        let breaking: [Vec<(u16, u16)>; 3] = std::array::from_fn(|p| {
            let listed: Vec<(u16, u16)> = self
                .assertion
                .ports
                .iter()
                .filter(|r| r.protocol.index() == p)
                .map(|r| (r.start, r.end))
                .collect();
            if expected {
                intersect(&listed, &allowed.ranges[p])
            } else {
                subtract(&listed, &allowed.ranges[p])
            }
        });
        if !breaking[protocol.index()]
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&port))
        {
            return Err(VerifyError::Internal(format!(
                "the solver's flow {from_name} -> {to_name} {port}/{protocol} is not {} by the tables",
                if expected { "allowed" } else { "denied" },
            )));
        }
        let mut usual = vec![80, 443, 8080];
        usual.extend(self.assertion.ports.iter().map(|r| r.start));
        let (protocol, port) = Protocol::ALL
            .iter()
            .find_map(|&p| {
                let ranges = &breaking[p.index()];
                let first = ranges.first()?.0;
                let port = usual
                    .iter()
                    .copied()
                    .find(|u| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(u)))
                    .unwrap_or(first);
                Some((p, port))
            })
            .expect("the solver's port breaks the assertion");
        let answer = probe::answer(
            tables,
            &Probe {
                from_name: from_name.clone(),
                to_name: to_name.clone(),
                from: from_ep,
                to: to_ep,
                port,
                protocol,
                request: None,
                ext_authz: ambit_compiler::authz::ExtAuthz::Unknown,
            },
        );
        if answer.l4_allowed != expected {
            return Err(VerifyError::Internal(format!(
                "the solver's flow {from_name} -> {to_name} {port}/{protocol} is {} by the tables, not {}",
                if answer.l4_allowed {
                    "allowed"
                } else {
                    "denied"
                },
                if expected { "allowed" } else { "denied" },
            )));
        }
        Ok(Counterexample {
            from: from_name,
            to: to_name,
            port,
            protocol,
            from_labels,
            to_labels,
            decided_by: answer.decided_by,
            details,
        })
    }
}

/// The ports of `a` that are in `b` (sorted, inclusive ranges).
fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(alo, ahi) in a {
        for &(blo, bhi) in b {
            let (lo, hi) = (alo.max(blo), ahi.min(bhi));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out.sort();
    out
}

/// The ports of `a` that are not in `b`.
fn subtract(a: &[(u16, u16)], b: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(alo, ahi) in a {
        let mut lo = alo as u32;
        for &(blo, bhi) in b {
            let (blo, bhi) = (blo as u32, bhi as u32);
            if bhi < lo || blo > ahi as u32 {
                continue;
            }
            if blo > lo {
                out.push((lo as u16, (blo - 1) as u16));
            }
            lo = lo.max(bhi + 1);
        }
        if lo <= ahi as u32 {
            out.push((lo as u16, ahi));
        }
    }
    out.sort();
    out
}

/// The address after `ip`, in its family.
fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|v| IpAddr::V6(v.into())),
    }
}

/// The listed ports.
fn ports(ranges: &[PortRange], svc: &Service) -> Bool {
    let each: Vec<Bool> = ranges
        .iter()
        .map(|r| Bool::and(&[svc.is_protocol(r.protocol), svc.in_range(r.start, r.end)]))
        .collect();
    Bool::and(&[
        Bool::or(&each),
        svc.protocol.bvuge(idx(0)),
        svc.protocol.bvule(idx(2)),
    ])
}

fn hypothetical_name(i: usize) -> String {
    ["hypothetical-source", "hypothetical-destination"][i].to_owned()
}

/// Add a hypothetical pod (and its new namespace) to the cluster.
fn add_hypothetical(cluster: &mut Cluster, end: &Concrete, i: usize) {
    let Concrete::Hypothetical {
        namespace,
        namespace_labels,
        labels,
        ports,
        ip,
        service_account,
        inject_annotation,
    } = end
    else {
        return;
    };
    if let Some(nl) = namespace_labels {
        cluster.namespaces.insert(
            namespace.clone(),
            Namespace {
                name: namespace.clone(),
                labels: nl.clone(),
                declared: true,
            },
        );
    }
    let w = Workload {
        namespace: namespace.clone(),
        name: hypothetical_name(i),
        kind: WorkloadKind::Pod,
        labels: labels.clone(),
        service_account: service_account.clone(),
        ports: ports.clone(),
        ips: ip.iter().copied().collect(),
        host_network: false,
        inject_annotation: inject_annotation.clone(),
        location: None,
    };
    let at = cluster.workloads.partition_point(|x| {
        (x.namespace.as_str(), x.name.as_str()) < (w.namespace.as_str(), w.name.as_str())
    });
    cluster.workloads.insert(at, w);
}

/// Whether some AuthorizationPolicy looks at the source's principal,
/// namespace or service account (the names of a hypothetical pod matter).
fn reads_identities(cluster: &Cluster) -> bool {
    use ambit_compiler::authz::Attr;
    cluster
        .authorization_policies
        .iter()
        .flat_map(|p| &p.rules)
        .flat_map(|r| r.fields())
        .any(|f| {
            matches!(
                f.attr,
                Attr::Principal | Attr::Namespace | Attr::ServiceAccount
            )
        })
}

/// A DNS-1123 label: what service account and namespace names are.
fn dns_label() -> Regexp {
    let alnum = Regexp::union(&[&Regexp::range(&'a', &'z'), &Regexp::range(&'0', &'9')]);
    let inner = Regexp::union(&[&alnum, &Regexp::literal("-")]);
    Regexp::concat(&[&alnum, &Regexp::concat(&[&inner.star(), &alnum]).option()])
}

/// A label value that is none of `known`.
fn other_value(known: &BTreeSet<String>) -> String {
    free_name("other", known)
}

/// `base`, or `base-2`, `base-3`, … : the first that is not `taken`.
fn free_name(base: &str, taken: &BTreeSet<String>) -> String {
    (1..)
        .map(|i| {
            if i == 1 {
                base.to_owned()
            } else {
                format!("{base}-{i}")
            }
        })
        .find(|v| !taken.contains(v))
        .expect("some name is free")
}

/// `{a=b, c=d}`.
pub fn show_labels(labels: &LabelMap) -> String {
    let items: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", items.join(", "))
}
