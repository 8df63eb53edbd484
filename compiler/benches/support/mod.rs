//! A cluster from bench/gen_cluster.py (seed 1) for the benchmarks:
//! `AMBIT_BENCH_PODS` pods, default 1,000, with the policies of bench/run
//! (0.27 NetworkPolicies, 0.025 AuthorizationPolicies and 0.005
//! ClusterNetworkPolicies per pod, at least 4 of the last).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The generated cluster's directory inside a temporary directory (kept
/// alive by the returned guard), and its number of pods.
pub fn generated() -> (tempfile::TempDir, PathBuf, usize) {
    let pods: usize = std::env::var("AMBIT_BENCH_PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("cluster");
    let status = Command::new("python3")
        .arg(root.join("bench/gen_cluster.py"))
        .args(["--pods", &pods.to_string()])
        .args(["--policies", &(pods * 27 / 100).to_string()])
        .args(["--authz", &(pods / 40).to_string()])
        .args(["--admin", &(pods / 200).max(4).to_string()])
        .args(["--seed", "1", "--out"])
        .arg(&out)
        .status()
        .expect("python3 runs bench/gen_cluster.py");
    assert!(status.success(), "bench/gen_cluster.py failed");
    (dir, out, pods)
}
