//! Integration tests of the repository through its public API only.
//!
//! One test binary (modules below) so the crate links once. Data is
//! generated from fixed seeds, so a failure reproduces exactly.

mod common;

mod concurrency;
mod crash;
mod dedup;
mod errors;
mod files;
mod format_doc;
mod gc;
mod integrity;
mod roundtrip;
mod throughput;
