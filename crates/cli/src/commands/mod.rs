//! One module per command: an `Args` struct (its doc comment is the help) and one `run`.

pub mod alerts;
pub mod backup;
pub mod backups;
pub mod config;
pub mod copy;
pub mod demo;
pub mod diff;
pub mod export;
pub mod find;
pub mod init;
pub mod jobs;
pub mod journal;
pub mod logs;
pub mod logs_rotate;
pub mod maintenance;
pub mod manage;
pub mod migrate;
pub mod mirror;
pub mod probe;
pub mod proxy;
pub mod prune;
pub mod recover;
pub mod reload;
pub mod restore;
pub mod role;
pub mod serve;
pub mod status;
pub mod upgrade;
pub mod verify;

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> ostler_core::Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| ostler_core::Error::Other(e.into()))?;
    outln!("{text}");
    Ok(())
}

/// Bytes for people: 1.2 MiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
