//! `ambit lint PATHS`: loading diagnostics and the findings of every rule,
//! for people (miette), machines (JSON), code scanning (SARIF) and GitHub
//! Actions (workflow commands).
//!
//! Exit codes: 1 when a finding is at least as severe as `--fail-on`
//! (loading errors included), 2 for usage errors (a bad configuration, a
//! bad CIDR flag) and paths that cannot be read; machine formats print what
//! was found even then.

use std::io::Write;

use ambit_compiler::diag::{Code, Diagnostic, Severity};
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_lint::config::Config;
use ambit_lint::{LintOptions, lint};
use ipnet::IpNet;

use super::{Status, compile_options};
use crate::cli::{FailOn, LintArgs, LintFormat};
use crate::render;

pub fn run(args: &LintArgs, verbose: u8) -> std::io::Result<Status> {
    // Usage: the configuration and the CIDR flags.
    let mut usage = Vec::new();
    let config_path = args
        .config
        .clone()
        .or_else(|| args.input.paths.first().and_then(|p| Config::find(p)));
    let config = match &config_path {
        Some(p) => Config::load(p).unwrap_or_else(|ds| {
            usage.extend(ds);
            Config::default()
        }),
        None => Config::default(),
    };
    let mut cidrs = |flags: &[String], flag: &str| -> Vec<IpNet> {
        flags
            .iter()
            .filter_map(|s| match s.parse::<IpNet>() {
                Ok(n) => Some(n.trunc()),
                Err(_) => {
                    usage.push(
                        Diagnostic::new(Code::InvalidCidr, format!("{flag} `{s}` is not a CIDR"))
                            .with_help("write a network in CIDR notation, e.g. `10.244.0.0/16`"),
                    );
                    None
                }
            })
            .collect()
    };
    let pod_cidrs = cidrs(&args.pod_cidrs, "--pod-cidr");
    let service_cidrs = cidrs(&args.service_cidrs, "--service-cidr");
    if !usage.is_empty() {
        render::diagnostics(&usage, args.format == LintFormat::Json);
        return Ok(Status::Error);
    }

    let load = LoadOptions {
        default_namespace: args.input.namespace.clone(),
    };
    let (cluster, files, diags) = load_paths(&args.input.paths, &load);
    if verbose > 0 {
        if let Some(p) = &config_path {
            eprintln!("configuration: {}", p.display());
        }
        eprintln!(
            "read {} workloads, {} policies",
            cluster.workloads.len(),
            cluster.network_policies.len()
                + cluster.authorization_policies.len()
                + cluster.admin_policies.len()
        );
    }
    let unreadable = diags.iter().any(|d| d.code == Code::UnreadablePath);
    let compile = compile_options(&args.input);
    let tables = ambit_compiler::compile::compile_with(&cluster, &compile);
    let options = LintOptions {
        compile,
        default_namespace: args.input.namespace.clone(),
        pod_cidrs,
        service_cidrs,
    };
    let mut findings = diags.0;
    findings.extend(lint(&cluster, &tables, &files, &options));
    let mut findings = ambit_compiler::diag::Diagnostics(config.apply(findings));
    findings.sort();
    let findings = findings.0;

    let mut out = std::io::stdout().lock();
    match args.format {
        LintFormat::Human => {
            write!(
                out,
                "{}",
                render::human(&findings, render::colour(&std::io::stdout()))
            )?;
            writeln!(out, "{}", summary(&findings))?;
        }
        LintFormat::Json => writeln!(out, "{}", render::json_list(&findings))?,
        LintFormat::Sarif => writeln!(out, "{}", ambit_lint::sarif::to_string(&findings))?,
        LintFormat::Github => {
            for d in &findings {
                writeln!(out, "{}", github(d))?;
            }
        }
    }
    out.flush()?;
    let threshold = match args.fail_on {
        FailOn::Info => Severity::Info,
        FailOn::Warning => Severity::Warning,
        FailOn::Error => Severity::Error,
    };
    Ok(if unreadable {
        Status::Error
    } else if findings.iter().any(|d| d.severity >= threshold) {
        Status::Failure
    } else {
        Status::Success
    })
}

/// `3 findings: 1 error, 2 warnings`.
fn summary(findings: &[Diagnostic]) -> String {
    if findings.is_empty() {
        return "no findings".to_owned();
    }
    let count = |s: Severity| findings.iter().filter(|d| d.severity == s).count();
    let parts: Vec<String> = [
        (Severity::Error, "error"),
        (Severity::Warning, "warning"),
        (Severity::Info, "info"),
    ]
    .iter()
    .filter(|(s, _)| count(*s) > 0)
    .map(|(s, word)| {
        let n = count(*s);
        if n == 1 || *word == "info" {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    })
    .collect();
    format!(
        "{} finding{}: {}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// A GitHub Actions workflow command: `::warning file=…,line=…,col=…,title=…::…`.
fn github(d: &Diagnostic) -> String {
    let command = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "notice",
    };
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut props = Vec::new();
    if let (Some(loc), Some((line, col))) = (&d.location, d.line_col()) {
        props.push(format!(
            "file={}",
            property(loc.file.name().trim_start_matches("./"))
        ));
        props.push(format!("line={line}"));
        props.push(format!("col={col}"));
    }
    props.push(format!(
        "title={}",
        property(&format!("{} {}", d.code.as_str(), d.code.name()))
    ));
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str(&format!("\n{help}"));
    }
    format!("::{command} {}::{}", props.join(","), data(&message))
}
