//! `ambit agent --config FILE`: the node agent (see the `ambit-agent` crate,
//! which also builds it as a binary of its own).

use super::Status;
use ambit_agent::{AgentArgs, Exit};

pub fn run(args: &AgentArgs, verbose: u8) -> std::io::Result<Status> {
    Ok(match ambit_agent::run(args, verbose)? {
        Exit::Success => Status::Success,
        Exit::Error => Status::Error,
    })
}
