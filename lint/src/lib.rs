//! # ambit-lint
//!
//! The rules of `ambit lint`: each one a stable code of the diagnostic
//! registry ([`ambit_compiler::diag::Code`]), decided exactly over the
//! loaded cluster: by enumeration where the question is about today's
//! inventory, with Z3 (through `ambit-verifier`'s encoding of the policy
//! semantics) where it is a question about sets of flows or of pods that
//! could exist.
//!
//! Every finding points at the most specific YAML node: a rule, a peer, a
//! port entry, a selector key, or the object's `metadata.name` for findings
//! about the whole object. An object's `ambit.dev/ignore` annotation
//! silences the codes it lists on that object; [`config::Config`] disables
//! rules, changes severities and ignores paths.

pub mod config;
pub mod registry;
mod rules;
pub mod sarif;
pub mod sites;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ambit_compiler::compile::CompileOptions;
use ambit_compiler::diag::{Code, Diagnostic};
use ambit_compiler::labels::Labels;
use ambit_compiler::model::{Cluster, Direction, Namespace, Workload};
use ambit_compiler::source::SourceFile;
use ambit_compiler::table::Tables;
use ambit_compiler::yaml::Seg;
use ipnet::IpNet;

use crate::sites::{ObjectKey, Sites};

/// What lint needs besides the cluster.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    pub compile: CompileOptions,
    /// The namespace of objects that name none (as loading used).
    pub default_namespace: String,
    /// The pod network (`--pod-cidr`); inferred from pod IPs when empty.
    pub pod_cidrs: Vec<IpNet>,
    /// The service network (`--service-cidr`).
    pub service_cidrs: Vec<IpNet>,
}

/// Run every rule. Findings come sorted by file, position and code.
pub fn lint(
    cluster: &Cluster,
    tables: &Tables,
    files: &[SourceFile],
    options: &LintOptions,
) -> Vec<Diagnostic> {
    let sites = Sites::new(files, &options.default_namespace);
    let mut cx = Context::new(cluster, tables, options, &sites);
    rules::run(&mut cx);
    let mut findings = cx.findings;
    let mut sorted = ambit_compiler::diag::Diagnostics(std::mem::take(&mut findings));
    sorted.sort();
    sorted.0
}

/// The smallest CIDR of each family that holds every pod IP of the
/// inventory (host-network pods have the node's address and are left out).
pub fn infer_pod_network(cluster: &Cluster) -> Vec<IpNet> {
    let mut out = Vec::new();
    for v4 in [true, false] {
        let ips: Vec<IpAddr> = cluster
            .workloads
            .iter()
            .filter(|w| !w.host_network)
            .flat_map(|w| w.ips.iter().copied())
            .filter(|ip| ip.is_ipv4() == v4)
            .collect();
        let (Some(lo), Some(hi)) = (ips.iter().min(), ips.iter().max()) else {
            continue;
        };
        let (bits, width) = match (lo, hi) {
            (IpAddr::V4(a), IpAddr::V4(b)) => ((u32::from(*a) ^ u32::from(*b)) as u128, 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(*a) ^ u128::from(*b), 128),
            _ => continue,
        };
        let common = (bits.leading_zeros() - (128 - width)) as u8;
        if let Ok(net) = IpNet::new(*lo, common) {
            out.push(net.trunc());
        }
    }
    out
}

/// The state of one run: what is read, and what was found.
pub(crate) struct Context<'a> {
    pub cluster: &'a Cluster,
    pub tables: &'a Tables,
    pub options: &'a LintOptions,
    pub sites: &'a Sites<'a>,
    pub pod_network: Vec<IpNet>,
    /// The pod network was inferred, not given.
    pub inferred: bool,
    pub findings: Vec<Diagnostic>,
    /// What was reported where (rules that defer to finer findings read it).
    pub reported: Vec<(Code, ObjectKey, Vec<Seg>)>,
    /// The rules NP003 found shadowed.
    pub shadowed: Vec<RuleId>,
    /// Every label key the workloads carry, with its values.
    pub pod_labels: LabelUniverse,
    /// Every label key the namespaces carry, with its values.
    pub namespace_labels: LabelUniverse,
    /// The workloads of each namespace, in inventory order.
    by_namespace: std::collections::HashMap<&'a str, Vec<usize>>,
}

/// Label keys and the values they take.
pub(crate) type LabelUniverse = std::collections::BTreeMap<String, BTreeSet<String>>;

fn universe<'l>(labels: impl Iterator<Item = &'l Labels>) -> LabelUniverse {
    let mut out = LabelUniverse::new();
    for l in labels {
        for (k, v) in l {
            out.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    out
}

/// A rule of a NetworkPolicy: the policy's index in
/// `Cluster::network_policies`, the direction, the rule's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleId {
    pub policy: usize,
    pub direction: Direction,
    pub rule: usize,
}

/// The rules NP003 reports: removing all of them together changes no
/// decision (a law the tests hold it to).
pub fn shadowed_rules(cluster: &Cluster, tables: &Tables, options: &LintOptions) -> Vec<RuleId> {
    let sites = Sites::new(&[], &options.default_namespace);
    let mut cx = Context::new(cluster, tables, options, &sites);
    rules::shadowed(&mut cx);
    cx.shadowed
}

impl<'a> Context<'a> {
    fn new(
        cluster: &'a Cluster,
        tables: &'a Tables,
        options: &'a LintOptions,
        sites: &'a Sites<'a>,
    ) -> Self {
        Context {
            cluster,
            tables,
            options,
            sites,
            pod_network: if options.pod_cidrs.is_empty() {
                infer_pod_network(cluster)
            } else {
                options.pod_cidrs.clone()
            },
            inferred: options.pod_cidrs.is_empty(),
            findings: Vec::new(),
            reported: Vec::new(),
            shadowed: Vec::new(),
            pod_labels: universe(cluster.workloads.iter().map(|w| &w.labels)),
            namespace_labels: universe(cluster.namespaces.values().map(|n| &n.labels)),
            by_namespace: cluster.workloads.iter().enumerate().fold(
                std::collections::HashMap::new(),
                |mut by, (i, w)| {
                    by.entry(w.namespace.as_str())
                        .or_insert_with(Vec::new)
                        .push(i);
                    by
                },
            ),
        }
    }
}

impl<'a> Context<'a> {
    /// Report a finding at `path` of an object, unless the object's
    /// annotation silences the code.
    pub fn report(
        &mut self,
        code: Code,
        key: &ObjectKey,
        path: &[Seg],
        message: String,
        help: String,
    ) {
        self.report_at(code, key, path, false, message, help);
    }

    /// As [`Context::report`], pointing at the key of the last segment.
    pub fn report_key(
        &mut self,
        code: Code,
        key: &ObjectKey,
        path: &[Seg],
        message: String,
        help: String,
    ) {
        self.report_at(code, key, path, true, message, help);
    }

    fn report_at(
        &mut self,
        code: Code,
        key: &ObjectKey,
        path: &[Seg],
        at_key: bool,
        message: String,
        help: String,
    ) {
        if self.sites.ignored(key).contains(code.as_str()) {
            return;
        }
        let location = if at_key {
            self.sites.locate_key(key, path)
        } else {
            self.sites.locate(key, path)
        };
        self.reported.push((code, key.clone(), path.to_vec()));
        self.findings.push(
            Diagnostic::new(code, message)
                .with_help(help)
                .at_location(location),
        );
    }

    /// Was `code` reported inside `path` of the object?
    pub fn reported_inside(&self, code: Code, key: &ObjectKey, path: &[Seg]) -> bool {
        self.reported
            .iter()
            .any(|(c, k, p)| *c == code && k == key && p.starts_with(path))
    }

    /// The messages of the findings of `code` inside `path` of the object.
    pub fn reported_messages(&self, code: Code, key: &ObjectKey, path: &[Seg]) -> Vec<String> {
        self.reported
            .iter()
            .zip(&self.findings)
            .filter(|((c, k, p), _)| *c == code && k == key && p.starts_with(path))
            .map(|(_, f)| f.message.clone())
            .collect()
    }

    /// Withdraw the findings of `code` inside `path` of the object (a
    /// coarser finding says the same); their messages are returned.
    pub fn retract(&mut self, code: Code, key: &ObjectKey, path: &[Seg]) -> Vec<String> {
        let mut messages = Vec::new();
        let mut i = 0;
        while i < self.reported.len() {
            let (c, k, p) = &self.reported[i];
            if *c == code && k == key && p.starts_with(path) {
                self.reported.remove(i);
                messages.push(self.findings.remove(i).message);
            } else {
                i += 1;
            }
        }
        messages
    }

    /// The workloads of a namespace, in inventory order.
    pub fn workloads_in(&self, namespace: &str) -> &[usize] {
        self.by_namespace.get(namespace).map_or(&[], Vec::as_slice)
    }

    /// Each namespace that has workloads, with them.
    pub fn namespaces_with_workloads(&self) -> impl Iterator<Item = (&'a str, &[usize])> {
        self.by_namespace
            .iter()
            .map(|(ns, members)| (*ns, members.as_slice()))
    }

    /// The labels of a namespace (implied when it is not declared).
    pub fn namespace_labels(&self, name: &str) -> std::borrow::Cow<'a, Labels> {
        match self.cluster.namespaces.get(name) {
            Some(n) => std::borrow::Cow::Borrowed(&n.labels),
            None => std::borrow::Cow::Owned(Namespace::implied(name).labels),
        }
    }

    /// Where a finding about a workload goes: its object's `metadata.name`.
    pub fn workload_key(w: &Workload) -> ObjectKey {
        ObjectKey::new(&format!("{:?}", w.kind), &w.namespace, &w.name)
    }

    /// One workload per class of `candidates`: workloads of one class are
    /// alike to every policy (namespace, labels, ports, the ipBlocks their
    /// addresses fall in, identity), so a question about a set of workloads
    /// needs one of each.
    pub fn representatives(&self, candidates: impl IntoIterator<Item = usize>) -> Vec<usize> {
        let mut seen = std::collections::BTreeSet::new();
        candidates
            .into_iter()
            .filter(|&i| seen.insert(self.tables.workloads[i].class))
            .collect()
    }

    /// A short list of workload names: the first three and a count.
    pub fn some_workloads(&self, indices: &[usize]) -> String {
        let names: Vec<String> = indices
            .iter()
            .take(3)
            .map(|&i| format!("`{}`", self.cluster.workloads[i].id()))
            .collect();
        let more = indices.len().saturating_sub(3);
        if more > 0 {
            format!("{} and {more} more", names.join(", "))
        } else {
            names.join(", ")
        }
    }
}

/// `metadata.name`: where findings about a whole object point.
pub(crate) fn name_path() -> Vec<Seg> {
    vec![Seg::Key("metadata"), Seg::Key("name")]
}

/// The closest of `candidates` to `word`, when it is close enough to be a
/// likely typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c String>,
) -> Option<&'c String> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= (word.len().max(c.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

/// Every code a lint rule reports (loading codes aside).
pub fn rule_codes() -> BTreeSet<Code> {
    Code::ALL
        .iter()
        .copied()
        .filter(|c| {
            let s = c.as_str();
            ["NP", "AP", "AN", "RX"].iter().any(|p| s.starts_with(p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ambit_compiler::model::WorkloadKind;

    fn pod(ip: &str, host: bool) -> Workload {
        Workload {
            namespace: "a".into(),
            name: ip.into(),
            kind: WorkloadKind::Pod,
            labels: Labels::new(),
            service_account: "default".into(),
            ports: Vec::new(),
            ips: vec![ip.parse().unwrap()],
            host_network: host,
            inject_annotation: None,
            location: None,
        }
    }

    #[test]
    fn the_pod_network_is_the_smallest_cidr_per_family() {
        let mut c = Cluster {
            workloads: vec![
                pod("10.244.1.10", false),
                pod("10.244.2.20", false),
                pod("172.18.0.2", true),
                pod("fd00::1:5", false),
            ],
            ..Cluster::default()
        };
        let nets: Vec<String> = infer_pod_network(&c)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.244.0.0/22", "fd00::1:5/128"]);
        c.workloads.truncate(1);
        let nets: Vec<String> = infer_pod_network(&c)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.244.1.10/32"]);
    }

    #[test]
    fn closest_names_a_likely_typo_only() {
        let known = ["frontend".to_owned(), "api".to_owned()];
        assert_eq!(
            closest("fronted", &known).map(String::as_str),
            Some("frontend")
        );
        assert_eq!(closest("database", &known), None);
        assert_eq!(closest("api", &known), None, "an exact match is no typo");
    }
}
