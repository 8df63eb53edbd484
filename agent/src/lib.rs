//! The node agent as a command, shared by `ambit agent` and the dedicated
//! `ambit-agent` binary.
//!
//! Both take the same arguments and behave the same. `ambit-agent` links
//! only the table reader and the runtime: no solver (libz3, libstdc++), no
//! analysis commands: idle, it keeps 9 MB resident where `ambit agent` keeps 13.

// A command: it reports to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use ambit_runtime::{Agent, AgentConfig};

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The agent configuration (YAML; see the README).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the configuration and the tables, then exit (0 when both load).
    #[arg(long)]
    pub check: bool,
    /// Worker threads of the data path (default 1, a single-threaded
    /// runtime: on a node shared with its workloads, one thread avoids
    /// cross-thread wake-ups; give more to a node that carries more than
    /// ~1 GB/s or ~4,000 new connections/s).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// How the command ended; the process exits with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Ran until told to stop, or `--check` passed.
    Success = 0,
    /// The configuration or the tables did not load, or the agent could
    /// not start (e.g. a listen address in use).
    Error = 2,
}

/// Whether to colour what goes to stderr.
fn colour() -> bool {
    ambit_compiler::diag::colour(&std::io::stderr())
}

/// Run the agent until SIGTERM or SIGINT (then drain), or, with `--check`,
/// load the configuration and the tables and exit. `verbose` counts `-v`.
pub fn run(args: &AgentArgs, verbose: u8) -> std::io::Result<Exit> {
    let config = match AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(diags) => {
            eprint!("{}", ambit_compiler::diag::render(&diags, colour()));
            return Ok(Exit::Error);
        }
    };
    if args.check {
        return Ok(check(&config));
    }
    let filter = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .try_init();
    let threads = args.threads.unwrap_or(1).max(1);
    let mut rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let agent = match Agent::start(config).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ambit: cannot start the agent: {e}");
                return Ok(Exit::Error);
            }
        };
        let b = agent.bound();
        tracing::info!(
            inbound = %b.inbound,
            outbound = ?b.outbound,
            admin = ?b.admin,
            transparent = ?b.transparent,
            generation = agent.generation(),
            "listening"
        );
        if agent.generation() == 0 {
            tracing::warn!("no table loaded: every connection is denied until one is");
        }
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: draining open connections");
        agent.shutdown().await;
        Ok(Exit::Success)
    })
}

/// `--check`: the tables the configuration names load for its trust domain.
fn check(config: &AgentConfig) -> Exit {
    let bytes = match std::fs::read(&config.tables) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "ambit: cannot read the tables `{}`: {e}",
                config.tables.display()
            );
            return Exit::Error;
        }
    };
    match ambit_runtime::tables::validate(&bytes, &config.trust_domain) {
        Ok(t) => {
            println!(
                "configuration and tables load: node {}, {} local workloads, {} peers, table {} ({} workloads)",
                config.node,
                config.workloads.len(),
                config.peers.len(),
                ambit_runtime::tables::sha256(&bytes),
                t.workloads.len()
            );
            Exit::Success
        }
        Err(e) => {
            eprintln!("ambit: {}: {e}", config.tables.display());
            Exit::Error
        }
    }
}
