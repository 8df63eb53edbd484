//! The agent's configuration reader: text → configuration or located
//! diagnostics, never a panic. Relative paths resolve in an empty directory.
#![no_main]

use std::sync::OnceLock;

use ambit_compiler::source::SourceFile;
use ambit_runtime::AgentConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = SourceFile::new("agent.yaml", text);
    if let Err(diags) = AgentConfig::parse(&file, dir.path()) {
        assert!(!diags.is_empty(), "a refusal says why");
        ambit_fuzz::render(&diags);
    }
});
