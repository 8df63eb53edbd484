//! Rendering diagnostics: miette's graphical report for people, JSON for
//! machines. Colour only on a terminal, and never with `NO_COLOR`.

use std::io::IsTerminal;

use ambit_compiler::diag::Diagnostic;
use miette::{GraphicalReportHandler, GraphicalTheme};

/// Render diagnostics to stderr.
pub fn diagnostics(diags: &[Diagnostic], json: bool) {
    if json {
        let list: Vec<_> = diags.iter().map(Diagnostic::to_json).collect();
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&list).expect("diagnostics serialize")
        );
        return;
    }
    let stderr = std::io::stderr();
    let colour = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    for d in diags {
        let mut out = String::new();
        match handler.render_report(&mut out, &d.report()) {
            Ok(()) => eprint!("{out}"),
            Err(_) => eprintln!("{d}"),
        }
    }
}
