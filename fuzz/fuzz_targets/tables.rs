//! The decision-table reader, as `query --tables`-style readers and the
//! agent use it: bytes → tables or an error, never a panic; tables that are
//! read round-trip unchanged; and every decision on them is answered
//! without indexing out of bounds (the reader's check promises it).
#![no_main]

use ambit_compiler::model::Protocol;
use ambit_compiler::table::{Endpoint, Tables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let agent = ambit_runtime::tables::validate(data, "cluster.local");
    let Ok(tables) = Tables::from_json(data) else {
        assert!(agent.is_err(), "the agent refuses what the reader refuses");
        return;
    };
    let again = Tables::from_json(tables.to_json().as_bytes()).expect("written tables read back");
    assert_eq!(again, tables, "tables round-trip through JSON");
    let n = tables.workloads.len().min(6) as u32;
    let ends: Vec<Endpoint> = (0..n)
        .map(Endpoint::Workload)
        .chain(["10.0.0.1", "2001:db8::1", "0.0.0.0"].map(|a| Endpoint::Ip(a.parse().unwrap())))
        .collect();
    for &s in &ends {
        for &d in &ends {
            for port in [0, 53, 80, 65535] {
                let _ = tables.decide(s, d, Protocol::Tcp, port);
                let _ = tables.decide(s, d, Protocol::Udp, port);
            }
        }
    }
});
