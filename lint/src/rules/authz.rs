//! AuthorizationPolicy rules, read off the compiled authorization layer
//! (which policies apply to which class, in which mesh mode).
//!
//! ztunnel, the L4 enforcer of ambient mode, enforces the policies attached
//! to a workload without a waypoint with istiod's L4 translation: ALLOW
//! rules with HTTP attributes are dropped (AP001), DENY rules lose those
//! attributes and deny more (AP002), or never match when a whole `from`,
//! `to` or `when` is HTTP-only (AP003). Sidecars are L7 proxies and are not
//! concerned.

use ambit_compiler::authz::{Action, AuthzPolicy, AuthzRule, Entry, MeshMode};
use ambit_compiler::diag::Code;
use ambit_compiler::model::{Direction, Protocol};
use ambit_compiler::table::Endpoint;
use ambit_compiler::yaml::Seg;

use ambit_verifier::check::{InventoryEnd, inventory_end};
use ambit_verifier::encode::authz::{Request, allow_rule_and_deny, looks_at_paths};
use ambit_verifier::encode::{
    Namespaces, Semantics, Service, Vocabulary, satisfiable, set_index_domain,
};
use z3::{SatResult, Solver};

use crate::rules::netpol::{key as np_key, selected};
use crate::sites::ObjectKey;
use crate::{Context, name_path};

/// The HBONE port: ambient traffic arrives at a pod on it.
const HBONE_PORT: u16 = 15008;

fn key(p: &AuthzPolicy) -> ObjectKey {
    ObjectKey::new("AuthorizationPolicy", &p.namespace, &p.name)
}

/// Workloads (indices) of the classes that satisfy `class`.
fn workloads_of(cx: &Context<'_>, class: impl Fn(usize) -> bool) -> Vec<usize> {
    cx.tables
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| class(w.class as usize))
        .map(|(i, _)| i)
        .collect()
}

fn only_l7(list: &Option<Vec<Entry>>) -> bool {
    list.as_ref()
        .is_some_and(|l| l.iter().all(|e| e.fields.iter().all(|f| !f.attr.is_l4())))
}

fn fails_open(r: &AuthzRule) -> bool {
    only_l7(&r.from) || only_l7(&r.to) || r.when.iter().any(|f| !f.attr.is_l4())
}

fn l7_fields(r: &AuthzRule) -> String {
    let mut names: Vec<String> = r
        .fields()
        .filter(|f| !f.attr.is_l4())
        .map(|f| format!("`{}`", f.attr.describe()))
        .collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

pub(crate) fn run(cx: &mut Context<'_>) {
    let layer = &cx.tables.authz;
    for (pi, p) in layer.policies.iter().enumerate() {
        let index = pi as u32;
        let key = key(p);
        let applied = |c: usize| {
            layer
                .classes
                .get(c)
                .is_some_and(|a| a.policies.contains(&index))
        };
        let waypoint = |c: usize| {
            layer
                .classes
                .get(c)
                .is_some_and(|a| a.waypoint_policies.contains(&index))
        };
        if !cx.cluster.workloads.is_empty()
            && workloads_of(cx, |c| applied(c) || waypoint(c)).is_empty()
        {
            let (path, why) = if p.target_refs.is_empty() {
                (
                    vec![Seg::Key("spec"), Seg::Key("selector")],
                    if p.selector.is_some() {
                        format!(
                            "its selector matches no workload in the mesh in `{}`",
                            p.namespace
                        )
                    } else {
                        format!("namespace `{}` has no workload in the mesh", p.namespace)
                    },
                )
            } else {
                (
                    vec![Seg::Key("spec"), Seg::Key("targetRefs")],
                    "its targetRefs name no Service or Gateway in front of a workload".to_owned(),
                )
            };
            cx.report(
                Code::AuthzSelectsNothing,
                &key,
                &path,
                format!("AuthorizationPolicy `{}` applies to no workload: {why}", p.name),
                "a policy applies to workloads in the mesh (sidecar or ambient) that its selector matches; check labels and the namespace's mesh enrollment".into(),
            );
            continue;
        }
        let ambient = workloads_of(cx, |c| {
            applied(c) && layer.classes[c].mesh == MeshMode::Ambient
        });
        if ambient.is_empty() {
            continue;
        }
        let who = cx.some_workloads(&ambient);
        for (ri, rule) in p.rules.iter().enumerate() {
            if !rule.has_l7() {
                continue;
            }
            let at = vec![Seg::Key("spec"), Seg::Key("rules"), Seg::Index(ri)];
            let fields = l7_fields(rule);
            match p.action {
                Action::Allow => cx.report(
                    Code::AllowDroppedAtL4,
                    &key,
                    &at,
                    format!(
                        "this ALLOW rule uses {fields}, which ztunnel cannot see; for the ambient workloads {who} it is dropped and never allows"
                    ),
                    "attach the policy to a waypoint (targetRefs) to enforce HTTP attributes, or keep only L4 attributes (principals, namespaces, ipBlocks, ports) in rules for ztunnel".into(),
                ),
                Action::Deny if fails_open(rule) => cx.report(
                    Code::DenyFailsOpenAtL4,
                    &key,
                    &at,
                    format!(
                        "this DENY rule's {} only HTTP attributes ({fields}); ztunnel never matches it for the ambient workloads {who}: it fails open",
                        if rule.when.iter().any(|f| !f.attr.is_l4()) { "conditions use" } else { "from or to has" }
                    ),
                    "enforce it at a waypoint (targetRefs), or add an L4 attribute to deny at L4".into(),
                ),
                Action::Deny => cx.report(
                    Code::DenyWidenedAtL4,
                    &key,
                    &at,
                    format!(
                        "this DENY rule uses {fields}, which ztunnel drops: for the ambient workloads {who} it denies every request its L4 attributes match"
                    ),
                    "attach the policy to a waypoint (targetRefs) to deny by HTTP attributes only".into(),
                ),
                Action::Custom | Action::Audit => {}
            }
        }
    }
    hbone(cx);
    dead_allows(cx);
}

/// AP006: with Z3, in the view of an L7 proxy (any request, or none): no
/// source (a workload or an outside address) and request exist that the
/// ALLOW rule admits at a workload it applies to and that no DENY policy
/// there denies.
fn dead_allows(cx: &mut Context<'_>) {
    let cluster = cx.cluster;
    let policies = &cluster.authorization_policies;
    if cluster.workloads.is_empty() || !policies.iter().any(|p| p.action == Action::Deny) {
        return;
    }
    let layer = &cx.tables.authz;
    set_index_domain(cluster.workloads.len() + 2 + cluster.namespaces.len());
    let namespaces = Namespaces::of(cluster);
    let vocabulary = Vocabulary::of(cluster);
    let semantics = Semantics::new(cluster, &namespaces, &cx.options.compile);
    let trust = semantics.trust();
    let all = cx.representatives(0..cluster.workloads.len());
    let mut base = None;
    for (pi, p) in policies.iter().enumerate() {
        if p.action != Action::Allow || p.dry_run {
            continue;
        }
        let Some(index) = layer
            .policies
            .iter()
            .position(|q| q.namespace == p.namespace && q.name == p.name)
        else {
            continue;
        };
        let index = index as u32;
        let applies = |c: usize| {
            layer.classes.get(c).is_some_and(|a| {
                a.policies.contains(&index) || a.waypoint_policies.contains(&index)
            })
        };
        let members = cx.representatives(workloads_of(cx, applies));
        if members.is_empty() {
            continue;
        }
        let deny_names: Vec<String> = layer
            .policies
            .iter()
            .enumerate()
            .filter(|(di, d)| {
                d.action == Action::Deny
                    && !d.dry_run
                    && members.iter().any(|&m| {
                        let c = cx.tables.workloads[m].class as usize;
                        layer.classes[c].policies.contains(&(*di as u32))
                            || layer.classes[c].waypoint_policies.contains(&(*di as u32))
                    })
            })
            .map(|(_, d)| format!("`{}/{}`", d.namespace, d.name))
            .collect();
        if deny_names.is_empty() {
            continue;
        }
        // Every source once, for all the policies; each policy's
        // destinations in a scope of their own.
        let (solver, svc, request, from) = base.get_or_insert_with(|| {
            let solver = Solver::new();
            let InventoryEnd { pod: src, .. } = inventory_end(
                &solver,
                "src",
                cluster,
                &namespaces,
                &vocabulary,
                &all,
                true,
            );
            let svc = Service::new();
            solver.assert(svc.is_protocol(ambit_compiler::model::Protocol::Tcp));
            let request = Request::new("request", policies);
            let from = semantics.authz_source(&src);
            (solver, svc, request, from)
        });
        solver.push();
        let InventoryEnd { pod: dst, .. } = inventory_end(
            solver,
            "dst",
            cluster,
            &namespaces,
            &vocabulary,
            &members,
            false,
        );
        let to = semantics.authz_dest(&dst, svc);
        // The path's form matters only to the rules asked about here: a
        // text the formula would otherwise not hold.
        let deny = policies
            .iter()
            .filter(|d| d.action == Action::Deny && !d.dry_run);
        if looks_at_paths(std::iter::once(p).chain(deny)) {
            solver.assert(request.well_formed());
        }
        for (ri, _) in p.rules.iter().enumerate() {
            let (matches, denied) =
                allow_rule_and_deny(policies, &trust, from, &to, svc, request, pi, ri);
            let dead = satisfiable(solver, &[&matches]) == SatResult::Sat
                && satisfiable(solver, &[&matches, &denied.not()]) == SatResult::Unsat;
            if dead {
                cx.report(
                    Code::AllowDeadUnderDeny,
                    &key(p),
                    &[Seg::Key("spec"), Seg::Key("rules"), Seg::Index(ri)],
                    format!(
                        "every request this ALLOW rule admits is denied by {}: DENY is decided first, so the rule never allows",
                        deny_names.join(", ")
                    ),
                    "narrow the DENY policy (e.g. with `notPrincipals` or ports) or drop the dead ALLOW rule".into(),
                );
            }
        }
        solver.pop(1);
    }
}

/// AP005: an ambient workload isolated for ingress by NetworkPolicy takes
/// some TCP port from a mesh peer, but not 15008.
fn hbone(cx: &mut Context<'_>) {
    let layer = &cx.tables.authz;
    if layer.classes.is_empty() {
        return;
    }
    let mesh = |i: usize| {
        let c = cx.tables.workloads[i].class as usize;
        layer.classes.get(c).map_or(MeshMode::None, |a| a.mesh)
    };
    for np in &cx.cluster.network_policies {
        if np.rules(Direction::Ingress).is_none() {
            continue;
        }
        let mut example = None;
        'dst: for dst in selected(cx, np) {
            if mesh(dst) != MeshMode::Ambient {
                continue;
            }
            for src in 0..cx.tables.workloads.len() {
                if src == dst || mesh(src) == MeshMode::None {
                    continue;
                }
                let (from, to) = (
                    Endpoint::Workload(src as u32),
                    Endpoint::Workload(dst as u32),
                );
                let ports = cx.tables.allowed_ports(from, to);
                let tcp = &ports.ranges[Protocol::Tcp.index()];
                if tcp.is_empty()
                    || !cx.tables.decide_network(from, to, Protocol::Tcp, tcp[0].0)
                    || cx
                        .tables
                        .decide_network(from, to, Protocol::Tcp, HBONE_PORT)
                {
                    continue;
                }
                example = Some((src, dst, tcp[0].0));
                break 'dst;
            }
        }
        let Some((src, dst, port)) = example else {
            continue;
        };
        let ws = &cx.cluster.workloads;
        cx.report(
            Code::HbonePortBlocked,
            &np_key(np),
            &name_path(),
            format!(
                "`{}` is in the ambient mesh and isolated for ingress: `{}` may reach it on TCP {port} but not on TCP {HBONE_PORT}, where ambient traffic arrives",
                ws[dst].id(),
                ws[src].id()
            ),
            format!("add `- port: {HBONE_PORT}` (TCP) to the ingress rules that admit mesh peers"),
        );
    }
}
