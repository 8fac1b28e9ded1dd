//! `ostler serve`: the daemon that keeps `autostart` instances running. It starts them,
//! notices a crash (the process gone while the operator wanted it running), restarts
//! with exponential backoff, and after `crash_limit` crashes within `crash_window`
//! marks the instance `crash-loop` and stops trying, saying so in status and journal.
//!
//! The daemon and the CLI never fight: both go through the same instance lock, the
//! daemon only acts on instances whose desired state is `running`, and `ostler stop`
//! sets it to `stopped`. A restore killed mid-way is settled first (`backup::recover`),
//! which starts again what the restore had stopped. A second daemon on the same state refuses (a flock on
//! `<state_dir>/serve.lock`). Shutdown leaves the instances running: supervision stops,
//! service does not.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::backup::recover;
use crate::error::{Error, Result};
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::process::PidState;

/// Holds the daemon's pidfile lock for as long as it lives.
pub struct DaemonLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Takes the daemon lock, or fails naming the running daemon's pid.
pub fn daemon_lock(ostler: &Ostler) -> Result<DaemonLock> {
    let dir = ostler.state_dir();
    ostler_repo::private::create_dir_all(&dir).map_err(|e| Error::io_at("create", &dir, e))?;
    let path = dir.join("serve.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let _ = lock.set_len(0);
            let _ = writeln!(&mut *lock, "{}", std::process::id());
            Ok(DaemonLock { _lock: lock })
        }
        Err((_, _)) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            Err(Error::busy(format!(
                "another `ostler serve` (pid {}) already supervises this service ({})",
                pid.trim(),
                path.display()
            )))
        }
    }
}

/// Reaps exited children so that they do not linger as zombies (the daemon starts
/// instances as its children).
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Runs the supervisor until `ostler.interrupt` is set.
pub fn serve(ostler: &Ostler, tick: Duration) -> Result<()> {
    let _lock = daemon_lock(ostler)?;
    ostler.journal_event(
        "serve-start",
        None,
        &format!("daemon pid {}", std::process::id()),
    )?;
    // At daemon start, autostart instances are wanted running (that is what autostart
    // means); a crash loop from an earlier run is forgotten.
    let state = ostler.state()?;
    for inst in ostler.instances()? {
        if inst.config.autostart {
            let mut rt = state.runtime(&inst.name)?;
            if rt.desired != "running" || rt.supervision == "crash-loop" {
                rt.desired = "running".into();
                rt.supervision = "ok".into();
                rt.crashes.clear();
                rt.next_restart_at = None;
                state.set_runtime(&inst.name, &rt)?;
            }
        }
    }
    // One connection to the state for the daemon's life: a tick is then a few indexed
    // reads and a look at /proc per instance.
    let instances = ostler.instances()?;
    while !ostler.interrupt.is_set() {
        reap();
        for inst in &instances {
            if inst.config.autostart {
                if let Err(e) = tick_instance(ostler, &state, inst) {
                    ostler.reporter.warn(
                        &inst.name,
                        &format!("supervision: {}", crate::error::chain(&e)),
                    );
                }
            }
        }
        sleep_interruptibly(ostler, tick);
    }
    ostler.journal_event("serve-stop", None, "daemon stopped; instances left running")?;
    Ok(())
}

fn sleep_interruptibly(ostler: &Ostler, total: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !ostler.interrupt.is_set() {
        std::thread::sleep(step);
        slept += step;
    }
}

fn tick_instance(ostler: &Ostler, state: &crate::state::State, inst: &Instance) -> Result<()> {
    // A restore killed mid-way left the instance stopped (and `desired` stopped):
    // settle it first, which starts the instance again if it was running. While the
    // restore is alive it holds the lock, so this is busy and tried again next tick.
    if recover::pending(ostler, &inst.name) {
        match recover::recover(ostler, &inst.name) {
            Ok(Some(o)) => ostler.reporter.info(
                &inst.name,
                &format!("settled the interrupted restore of backup {}", o.backup),
            ),
            Ok(None) | Err(Error::Busy { .. }) => {}
            Err(e) => return Err(e),
        }
        return Ok(());
    }
    let (mut rt, pid, ps) = ops::running_pid(state, inst)?;
    if pid.is_some() || rt.desired != "running" || rt.supervision == "crash-loop" {
        return Ok(());
    }
    let now = Timestamp::now();
    if rt.pid.is_some() {
        // It was running and is not any more, and nobody asked it to stop: a crash.
        let why = if ps == PidState::Reused {
            "its pid was reused"
        } else {
            "exited"
        };
        record_crash(ostler, inst, &mut rt, now, why)?;
        state.set_runtime(&inst.name, &rt)?;
        return Ok(());
    }
    if rt.next_restart_at.is_some_and(|t| t > now) {
        return Ok(());
    }
    // Start it, under the instance's lock like any CLI operation. A busy lock means an
    // operator is acting on it: try again next tick.
    let crashes = rt.crashes.clone();
    let result = ostler.operate(
        inst,
        "supervise-start",
        Duration::from_secs(120),
        |runner| ops::start(ostler, inst, runner),
    );
    let mut rt = state.runtime(&inst.name)?;
    rt.crashes = crashes;
    match result {
        Ok(started) => {
            rt.supervision = "ok".into();
            rt.next_restart_at = None;
            state.set_runtime(&inst.name, &rt)?;
            ostler.reporter.info(
                &inst.name,
                &format!("started (pid {}, port {})", started.pid, started.port),
            );
        }
        Err(Error::Busy { .. }) => {}
        Err(e) => {
            record_crash(
                ostler,
                inst,
                &mut rt,
                Timestamp::now(),
                &format!("start failed: {}", crate::error::chain(&e)),
            )?;
            state.set_runtime(&inst.name, &rt)?;
        }
    }
    Ok(())
}

fn record_crash(
    ostler: &Ostler,
    inst: &Instance,
    rt: &mut crate::state::Runtime,
    now: Timestamp,
    why: &str,
) -> Result<()> {
    let policy = &ostler.config.supervise;
    let window =
        SignedDuration::try_from(policy.crash_window.0).unwrap_or(SignedDuration::from_secs(300));
    rt.pid = None;
    rt.pid_start_ticks = None;
    rt.crashes.push(now);
    rt.crashes.retain(|t| now.duration_since(*t) <= window);
    let n = rt.crashes.len() as u32;
    if n >= policy.crash_limit {
        rt.supervision = "crash-loop".into();
        rt.next_restart_at = None;
        let msg = format!(
            "{} crashed {n} times within {}; marked crash-loop, not restarting (last: {why}). Fix it, then `ostler start {}`",
            inst.name,
            humantime::format_duration(policy.crash_window.0),
            inst.name
        );
        ostler.reporter.warn(&inst.name, &msg);
        ostler.journal_event("crash-loop", Some(&inst.name), &msg)?;
    } else {
        let factor = 1u32 << (n.saturating_sub(1)).min(16);
        let delay = (policy.backoff_initial.0 * factor).min(policy.backoff_max.0);
        rt.supervision = "backoff".into();
        rt.next_restart_at =
            Some(now + SignedDuration::try_from(delay).unwrap_or(SignedDuration::from_secs(1)));
        let msg = format!(
            "{} {why} (crash {n} within {}); restarting in {}",
            inst.name,
            humantime::format_duration(policy.crash_window.0),
            humantime::format_duration(delay)
        );
        ostler.reporter.warn(&inst.name, &msg);
        ostler.journal_event("crash", Some(&inst.name), &msg)?;
    }
    Ok(())
}
