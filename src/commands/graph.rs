//! `ambit graph PATHS [-o dot|mermaid|json] [--by namespace|workload]
//! [--path FROM TO | --from X --hops K]`

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use ambit_verifier::graph::{By, Graph};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::cli::{GraphArgs, GraphBy, GraphFormat};
use crate::commands::{PortRange, Status, load, port_ranges};

#[derive(Serialize)]
struct Node<'a> {
    id: &'a str,
    namespace: &'a str,
}

#[derive(Serialize)]
struct Edge<'a> {
    from: &'a str,
    to: &'a str,
    allowed_ports: Vec<PortRange>,
    /// Workload pairs behind the edge (1 for workloads).
    pairs: usize,
}

#[derive(Serialize)]
struct Json<'a> {
    nodes: Vec<Node<'a>>,
    edges: Vec<Edge<'a>>,
    /// Strongly connected components of more than one node.
    sccs: Vec<Vec<String>>,
}

#[derive(Serialize)]
struct Hop<'a> {
    from: &'a str,
    to: &'a str,
    allowed_ports: String,
}

pub fn run(args: &GraphArgs, verbose: u8) -> std::io::Result<Status> {
    let json = args.format == GraphFormat::Json;
    let (_cluster, tables) = match load(&args.input, json, verbose) {
        Ok(t) => t,
        Err(status) => return Ok(status),
    };
    let by = match args.by {
        GraphBy::Workload => By::Workload,
        GraphBy::Namespace => By::Namespace,
    };
    let g = Graph::build(&tables, by);
    let find = |name: &str| -> Result<NodeIndex, Status> {
        g.node(name).ok_or_else(|| {
            let what = if by == By::Workload {
                "workload (`namespace/name`)"
            } else {
                "namespace"
            };
            eprintln!("ambit: no {what} `{name}` in the graph");
            Status::Error
        })
    };
    let mut out = std::io::stdout().lock();
    if let Some(ends) = &args.path {
        let (from, to) = match (find(&ends[0]), find(&ends[1])) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(s), _) | (_, Err(s)) => return Ok(s),
        };
        let paths = g.shortest_paths(from, to);
        let hops = |p: &Vec<NodeIndex>| -> Vec<Hop> {
            p.windows(2)
                .map(|w| {
                    let e = g.graph.find_edge(w[0], w[1]).expect("a path follows edges");
                    Hop {
                        from: &g.graph[w[0]],
                        to: &g.graph[w[1]],
                        allowed_ports: g.graph[e].ports.to_string(),
                    }
                })
                .collect()
        };
        if json {
            let list: Vec<Vec<Hop>> = paths.iter().map(hops).collect();
            serde_json::to_writer_pretty(&mut out, &list)?;
            writeln!(out)?;
        } else if paths.is_empty() {
            writeln!(out, "no path from {} to {}", ends[0], ends[1])?;
        } else {
            let n = paths[0].len() - 1;
            writeln!(
                out,
                "{} shortest path{} from {} to {} ({n} hop{}):",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" },
                ends[0],
                ends[1],
                if n == 1 { "" } else { "s" }
            )?;
            for p in &paths {
                let mut line = g.graph[p[0]].clone();
                for h in hops(p) {
                    line.push_str(&format!(" -[{}]-> {}", h.allowed_ports, h.to));
                }
                writeln!(out, "  {line}")?;
            }
        }
        return Ok(if paths.is_empty() {
            Status::Failure
        } else {
            Status::Success
        });
    }
    // The nodes to show, and which edges: everything, or what X reaches in
    // K hops (edges leaving nodes nearer than K).
    let (nodes, edge_ok): (BTreeSet<NodeIndex>, Box<dyn Fn(NodeIndex) -> bool>) = match &args.from {
        Some(x) => {
            let start = match find(x) {
                Ok(i) => i,
                Err(s) => return Ok(s),
            };
            let dist = g.within(start, args.hops);
            let keys: BTreeSet<NodeIndex> = dist.keys().copied().collect();
            let hops = args.hops;
            (
                keys,
                Box::new(move |u| dist.get(&u).is_some_and(|&d| d < hops)),
            )
        }
        None => (g.graph.node_indices().collect(), Box::new(|_| true)),
    };
    let edges: Vec<_> = g
        .graph
        .edge_references()
        .filter(|e| edge_ok(e.source()) && nodes.contains(&e.target()))
        .collect();
    match args.format {
        GraphFormat::Json => {
            let doc = Json {
                nodes: nodes
                    .iter()
                    .map(|&i| Node {
                        id: &g.graph[i],
                        namespace: &g.namespace[i.index()],
                    })
                    .collect(),
                edges: edges
                    .iter()
                    .map(|e| Edge {
                        from: &g.graph[e.source()],
                        to: &g.graph[e.target()],
                        allowed_ports: port_ranges(&e.weight().ports),
                        pairs: e.weight().pairs,
                    })
                    .collect(),
                sccs: g.components(),
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        GraphFormat::Dot => {
            writeln!(out, "digraph ambit {{")?;
            writeln!(out, "  rankdir=LR;")?;
            writeln!(out, "  graph [fontname=\"Helvetica\"];")?;
            writeln!(
                out,
                "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", fontname=\"Helvetica\"];"
            )?;
            writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];")?;
            let mut by_ns: BTreeMap<&str, Vec<NodeIndex>> = BTreeMap::new();
            for &i in &nodes {
                by_ns.entry(&g.namespace[i.index()]).or_default().push(i);
            }
            for (ns, members) in &by_ns {
                if by == By::Workload {
                    writeln!(out, "  subgraph {} {{", quote(&format!("cluster_{ns}")))?;
                    writeln!(
                        out,
                        "    label={}; style=rounded; color=\"#9aa5b1\";",
                        quote(ns)
                    )?;
                    for &i in members {
                        let name = &g.graph[i];
                        let short = name.split_once('/').map(|(_, n)| n).unwrap_or(name);
                        writeln!(out, "    {} [label={}];", quote(name), quote(short))?;
                    }
                    writeln!(out, "  }}")?;
                } else {
                    writeln!(out, "  {};", quote(ns))?;
                }
            }
            for e in &edges {
                writeln!(
                    out,
                    "  {} -> {} [label={}];",
                    quote(&g.graph[e.source()]),
                    quote(&g.graph[e.target()]),
                    quote(&e.weight().ports.to_string())
                )?;
            }
            writeln!(out, "}}")?;
        }
        GraphFormat::Mermaid => {
            writeln!(out, "flowchart LR")?;
            let id = |i: NodeIndex| format!("n{}", i.index());
            let mut by_ns: BTreeMap<&str, Vec<NodeIndex>> = BTreeMap::new();
            for &i in &nodes {
                by_ns.entry(&g.namespace[i.index()]).or_default().push(i);
            }
            for (k, (ns, members)) in by_ns.iter().enumerate() {
                if by == By::Workload {
                    writeln!(out, "  subgraph ns{k}[\"{ns}\"]")?;
                    for &i in members {
                        writeln!(out, "    {}[\"{}\"]", id(i), g.graph[i])?;
                    }
                    writeln!(out, "  end")?;
                } else {
                    for &i in members {
                        writeln!(out, "  {}[\"{}\"]", id(i), g.graph[i])?;
                    }
                }
            }
            for e in &edges {
                writeln!(
                    out,
                    "  {} -->|\"{}\"| {}",
                    id(e.source()),
                    e.weight().ports,
                    id(e.target())
                )?;
            }
        }
    }
    Ok(Status::Success)
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
