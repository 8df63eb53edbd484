//! Bytes → YAML documents → resources → cluster → decision tables. Never a
//! panic: a diagnostic (rendered as the CLI renders it) or tables that pass
//! their own check and survive a JSON round trip unchanged.
#![no_main]

use ambit_compiler::diag::Diagnostics;
use ambit_compiler::load::{LoadOptions, load};
use ambit_compiler::source::SourceFile;
use ambit_compiler::table::Tables;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files that are not UTF-8 are refused before parsing (LD001); what
    // follows is what every readable file meets.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = SourceFile::new("fuzz.yaml", text);
    let mut diags = Diagnostics::default();
    let cluster = load(
        std::slice::from_ref(&file),
        &LoadOptions::default(),
        &mut diags,
    );
    ambit_fuzz::render(&diags.0);
    if diags.has_errors() {
        return;
    }
    let tables = ambit_compiler::compile::compile(&cluster);
    tables.check().expect("compiled tables are consistent");
    let back = Tables::from_json(tables.to_json().as_bytes()).expect("tables read back");
    assert_eq!(back, tables, "tables round-trip through JSON");
});
