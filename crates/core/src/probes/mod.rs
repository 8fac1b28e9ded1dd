//! Probes: `[[probes]]` checks of the service (HTTP, TCP, a Nagios plugin, disk,
//! process, SQL, TLS), each giving a Nagios [`Status`]. The daemon's prober runs them
//! on their intervals; `ostler probe` runs them once.
//!
//! - [`range`]: Nagios threshold ranges (`10`, `10:`, `~:10`, `@10:20`) with units.
//! - [`config`]: `[[probes]]` entries and the problems serde cannot see.
//! - [`run()`]: one check, a [`ProbeResult`] a Nagios plugin would print; the kinds in
//!   [`http`], [`net`] (tcp, tls), [`command`], [`disk`], [`instance`] (process, sql).
//! - [`state`]: soft and hard states and flap detection, without I/O.
//! - [`history`]: results and states in the state database.

pub mod command;
pub mod config;
pub mod disk;
pub mod history;
pub mod http;
pub mod instance;
pub mod net;
pub mod range;
pub mod run;
pub mod state;

pub use config::{Kind, ProbeConfig};
pub use run::{run, run_many, select, worst, Perf, ProbeResult, Probed};
pub use state::{Observed, ProbeState};

use serde::{Deserialize, Serialize};

/// A probe's outcome, as Nagios plugins exit: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// The plugin exit code.
    pub fn code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// A plugin's exit code read as Nagios does (anything past 3 is UNKNOWN).
    pub fn from_code(code: i32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        }
    }

    /// As serialized: `ok`, `warning`, `critical`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// As a plugin line says it: `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn nagios_word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "ok" => Some(Status::Ok),
            "warning" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            "unknown" => Some(Status::Unknown),
            _ => None,
        }
    }
}
