//! Pause points: named moments inside a procedure where an integration test can stop
//! it, so that a SIGKILL lands exactly there instead of somewhere a timer happened to
//! hit. With `OSTLER_PAUSE_AT=<name>` in the environment, [`point`] of that name says
//! "test pause at NAME" through the reporter (tests wait for that line, or for the
//! state the procedure left) and then waits to be killed; otherwise it is a lookup of
//! one environment variable.
//!
//! Points: `prune-marked` (backups marked `pruning`, nothing removed yet); restores:
//! `after-database-side`, `before-swap`, `mid-swap`, `after-swap`.

use std::time::Duration;

use crate::report::Reporter;

/// The environment variable naming the pause point to stop at.
pub const PAUSE_ENV: &str = "OSTLER_PAUSE_AT";

/// Pauses here, for good, if the environment asks for `name`.
pub fn point(reporter: &dyn Reporter, instance: &str, name: &str) {
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == name) {
        reporter.info(instance, &format!("test pause at {name}"));
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
