//! The supervisor component: keeps `autostart` instances running. It starts them,
//! notices a crash (the process gone while the operator wanted it running), restarts
//! with exponential backoff, and after `crash_limit` crashes within `crash_window`
//! marks the instance `crash-loop` and stops trying, saying so in status, journal and
//! on the bus ([`Event::InstanceCrashed`], [`Event::CrashLoop`]).
//!
//! What to do about an instance is decided in [`decide`], without I/O; this file does
//! it. It never fights the CLI: it acts only through `Ostler::operate` (the instance's
//! lock), only on instances whose desired state is `running`, and `ostler stop` sets
//! that to `stopped`. A restore killed mid-way is settled first (`backup::recover`),
//! which starts again what the restore had stopped.
//!
//! A look at the instances is quick (no waiting for health); each start (or settling)
//! then runs as its own blocking task, at most one per instance, so one slow instance
//! does not hold the restart of another, and a drain waits for the starts in flight.
//! The supervisor looks every `tick`, at once when one of its children exits
//! (SIGCHLD: an instance the daemon started was killed), when a backoff ends, when a
//! start finishes, and when a reload added instances. Instances the CLI started are not
//! the daemon's children: their end is seen at the next tick. The config is read
//! afresh at each look, so a reload's removed instances are no longer looked at (and
//! are not killed).

pub mod decide;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::backup::recover;
use crate::error::{Error, Result};
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::state::{Runtime, State};
use decide::{AfterCrash, Crash, Decision};

/// How long the supervisor's start of an instance may hold the instance's lock.
const START_LEASE: Duration = Duration::from_secs(120);

/// The supervisor, looking at the instances every `tick` (and sooner when told).
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
            let mut run = Run {
                bus: handle.bus().subscribe(),
                children: signal(SignalKind::child())
                    .map_err(|e| Error::io("listening for SIGCHLD", e))?,
                jobs: JoinSet::new(),
                in_flight: BTreeSet::new(),
                ready: false,
                handle,
                shutdown,
                tick,
            };
            run.handle.blocking(|o| want_running(o, None)).await?;
            while !run.shutdown.is_cancelled() {
                let skip = run.in_flight.clone();
                let look = match run.handle.blocking(move |o| look(o, &skip)).await {
                    Ok(look) => look,
                    // Shutting down between the check and the call.
                    Err(Error::Busy { .. }) if run.handle.draining() => break,
                    Err(e) => return Err(e),
                };
                for event in look.events {
                    run.handle.bus().publish(event);
                }
                for (name, job) in look.jobs {
                    run.spawn(name, job);
                }
                run.ready_once_settled();
                run.wait(look.wake_at).await?;
            }
            // Draining: the jobs in flight finish (or are interrupted by the host at
            // the drain's bound); what they did is still published.
            while let Some(done) = run.jobs.join_next().await {
                run.finished(done);
            }
            Ok(())
        })
    }
}

/// One run of the supervisor component: what it listens to and what it has in flight.
struct Run {
    handle: Handle,
    shutdown: CancellationToken,
    tick: Duration,
    bus: tokio::sync::broadcast::Receiver<Event>,
    children: Signal,
    /// The starts (and settlings) in flight, one per instance at most.
    jobs: JoinSet<(String, Result<Option<Event>>)>,
    in_flight: BTreeSet<String>,
    /// Said ready (systemd's READY=1 waits for it).
    ready: bool,
}

impl Run {
    /// Ready once the first look's starts all ended (started or failed): the
    /// autostart instances are up when systemd hears READY=1, as the old one-look
    /// supervisor had them. Later looks do not wait for each other's starts.
    fn ready_once_settled(&mut self) {
        if !self.ready && self.in_flight.is_empty() {
            self.ready = true;
            self.handle.set_ready("supervisor");
        }
    }

    fn spawn(&mut self, name: String, job: Job) {
        self.in_flight.insert(name.clone());
        let handle = self.handle.clone();
        // A spawned task starts outside any span: the job's logs carry the
        // component's span (and so say they are the supervisor's) only if given it.
        let job = async move {
            let instance = name.clone();
            let done = handle.blocking(move |o| job.run(o, &instance)).await;
            (name, done)
        };
        self.jobs.spawn(job.in_current_span());
    }

    fn finished(
        &mut self,
        done: std::result::Result<(String, Result<Option<Event>>), tokio::task::JoinError>,
    ) {
        let Ok((name, done)) = done else {
            // A job task never panics (its work runs in `blocking`, which returns
            // the panic as an error) and is only aborted with the run.
            return;
        };
        self.in_flight.remove(&name);
        self.ready_once_settled();
        match done {
            Ok(Some(event)) => self.handle.bus().publish(event),
            Ok(None) => {}
            // Refused because the daemon drains: not started, not a crash.
            Err(Error::Busy { .. }) if self.handle.draining() => {}
            Err(e) => self
                .handle
                .ostler()
                .reporter
                .warn(&name, &format!("supervision: {}", crate::error::chain(&e))),
        }
    }

    /// Work refused because the daemon drains is no failure: the run ends next.
    fn unless_draining(&self, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Busy { .. }) if self.handle.draining() => Ok(()),
            other => other,
        }
    }

    /// Until the next look is due: the tick, a backoff's end (`wake_at`), a child's
    /// exit, a job's end, a reload that added instances, or shutdown.
    async fn wait(&mut self, wake_at: Option<Timestamp>) -> Result<()> {
        let clock = self.handle.clock().clone();
        let next_tick = clock.after(self.tick);
        let until = wake_at.map_or(next_tick, |t| t.min(next_tick));
        let sleep = clock.sleep_until(until);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Ok(()),
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = self.children.recv() => return Ok(()),
                Some(done) = self.jobs.join_next() => {
                    self.finished(done);
                    return Ok(());
                }
                event = self.bus.recv() => match event {
                    Ok(Event::ConfigReloaded { added, .. }) => {
                        let wanted = self.handle.blocking(move |o| want_running(o, Some(&added)));
                        return self.unless_draining(wanted.await);
                    }
                    Ok(_) => {}
                    // Missed events might have been a reload: look at everything.
                    Err(RecvError::Lagged(_)) => {
                        let wanted = self.handle.blocking(|o| want_running(o, None));
                        return self.unless_draining(wanted.await);
                    }
                    // The handle holds the sender: closed only as the daemon ends.
                    Err(RecvError::Closed) => self.shutdown.cancelled().await,
                },
            }
        }
    }
}

/// Autostart instances are wanted running (that is what autostart means): at daemon
/// start all of them, after a reload the ones it added (`only`). A crash loop from
/// before is forgotten.
fn want_running(ostler: &Ostler, only: Option<&[String]>) -> Result<()> {
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

/// What a look found: events to publish, jobs to start, and the earliest end of a
/// backoff (when to look again at the latest).
#[derive(Default)]
struct Look {
    events: Vec<Event>,
    jobs: Vec<(String, Job)>,
    wake_at: Option<Timestamp>,
}

/// Slow work for one instance, run as its own blocking task.
enum Job {
    /// Finish or undo a restore that was killed mid-way (which starts the instance
    /// again if it was running).
    Settle,
    Start,
}

/// One look at every autostart instance but those with a job in flight: crashes are
/// recorded at once, starts and settlings handed back as jobs.
fn look(ostler: &Ostler, in_flight: &BTreeSet<String>) -> Result<Look> {
    let state = ostler.state()?;
    let mut look = Look::default();
    for inst in ostler.instances()? {
        if !inst.config.autostart || in_flight.contains(&inst.name) {
            continue;
        }
        if let Err(e) = look_at(ostler, &state, &inst, &mut look) {
            ostler.reporter.warn(
                &inst.name,
                &format!("supervision: {}", crate::error::chain(&e)),
            );
        }
    }
    Ok(look)
}

fn look_at(ostler: &Ostler, state: &State, inst: &Instance, look: &mut Look) -> Result<()> {
    // A restore killed mid-way left the instance stopped (and `desired` stopped):
    // settle it first. While the restore is alive it holds the lock, so the settling
    // is busy and tried again at the next look.
    if recover::pending(ostler, &inst.name) {
        look.jobs.push((inst.name.clone(), Job::Settle));
        return Ok(());
    }
    let rt = state.runtime(&inst.name)?;
    if let Some(pid) = rt.pid {
        reap(pid);
    }
    let (rt, _, process) = ops::running_pid(state, inst)?;
    let now = ostler.clock.now();
    match decide::decide(&rt, process, now, &ostler.config.supervise) {
        Decision::Leave => {}
        Decision::Start => look.jobs.push((inst.name.clone(), Job::Start)),
        Decision::StartAt(at) => {
            look.wake_at = Some(look.wake_at.map_or(at, |t| t.min(at)));
        }
        Decision::Crashed(crash) => {
            let why = match process {
                crate::process::PidState::Reused => "its pid was reused",
                _ => "exited",
            };
            let event = record_crash(ostler, state, inst, rt, &crash, why)?;
            if let AfterCrash::Restart { at, .. } = crash.then {
                look.wake_at = Some(look.wake_at.map_or(at, |t| t.min(at)));
            }
            look.events.push(event);
        }
    }
    Ok(())
}

/// Reaps the instance's process if it is the daemon's child and has exited, so that
/// it does not linger as a zombie (which still counts as alive). Only recorded pids
/// are waited for: another child (a database client a backup runs) is its owner's.
fn reap(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

impl Job {
    fn run(self, ostler: &Ostler, name: &str) -> Result<Option<Event>> {
        // Removed by a reload since the look: no longer ours to act on.
        let Ok(inst) = ostler.instance(name) else {
            return Ok(None);
        };
        match self {
            Job::Settle => {
                match recover::recover(ostler, &inst.name) {
                    Ok(Some(o)) => ostler.reporter.info(
                        &inst.name,
                        &format!("settled the interrupted restore of backup {}", o.backup),
                    ),
                    Ok(None) | Err(Error::Busy { .. }) => {}
                    Err(e) => return Err(e),
                }
                Ok(None)
            }
            Job::Start => start(ostler, &inst),
        }
    }
}

/// Starts the instance under its lock like any CLI operation. A busy lock means an
/// operator acts on it (tried again at the next look); a failed start is a crash.
fn start(ostler: &Ostler, inst: &Instance) -> Result<Option<Event>> {
    let state = ostler.state()?;
    let crashes = state.runtime(&inst.name)?.crashes;
    let result = ostler.operate(inst, "supervise-start", START_LEASE, |runner| {
        ops::start(ostler, inst, runner)
    });
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
            let crash = decide::crash(&rt.crashes, ostler.clock.now(), &ostler.config.supervise);
            let why = format!("start failed: {}", crate::error::chain(&e));
            record_crash(ostler, &state, inst, rt, &crash, &why).map(Some)
        }
    }
}

/// Writes a crash down (runtime, journal, reporter) and says it as an event.
fn record_crash(
    ostler: &Ostler,
    state: &State,
    inst: &Instance,
    mut rt: Runtime,
    crash: &Crash,
    why: &str,
) -> Result<Event> {
    crash.apply(&mut rt);
    state.set_runtime(&inst.name, &rt)?;
    let n = crash.count();
    let window = humantime::format_duration(ostler.config.supervise.crash_window.0);
    match crash.then {
        AfterCrash::CrashLoop => {
            let msg = format!(
                "{} crashed {n} times within {window}; marked crash-loop, not restarting (last: {why}). Fix it, then `ostler start {}`",
                inst.name, inst.name
            );
            ostler.reporter.warn(&inst.name, &msg);
            ostler.journal_event("crash-loop", Some(&inst.name), &msg)?;
            Ok(Event::CrashLoop {
                instance: inst.name.clone(),
                crashes: n,
                why: why.to_string(),
            })
        }
        AfterCrash::Restart { at, delay } => {
            let msg = format!(
                "{} {why} (crash {n} within {window}); restarting in {}",
                inst.name,
                humantime::format_duration(delay)
            );
            ostler.reporter.warn(&inst.name, &msg);
            ostler.journal_event("crash", Some(&inst.name), &msg)?;
            Ok(Event::InstanceCrashed {
                instance: inst.name.clone(),
                why: why.to_string(),
                crashes: n,
                restart_at: Some(at),
            })
        }
    }
}
