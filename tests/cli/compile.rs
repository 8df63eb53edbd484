//! `ambit compile`: the tables are deterministic byte for byte whatever the
//! order of files and documents, written atomically, and readable back.

use std::fs;

use ambit_compiler::table::Tables;

use super::util::{ambit, ambit_in, root, testdata};

/// Split a multi-document file into its documents.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.starts_with("---") {
            docs.push(String::new());
        } else {
            let d = docs.last_mut().unwrap();
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .collect()
}

#[test]
fn tables_do_not_depend_on_file_or_document_order() {
    let demo = testdata("demo");
    let a = ambit(&["compile", "testdata/demo", "-o", "json"]);
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );

    // The same documents, reversed and split into files in another order.
    let mut docs = Vec::new();
    let mut stack = vec![demo];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                docs.extend(documents(&fs::read_to_string(&p).unwrap()));
            }
        }
    }
    docs.reverse();
    let tmp = tempfile::tempdir().unwrap();
    for (i, chunk) in docs.chunks(3).enumerate() {
        fs::write(
            tmp.path().join(format!("{:02}.yaml", 99 - i)),
            chunk.join("---\n"),
        )
        .unwrap();
    }
    let b = ambit_in(tmp.path(), &["compile", ".", "-o", "json"]);
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
}

#[test]
fn tables_round_trip_and_are_written_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tables.json");
    let out = ambit(&["compile", "testdata/demo", "-o", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let bytes = fs::read(&path).unwrap();
    let tables = Tables::from_json(&bytes).expect("the written tables read back");
    assert_eq!(
        tables.to_json().as_bytes(),
        &bytes[..],
        "serialization round-trips"
    );
    assert!(tables.input_hash.starts_with("sha256:"));
    // Only the target is left in the directory: no temporary files.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_table_from_another_format_is_refused() {
    let out = ambit(&["compile", "testdata/demo", "-o", "json"]);
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("ambit.tables/v1", "ambit.tables/v0");
    assert!(Tables::from_json(text.as_bytes()).is_err());
    assert!(Tables::from_json(b"{\"format\": 1}").is_err());
}

#[test]
fn workloads_of_one_shape_share_a_class() {
    // 9 pods of the conformance cluster: x/a, y/a, z/a differ only by namespace;
    // a deny-all makes no difference to the grouping.
    let out = ambit(&[
        "compile",
        "testdata/conformance/netpol/cluster.yaml",
        "-o",
        "json",
    ]);
    let t = Tables::from_json(&out.stdout).unwrap();
    assert_eq!(t.workloads.len(), 10);
    assert_eq!(
        t.classes.len(),
        10,
        "labels differ per pod, namespaces differ"
    );
    let _ = root();
}
