//! End-to-end tests of the `ambit` binary: one test binary, one module per area.

mod cli;
