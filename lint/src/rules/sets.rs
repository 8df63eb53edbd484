//! Rules that are questions about sets of flows or of pods, answered by Z3
//! through `ambit-verifier`'s encodings: NP003, NP004 and AN002 over the
//! decision tables (classes of workloads that decide alike, with each
//! class's Admin-tier rules in order; `compile --check` proves the tables
//! equal to the semantics), NP008 over label sets:
//!
//! - NP004 a rule admits nothing: no selected pod, remote end (a workload or
//!   any address outside the cluster), port and protocol it admits;
//! - NP003 a rule is shadowed: no flow it admits is left unadmitted by the
//!   other rules of the policies selecting the same pod. Rules are taken
//!   last first, and a rule found shadowed no longer counts as a cover for
//!   the ones before it: removing every reported rule changes no decision;
//! - AN002 every flow a rule admits is denied first by the Admin tier;
//! - NP008 a pod that could be deployed in a namespace (any labels) would
//!   not be isolated for ingress.

use std::collections::{BTreeSet, HashMap};

use ambit_compiler::admin::{Action, Tier};
use ambit_compiler::diag::Code;
use ambit_compiler::model::{Direction, NetworkPolicy, PortSpec, Protocol, Rule};
use ambit_compiler::table::{Peers, Remote, Tables};
use ambit_compiler::yaml::Seg;
use ambit_verifier::encode::{
    Labels, Service, TableEncoding, TableEnd, Vocabulary, idx, idx_const, in_ranges, satisfiable,
    selector, set_index_domain,
};
use rayon::iter::{IntoParallelRefIterator, ParallelIterator};
use z3::ast::Bool;
use z3::{SatResult, Solver};

use crate::rules::netpol::{key, rule_path, selected};
use crate::sites::ObjectKey;
use crate::{Context, name_path};

/// One rule of a NetworkPolicy, by position.
#[derive(Debug, Clone, Copy)]
struct RuleRef {
    policy: usize,
    rule: usize,
}

pub(crate) fn run(cx: &mut Context<'_>) {
    let cluster = cx.cluster;
    if cluster.workloads.is_empty() {
        return;
    }
    let domain = cluster.workloads.len() + 2 + cluster.namespaces.len();
    set_index_domain(domain);
    let admin = cluster.admin_policies.iter().any(|p| p.tier == Tier::Admin);
    let names: BTreeSet<&str> = cluster
        .network_policies
        .iter()
        .map(|np| np.namespace.as_str())
        .collect();
    let tables = cx.tables;
    // Table rules by (policy, direction, index), policies by name.
    let mut table_rules: HashMap<(u32, Direction, u32), Vec<u32>> = HashMap::new();
    for (t, r) in tables.rules.iter().enumerate() {
        table_rules
            .entry((r.policy, r.direction, r.index))
            .or_default()
            .push(t as u32);
    }
    let policy_index: HashMap<(&str, &str), u32> = tables
        .policies
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == "NetworkPolicy")
        .map(|(i, e)| ((e.namespace.as_str(), e.name.as_str()), i as u32))
        .collect();
    // Each namespace and direction is a question of its own, asked on
    // every core, each in its own solver context; what they find is
    // reported in their order.
    let units: Vec<(&str, Direction, Vec<RuleRef>)> = names
        .into_iter()
        .flat_map(|ns| [Direction::Ingress, Direction::Egress].map(|d| (ns, d)))
        .map(|(ns, direction)| (ns, direction, rules_of(cx, ns, direction)))
        .filter(|(_, _, rules)| !rules.is_empty())
        .collect();
    let shared = Shared {
        table_rules: &table_rules,
        policy_index: &policy_index,
        admin,
    };
    let found: Vec<Vec<Found>> = {
        let cx: &Context<'_> = cx;
        units
            .par_iter()
            .map(|(ns, direction, rules)| {
                z3::with_z3_config(&z3::Config::new(), || {
                    set_index_domain(domain);
                    unit(cx, &shared, ns, *direction, rules)
                })
            })
            .collect()
    };
    for f in found.into_iter().flatten() {
        match f {
            Found::Report {
                code,
                key,
                path,
                message,
                help,
            } => cx.report(code, &key, &path, message, help),
            Found::Retract { code, key, path } => {
                cx.retract(code, &key, &path);
            }
            Found::Shadowed(rule) => cx.shadowed.push(rule),
        }
    }
    no_default_deny(cx, &Vocabulary::of(cluster));
}

/// What the rules of one namespace and direction found, in order.
enum Found {
    Report {
        code: Code,
        key: ObjectKey,
        path: Vec<Seg>,
        message: String,
        help: String,
    },
    /// Findings inside the path that a coarser one says again.
    Retract {
        code: Code,
        key: ObjectKey,
        path: Vec<Seg>,
    },
    /// A rule NP003 found shadowed.
    Shadowed(crate::RuleId),
}

fn report(
    found: &mut Vec<Found>,
    code: Code,
    key: &ObjectKey,
    path: &[Seg],
    message: String,
    help: String,
) {
    found.push(Found::Report {
        code,
        key: key.clone(),
        path: path.to_vec(),
        message,
        help,
    });
}

/// What every unit reads.
struct Shared<'s> {
    /// Table rules by (policy, direction, index).
    table_rules: &'s HashMap<(u32, Direction, u32), Vec<u32>>,
    /// NetworkPolicies in the tables, by (namespace, name).
    policy_index: &'s HashMap<(&'s str, &'s str), u32>,
    /// The cluster has Admin-tier policies.
    admin: bool,
}

/// The rules of the NetworkPolicies of `ns` that select a pod, in
/// `direction`.
fn rules_of(cx: &Context<'_>, ns: &str, direction: Direction) -> Vec<RuleRef> {
    cx.cluster
        .network_policies
        .iter()
        .enumerate()
        .filter(|(_, np)| np.namespace == ns && !selected(cx, np).is_empty())
        .flat_map(|(p, np)| {
            (0..np.rules(direction).map_or(0, <[Rule]>::len))
                .map(move |r| RuleRef { policy: p, rule: r })
        })
        .collect()
}

/// NP004, NP003 and AN002 over the rules of one namespace and direction.
fn unit(
    cx: &Context<'_>,
    shared: &Shared<'_>,
    ns: &str,
    direction: Direction,
    rules: &[RuleRef],
) -> Vec<Found> {
    let cluster = cx.cluster;
    let Shared {
        table_rules,
        policy_index,
        admin,
    } = *shared;
    let mut found = Vec::new();
    // Over the tables: the pod is a class of the namespace, the
    // remote end any class or any outside address.
    let tables = cx.tables;
    let n_classes = tables.classes.len() as u64;
    let own: Vec<u32> = cx
        .representatives(
            cluster
                .workloads
                .iter()
                .enumerate()
                .filter(|(_, w)| w.namespace == ns && !w.host_network)
                .map(|(i, _)| i),
        )
        .into_iter()
        .map(|i| tables.workloads[i].class)
        .collect();
    let solver = Solver::new();
    let encoding = TableEncoding::new(tables);
    let pod = TableEnd::class(idx_const("pod.class"), "pod");
    solver.assert(in_ranges(&own, &pod.class));
    let remote = TableEnd::new("remote");
    solver.assert(remote.external.implies(Bool::and(&[
        remote.addr.valid.clone(),
        remote.addr.well_formed(),
    ])));
    solver.assert(
        remote
            .external
            .not()
            .implies(remote.class.bvult(idx(n_classes))),
    );
    let svc = Service::new();
    solver.assert(svc.protocol.bvule(idx(2)));
    let dst = match direction {
        Direction::Ingress => &pod,
        Direction::Egress => &remote,
    };
    let isolation = |c: usize| match direction {
        Direction::Ingress => &tables.ingress[c],
        Direction::Egress => &tables.egress[c],
    };
    // Each rule: the classes its policy selects here, its table rules.
    let infos: Vec<(Vec<u32>, Vec<u32>)> = rules
        .iter()
        .map(|r| {
            let np = &cluster.network_policies[r.policy];
            let Some(&p) = policy_index.get(&(np.namespace.as_str(), np.name.as_str())) else {
                return (Vec::new(), Vec::new());
            };
            let selecting: Vec<u32> = own
                .iter()
                .copied()
                .filter(|&c| isolation(c as usize).policies.contains(&p))
                .collect();
            let trules = table_rules
                .get(&(p, direction, r.rule as u32))
                .cloned()
                .unwrap_or_default();
            (selecting, trules)
        })
        .collect();
    // Each rule's flows as a formula, built when the solver is asked.
    let admits_cache: Vec<std::cell::OnceCell<Bool>> =
        infos.iter().map(|_| std::cell::OnceCell::new()).collect();
    let admits = |i: usize| -> Bool {
        admits_cache[i]
            .get_or_init(|| {
                let (selecting, trules) = &infos[i];
                let matches: Vec<Bool> = trules
                    .iter()
                    .map(|&t| encoding.rule_matches(t, &remote, dst, &svc))
                    .collect();
                Bool::and(&[in_ranges(selecting, &pod.class), Bool::or(&matches)])
            })
            .clone()
    };
    let sat = |extra: &[Bool]| {
        let extra: Vec<&Bool> = extra.iter().collect();
        satisfiable(&solver, &extra)
    };
    // A concrete flow shows most rules alive; the solver decides the
    // rest.
    let live: Vec<bool> = infos
        .iter()
        .enumerate()
        .map(|(i, info)| {
            concretely_alive(tables, direction, info) || sat(&[admits(i)]) != SatResult::Unsat
        })
        .collect();
    // NP004: a dead rule, unless each of its peers was already
    // found to match nothing (NP002, NP010); it says what a dead named port says.
    for (r, alive) in rules.iter().zip(&live) {
        let np = &cluster.network_policies[r.policy];
        let rule = &np.rules(direction).expect("rules of the direction")[r.rule];
        let at = rule_path(direction, r.rule);
        let peers = match direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let dead_peers = rule.peers.as_ref().is_some_and(|list| {
            (0..list.len()).all(|j| {
                let p: Vec<Seg> = at
                    .iter()
                    .cloned()
                    .chain([Seg::Key(peers), Seg::Index(j)])
                    .collect();
                cx.reported_inside(Code::PeerMatchesNothing, &key(np), &p)
                    || cx.reported_inside(Code::UnknownLabel, &key(np), &p)
            })
        });
        if *alive || dead_peers {
            continue;
        }
        let why = cx.reported_messages(Code::NamedPortNeverMatches, &key(np), &at);
        found.push(Found::Retract {
            code: Code::NamedPortNeverMatches,
            key: key(np),
            path: at.clone(),
        });
        let message = match why.first() {
            Some(w) => format!("this rule can never match: {w}"),
            None => format!(
                "this rule admits no flow {} any pod the policy selects",
                match direction {
                    Direction::Ingress => "to",
                    Direction::Egress => "from",
                }
            ),
        };
        report(
            &mut found,
            Code::RuleNeverMatches,
            &key(np),
            &at,
            message,
            "its peers and its ports never meet: check named ports and selectors against the pods they should match".into(),
        );
    }
    // NP003, last rule first.
    let mut removed: BTreeSet<usize> = BTreeSet::new();
    for i in (0..rules.len()).rev() {
        if !live[i] {
            removed.insert(i);
            continue;
        }
        // Only rules that could share a flow with this one can cover
        // it.
        let others: Vec<usize> = (0..rules.len())
            .filter(|j| *j != i && !removed.contains(j))
            .filter(|&j| may_overlap(tables, &infos[i], &infos[j]))
            .collect();
        if others.is_empty() {
            continue;
        }
        // One other rule that holds all this one admits proves it
        // shadowed; a flow only this rule admits, found without the
        // solver, proves it is not. The solver decides the rest.
        let cover: Vec<&Info> = others.iter().map(|&j| &infos[j]).collect();
        let contained = cover.iter().any(|o| covers(tables, o, &infos[i]));
        if !contained {
            if concrete_flow(tables, direction, &infos[i], &cover, |flow| {
                !cover.iter().any(|o| admits_flow(tables, o, flow))
            }) {
                continue;
            }
            let others: Vec<Bool> = others.into_iter().map(admits).collect();
            if sat(&[admits(i), Bool::or(&others).not()]) != SatResult::Unsat {
                continue;
            }
        }
        removed.insert(i);
        found.push(Found::Shadowed(crate::RuleId {
            policy: rules[i].policy,
            direction,
            rule: rules[i].rule,
        }));
        let covering: Vec<String> = (0..rules.len())
            .filter(|j| *j != i && !removed.contains(j))
            .filter(|&j| may_overlap(tables, &infos[i], &infos[j]))
            .filter(|&j| {
                covers(tables, &infos[j], &infos[i])
                    || concrete_flow(tables, direction, &infos[i], &[&infos[j]], |flow| {
                        admits_flow(tables, &infos[j], flow)
                    })
                    || sat(&[admits(i), admits(j)]) == SatResult::Sat
            })
            .take(3)
            .map(|j| describe(cx, rules[j], direction))
            .collect();
        let r = rules[i];
        let np = &cluster.network_policies[r.policy];
        report(
            &mut found,
            Code::ShadowedRule,
            &key(np),
            &rule_path(direction, r.rule),
            format!(
                "everything this rule admits is also admitted by {}",
                covering.join(", ")
            ),
            "remove the rule, or narrow the rules that cover it if it was meant to be the only way in".into(),
        );
    }
    // AN002: every flow a live rule admits is denied first by the
    // Admin tier. A concrete flow the rule admits and the Admin tier
    // does not deny shows most rules are not; the solver decides the
    // rest.
    if admin {
        let denied = encoding.admin_denies(direction, &pod.class, &remote, dst, &svc, &own);
        for (i, r) in rules.iter().enumerate() {
            if !live[i]
                || concrete_flow(tables, direction, &infos[i], &[], |f| {
                    tables.admin_decision(f.pod, direction, f.remote, f.dst, f.proto, f.port)
                        != Some(Action::Deny)
                })
                || sat(&[admits(i), denied.not()]) != SatResult::Unsat
            {
                continue;
            }
            let np = &cluster.network_policies[r.policy];
            report(
                &mut found,
                Code::OverriddenByAdmin,
                &key(np),
                &rule_path(direction, r.rule),
                "every flow this rule admits is denied first by the Admin tier (ClusterNetworkPolicy / AdminNetworkPolicy): the policies conflict and this rule has no effect".into(),
                "`ambit query` on one of its flows shows the admin rule that decides; change that rule to Pass to delegate to NetworkPolicy".into(),
            );
        }
    }
    found
}

/// A flow the rule surely admits, found without the solver: a selected
/// class, a peer, and a port (a named port declared where it resolves).
fn concretely_alive(
    tables: &Tables,
    direction: Direction,
    (selecting, trules): &(Vec<u32>, Vec<u32>),
) -> bool {
    if selecting.is_empty() {
        return false;
    }
    trules.iter().any(|&t| {
        let rule = &tables.rules[t as usize];
        let p = &rule.peers;
        let remote_any =
            p.all || !p.classes.is_empty() || !p.ip_classes.is_empty() || !p.ip_blocks.is_empty();
        if !remote_any {
            return false;
        }
        let Some(ports) = &rule.ports else {
            return true;
        };
        ports.iter().any(|spec| {
            let (name, protocol) = match spec {
                PortSpec::AnyPort(_) | PortSpec::Range { .. } => return true,
                PortSpec::Named { name, protocol } => (name, Some(*protocol)),
                PortSpec::NamedAnyProtocol { name } => (name, None),
            };
            let declares = |c: u32| {
                tables.classes[c as usize].ports.iter().any(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && protocol.is_none_or(|pr| pr == cp.protocol)
                })
            };
            match direction {
                Direction::Ingress => selecting.iter().any(|&c| declares(c)),
                // The remote end is the destination: a pod the peers match.
                Direction::Egress => (0..tables.classes.len() as u32).any(|c| {
                    (p.all || p.classes.contains(c) || p.ip_classes.contains(c)) && declares(c)
                }),
            }
        })
    })
}

/// A rule as the set rules see it: the classes its policy selects in the
/// namespace, and its table rules.
type Info = (Vec<u32>, Vec<u32>);

/// One concrete flow: the selected pod's class, the remote end, the class
/// whose named ports apply, protocol and port.
#[derive(Clone, Copy)]
struct Flow {
    pod: u32,
    remote: Remote,
    dst: Option<u32>,
    proto: Protocol,
    port: u16,
}

fn admits_flow(tables: &Tables, (selecting, trules): &Info, f: &Flow) -> bool {
    selecting.contains(&f.pod)
        && trules
            .iter()
            .any(|&t| tables.rule_admits_flow(t, f.remote, f.dst, f.proto, f.port))
}

/// Is there a flow `rule` admits for which `want` holds, among a few
/// concrete ones: each class the rule's policy selects here; remote classes
/// its peers admit (some of them), and addresses of its blocks (a block's
/// first and last, the first after each `except`) or of the documentation
/// ranges for a rule open to every peer; the bounds of its ports and of the
/// `near` rules' (named ports resolved at the destination). `false` says
/// nothing: the solver decides.
fn concrete_flow(
    tables: &Tables,
    direction: Direction,
    rule: &Info,
    near: &[&Info],
    want: impl Fn(&Flow) -> bool,
) -> bool {
    const REMOTE_CLASSES: usize = 32;
    let (selecting, trules) = rule;
    let mut remotes: Vec<Remote> = Vec::new();
    let mut ports: BTreeSet<u16> = BTreeSet::from([1, 65535]);
    let bounds = |specs: &Option<Vec<PortSpec>>, ports: &mut BTreeSet<u16>| {
        for spec in specs.iter().flatten() {
            if let PortSpec::Range { start, end, .. } = spec {
                ports.extend([
                    *start,
                    *end,
                    start.saturating_sub(1).max(1),
                    end.saturating_add(1),
                ]);
            }
        }
    };
    for &t in trules {
        let r = &tables.rules[t as usize];
        let p = &r.peers;
        bounds(&r.ports, &mut ports);
        if p.all {
            remotes.extend(
                ["203.0.113.7", "2001:db8::7"].map(|a| Remote::Ip(a.parse().expect("an address"))),
            );
            remotes.extend(
                (0..tables.classes.len() as u32)
                    .take(REMOTE_CLASSES)
                    .map(Remote::Class),
            );
        }
        remotes.extend(
            p.classes
                .iter()
                .chain(p.ip_classes.iter())
                .take(REMOTE_CLASSES)
                .map(Remote::Class),
        );
        for b in &p.ip_blocks {
            let net = b.cidr;
            let mut candidates = vec![net.network(), net.broadcast()];
            candidates.extend(b.except.iter().filter_map(|e| next_address(e.broadcast())));
            remotes.extend(
                candidates
                    .into_iter()
                    .filter(|&a| b.contains(a))
                    .map(Remote::Ip),
            );
        }
    }
    for o in near {
        for &t in &o.1 {
            bounds(&tables.rules[t as usize].ports, &mut ports);
        }
    }
    for &pod in selecting {
        for &remote in &remotes {
            let dst = match (direction, remote) {
                (Direction::Ingress, _) => Some(pod),
                (Direction::Egress, Remote::Class(c)) => Some(c),
                (Direction::Egress, Remote::Ip(_)) => None,
            };
            // Named ports: the destination's declared ports.
            let declared = dst
                .map(|c| tables.classes[c as usize].ports.iter().map(|p| p.port))
                .into_iter()
                .flatten();
            for port in ports.iter().copied().chain(declared) {
                for proto in Protocol::ALL {
                    let flow = Flow {
                        pod,
                        remote,
                        dst,
                        proto,
                        port,
                    };
                    if admits_flow(tables, rule, &flow) && want(&flow) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Does `outer` admit every flow `inner` admits? A sufficient condition
/// (`false` says nothing): `outer`'s policy selects every class `inner`'s
/// does, and each table rule of `inner` is held by one of `outer`: its peers
/// within the other's, its ports within the other's.
fn covers(tables: &Tables, outer: &Info, inner: &Info) -> bool {
    inner.0.iter().all(|c| outer.0.contains(c))
        && inner.1.iter().all(|&t| {
            let r = &tables.rules[t as usize];
            outer.1.iter().any(|&u| {
                let q = &tables.rules[u as usize];
                peers_within(&r.peers, &q.peers) && ports_within(&r.ports, &q.ports)
            })
        })
}

fn peers_within(p: &Peers, q: &Peers) -> bool {
    if q.all {
        return true;
    }
    if p.all {
        return false;
    }
    let held = |c: u32| q.classes.contains(c) || q.ip_classes.contains(c);
    p.classes.iter().all(held)
        && p.ip_classes.iter().all(held)
        && p.ip_blocks.iter().all(|b| {
            q.ip_blocks.iter().any(|o| {
                o.cidr.contains(&b.cidr)
                    && o.except.iter().all(|e| {
                        // What `o` leaves out of `b` must be left out by `b`.
                        let cut = if b.cidr.contains(e) {
                            *e
                        } else if e.contains(&b.cidr) {
                            b.cidr
                        } else {
                            return true;
                        };
                        b.except.iter().any(|x| x.contains(&cut))
                    })
            })
        })
}

fn ports_within(p: &Option<Vec<PortSpec>>, q: &Option<Vec<PortSpec>>) -> bool {
    let (Some(p), Some(q)) = (p, q) else {
        return q.is_none();
    };
    p.iter().all(|s| {
        q.iter().any(|t| match (s, t) {
            (PortSpec::AnyPort(a), PortSpec::AnyPort(b)) => a == b,
            (PortSpec::Range { protocol: a, .. }, PortSpec::AnyPort(b)) => a == b,
            (PortSpec::Named { protocol: a, .. }, PortSpec::AnyPort(b)) => a == b,
            (
                PortSpec::Range {
                    protocol: a,
                    start: s1,
                    end: e1,
                },
                PortSpec::Range {
                    protocol: b,
                    start: s2,
                    end: e2,
                },
            ) => a == b && s2 <= s1 && e1 <= e2,
            (
                PortSpec::Named {
                    protocol: a,
                    name: n,
                },
                PortSpec::Named {
                    protocol: b,
                    name: m,
                },
            ) => a == b && n == m,
            (PortSpec::NamedAnyProtocol { name: n }, PortSpec::NamedAnyProtocol { name: m }) => {
                n == m
            }
            _ => false,
        })
    })
}

/// The address after `a`, if any.
fn next_address(a: std::net::IpAddr) -> Option<std::net::IpAddr> {
    match a {
        std::net::IpAddr::V4(v) => u32::from(v)
            .checked_add(1)
            .map(|n| std::net::Ipv4Addr::from(n).into()),
        std::net::IpAddr::V6(v) => u128::from(v)
            .checked_add(1)
            .map(|n| std::net::Ipv6Addr::from(n).into()),
    }
}

/// Whether two rules may admit a common flow at a common pod: an
/// over-approximation (a `false` is exact), to leave out rules that cannot
/// help cover another.
fn may_overlap(tables: &Tables, a: &Info, b: &Info) -> bool {
    if !a.0.iter().any(|c| b.0.contains(c)) {
        return false;
    }
    let peers = |p: &Peers, q: &Peers| {
        p.all
            || q.all
            || !p.ip_blocks.is_empty()
            || !q.ip_blocks.is_empty()
            || p.classes.intersects(&q.classes)
            || p.classes.intersects(&q.ip_classes)
            || p.ip_classes.intersects(&q.classes)
            || p.ip_classes.intersects(&q.ip_classes)
    };
    let protocol = |s: &PortSpec| match s {
        PortSpec::AnyPort(p)
        | PortSpec::Range { protocol: p, .. }
        | PortSpec::Named { protocol: p, .. } => Some(*p),
        PortSpec::NamedAnyProtocol { .. } => None,
    };
    let spec = |x: &PortSpec, y: &PortSpec| match (x, y) {
        (
            PortSpec::Range {
                protocol: p,
                start: a,
                end: b,
            },
            PortSpec::Range {
                protocol: q,
                start: c,
                end: d,
            },
        ) => p == q && a <= d && c <= b,
        _ => match (protocol(x), protocol(y)) {
            (Some(p), Some(q)) => p == q,
            _ => true,
        },
    };
    let ports = |x: &Option<Vec<PortSpec>>, y: &Option<Vec<PortSpec>>| match (x, y) {
        (Some(x), Some(y)) => x.iter().any(|s| y.iter().any(|t| spec(s, t))),
        _ => true,
    };
    a.1.iter().any(|&s| {
        b.1.iter().any(|&t| {
            let (r, q) = (&tables.rules[s as usize], &tables.rules[t as usize]);
            peers(&r.peers, &q.peers) && ports(&r.ports, &q.ports)
        })
    })
}

/// `policy` ingress rule N (1-based, as people count).
fn describe(cx: &Context<'_>, r: RuleRef, direction: Direction) -> String {
    let np: &NetworkPolicy = &cx.cluster.network_policies[r.policy];
    format!("`{}` {} rule {}", np.name, direction.as_str(), r.rule + 1)
}

/// NP008.
fn no_default_deny(cx: &mut Context<'_>, vocabulary: &Vocabulary) {
    let cluster = cx.cluster;
    let names: BTreeSet<&str> = cluster
        .workloads
        .iter()
        .map(|w| w.namespace.as_str())
        .collect();
    for ns in names {
        let isolating: Vec<&NetworkPolicy> = cluster
            .network_policies
            .iter()
            .filter(|np| np.namespace == ns && np.ingress.is_some())
            .collect();
        // A policy that selects every pod isolates them all; a pod without
        // labels that none selects is the plainest example. The solver
        // looks for a pod between the two.
        if isolating.iter().any(|np| np.pod_selector.is_everything()) {
            continue;
        }
        let bare = !isolating
            .iter()
            .any(|np| np.pod_selector.matches(&Default::default()));
        let pod = if bare {
            "a pod without labels".to_owned()
        } else {
            let solver = Solver::new();
            let labels = Labels::new(&format!("{ns}.pod"), &vocabulary.pod);
            solver.assert(labels.well_formed());
            for np in &isolating {
                solver.assert(selector(&np.pod_selector, &labels).not());
            }
            if solver.check() != SatResult::Sat {
                continue;
            }
            let model = solver.get_model().expect("sat has a model");
            let example: Vec<String> = labels
                .keys()
                .filter_map(|k| labels.value_in(&model, k).map(|v| format!("{k}={v}")))
                .filter(|kv| !kv.contains("<other>"))
                .collect();
            if example.is_empty() {
                "a pod without labels".to_owned()
            } else {
                format!("a pod labelled `{}`", example.join(","))
            }
        };
        let (key, path) = match cluster.namespaces.get(ns).filter(|n| n.declared) {
            Some(_) => (ObjectKey::new("Namespace", "", ns), name_path()),
            None => {
                let w = cluster
                    .workloads
                    .iter()
                    .find(|w| w.namespace == ns)
                    .expect("a workload of the namespace");
                (Context::workload_key(w), name_path())
            }
        };
        cx.report(
            Code::NoDefaultDeny,
            &key,
            &path,
            format!(
                "no NetworkPolicy isolates every pod of namespace `{ns}` for ingress: {pod} would accept connections from anywhere"
            ),
            "add a default deny: a NetworkPolicy with `podSelector: {}` and `policyTypes: [Ingress]`, then allow what each workload needs".into(),
        );
    }
}
