//! `ambit matrix PATHS [--port N --protocol P] -o table|json|csv`

use std::io::Write;
use std::ops::Range;

use rayon::iter::{IntoParallelIterator, ParallelIterator};

use ambit_compiler::matrix::Matrix;
use ambit_compiler::model::Protocol;
use ambit_compiler::table::PortSet;
#[cfg(test)]
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
    let only = args.port.map(|p| (p, protocol));
    let cells = Matrix::compute(&tables, only);
    if verbose > 0 {
        eprintln!(
            "matrix: {} workloads, {} classes, {} distinct port sets, {} pairs of classes evaluated port by port",
            names.len(),
            tables.classes.len(),
            cells.sets().len(),
            cells.evaluated
        );
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    match args.format {
        MatrixFormat::Table => table(&mut out, &names, &cells, only)?,
        MatrixFormat::Csv => csv(&mut out, &names, &cells, only)?,
        MatrixFormat::Json => json_out(&mut out, &names, &cells, only)?,
    }
    out.flush()?;
    Ok(Status::Success)
}

fn allowed(set: &PortSet) -> bool {
    !set.is_empty()
}

fn table(
    out: &mut impl Write,
    names: &[String],
    cells: &Matrix,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let idx_w = names.len().to_string().len().max(2);
    // Without --port, distinct partial port sets get letters in a legend.
    // Letters in order of first appearance.
    let mut letters: Vec<Option<usize>> = vec![None; cells.sets().len()];
    let mut legend: Vec<&PortSet> = Vec::new();
    let mut symbol = |k: u32| -> String {
        let set = &cells.sets()[k as usize];
        if only.is_some() {
            return if allowed(set) { "✓" } else { "·" }.to_owned();
        }
        if set.is_all() {
            return "✓".to_owned();
        }
        if set.is_empty() {
            return "·".to_owned();
        }
        let l = *letters[k as usize].get_or_insert_with(|| {
            legend.push(set);
            legend.len() - 1
        });
        letter(l)
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
            write!(out, " {:>idx_w$}", symbol(cells.index(i, j)))?;
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
    cells: &Matrix,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    match only {
        Some(_) => writeln!(out, "from,to,port,protocol,allowed")?,
        None => writeln!(out, "from,to,allowed_ports")?,
    }
    // Each cell's text once: `,PORTS\n` or `,PORT,PROTOCOL,BOOL\n`.
    let tails: Vec<Vec<u8>> = cells
        .sets()
        .iter()
        .map(|set| match only {
            Some((port, proto)) => format!(",{port},{proto},{}\n", allowed(set)).into_bytes(),
            None => format!(",{set}\n").into_bytes(),
        })
        .collect();
    let from: Vec<String> = names.iter().map(|n| format!("{n},")).collect();
    write_pairs(out, names.len(), |i, to, buf| {
        let (row, from) = (cells.row(i), from[i].as_bytes());
        for j in to {
            buf.extend_from_slice(from);
            buf.extend_from_slice(names[j].as_bytes());
            buf.extend_from_slice(&tails[row.index(j) as usize]);
        }
    })
}

/// Writes the pairs `(i, j)` of `0..n`, row by row, assembled by `pairs(i, js,
/// buf)` a run of columns `js` of row `i` at a time. A matrix of 10^8 pairs is
/// mostly the copying of its pieces: the pairs are assembled on every core, in
/// pieces of a part of a row a window at a time, on a thread of their own,
/// while this thread writes the window before. The written buffers go back to
/// be filled again, so that a piece is assembled in memory the cache still
/// holds. A small matrix is assembled on this thread alone.
fn write_pairs<W: Write>(
    out: &mut W,
    n: usize,
    pairs: impl Fn(usize, Range<usize>, &mut Vec<u8>) + Sync,
) -> std::io::Result<()> {
    // Below this many pairs the second thread costs more CPU than it saves.
    const PARALLEL: usize = 1 << 24;
    let parallel = n * n >= PARALLEL && rayon::current_num_threads() > 1;
    write_pairs_in(out, n, 1024, parallel, pairs)
}

/// `write_pairs` with pieces of `columns` pairs, on every core or not.
fn write_pairs_in<W: Write>(
    out: &mut W,
    n: usize,
    columns: usize,
    parallel: bool,
    pairs: impl Fn(usize, Range<usize>, &mut Vec<u8>) + Sync,
) -> std::io::Result<()> {
    if !parallel {
        let mut buf = Vec::new();
        for i in 0..n {
            pairs(i, 0..n, &mut buf);
            if buf.len() >= 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        return out.write_all(&buf);
    }
    let per_row = n.div_ceil(columns);
    let pieces = n * per_row;
    let window = 8 * rayon::current_num_threads();
    // One window waiting beside the one being written bounds the memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(1);
    let free: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::default();
    std::thread::scope(|scope| {
        let (pairs, free) = (&pairs, &free);
        scope.spawn(move || {
            for start in (0..pieces).step_by(window) {
                let filled = (start..pieces.min(start + window))
                    .into_par_iter()
                    .map(|piece| {
                        let mut buf = free.lock().expect("not poisoned").pop().unwrap_or_default();
                        let (i, first) = (piece / per_row, piece % per_row * columns);
                        pairs(i, first..n.min(first + columns), &mut buf);
                        buf
                    })
                    .collect();
                // The writer hung up: it met an error and returns it.
                if tx.send(filled).is_err() {
                    return;
                }
            }
        });
        for filled in rx {
            for mut buf in filled {
                out.write_all(&buf)?;
                buf.clear();
                free.lock().expect("not poisoned").push(buf);
            }
        }
        Ok(())
    })
}

/// One pair as the JSON output reads (the reference `json_out` is tested
/// against).
#[cfg(test)]
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
        allowed_ports: &'a [PortRange],
    },
}

/// The pair at `(i, j)` as serde sees it.
#[cfg(test)]
fn pair<'a>(
    names: &'a [String],
    cells: &Matrix,
    ranges: &'a [Vec<PortRange>],
    only: Option<(u16, Protocol)>,
    (i, j): (usize, usize),
) -> Pair<'a> {
    let (from, to) = (names[i].as_str(), names[j].as_str());
    let cell = cells.index(i, j) as usize;
    match only {
        Some((port, protocol)) => Pair::Port {
            from,
            to,
            port,
            protocol,
            allowed: allowed(&cells.sets()[cell]),
        },
        None => Pair::Ports {
            from,
            to,
            allowed_ports: &ranges[cell],
        },
    }
}

/// A JSON array of every ordered pair, printed as `serde_json`'s pretty
/// printer prints `Pair`s. A matrix has pods² pairs but few distinct cells:
/// each name and each cell is serialized once, and the pairs are assembled
/// from those pieces.
fn json_out(
    out: &mut impl Write,
    names: &[String],
    cells: &Matrix,
    only: Option<(u16, Protocol)>,
) -> std::io::Result<()> {
    let ranges: Vec<Vec<PortRange>> = cells.sets().iter().map(port_ranges).collect();
    let quoted: Vec<String> = names.iter().map(|n| json_string(n)).collect();
    // The fields after `to`, at the indentation of an array item's fields.
    let tails: Vec<Vec<u8>> = (0..cells.sets().len())
        .map(|cell| {
            let body = match only {
                Some((port, protocol)) => format!(
                    "    \"port\": {port},\n    \"protocol\": {},\n    \"allowed\": {}\n",
                    json_string(&protocol.to_string()),
                    allowed(&cells.sets()[cell])
                ),
                None => {
                    let list = serde_json::to_string_pretty(&ranges[cell])
                        .map_err(std::io::Error::other)?;
                    format!("    \"allowed_ports\": {}\n", list.replace('\n', "\n    "))
                }
            };
            Ok(format!(",\n{body}  }}").into_bytes())
        })
        .collect::<std::io::Result<_>>()?;
    let n = names.len();
    if n == 0 {
        return writeln!(out, "[]");
    }
    let from: Vec<String> = quoted
        .iter()
        .map(|from| format!("    \"from\": {from},\n    \"to\": "))
        .collect();
    write_pairs(out, n, |i, to, buf| {
        let (row, from) = (cells.row(i), from[i].as_bytes());
        for j in to {
            let open: &[u8] = if i == 0 && j == 0 {
                b"[\n  {\n"
            } else {
                b",\n  {\n"
            };
            buf.extend_from_slice(open);
            buf.extend_from_slice(from);
            buf.extend_from_slice(quoted[j].as_bytes());
            buf.extend_from_slice(&tails[row.index(j) as usize]);
        }
    })?;
    out.write_all(b"\n]\n")
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of any width, on one thread or every core, write the pairs
    /// in row order.
    #[test]
    fn pairs_are_written_in_order() {
        let pairs = |i: usize, to: Range<usize>, buf: &mut Vec<u8>| {
            for j in to {
                buf.extend_from_slice(format!("{i},{j}\n").as_bytes());
            }
        };
        for n in [0, 1, 5, 37, 300] {
            let mut expected = Vec::new();
            for i in 0..n {
                for j in 0..n {
                    expected.extend_from_slice(format!("{i},{j}\n").as_bytes());
                }
            }
            for columns in [1, 8, 1024] {
                for parallel in [false, true] {
                    let mut out = Vec::new();
                    write_pairs_in(&mut out, n, columns, parallel, pairs).unwrap();
                    assert!(
                        out == expected,
                        "n {n}, columns {columns}, parallel {parallel}"
                    );
                }
            }
        }
    }

    /// A writer that fails stops the assembly and its error is returned.
    #[test]
    fn a_failed_write_is_returned() {
        struct Broken(usize);
        impl Write for Broken {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                self.0 -= 1;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for parallel in [false, true] {
            let err = write_pairs_in(&mut Broken(3), 2000, 16, parallel, |i, to, buf| {
                for j in to {
                    buf.extend_from_slice(format!("{i},{j}\n").as_bytes());
                }
            })
            .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
        }
    }

    /// The assembled JSON is byte for byte what serde_json prints for the
    /// same pairs.
    #[test]
    fn assembled_json_is_serde_jsons() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/demo");
        let (cluster, _, _) =
            ambit_compiler::load::load_paths(&[dir], &ambit_compiler::load::LoadOptions::default());
        let tables = ambit_compiler::compile::compile(&cluster);
        let names: Vec<String> = tables
            .workloads
            .iter()
            .map(|w| format!("{}/{}\"\\", w.namespace, w.name))
            .collect();
        assert!(names.len() > 3);
        for only in [None, Some((5432, Protocol::Tcp)), Some((53, Protocol::Udp))] {
            let cells = Matrix::compute(&tables, only);
            let ranges: Vec<Vec<PortRange>> = cells.sets().iter().map(port_ranges).collect();
            let n = names.len();
            let pairs: Vec<Pair> = (0..n * n)
                .map(|k| pair(&names, &cells, &ranges, only, (k / n, k % n)))
                .collect();
            let mut want = serde_json::to_string_pretty(&pairs).unwrap();
            want.push('\n');
            let mut got = Vec::new();
            json_out(&mut got, &names, &cells, only).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want, "{only:?}");
        }
        let mut empty = Vec::new();
        let cells = Matrix::compute(&tables, None);
        json_out(&mut empty, &[], &cells, None).unwrap();
        assert_eq!(empty, b"[]\n");
    }
}
