//! `ambit query`: the probe contract of DESIGN.md (fields, order, exit codes).

use std::fs;

use serde_json::Value;

use super::util::{ambit, transcript};

const DEMO: &str = "testdata/demo";

#[test]
fn a_denied_probe_exits_1_and_explains() {
    let out = ambit(&[
        "query",
        DEMO,
        "--from",
        "monitoring/prometheus",
        "--to",
        "shop/cart",
        "--port",
        "8080",
    ]);
    insta::assert_snapshot!("human_denied", transcript(&out));
}

#[test]
fn an_allowed_probe_exits_0_with_the_admitting_rules() {
    let out = ambit(&[
        "query",
        DEMO,
        "--from",
        "frontend/web",
        "--to",
        "shop/api",
        "--port",
        "8080",
        "-o",
        "json",
    ]);
    insta::assert_snapshot!("json_allowed", transcript(&out));
}

#[test]
fn probe_files_keep_order_and_fields_and_ignore_unknown_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let probes = tmp.path().join("probes.yaml");
    fs::write(
        &probes,
        "- {from: frontend/web, to: shop/api, port: 8080, expect: allow}\n\
         - from: shop/api\n  to: data/postgres\n  port: 5432\n  protocol: TCP\n  note: the database\n\
         - {from: shop/api, to: \"ip:8.8.8.8\", port: 53, protocol: udp}\n\
         - {from: \"ip:198.51.100.7\", to: frontend/web, port: 8080}\n",
    )
    .unwrap();
    let out = ambit(&[
        "query",
        DEMO,
        "--probes",
        probes.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "one probe is denied");
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<Vec<&str>> = answers
        .iter()
        .map(|a| a.as_object().unwrap().keys().map(String::as_str).collect())
        .collect();
    for k in &keys {
        assert_eq!(
            k,
            &[
                "from",
                "to",
                "port",
                "protocol",
                "allowed",
                "l4_allowed",
                "decided_by"
            ]
        );
    }
    let allowed: Vec<bool> = answers
        .iter()
        .map(|a| a["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(allowed, [true, true, false, true]);
    assert_eq!(answers[2]["protocol"], "UDP");
    assert_eq!(answers[2]["to"], "ip:8.8.8.8");
    insta::assert_snapshot!("probe_file", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn unknown_workloads_name_the_closest() {
    let out = ambit(&[
        "query",
        DEMO,
        "--from",
        "shop/apii",
        "--to",
        "data/postgres",
        "--port",
        "5432",
    ]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("unknown_workload", transcript(&out));
}

#[test]
fn bad_probes_in_a_file_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let probes = tmp.path().join("probes.yaml");
    fs::write(&probes, "- {from: frontend/web, to: shop/api, port: 8080}\n- {from: frontend/web, to: shop/cartt, port: 70000}\n- {to: shop/api, port: 1}\n").unwrap();
    let out = ambit(&["query", DEMO, "--probes", probes.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(tmp.path().to_str().unwrap(), "[TMP]");
    insta::assert_snapshot!("bad_probe_file", stderr);
}

#[test]
fn usage_errors_exit_2() {
    let out = ambit(&["query", DEMO, "--from", "shop/api"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ambit(&[
        "query",
        DEMO,
        "--from",
        "shop/api",
        "--to",
        "shop/cart",
        "--port",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_pod_reaches_itself_under_deny_all() {
    let out = ambit(&[
        "query",
        "testdata/conformance/netpol/cluster.yaml",
        "testdata/conformance/netpol/06-deny-all-ingress-and-egress/policies.yaml",
        "--from",
        "x/a",
        "--to",
        "x/a",
        "--port",
        "80",
    ]);
    insta::assert_snapshot!("self_traffic", transcript(&out));
}

#[test]
fn stdin_is_an_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let text =
        fs::read_to_string(super::util::testdata("conformance/netpol/cluster.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ambit"))
        .args(["query", "-", "--from", "x/a", "--to", "y/b", "--port", "80"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_demo_expectations_hold() {
    // testdata/demo/probes.yaml records what the demo's policies intend with an
    // `expect` key per probe; the probe file is also read as a probe file.
    let text = fs::read_to_string(super::util::testdata("demo/probes.yaml")).unwrap();
    let expected: Vec<Value> = serde_saphyr::from_str(&text).unwrap();
    let out = ambit(&[
        "query",
        DEMO,
        "--probes",
        "testdata/demo/probes.yaml",
        "-o",
        "json",
    ]);
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers.len(), expected.len());
    for (e, a) in expected.iter().zip(&answers) {
        assert_eq!(
            a["allowed"].as_bool(),
            Some(e["expect"] == "allow"),
            "{e}: {a}"
        );
    }
}

const AUTHZ: &str = "testdata/conformance/authz";

/// An HTTP request given on the command line is decided by L7 rules; the
/// answer tells when ztunnel (L4 only) would decide otherwise.
#[test]
fn an_http_probe_is_decided_by_l7_rules_and_shows_the_l4_view() {
    let policies = format!("{AUTHZ}/23-deny-methods-with-port/policies.yaml");
    let base = format!("{AUTHZ}/cluster.yaml");
    let args = |method: &'static str| {
        vec![
            "query",
            &base,
            &policies,
            "--from",
            "bar/client",
            "--to",
            "foo/api",
            "--port",
            "8080",
            "--method",
            method,
            "--path",
            "/orders",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<String>>()
    };
    let run = |a: Vec<String>| ambit(&a.iter().map(String::as_str).collect::<Vec<_>>());
    insta::assert_snapshot!("authz_http_get_human", transcript(&run(args("GET"))));
    let mut json = args("POST");
    json.extend(["-o".to_owned(), "json".to_owned()]);
    let out = run(json);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["allowed"], false);
    assert_eq!(v[0]["l4_allowed"], false);
    insta::assert_snapshot!("authz_http_post_json", transcript(&out));
}

/// A CUSTOM policy's answer is unknown statically unless the probe says it.
#[test]
fn a_custom_policy_needs_the_ext_authz_answer() {
    let policies = format!("{AUTHZ}/37-custom-http-ext-authz/policies.yaml");
    let base = format!("{AUTHZ}/cluster.yaml");
    let probe = |ext: Option<&str>| {
        let mut a = vec![
            "query",
            &base,
            &policies,
            "--from",
            "bar/client",
            "--to",
            "foo/api",
            "--port",
            "8080",
            "--method",
            "GET",
            "--path",
            "/secure/x",
            "-o",
            "json",
        ];
        if let Some(e) = ext {
            a.extend(["--ext-authz", e]);
        }
        let out = ambit(&a);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
    };
    let unknown = probe(None);
    assert_eq!(unknown["allowed"], false, "{unknown}");
    assert!(unknown["decided_by"].to_string().contains("provider"));
    assert_eq!(probe(Some("allow"))["allowed"], true);
    assert_eq!(probe(Some("deny"))["allowed"], false);
}

/// `--trust-domain` changes the identities workloads present.
#[test]
fn the_trust_domain_flag_changes_identities() {
    let policies = format!("{AUTHZ}/47-trust-domain-from-args/policies.yaml");
    let base = format!("{AUTHZ}/cluster.yaml");
    let out = ambit(&[
        "compile",
        &base,
        &policies,
        "--trust-domain",
        "example.org",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let tables: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tables["authz"]["trust"]["trust_domain"], "example.org");
    let principals: Vec<&str> = tables["authz"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["principal"].as_str())
        .collect();
    assert!(
        principals.contains(&"example.org/ns/foo/sa/web"),
        "{principals:?}"
    );
}

const TIERS: &str = "testdata/conformance/tiers";

/// Each direction names the tier, policy, priority and rule that decided,
/// with the Pass chain that led there.
#[test]
fn tier_decisions_show_the_pass_chain() {
    let base = format!("{TIERS}/cluster.yaml");
    let policies = format!("{TIERS}/53-cnp-pass-egress-np-and-baseline/policies.yaml");
    let run = |from: &str, to: &str, json: bool| {
        let mut args = vec![
            "query", &base, &policies, "--from", from, "--to", to, "--port", "80",
        ];
        if json {
            args.extend(["-o", "json"]);
        }
        ambit(&args)
    };
    // Pass to the NetworkPolicy tier, which isolates y/a and admits z/a.
    insta::assert_snapshot!(
        "tiers_pass_to_np_human",
        transcript(&run("y/a", "z/a", false))
    );
    // Pass through a NetworkPolicy tier that does not isolate x/a, to the
    // Baseline tier, which denies.
    let out = run("x/a", "z/a", true);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["decided_by"][0]["tier"], "Admin");
    assert_eq!(v[0]["decided_by"][0]["priority"], 10);
    assert_eq!(
        v[0]["decided_by"][0]["effect"],
        "Pass -> NetworkPolicy (none isolates this pod) -> Baseline"
    );
    assert_eq!(v[0]["decided_by"][1]["name"], "baseline-no-egress-to-z");
    insta::assert_snapshot!("tiers_pass_to_baseline_json", transcript(&out));
}

/// A rule that fails closed and a domainNames rule say so.
#[test]
fn fail_closed_and_domain_names_are_explained() {
    let base = format!("{TIERS}/cluster.yaml");
    let run = |case: &str, from: &str, to: &str, port: &str| {
        let policies = format!("{TIERS}/{case}/policies.yaml");
        ambit(&[
            "query", &base, &policies, "--from", from, "--to", to, "--port", port,
        ])
    };
    let out = run(
        "40-cnp-domain-names-accept-matches-nothing",
        "x/a",
        "ip:93.184.216.34",
        "443",
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("tiers_domain_names_human", transcript(&out));
    let out = run(
        "43-cnp-empty-peer-pass-denies-all",
        "z/a",
        "ip:203.0.113.9",
        "80",
    );
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("tiers_fail_closed_human", transcript(&out));
}
