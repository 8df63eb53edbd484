//! The reference evaluator: decides a flow straight from the typed resources,
//! written rule by rule from the Kubernetes documentation ("Network Policies",
//! and the NetworkPolicy API reference), with no IR, no classes and no
//! precomputation. It is slow and plain on purpose: the compiled tables are
//! held to it by a property test.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::admin::{AdminSource, EgressPeerSpec, NamespacedPodSpec, Node, PortsSpec, SubjectSpec};
use crate::model::{Direction, Namespace, Workload, WorkloadKind};

/// The cluster as the reference evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    pub namespaces: &'a BTreeMap<String, Namespace>,
    pub workloads: &'a [Workload],
    /// Typed NetworkPolicies; `metadata.namespace` must be set.
    pub policies: &'a [NetworkPolicy],
    /// Typed ClusterNetworkPolicies, AdminNetworkPolicies and
    /// BaselineAdminNetworkPolicies, in any order.
    pub admin: &'a [AdminSource],
    pub nodes: &'a [Node],
}

/// One end of a flow.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    Pod(&'a Workload),
    Ip(IpAddr),
}

/// Is `from → to` on `port`/`protocol` allowed?
pub fn allowed(world: World<'_>, from: End<'_>, to: End<'_>, protocol: &str, port: u16) -> bool {
    // "traffic to and from the node where a Pod is running is always allowed"
    // is out of scope; a pod talking to itself is always allowed.
    if let (End::Pod(a), End::Pod(b)) = (from, to)
        && std::ptr::eq(a, b)
        && a.kind == WorkloadKind::Pod
    {
        return true;
    }
    let egress_ok = match from {
        End::Pod(pod) => tiers_allow(world, pod, "Egress", to, to, protocol, port),
        End::Ip(_) => true,
    };
    let ingress_ok = match to {
        End::Pod(pod) => tiers_allow(world, pod, "Ingress", from, to, protocol, port),
        End::Ip(_) => true,
    };
    egress_ok && ingress_ok
}

/// One direction through the tiers (network-policy-api, "Policy tiers are
/// evaluated in the following order: Admin tier, NetworkPolicy tier,
/// Baseline tier"; then "the default kubernetes policy ... all pods can
/// communicate with each other").
fn tiers_allow(
    world: World<'_>,
    pod: &Workload,
    direction: &str,
    remote: End<'_>,
    destination: End<'_>,
    protocol: &str,
    port: u16,
) -> bool {
    let flow = Flow {
        world,
        direction,
        remote,
        destination,
        protocol,
        port,
    };
    match admin_tier(flow, pod, true) {
        Some(Decision::Accept) => return true,
        Some(Decision::Deny) => return false,
        Some(Decision::Pass) | None => {}
    }
    // "v1.NetworkPolicy always makes a final decision for selected pods.
    // Further evaluation only happens for Pods not selected by a
    // v1.NetworkPolicy."
    if let Some(decision) =
        network_policy_tier(world, pod, direction, remote, destination, protocol, port)
    {
        return decision;
    }
    // Baseline: Deny denies; Accept, Pass and no match end in default allow.
    admin_tier(flow, pod, false) != Some(Decision::Deny)
}

/// `None` when no NetworkPolicy isolates the pod in `direction`; otherwise
/// whether one of their rules admits the flow.
///
/// "A pod is isolated for <direction> if there is any NetworkPolicy that both
/// selects the pod and has <direction> in its policyTypes"; then the union of
/// the rules of those policies decides.
fn network_policy_tier(
    world: World<'_>,
    pod: &Workload,
    direction: &str,
    remote: End<'_>,
    destination: End<'_>,
    protocol: &str,
    port: u16,
) -> Option<bool> {
    let mut isolated = false;
    for np in world.policies {
        let ns = np.metadata.namespace.as_deref().unwrap_or("default");
        if ns != pod.namespace {
            continue;
        }
        let spec = np.spec.clone().unwrap_or_default();
        let selector = spec.pod_selector.clone().unwrap_or_default();
        if !selector_matches(&selector, &pod.labels) {
            continue;
        }
        if !policy_types(np).iter().any(|t| t == direction) {
            continue;
        }
        isolated = true;
        let admitted = if direction == "Ingress" {
            spec.ingress.iter().flatten().any(|r| {
                rule_admits(
                    world,
                    ns,
                    r.from.as_deref(),
                    r.ports.as_deref(),
                    remote,
                    destination,
                    protocol,
                    port,
                )
            })
        } else {
            spec.egress.iter().flatten().any(|r| {
                rule_admits(
                    world,
                    ns,
                    r.to.as_deref(),
                    r.ports.as_deref(),
                    remote,
                    destination,
                    protocol,
                    port,
                )
            })
        };
        if admitted {
            return Some(true);
        }
    }
    isolated.then_some(false)
}

/// "If no policyTypes are specified on a NetworkPolicy then by default Ingress
/// will always be set and Egress will be set if the NetworkPolicy has any
/// egress rules."
fn policy_types(np: &NetworkPolicy) -> Vec<String> {
    let spec = np.spec.clone().unwrap_or_default();
    match spec.policy_types {
        Some(t) if !t.is_empty() => t,
        _ => {
            let mut t = vec!["Ingress".to_owned()];
            if spec.egress.is_some_and(|e| !e.is_empty()) {
                t.push("Egress".to_owned());
            }
            t
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rule_admits(
    world: World<'_>,
    policy_ns: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    remote: End<'_>,
    destination: End<'_>,
    protocol: &str,
    port: u16,
) -> bool {
    // "If this field is empty or missing, this rule matches all sources."
    let peer_ok = match peers {
        None | Some([]) => true,
        Some(list) => list
            .iter()
            .any(|p| peer_matches(world, policy_ns, p, remote)),
    };
    // "If this field is empty or missing, this rule matches all ports."
    let port_ok = match ports {
        None | Some([]) => true,
        Some(list) => list
            .iter()
            .any(|p| port_matches(p, destination, protocol, port)),
    };
    peer_ok && port_ok
}

fn peer_matches(
    world: World<'_>,
    policy_ns: &str,
    peer: &NetworkPolicyPeer,
    remote: End<'_>,
) -> bool {
    if let Some(block) = &peer.ip_block {
        let cidr: ipnet::IpNet = match block.cidr.parse() {
            Ok(c) => c,
            Err(_) => return false,
        };
        let inside = |ip: &IpAddr| {
            cidr.contains(ip)
                && !block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| e.parse::<ipnet::IpNet>().ok())
                    .any(|e| e.contains(ip))
        };
        return match remote {
            End::Ip(ip) => inside(&ip),
            // ambit's choice: an ipBlock matches a pod by its pod IPs.
            End::Pod(pod) => pod.ips.iter().any(inside),
        };
    }
    let End::Pod(pod) = remote else {
        // Selectors select pods, never outside addresses.
        return false;
    };
    let ns_ok = match &peer.namespace_selector {
        // "podSelector alone selects pods in the same namespace as the policy"
        None => pod.namespace == policy_ns,
        Some(sel) => world
            .namespaces
            .get(&pod.namespace)
            .is_some_and(|ns| selector_matches(sel, &ns.labels)),
    };
    let pod_ok = match &peer.pod_selector {
        None => true,
        Some(sel) => selector_matches(sel, &pod.labels),
    };
    ns_ok && pod_ok
}

fn port_matches(p: &NetworkPolicyPort, destination: End<'_>, protocol: &str, port: u16) -> bool {
    if p.protocol.as_deref().unwrap_or("TCP") != protocol {
        return false;
    }
    match &p.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = p.end_port.unwrap_or(*n);
            (*n..=end).contains(&(port as i32))
        }
        // A named port is looked up in the destination pod's containers.
        Some(IntOrString::String(name)) => match destination {
            End::Ip(_) => false,
            End::Pod(pod) => pod.ports.iter().any(|cp| {
                cp.name.as_deref() == Some(name.as_str())
                    && cp.port == port
                    && cp.protocol.as_str() == protocol
            }),
        },
    }
}

fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

// ---------------------------------------------------------------------------
// Admin and Baseline tiers, read from the typed ClusterNetworkPolicy (v1alpha2),
// AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1) objects.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Accept,
    Deny,
    Pass,
}

#[derive(Clone, Copy)]
struct Flow<'a> {
    world: World<'a>,
    direction: &'a str,
    remote: End<'a>,
    destination: End<'a>,
    protocol: &'a str,
    port: u16,
}

/// The policies of a tier in the order they are checked: "lower priority
/// values have higher precedence"; equal priorities by name, then kind
/// (ambit's choice); the BaselineAdminNetworkPolicy after every Baseline
/// ClusterNetworkPolicy.
fn tier_policies(world: World<'_>, admin: bool) -> Vec<&AdminSource> {
    let mut list: Vec<(i64, String, &str, &AdminSource)> = world
        .admin
        .iter()
        .filter_map(|s| match s {
            AdminSource::Cluster(c) => ((c.spec.tier == "Admin") == admin).then(|| {
                (
                    c.spec.priority,
                    c.metadata.name.clone().unwrap_or_default(),
                    "ClusterNetworkPolicy",
                    s,
                )
            }),
            AdminSource::Admin(a) => admin.then(|| {
                (
                    a.spec.priority,
                    a.metadata.name.clone().unwrap_or_default(),
                    "AdminNetworkPolicy",
                    s,
                )
            }),
            AdminSource::Baseline(b) => (!admin).then(|| {
                (
                    i64::MAX,
                    b.metadata.name.clone().unwrap_or_default(),
                    "BaselineAdminNetworkPolicy",
                    s,
                )
            }),
        })
        .collect();
    list.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    list.into_iter().map(|(_, _, _, s)| s).collect()
}

/// The first matching rule of the tier's policies that select `pod`.
fn admin_tier(flow: Flow<'_>, pod: &Workload, admin: bool) -> Option<Decision> {
    for source in tier_policies(flow.world, admin) {
        if !subject_selects(flow.world, source.subject(), pod) {
            continue;
        }
        let direction = if flow.direction == "Ingress" {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        for rule in source.rules(direction) {
            let peers = rule.peers();
            let decision = match rule.action() {
                "Accept" | "Allow" => Decision::Accept,
                "Deny" => Decision::Deny,
                _ => Decision::Pass,
            };
            // "If an implementation sees no fields are set ... it should fail
            // closed. For Accept rules, fail closed means: treat the rule as
            // matching no traffic. For Deny and Pass rules ... a Deny all
            // rule."
            let unset = peers.iter().any(|p| {
                p.namespaces.is_none()
                    && p.pods.is_none()
                    && p.nodes.is_none()
                    && p.networks.is_none()
                    && p.domain_names.is_none()
            });
            if unset {
                if decision == Decision::Accept {
                    continue;
                }
                return Some(Decision::Deny);
            }
            let peer_ok = peers.iter().any(|p| admin_peer_matches(flow, p));
            if peer_ok && admin_ports_match(flow, rule.ports()) {
                return Some(decision);
            }
        }
    }
    None
}

/// "Note that host-networked pods are not included in subject selection."
fn subject_selects(world: World<'_>, subject: &SubjectSpec, pod: &Workload) -> bool {
    if pod.host_network {
        return false;
    }
    if let Some(ns) = &subject.namespaces {
        return namespace_matches(world, ns, &pod.namespace);
    }
    subject
        .pods
        .as_ref()
        .is_some_and(|p| namespaced_pod_matches(world, p, pod))
}

fn namespace_matches(world: World<'_>, sel: &LabelSelector, namespace: &str) -> bool {
    world
        .namespaces
        .get(namespace)
        .is_some_and(|ns| selector_matches(sel, &ns.labels))
}

fn namespaced_pod_matches(world: World<'_>, p: &NamespacedPodSpec, pod: &Workload) -> bool {
    let ns_ok = match &p.namespace_selector {
        None => true,
        Some(sel) => namespace_matches(world, sel, &pod.namespace),
    };
    ns_ok && selector_matches(&p.pod_selector, &pod.labels)
}

fn admin_peer_matches(flow: Flow<'_>, peer: &EgressPeerSpec) -> bool {
    let ips: Vec<IpAddr> = match flow.remote {
        End::Pod(pod) => pod.ips.clone(),
        End::Ip(ip) => vec![ip],
    };
    // "Note that host-networked pods are not included in this type of peer."
    let pod = match flow.remote {
        End::Pod(pod) if !pod.host_network => Some(pod),
        _ => None,
    };
    if let Some(ns) = &peer.namespaces {
        return pod.is_some_and(|p| namespace_matches(flow.world, ns, &p.namespace));
    }
    if let Some(pods) = &peer.pods {
        return pod.is_some_and(|p| namespaced_pod_matches(flow.world, pods, p));
    }
    if let Some(networks) = &peer.networks {
        // "cluster-internal traffic will be checked against the rule as well"
        return networks
            .iter()
            .filter_map(|n| n.parse::<ipnet::IpNet>().ok())
            .any(|n| ips.iter().any(|ip| n.contains(ip)));
    }
    if let Some(nodes) = &peer.nodes {
        // "It selects the nodeIPs ... present in the node.Status.Addresses"
        return flow
            .world
            .nodes
            .iter()
            .filter(|n| selector_matches(nodes, &n.labels))
            .any(|n| n.addresses.iter().any(|a| ips.contains(a)));
    }
    // domainNames: no address is known to belong to a name here.
    false
}

fn admin_ports_match(flow: Flow<'_>, ports: PortsSpec<'_>) -> bool {
    let named = |name: &str| match flow.destination {
        // ambit's choice: the container port's protocol binds too.
        End::Pod(pod) => pod.ports.iter().any(|cp| {
            cp.name.as_deref() == Some(name)
                && cp.port == flow.port
                && cp.protocol.as_str() == flow.protocol
        }),
        End::Ip(_) => false,
    };
    let in_range = |start: i64, end: i64| (start..=end).contains(&(flow.port as i64));
    match ports {
        PortsSpec::V2(None) | PortsSpec::V1(None) => true,
        PortsSpec::V2(Some(list)) => list.iter().any(|e| {
            let transport = [("TCP", &e.tcp), ("UDP", &e.udp), ("SCTP", &e.sctp)]
                .into_iter()
                .find_map(|(proto, t)| t.as_ref().map(|t| (proto, t)));
            match (transport, &e.destination_named_port) {
                (Some((proto, t)), _) => {
                    proto == flow.protocol
                        && t.destination_port
                            .as_ref()
                            .is_some_and(|p| match (p.number, &p.range) {
                                (Some(n), _) => in_range(n, n),
                                (None, Some(r)) => in_range(r.start, r.end),
                                (None, None) => false,
                            })
                }
                (None, Some(name)) => named(name),
                (None, None) => false,
            }
        }),
        PortsSpec::V1(Some(list)) => list.iter().any(|e| {
            if let Some(n) = &e.port_number {
                n.protocol.as_deref().unwrap_or("TCP") == flow.protocol && in_range(n.port, n.port)
            } else if let Some(r) = &e.port_range {
                r.protocol.as_deref().unwrap_or("TCP") == flow.protocol && in_range(r.start, r.end)
            } else if let Some(name) = &e.named_port {
                named(name)
            } else {
                false
            }
        }),
    }
}
