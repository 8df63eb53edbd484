//! `ambit query PATHS --from A --to B --port N [--protocol P]` and
//! `ambit query PATHS --probes FILE`.

use std::io::Write;

use ambit_compiler::diag::{Code, Diagnostic};
use ambit_compiler::probe::{self, Answer, HttpSpec, Probe, ProbeSpec};
use ambit_compiler::source::SourceFile;
use ambit_compiler::table::{Tables, Verdict};

use crate::cli::{Format, QueryArgs};
use crate::commands::{Status, expr, load};
use crate::render;

pub fn run(args: &QueryArgs, verbose: u8) -> std::io::Result<Status> {
    let json = args.format == Format::Json;
    // Without --from or --probes, the last positional argument is a query
    // expression.
    let mut input = args.input.clone();
    let expression = if args.from.is_none() && args.probes.is_none() {
        if input.paths.len() < 2 {
            eprintln!(
                "ambit: give a query after the paths, e.g. `ambit query testdata/demo 'shop/api -> data/postgres:5432'`, or --from/--to/--port, or --probes FILE"
            );
            return Ok(Status::Error);
        }
        let text = input
            .paths
            .pop()
            .expect("two or more")
            .to_string_lossy()
            .into_owned();
        match ambit_compiler::query::parse(&text) {
            Ok(q) => Some((text, q)),
            Err(d) => {
                render::diagnostics(&[d], json);
                return Ok(Status::Error);
            }
        }
    } else {
        // clap requires --to and --port with --from.
        None
    };
    let (_cluster, tables) = match load(&input, json, verbose) {
        Ok(t) => t,
        Err(status) => return Ok(status),
    };
    if let Some((text, q)) = expression {
        let sides = match expr::resolve(&text, &q, &tables) {
            Ok(s) => s,
            Err(d) => {
                render::diagnostics(&[d], json);
                return Ok(Status::Error);
            }
        };
        let mut out = std::io::stdout().lock();
        if !q.is_single() {
            return expr::run_set(&mut out, &text, &q, &tables, &sides, json);
        }
        let spec = expr::probe_spec(&tables, &q, sides[0][0], sides[1][0]);
        let probe = match probe::resolve(&spec, &tables, |_| None) {
            Ok(p) => p,
            Err(d) => {
                render::diagnostics(&[d], json);
                return Ok(Status::Error);
            }
        };
        let a = probe::answer(&tables, &probe);
        if json {
            serde_json::to_writer_pretty(&mut out, &[&a])?;
            writeln!(out)?;
        } else {
            human(&mut out, &tables, &a)?;
        }
        return Ok(if a.allowed {
            Status::Success
        } else {
            Status::Failure
        });
    }
    let probes = match probes(args, &tables) {
        Ok(p) => p,
        Err(diags) => {
            render::diagnostics(&diags, json);
            return Ok(Status::Error);
        }
    };
    let answers: Vec<Answer> = probes.iter().map(|p| probe::answer(&tables, p)).collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &answers)?;
        writeln!(out)?;
    } else {
        for a in &answers {
            human(&mut out, &tables, a)?;
        }
    }
    Ok(if answers.iter().all(|a| a.allowed) {
        Status::Success
    } else {
        Status::Failure
    })
}

fn probes(args: &QueryArgs, tables: &Tables) -> Result<Vec<Probe>, Vec<Diagnostic>> {
    if let Some(path) = &args.probes {
        let bytes = std::fs::read(path).map_err(|e| {
            vec![
                Diagnostic::new(
                    Code::UnreadablePath,
                    format!("cannot read `{}`: {e}", path.display()),
                )
                .with_help("give the path of a YAML or JSON list of probes"),
            ]
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            vec![
                Diagnostic::new(
                    Code::InvalidProbe,
                    format!("`{}` is not UTF-8 text", path.display()),
                )
                .with_help("a probe file is YAML or JSON"),
            ]
        })?;
        let file = SourceFile::new(path.display().to_string(), text);
        return probe::read_probe_file(&file, tables);
    }
    let spec = ProbeSpec {
        from: args.from.clone().unwrap_or_default(),
        to: args.to.clone().unwrap_or_default(),
        port: args.port.unwrap_or_default(),
        protocol: args.protocol.clone(),
        http: http(args)?,
        ext_authz: args.ext_authz.clone(),
    };
    probe::resolve(&spec, tables, |_| None)
        .map(|p| vec![p])
        .map_err(|d| vec![d])
}

/// The `--method/--path/--host/--header` request, if any flag is given.
fn http(args: &QueryArgs) -> Result<Option<HttpSpec>, Vec<Diagnostic>> {
    if args.method.is_none()
        && args.path.is_none()
        && args.host.is_none()
        && args.headers.is_empty()
    {
        return Ok(None);
    }
    let mut headers = std::collections::BTreeMap::new();
    for h in &args.headers {
        let Some((k, v)) = h.split_once(':') else {
            return Err(vec![
                Diagnostic::new(
                    Code::InvalidProbe,
                    format!("header `{h}` is not `NAME:VALUE`"),
                )
                .with_help("write `--header x-tenant:acme`"),
            ]);
        };
        headers.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(Some(HttpSpec {
        method: args.method.clone(),
        path: args.path.clone(),
        host: args.host.clone(),
        headers,
    }))
}

/// The decision, then why.
fn human(out: &mut impl Write, tables: &Tables, a: &Answer) -> std::io::Result<()> {
    let verdict = if a.allowed { "allowed" } else { "denied" };
    writeln!(
        out,
        "{} -> {} {}/{}: {verdict}",
        a.from, a.to, a.port, a.protocol
    )?;
    let e = &a.explanation;
    if e.self_traffic {
        return writeln!(out, "  a pod reaching itself is always allowed");
    }
    let mut reasons = Vec::new();
    let tier_rule = |r: u32| {
        let rule = &tables.rules[r as usize];
        let p = &tables.policies[rule.policy as usize];
        let tier = p.tier.map(|t| t.as_str()).unwrap_or_default();
        let priority = p
            .priority
            .map(|n| format!(" (priority {n})"))
            .unwrap_or_default();
        let entry = a
            .decided_by
            .iter()
            .find(|d| d.kind == p.kind && d.name == p.name && d.rule == rule.label());
        let effect = entry.map(|d| d.effect.as_str()).unwrap_or_default();
        format!(
            "{tier} {} {}{priority} {}: {effect}",
            p.kind,
            p.name,
            rule.label()
        )
    };
    for (side, who, verdict, trail) in [
        ("egress", &a.from, &e.egress, &e.egress_trail),
        ("ingress", &a.to, &e.ingress, &e.ingress_trail),
    ] {
        let mut steps: Vec<String> = trail.iter().map(|&r| tier_rule(r)).collect();
        let why = match verdict {
            Verdict::NotApplicable => continue,
            Verdict::NotIsolated if steps.is_empty() => "no policy isolates it".to_owned(),
            Verdict::NotIsolated => "no later tier decides: default allow".to_owned(),
            Verdict::Rule { rule, .. } => tier_rule(*rule),
            Verdict::Allowed(rules) => {
                let names: Vec<String> = rules
                    .iter()
                    .map(|&r| {
                        let rule = &tables.rules[r as usize];
                        let p = &tables.policies[rule.policy as usize];
                        format!(
                            "{} {}/{} {side}[{}]",
                            p.kind, p.namespace, p.name, rule.index
                        )
                    })
                    .collect();
                format!("allowed by {}", list(&names))
            }
            Verdict::Denied(policies) => {
                let names: Vec<String> = policies
                    .iter()
                    .map(|&p| {
                        let p = &tables.policies[p as usize];
                        format!("{} {}/{}", p.kind, p.namespace, p.name)
                    })
                    .collect();
                format!("isolated by {}, and no rule admits this flow", list(&names))
            }
        };
        steps.push(why);
        reasons.push(format!("{side} of {who}: {}", steps.join(", then ")));
    }
    if !reasons.is_empty() {
        writeln!(out, "  {}", reasons.join("; "))?;
    }
    for d in a
        .decided_by
        .iter()
        .filter(|d| d.kind != "NetworkPolicy" && d.tier.is_none())
    {
        let rule = if d.rule.is_empty() {
            String::new()
        } else {
            format!(" {}", d.rule)
        };
        writeln!(
            out,
            "  {} {}/{}{rule}: {}",
            d.kind, d.namespace, d.name, d.effect
        )?;
    }
    if a.l4_allowed != a.allowed {
        let l4 = if a.l4_allowed { "allowed" } else { "denied" };
        writeln!(
            out,
            "  an L4-only enforcer (ztunnel) decides differently: {l4}"
        )?;
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    match items.len() {
        0..=3 => items.join(", "),
        n => format!("{} and {} more", items[..3].join(", "), n - 3),
    }
}
