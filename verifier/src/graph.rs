//! The reachability graph: workloads (or namespaces) as nodes, an edge where
//! the tables allow some flow, weighted by the allowed ports. Lateral
//! movement is a path in it.

use std::collections::{BTreeMap, VecDeque};

use ambit_compiler::table::{PortSet, Tables};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Workload,
    Namespace,
}

/// An edge: the ports allowed, and how many workload pairs it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub ports: PortSet,
    pub pairs: usize,
}

/// The graph, its node names (`namespace/name` or `namespace`) and their
/// namespaces.
#[derive(Debug)]
pub struct Graph {
    pub graph: DiGraph<String, Reach>,
    pub namespace: Vec<String>,
}

impl Graph {
    /// Every allowed flow between two workloads of the tables (a workload to
    /// itself left out).
    pub fn build(tables: &Tables, by: By) -> Graph {
        let mut graph = DiGraph::new();
        let mut namespace = Vec::new();
        let mut index: BTreeMap<String, NodeIndex> = BTreeMap::new();
        let key = |w: usize| {
            let e = &tables.workloads[w];
            match by {
                By::Workload => format!("{}/{}", e.namespace, e.name),
                By::Namespace => e.namespace.clone(),
            }
        };
        for (w, e) in tables.workloads.iter().enumerate() {
            let k = key(w);
            if !index.contains_key(&k) {
                index.insert(k.clone(), graph.add_node(k));
                namespace.push(e.namespace.clone());
            }
        }
        let node_of: Vec<NodeIndex> = (0..tables.workloads.len())
            .map(|w| index[&key(w)])
            .collect();
        // Two workloads decide as their classes do (but for a pod and itself,
        // left out here): one port set per pair of classes.
        let matrix = ambit_compiler::matrix::Matrix::compute(tables, None);
        let mut edges: BTreeMap<(NodeIndex, NodeIndex), Reach> = BTreeMap::new();
        let n = tables.workloads.len();
        for s in 0..n {
            for d in 0..n {
                if s == d {
                    continue;
                }
                let (a, b) = (node_of[s], node_of[d]);
                if a == b {
                    continue;
                }
                let ports = matrix.get(s, d);
                if ports.is_empty() {
                    continue;
                }
                let e = edges.entry((a, b)).or_insert(Reach {
                    ports: PortSet::default(),
                    pairs: 0,
                });
                e.ports = e.ports.union(ports);
                e.pairs += 1;
            }
        }
        for ((a, b), r) in edges {
            graph.add_edge(a, b, r);
        }
        Graph { graph, namespace }
    }

    pub fn node(&self, name: &str) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&i| self.graph[i] == name)
    }

    /// Every shortest path from `from` to `to` (in hops), in name order.
    pub fn shortest_paths(&self, from: NodeIndex, to: NodeIndex) -> Vec<Vec<NodeIndex>> {
        // Breadth-first distances, then walk back over every predecessor on
        // a shortest path.
        let mut dist: BTreeMap<NodeIndex, usize> = BTreeMap::new();
        let mut preds: BTreeMap<NodeIndex, Vec<NodeIndex>> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        dist.insert(from, 0);
        while let Some(u) = queue.pop_front() {
            let du = dist[&u];
            for e in self.graph.edges(u) {
                let v = e.target();
                match dist.get(&v) {
                    None => {
                        dist.insert(v, du + 1);
                        preds.entry(v).or_default().push(u);
                        queue.push_back(v);
                    }
                    Some(&dv) if dv == du + 1 => preds.entry(v).or_default().push(u),
                    _ => {}
                }
            }
        }
        if from == to || !dist.contains_key(&to) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut stack = vec![vec![to]];
        while let Some(path) = stack.pop() {
            let head = *path.last().expect("non-empty");
            if head == from {
                let mut p = path.clone();
                p.reverse();
                out.push(p);
                continue;
            }
            for &p in preds.get(&head).into_iter().flatten() {
                let mut next = path.clone();
                next.push(p);
                stack.push(next);
            }
        }
        out.sort_by(|a, b| {
            let names =
                |p: &Vec<NodeIndex>| p.iter().map(|&i| self.graph[i].clone()).collect::<Vec<_>>();
            names(a).cmp(&names(b))
        });
        out
    }

    /// The nodes within `hops` of `from`, with their distance.
    pub fn within(&self, from: NodeIndex, hops: usize) -> BTreeMap<NodeIndex, usize> {
        let mut dist = BTreeMap::from([(from, 0)]);
        let mut queue = VecDeque::from([from]);
        while let Some(u) = queue.pop_front() {
            let du = dist[&u];
            if du == hops {
                continue;
            }
            for v in self.graph.neighbors(u) {
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(v) {
                    e.insert(du + 1);
                    queue.push_back(v);
                }
            }
        }
        dist
    }

    /// Strongly connected components of more than one node: groups of
    /// workloads that can all reach each other, directly or not.
    pub fn components(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(|&i| self.graph[i].clone()).collect();
                names.sort();
                names
            })
            .collect();
        out.sort();
        out
    }
}
