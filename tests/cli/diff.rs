//! `ambit diff`: the flows a change opens and closes, checked against
//! `ambit query` on both sides; equivalence as a proof; workloads on one
//! side only; `--git` in a repository made by the test.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use super::util::{ambit, ambit_in, root, transcript};

const BASE: &str = "testdata/diff/base";

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", transcript(out)))
}

/// A flow: from, to, port, protocol.
type Flow = (String, String, u16, String);

/// Every flow of a diff list, expanded over `ports` (the ports the check
/// asks about).
fn covered(list: &serde_json::Value, probes: &[Flow]) -> BTreeSet<Flow> {
    let mut out = BTreeSet::new();
    for e in list.as_array().unwrap() {
        for (from, to, port, proto) in probes {
            if e["from"] != *from || e["to"] != *to {
                continue;
            }
            let hit = e["ports"].as_array().unwrap().iter().any(|r| {
                r["protocol"] == *proto
                    && r["port"].as_u64().unwrap() <= *port as u64
                    && *port as u64 <= r["endPort"].as_u64().unwrap()
            });
            if hit {
                out.insert((from.clone(), to.clone(), *port, proto.clone()));
            }
        }
    }
    out
}

/// What `ambit query` allows, per probe.
fn allowed(dir: &str, probes_file: &Path, probes: &[Flow]) -> Vec<bool> {
    let out = ambit(&[
        "query",
        dir,
        "--probes",
        probes_file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let answers = json(&out);
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), probes.len());
    answers
        .iter()
        .map(|a| a["allowed"].as_bool().unwrap())
        .collect()
}

/// The diff of BASE and `head` lists exactly the probes whose `ambit query`
/// answer changes, over every pair of `workloads` present on both sides, on
/// ports around those the policies name, TCP and UDP.
fn check_against_query(head: &str, workloads: &[&str]) -> serde_json::Value {
    let out = ambit(&["diff", BASE, head, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let d = json(&out);
    let mut probes: Vec<Flow> = Vec::new();
    for from in workloads {
        for to in workloads {
            for port in [1, 53, 5431, 5432, 5433, 5434, 6379, 8080, 65535] {
                for proto in ["TCP", "UDP"] {
                    probes.push((from.to_string(), to.to_string(), port, proto.into()));
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probes.yaml");
    let text: String = probes
        .iter()
        .map(|(f, t, p, pr)| format!("- {{from: {f}, to: {t}, port: {p}, protocol: {pr}}}\n"))
        .collect();
    fs::write(&file, text).unwrap();
    let (before, after) = (allowed(BASE, &file, &probes), allowed(head, &file, &probes));
    let expect = |want: (bool, bool)| -> BTreeSet<Flow> {
        probes
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| (**b, **a) == want)
            .map(|(p, _)| p.clone())
            .collect()
    };
    assert_eq!(
        covered(&d["opened"], &probes),
        expect((false, true)),
        "{head}: opened"
    );
    assert_eq!(
        covered(&d["closed"], &probes),
        expect((true, false)),
        "{head}: closed"
    );
    // Each entry's witness is a flow of the entry.
    for e in d["opened"]
        .as_array()
        .unwrap()
        .iter()
        .chain(d["closed"].as_array().unwrap())
    {
        let w = &e["witness"];
        assert!(e["from"].as_str().unwrap().starts_with("ip:") || w["from"] == e["from"]);
        assert_eq!(w["to"], e["to"]);
    }
    d
}

#[test]
fn an_added_allow_rule_opens_exactly_what_query_says() {
    let head = "testdata/diff/add-allow";
    let d = check_against_query(head, &["shop/web", "shop/api", "pay/db"]);
    assert_eq!(d["equivalent"], false);
    assert_eq!(
        d.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "opened",
            "closed",
            "equivalent",
            "added_workloads",
            "removed_workloads"
        ]
    );
    assert_eq!(d["opened"].as_array().unwrap().len(), 1);
    assert_eq!(d["closed"], serde_json::json!([]));
    let human = ambit(&["diff", BASE, head]);
    insta::assert_snapshot!("add_allow", transcript(&human));
    let md = ambit(&["diff", BASE, head, "-o", "markdown"]);
    insta::assert_snapshot!("add_allow_markdown", transcript(&md));
}

#[test]
fn a_refactor_is_equivalent() {
    let out = ambit(&["diff", BASE, "testdata/diff/refactor", "-o", "json"]);
    let d = json(&out);
    assert_eq!(d["equivalent"], true, "{d}");
    assert_eq!(d["opened"], serde_json::json!([]));
    let human = ambit(&["diff", BASE, "testdata/diff/refactor", "--fail-on", "any"]);
    assert_eq!(human.status.code(), Some(0));
    insta::assert_snapshot!("refactor", transcript(&human));
}

#[test]
fn workloads_on_one_side_and_outside_addresses() {
    let d = check_against_query("testdata/diff/churn", &["shop/api", "pay/db"]);
    assert_eq!(d["added_workloads"], serde_json::json!(["pay/cache"]));
    assert_eq!(d["removed_workloads"], serde_json::json!(["shop/web"]));
    // Flows of added or removed workloads are not opened or closed.
    for list in ["opened", "closed"] {
        for e in d[list].as_array().unwrap() {
            for end in [&e["from"], &e["to"]] {
                assert!(end != "pay/cache" && end != "shop/web", "{e}");
            }
        }
    }
    // The excepted part of the ipBlock, as a maximal CIDR.
    let closed = d["closed"].as_array().unwrap();
    assert!(
        closed
            .iter()
            .any(|e| e["from"] == "ip:192.0.2.128/26" && e["to"] == "shop/api"),
        "{d}"
    );
    for (fail_on, code) in [("opened", 1), ("closed", 1), ("any", 1)] {
        let out = ambit(&["diff", BASE, "testdata/diff/churn", "--fail-on", fail_on]);
        assert_eq!(out.status.code(), Some(code), "--fail-on {fail_on}");
    }
    insta::assert_snapshot!(
        "churn",
        transcript(&ambit(&["diff", BASE, "testdata/diff/churn"]))
    );
}

#[test]
fn usage_and_input_errors_exit_2() {
    let out = ambit(&["diff", BASE]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = ambit(&["diff", BASE, "testdata/bad/ld003-invalid-cidr.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LD003"));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn git_revisions_are_read_without_touching_the_working_tree() {
    let repo = tempfile::tempdir().unwrap();
    let deploy = repo.path().join("deploy");
    fs::create_dir_all(&deploy).unwrap();
    let copy = |fixture: &str| {
        fs::copy(
            root()
                .join("testdata/diff")
                .join(fixture)
                .join("cluster.yaml"),
            deploy.join("cluster.yaml"),
        )
        .unwrap();
    };
    git(repo.path(), &["init", "-q", "-b", "main"]);
    copy("base");
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "base"]);
    copy("add-allow");
    git(repo.path(), &["commit", "-q", "-a", "-m", "web reaches db"]);
    // The working tree now holds the refactor, uncommitted.
    copy("refactor");
    let before = fs::read_to_string(deploy.join("cluster.yaml")).unwrap();

    let out = ambit_in(
        repo.path(),
        &["diff", "--git", "main~1..main", "deploy", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let d = json(&out);
    assert_eq!(d["opened"][0]["from"], "shop/web");
    assert_eq!(d["opened"][0]["to"], "pay/db");
    // REV alone: against the working tree (the refactor of the base).
    let out = ambit_in(
        repo.path(),
        &["diff", "--git", "main~1", "deploy", "-o", "json"],
    );
    assert_eq!(json(&out)["equivalent"], true, "{}", transcript(&out));
    // From a subdirectory, paths are relative to it.
    let out = ambit_in(
        &deploy,
        &["diff", "--git", "main~1..main", ".", "-o", "json"],
    );
    assert_eq!(
        json(&out)["opened"][0]["to"],
        "pay/db",
        "{}",
        transcript(&out)
    );
    assert_eq!(
        fs::read_to_string(deploy.join("cluster.yaml")).unwrap(),
        before
    );
    // An unknown revision is an input error.
    let out = ambit_in(repo.path(), &["diff", "--git", "nope..main", "deploy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is not a revision"));
}
