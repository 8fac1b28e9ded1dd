//! What the supervisor decides for one instance, kept apart from doing it: from the
//! instance's recorded [`Runtime`], what its process looks like now, the time and the
//! `[supervise]` policy, one [`Decision`]. No I/O here, so backoff and crash loops are
//! tested on any clock, in milliseconds, without processes.

use std::time::Duration;

use jiff::Timestamp;

use crate::clock::{later, signed};
use crate::config::SuperviseConfig;
use crate::process::PidState;
use crate::state::Runtime;

/// What to do about one instance now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not wanted running, crash-looping, or alive: nothing to do.
    Leave,
    /// Wanted running, not running, no backoff pending: start it now.
    Start,
    /// Backing off after a crash: start it at this time, not before.
    StartAt(Timestamp),
    /// Its process died (or its pid now names another process) while it was wanted
    /// running.
    Crashed(Crash),
}

/// A crash, and what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// The crashes within the window, this one included, oldest first.
    pub crashes: Vec<Timestamp>,
    pub then: AfterCrash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterCrash {
    /// Restart at `at`, `delay` after the crash.
    Restart { at: Timestamp, delay: Duration },
    /// `crash_limit` crashes within `crash_window`: no more restarts until an operator
    /// starts it.
    CrashLoop,
}

/// The decision for an instance recorded as `rt`, whose recorded pid (if any) is now
/// in state `process`.
pub fn decide(
    rt: &Runtime,
    process: PidState,
    now: Timestamp,
    policy: &SuperviseConfig,
) -> Decision {
    if rt.desired != "running" || rt.supervision == "crash-loop" {
        return Decision::Leave;
    }
    match (rt.pid, process) {
        (Some(_), PidState::Ours) => Decision::Leave,
        // It was running and is not any more, and nobody asked it to stop.
        (Some(_), PidState::Gone | PidState::Reused) => {
            Decision::Crashed(crash(&rt.crashes, now, policy))
        }
        (None, _) => match rt.next_restart_at {
            Some(at) if at > now => Decision::StartAt(at),
            _ => Decision::Start,
        },
    }
}

/// A crash at `now` after the earlier crashes `before`: those older than the window
/// are forgotten; `crash_limit` within it is a crash loop, fewer a backoff.
pub fn crash(before: &[Timestamp], now: Timestamp, policy: &SuperviseConfig) -> Crash {
    let window = signed(policy.crash_window.0);
    let crashes: Vec<Timestamp> = before
        .iter()
        .copied()
        .chain([now])
        .filter(|t| now.duration_since(*t) <= window)
        .collect();
    let n = crashes.len() as u32;
    let then = if n >= policy.crash_limit {
        AfterCrash::CrashLoop
    } else {
        let delay = backoff(n, policy);
        AfterCrash::Restart {
            at: later(now, delay),
            delay,
        }
    };
    Crash { crashes, then }
}

/// The delay before the restart after the `n`th crash within the window:
/// `backoff_initial` doubled `n - 1` times, at most `backoff_max`.
pub fn backoff(n: u32, policy: &SuperviseConfig) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(16);
    policy
        .backoff_initial
        .0
        .saturating_mul(factor)
        .min(policy.backoff_max.0)
}

impl Crash {
    /// Crashes within the window, this one included.
    pub fn count(&self) -> u32 {
        self.crashes.len() as u32
    }

    /// Records the crash in the instance's runtime: no process, the crashes, and
    /// either the backoff's restart time or the crash loop.
    pub fn apply(&self, rt: &mut Runtime) {
        rt.pid = None;
        rt.pid_start_ticks = None;
        rt.crashes = self.crashes.clone();
        match self.then {
            AfterCrash::Restart { at, .. } => {
                rt.supervision = "backoff".into();
                rt.next_restart_at = Some(at);
            }
            AfterCrash::CrashLoop => {
                rt.supervision = "crash-loop".into();
                rt.next_restart_at = None;
            }
        }
    }
}
