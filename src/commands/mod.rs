//! One file per subcommand.

mod agent;
mod ca;
mod compile;
mod diff;
mod expr;
mod graph;
mod lint;
mod matrix;
mod query;
mod rules;
mod verify;

use ambit_compiler::diag::Severity;
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::model::Cluster;
use ambit_compiler::table::Tables;

use crate::cli::{Cli, Command, InputArgs};
use crate::render;

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    Failure = 1,
    Error = 2,
}

pub fn run(cli: Cli) -> std::io::Result<Status> {
    match cli.command {
        Command::Compile(args) => compile::run(&args, cli.verbose),
        Command::Query(args) => query::run(&args, cli.verbose),
        Command::Matrix(args) => matrix::run(&args, cli.verbose),
        Command::Verify(args) => verify::run(&args, cli.verbose),
        Command::Graph(args) => graph::run(&args, cli.verbose),
        Command::Lint(args) => lint::run(&args, cli.verbose),
        Command::Rules(args) => rules::run(&args),
        Command::Diff(args) => diff::run(&args, cli.verbose),
        Command::Agent(args) => agent::run(&args, cli.verbose),
        Command::Ca(args) => ca::run(&args),
    }
}

/// Load and compile the inputs. Diagnostics are printed; any error stops the
/// command (exit 2) before it writes anything.
pub fn load(input: &InputArgs, json: bool, verbose: u8) -> Result<(Cluster, Tables), Status> {
    let options = LoadOptions {
        default_namespace: input.namespace.clone(),
    };
    let (cluster, _files, diags) = load_paths(&input.paths, &options);
    if !diags.is_empty() {
        render::diagnostics(&diags.0, json);
    }
    if verbose > 0 {
        for (kind, n) in &cluster.read {
            eprintln!("read {n} {kind}");
        }
        for (kind, n) in &cluster.skipped {
            match kind.strip_prefix('(') {
                Some(what) => eprintln!("skipped {n} documents ({}", what),
                None => eprintln!("skipped {n} {kind} (kind not read by ambit)"),
            }
        }
    }
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(Status::Error);
    }
    let options = compile_options(input);
    let tables = ambit_compiler::compile::compile_with(&cluster, &options);
    Ok((cluster, tables))
}

/// The compile options the input flags give.
pub fn compile_options(input: &InputArgs) -> ambit_compiler::compile::CompileOptions {
    ambit_compiler::compile::CompileOptions {
        mesh: ambit_compiler::authz::MeshSettings {
            root_namespace: input.root_namespace.clone(),
            trust_domain: input.trust_domain.clone(),
            trust_domain_aliases: (!input.trust_domain_aliases.is_empty())
                .then(|| input.trust_domain_aliases.clone()),
        },
    }
}

/// A port range of `allowed_ports` in JSON output.
#[derive(serde::Serialize)]
pub struct PortRange {
    pub protocol: ambit_compiler::model::Protocol,
    pub port: u16,
    #[serde(rename = "endPort")]
    pub end_port: u16,
}

/// A port set as the JSON list of its ranges.
pub fn port_ranges(set: &ambit_compiler::table::PortSet) -> Vec<PortRange> {
    ambit_compiler::model::Protocol::ALL
        .iter()
        .flat_map(|&protocol| {
            set.ranges[protocol.index()]
                .iter()
                .map(move |&(port, end_port)| PortRange {
                    protocol,
                    port,
                    end_port,
                })
        })
        .collect()
}
