//! The query language of `ambit query PATHS 'EXPR'`: every form, in human
//! and JSON output, and malformed queries pointed at with a caret (exit 2).

use super::util::{ambit, transcript};

const DEMO: &str = "testdata/demo";

/// (snapshot name, query, exit code)
const QUERIES: &[(&str, &str, i32)] = &[
    ("flow", "shop/api -> data/postgres:5432", 0),
    ("flow-udp-denied", "shop/api -> data/postgres:5432/udp", 1),
    ("who", "who -> data/postgres:5432", 0),
    ("reaches", "shop/api -> *", 0),
    (
        "selectors",
        "ns:env=prod,app=api -> ns:data/app in (postgres,redis):5432",
        0,
    ),
    (
        "selector-sets",
        "ns:tier=backend,app!=payments -> ns:data",
        0,
    ),
    ("http", "frontend/web -> shop/api:8080 GET /v1/orders", 0),
    ("address", "ip:198.51.100.7 -> *:8080", 0),
    ("empty-selector", "ns:env=dev -> *", 0),
];

#[test]
fn every_form_in_human_output() {
    for (name, q, code) in QUERIES {
        let out = ambit(&["query", DEMO, q]);
        assert_eq!(out.status.code(), Some(*code), "{q}: {}", transcript(&out));
        insta::assert_snapshot!(format!("expr-{name}"), transcript(&out));
    }
}

#[test]
fn every_form_in_json() {
    for (name, q, code) in QUERIES {
        let out = ambit(&["query", DEMO, q, "-o", "json"]);
        assert_eq!(out.status.code(), Some(*code), "{q}: {}", transcript(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.is_array(), "{q}: a list");
        insta::assert_snapshot!(format!("expr-json-{name}"), transcript(&out));
    }
}

/// A single flow answers with the probe contract, like `--from/--to/--port`.
#[test]
fn a_single_flow_is_the_probe_answer() {
    let expr = ambit(&[
        "query",
        DEMO,
        "shop/api -> data/postgres:5432",
        "-o",
        "json",
    ]);
    let flags = ambit(&[
        "query",
        DEMO,
        "--from",
        "shop/api",
        "--to",
        "data/postgres",
        "--port",
        "5432",
        "-o",
        "json",
    ]);
    assert_eq!(expr.stdout, flags.stdout);
}

#[test]
fn malformed_queries_point_at_the_column() {
    for (name, q) in [
        ("missing-arrow", "shop/api data/postgres:5432"),
        ("bad-port", "shop/api -> data/postgres:99999"),
        ("bad-protocol", "shop/api -> data/postgres:5432/icmp"),
        ("bad-set", "shop/api -> ns:data/app in postgres"),
        ("no-target", "shop/api ->"),
        ("lowercase-method", "frontend/web -> shop/api:8080 get /v1"),
        ("unknown-workload", "shop/api -> data/postgress:5432"),
    ] {
        let out = ambit(&["query", DEMO, q]);
        assert_eq!(out.status.code(), Some(2), "{q}: {}", transcript(&out));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("[<query>:1:"), "{q}: located:\n{stderr}");
        assert!(stderr.contains('─'), "{q}: a caret line:\n{stderr}");
        insta::assert_snapshot!(format!("expr-error-{name}"), transcript(&out));
    }
}
