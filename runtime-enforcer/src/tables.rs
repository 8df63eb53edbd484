//! The loaded decision table, swapped atomically on reload.
//!
//! A new table is read whole, parsed and checked ([`Tables::from_json`]),
//! and must be compiled for the agent's trust domain; only then does it
//! replace the old one. Readers take a snapshot (`Arc`) per decision and
//! never block a reload. With no table loaded every connection is denied.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use ambit_compiler::table::{Endpoint, Tables};
use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};

use crate::identity::SpiffeId;

/// A table in use, with the indexes the agent decides from.
#[derive(Debug)]
pub struct Loaded {
    pub tables: Tables,
    /// `sha256:` of the file's bytes: the same on every node that loaded
    /// the same file.
    pub sha256: String,
    pub generation: u64,
    pub loaded_at: SystemTime,
    by_ip: HashMap<IpAddr, u32>,
}

impl Loaded {
    pub fn new(tables: Tables, bytes: &[u8], generation: u64) -> Loaded {
        let mut by_ip = HashMap::new();
        for (i, w) in tables.workloads.iter().enumerate() {
            for ip in &w.ips {
                // The first workload listed keeps a shared address; the
                // compiler reports duplicates, the agent stays deterministic.
                by_ip.entry(*ip).or_insert(i as u32);
            }
        }
        Loaded {
            tables,
            sha256: sha256(bytes),
            generation,
            loaded_at: SystemTime::now(),
            by_ip,
        }
    }

    /// The endpoint an address is: a workload of the tables, or an address
    /// outside the inventory.
    pub fn endpoint(&self, ip: IpAddr) -> Endpoint {
        self.by_ip
            .get(&ip)
            .map_or(Endpoint::Ip(ip), |&w| Endpoint::Workload(w))
    }

    pub fn workload_at(&self, ip: IpAddr) -> Option<u32> {
        self.by_ip.get(&ip).copied()
    }

    /// `namespace/name` of a workload.
    pub fn name(&self, w: u32) -> String {
        let w = &self.tables.workloads[w as usize];
        format!("{}/{}", w.namespace, w.name)
    }

    /// The identity a workload's certificate must carry.
    pub fn identity(&self, w: u32, trust_domain: &str) -> SpiffeId {
        let w = &self.tables.workloads[w as usize];
        let class = &self.tables.classes[w.class as usize];
        SpiffeId::new(trust_domain, &class.namespace, &class.service_account)
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Why a table file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefusedTable {
    #[error(transparent)]
    Table(#[from] ambit_compiler::table::TableError),
    #[error("the tables are for trust domain `{found}`, the agent's is `{expected}`")]
    TrustDomain { found: String, expected: String },
}

/// Parse and check a table for an agent of `trust_domain`.
pub fn validate(bytes: &[u8], trust_domain: &str) -> Result<Tables, RefusedTable> {
    let tables = Tables::from_json(bytes)?;
    let trust = &tables.authz.trust;
    if trust.trust_domain != trust_domain && !trust.aliases.iter().any(|a| a == trust_domain) {
        return Err(RefusedTable::TrustDomain {
            found: trust.trust_domain.clone(),
            expected: trust_domain.to_owned(),
        });
    }
    Ok(tables)
}

/// What identifies a version of the file without reading it: device,
/// inode, length and modification time of what the path points to (a
/// ConfigMap volume swaps a symlink; the target's inode changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSignature {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

pub fn signature(path: &Path) -> std::io::Result<FileSignature> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(FileSignature {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// The current table.
#[derive(Debug, Default)]
pub struct TableStore {
    current: ArcSwapOption<Loaded>,
}

impl TableStore {
    pub fn get(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    pub fn generation(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |l| l.generation)
    }

    pub fn store(&self, loaded: Loaded) -> Arc<Loaded> {
        let loaded = Arc::new(loaded);
        self.current.store(Some(loaded.clone()));
        loaded
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_corrupt_table_is_refused() {
        let e = super::validate(b"{\"format\": \"ambit.tables/v1\"", "cluster.local");
        assert!(matches!(e, Err(super::RefusedTable::Table(_))));
    }
}
