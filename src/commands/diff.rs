//! `ambit diff BASE HEAD` and `ambit diff --git A..B PATHS`: the flows a
//! change opens and closes, for people (grouped), machines (JSON) and pull
//! requests (Markdown).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use ambit_compiler::compile::{CompileOptions, compile_with};
use ambit_compiler::diag::{Code, Diagnostic, Diagnostics, Severity};
use ambit_compiler::load::{LoadOptions, load, read_git_inputs, read_inputs};
use ambit_compiler::probe::DecidedBy;
use ambit_verifier::diff::{Change, Diff, Version, diff};
use serde::Serialize;

use super::{PortRange, Status, port_ranges};
use crate::cli::{DiffArgs, DiffFailOn, DiffFormat};
use crate::render;

pub fn run(args: &DiffArgs, _verbose: u8) -> std::io::Result<Status> {
    let json = args.format == DiffFormat::Json;
    let mut diags = Diagnostics::default();
    let (base_files, head_files, labels) = match &args.git {
        Some(revs) => {
            let (a, b) = match revs.split_once("..") {
                Some((a, b)) => (a, Some(b).filter(|b| !b.is_empty())),
                None => (revs.as_str(), None),
            };
            let a = if a.is_empty() { "HEAD" } else { a };
            let base = read_git_inputs(a, &args.paths, &mut diags);
            let (head, head_label) = match b {
                Some(b) => (read_git_inputs(b, &args.paths, &mut diags), b.to_owned()),
                None => (
                    read_inputs(&args.paths, &mut diags),
                    "the working tree".to_owned(),
                ),
            };
            (base, head, (a.to_owned(), head_label))
        }
        None => {
            let [base, head] = args.paths.as_slice() else {
                render::diagnostics(
                    &[Diagnostic::new(
                        Code::UnreadablePath,
                        format!("diff takes BASE and HEAD, got {} paths", args.paths.len()),
                    )
                    .with_help("give two files or directories, or `--git REV..REV PATHS`")],
                    json,
                );
                return Ok(Status::Error);
            };
            let read =
                |p: &PathBuf, diags: &mut Diagnostics| read_inputs(std::slice::from_ref(p), diags);
            (
                read(base, &mut diags),
                read(head, &mut diags),
                (base.display().to_string(), head.display().to_string()),
            )
        }
    };
    let options = LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let base = load(&base_files, &options, &mut diags);
    let head = load(&head_files, &options, &mut diags);
    diags.sort();
    if !diags.is_empty() {
        render::diagnostics(&diags.0, json);
    }
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Ok(Status::Error);
    }
    let compile = CompileOptions::default();
    let (base_tables, head_tables) = (compile_with(&base, &compile), compile_with(&head, &compile));
    let d = match diff(
        Version {
            cluster: &base,
            tables: &base_tables,
        },
        Version {
            cluster: &head,
            tables: &head_tables,
        },
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ambit diff: {e}");
            return Ok(Status::Error);
        }
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        DiffFormat::Human => human(&mut out, &d, &labels)?,
        DiffFormat::Json => {
            let body = DiffJson {
                opened: d.opened.iter().map(entry).collect(),
                closed: d.closed.iter().map(entry).collect(),
                equivalent: d.equivalent(),
                added_workloads: &d.added_workloads,
                removed_workloads: &d.removed_workloads,
            };
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&body).expect("the diff serializes")
            )?;
        }
        DiffFormat::Markdown => markdown(&mut out, &d, &labels)?,
    }
    out.flush()?;
    let fails = match args.fail_on {
        None => false,
        Some(DiffFailOn::Opened) => !d.opened.is_empty(),
        Some(DiffFailOn::Closed) => !d.closed.is_empty(),
        Some(DiffFailOn::Any) => !d.equivalent(),
    };
    Ok(if fails {
        Status::Failure
    } else {
        Status::Success
    })
}

#[derive(Serialize)]
struct DiffJson<'a> {
    opened: Vec<EntryJson<'a>>,
    closed: Vec<EntryJson<'a>>,
    equivalent: bool,
    added_workloads: &'a [String],
    removed_workloads: &'a [String],
}

#[derive(Serialize)]
struct EntryJson<'a> {
    from: &'a str,
    to: &'a str,
    ports: Vec<PortRange>,
    witness: &'a ambit_verifier::diff::Witness,
}

fn entry(c: &Change) -> EntryJson<'_> {
    EntryJson {
        from: &c.from,
        to: &c.to,
        ports: port_ranges(&c.ports),
        witness: &c.witness,
    }
}

/// The namespace of an end (`outside` for addresses).
fn namespace(end: &str) -> &str {
    if end.starts_with("ip:") {
        "outside"
    } else {
        end.split_once('/').map_or(end, |(ns, _)| ns)
    }
}

/// Changes by destination and ports (as text).
type ByDestination<'a> = BTreeMap<(&'a str, String), Vec<&'a Change>>;

/// Changes grouped by namespace pair, then by destination and ports.
fn groups(changes: &[Change]) -> BTreeMap<(&str, &str), ByDestination<'_>> {
    let mut out: BTreeMap<(&str, &str), ByDestination<'_>> = BTreeMap::new();
    for c in changes {
        out.entry((namespace(&c.from), namespace(&c.to)))
            .or_default()
            .entry((c.to.as_str(), c.ports.to_string()))
            .or_default()
            .push(c);
    }
    out
}

fn decided(list: &[DecidedBy]) -> String {
    if list.is_empty() {
        return "no policy decides (default allow)".to_owned();
    }
    list.iter()
        .map(|d| {
            let name = if d.namespace.is_empty() {
                d.name.clone()
            } else {
                format!("{}/{}", d.namespace, d.name)
            };
            let rule = if d.rule.is_empty() {
                String::new()
            } else {
                format!(" {}", d.rule)
            };
            format!("{} {name}{rule}: {}", d.kind, d.effect)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn witness(c: &Change) -> String {
    let w = &c.witness;
    format!("{} -> {} {}/{}", w.from, w.to, w.port, w.protocol)
}

fn count(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn human(out: &mut impl Write, d: &Diff, (base, head): &(String, String)) -> std::io::Result<()> {
    writeln!(out, "BASE {base} → HEAD {head}")?;
    if d.equivalent() {
        writeln!(
            out,
            "equivalent: no flow between the {} workloads on both sides, or between them and outside addresses, changes (proved with Z3)",
            d.common
        )?;
    }
    for (title, changes) in [("opened", &d.opened), ("closed", &d.closed)] {
        if changes.is_empty() {
            if !d.equivalent() {
                writeln!(out, "{title}: none")?;
            }
            continue;
        }
        writeln!(out, "{title}: {}", count(changes.len(), "flow set"))?;
        for ((from_ns, to_ns), by_dst) in groups(changes) {
            writeln!(out, "  {from_ns} → {to_ns}")?;
            for ((to, ports), list) in by_dst {
                let froms: Vec<&str> = list.iter().map(|c| c.from.as_str()).collect();
                writeln!(out, "    {} → {to}: {ports}", froms.join(", "))?;
                let c = list[0];
                writeln!(out, "      e.g. {}", witness(c))?;
                writeln!(out, "        BASE: {}", decided(&c.base))?;
                writeln!(out, "        HEAD: {}", decided(&c.head))?;
            }
        }
    }
    for (title, list) in [
        ("added workloads", &d.added_workloads),
        ("removed workloads", &d.removed_workloads),
    ] {
        if !list.is_empty() {
            writeln!(
                out,
                "{title} (their flows are not counted as opened or closed): {}",
                list.join(", ")
            )?;
        }
    }
    Ok(())
}

fn markdown(
    out: &mut impl Write,
    d: &Diff,
    (base, head): &(String, String),
) -> std::io::Result<()> {
    if d.equivalent() {
        write!(
            out,
            "**ambit diff** `{base}` → `{head}`: **equivalent** — no flow between the {} workloads on both sides changes (proved with Z3).",
            d.common
        )?;
    } else {
        write!(
            out,
            "**ambit diff** `{base}` → `{head}`: {} opened, {} closed.",
            count(d.opened.len(), "flow set"),
            count(d.closed.len(), "flow set")
        )?;
    }
    for (title, list) in [
        ("added", &d.added_workloads),
        ("removed", &d.removed_workloads),
    ] {
        if !list.is_empty() {
            write!(out, " {} {title}.", count(list.len(), "workload"))?;
        }
    }
    writeln!(out)?;
    for (title, changes) in [("Opened", &d.opened), ("Closed", &d.closed)] {
        if changes.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "### {title}")?;
        writeln!(out)?;
        writeln!(out, "| from | to | ports | witness | BASE | HEAD |")?;
        writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
        for c in changes {
            let cell = |s: String| s.replace('|', "\\|");
            writeln!(
                out,
                "| `{}` | `{}` | {} | `{}` | {} | {} |",
                c.from,
                c.to,
                c.ports,
                witness(c),
                cell(decided(&c.base)),
                cell(decided(&c.head))
            )?;
        }
    }
    for (title, list) in [
        ("Added workloads", &d.added_workloads),
        ("Removed workloads", &d.removed_workloads),
    ] {
        if !list.is_empty() {
            writeln!(out)?;
            writeln!(out, "### {title}")?;
            writeln!(out)?;
            for w in list {
                writeln!(out, "- `{w}`")?;
            }
        }
    }
    Ok(())
}
