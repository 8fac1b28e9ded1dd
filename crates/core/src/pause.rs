//! Pause points: named moments inside a procedure where an integration test can stop
//! it, so that a SIGKILL lands exactly there instead of somewhere a timer happened to
//! hit. With `OSTLER_PAUSE_AT=<name>` in the environment, [`point`] of that name
//! sleeps for a minute (the test kills the process meanwhile); otherwise it is a
//! lookup of one environment variable.

use std::time::Duration;

/// The environment variable naming the pause point to stop at.
pub const PAUSE_ENV: &str = "OSTLER_PAUSE_AT";

/// Pauses here if the environment asks for `name`.
pub fn point(name: &str) {
    if std::env::var_os(PAUSE_ENV).is_some_and(|v| v == name) {
        tracing::info!(point = name, "pausing at a test pause point");
        std::thread::sleep(Duration::from_secs(60));
    }
}
