//! `ambit agent --config FILE`: the node agent.

use ambit_runtime::{Agent, AgentConfig, Reload};

use super::Status;
use crate::cli::AgentArgs;
use crate::render;

pub fn run(args: &AgentArgs, verbose: u8) -> std::io::Result<Status> {
    let config = match AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(diags) => {
            render::diagnostics(&diags, false);
            return Ok(Status::Error);
        }
    };
    if args.check {
        let bytes = match std::fs::read(&config.tables) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "ambit: cannot read the tables `{}`: {e}",
                    config.tables.display()
                );
                return Ok(Status::Error);
            }
        };
        return Ok(
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
                    Status::Success
                }
                Err(e) => {
                    eprintln!("ambit: {}: {e}", config.tables.display());
                    Status::Error
                }
            },
        );
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
        .with_ansi(crate::render::colour(&std::io::stderr()))
        .try_init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    rt.worker_threads(args.threads.unwrap_or(1).max(1));
    let rt = rt.build()?;
    rt.block_on(async move {
        let agent = match Agent::start(config).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ambit: cannot start the agent: {e}");
                return Ok(Status::Error);
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
        let _ = Reload::Unchanged;
        Ok(Status::Success)
    })
}
