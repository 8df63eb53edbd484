//! A law shared by the compiler's property tests: the all-pairs matrix
//! (per pair of classes, with shortcuts) gives every pair of workloads the
//! ports of `allowed_ports`.

use ambit_compiler::matrix::Matrix;
use ambit_compiler::table::{Endpoint, Tables};
use proptest::prelude::*;

pub fn matrix_agrees(tables: &Tables) -> Result<(), TestCaseError> {
    let matrix = Matrix::compute(tables, None);
    let n = tables.workloads.len();
    for i in 0..n {
        for j in 0..n {
            let want =
                tables.allowed_ports(Endpoint::Workload(i as u32), Endpoint::Workload(j as u32));
            prop_assert_eq!(matrix.get(i, j), &want, "matrix {} -> {}", i, j);
        }
    }
    Ok(())
}
