//! `ambit graph`: the three formats on the demo, multi-hop paths on a
//! fixture made for them, and what a workload reaches in K hops.

use super::util::{ambit, transcript};

#[test]
fn the_demo_in_every_format() {
    for format in ["dot", "mermaid", "json"] {
        for by in ["workload", "namespace"] {
            let out = ambit(&["graph", "testdata/demo", "-o", format, "--by", by]);
            assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
            insta::assert_snapshot!(format!("graph-{format}-{by}"), transcript(&out));
        }
    }
}

#[test]
fn json_lists_strongly_connected_components() {
    let out = ambit(&["graph", "testdata/demo", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sccs = v["sccs"].as_array().unwrap();
    // coredns, node-exporter and prometheus reach each other on every port.
    assert!(sccs.iter().any(|c| {
        c.as_array()
            .unwrap()
            .contains(&"kube-system/coredns".into())
    }));
}

#[test]
fn path_finds_the_two_hop_route() {
    let out = ambit(&[
        "graph",
        "testdata/graph",
        "--path",
        "edge/jump",
        "secure/vault",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("edge/jump -[TCP 8080]-> edge/app -[TCP 8200]-> secure/vault"),
        "{text}"
    );
    insta::assert_snapshot!(transcript(&out));
    let json = ambit(&[
        "graph",
        "testdata/graph",
        "--path",
        "edge/jump",
        "secure/vault",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0].as_array().unwrap().len(), 2, "two hops");
    // No way back.
    let back = ambit(&[
        "graph",
        "testdata/graph",
        "--path",
        "secure/vault",
        "edge/jump",
    ]);
    assert_eq!(back.status.code(), Some(1));
}

#[test]
fn from_with_hops_keeps_what_is_reached() {
    let one = ambit(&[
        "graph",
        "testdata/graph",
        "--from",
        "edge/jump",
        "--hops",
        "1",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 2);
    let two = ambit(&[
        "graph",
        "testdata/graph",
        "--from",
        "edge/jump",
        "--hops",
        "2",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(v["edges"].as_array().unwrap().len(), 2);
    insta::assert_snapshot!(transcript(&ambit(&[
        "graph",
        "testdata/demo",
        "--from",
        "frontend/web",
        "--hops",
        "2"
    ])));
}

#[test]
fn unknown_nodes_are_errors() {
    let out = ambit(&[
        "graph",
        "testdata/graph",
        "--path",
        "edge/jmp",
        "secure/vault",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no workload"));
}
