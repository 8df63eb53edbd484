//! The NetworkPolicy conformance cases of `testdata/conformance/netpol`: every
//! grid cell and probe of every case, decided through `ambit query --probes`.

use std::fs;

use serde::Deserialize;
use serde_json::{Value, json};

use super::util::{ambit, testdata};

#[derive(Deserialize)]
struct Expect {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    matrices: Vec<Matrix>,
    #[serde(default)]
    probes: Vec<ProbeExpect>,
}

#[derive(Deserialize)]
struct Matrix {
    port: u16,
    #[serde(default)]
    protocol: Option<String>,
    grid: String,
}

#[derive(Deserialize)]
struct ProbeExpect {
    from: String,
    to: String,
    port: u16,
    #[serde(default)]
    protocol: Option<String>,
    expect: String,
    /// Strings the answer's `decided_by` must contain.
    #[serde(default)]
    mentions: Vec<String>,
}

/// Expand a case into probes, each with its expected answer and the strings
/// its `decided_by` must mention.
fn probes(expect: &Expect) -> Vec<(Value, bool, Vec<String>)> {
    let mut out = Vec::new();
    for m in &expect.matrices {
        let mut lines = m.grid.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .expect("grid header")
            .split_whitespace()
            .skip(1)
            .collect();
        for line in lines {
            let mut cells = line.split_whitespace();
            let from = cells.next().expect("row name");
            let row: Vec<&str> = cells.collect();
            assert_eq!(row.len(), header.len(), "grid row `{line}`");
            for (to, cell) in header.iter().zip(row) {
                let allowed = match cell {
                    "." => true,
                    "X" => false,
                    other => panic!("bad grid cell `{other}`"),
                };
                let protocol = m.protocol.clone().unwrap_or_else(|| "TCP".into());
                out.push((
                    json!({"from": from, "to": to, "port": m.port, "protocol": protocol}),
                    allowed,
                    Vec::new(),
                ));
            }
        }
    }
    for p in &expect.probes {
        let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let allowed = match p.expect.as_str() {
            "allow" => true,
            "deny" => false,
            other => panic!("bad expect `{other}`"),
        };
        out.push((
            json!({"from": p.from, "to": p.to, "port": p.port, "protocol": protocol}),
            allowed,
            p.mentions.clone(),
        ));
    }
    out
}

/// The case folders under `base`, in name order; at least `minimum` of them.
fn case_dirs(base: &std::path::Path, minimum: usize) -> Vec<std::path::PathBuf> {
    let mut cases: Vec<_> = fs::read_dir(base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= minimum,
        "at least {minimum} cases in {}, found {}",
        base.display(),
        cases.len()
    );
    cases
}

#[test]
fn netpol_conformance_cases() {
    grid_cases("conformance/netpol", 40);
}

/// The admin-tier cases of `testdata/conformance/tiers`: ClusterNetworkPolicy,
/// AdminNetworkPolicy and BaselineAdminNetworkPolicy, alone and with
/// NetworkPolicies.
#[test]
fn tiers_conformance_cases() {
    grid_cases("conformance/tiers", 40);
}

/// Run every case of a suite in the grid format: each grid cell and probe
/// through `ambit query --probes`.
fn grid_cases(suite: &str, minimum: usize) {
    let base = testdata(suite);
    let cases = case_dirs(&base, minimum);
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect: Expect =
            serde_saphyr::from_str(&fs::read_to_string(case.join("expect.yaml")).unwrap()).unwrap();
        let expected = probes(&expect);
        let probe_file = tmp.path().join(format!("{name}.json"));
        let list: Vec<&Value> = expected.iter().map(|(p, _, _)| p).collect();
        fs::write(&probe_file, serde_json::to_string(&list).unwrap()).unwrap();
        let out = ambit(&[
            "query",
            base.join("cluster.yaml").to_str().unwrap(),
            case.join("policies.yaml").to_str().unwrap(),
            "--probes",
            probe_file.to_str().unwrap(),
            "-o",
            "json",
        ]);
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "{name}: exit {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            answers.len(),
            expected.len(),
            "{name}: one answer per probe"
        );
        for ((probe, want, mentions), got) in expected.iter().zip(&answers) {
            checked += 1;
            assert_eq!(got["from"], probe["from"], "{name}: answers in probe order");
            assert_eq!(got["to"], probe["to"]);
            if got["allowed"].as_bool() != Some(*want) {
                failures.push(format!(
                    "{name}: {} -> {} {}/{}: expected {}, got {} ({})",
                    probe["from"],
                    probe["to"],
                    probe["port"],
                    probe["protocol"],
                    if *want { "allow" } else { "deny" },
                    got["allowed"],
                    got["decided_by"]
                ));
            }
            let decided = got["decided_by"].to_string();
            for m in mentions {
                if !decided.contains(m.as_str()) {
                    failures.push(format!(
                        "{name}: {} -> {} {}/{}: decided_by does not mention `{m}`: {decided}",
                        probe["from"], probe["to"], probe["port"], probe["protocol"]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} probes differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct AuthzExpect {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    args: Vec<String>,
    probes: Vec<serde_json::Map<String, Value>>,
}

/// The AuthorizationPolicy cases of `testdata/conformance/authz`: each probe's
/// `allowed` and `l4_allowed`, and the strings its `decided_by` must mention.
#[test]
fn authz_conformance_cases() {
    let base = testdata("conformance/authz");
    let cases = case_dirs(&base, 50);
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expect: AuthzExpect =
            serde_saphyr::from_str(&fs::read_to_string(case.join("expect.yaml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/expect.yaml: {e}"));
        let probe_file = tmp.path().join(format!("{name}.json"));
        fs::write(&probe_file, serde_json::to_string(&expect.probes).unwrap()).unwrap();
        let mut args = vec![
            "query".to_owned(),
            base.join("cluster.yaml").display().to_string(),
            case.join("policies.yaml").display().to_string(),
            "--probes".to_owned(),
            probe_file.display().to_string(),
            "-o".to_owned(),
            "json".to_owned(),
        ];
        args.extend(expect.args.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ambit(&argv);
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "{name}: exit {code:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            answers.len(),
            expect.probes.len(),
            "{name}: one answer per probe"
        );
        for (probe, got) in expect.probes.iter().zip(&answers) {
            checked += 1;
            let what = format!(
                "{name}: {} -> {} {}{}",
                probe["from"],
                probe["to"],
                probe["port"],
                probe
                    .get("http")
                    .map(|h| format!(" http {h}"))
                    .unwrap_or_default()
            );
            for key in ["allowed", "l4_allowed"] {
                let want = probe
                    .get(key)
                    .and_then(Value::as_bool)
                    .unwrap_or_else(|| panic!("{what}: `{key}` missing"));
                if got[key].as_bool() != Some(want) {
                    failures.push(format!(
                        "{what}: {key} expected {want}, got {} ({})",
                        got[key], got["decided_by"]
                    ));
                }
            }
            let decided = got["decided_by"].to_string();
            for m in probe
                .get("mentions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let m = m.as_str().unwrap();
                if !decided.contains(m) {
                    failures.push(format!(
                        "{what}: decided_by does not mention `{m}`: {decided}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} probes differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
