//! `ambit verify PATHS --assert FILE`: prove reachability invariants, or
//! show a flow that breaks them.

use std::io::Write;

use ambit_compiler::assertion::{self, Assertion};
use ambit_compiler::diag::{Code, Diagnostic};
use ambit_compiler::probe::DecidedBy;
use ambit_compiler::source::SourceFile;
use ambit_verifier::verify::{Finding, VerifyError, show_labels, verify};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::{Format, VerifyArgs};
use crate::commands::{Status, compile_options, load};
use crate::render;

/// One assertion's line of `-o json`: the contract's fields, and `error`
/// when the solver could not decide.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: &VerifyArgs, verbose: u8) -> std::io::Result<Status> {
    let json = args.format == Format::Json;
    let (cluster, tables) = match load(&args.input, json, verbose) {
        Ok(t) => t,
        Err(status) => return Ok(status),
    };
    let assertions = match read(args, &cluster) {
        Ok(a) => a,
        Err(diags) => {
            render::diagnostics(&diags, json);
            return Ok(Status::Error);
        }
    };
    let options = compile_options(&args.input);
    // The assertions on every core (each has its own solver context), the
    // findings in the file's order.
    let results: Vec<_> = assertions
        .par_iter()
        .map(|a| {
            let started = std::time::Instant::now();
            let result = verify(&cluster, &tables, &options, a);
            (result, started.elapsed())
        })
        .collect();
    let mut rows = Vec::new();
    for (a, (result, took)) in assertions.iter().zip(results) {
        if verbose > 0 {
            eprintln!(
                "verified `{}` in {:.0} ms",
                a.name,
                took.as_secs_f64() * 1000.0
            );
        }
        let (finding, error) = match result {
            Ok(f) => (f, None),
            Err(e) => (
                Finding {
                    name: a.name.clone(),
                    holds: false,
                    counterexample: None,
                },
                Some(e),
            ),
        };
        rows.push((a, finding, error));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<Row> = rows
            .iter()
            .map(|(_, finding, error)| Row {
                finding,
                error: error.as_ref().map(VerifyError::to_string),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        for (a, finding, error) in &rows {
            human(&mut out, a, finding, error.as_ref())?;
        }
        let violated = rows.iter().filter(|(_, f, _)| !f.holds).count();
        writeln!(
            out,
            "{} assertions: {} hold, {violated} violated",
            rows.len(),
            rows.len() - violated
        )?;
    }
    Ok(if rows.iter().all(|(_, f, _)| f.holds) {
        Status::Success
    } else {
        Status::Failure
    })
}

fn read(
    args: &VerifyArgs,
    cluster: &ambit_compiler::model::Cluster,
) -> Result<Vec<Assertion>, Vec<Diagnostic>> {
    let path = &args.assertions;
    let bytes = std::fs::read(path).map_err(|e| {
        vec![
            Diagnostic::new(
                Code::UnreadablePath,
                format!("cannot read `{}`: {e}", path.display()),
            )
            .with_help("give the path of a YAML file with an `assertions` list"),
        ]
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        vec![
            Diagnostic::new(
                Code::InvalidAssertion,
                format!("`{}` is not UTF-8 text", path.display()),
            )
            .with_help("an assertions file is YAML"),
        ]
    })?;
    let file = SourceFile::new(path.display().to_string(), text);
    assertion::read_assertions(&file, cluster)
}

fn human(
    out: &mut impl Write,
    a: &Assertion,
    finding: &Finding,
    error: Option<&VerifyError>,
) -> std::io::Result<()> {
    if let Some(e) = error {
        return writeln!(out, "{}: undecided ({e})", a.name);
    }
    let Some(c) = &finding.counterexample else {
        return writeln!(out, "{}: holds", a.name);
    };
    writeln!(out, "{}: violated (expect {})", a.name, a.expect.as_str())?;
    let verdict = match a.expect {
        assertion::Expect::Allow => "denied",
        _ => "allowed",
    };
    writeln!(
        out,
        "  counterexample: {} -> {} {}/{} is {verdict}",
        c.from, c.to, c.port, c.protocol
    )?;
    for (side, labels) in [("from", &c.from_labels), ("to", &c.to_labels)] {
        if let Some(l) = labels {
            writeln!(out, "    {side} labels: {}", show_labels(l))?;
        }
    }
    for d in &c.details {
        writeln!(out, "    {d}")?;
    }
    if c.decided_by.is_empty() {
        writeln!(
            out,
            "    no policy or admin rule decides either side: allowed by default"
        )?;
    }
    for d in &c.decided_by {
        writeln!(out, "    decided by {}", decided(d))?;
    }
    Ok(())
}

fn decided(d: &DecidedBy) -> String {
    let name = if d.namespace.is_empty() {
        d.name.clone()
    } else {
        format!("{}/{}", d.namespace, d.name)
    };
    let tier = match (&d.tier, d.priority) {
        (Some(t), Some(p)) => format!("{t} tier, priority {p}: "),
        (Some(t), None) => format!("{t} tier: "),
        _ => String::new(),
    };
    let rule = if d.rule.is_empty() {
        String::new()
    } else {
        format!(" {}", d.rule)
    };
    format!("{tier}{} {name}{rule}: {}", d.kind, d.effect)
}
