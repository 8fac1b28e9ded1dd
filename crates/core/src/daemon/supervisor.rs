//! The supervisor component: keeps `autostart` instances running. It starts them,
//! notices a crash (the process gone while the operator wanted it running), restarts
//! with exponential backoff, and after `crash_limit` crashes within `crash_window`
//! marks the instance `crash-loop` and stops trying, saying so in status, journal and
//! on the bus ([`Event::InstanceCrashed`], [`Event::CrashLoop`]).
//!
//! It never fights the CLI: it acts only through `Ostler::operate` (the instance's
//! lock), only on instances whose desired state is `running`, and `ostler stop` sets
//! that to `stopped`. A restore killed mid-way is settled first (`backup::recover`),
//! which starts again what the restore had stopped. Each look at the instances runs on
//! a blocking thread ([`Handle::blocking`]); the config is read afresh at each look,
//! so a reload's new instances are supervised and its removed ones are not.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::backup::recover;
use crate::error::{Error, Result};
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::process::PidState;

/// The supervisor, looking at the instances every `tick`.
pub struct Supervisor {
    pub tick: Duration,
}

impl Component for Supervisor {
    fn name(&self) -> &'static str {
        "supervisor"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        let tick = self.tick;
        Box::pin(async move {
            let mut bus = handle.bus().subscribe();
            handle
                .blocking(|ostler| want_autostart_running(ostler, None))
                .await?;
            while !shutdown.is_cancelled() {
                let events = match handle.blocking(look).await {
                    Ok(events) => events,
                    // Shutting down between the check and the call.
                    Err(Error::Busy { .. }) if handle.draining() => break,
                    Err(e) => return Err(e),
                };
                for event in events {
                    handle.bus().publish(event);
                }
                handle.set_ready("supervisor");
                let added = tokio::select! {
                    _ = handle.clock().sleep(tick) => Vec::new(),
                    _ = shutdown.cancelled() => Vec::new(),
                    Ok(Event::ConfigReloaded { added, .. }) = bus.recv() => added,
                };
                // A reload's new autostart instances are wanted running, as at start;
                // the next look (now) starts them.
                if !added.is_empty() {
                    match handle
                        .blocking(move |ostler| want_autostart_running(ostler, Some(&added)))
                        .await
                    {
                        Ok(()) => {}
                        Err(Error::Busy { .. }) if handle.draining() => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(())
        })
    }
}

/// At daemon start, autostart instances are wanted running (that is what autostart
/// means); a crash loop from an earlier run is forgotten. After a reload, only the
/// instances it added (`only`).
fn want_autostart_running(ostler: &Ostler, only: Option<&[String]>) -> Result<()> {
    let state = ostler.state()?;
    for inst in ostler.instances()? {
        if inst.config.autostart && only.is_none_or(|names| names.contains(&inst.name)) {
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
    Ok(())
}

/// One look at every autostart instance: what happened, as events.
fn look(ostler: &Ostler) -> Result<Vec<Event>> {
    reap();
    let state = ostler.state()?;
    let mut events = Vec::new();
    for inst in ostler.instances()? {
        if inst.config.autostart {
            match tick_instance(ostler, &state, &inst) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(e) => ostler.reporter.warn(
                    &inst.name,
                    &format!("supervision: {}", crate::error::chain(&e)),
                ),
            }
        }
    }
    Ok(events)
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

fn tick_instance(
    ostler: &Ostler,
    state: &crate::state::State,
    inst: &Instance,
) -> Result<Option<Event>> {
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
        return Ok(None);
    }
    let (mut rt, pid, ps) = ops::running_pid(state, inst)?;
    if pid.is_some() || rt.desired != "running" || rt.supervision == "crash-loop" {
        return Ok(None);
    }
    let now = ostler.clock.now();
    if rt.pid.is_some() {
        // It was running and is not any more, and nobody asked it to stop: a crash.
        let why = if ps == PidState::Reused {
            "its pid was reused"
        } else {
            "exited"
        };
        let event = record_crash(ostler, inst, &mut rt, now, why)?;
        state.set_runtime(&inst.name, &rt)?;
        return Ok(Some(event));
    }
    if rt.next_restart_at.is_some_and(|t| t > now) {
        return Ok(None);
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
            Ok(Some(Event::InstanceStarted {
                instance: inst.name.clone(),
                pid: started.pid,
            }))
        }
        // Busy: an operator acts on it; interrupted: the daemon drains, and the process
        // the start launched is recorded and left running. Neither is a crash.
        Err(Error::Busy { .. } | Error::Interrupted) => Ok(None),
        Err(e) => {
            let event = record_crash(
                ostler,
                inst,
                &mut rt,
                ostler.clock.now(),
                &format!("start failed: {}", crate::error::chain(&e)),
            )?;
            state.set_runtime(&inst.name, &rt)?;
            Ok(Some(event))
        }
    }
}

fn record_crash(
    ostler: &Ostler,
    inst: &Instance,
    rt: &mut crate::state::Runtime,
    now: Timestamp,
    why: &str,
) -> Result<Event> {
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
        Ok(Event::CrashLoop {
            instance: inst.name.clone(),
            crashes: n,
            why: why.to_string(),
        })
    } else {
        let factor = 1u32 << (n.saturating_sub(1)).min(16);
        let delay = (policy.backoff_initial.0 * factor).min(policy.backoff_max.0);
        let restart_at = now + crate::clock::signed(delay);
        rt.supervision = "backoff".into();
        rt.next_restart_at = Some(restart_at);
        let msg = format!(
            "{} {why} (crash {n} within {}); restarting in {}",
            inst.name,
            humantime::format_duration(policy.crash_window.0),
            humantime::format_duration(delay)
        );
        ostler.reporter.warn(&inst.name, &msg);
        ostler.journal_event("crash", Some(&inst.name), &msg)?;
        Ok(Event::InstanceCrashed {
            instance: inst.name.clone(),
            why: why.to_string(),
            crashes: n,
            restart_at: Some(restart_at),
        })
    }
}
