//! # ambit-runtime
//!
//! The node agent (`ambit agent`): it will load compiled decision tables,
//! authenticate peers by SPIFFE identity over mTLS, and allow or refuse each
//! connection. It reads only [`ambit_compiler::table::Tables`], never YAML.
//!
//! Today it holds the table loading every part of the agent starts from:
//! a table is parsed and checked before use, and a bad one is refused.

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
        let dir = std::env::temp_dir().join(format!("ambit-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.json");
        std::fs::write(&path, b"{\"format\": \"ambit.tables/v1\"").unwrap();
        assert!(super::load_tables(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
