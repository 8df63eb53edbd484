//! `ambit verify`: assertions proved or broken with a counterexample, on the
//! demo cluster; bad assertion files are located diagnostics (exit 2).

use std::fs;

use super::util::{ambit, assert_located_error, root, transcript};

const DEMO: &str = "testdata/demo";
const ASSERTIONS: &str = "testdata/demo/assertions.yaml";

#[test]
fn demo_assertions_hold_or_show_a_counterexample() {
    let out = ambit(&["verify", DEMO, "--assert", ASSERTIONS]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!(transcript(&out));
}

#[test]
fn demo_assertions_as_json() {
    let out = ambit(&["verify", DEMO, "--assert", ASSERTIONS, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    // One object per assertion, in file order, with the contract's keys.
    let names: Vec<&str> = list.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "frontend-cannot-reach-data");
    assert_eq!(names.len(), 8);
    for a in list {
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "holds", "counterexample"]);
        if let Some(c) = a["counterexample"].as_object() {
            let keys: Vec<&String> = c.keys().collect();
            assert_eq!(
                keys,
                [
                    "from",
                    "to",
                    "port",
                    "protocol",
                    "from_labels",
                    "to_labels",
                    "decided_by"
                ]
            );
        }
    }
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

/// The point of `scope: any-pod`: the same assertion holds for today's
/// workloads and is broken by a pod that could be deployed tomorrow.
#[test]
fn any_pod_finds_what_the_inventory_does_not_show() {
    let out = ambit(&["verify", DEMO, "--assert", ASSERTIONS, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_name = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("payments-only-from-shop-api")["holds"], true);
    let tomorrow = by_name("payments-only-from-shop-api-tomorrow");
    assert_eq!(tomorrow["holds"], false);
    let c = &tomorrow["counterexample"];
    assert!(c["from"].as_str().unwrap().starts_with("hypothetical:"));
    assert_eq!(c["to"], "payments/payments");
    assert_eq!(c["port"], 8443);
    assert_eq!(c["decided_by"][0]["name"], "payments-allow-ingress");
}

const MESH: &str = "testdata/mesh";
const MESH_ASSERTIONS: &str = "testdata/mesh/assertions.yaml";

/// With Istio policies: STRICT mTLS, a principal, an HTTP rule ztunnel drops.
#[test]
fn mesh_assertions_decide_the_authorization_layer() {
    let out = ambit(&["verify", MESH, "--assert", MESH_ASSERTIONS]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    insta::assert_snapshot!(transcript(&out));
}

/// A policy that names a service account admits any pod running as it:
/// the solver invents one in the namespace, with no labels.
#[test]
fn any_pod_finds_a_pod_by_its_service_account() {
    let out = ambit(&["verify", MESH, "--assert", MESH_ASSERTIONS, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let holds: Vec<(&str, bool)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["holds"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        holds,
        [
            ("db-only-from-shop-api", true),
            ("db-only-from-shop-api-tomorrow", false),
            ("ops-cannot-reach-pay", true),
            ("shop-web-reads-the-ledger", false),
        ]
    );
    let c = &v[1]["counterexample"];
    assert_eq!(c["from"], "hypothetical:shop");
    assert_eq!(c["from_labels"], serde_json::json!({}));
    assert_eq!(c["decided_by"][0]["name"], "db-from-api");
    let human = ambit(&["verify", MESH, "--assert", MESH_ASSERTIONS]);
    assert!(
        String::from_utf8_lossy(&human.stdout)
            .contains("hypothetical:shop runs as the service account api"),
        "{}",
        transcript(&human)
    );
}

/// An assertion's finding (verdict and counterexample) does not depend on
/// the assertions before it in the file: each is asked alone.
#[test]
fn each_finding_is_the_one_the_assertion_gets_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (cluster, assertions) in [
        (DEMO, ASSERTIONS),
        (MESH, MESH_ASSERTIONS),
        // A generated cluster (bench/gen_cluster.py, 100 pods) large enough
        // for the solver's search to depend on the terms it has seen.
        (
            "testdata/generated-100",
            "testdata/generated-100/assertions.yaml",
        ),
    ] {
        let all = ambit(&["verify", cluster, "--assert", assertions, "-o", "json"]);
        let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
        let text = fs::read_to_string(root().join(assertions)).unwrap();
        let entries: Vec<&str> = text.split("\n- name:").skip(1).collect();
        assert_eq!(entries.len(), all.as_array().unwrap().len());
        for (i, entry) in entries.iter().enumerate() {
            let file = dir.path().join(format!("one-{i}.yaml"));
            fs::write(&file, format!("assertions:\n- name:{entry}\n")).unwrap();
            let alone = ambit(&[
                "verify",
                cluster,
                "--assert",
                file.to_str().unwrap(),
                "-o",
                "json",
            ]);
            let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
            assert_eq!(alone[0], all[i], "{assertions}: assertion {i}");
        }
    }
}

/// In the any-pod scope, today's workloads come first: an assertion two of
/// them break gets such a pair as its counterexample, not a pod that could
/// be deployed.
#[test]
fn any_pod_shows_todays_workloads_when_they_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("today.yaml");
    fs::write(
        &file,
        "assertions:\n\
         - {name: shop-cannot-reach-data, expect: deny, from: {namespace: shop}, to: {namespace: data}, scope: any-pod}\n\
         - {name: cart-reaches-postgres, expect: allow, from: {workload: shop/cart}, to: {workload: data/postgres}, ports: [{port: 5432}], scope: any-pod}\n",
    )
    .unwrap();
    let out = ambit(&[
        "verify",
        DEMO,
        "--assert",
        file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for a in v.as_array().unwrap() {
        let c = &a["counterexample"];
        assert_eq!(a["holds"], false, "{a}");
        for end in [&c["from"], &c["to"]] {
            let end = end.as_str().unwrap();
            assert!(
                !end.starts_with("hypothetical:") && !end.starts_with("ip:"),
                "{a}"
            );
        }
    }
    assert_eq!(v[1]["counterexample"]["from"], "shop/cart");
    assert_eq!(v[1]["counterexample"]["to"], "data/postgres");
}

#[test]
fn assertions_that_hold_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hold.yaml");
    fs::write(
        &file,
        "assertions:\n\
         - {name: api-reaches-postgres, expect: allow, from: {workload: shop/api}, to: {workload: data/postgres}, ports: [{port: 5432}]}\n\
         - {name: nothing-from-outside-to-data, expect: deny, from: {ipBlock: {cidr: 0.0.0.0/0}}, to: {namespace: data}}\n\
         - {name: redis-only-from-shop, expect: only, from: {namespace: shop}, to: {workload: data/redis}, scope: any-pod}\n",
    )
    .unwrap();
    let out = ambit(&["verify", DEMO, "--assert", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 assertions: 3 hold, 0 violated"));
}

#[test]
fn every_bad_assertion_file_is_a_located_diagnostic() {
    let mut files: Vec<_> = fs::read_dir(root().join("testdata/bad-assertions"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!("testdata/bad-assertions/{stem}.yaml");
        let out = ambit(&["verify", DEMO, "--assert", &rel]);
        assert_located_error(&out, &stem, &rel);
        insta::assert_snapshot!(format!("verify-{stem}"), transcript(&out));
    }
}
