//! One Z3 assertion on a generated cluster (compiler/benches/support):
//! each assertion of bench/assertions.yaml in the inventory scope, solver and
//! counterexample included.

use std::hint::black_box;
use std::path::Path;

use ambit_compiler::compile::CompileOptions;
use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::source::SourceFile;
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../../compiler/benches/support/mod.rs"]
mod support;
use support::generated;

fn bench(c: &mut Criterion) {
    let (_dir, out, pods) = generated();
    let (cluster, _, diags) = load_paths(
        &[out],
        &LoadOptions {
            default_namespace: "default".into(),
        },
    );
    assert!(!diags.has_errors());
    let options = CompileOptions::default();
    let tables = ambit_compiler::compile::compile_with(&cluster, &options);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("bench/assertions.yaml")).unwrap();
    let file = SourceFile::new("bench/assertions.yaml", text);
    let assertions = ambit_compiler::assertion::read_assertions(&file, &cluster).unwrap();
    let mut group = c.benchmark_group(format!("{pods} pods"));
    group.sample_size(10);
    for a in &assertions {
        group.bench_function(format!("verify {}", a.name), |b| {
            b.iter(|| {
                black_box(ambit_verifier::verify::verify(&cluster, &tables, &options, a).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
