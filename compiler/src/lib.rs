//! # ambit-compiler
//!
//! Loads Kubernetes network policy from YAML, validates it with located
//! diagnostics, and compiles it into decision tables.
//!
//! ```text
//! load   (paths → files → YAML → typed resources → model::Cluster)
//! lower  (netpol: typed NetworkPolicy → model::NetworkPolicy, the IR)
//! compile(model::Cluster → table::Tables)
//! decide (table::Tables + probe → decision and the rules that made it)
//! ```
//!
//! `reference` decides the same questions straight from the typed resources,
//! written rule by rule from the Kubernetes documentation; a property test holds
//! the compiled tables to it.

pub mod admin;
pub mod assertion;
pub mod authz;
pub mod compile;
pub mod diag;
pub mod istio;
pub mod labels;
pub mod load;
pub mod matrix;
pub mod model;
pub mod netpol;
pub mod probe;
pub mod query;
pub mod reference;
pub mod reference_authz;
pub mod source;
pub mod table;
pub mod yaml;
