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
    Query(Box<QueryArgs>),
    /// Print all-pairs connectivity.
    Matrix(MatrixArgs),
    /// Prove reachability invariants with Z3, or show a flow that breaks
    /// them.
    Verify(VerifyArgs),
    /// The reachability graph: export it, find multi-hop paths.
    Graph(GraphArgs),
    /// Check policies against the rule registry (`ambit rules`), for people
    /// and for CI (SARIF, GitHub annotations).
    Lint(LintArgs),
    /// List the rules of `ambit lint` and the codes of every diagnostic, or
    /// explain one.
    Rules(RulesArgs),
    /// What a change opens and closes: the exact flows whose decision
    /// differs between two versions of the policies.
    Diff(Box<DiffArgs>),
    /// Run the node agent: enforce compiled tables on live traffic (HBONE
    /// mTLS tunnel, SPIFFE identities, hot reload, access log, metrics).
    Agent(ambit_agent::AgentArgs),
    /// A certificate authority for agents and workloads (SPIFFE identities).
    Ca(CaArgs),
}

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA for a trust domain: DIR/ca.pem and DIR/ca-key.pem.
    Init {
        /// The SPIFFE trust domain, e.g. cluster.local.
        #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
        trust_domain: String,
        /// Directory to write into (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace an existing CA in DIR.
        #[arg(long)]
        force: bool,
    },
    /// Issue a workload certificate with the SPIFFE ID
    /// spiffe://TRUST_DOMAIN/ns/NS/sa/SA: OUT/NAME.pem and OUT/NAME-key.pem.
    Issue {
        #[arg(long, value_name = "NS")]
        namespace: String,
        #[arg(long, value_name = "SA")]
        service_account: String,
        /// The CA's directory (ca.pem, ca-key.pem).
        #[arg(long, value_name = "DIR", default_value = ".")]
        ca: PathBuf,
        /// Directory to write into (default: the CA's).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// File name stem (default: NS-SA).
        #[arg(long)]
        name: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Files, directories (searched for *.yaml, *.yml) or `-` for stdin.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default", value_name = "NS")]
    pub namespace: String,
    /// Istio trust domain of workload identities (default: the `istio`
    /// ConfigMap's `trustDomain`, else cluster.local).
    #[arg(long, value_name = "DOMAIN")]
    pub trust_domain: Option<String>,
    /// An alias of the trust domain (repeatable; replaces the ConfigMap's).
    #[arg(long = "trust-domain-alias", value_name = "DOMAIN")]
    pub trust_domain_aliases: Vec<String>,
    /// Istio root namespace: its policies apply mesh-wide (default: the
    /// `istio` ConfigMap's `rootNamespace`, else istio-system).
    #[arg(long, value_name = "NS")]
    pub root_namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the tables: a file, `json` / `-` for stdout, or
    /// `configmap` for a Kubernetes ConfigMap carrying them (stdout; the
    /// agents mount it and reload when it changes).
    #[arg(
        short = 'o',
        long = "output",
        default_value = "json",
        value_name = "FILE|json|configmap"
    )]
    pub output: String,
    /// Name of the ConfigMap (`-o configmap`).
    #[arg(long, default_value = "ambit-tables", value_name = "NAME")]
    pub name: String,
    /// Namespace of the ConfigMap (`-o configmap`).
    #[arg(
        long = "configmap-namespace",
        default_value = "ambit-system",
        value_name = "NS"
    )]
    pub configmap_namespace: String,
    /// Prove with Z3 that the tables decide every flow of the inventory (all
    /// ports, all protocols) as the policy semantics does.
    #[arg(long)]
    pub check: bool,
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
    /// Source: `namespace/name` of a workload or `ip:ADDRESS` (without
    /// --from or --probes, the last argument is a query expression such as
    /// `'shop/web -> pay/db:5432'`, `'who -> pay/db:5432'`, `'shop/web -> *'`).
    #[arg(long, conflicts_with = "probes", requires_all = ["to", "port"])]
    pub from: Option<String>,
    /// Destination: `namespace/name` of a workload or `ip:ADDRESS`.
    #[arg(long, conflicts_with = "probes", requires = "from")]
    pub to: Option<String>,
    /// Destination port.
    #[arg(long, conflicts_with = "probes", requires = "from")]
    pub port: Option<i64>,
    /// TCP (default), UDP or SCTP.
    #[arg(long, conflicts_with = "probes")]
    pub protocol: Option<String>,
    /// HTTP method of a request on the connection (decided by L7 rules).
    #[arg(long, conflicts_with = "probes")]
    pub method: Option<String>,
    /// HTTP path of the request.
    #[arg(long, conflicts_with = "probes")]
    pub path: Option<String>,
    /// HTTP host (authority) of the request.
    #[arg(long, conflicts_with = "probes")]
    pub host: Option<String>,
    /// A request header `NAME:VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE", conflicts_with = "probes")]
    pub headers: Vec<String>,
    /// What the external authorizer of CUSTOM policies answers: allow or deny.
    #[arg(long, value_name = "allow|deny", conflicts_with = "probes")]
    pub ext_authz: Option<String>,
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

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A YAML file with an `assertions` list.
    #[arg(long = "assert", value_name = "FILE")]
    pub assertions: PathBuf,
    #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphBy {
    Workload,
    Namespace,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value = "dot")]
    pub format: GraphFormat,
    /// Nodes are workloads or namespaces.
    #[arg(long, value_enum, default_value = "workload")]
    pub by: GraphBy,
    /// List the shortest multi-hop paths from FROM to TO (exit 1 if none).
    #[arg(long, num_args = 2, value_names = ["FROM", "TO"], conflicts_with = "from")]
    pub path: Option<Vec<String>>,
    /// Only what this node reaches (with --hops).
    #[arg(long, value_name = "NODE")]
    pub from: Option<String>,
    /// How many hops from --from.
    #[arg(long, default_value_t = 1, requires = "from")]
    pub hops: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Human,
    Json,
    Sarif,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum FailOn {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
    pub format: LintFormat,
    /// The least severity that makes the exit code 1.
    #[arg(long, value_enum, default_value = "warning")]
    pub fail_on: FailOn,
    /// The configuration file (default: `.ambit.yaml` found upward from the
    /// first path).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The pod network (repeatable; default: inferred from pod IPs).
    #[arg(long = "pod-cidr", value_name = "CIDR")]
    pub pod_cidrs: Vec<String>,
    /// The service network (repeatable).
    #[arg(long = "service-cidr", value_name = "CIDR")]
    pub service_cidrs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// A code to explain, e.g. NP003.
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFailOn {
    Opened,
    Closed,
    Any,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// BASE and HEAD (files or directories); with --git, the paths to read
    /// at both revisions.
    #[arg(required = true, value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Read BASE and HEAD from git: `REV..REV`, or `REV` for REV against
    /// the working tree.
    #[arg(long, value_name = "REV..REV")]
    pub git: Option<String>,
    /// Namespace of objects that name none.
    #[arg(long, default_value = "default", value_name = "NS")]
    pub namespace: String,
    #[arg(short = 'o', long = "output", value_enum, default_value = "human")]
    pub format: DiffFormat,
    /// Exit 1 when flows are opened, closed, or either.
    #[arg(long, value_enum)]
    pub fail_on: Option<DiffFailOn>,
}
