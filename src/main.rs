//! The `ambit` command line. Parses arguments, runs the command, maps the
//! outcome to an exit code: 0 success, 1 findings / violated property / denied
//! flow, 2 bad input or usage.

// The CLI is the one part of ambit that prints; the libraries return data.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod render;

// Loading a repository of manifests is mostly small allocations that live
// until the tables are built: jemalloc takes 10-20% less CPU than glibc's
// malloc for `compile` and `matrix` (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(args) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ambit: {e}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}
