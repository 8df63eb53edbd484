//! Every class of bad input in `testdata/bad/`: a diagnostic with its code, the
//! file, line and column, and a help line; exit code 2; no panic; no output
//! file left behind.

use std::fs;

use super::util::{ambit, assert_located_error, root, transcript};

#[test]
fn every_bad_input_is_a_located_diagnostic() {
    let mut files: Vec<_> = fs::read_dir(root().join("testdata/bad"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15);
    let out_dir = tempfile::tempdir().unwrap();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!("testdata/bad/{stem}.yaml");
        let target = out_dir.path().join("tables.json");
        let out = ambit(&["compile", &rel, "-o", target.to_str().unwrap()]);
        assert_located_error(&out, &stem, &rel);
        assert!(!target.exists(), "{stem}: no output file on bad input");
        insta::assert_snapshot!(stem, transcript(&out));
    }
}

/// Warnings (`testdata/warnings/`) are located like errors but do not stop
/// the command: the tables are written and the exit code is 0.
#[test]
fn warnings_are_located_and_do_not_stop_compiling() {
    let mut files: Vec<_> = fs::read_dir(root().join("testdata/warnings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let out_dir = tempfile::tempdir().unwrap();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!("testdata/warnings/{stem}.yaml");
        let target = out_dir.path().join(format!("{stem}.json"));
        let out = ambit(&["compile", &rel, "-o", target.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{stem}: {}", transcript(&out));
        assert!(target.exists(), "{stem}: tables written");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = stem[..5].to_uppercase();
        assert!(stderr.contains(&code), "{stem}: reports {code}:\n{stderr}");
        assert!(stderr.contains(&format!("[{rel}:")), "{stem}: located");
        let stderr = stderr.replace(target.to_str().unwrap(), "TABLES");
        let stdout =
            String::from_utf8_lossy(&out.stdout).replace(target.to_str().unwrap(), "TABLES");
        insta::assert_snapshot!(
            format!("warning_{stem}"),
            format!("{stdout}--- stderr\n{stderr}")
        );
    }
}

#[test]
fn json_diagnostics_carry_code_file_line_and_column() {
    let out = ambit(&[
        "query",
        "testdata/bad/ld003-invalid-cidr.yaml",
        "--from",
        "a/b",
        "--to",
        "c/d",
        "--port",
        "80",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!("json_diagnostics", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn one_bad_object_fails_alone_and_every_problem_is_reported() {
    // Two bad policies and a good one in one file: both problems are reported.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    fs::write(
        &file,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ok, namespace: x}\nspec: {podSelector: {}}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Sideways]\n",
    )
    .unwrap();
    let out = ambit(&["compile", file.to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LD005") && stderr.contains("LD008"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// The README's table lists every diagnostic code with its name.
#[test]
fn the_readme_lists_every_code() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    for code in ambit_compiler::diag::Code::ALL {
        let row = format!("| {} | {} |", code.as_str(), code.name());
        assert!(readme.contains(&row), "README lacks the row `{row}`");
    }
}
