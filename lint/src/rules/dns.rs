//! NP006: pods isolated for egress must reach the cluster DNS on UDP 53
//! (queries) and TCP 53 (answers too large for UDP are retried over TCP).
//!
//! The DNS servers are the workloads of `kube-system` labelled
//! `k8s-app=kube-dns` (CoreDNS and kube-dns both carry it). When the input
//! has none, a pod with those labels and ports is assumed there, as every
//! cluster has one.

use ambit_compiler::compile::compile_with;
use ambit_compiler::diag::Code;
use ambit_compiler::model::{
    Cluster, ContainerPort, Direction, Namespace, Protocol, Workload, WorkloadKind,
};
use ambit_compiler::table::{Endpoint, Tables};

use crate::rules::netpol::{key, selected};
use crate::{Context, name_path};

const DNS_NAMESPACE: &str = "kube-system";

fn is_dns(w: &Workload) -> bool {
    w.namespace == DNS_NAMESPACE && w.labels.get("k8s-app").is_some_and(|v| v == "kube-dns")
}

pub(crate) fn run(cx: &mut Context<'_>) {
    if !cx
        .cluster
        .network_policies
        .iter()
        .any(|np| np.rules(Direction::Egress).is_some())
    {
        return;
    }
    // The cluster and tables to ask, with an assumed DNS pod if needed.
    let assumed: Option<(Cluster, Tables)> = if cx.cluster.workloads.iter().any(is_dns) {
        None
    } else {
        let mut cluster = cx.cluster.clone();
        cluster
            .namespaces
            .entry(DNS_NAMESPACE.to_owned())
            .or_insert_with(|| Namespace::implied(DNS_NAMESPACE));
        let dns = Workload {
            namespace: DNS_NAMESPACE.to_owned(),
            name: "kube-dns".to_owned(),
            kind: WorkloadKind::Deployment,
            labels: [("k8s-app".to_owned(), "kube-dns".to_owned())].into(),
            service_account: "coredns".to_owned(),
            ports: vec![
                ContainerPort {
                    name: Some("dns".to_owned()),
                    protocol: Protocol::Udp,
                    port: 53,
                },
                ContainerPort {
                    name: Some("dns-tcp".to_owned()),
                    protocol: Protocol::Tcp,
                    port: 53,
                },
            ],
            ips: Vec::new(),
            host_network: false,
            inject_annotation: None,
            location: None,
        };
        let at = cluster.workloads.partition_point(|w| {
            (w.namespace.as_str(), w.name.as_str()) < (DNS_NAMESPACE, "kube-dns")
        });
        if cluster
            .workloads
            .get(at)
            .is_some_and(|w| w.namespace == DNS_NAMESPACE && w.name == "kube-dns")
        {
            // A workload of that name without the label: leave it be.
            return;
        }
        cluster.workloads.insert(at, dns);
        let tables = compile_with(&cluster, &cx.options.compile);
        Some((cluster, tables))
    };
    let (cluster, tables) = match &assumed {
        Some((c, t)) => (c, t),
        None => (cx.cluster, cx.tables),
    };
    let servers: Vec<usize> = cluster
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| is_dns(w))
        .map(|(i, _)| i)
        .collect();
    let server_names = if assumed.is_some() {
        "the cluster DNS (a `k8s-app=kube-dns` pod assumed in kube-system)".to_owned()
    } else {
        format!(
            "the cluster DNS ({})",
            servers
                .iter()
                .map(|&i| format!("`{}`", cluster.workloads[i].id()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for np in &cx.cluster.network_policies {
        if np.rules(Direction::Egress).is_none() {
            continue;
        }
        let mut affected = Vec::new();
        let mut missing = [false; 2];
        for w in selected(cx, np) {
            if is_dns(&cx.cluster.workloads[w]) {
                continue;
            }
            // Indices shift by one where a DNS pod was inserted before.
            let id = &cx.cluster.workloads[w];
            let Some(from) = tables.workload_index(&id.namespace, &id.name) else {
                continue;
            };
            let reach = |protocol| {
                servers.iter().any(|&s| {
                    tables.decide(
                        Endpoint::Workload(from),
                        Endpoint::Workload(s as u32),
                        protocol,
                        53,
                    )
                })
            };
            let (udp, tcp) = (reach(Protocol::Udp), reach(Protocol::Tcp));
            if !udp || !tcp {
                affected.push(w);
                missing[0] |= !udp;
                missing[1] |= !tcp;
            }
        }
        if affected.is_empty() {
            continue;
        }
        let ports = match missing {
            [true, true] => "on UDP 53 or TCP 53",
            [true, false] => "on UDP 53 (TCP alone is not enough: queries go over UDP)",
            _ => "on TCP 53 (answers too large for UDP are retried over TCP)",
        };
        let who = cx.some_workloads(&affected);
        cx.report(
            Code::EgressWithoutDns,
            &key(np),
            &name_path(),
            format!(
                "pods this policy isolates for egress ({who}) cannot reach {server_names} {ports}"
            ),
            "admit egress to `namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}` with `podSelector: {matchLabels: {k8s-app: kube-dns}}` on port 53 for both UDP and TCP".into(),
        );
    }
}
