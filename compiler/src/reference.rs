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

use crate::model::{Namespace, Workload, WorkloadKind};

/// The cluster as the reference evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    pub namespaces: &'a BTreeMap<String, Namespace>,
    pub workloads: &'a [Workload],
    /// Typed NetworkPolicies; `metadata.namespace` must be set.
    pub policies: &'a [NetworkPolicy],
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
        End::Pod(pod) => direction_allows(world, pod, "Egress", to, to, protocol, port),
        End::Ip(_) => true,
    };
    let ingress_ok = match to {
        End::Pod(pod) => direction_allows(world, pod, "Ingress", from, to, protocol, port),
        End::Ip(_) => true,
    };
    egress_ok && ingress_ok
}

/// "A pod is isolated for <direction> if there is any NetworkPolicy that both
/// selects the pod and has <direction> in its policyTypes"; then the union of
/// the rules of those policies decides.
fn direction_allows(
    world: World<'_>,
    pod: &Workload,
    direction: &str,
    remote: End<'_>,
    destination: End<'_>,
    protocol: &str,
    port: u16,
) -> bool {
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
            return true;
        }
    }
    !isolated
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
