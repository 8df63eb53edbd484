//! RX101: workloads that admit connections from outside the cluster,
//! decided with Z3 over the decision tables (every tier, and the L4 view of
//! authorization; `compile --check` proves them equal to the semantics): a
//! source address outside the pod network that no pod or node has, any
//! port, any protocol. One question per class of workloads that decide
//! alike, on one incremental solver.

use std::collections::{BTreeMap, BTreeSet};

use ambit_compiler::diag::Code;
use std::net::IpAddr;

use ambit_compiler::model::Protocol;
use ambit_compiler::table::Endpoint;
use ambit_verifier::encode::{
    Addr, Service, TableEncoding, TableEnd, idx, idx_const, set_index_domain,
};
use ipnet::IpNet;
use z3::ast::{BV, Bool};
use z3::{SatResult, Solver};

use crate::{Context, name_path};

pub(crate) fn run(cx: &mut Context<'_>) {
    let cluster = cx.cluster;
    if cluster.workloads.is_empty() {
        return;
    }
    set_index_domain(cluster.workloads.len() + 2 + cluster.namespaces.len());
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, w) in cluster.workloads.iter().enumerate() {
        if !w.host_network {
            classes
                .entry(cx.tables.workloads[i].class)
                .or_default()
                .push(i);
        }
    }
    let taken: Vec<std::net::IpAddr> = cluster
        .workloads
        .iter()
        .flat_map(|w| w.ips.iter().copied())
        .chain(
            cluster
                .nodes
                .iter()
                .flat_map(|n| n.addresses.iter().copied()),
        )
        .collect();
    let documentation: [IpNet; 2] = [
        "203.0.113.0/24".parse().expect("a CIDR"),
        "2001:db8::/32".parse().expect("a CIDR"),
    ];
    // One solver: an outside source, any port and protocol; each class is
    // asked in turn.
    let solver = Solver::new();
    let src = TableEnd {
        class: idx_const("src.class"),
        external: Bool::from_bool(true),
        addr: Addr::new("src.addr"),
    };
    let addr = &src.addr;
    solver.assert(&addr.valid);
    solver.assert(addr.well_formed());
    for net in &cx.pod_network {
        solver.assert(addr.in_cidr(net).not());
    }
    for ip in &taken {
        solver.assert(addr.is(Some(*ip)).not());
    }
    let svc = Service::new();
    solver.assert(svc.protocol.bvule(idx(2)));
    solver.assert(svc.port.bvuge(BV::from_u64(1, 16)));
    let none = BTreeSet::new();
    for (class, members) in classes {
        // An isolated class whose admin and NetworkPolicy rules admit no
        // address outside the cluster (no block, no rule open to all)
        // denies every outside source: no question to ask.
        let iso = &cx.tables.ingress[class as usize];
        let outside_admitted = iso.admin.iter().chain(&iso.rules).any(|&r| {
            let p = &cx.tables.rules[r as usize].peers;
            p.all || !p.ip_blocks.is_empty()
        });
        if iso.isolated() && !outside_admitted {
            continue;
        }
        let w = &cluster.workloads[members[0]];
        // The plainest example: a documentation address, TCP, a port the
        // workload declares. Read from the tables when a documentation
        // address reaches the workload; otherwise the solver looks.
        let concrete = || {
            let to = Endpoint::Workload(members[0] as u32);
            ["203.0.113.7", "2001:db8::7"]
                .map(|a| a.parse::<IpAddr>().expect("an address"))
                .into_iter()
                .filter(|ip| !taken.contains(ip) && !cx.pod_network.iter().any(|n| n.contains(ip)))
                .find_map(|ip| {
                    let set = cx.tables.allowed_ports(Endpoint::Ip(ip), to);
                    let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
                        .into_iter()
                        .find(|p| !set.ranges[p.index()].is_empty())?;
                    let ranges = &set.ranges[protocol.index()];
                    let holds =
                        |port: u16| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&port));
                    let port = w
                        .ports
                        .iter()
                        .filter(|p| p.protocol == Protocol::Tcp)
                        .map(|p| p.port)
                        .find(|&p| holds(p))
                        .unwrap_or(ranges[0].0);
                    Some((ip.to_string(), protocol, port))
                })
        };
        let solved = || {
            let dst = TableEnd::class(idx(class as u64), "dst");
            let only = BTreeSet::from([class]);
            // An encoding per destination: a rule's formula resolves its
            // named ports at the destination it was built for.
            let encoding = TableEncoding::new(cx.tables);
            solver.push();
            solver.assert(dst.addr.is(w.ips.first().copied()));
            solver.assert(encoding.allowed_among(&src, &dst, &svc, [&none, &only]));
            if solver.check() != SatResult::Sat {
                solver.pop(1);
                return None;
            }
            // The plainest example: a documentation address, TCP, a port the
            // workload declares; each kept when it still has a flow.
            let declared: Vec<Bool> = w
                .ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| svc.port.eq(BV::from_u64(p.port as u64, 16)))
                .collect();
            let preferences = [
                addr.is(Some("203.0.113.7".parse().expect("an address"))),
                addr.is(Some("2001:db8::7".parse().expect("an address"))),
                Bool::or(
                    &documentation
                        .iter()
                        .map(|n| addr.in_cidr(n))
                        .collect::<Vec<_>>(),
                ),
                svc.is_protocol(Protocol::Tcp),
                Bool::or(&declared),
            ];
            let mut kept = 0;
            for preference in &preferences {
                solver.push();
                solver.assert(preference);
                if solver.check() == SatResult::Sat {
                    kept += 1;
                } else {
                    solver.pop(1);
                }
            }
            solver.check();
            let model = solver.get_model().expect("sat has a model");
            solver.pop(kept + 1);
            let ip = addr
                .value_in(&model)
                .map_or_else(|| "an outside address".to_owned(), |ip| ip.to_string());
            let port = model
                .eval(&svc.port, true)
                .and_then(|v| v.as_u64())
                .unwrap_or(1);
            let protocol = model
                .eval(&svc.protocol, true)
                .and_then(|v| v.as_u64())
                .map_or(Protocol::Tcp, |p| Protocol::ALL[(p as usize).min(2)]);
            Some((ip, protocol, port as u16))
        };
        let Some((ip, protocol, port)) = concrete().or_else(solved) else {
            continue;
        };
        let isolated = cx.tables.ingress[class as usize].isolated();
        for &i in &members {
            let w = &cluster.workloads[i];
            cx.report(
                Code::ReachableFromOutside,
                &Context::workload_key(w),
                &name_path(),
                format!(
                    "`{}` accepts connections from outside the cluster, e.g. from {ip} on {protocol} {port}{}",
                    w.id(),
                    if isolated { "" } else { " (no NetworkPolicy isolates it for ingress)" }
                ),
                format!(
                    "`ambit query PATHS --from ip:{ip} --to {} --port {port} --protocol {protocol}` shows what admits it; if it should not be exposed, admit only in-cluster peers",
                    w.id()
                ),
            );
        }
    }
}
