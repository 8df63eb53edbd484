//! Compiling the cluster model into decision tables.
//!
//! Workloads are grouped into equivalence classes: same namespace, pod labels,
//! service account, container ports, and the same set of `ipBlock`s matching
//! their pod IPs. Every policy decision depends on nothing else, so workloads
//! of a class are decided identically and the tables grow with the number of
//! distinct policy-relevant shapes, not with the number of pods.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::labels::Labels;
use crate::model::{Cluster, ContainerPort, Direction, Peer, Rule};
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
}

pub fn compile(cluster: &Cluster) -> Tables {
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
        });
        let selected: Vec<ClassId> = classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.namespace == np.namespace && np.pod_selector.matches(&c.labels))
            .map(|(i, _)| i as ClassId)
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
                        &classes,
                        &class_blocks,
                        &blocks,
                        &ns_labels,
                    ),
                    ports: rule.ports.clone(),
                });
            }
            for &c in &selected {
                let iso = &mut table[c as usize];
                iso.policies.push(pid);
                iso.rules.extend(first_rule..rules.len() as u32);
            }
        }
    }

    Tables {
        format: FORMAT.to_owned(),
        input_hash: input_hash(cluster),
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
    }
}

fn peers<'a>(
    rule: &Rule,
    policy_ns: &str,
    classes: &[Class],
    class_blocks: &[&[usize]],
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
                for (i, c) in classes.iter().enumerate() {
                    let ns_ok = match namespaces {
                        None => c.namespace == policy_ns,
                        Some(sel) => ns_labels(&c.namespace).is_some_and(|l| sel.matches(l)),
                    };
                    if ns_ok && pods.matches(&c.labels) {
                        out.classes.insert(i as ClassId);
                    }
                }
            }
            Peer::IpBlock { cidr, except } => {
                let block = IpBlock {
                    cidr: *cidr,
                    except: except.clone(),
                };
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
        }
    }
    out
}

/// sha256 of the canonical input semantics.
fn input_hash(cluster: &Cluster) -> String {
    let canonical = serde_json::json!({
        "namespaces": cluster.namespaces.values().map(|n| (&n.name, &n.labels)).collect::<Vec<_>>(),
        "workloads": cluster.workloads.iter().map(|w| serde_json::json!({
            "namespace": w.namespace, "name": w.name, "kind": w.kind, "labels": w.labels,
            "service_account": w.service_account, "ports": w.ports, "ips": w.ips,
        })).collect::<Vec<_>>(),
        "network_policies": cluster.network_policies,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
