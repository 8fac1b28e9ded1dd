//! ostler's library: everything ostler knows how to do, with no terminal, no clap and
//! no home directory. The `ostler` binary and the daemon are thin front ends over it.
//!
//! Layers, top down: `plan` (every destructive procedure as typed steps built before
//! it runs; the bin/manage chains) → `ops` (one operation on
//! one instance) → `instance` (the model: `Ostler` handle, `Instance`) → drivers
//! (`engine`, `process`, `exec`) and `state` (SQLite: journal, locks, runtime).

pub mod alerts;
pub mod backup;
pub mod clock;
pub mod config;
pub mod copy;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod exec;
pub mod forensics;
pub mod guard;
pub mod instance;
pub mod jobs;
pub mod logrotate;
pub mod migrations;
pub mod ops;
pub mod pause;
pub mod plan;
pub mod probes;
pub mod process;
pub mod proxy;
pub mod report;
pub mod state;
pub mod time;
pub mod upgrade;

pub use error::{Error, ErrorKind, Result};
pub use instance::{Instance, Ostler};
