//! All-pairs connectivity: the ports allowed for every ordered pair of
//! workloads, computed once per ordered pair of classes.
//!
//! Two workloads decide as their classes do (but for a pod reaching itself),
//! so the matrix holds one cell per pair of classes: an index into the
//! distinct port sets met. Most pairs are settled by one look at each side
//! (a side whose entry admits the remote class by no rule denies every port,
//! or, unisolated with no tier rule for it, allows every one); the others go
//! through [`Tables::allowed_ports`]. Rows are computed in parallel.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::authz::{MeshMode, MtlsMode};
use crate::model::{Protocol, WorkloadKind};
use crate::table::{ClassId, ClassSet, Endpoint, Isolation, PortSet, Tables};

/// The distinct port sets met, by content. Hashed with foldhash (seeded per
/// process, as std's SipHash is), several times faster than SipHash on these
/// short keys, one lookup per pair of classes evaluated.
type SetIndex = HashMap<PortSet, u32, foldhash::fast::RandomState>;

/// Index of the empty port set in [`Matrix::sets`].
pub const NONE: u32 = 0;
/// Index of the set of every port of every protocol.
pub const ALL: u32 = 1;

/// The answer for every ordered pair of workloads.
#[derive(Debug, Clone)]
pub struct Matrix {
    classes: usize,
    /// `cells[s * classes + d]`: index into `sets`.
    cells: Vec<u32>,
    sets: Vec<PortSet>,
    /// Per workload: a pod reaching itself (every port), else its class cell.
    self_all: Vec<bool>,
    class_of: Vec<ClassId>,
    /// Pairs of classes decided through the full per-port evaluation.
    pub evaluated: usize,
}

/// What one side decides for a pair of classes, before looking at ports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    DenyAll,
    AllowAll,
    Depends,
}

impl Matrix {
    /// Every port (or, with `only`, that one port) for every pair.
    pub fn compute(tables: &Tables, only: Option<(u16, Protocol)>) -> Matrix {
        let n = tables.classes.len();
        // Two workloads of each class (the same one when it has one), to ask
        // the tables about a pair of classes without meeting `is_self`.
        let mut reps: Vec<(Option<u32>, Option<u32>)> = vec![(None, None); n];
        for (i, w) in tables.workloads.iter().enumerate() {
            let r = &mut reps[w.class as usize];
            match r {
                (None, _) => r.0 = Some(i as u32),
                (Some(_), None) => r.1 = Some(i as u32),
                _ => {}
            }
        }
        let transparent: Vec<bool> = tables
            .authz
            .classes
            .iter()
            .map(|a| {
                a.mesh == MeshMode::None
                    || (a.policies.is_empty()
                        && a.mtls.mode != MtlsMode::Strict
                        && a.mtls.ports.iter().all(|p| p.1 != MtlsMode::Strict))
            })
            .collect();
        let all = match only {
            None => PortSet::all(),
            Some((port, proto)) => {
                let mut s = PortSet::default();
                s.ranges[proto.index()].push((port, port));
                s
            }
        };
        let ingress: Vec<Glance> = tables
            .ingress
            .par_iter()
            .map(|iso| Glance::of(tables, iso))
            .collect();
        let rows: Vec<(Vec<u32>, Vec<PortSet>, usize)> = (0..n)
            .into_par_iter()
            .map(|s| {
                let mut local: SetIndex = SetIndex::default();
                let mut local_sets: Vec<PortSet> = Vec::new();
                let mut evaluated = 0;
                let mut row = Vec::with_capacity(n);
                let egress = Glance::of(tables, &tables.egress[s]);
                for d in 0..n {
                    let cell = match (egress.side(d as ClassId), ingress[d].side(s as ClassId)) {
                        (Side::DenyAll, _) | (_, Side::DenyAll) => NONE,
                        (Side::AllowAll, Side::AllowAll)
                            if transparent.get(d).copied().unwrap_or(true) =>
                        {
                            ALL
                        }
                        _ => {
                            evaluated += 1;
                            let from = reps[s].0.expect("a class has a workload");
                            let to = if s == d {
                                reps[d].1.unwrap_or(from)
                            } else {
                                reps[d].0.expect("a class has a workload")
                            };
                            let set = pair(tables, from, to, only);
                            if set.is_empty() {
                                NONE
                            } else if set == all {
                                ALL
                            } else {
                                let next = local_sets.len() as u32;
                                *local.entry(set).or_insert_with_key(|k| {
                                    local_sets.push(k.clone());
                                    next
                                }) | 0x8000_0000
                            }
                        }
                    };
                    row.push(cell);
                }
                (row, local_sets, evaluated)
            })
            .collect();
        let mut sets = vec![PortSet::default(), all];
        let mut index: SetIndex = SetIndex::default();
        let mut cells = Vec::with_capacity(n * n);
        let mut evaluated = 0;
        for (row, local_sets, e) in rows {
            evaluated += e;
            let map: Vec<u32> = local_sets
                .into_iter()
                .map(|set| {
                    let next = sets.len() as u32;
                    *index.entry(set).or_insert_with_key(|k| {
                        sets.push(k.clone());
                        next
                    })
                })
                .collect();
            cells.extend(row.into_iter().map(|c| {
                if c & 0x8000_0000 != 0 {
                    map[(c & 0x7fff_ffff) as usize]
                } else {
                    c
                }
            }));
        }
        Matrix {
            classes: n,
            cells,
            sets,
            self_all: tables
                .workloads
                .iter()
                .map(|w| w.kind == WorkloadKind::Pod)
                .collect(),
            class_of: tables.workloads.iter().map(|w| w.class).collect(),
            evaluated,
        }
    }

    /// The distinct port sets; a cell is an index into them ([`NONE`] and
    /// [`ALL`] first).
    pub fn sets(&self) -> &[PortSet] {
        &self.sets
    }

    /// The cell of workloads `i` to `j`.
    #[inline]
    pub fn index(&self, i: usize, j: usize) -> u32 {
        self.row(i).index(j)
    }

    /// The cells of workload `i`'s row, each read by [`Row::index`].
    #[inline]
    pub fn row(&self, i: usize) -> Row<'_> {
        let first = self.class_of[i] as usize * self.classes;
        Row {
            i,
            self_all: self.self_all[i],
            cells: &self.cells[first..first + self.classes],
            class_of: &self.class_of,
        }
    }

    /// The ports allowed from workload `i` to workload `j`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> &PortSet {
        &self.sets[self.index(i, j) as usize]
    }

    /// The cell of classes `s` to `d` (two distinct workloads).
    #[inline]
    pub fn class_index(&self, s: ClassId, d: ClassId) -> u32 {
        self.cells[s as usize * self.classes + d as usize]
    }
}

/// One row of a [`Matrix`]: the cells from one workload.
#[derive(Debug, Clone, Copy)]
pub struct Row<'m> {
    i: usize,
    self_all: bool,
    cells: &'m [u32],
    class_of: &'m [ClassId],
}

impl Row<'_> {
    /// The cell to workload `j`.
    #[inline]
    pub fn index(&self, j: usize) -> u32 {
        if j == self.i && self.self_all {
            return ALL;
        }
        self.cells[self.class_of[j] as usize]
    }
}

/// The remote classes some rules admit (by peer or by a pod IP in a
/// block), or every class.
#[derive(Default)]
struct Admits {
    all: bool,
    classes: ClassSet,
}

impl Admits {
    fn of<'a>(tables: &Tables, rules: impl IntoIterator<Item = &'a u32>) -> Admits {
        let mut out = Admits::default();
        for &r in rules {
            let peers = &tables.rules[r as usize].peers;
            out.all |= peers.all;
            out.classes.union_with(&peers.classes);
            out.classes.union_with(&peers.ip_classes);
        }
        out
    }

    #[inline]
    fn contains(&self, c: ClassId) -> bool {
        self.all || self.classes.contains(c)
    }
}

/// One side of a class (its egress or ingress entry), for every remote
/// class at once: the remote classes its admin rules admit, its admitting
/// NetworkPolicy rules admit on every port and at all, and its baseline
/// rules admit. A pair of classes reads one bit of each.
struct Glance {
    isolated: bool,
    admin: Admits,
    open: Admits,
    admitted: Admits,
    baseline: Admits,
}

impl Glance {
    fn of(tables: &Tables, iso: &Isolation) -> Glance {
        Glance {
            isolated: iso.isolated(),
            admin: Admits::of(tables, &iso.admin),
            open: Admits::of(
                tables,
                iso.rules
                    .iter()
                    .filter(|&&r| tables.rules[r as usize].ports.is_none()),
            ),
            admitted: Admits::of(tables, &iso.rules),
            baseline: Admits::of(tables, &iso.baseline),
        }
    }

    /// The side for a remote class at a glance: no rule of any tier admits
    /// it (then an isolated side denies, an unisolated one allows), an
    /// isolated side whose admitting NetworkPolicy rule opens every port
    /// with no admin rule in front, or anything else.
    #[inline]
    fn side(&self, remote: ClassId) -> Side {
        if self.admin.contains(remote) {
            Side::Depends
        } else if self.isolated {
            if self.open.contains(remote) {
                Side::AllowAll
            } else if self.admitted.contains(remote) {
                Side::Depends
            } else {
                Side::DenyAll
            }
        } else if self.baseline.contains(remote) {
            Side::Depends
        } else {
            Side::AllowAll
        }
    }
}

fn pair(tables: &Tables, from: u32, to: u32, only: Option<(u16, Protocol)>) -> PortSet {
    let (from, to) = (Endpoint::Workload(from), Endpoint::Workload(to));
    match only {
        None => tables.allowed_ports(from, to),
        Some((port, proto)) => {
            let mut set = PortSet::default();
            if tables.decide(from, to, proto, port) {
                set.ranges[proto.index()].push((port, port));
            }
            set
        }
    }
}
