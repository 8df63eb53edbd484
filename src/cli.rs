//! Command-line arguments (clap). Kept apart from the commands, which turn
//! them into library options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ambit",
    version,
    about = "Network policy compiler and verifier for Kubernetes and Istio"
)]
pub struct Cli {
    /// Say more (objects skipped by kind, table statistics).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile policies into decision tables.
    Compile(CompileArgs),
    /// Ask whether flows are allowed, and which rules decide.
    Query(QueryArgs),
    /// Print all-pairs connectivity.
    Matrix(MatrixArgs),
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Files, directories (searched for *.yaml, *.yml) or `-` for stdin.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default", value_name = "NS")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the tables: a file, or `json` / `-` for stdout.
    #[arg(
        short = 'o',
        long = "output",
        default_value = "json",
        value_name = "FILE|json"
    )]
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Source: `namespace/name` of a workload or `ip:ADDRESS`.
    #[arg(long, required_unless_present = "probes", conflicts_with = "probes")]
    pub from: Option<String>,
    /// Destination: `namespace/name` of a workload or `ip:ADDRESS`.
    #[arg(long, required_unless_present = "probes", conflicts_with = "probes")]
    pub to: Option<String>,
    /// Destination port.
    #[arg(long, required_unless_present = "probes", conflicts_with = "probes")]
    pub port: Option<i64>,
    /// TCP (default), UDP or SCTP.
    #[arg(long, conflicts_with = "probes")]
    pub protocol: Option<String>,
    /// A YAML or JSON list of probes.
    #[arg(long, value_name = "FILE")]
    pub probes: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Only this port (otherwise every port, summarized per pair).
    #[arg(long)]
    pub port: Option<u16>,
    /// Protocol of --port: TCP (default), UDP or SCTP.
    #[arg(long, requires = "port")]
    pub protocol: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub format: MatrixFormat,
}
