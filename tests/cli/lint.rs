//! `ambit lint` and `ambit rules`: every rule fires on its bad fixture and
//! not on its good one (snapshots of the human output of both), the output
//! formats (SARIF validated against the SARIF 2.1.0 schema, GitHub workflow
//! commands, JSON), configuration, annotations and exit codes.

use std::fs;

use ambit_compiler::diag::Code;

use super::util::{ambit, ambit_in, root, transcript};

fn codes(out: &std::process::Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", transcript(out)));
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_rule_fires_on_its_bad_fixture_and_not_on_its_good_one() {
    let rules = ambit_lint::rule_codes();
    assert!(rules.len() >= 15, "{} rules", rules.len());
    for code in rules {
        let dir = format!("testdata/lint/{code}");
        for (which, fires) in [("bad", true), ("good", false)] {
            let file = format!("{dir}/{which}.yaml");
            let out = ambit(&["lint", &file, "-o", "json", "--fail-on", "info"]);
            let found = codes(&out);
            assert_eq!(
                found.contains(&code.as_str().to_owned()),
                fires,
                "{file}: {found:?}"
            );
            let human = ambit(&["lint", &file, "--fail-on", "info"]);
            assert!(!String::from_utf8_lossy(&human.stderr).contains("panicked"));
            insta::assert_snapshot!(format!("lint_{code}_{which}"), transcript(&human));
        }
        // The registry shows these very fixtures as its examples.
        let doc = ambit_lint::registry::doc(code);
        for (which, shown) in [("bad", doc.bad), ("good", doc.good)] {
            let file = fs::read_to_string(root().join(&dir).join(format!("{which}.yaml"))).unwrap();
            assert_eq!(shown, file);
        }
    }
}

/// Each loading code's good example (`testdata/good/CODE.yaml`, the fixed
/// counterpart of its file in `testdata/bad/`) loads without it, and the
/// registry shows both.
#[test]
fn every_loading_code_has_a_fixed_example() {
    let mut checked = 0;
    for code in Code::ALL.iter().filter(|c| c.as_str().starts_with("LD")) {
        let good = root().join(format!("testdata/good/{code}.yaml"));
        let doc = ambit_lint::registry::doc(*code);
        assert!(!doc.explanation.is_empty() && !doc.bad.is_empty() && !doc.good.is_empty());
        if !good.exists() {
            // Not about a policy file: the path itself, the configuration.
            assert!(
                matches!(*code, Code::UnreadablePath | Code::InvalidConfig),
                "{code} has no testdata/good file"
            );
            continue;
        }
        assert_eq!(doc.good, fs::read_to_string(&good).unwrap());
        let rel = format!("testdata/good/{code}.yaml");
        let out = ambit(&["lint", &rel, "-o", "json", "--fail-on", "error"]);
        assert_eq!(out.status.code(), Some(0), "{rel}: {}", transcript(&out));
        assert!(!codes(&out).contains(&code.as_str().to_owned()), "{rel}");
        checked += 1;
    }
    assert_eq!(checked, 33);
}

#[test]
fn rules_lists_every_code_and_explains_one() {
    let out = ambit(&["rules"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for code in Code::ALL {
        assert!(text.contains(code.as_str()), "lists {code}");
    }
    insta::assert_snapshot!("rules_list", text);
    let one = ambit(&["rules", "NP009"]);
    assert_eq!(one.status.code(), Some(0));
    insta::assert_snapshot!("rules_np009", transcript(&one));
    let unknown = ambit(&["rules", "NP09"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("did you mean `NP009`?"));
}

fn sarif_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(root().join("testdata/sarif-schema-2.1.0.json")).unwrap(),
    )
    .unwrap();
    // testdata/sarif-schema-2.1.0.json is the OASIS schema as published,
    // but for one stray `]` in the `language` pattern (twice), which a strict
    // ECMA-262 regex check of the schema refuses.
    jsonschema::draft7::new(&schema).expect("the SARIF schema compiles")
}

#[test]
fn sarif_validates_against_the_schema() {
    let validator = sarif_validator();
    // Findings of every family, loading errors included.
    let lint = |files: &[&str]| {
        let mut args = vec!["lint", "-o", "sarif"];
        args.extend(files);
        let out = ambit(&args);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&log)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "ambit");
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), Code::ALL.len());
        log
    };
    let mesh = lint(&["testdata/lint/AP001/bad.yaml"]);
    let results = mesh["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "AP001"));
    let log = lint(&[
        "testdata/lint/NP003/bad.yaml",
        "testdata/bad/ld003-invalid-cidr.yaml",
    ]);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    for want in ["NP003", "RX101", "LD003"] {
        assert!(ids.contains(&want), "{ids:?}");
    }
    let ld003 = results.iter().find(|r| r["ruleId"] == "LD003").unwrap();
    assert_eq!(ld003["level"], "error");
    let region = &ld003["locations"][0]["physicalLocation"];
    assert_eq!(
        region["artifactLocation"]["uri"],
        "testdata/bad/ld003-invalid-cidr.yaml"
    );
    assert!(region["region"]["startLine"].as_i64().unwrap() > 1);
    assert!(region["region"]["startColumn"].as_i64().unwrap() >= 1);
    // The validator is not a rubber stamp: a broken log fails it.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    broken.as_object_mut().unwrap().remove("version");
    assert!(validator.iter_errors(&broken).count() >= 2);
}

#[test]
fn github_workflow_commands() {
    let out = ambit(&[
        "lint",
        "testdata/lint/NP009/bad.yaml",
        "testdata/bad/ld006-end-port-below-port.yaml",
        "-o",
        "github",
    ]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("github", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn fail_on_sets_the_exit_code() {
    let file = "testdata/lint/NP009/bad.yaml"; // a warning and infos
    for (fail_on, code) in [("info", 1), ("warning", 1), ("error", 0)] {
        let out = ambit(&["lint", file, "--fail-on", fail_on]);
        assert_eq!(out.status.code(), Some(code), "--fail-on {fail_on}");
    }
    // Loading errors are findings of level error.
    let out = ambit(&[
        "lint",
        "testdata/bad/ld004-except-outside-cidr.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(codes(&out).contains(&"LD004".to_owned()));
    // A path that cannot be read is exit 2, and JSON still says what was found.
    let out = ambit(&["lint", file, "no/such/dir", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let found = codes(&out);
    assert!(found.contains(&"LD000".to_owned()) && found.contains(&"NP009".to_owned()));
}

#[test]
fn configuration_disables_rules_changes_severities_and_ignores_paths() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    let vendor = dir.path().join("vendor");
    fs::create_dir_all(&policies).unwrap();
    fs::create_dir_all(&vendor).unwrap();
    let bad = fs::read_to_string(root().join("testdata/lint/NP009/bad.yaml")).unwrap();
    fs::write(policies.join("api.yaml"), &bad).unwrap();
    fs::write(
        vendor.join("split.yaml"),
        fs::read_to_string(root().join("testdata/lint/NP011/bad.yaml"))
            .unwrap()
            .replace("api-from-web", "vendored"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = ambit_in(dir.path(), args);
        (out.status.code(), codes(&out))
    };
    // No configuration: everything.
    let (_, all) = run(&[
        "lint",
        "policies",
        "vendor",
        "-o",
        "json",
        "--fail-on",
        "info",
    ]);
    assert!(
        all.contains(&"NP009".into()) && all.contains(&"NP011".into()),
        "{all:?}"
    );
    fs::write(
        dir.path().join(".ambit.yaml"),
        "rules:\n  NP008: off\n  RX101: off\n  NP009: info\nignore:\n  - vendor/**\n",
    )
    .unwrap();
    // Found upward from the first path.
    let (code, found) = run(&["lint", "policies", "vendor", "-o", "json"]);
    assert_eq!(found, ["NP009"], "NP009 only, as info");
    assert_eq!(code, Some(0), "an info does not fail at --fail-on warning");
    let out = ambit_in(dir.path(), &["lint", "policies", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["severity"], "info");
    // A bad configuration is a usage error, located.
    fs::write(
        dir.path().join("broken.yaml"),
        "rules:\n  NP999: off\n  NP003: loud\nignored: []\n",
    )
    .unwrap();
    let out = ambit_in(dir.path(), &["lint", "policies", "--config", "broken.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("bad_config", transcript(&out));
}

#[test]
fn an_annotation_silences_a_rule_on_its_resource() {
    let dir = tempfile::tempdir().unwrap();
    let bad = fs::read_to_string(root().join("testdata/lint/NP009/bad.yaml")).unwrap();
    let silenced = bad.replace(
        "  name: api-from-web\n",
        "  name: api-from-web\n  annotations:\n    ambit.dev/ignore: NP009,NP003\n",
    );
    assert_ne!(bad, silenced);
    fs::write(dir.path().join("p.yaml"), silenced).unwrap();
    let out = ambit_in(
        dir.path(),
        &["lint", "p.yaml", "-o", "json", "--fail-on", "info"],
    );
    let found = codes(&out);
    assert!(!found.contains(&"NP009".into()), "{found:?}");
    assert!(
        found.contains(&"RX101".into()),
        "other rules and resources still run"
    );
}

/// One rule opens two workloads to an outside range on a named port that
/// each resolves to its own number: each example names its own port.
#[test]
fn outside_examples_resolve_named_ports_per_workload() {
    let out = ambit(&[
        "lint",
        "testdata/lint-cases/rx101-named-ports.yaml",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut examples: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "RX101")
        .map(|d| d["message"].as_str().unwrap().to_owned())
        .collect();
    examples.sort();
    assert_eq!(
        examples,
        [
            "`shop/admin` accepts connections from outside the cluster, e.g. from 198.51.100.0 on TCP 9090",
            "`shop/api` accepts connections from outside the cluster, e.g. from 198.51.100.0 on TCP 8080",
        ],
        "{}",
        transcript(&out)
    );
}

#[test]
fn the_demo_cluster() {
    let out = ambit(&["lint", "testdata/demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    insta::assert_snapshot!("demo", transcript(&out));
    // README shows this very output.
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains(&*String::from_utf8_lossy(&out.stdout)));
}

#[test]
fn the_ci_examples_parse_and_their_commands_run() {
    for f in [
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
        ".pre-commit-hooks.yaml",
    ] {
        let text = fs::read_to_string(root().join(f)).unwrap();
        let _: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        let mut ran = 0;
        // Every `ambit diff --git REVS …` line, on the demo, with the
        // revisions of this repository.
        for line in text.lines().filter(|l| l.contains("ambit diff --git")) {
            let start = line.find("ambit diff").unwrap();
            let command = line[start..]
                .split(" >")
                .next()
                .unwrap()
                .split(" |")
                .next()
                .unwrap();
            let mut args: Vec<&str> = Vec::new();
            let mut words = command.split_whitespace().skip(1);
            while let Some(a) = words.next() {
                match a {
                    "--git" => {
                        words.next();
                        args.extend(["--git", "HEAD..HEAD"]);
                    }
                    "\"$POLICIES\"" => args.push("testdata/demo"),
                    other => args.push(other),
                }
            }
            let out = ambit(&args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{f}: {command}: {}",
                transcript(&out)
            );
            ran += 1;
        }
        for line in text
            .lines()
            .filter(|l| l.contains("ambit lint \"$POLICIES\""))
        {
            let start = line.find("ambit lint").unwrap();
            let command = line[start..]
                .split(" >")
                .next()
                .unwrap()
                .split(" ||")
                .next()
                .unwrap();
            let args: Vec<&str> = command
                .split_whitespace()
                .skip(1)
                .map(|a| {
                    if a == "\"$POLICIES\"" {
                        "testdata/demo"
                    } else {
                        a
                    }
                })
                .collect();
            let out = ambit(&args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{f}: {command}: {}",
                transcript(&out)
            );
            ran += 1;
        }
        assert!(ran > 0 || f.starts_with(".pre-commit"), "{f} runs ambit");
    }
}

/// NP008 three ways: a policy selecting every pod settles it, a pod
/// without labels that no policy selects is the example, and otherwise the
/// solver finds a pod the selectors leave out (or proves there is none).
#[test]
fn no_default_deny_finds_the_pod_left_out() {
    let namespace = |name: &str, selectors: &[&str]| {
        let mut out = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {name}\n  labels: {{app: web}}\nspec:\n  containers:\n  - name: web\n    image: registry.example/web:1\nstatus:\n  podIP: 10.244.1.{}\n",
            name.len()
        );
        for (i, sel) in selectors.iter().enumerate() {
            out.push_str(&format!(
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p{i}\n  namespace: {name}\nspec:\n  podSelector: {sel}\n  policyTypes: [Ingress]\n"
            ));
        }
        out
    };
    let dir = tempfile::tempdir().unwrap();
    let cluster = [
        // Every pod, spelled as a selector matching everything.
        namespace("a", &["{}"]),
        // Every pod, in two halves only the solver puts together.
        namespace(
            "bb",
            &[
                "{matchExpressions: [{key: app, operator: Exists}]}",
                "{matchExpressions: [{key: app, operator: DoesNotExist}]}",
            ],
        ),
        // The api pods only: a pod without labels is left out.
        namespace("ccc", &["{matchLabels: {app: api}}"]),
        // Every pod but the web ones (a pod without labels is selected).
        namespace(
            "dddd",
            &["{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}"],
        ),
    ]
    .join("---\n");
    fs::write(dir.path().join("cluster.yaml"), cluster).unwrap();
    let out = ambit_in(
        dir.path(),
        &["lint", "cluster.yaml", "-o", "json", "--fail-on", "info"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", transcript(&out)));
    let found: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "NP008")
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        [
            "no NetworkPolicy isolates every pod of namespace `ccc` for ingress: a pod without labels would accept connections from anywhere",
            "no NetworkPolicy isolates every pod of namespace `dddd` for ingress: a pod labelled `app=web` would accept connections from anywhere",
        ],
        "{}",
        transcript(&out)
    );
}
