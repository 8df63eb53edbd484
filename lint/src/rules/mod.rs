//! The rules, by family. Structural and inventory rules run first, so that
//! the rules that defer to a finer finding (NP004) see them.

mod admin;
mod authz;
mod dns;
pub(crate) mod netpol;
mod reach;
mod sets;

use crate::Context;

pub(crate) fn run(cx: &mut Context<'_>) {
    netpol::run(cx);
    dns::run(cx);
    sets::run(cx);
    authz::run(cx);
    admin::run(cx);
    reach::run(cx);
}

/// The set rules alone (NP003 among them).
pub(crate) fn shadowed(cx: &mut Context<'_>) {
    sets::run(cx);
}
