//! The compiler's hot pieces on a generated cluster (see `support`):
//! loading and compiling the YAML, one probe read from the tables
//! (the decision, and the decision with the rules that made it), and the
//! full all-pairs matrix.

use ambit_compiler::load::{LoadOptions, load_paths};
use ambit_compiler::matrix::Matrix;
use ambit_compiler::model::Protocol;
use ambit_compiler::table::Endpoint;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

mod support;
use support::generated;

fn bench(c: &mut Criterion) {
    let (_dir, path, pods) = generated();
    let options = LoadOptions {
        default_namespace: "default".into(),
    };
    let mut group = c.benchmark_group(format!("{pods} pods"));
    group.sample_size(10);
    group.bench_function("load + compile", |b| {
        b.iter(|| {
            let (cluster, _, diags) = load_paths(std::slice::from_ref(&path), &options);
            assert!(!diags.has_errors());
            black_box(ambit_compiler::compile::compile(&cluster))
        })
    });
    let (cluster, _, _) = load_paths(std::slice::from_ref(&path), &options);
    let tables = ambit_compiler::compile::compile(&cluster);
    let n = tables.workloads.len() as u32;
    let (from, to) = (Endpoint::Workload(n / 3), Endpoint::Workload(2 * n / 3));
    group.bench_function("one probe: decide", |b| {
        b.iter(|| black_box(tables.decide(black_box(from), black_box(to), Protocol::Tcp, 8080)))
    });
    group.bench_function("one probe: explain", |b| {
        b.iter(|| black_box(tables.explain(black_box(from), black_box(to), Protocol::Tcp, 8080)))
    });
    group.bench_function("full matrix (every port)", |b| {
        b.iter(|| black_box(Matrix::compute(&tables, None)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
