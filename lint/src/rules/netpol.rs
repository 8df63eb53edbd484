//! NetworkPolicy rules decided over the inventory by enumeration, and the
//! structural ones (split rules, admit-everything, ipBlocks).

use ambit_compiler::diag::Code;
use ambit_compiler::model::{Direction, NetworkPolicy, Peer, PortSpec, Protocol, Rule};
use ambit_compiler::yaml::Seg;
use ipnet::IpNet;

use crate::sites::ObjectKey;
use crate::{Context, closest};

pub(crate) fn key(np: &NetworkPolicy) -> ObjectKey {
    ObjectKey::new("NetworkPolicy", &np.namespace, &np.name)
}

/// `spec.ingress[i]` / `spec.egress[i]`.
pub(crate) fn rule_path(direction: Direction, i: usize) -> Vec<Seg> {
    vec![
        Seg::Key("spec"),
        Seg::Key(direction.as_str()),
        Seg::Index(i),
    ]
}

fn peers_key(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    }
}

fn join(base: &[Seg], more: impl IntoIterator<Item = Seg>) -> Vec<Seg> {
    base.iter().cloned().chain(more).collect()
}

/// The workloads a NetworkPolicy selects (host-network pods are the node's
/// and are not selected).
pub(crate) fn selected(cx: &Context<'_>, np: &NetworkPolicy) -> Vec<usize> {
    cx.workloads_in(&np.namespace)
        .iter()
        .copied()
        .filter(|&i| {
            let w = &cx.cluster.workloads[i];
            !w.host_network && np.pod_selector.matches(&w.labels)
        })
        .collect()
}

/// The workloads a peer matches.
fn peer_workloads(cx: &Context<'_>, np: &NetworkPolicy, peer: &Peer) -> Vec<usize> {
    let workloads = &cx.cluster.workloads;
    match peer {
        Peer::Pods { namespaces, pods } => {
            // The namespace selector is decided once per namespace.
            let mut out: Vec<usize> = match namespaces {
                None => cx.workloads_in(&np.namespace).to_vec(),
                Some(sel) => cx
                    .namespaces_with_workloads()
                    .filter(|(ns, _)| sel.matches(&cx.namespace_labels(ns)))
                    .flat_map(|(_, members)| members.iter().copied())
                    .collect(),
            };
            out.retain(|&i| pods.matches(&workloads[i].labels));
            out.sort_unstable();
            out
        }
        Peer::IpBlock { cidr, except } => workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                w.ips
                    .iter()
                    .any(|ip| ambit_compiler::model::ip_block_contains(cidr, except, *ip))
            })
            .map(|(i, _)| i)
            .collect(),
    }
}

pub(crate) fn run(cx: &mut Context<'_>) {
    let inventory = !cx.cluster.workloads.is_empty();
    for np in &cx.cluster.network_policies {
        let key = key(np);
        if inventory {
            let at = [Seg::Key("spec"), Seg::Key("podSelector")];
            selector_labels(cx, &key, &at, false);
            // A label nothing carries says more than "selects nothing".
            if !cx.reported_inside(Code::UnknownLabel, &key, &at) {
                selects_nothing(cx, np, &key);
            }
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = np.rules(direction) else {
                continue;
            };
            for (i, rule) in rules.iter().enumerate() {
                let at = rule_path(direction, i);
                if inventory {
                    peers(cx, np, &key, direction, rule, &at);
                    named_ports(cx, np, &key, direction, rule, &at);
                }
                ip_blocks(cx, &key, direction, rule, &at);
            }
            split_rules(cx, &key, direction, rules);
            admits_everything(cx, np, &key, direction, rules);
        }
    }
}

/// NP001.
fn selects_nothing(cx: &mut Context<'_>, np: &NetworkPolicy, key: &ObjectKey) {
    if !selected(cx, np).is_empty() {
        return;
    }
    let any = !cx.workloads_in(&np.namespace).is_empty();
    let message = if any {
        format!(
            "podSelector matches no workload of namespace `{}`",
            np.namespace
        )
    } else {
        format!("namespace `{}` has no workload", np.namespace)
    };
    cx.report(
        Code::PolicySelectsNothing,
        key,
        &[Seg::Key("spec"), Seg::Key("podSelector")],
        message,
        "check the labels against the workloads' pod template labels; a policy that selects nothing has no effect".into(),
    );
}

/// NP002 per peer, and NP010 for its selectors.
fn peers(
    cx: &mut Context<'_>,
    np: &NetworkPolicy,
    key: &ObjectKey,
    direction: Direction,
    rule: &Rule,
    at: &[Seg],
) {
    for (j, peer) in rule.peers.iter().flatten().enumerate() {
        let peer_at = join(at, [Seg::Key(peers_key(direction)), Seg::Index(j)]);
        let Peer::Pods { namespaces, .. } = peer else {
            continue;
        };
        if namespaces.is_some() {
            selector_labels(
                cx,
                key,
                &join(&peer_at, [Seg::Key("namespaceSelector")]),
                true,
            );
        }
        selector_labels(cx, key, &join(&peer_at, [Seg::Key("podSelector")]), false);
        if cx.reported_inside(Code::UnknownLabel, key, &peer_at) {
            // The label nothing carries is the finding.
            continue;
        }
        if let Some(sel) = namespaces
            && !cx
                .cluster
                .namespaces
                .values()
                .any(|ns| sel.matches(&ns.labels))
        {
            cx.report(
                Code::PeerMatchesNothing,
                key,
                &join(&peer_at, [Seg::Key("namespaceSelector")]),
                "namespaceSelector matches no namespace".into(),
                "namespaces match by their labels; every namespace carries `kubernetes.io/metadata.name`".into(),
            );
            continue;
        }
        if peer_workloads(cx, np, peer).is_empty() {
            let where_ = match namespaces {
                None => format!("in namespace `{}`", np.namespace),
                Some(_) => "in the namespaces it selects".to_owned(),
            };
            cx.report(
                Code::PeerMatchesNothing,
                key,
                &peer_at,
                format!("this peer matches no workload {where_}"),
                "without namespaceSelector a podSelector looks only in the policy's own namespace"
                    .into(),
            );
        }
    }
}

/// NP010: the positive terms of the selector at `path` name labels that
/// nothing carries.
fn selector_labels(cx: &mut Context<'_>, key: &ObjectKey, path: &[Seg], namespaces: bool) {
    let universe = if namespaces {
        &cx.namespace_labels
    } else {
        &cx.pod_labels
    };
    if universe.is_empty() {
        return;
    }
    let what = if namespaces { "namespace" } else { "workload" };
    let mut found = Vec::new();
    for term in cx
        .sites
        .selector_terms(key, path)
        .into_iter()
        .filter(|t| t.positive)
    {
        let Some(values) = universe.get(&term.key) else {
            let hint = closest(&term.key, universe.keys())
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("no {what} has a label with this key"));
            found.push((
                term.path.clone(),
                format!("no {what} carries the label key `{}`", term.key),
                hint,
            ));
            continue;
        };
        for v in &term.values {
            if !values.contains(v) {
                let hint = closest(v, values.iter())
                    .map(|c| format!("did you mean `{}={c}`?", term.key))
                    .unwrap_or_else(|| {
                        let known: Vec<String> =
                            values.iter().take(5).map(|v| format!("`{v}`")).collect();
                        format!("`{}` has the values {}", term.key, known.join(", "))
                    });
                found.push((
                    term.path.clone(),
                    format!("no {what} carries the label `{}={v}`", term.key),
                    hint,
                ));
            }
        }
    }
    for (at, message, hint) in found {
        cx.report_key(Code::UnknownLabel, key, &at, message, hint);
    }
}

/// NP011: a named port no candidate pod declares with the protocol.
fn named_ports(
    cx: &mut Context<'_>,
    np: &NetworkPolicy,
    key: &ObjectKey,
    direction: Direction,
    rule: &Rule,
    at: &[Seg],
) {
    // Ingress: the selected pods are the destinations; egress: the peers.
    let candidates: Vec<usize> = match (direction, &rule.peers) {
        (Direction::Ingress, _) => selected(cx, np),
        (Direction::Egress, None) => (0..cx.cluster.workloads.len()).collect(),
        (Direction::Egress, Some(peers)) => {
            let mut all: Vec<usize> = peers
                .iter()
                .flat_map(|p| peer_workloads(cx, np, p))
                .collect();
            all.sort();
            all.dedup();
            all
        }
    };
    if candidates.is_empty() {
        return;
    }
    for (k, port) in rule.ports.iter().flatten().enumerate() {
        let PortSpec::Named { protocol, name } = port else {
            continue;
        };
        let declared = |want: Option<Protocol>| {
            candidates.iter().any(|&i| {
                cx.cluster.workloads[i].ports.iter().any(|p| {
                    p.name.as_deref() == Some(name.as_str()) && want.is_none_or(|w| w == p.protocol)
                })
            })
        };
        if declared(Some(*protocol)) {
            continue;
        }
        let whose = match direction {
            Direction::Ingress => "no pod this policy selects",
            Direction::Egress => "no pod this rule can reach",
        };
        let (message, help) = if declared(None) {
            let other: Vec<&str> = Protocol::ALL
                .iter()
                .filter(|p| *p != protocol && declared(Some(**p)))
                .map(|p| p.as_str())
                .collect();
            (
                format!(
                    "{whose} declares the port `{name}` for {protocol}; it is declared for {} only, so this entry never matches",
                    other.join(", ")
                ),
                format!(
                    "a named port binds its protocol: set `protocol: {}` or name the port declared for {protocol}",
                    other[0]
                ),
            )
        } else {
            (
                format!("{whose} declares a container port named `{name}`"),
                "named ports resolve against the destination pod's containerPorts[].name".into(),
            )
        };
        cx.report(
            Code::NamedPortNeverMatches,
            key,
            &join(at, [Seg::Key("ports"), Seg::Index(k), Seg::Key("port")]),
            message,
            help,
        );
    }
}

/// NP007: an ipBlock (less its excepts) reaches into the pod or service
/// network.
fn ip_blocks(cx: &mut Context<'_>, key: &ObjectKey, direction: Direction, rule: &Rule, at: &[Seg]) {
    for (j, peer) in rule.peers.iter().flatten().enumerate() {
        let Peer::IpBlock { cidr, except } = peer else {
            continue;
        };
        let networks = cx
            .pod_network
            .iter()
            .map(|n| {
                (
                    n,
                    if cx.inferred {
                        "the pod network (inferred from pod IPs)"
                    } else {
                        "the pod network"
                    },
                )
            })
            .chain(
                cx.options
                    .service_cidrs
                    .iter()
                    .map(|n| (n, "the service network")),
            );
        for (net, what) in networks {
            if !overlaps_beyond(cidr, except, net) {
                continue;
            }
            cx.report(
                Code::IpBlockCoversPods,
                key,
                &join(
                    at,
                    [
                        Seg::Key(peers_key(direction)),
                        Seg::Index(j),
                        Seg::Key("ipBlock"),
                        Seg::Key("cidr"),
                    ],
                ),
                format!("ipBlock `{cidr}` covers {what} `{net}`"),
                format!(
                    "ipBlocks are meant for addresses outside the cluster (whether they match pod IPs depends on the network plugin); select pods with podSelector/namespaceSelector, or add `{net}` to `except`"
                ),
            );
            break;
        }
    }
}

/// Some address of `net` is inside `cidr` and outside every except.
fn overlaps_beyond(cidr: &IpNet, except: &[IpNet], net: &IpNet) -> bool {
    let inner = if cidr.contains(net) {
        *net
    } else if net.contains(cidr) {
        *cidr
    } else {
        return false;
    };
    let range = |n: &IpNet| -> (u128, u128) {
        match n {
            IpNet::V4(n) => (
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            ),
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
        }
    };
    let (lo, hi) = range(&inner);
    let mut cuts: Vec<(u128, u128)> = except
        .iter()
        .filter(|e| e.contains(&inner) || inner.contains(*e))
        .map(|e| {
            let (a, b) = range(e);
            (a.max(lo), b.min(hi))
        })
        .collect();
    cuts.sort();
    let mut next = lo;
    for (a, b) in cuts {
        if a > next {
            return true;
        }
        if b >= next {
            if b == u128::MAX || b >= hi {
                return false;
            }
            next = b + 1;
        }
    }
    next <= hi
}

/// NP009: `- from: [...]` followed by `- ports: [...]` (or the reverse).
fn split_rules(cx: &mut Context<'_>, key: &ObjectKey, direction: Direction, rules: &[Rule]) {
    let only_peers = |r: &Rule| r.peers.is_some() && r.ports.is_none();
    let only_ports = |r: &Rule| r.peers.is_none() && r.ports.is_some();
    for i in 1..rules.len() {
        let (a, b) = (&rules[i - 1], &rules[i]);
        if !((only_peers(a) && only_ports(b)) || (only_ports(a) && only_peers(b))) {
            continue;
        }
        let peers = peers_key(direction);
        let side = match direction {
            Direction::Ingress => "from every source",
            Direction::Egress => "to every destination",
        };
        let message = if only_ports(b) {
            format!(
                "this rule admits its ports {side}, and the rule before it admits every port of its peers: likely one rule split in two"
            )
        } else {
            format!(
                "this rule admits every port of its peers, and the rule before it admits its ports {side}: likely one rule split in two"
            )
        };
        cx.report(
            Code::SplitRule,
            key,
            &rule_path(direction, i),
            message,
            format!(
                "to admit these ports from these peers only, write one list item with both keys: `- {peers}: [...]` and, aligned under it, `  ports: [...]`"
            ),
        );
    }
}

/// NP005: `ingress: [{}]` / `egress: [{}]` next to a default deny.
fn admits_everything(
    cx: &mut Context<'_>,
    np: &NetworkPolicy,
    key: &ObjectKey,
    direction: Direction,
    rules: &[Rule],
) {
    let Some(i) = rules
        .iter()
        .position(|r| r.peers.is_none() && r.ports.is_none())
    else {
        return;
    };
    let Some(deny) = cx.cluster.network_policies.iter().find(|other| {
        other.namespace == np.namespace
            && other.name != np.name
            && other.pod_selector.is_everything()
            && other.rules(direction).is_some_and(<[Rule]>::is_empty)
    }) else {
        return;
    };
    let what = match direction {
        Direction::Ingress => "every source",
        Direction::Egress => "every destination",
    };
    cx.report(
        Code::AdmitsEverything,
        key,
        &rule_path(direction, i),
        format!(
            "this rule admits {what} on every port, undoing the default deny `{}` for the pods this policy selects",
            deny.name
        ),
        format!(
            "list the peers and ports the pods need; an empty rule `{{}}` admits everything ({} included)",
            match direction {
                Direction::Ingress => "addresses outside the cluster",
                Direction::Egress => "the internet",
            }
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::overlaps_beyond;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ip_blocks_against_a_network() {
        let pods = net("10.244.0.0/16");
        let all = net("0.0.0.0/0");
        assert!(overlaps_beyond(&all, &[], &pods));
        assert!(!overlaps_beyond(&all, &[net("10.0.0.0/8")], &pods));
        // Excepts that cover the network only together.
        assert!(!overlaps_beyond(
            &all,
            &[net("10.244.0.0/17"), net("10.244.128.0/17")],
            &pods
        ));
        assert!(overlaps_beyond(&all, &[net("10.244.0.0/17")], &pods));
        // A block inside the network, partly excepted.
        assert!(overlaps_beyond(
            &net("10.244.1.0/24"),
            &[net("10.244.1.0/25")],
            &pods
        ));
        // Disjoint, and another family.
        assert!(!overlaps_beyond(&net("192.168.0.0/16"), &[], &pods));
        assert!(!overlaps_beyond(&net("::/0"), &[], &pods));
        assert!(overlaps_beyond(&net("::/0"), &[], &net("fd00::/64")));
        assert!(!overlaps_beyond(
            &net("::/0"),
            &[net("fd00::/8")],
            &net("fd00::/64")
        ));
    }
}
