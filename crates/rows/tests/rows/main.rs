//! Tests of ostler-rows through its public API, in one test binary.

mod chain;
mod common;
mod diff;
mod format_doc;
mod fuzz;
mod sort;
mod streams;
mod throughput;
