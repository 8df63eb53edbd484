//! `ambit matrix` in its three formats.

use super::util::{ambit, transcript};

#[test]
fn table_on_every_port() {
    insta::assert_snapshot!(
        "demo_table",
        transcript(&ambit(&["matrix", "testdata/demo"]))
    );
}

#[test]
fn table_on_one_port() {
    let out = ambit(&[
        "matrix",
        "testdata/conformance/netpol/cluster.yaml",
        "testdata/conformance/netpol/17-ns-or-pod-selector-two-peers/policies.yaml",
        "--port",
        "80",
    ]);
    insta::assert_snapshot!("conformance_table_port_80", transcript(&out));
}

#[test]
fn csv_and_json() {
    let csv = ambit(&["matrix", "testdata/demo", "-o", "csv", "--port", "5432"]);
    assert_eq!(csv.status.code(), Some(0));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("from,to,port,protocol,allowed"));
    assert_eq!(text.lines().count(), 1 + 9 * 9);
    assert!(text.contains("shop/api,data/postgres,5432,TCP,true"));
    assert!(text.contains("shop/cart,data/postgres,5432,TCP,false"));

    let json = ambit(&["matrix", "testdata/demo", "-o", "json"]);
    let pairs: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(pairs.len(), 81);
    let api_pg = pairs
        .iter()
        .find(|p| p["from"] == "shop/api" && p["to"] == "data/postgres")
        .unwrap();
    assert_eq!(
        api_pg["allowed_ports"],
        serde_json::json!([{"protocol": "TCP", "port": 5432, "endPort": 5432}])
    );
    insta::assert_snapshot!(
        "demo_csv_all_ports",
        transcript(&ambit(&["matrix", "testdata/demo", "-o", "csv"]))
    );
}
