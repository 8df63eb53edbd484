//! The query language (`shop/web -> pay/db:5432`, label selectors,
//! `ns:` terms, `ip:` addresses, methods and paths): a query or a
//! diagnostic with a caret, never a panic.
#![no_main]

use ambit_compiler::source::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ambit_compiler::query::parse(text) {
        Ok(q) => {
            let _ = q.is_single();
        }
        Err(d) => {
            // The CLI renders query errors against the query's text.
            let _ = SourceFile::new("query", text);
            ambit_fuzz::render(&[d]);
        }
    }
});
