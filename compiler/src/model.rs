//! The cluster model: the inventory (namespaces, workloads) and the policy IR.
//!
//! This is what loading produces and compiling consumes. It is plain data:
//! selectors are predicates over labels, ports are still symbolic (named ports
//! are resolved only against a concrete destination), and CIDRs are parsed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::labels::{Labels, Selector};
use crate::source::Location;

/// The label every namespace carries (set by the API server since 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A transport protocol a NetworkPolicy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// Parse the API spelling (`TCP`, `UDP`, `SCTP`; case-sensitive as the API is).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port a container declares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContainerPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// Declared labels plus `kubernetes.io/metadata.name`.
    pub labels: Labels,
    /// False when the namespace is only named by other objects.
    pub declared: bool,
}

impl Namespace {
    pub fn implied(name: &str) -> Self {
        let mut labels = Labels::new();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        Self {
            name: name.to_owned(),
            labels,
            declared: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "Pod" => Self::Pod,
            "Deployment" => Self::Deployment,
            "StatefulSet" => Self::StatefulSet,
            "DaemonSet" => Self::DaemonSet,
            "ReplicaSet" => Self::ReplicaSet,
            "Job" => Self::Job,
            "CronJob" => Self::CronJob,
            _ => return None,
        })
    }
}

/// A workload: a Pod, or the pod template of a controller.
#[derive(Debug, Clone)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    pub labels: Labels,
    pub service_account: String,
    pub ports: Vec<ContainerPort>,
    /// Known pod IPs (`status.podIPs` of the Pod, or of the controller's pods
    /// present in the input).
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
    /// The pod's `sidecar.istio.io/inject` annotation (the label form is in
    /// `labels`).
    pub inject_annotation: Option<String>,
    pub location: Option<Location>,
}

impl Workload {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The policy IR of a NetworkPolicy (`networking.k8s.io/v1`), normalized:
/// defaults applied, directions outside `policyTypes` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pod_selector: Selector,
    /// `None` when `Ingress` is not in `policyTypes`: the policy does not
    /// isolate for ingress and its ingress rules (if any) are ignored.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl NetworkPolicy {
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `None`: every peer, inside or outside the cluster (`from`/`to` omitted
    /// or empty).
    pub peers: Option<Vec<Peer>>,
    /// `None`: every port of every protocol (`ports` omitted or empty).
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// Pods matching `pods` in the namespaces matching `namespaces`; `None`
    /// means the policy's own namespace.
    Pods {
        namespaces: Option<Selector>,
        pods: Selector,
    },
    IpBlock {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

/// What a port entry of a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortSpec {
    /// Every port of the protocol (`port` omitted).
    AnyPort(Protocol),
    /// `port` to `endPort` inclusive (`start == end` for a single port).
    Range {
        protocol: Protocol,
        start: u16,
        end: u16,
    },
    /// A named port, resolved against the destination pod's container ports.
    Named { protocol: Protocol, name: String },
    /// A named port of an admin policy: the container port's name decides,
    /// and the flow's protocol must be the one the container port declares.
    NamedAnyProtocol { name: String },
}

/// An IP block test, shared by the reference evaluator and the compiler.
pub fn ip_block_contains(cidr: &IpNet, except: &[IpNet], ip: IpAddr) -> bool {
    cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

/// A Service: only what authorization needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// `spec.selector`; `None` for a Service without a selector.
    pub selector: Option<Labels>,
}

/// Everything loaded from the input.
#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, Namespace>,
    /// Sorted by namespace, then name.
    pub workloads: Vec<Workload>,
    /// Sorted by namespace, then name.
    pub network_policies: Vec<NetworkPolicy>,
    /// The typed NetworkPolicies as read, in the same order as
    /// `network_policies` (the reference evaluator reads these).
    pub network_policy_sources: Vec<k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// Istio AuthorizationPolicies, sorted by namespace, then name.
    pub authorization_policies: Vec<crate::authz::AuthzPolicy>,
    /// The typed AuthorizationPolicies as read, in the same order (the
    /// reference evaluator reads these).
    pub authorization_policy_sources: Vec<crate::istio::AuthorizationPolicy>,
    /// Istio PeerAuthentications, sorted by namespace, then name.
    pub peer_authentications: Vec<crate::authz::PeerAuthn>,
    /// Mesh settings from the `istio` ConfigMap of `istio-system`.
    pub mesh: crate::authz::MeshSettings,
    /// Services (for policies attached to them with `targetRefs`).
    pub services: Vec<Service>,
    /// ClusterNetworkPolicies, AdminNetworkPolicies and the
    /// BaselineAdminNetworkPolicy, sorted by tier, then in evaluation order
    /// (priority, name, kind).
    pub admin_policies: Vec<crate::admin::AdminPolicy>,
    /// The typed admin policies as read, in the same order (the reference
    /// evaluator reads these).
    pub admin_policy_sources: Vec<crate::admin::AdminSource>,
    /// Nodes (for `nodes` peers), sorted by name.
    pub nodes: Vec<crate::admin::Node>,
    /// Objects of kinds ambit does not read, counted by `apiVersion/kind`.
    pub skipped: BTreeMap<String, usize>,
    /// Objects read, counted by kind.
    pub read: BTreeMap<String, usize>,
}

impl Cluster {
    pub fn workload(&self, namespace: &str, name: &str) -> Option<&Workload> {
        self.workloads
            .binary_search_by(|w| (w.namespace.as_str(), w.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| &self.workloads[i])
    }
}
