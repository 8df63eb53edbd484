//! Compiling the cluster model into decision tables.
//!
//! Workloads are grouped into equivalence classes: same namespace, pod labels,
//! service account, container ports, the same set of `ipBlock`s matching
//! their pod IPs, the same mesh-relevant settings (hostNetwork, injection
//! annotation) and the same AuthorizationPolicy CIDRs holding their first IP. Every policy decision depends on nothing else, so workloads
//! of a class are decided identically and the tables grow with the number of
//! distinct policy-relevant shapes, not with the number of pods.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use ipnet::IpNet;

use crate::admin::{Action, AdminPeer, AdminPolicy, AdminPort, Node, PodSet, Tier};
use crate::authz::{
    self, AuthzClass, AuthzPolicy, AuthzTables, MeshMode, MeshSettings, Mtls, MtlsMode, Pattern,
};
use crate::labels::Labels;
use crate::model::{Cluster, ContainerPort, Direction, Peer, PortSpec, Rule};
use crate::table::{
    Class, ClassId, FORMAT, IpBlock, Isolation, NamespaceEntry, Peers, PolicyEntry, TableRule,
    Tables, WorkloadEntry,
};

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ClassKey<'a> {
    namespace: &'a str,
    labels: &'a Labels,
    service_account: &'a str,
    ports: &'a [ContainerPort],
    ip_blocks: Vec<usize>,
    host_network: bool,
    inject_annotation: Option<&'a str>,
    /// Which CIDRs of AuthorizationPolicies hold the workload's first IP.
    authz_cidrs: Vec<usize>,
}

/// Options of compiling: mesh settings given on the command line win over the
/// `istio` ConfigMap.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    pub mesh: MeshSettings,
}

pub fn compile(cluster: &Cluster) -> Tables {
    compile_with(cluster, &CompileOptions::default())
}

pub fn compile_with(cluster: &Cluster, options: &CompileOptions) -> Tables {
    let mesh = options.mesh.over(&cluster.mesh);
    let mut authz_cidrs: Vec<IpNet> = cluster
        .authorization_policies
        .iter()
        .flat_map(|p| &p.rules)
        .flat_map(|r| {
            r.from
                .iter()
                .flatten()
                .chain(r.to.iter().flatten())
                .flat_map(|e| &e.fields)
                .chain(&r.when)
        })
        .flat_map(|f| f.values.iter().chain(&f.not_values))
        .filter_map(|p| match p {
            Pattern::Cidr(net) => Some(*net),
            _ => None,
        })
        .collect();
    authz_cidrs.sort();
    authz_cidrs.dedup();

    // Every distinct ipBlock, to group workloads by which blocks hold their IPs.
    let mut blocks: Vec<IpBlock> = cluster
        .network_policies
        .iter()
        .flat_map(|p| p.ingress.iter().flatten().chain(p.egress.iter().flatten()))
        .flat_map(|r| r.peers.iter().flatten())
        .filter_map(|peer| match peer {
            Peer::IpBlock { cidr, except } => Some(IpBlock {
                cidr: *cidr,
                except: except.clone(),
            }),
            Peer::Pods { .. } => None,
        })
        .collect();
    // Admin policies' networks and the addresses of nodes they select.
    for rule in cluster
        .admin_policies
        .iter()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
    {
        for peer in &rule.peers {
            blocks.extend(admin_peer_blocks(peer, &cluster.nodes));
        }
    }
    blocks.sort();
    blocks.dedup();

    let keys: Vec<ClassKey> = cluster
        .workloads
        .iter()
        .map(|w| ClassKey {
            namespace: &w.namespace,
            labels: &w.labels,
            service_account: &w.service_account,
            ports: &w.ports,
            ip_blocks: blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| w.ips.iter().any(|ip| b.contains(*ip)))
                .map(|(i, _)| i)
                .collect(),
            host_network: w.host_network,
            inject_annotation: w.inject_annotation.as_deref(),
            authz_cidrs: w
                .ips
                .first()
                .map(|ip| {
                    authz_cidrs
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.contains(ip))
                        .map(|(i, _)| i)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut class_ids: BTreeMap<&ClassKey, ClassId> = keys.iter().map(|k| (k, 0)).collect();
    for (i, id) in class_ids.values_mut().enumerate() {
        *id = i as ClassId;
    }
    let classes: Vec<Class> = class_ids
        .keys()
        .map(|k| Class {
            namespace: k.namespace.to_owned(),
            labels: k.labels.clone(),
            service_account: k.service_account.to_owned(),
            ports: k.ports.to_vec(),
        })
        .collect();
    let class_blocks: Vec<&[usize]> = class_ids.keys().map(|k| k.ip_blocks.as_slice()).collect();
    let workloads: Vec<WorkloadEntry> = cluster
        .workloads
        .iter()
        .zip(&keys)
        .map(|(w, k)| WorkloadEntry {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            kind: w.kind,
            class: class_ids[k],
            ips: w.ips.clone(),
        })
        .collect();

    let ns_labels = |ns: &str| cluster.namespaces.get(ns).map(|n| &n.labels);
    // A policy's pods and peers are looked up namespace by namespace: a
    // namespace selector is decided once per namespace, not per class.
    let mut by_namespace: BTreeMap<&str, Vec<ClassId>> = BTreeMap::new();
    for (i, c) in classes.iter().enumerate() {
        by_namespace
            .entry(c.namespace.as_str())
            .or_default()
            .push(i as ClassId);
    }
    let mut policies = Vec::new();
    let mut rules = Vec::new();
    let mut ingress = vec![Isolation::default(); classes.len()];
    let mut egress = vec![Isolation::default(); classes.len()];
    for np in &cluster.network_policies {
        let pid = policies.len() as u32;
        policies.push(PolicyEntry {
            kind: "NetworkPolicy".into(),
            namespace: np.namespace.clone(),
            name: np.name.clone(),
            tier: None,
            priority: None,
        });
        let selected: Vec<ClassId> = by_namespace
            .get(np.namespace.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&c| np.pod_selector.matches(&classes[c as usize].labels))
            .collect();
        for direction in [Direction::Ingress, Direction::Egress] {
            let Some(dir_rules) = np.rules(direction) else {
                continue;
            };
            let table = match direction {
                Direction::Ingress => &mut ingress,
                Direction::Egress => &mut egress,
            };
            let first_rule = rules.len() as u32;
            for (index, rule) in dir_rules.iter().enumerate() {
                rules.push(TableRule {
                    policy: pid,
                    direction,
                    index: index as u32,
                    peers: peers(
                        rule,
                        &np.namespace,
                        Classes {
                            classes: &classes,
                            by_namespace: &by_namespace,
                            blocks: &class_blocks,
                        },
                        &blocks,
                        &ns_labels,
                    ),
                    ports: rule.ports.clone(),
                    action: None,
                    name: None,
                    fail_closed: false,
                    domain_names: false,
                });
            }
            for &c in &selected {
                let iso = &mut table[c as usize];
                iso.policies.push(pid);
                iso.rules.extend(first_rule..rules.len() as u32);
            }
        }
    }

    // Admin and Baseline tiers, in evaluation order.
    let host_network: Vec<bool> = class_ids.keys().map(|k| k.host_network).collect();
    let mut order: Vec<&AdminPolicy> = cluster.admin_policies.iter().collect();
    order.sort_by(|a, b| (a.tier, a.order_key()).cmp(&(b.tier, b.order_key())));
    // The classes of a pod set, in order.
    let pods_in = |set: &PodSet| -> Vec<usize> {
        let mut out: Vec<usize> = by_namespace
            .iter()
            .filter(|(ns, _)| ns_labels(ns).is_some_and(|l| set.namespaces.matches(l)))
            .flat_map(|(_, members)| members.iter().map(|&c| c as usize))
            .filter(|&c| !host_network[c] && set.pods.matches(&classes[c].labels))
            .collect();
        out.sort_unstable();
        out
    };
    for ap in order {
        let pid = policies.len() as u32;
        policies.push(PolicyEntry {
            kind: ap.kind.as_str().to_owned(),
            namespace: String::new(),
            name: ap.name.clone(),
            tier: Some(ap.tier),
            priority: ap.priority,
        });
        let subjects = pods_in(&ap.subject);
        for direction in [Direction::Ingress, Direction::Egress] {
            let first_rule = rules.len() as u32;
            for (index, rule) in ap.rules(direction).iter().enumerate() {
                let mut peers = Peers::default();
                if rule.fails_closed() {
                    // An Accept matches nothing; a Deny or Pass denies all.
                    peers.all = rule.action != Action::Accept;
                } else {
                    for peer in &rule.peers {
                        if let AdminPeer::Pods(set) = peer {
                            for c in pods_in(set) {
                                peers.classes.insert(c as ClassId);
                            }
                        }
                        for block in admin_peer_blocks(peer, &cluster.nodes) {
                            add_block(&mut peers, block, &blocks, &class_blocks);
                        }
                    }
                }
                let ports = if rule.fails_closed() {
                    None
                } else {
                    rule.ports.as_ref().map(|list| {
                        list.iter()
                            .map(|p| match p {
                                AdminPort::Range {
                                    protocol,
                                    start,
                                    end,
                                } => PortSpec::Range {
                                    protocol: *protocol,
                                    start: *start,
                                    end: *end,
                                },
                                AdminPort::Named(name) => {
                                    PortSpec::NamedAnyProtocol { name: name.clone() }
                                }
                            })
                            .collect()
                    })
                };
                rules.push(TableRule {
                    policy: pid,
                    direction,
                    index: index as u32,
                    peers,
                    ports,
                    action: Some(rule.effective_action()),
                    name: rule.name.clone(),
                    fail_closed: rule.fails_closed(),
                    domain_names: rule.has_domain_names(),
                });
            }
            let table = match direction {
                Direction::Ingress => &mut ingress,
                Direction::Egress => &mut egress,
            };
            for &c in &subjects {
                let iso = &mut table[c];
                let ids = first_rule..rules.len() as u32;
                match ap.tier {
                    Tier::Admin => iso.admin.extend(ids),
                    Tier::Baseline => iso.baseline.extend(ids),
                }
            }
        }
    }

    let authz = authz_tables(cluster, &mesh, &class_ids);
    Tables {
        format: FORMAT.to_owned(),
        input_hash: input_hash(cluster, &mesh),
        namespaces: cluster
            .namespaces
            .values()
            .map(|n| NamespaceEntry {
                name: n.name.clone(),
                labels: n.labels.clone(),
            })
            .collect(),
        classes,
        workloads,
        policies,
        rules,
        ingress,
        egress,
        authz,
    }
}

/// The authorization layer: per class, mesh membership, identity, the
/// policies that apply and the effective mTLS mode.
fn authz_tables(
    cluster: &Cluster,
    mesh: &MeshSettings,
    class_ids: &BTreeMap<&ClassKey, ClassId>,
) -> AuthzTables {
    let root = mesh.root_namespace().to_owned();
    let trust = mesh.trust_domains();
    let ns_labels = |ns: &str| cluster.namespaces.get(ns).map(|n| &n.labels);
    let subset = |want: &Labels, have: &Labels| want.iter().all(|(k, v)| have.get(k) == Some(v));
    let peer_authentications: Vec<(String, String)> = cluster
        .peer_authentications
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    // Among policies of one level the oldest wins (then the name).
    let oldest = |cands: Vec<usize>| {
        cands.into_iter().min_by(|&a, &b| {
            let (pa, pb) = (
                &cluster.peer_authentications[a],
                &cluster.peer_authentications[b],
            );
            (pa.created.is_none(), &pa.created, &pa.name).cmp(&(
                pb.created.is_none(),
                &pb.created,
                &pb.name,
            ))
        })
    };
    let classes = class_ids
        .keys()
        .map(|k| {
            let mode = authz::mesh_mode(
                k.labels,
                k.inject_annotation,
                ns_labels(k.namespace),
                k.host_network,
            );
            let in_ns_scope = |p: &AuthzPolicy| {
                let ns_ok = p.namespace == k.namespace || p.namespace == root;
                ns_ok
                    && match &p.selector {
                        None => true,
                        Some(sel) => subset(sel, k.labels),
                    }
            };
            let waypoint_ns = k
                .labels
                .get("istio.io/use-waypoint-namespace")
                .map(String::as_str)
                .unwrap_or(k.namespace);
            let waypoint = k
                .labels
                .get("istio.io/use-waypoint")
                .or_else(|| ns_labels(k.namespace).and_then(|l| l.get("istio.io/use-waypoint")))
                .filter(|w| w.as_str() != "none");
            let targets = |p: &AuthzPolicy| {
                p.target_refs.iter().any(|t| match t.kind.as_str() {
                    "Service" => {
                        p.namespace == k.namespace
                            && cluster.services.iter().any(|s| {
                                s.namespace == p.namespace
                                    && s.name == t.name
                                    && s.selector
                                        .as_ref()
                                        .is_some_and(|sel| !sel.is_empty() && subset(sel, k.labels))
                            })
                    }
                    "Gateway" => {
                        waypoint.is_some_and(|w| *w == t.name) && waypoint_ns == p.namespace
                    }
                    "GatewayClass" => {
                        p.namespace == root && t.name == "istio-waypoint" && waypoint.is_some()
                    }
                    _ => false,
                })
            };
            let mut policies = Vec::new();
            let mut waypoint_policies = Vec::new();
            for (i, p) in cluster.authorization_policies.iter().enumerate() {
                if p.target_refs.is_empty() {
                    if in_ns_scope(p) {
                        policies.push(i as u32);
                    }
                } else if targets(p) {
                    waypoint_policies.push(i as u32);
                }
            }
            // PeerAuthentication: workload > namespace > mesh; UNSET inherits.
            let pas = &cluster.peer_authentications;
            let level = |ns: &str, workload: bool| {
                oldest(
                    pas.iter()
                        .enumerate()
                        .filter(|(_, p)| {
                            p.namespace == ns
                                && match (&p.selector, workload) {
                                    (None, false) => true,
                                    (Some(sel), true) => subset(sel, k.labels),
                                    _ => false,
                                }
                        })
                        .map(|(i, _)| i)
                        .collect(),
                )
            };
            let mut mtls = Mtls::default();
            let workload_pa = if k.namespace == root {
                None
            } else {
                level(k.namespace, true)
            };
            let chain = [
                level(&root, false),
                if k.namespace == root {
                    None
                } else {
                    level(k.namespace, false)
                },
                workload_pa,
            ];
            for i in chain.into_iter().flatten() {
                if pas[i].mode != MtlsMode::Unset {
                    mtls.mode = pas[i].mode;
                    mtls.from = Some(i as u32);
                }
            }
            if let Some(i) = workload_pa {
                for (&port, &m) in &pas[i].port_level {
                    if m != MtlsMode::Unset {
                        mtls.ports.push((port, m, i as u32));
                    }
                }
            }
            AuthzClass {
                mesh: mode,
                principal: (mode != MeshMode::None).then(|| {
                    format!(
                        "{}/ns/{}/sa/{}",
                        trust.trust_domain, k.namespace, k.service_account
                    )
                }),
                policies,
                waypoint_policies,
                mtls,
            }
        })
        .collect();
    AuthzTables {
        trust,
        root_namespace: root,
        policies: cluster.authorization_policies.clone(),
        peer_authentications,
        classes,
    }
}

/// The classes, by index and by namespace, and each one's address blocks.
#[derive(Clone, Copy)]
struct Classes<'c> {
    classes: &'c [Class],
    by_namespace: &'c BTreeMap<&'c str, Vec<ClassId>>,
    blocks: &'c [&'c [usize]],
}

fn peers<'a>(
    rule: &Rule,
    policy_ns: &str,
    classes: Classes<'_>,
    blocks: &[IpBlock],
    ns_labels: &dyn Fn(&str) -> Option<&'a Labels>,
) -> Peers {
    let Some(list) = &rule.peers else {
        return Peers {
            all: true,
            ..Peers::default()
        };
    };
    let mut out = Peers::default();
    for peer in list {
        match peer {
            Peer::Pods { namespaces, pods } => {
                for (ns, members) in classes.by_namespace {
                    let ns_ok = match namespaces {
                        None => *ns == policy_ns,
                        Some(sel) => ns_labels(ns).is_some_and(|l| sel.matches(l)),
                    };
                    if !ns_ok {
                        continue;
                    }
                    for &c in members {
                        if pods.matches(&classes.classes[c as usize].labels) {
                            out.classes.insert(c);
                        }
                    }
                }
            }
            Peer::IpBlock { cidr, except } => {
                let block = IpBlock {
                    cidr: *cidr,
                    except: except.clone(),
                };
                add_block(&mut out, block, blocks, classes.blocks);
            }
        }
    }
    out
}

/// Admit an address block: the classes whose pod IPs it holds, and addresses
/// outside the inventory.
fn add_block(out: &mut Peers, block: IpBlock, blocks: &[IpBlock], class_blocks: &[&[usize]]) {
    let bi = blocks
        .binary_search(&block)
        .expect("every block was collected");
    for (i, cb) in class_blocks.iter().enumerate() {
        if cb.contains(&bi) {
            out.ip_classes.insert(i as ClassId);
        }
    }
    if !out.ip_blocks.contains(&block) {
        out.ip_blocks.push(block);
    }
}

/// The address blocks an admin peer matches: its networks, or the addresses
/// of the nodes it selects (one host route each).
fn admin_peer_blocks(peer: &AdminPeer, nodes: &[Node]) -> Vec<IpBlock> {
    match peer {
        AdminPeer::Networks(nets) => nets
            .iter()
            .map(|n| IpBlock {
                cidr: *n,
                except: Vec::new(),
            })
            .collect(),
        AdminPeer::Nodes(sel) => nodes
            .iter()
            .filter(|n| sel.matches(&n.labels))
            .flat_map(|n| &n.addresses)
            .map(|a| IpBlock {
                cidr: IpNet::from(*a),
                except: Vec::new(),
            })
            .collect(),
        AdminPeer::Pods(_) | AdminPeer::DomainNames(_) | AdminPeer::Unset => Vec::new(),
    }
}

/// sha256 of the canonical input semantics: the JSON of [`Canonical`],
/// written straight into the hasher.
fn input_hash(cluster: &Cluster, mesh: &MeshSettings) -> String {
    let mut hasher = HashWriter(Sha256::new());
    serde_json::to_writer(&mut hasher, &Canonical::of(cluster, mesh))
        .expect("serializing into a hasher does not fail");
    let hex: String = hasher
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// What the input hash covers, in the order hashed (the field order is the
/// hash's definition: keep it).
#[derive(serde::Serialize)]
struct Canonical<'a> {
    namespaces: Vec<(&'a String, &'a Labels)>,
    workloads: Vec<CanonicalWorkload<'a>>,
    network_policies: &'a [crate::model::NetworkPolicy],
    authorization_policies: &'a [crate::authz::AuthzPolicy],
    peer_authentications: &'a [crate::authz::PeerAuthn],
    services: &'a [crate::model::Service],
    admin_policies: &'a [AdminPolicy],
    nodes: &'a [Node],
    mesh: CanonicalMesh<'a>,
}

#[derive(serde::Serialize)]
struct CanonicalWorkload<'a> {
    namespace: &'a str,
    name: &'a str,
    kind: &'a crate::model::WorkloadKind,
    labels: &'a Labels,
    service_account: &'a str,
    ports: &'a [ContainerPort],
    ips: &'a [std::net::IpAddr],
}

#[derive(serde::Serialize)]
struct CanonicalMesh<'a> {
    root_namespace: &'a str,
    trust: crate::authz::TrustDomains,
}

impl<'a> Canonical<'a> {
    fn of(cluster: &'a Cluster, mesh: &'a MeshSettings) -> Self {
        Canonical {
            namespaces: cluster
                .namespaces
                .values()
                .map(|n| (&n.name, &n.labels))
                .collect(),
            workloads: cluster
                .workloads
                .iter()
                .map(|w| CanonicalWorkload {
                    namespace: &w.namespace,
                    name: &w.name,
                    kind: &w.kind,
                    labels: &w.labels,
                    service_account: &w.service_account,
                    ports: &w.ports,
                    ips: &w.ips,
                })
                .collect(),
            network_policies: &cluster.network_policies,
            authorization_policies: &cluster.authorization_policies,
            peer_authentications: &cluster.peer_authentications,
            services: &cluster.services,
            admin_policies: &cluster.admin_policies,
            nodes: &cluster.nodes,
            mesh: CanonicalMesh {
                root_namespace: mesh.root_namespace(),
                trust: mesh.trust_domains(),
            },
        }
    }
}

/// Bytes written go into the hash.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash is the sha256 of the same JSON text as an untyped JSON
    /// document with the same fields would print (how it was first defined:
    /// table hashes already recorded stay valid).
    #[test]
    fn the_input_hash_is_of_the_canonical_json_text() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        for dir in ["demo", "good"] {
            let (cluster, _, _) = crate::load::load_paths(&[root.join(dir)], &Default::default());
            assert!(!cluster.workloads.is_empty(), "{dir}");
            let mesh = &cluster.mesh;
            let value = serde_json::json!({
                "namespaces": cluster.namespaces.values().map(|n| (&n.name, &n.labels)).collect::<Vec<_>>(),
                "workloads": cluster.workloads.iter().map(|w| serde_json::json!({
                    "namespace": w.namespace, "name": w.name, "kind": w.kind, "labels": w.labels,
                    "service_account": w.service_account, "ports": w.ports, "ips": w.ips,
                })).collect::<Vec<_>>(),
                "network_policies": cluster.network_policies,
                "authorization_policies": cluster.authorization_policies,
                "peer_authentications": cluster.peer_authentications,
                "services": cluster.services,
                "admin_policies": cluster.admin_policies,
                "nodes": cluster.nodes,
                "mesh": {"root_namespace": mesh.root_namespace(), "trust": mesh.trust_domains()},
            });
            let text = serde_json::to_string(&Canonical::of(&cluster, mesh)).unwrap();
            assert_eq!(text, value.to_string(), "{dir}");
            let hex: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(input_hash(&cluster, mesh), format!("sha256:{hex}"));
        }
    }
}
