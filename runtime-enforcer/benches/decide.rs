//! The per-connection decision of the agent: an address lookup for each end
//! and the table decision, as the outbound (source egress) and inbound
//! (egress, ingress, L4 authorization) paths take it. On the demo cluster
//! with its pods' addresses, and on a generated cluster when
//! `AMBIT_BENCH_TABLES` names a table file.

use std::hint::black_box;
use std::net::IpAddr;

use ambit_compiler::model::Protocol;
use ambit_runtime::tables::Loaded;
use criterion::{Criterion, criterion_group, criterion_main};

fn demo_tables() -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (cluster, _, diags) = ambit_compiler::load::load_paths(
        &[
            root.join("testdata/demo"),
            root.join("testdata/agents/pods.yaml"),
        ],
        &ambit_compiler::load::LoadOptions {
            default_namespace: "default".into(),
        },
    );
    assert!(!diags.has_errors());
    ambit_compiler::compile::compile(&cluster)
        .to_json()
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let (name, bytes) = match std::env::var("AMBIT_BENCH_TABLES") {
        Ok(p) => (
            "generated",
            std::fs::read(p).expect("AMBIT_BENCH_TABLES is readable"),
        ),
        Err(_) => ("demo", demo_tables()),
    };
    let tables = ambit_compiler::table::Tables::from_json(&bytes).unwrap();
    let loaded = Loaded::new(tables, &bytes, 1);
    let ips: Vec<IpAddr> = loaded
        .tables
        .workloads
        .iter()
        .filter_map(|w| w.ips.first().copied())
        .collect();
    assert!(ips.len() >= 2, "the tables need workloads with addresses");
    let pairs: Vec<(IpAddr, IpAddr, u16)> = (0..1024)
        .map(|i| {
            let a = ips[(i * 7) % ips.len()];
            let b = ips[(i * 13 + 1) % ips.len()];
            (a, b, [80, 443, 5432, 8080, 9090][i % 5])
        })
        .collect();
    let mut i = 0;
    c.bench_function(&format!("decide/{name}/outbound"), |b| {
        b.iter(|| {
            let (s, d, port) = pairs[i % pairs.len()];
            i += 1;
            let (from, to) = (loaded.endpoint(s), loaded.endpoint(d));
            black_box(loaded.tables.decide_egress(from, to, Protocol::Tcp, port))
        })
    });
    c.bench_function(&format!("decide/{name}/inbound"), |b| {
        b.iter(|| {
            let (s, d, port) = pairs[i % pairs.len()];
            i += 1;
            let (from, to) = (loaded.endpoint(s), loaded.endpoint(d));
            black_box(loaded.tables.decide(from, to, Protocol::Tcp, port))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
