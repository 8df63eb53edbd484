//! Rendering diagnostics: miette's graphical report for people, JSON for
//! machines. Colour only on a terminal, and never with `NO_COLOR`.

use ambit_compiler::diag::Diagnostic;

/// Render diagnostics to stderr.
pub fn diagnostics(diags: &[Diagnostic], json: bool) {
    if json {
        eprintln!("{}", json_list(diags));
        return;
    }
    eprint!("{}", human(diags, colour(&std::io::stderr())));
}

pub use ambit_compiler::diag::colour;

/// The JSON array of diagnostics.
pub fn json_list(diags: &[Diagnostic]) -> String {
    let list: Vec<_> = diags.iter().map(Diagnostic::to_json).collect();
    serde_json::to_string_pretty(&list).expect("diagnostics serialize")
}

/// miette's graphical reports, one after the other.
pub fn human(diags: &[Diagnostic], colour: bool) -> String {
    ambit_compiler::diag::render(diags, colour)
}
