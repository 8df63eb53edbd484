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

use ambit_compiler::table::{TableError, Tables};

/// Read and check a decision-table file.
pub fn load_tables(path: &std::path::Path) -> Result<Tables, LoadError> {
    let bytes = std::fs::read(path).map_err(LoadError::Io)?;
    Tables::from_json(&bytes).map_err(LoadError::Table)
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the tables: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Table(TableError),
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_corrupt_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, b"{\"format\": \"ambit.tables/v1\"").unwrap();
        assert!(super::load_tables(&path).is_err());
    }
}
