//! `ambit-agent`: the node agent alone, `ambit agent` without the solver
//! and the analysis commands. Exit codes: 0 stopped by a signal (after
//! draining) or `--check` passed, 2 bad configuration, tables or usage.

#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

/// The ambit node agent: enforces compiled decision tables on live traffic
/// (the same as `ambit agent`).
#[derive(Debug, Parser)]
#[command(name = "ambit-agent", version)]
struct Cli {
    #[command(flatten)]
    agent: ambit_agent::AgentArgs,
    /// More log detail (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

// Measured on the two-node path of bench/agent against glibc's malloc,
// interleaved: the agents carried a stream for 13% less CPU per GB, with
// 0-29% more throughput, for 0.5 MB more idle RSS (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match ambit_agent::run(&cli.agent, cli.verbose) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            eprintln!("ambit: {e}");
            ExitCode::from(2)
        }
    }
}
