//! # ambit-runtime
//!
//! The node agent (`ambit agent`): it loads compiled decision tables,
//! authenticates peers by SPIFFE identity over mTLS (HBONE: HTTP/2 CONNECT
//! over TLS 1.3, as Istio ambient's ztunnel), and allows or refuses each
//! connection with the very tables the verifier proved. It reads only
//! [`ambit_compiler::table::Tables`], never policy YAML.
//!
//! - [`config`]: the configuration file, validated with located diagnostics;
//! - [`identity`]: SPIFFE IDs, the CA (`ambit ca`), certificate verifiers;
//! - [`tables`]: the loaded table and its atomic swap;
//! - [`agent`]: listeners, decisions, tunnels, reload, revocation, shutdown;
//! - [`telemetry`]: the access log and the Prometheus metrics.

pub mod agent;
pub mod config;
pub mod identity;
mod io;
pub mod tables;
pub mod telemetry;

pub use agent::{Agent, Bound, Reload};
pub use config::AgentConfig;
