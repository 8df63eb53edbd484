//! `ambit query PATHS 'EXPR'`: the query language. One flow with a port is
//! a yes/no question answered as a probe (exit 1 when denied); any other
//! query is a set, summarized by namespace and labels with counts (`-o json`
//! lists every pair).

use std::collections::BTreeMap;
use std::io::Write;

use ambit_compiler::diag::Diagnostic;
use ambit_compiler::probe::{self, Answer, HttpSpec, ProbeSpec};
use ambit_compiler::query::{Query, Side};
use ambit_compiler::source::{SourceFile, Span};
use ambit_compiler::table::{Endpoint, PortSet, Tables};
use serde::Serialize;

use crate::commands::{PortRange, Status, port_ranges};

/// Resolve the sides of a query against the tables: unknown workloads are
/// diagnostics pointing into the query.
pub fn resolve(text: &str, q: &Query, tables: &Tables) -> Result<[Vec<Endpoint>; 2], Diagnostic> {
    let file = SourceFile::new("<query>", text.to_owned());
    let members = |side: &Side| -> Result<Vec<Endpoint>, Diagnostic> {
        Ok(match side {
            Side::Every => (0..tables.workloads.len() as u32)
                .map(Endpoint::Workload)
                .collect(),
            Side::Ip(ip) => vec![Endpoint::Ip(*ip)],
            Side::Workload {
                namespace,
                name,
                span,
            } => {
                let id = format!("{namespace}/{name}");
                vec![
                    probe::endpoint(&id, tables)
                        .map_err(|d| d.at(&file, Span::new(span.0, span.1)))?,
                ]
            }
            Side::Selector { namespaces, pods } => tables
                .workloads
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    let ns = tables
                        .namespaces
                        .binary_search_by(|n| n.name.as_str().cmp(&w.namespace))
                        .ok()
                        .map(|i| &tables.namespaces[i].labels);
                    ns.is_some_and(|l| namespaces.matches(l))
                        && pods.matches(&tables.classes[w.class as usize].labels)
                })
                .map(|(i, _)| Endpoint::Workload(i as u32))
                .collect(),
        })
    };
    Ok([members(&q.from)?, members(&q.to)?])
}

pub fn name(tables: &Tables, e: Endpoint) -> String {
    match e {
        Endpoint::Workload(w) => {
            let w = &tables.workloads[w as usize];
            format!("{}/{}", w.namespace, w.name)
        }
        Endpoint::Ip(ip) => format!("ip:{ip}"),
    }
}

/// A workload's group in summaries: its namespace, and its `app` label (or
/// `app.kubernetes.io/name`, `k8s-app`, else all its labels).
fn group(tables: &Tables, e: Endpoint) -> (String, String) {
    match e {
        Endpoint::Ip(ip) => ("(outside the cluster)".to_owned(), format!("ip:{ip}")),
        Endpoint::Workload(w) => {
            let w = &tables.workloads[w as usize];
            let labels = &tables.classes[w.class as usize].labels;
            let label = ["app", "app.kubernetes.io/name", "k8s-app"]
                .iter()
                .find_map(|k| labels.get(*k).map(|v| format!("{k}={v}")))
                .unwrap_or_else(|| {
                    let all: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    if all.is_empty() {
                        "(no labels)".to_owned()
                    } else {
                        all.join(",")
                    }
                });
            (w.namespace.clone(), label)
        }
    }
}

#[derive(Serialize)]
struct Reach {
    from: String,
    to: String,
    allowed_ports: Vec<PortRange>,
}

/// The probe of one flow of a query with a port.
pub fn probe_spec(tables: &Tables, q: &Query, s: Endpoint, d: Endpoint) -> ProbeSpec {
    let (port, protocol) = q.port.expect("a query with a port");
    ProbeSpec {
        from: name(tables, s),
        to: name(tables, d),
        port: port as i64,
        protocol: Some(protocol.as_str().to_owned()),
        http: q.http.as_ref().map(|h| HttpSpec {
            method: Some(h.method.clone()),
            path: Some(h.path.clone()),
            host: None,
            headers: Default::default(),
        }),
        ext_authz: None,
    }
}

/// Run a set query (or a single flow without a port) and print it.
pub fn run_set(
    out: &mut impl Write,
    text: &str,
    q: &Query,
    tables: &Tables,
    sides: &[Vec<Endpoint>; 2],
    json: bool,
) -> std::io::Result<Status> {
    let mut pairs = Vec::new();
    for &s in &sides[0] {
        for &d in &sides[1] {
            if s == d || matches!((s, d), (Endpoint::Ip(_), Endpoint::Ip(_))) {
                continue;
            }
            pairs.push((s, d));
        }
    }
    let title = text.trim();
    if !json {
        for (side, list) in ["source", "destination"].iter().zip(sides) {
            if list.is_empty() {
                writeln!(out, "{title}: the {side} selects no workload")?;
                return Ok(Status::Success);
            }
        }
    }
    match q.port {
        Some(_) => {
            let answers: Vec<Answer> = pairs
                .iter()
                .map(|&(s, d)| {
                    let spec = probe_spec(tables, q, s, d);
                    let p = probe::resolve(&spec, tables, |_| None).expect("names of the tables");
                    probe::answer(tables, &p)
                })
                .collect();
            if json {
                serde_json::to_writer_pretty(&mut *out, &answers)?;
                return writeln!(out).map(|_| Status::Success);
            }
            let allowed: Vec<(Endpoint, Endpoint)> = pairs
                .iter()
                .zip(&answers)
                .filter(|(_, a)| a.allowed)
                .map(|(p, _)| *p)
                .collect();
            writeln!(
                out,
                "{title}: {} of {} flows allowed",
                allowed.len(),
                pairs.len()
            )?;
            summary(out, tables, &allowed, |_, _| None)?;
        }
        None => {
            let sets: Vec<PortSet> = pairs
                .iter()
                .map(|&(s, d)| tables.allowed_ports(s, d))
                .collect();
            if json {
                let list: Vec<Reach> = pairs
                    .iter()
                    .zip(&sets)
                    .map(|(&(s, d), set)| Reach {
                        from: name(tables, s),
                        to: name(tables, d),
                        allowed_ports: port_ranges(set),
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &list)?;
                return writeln!(out).map(|_| Status::Success);
            }
            let reached: Vec<(Endpoint, Endpoint)> = pairs
                .iter()
                .zip(&sets)
                .filter(|(_, set)| !set.is_empty())
                .map(|(p, _)| *p)
                .collect();
            writeln!(
                out,
                "{title}: {} of {} pairs connect on some port",
                reached.len(),
                pairs.len()
            )?;
            let by_pair: std::collections::HashMap<(Endpoint, Endpoint), String> = pairs
                .iter()
                .zip(&sets)
                .map(|(&p, set)| (p, set.to_string()))
                .collect();
            summary(out, tables, &reached, |s, d| by_pair.get(&(s, d)).cloned())?;
        }
    }
    Ok(Status::Success)
}

/// Group pairs by namespace pair, then by label group, with counts (and
/// the ports of each group when they are the same for all its pairs).
fn summary(
    out: &mut impl Write,
    tables: &Tables,
    pairs: &[(Endpoint, Endpoint)],
    ports: impl Fn(Endpoint, Endpoint) -> Option<String>,
) -> std::io::Result<()> {
    type Groups =
        BTreeMap<(String, String), BTreeMap<(String, String), (usize, Vec<Option<String>>)>>;
    let mut groups: Groups = BTreeMap::new();
    for &(s, d) in pairs {
        let (sn, sl) = group(tables, s);
        let (dn, dl) = group(tables, d);
        let entry = groups
            .entry((sn, dn))
            .or_default()
            .entry((sl, dl))
            .or_default();
        entry.0 += 1;
        entry.1.push(ports(s, d));
    }
    for ((sn, dn), inner) in &groups {
        let n: usize = inner.values().map(|(c, _)| c).sum();
        writeln!(out, "  {sn} -> {dn}: {n}")?;
        for ((sl, dl), (count, sets)) in inner {
            let same = sets
                .first()
                .cloned()
                .flatten()
                .filter(|f| sets.iter().all(|s| s.as_deref() == Some(f)));
            let ports = same.map(|p| format!(" on {p}")).unwrap_or_default();
            let times = if *count > 1 {
                format!(" ({count})")
            } else {
                String::new()
            };
            writeln!(out, "    {sl} -> {dl}{ports}{times}")?;
        }
    }
    Ok(())
}
