//! What the fuzz targets share: rendering diagnostics as the CLI does (the
//! renderer is part of what must not panic), and a small compiled cluster.

use std::path::Path;
use std::sync::OnceLock;

use ambit_compiler::diag::Diagnostic;
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::model::Cluster;
use ambit_compiler::table::Tables;

/// Render the diagnostics as `ambit` does, for people and as JSON.
pub fn render(diags: &[Diagnostic]) {
    let _ = ambit_compiler::diag::render(diags, false);
    for d in diags {
        let _ = d.to_json();
    }
}

/// The bundled demo cluster, loaded and compiled once.
pub fn demo() -> &'static (Cluster, Tables) {
    static DEMO: OnceLock<(Cluster, Tables)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/demo");
        let (cluster, _files, diags) = load_paths(&[dir], &LoadOptions::default());
        assert!(!diags.has_errors(), "the demo cluster loads");
        let tables = ambit_compiler::compile::compile(&cluster);
        (cluster, tables)
    })
}
