//! `testdata/hostile/`: inputs made to break a parser or exhaust a machine —
//! alias bombs, tags, NUL and Latin-1 bytes, duplicate keys, numbers no
//! integer holds, the extreme ports, IPv6 and the widest CIDRs — and, made
//! here rather than stored, nesting tens of thousands of levels deep,
//! 10,000 policies in one file, megabyte label values and lines, a 20 MB
//! value and a million empty documents.
//!
//! Each gives a located diagnostic (exit 2, nothing written) or a correct
//! result (exit 0), never a panic, within a bounded time and with the
//! process's data segment limited to 1 GiB.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::util::root;

/// The data segment (heap) the command may use, in KiB.
const MEMORY_KIB: u64 = 1 << 20;
/// Far above what any of these takes (a few seconds in a debug build); a
/// hang or a runaway expansion ends here.
const TIME_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code.unwrap_or(-1),
            self.stdout,
            self.stderr
        )
    }
}

/// Run `ambit` in `cwd` with its heap limited (`ulimit -d`) and a time
/// limit.
fn bounded(cwd: &Path, args: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -d {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ambit"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            panic!("`ambit {}` ran past {TIME_LIMIT:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned();
    Run {
        code: status.code(),
        stdout: read(&stdout),
        stderr: read(&stderr),
    }
}

/// A refused input: exit 2, the code, the position, a help line, no output
/// file, no panic, and a report of bounded size whatever the input's.
fn assert_refused(run: &Run, code: &str, at: &str, target: &Path) {
    assert_eq!(run.code, Some(2), "{at}: {}", run.transcript());
    assert!(run.stdout.is_empty(), "{at}: nothing on stdout");
    assert!(run.stderr.contains(code), "{at}: {code}: {}", run.stderr);
    assert!(
        run.stderr.contains(&format!("[{at}:")) || run.stderr.contains(&format!("(at {at}:")),
        "{at}: located: {}",
        run.stderr
    );
    assert!(run.stderr.contains("help:"), "{at}: a help line");
    assert!(!run.stderr.contains("panicked"), "{at}: no panic");
    assert!(
        !run.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{at}: no control characters reach the terminal: {:?}",
        run.stderr
    );
    assert!(
        run.stderr.len() < 4_000,
        "{at}: a report of {} bytes",
        run.stderr.len()
    );
    assert!(!target.exists(), "{at}: no output file");
}

fn compile(cwd: &Path, rel: &str, target: &Path) -> Run {
    bounded(cwd, &["compile", rel, "-o", target.to_str().unwrap()])
}

/// Stored inputs: `ldNNN-*` are refused with that code, `ok-*` compile.
#[test]
fn stored_hostile_inputs_are_refused_with_a_located_diagnostic_or_compile() {
    let mut files: Vec<_> = fs::read_dir(root().join("testdata/hostile"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{files:?}");
    let out = tempfile::tempdir().unwrap();
    for name in files {
        let rel = format!("testdata/hostile/{name}");
        let stem = name.trim_end_matches(".yaml");
        let target = out.path().join(format!("{stem}.json"));
        let run = compile(&root(), &rel, &target);
        if stem.starts_with("ok-") {
            assert_eq!(run.code, Some(0), "{rel}: {}", run.transcript());
            assert!(target.exists(), "{rel}: tables written");
        } else {
            assert_refused(&run, &stem[..5].to_uppercase(), &rel, &target);
            insta::assert_snapshot!(format!("hostile_{stem}"), run.transcript());
        }
    }
}

/// IPv6 pods, `::/0` and `0.0.0.0/0` with excepts, ports 65535 and 1-65535,
/// IPv6 source blocks in an AuthorizationPolicy and `::/0`-wide Admin
/// networks: each flow decided as the documentation says.
#[test]
fn ipv6_the_widest_cidrs_and_the_extreme_ports_are_decided_exactly() {
    let file = "testdata/hostile/ok-ipv6-everywhere.yaml";
    let cases = [
        // ingress on the named port `top` = 65535 only
        ("a/db -> a/web:65535", "allowed"),
        ("a/db -> a/web:65534", "denied"),
        // egress: ::/0 except fd00::/8 (the pods), 0.0.0.0/0 except 10/8
        ("a/web -> a/db:5432", "denied"),
        ("a/web -> ip:[2001:db9::1]:65535", "allowed"),
        ("a/web -> ip:[2001:db9::1]:65534", "denied"),
        ("a/web -> ip:[2001:db9::1]:1/udp", "allowed"),
        ("a/web -> ip:[2001:db9::1]:65535/udp", "allowed"),
        ("a/web -> ip:8.8.8.8:65535", "allowed"),
        ("a/web -> ip:10.1.1.1:65535", "denied"),
        // the Admin tier denies 2001:db8::/32 before the NetworkPolicy allows
        ("a/web -> ip:[2001:db8::1]:65535", "denied"),
        // AuthorizationPolicy: fd00::/64 on 5432; the first rule matches none
        ("ip:[fd00::9] -> a/db:5432", "allowed"),
        ("ip:[fd00::9] -> a/db:5433", "denied"),
        ("ip:[fd01::9] -> a/db:5432", "denied"),
    ];
    let mut got = String::new();
    let mut want = String::new();
    for (query, decision) in cases {
        let run = bounded(&root(), &["query", file, query]);
        let line = run.stdout.lines().next().unwrap_or_default();
        let _ = writeln!(got, "{query}: {}", line.rsplit(": ").next().unwrap());
        let _ = writeln!(want, "{query}: {decision}");
    }
    assert_eq!(got, want);
}

/// Inputs too large to store, written to a temporary directory.
#[test]
fn generated_hostile_inputs_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tables.json");
    let write = |name: &str, text: String| {
        fs::write(dir.path().join(name), text).unwrap();
        name.to_owned()
    };
    let cwd = dir.path();

    // Nesting: block sequences 20,000 levels deep, flow 100,000 deep.
    let deep: String = (0..20_000)
        .map(|i| format!("{}-\n", " ".repeat(i)))
        .collect();
    let path = write("deep-block.yaml", deep);
    let run = compile(cwd, &path, &out);
    assert_refused(&run, "LD001", &path, &out);
    assert!(run.stderr.contains("nesting deeper than 128 levels"));
    let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let path = write("deep-flow.yaml", flow);
    assert_refused(&compile(cwd, &path, &out), "LD001", &path, &out);

    // A label value of a megabyte: the report quotes its start and end.
    let long = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: a, labels: {{app: {}}}}}\nspec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: 10.0.0.1}}\n",
        "x".repeat(1_000_000)
    );
    let path = write("long-label.yaml", long);
    let run = compile(cwd, &path, &out);
    assert_refused(&run, "LD010", &path, &out);
    assert!(run.stderr.contains("characters left out"), "{}", run.stderr);

    // An error 200,000 columns into a line: named, not quoted.
    let wide = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: a, labels: {{{}: v}}}}\nspec: {{containers: [{{name: c, image: i}}]}}\nstatus: {{podIP: 10.0.0.1}}\n",
        "k".repeat(200_000)
    );
    let path = write("wide.yaml", wide);
    let run = compile(cwd, &path, &out);
    assert_refused(&run, "LD010", &path, &out);
    assert!(run.stderr.contains(&format!("(at {path}:3:200046)")));

    // A 20 MB value in an object ambit reads past, a million empty
    // documents: compiled, nothing in them.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: a}}\ndata: {{x: {}}}\n",
        "y".repeat(20_000_000)
    );
    let path = write("big-value.yaml", big);
    let run = compile(cwd, &path, &out);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let path = write("empty-documents.yaml", "---\n".repeat(1_000_000));
    let run = compile(cwd, &path, &out);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    assert!(
        run.stderr.contains("compiled 0 workloads"),
        "{}",
        run.stderr
    );

    // 10,000 NetworkPolicies in one file, each admitting one port of `web`
    // from `client`: compiled, and decided exactly at both ends.
    let mut many = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: a, labels: {app: web}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: a, labels: {app: client}}\nspec: {containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.0.2}\n",
    );
    for i in 0..10_000 {
        let _ = write!(
            many,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}, namespace: a}}\nspec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]\n    ports: [{{port: {}}}]\n",
            1000 + i
        );
    }
    let path = write("many.yaml", many);
    let run = compile(cwd, &path, &out);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    assert!(run.stderr.contains("10000 policies"), "{}", run.stderr);
    let probes = write(
        "probes.yaml",
        [999, 1000, 10999, 11000]
            .map(|port| format!("- {{from: a/client, to: a/web, port: {port}}}\n"))
            .concat(),
    );
    let run = bounded(cwd, &["query", &path, "--probes", &probes, "-o", "json"]);
    let answers: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let decisions: Vec<_> = answers.iter().map(|a| a["allowed"].as_bool()).collect();
    assert_eq!(
        decisions,
        [Some(false), Some(true), Some(true), Some(false)],
        "{}",
        run.stdout
    );
}
