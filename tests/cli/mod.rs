//! The CLI, run as a process on real files.

mod agent; // live agents against query on random clusters; ambit ca; agent configuration errors
mod compile; // tables: determinism whatever the input order, atomic writes
mod conformance; // testdata/conformance/netpol: 9×9 matrices through `query --probes`
mod diagnostics; // testdata/bad: one rendered snapshot per diagnostic class, exit 2
mod diff; // opened/closed flows checked against query, equivalence, --git
mod expr; // the query language: every form, human and JSON, errors with a caret
mod graph; // the reachability graph: formats, --path, --from/--hops
mod hostile; // testdata/hostile and generated giants: bounded time and memory, no panic
mod lint; // lint rules on their fixtures, SARIF/GitHub/JSON, configuration, exit codes
mod matrix; // `matrix` in table, json and csv
mod query; // the probe contract: fields, order, exit codes
pub mod util;
mod verify; // assertions: holds, counterexamples, any-pod, bad files // running the binary, filtering temp paths
