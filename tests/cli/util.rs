use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(rel: &str) -> PathBuf {
    root().join("testdata").join(rel)
}

/// Run `ambit` with `args` from the repository root (so paths in output are
/// relative and stable).
pub fn ambit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ambit"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the ambit binary runs")
}

pub fn ambit_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ambit"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the ambit binary runs")
}

/// stdout, stderr and the exit code as one text, for snapshots.
pub fn transcript(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bad input's run: exit 2, nothing on stdout, the code of the file's
/// name prefix (`ld003-…` → `LD003`), the file located, a help line, no
/// panic.
pub fn assert_located_error(out: &Output, stem: &str, rel: &str) {
    assert_eq!(out.status.code(), Some(2), "{stem}: {}", transcript(out));
    assert!(out.stdout.is_empty(), "{stem}: nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = stem[..5].to_uppercase();
    assert!(stderr.contains(&code), "{stem}: reports {code}:\n{stderr}");
    assert!(
        stderr.contains(&format!("[{rel}:")),
        "{stem}: names file:line:col:\n{stderr}"
    );
    assert!(stderr.contains("help:"), "{stem}: has a help line");
    assert!(!stderr.contains("panicked"), "{stem}: no panic");
}
