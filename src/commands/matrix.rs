//! `ambit matrix PATHS [--port N --protocol P] -o table|json|csv`

use std::collections::HashMap;
use std::io::Write;

use ambit_compiler::model::Protocol;
use ambit_compiler::table::{Endpoint, PortSet, Tables};
use serde::Serialize;

use crate::cli::{MatrixArgs, MatrixFormat};
use crate::commands::{PortRange, Status, load, port_ranges};

pub fn run(args: &MatrixArgs, verbose: u8) -> std::io::Result<Status> {
    let json = args.format == MatrixFormat::Json;
    let protocol = match args.protocol.as_deref() {
        None => Protocol::Tcp,
        Some(p) => match Protocol::parse(&p.to_ascii_uppercase()) {
            Some(p) => p,
            None => {
                eprintln!("ambit: unknown protocol `{p}` (use TCP, UDP or SCTP)");
                return Ok(Status::Error);
            }
        },
    };
    if args.port == Some(0) {
        eprintln!("ambit: port 0 is out of range (1-65535)");
        return Ok(Status::Error);
    }
    let (_cluster, tables) = match load(&args.input, json, verbose) {
        Ok(t) => t,
        Err(status) => return Ok(status),
    };
    let names: Vec<String> = tables
        .workloads
        .iter()
        .map(|w| format!("{}/{}", w.namespace, w.name))
        .collect();
    let cells = Cells::compute(&tables, args.port.map(|p| (p, protocol)));
    let mut out = std::io::stdout().lock();
    match args.format {
        MatrixFormat::Table => table(&mut out, &names, &cells, args.port.map(|p| (p, protocol)))?,
        MatrixFormat::Csv => csv(&mut out, &names, &cells, args.port.map(|p| (p, protocol)))?,
        MatrixFormat::Json => json_out(&mut out, &names, &cells, args.port.map(|p| (p, protocol)))?,
    }
    Ok(Status::Success)
}

/// The answer for every ordered pair of workloads, computed once per pair of
/// classes.
struct Cells {
    n: usize,
    ports: Vec<PortSet>,
}

impl Cells {
    fn compute(tables: &Tables, only: Option<(u16, Protocol)>) -> Cells {
        let n = tables.workloads.len();
        let mut cache: HashMap<(u32, u32), PortSet> = HashMap::new();
        let mut ports = Vec::with_capacity(n * n);
        for i in 0..n as u32 {
            for j in 0..n as u32 {
                let (from, to) = (Endpoint::Workload(i), Endpoint::Workload(j));
                let set = if i == j {
                    // Self traffic depends on the workload, not only the class.
                    compute_pair(tables, from, to, only)
                } else {
                    let key = (
                        tables.workloads[i as usize].class,
                        tables.workloads[j as usize].class,
                    );
                    cache
                        .entry(key)
                        .or_insert_with(|| compute_pair(tables, from, to, only))
                        .clone()
                };
                ports.push(set);
            }
        }
        Cells { n, ports }
    }

    fn get(&self, i: usize, j: usize) -> &PortSet {
        &self.ports[i * self.n + j]
    }
}

fn compute_pair(
    tables: &Tables,
    from: Endpoint,
    to: Endpoint,
    only: Option<(u16, Protocol)>,
) -> PortSet {
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

fn allowed(set: &PortSet) -> bool {
    !set.is_empty()
}

fn table(
    out: &mut impl Write,
    names: &[String],
    cells: &Cells,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let idx_w = names.len().to_string().len().max(2);
    // Without --port, distinct partial port sets get letters in a legend.
    let mut legend: Vec<PortSet> = Vec::new();
    let mut symbol = |set: &PortSet| -> String {
        if only.is_some() {
            return if allowed(set) { "✓" } else { "·" }.to_owned();
        }
        if set.is_all() {
            return "✓".to_owned();
        }
        if set.is_empty() {
            return "·".to_owned();
        }
        let k = match legend.iter().position(|s| s == set) {
            Some(k) => k,
            None => {
                legend.push(set.clone());
                legend.len() - 1
            }
        };
        letter(k)
    };
    match only {
        Some((port, proto)) => writeln!(
            out,
            "connectivity on {port}/{proto} (rows: from, columns: to)"
        )?,
        None => writeln!(out, "connectivity on every port (rows: from, columns: to)")?,
    }
    write!(out, "{:>idx_w$} {:width$} ", "", "")?;
    for j in 0..names.len() {
        write!(out, " {:>idx_w$}", j + 1)?;
    }
    writeln!(out)?;
    for (i, name) in names.iter().enumerate() {
        write!(out, "{:>idx_w$} {name:width$} ", i + 1)?;
        for j in 0..names.len() {
            write!(out, " {:>idx_w$}", symbol(cells.get(i, j)))?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    if only.is_some() {
        writeln!(out, "✓ allowed   · denied")?;
    } else {
        writeln!(out, "✓ every port   · none")?;
        for (k, set) in legend.iter().enumerate() {
            writeln!(out, "{} {set}", letter(k))?;
        }
    }
    Ok(())
}

fn letter(k: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if k < 26 {
        (letters[k] as char).to_string()
    } else {
        format!("{}{}", letters[k / 26 - 1] as char, letters[k % 26] as char)
    }
}

fn csv(
    out: &mut impl Write,
    names: &[String],
    cells: &Cells,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    match only {
        Some(_) => writeln!(out, "from,to,port,protocol,allowed")?,
        None => writeln!(out, "from,to,allowed_ports")?,
    }
    for (i, from) in names.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            let set = cells.get(i, j);
            match only {
                Some((port, proto)) => {
                    writeln!(out, "{from},{to},{port},{proto},{}", allowed(set))?
                }
                None => writeln!(out, "{from},{to},{set}")?,
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(untagged)]
enum Pair<'a> {
    Port {
        from: &'a str,
        to: &'a str,
        port: u16,
        protocol: Protocol,
        allowed: bool,
    },
    Ports {
        from: &'a str,
        to: &'a str,
        allowed_ports: Vec<PortRange>,
    },
}

fn json_out(
    out: &mut impl Write,
    names: &[String],
    cells: &Cells,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    let mut pairs = Vec::with_capacity(names.len() * names.len());
    for (i, from) in names.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            let set = cells.get(i, j);
            pairs.push(match only {
                Some((port, protocol)) => Pair::Port {
                    from,
                    to,
                    port,
                    protocol,
                    allowed: allowed(set),
                },
                None => Pair::Ports {
                    from,
                    to,
                    allowed_ports: port_ranges(set),
                },
            });
        }
    }
    serde_json::to_writer_pretty(&mut *out, &pairs)?;
    writeln!(out)
}
