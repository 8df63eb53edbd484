//! The other files users write: probe lists (`query --probes`) and
//! assertions (`verify`), read against the demo cluster. A list or located
//! diagnostics, never a panic.
#![no_main]

use ambit_compiler::source::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (cluster, tables) = ambit_fuzz::demo();
    let file = SourceFile::new("input.yaml", text);
    match ambit_compiler::probe::read_probe_file(&file, tables) {
        Ok(probes) => {
            for p in &probes {
                let _ = ambit_compiler::probe::answer(tables, p);
            }
        }
        Err(diags) => ambit_fuzz::render(&diags),
    }
    if let Err(diags) = ambit_compiler::assertion::read_assertions(&file, cluster) {
        ambit_fuzz::render(&diags);
    }
});
