//! The scheduler component: runs `[[jobs]]` at their times, on the daemon's clock.
//!
//! Each look (at the next scheduled time, a waiting run's `not_before`, a run's end, a
//! manual run queued, a reload, or at least every [`MAX_SLEEP`]) does, in the state
//! database: claim each job's times passed since its cursor ([`due`]: on time, or
//! missed and coalesced into one run or one skip); then start waiting runs whose time
//! came, one per job, as [`Overlap`] says when the job's previous run still runs
//! (skip it, keep it waiting, or kill the previous and start after it). Each run is
//! carried out by [`perform`] on a blocking thread and published on the bus.
//!
//! Runs left `running` by a daemon that died are failed at start (their process
//! groups killed if still there); `waiting` ones (manual runs, retries) stay queued.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::error::Result;
use crate::instance::Ostler;
use crate::jobs::due::{due, jitter, Due};
use crate::jobs::launch::Launcher;
use crate::jobs::perform::{perform, Performed};
use crate::jobs::runs::{self, Ended, NewRun, Run, RunState, Trigger};
use crate::jobs::{JobConfig, Overlap};

/// The scheduler looks at least this often (a clock that jumped, a config edited
/// without reload is not waited for forever).
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs that are over are pruned (`[scheduler] keep_runs`, `keep_runs_for`) at most
/// this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The scheduler, running built-in actions with `launcher`.
pub struct Scheduler {
    pub launcher: Launcher,
}

impl Component for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        let launcher = Arc::new(self.launcher.clone());
        Box::pin(async move {
            let mut run = Loop {
                bus: handle.bus().subscribe(),
                handle,
                shutdown,
                launcher,
                running: BTreeMap::new(),
                tasks: JoinSet::new(),
                pruned_at: None,
            };
            run.handle.blocking(settle_leftovers).await?;
            run.handle.set_ready("scheduler");
            while !run.shutdown.is_cancelled() {
                let running: BTreeMap<String, i64> = run
                    .running
                    .iter()
                    .map(|(job, r)| (job.clone(), r.id))
                    .collect();
                let prune = run.prune_due();
                let look = match run.handle.blocking(move |o| look(o, &running, prune)).await {
                    Ok(look) => look,
                    Err(crate::Error::Busy { .. }) if run.handle.draining() => break,
                    Err(e) => return Err(e),
                };
                if prune {
                    run.pruned_at = Some(run.handle.clock().now());
                }
                for (job, why) in look.skipped {
                    run.handle.bus().publish(Event::JobSkipped {
                        job: job.0,
                        run: job.1,
                        why,
                    });
                }
                for job in &look.kill {
                    if let Some(r) = run.running.get(job) {
                        r.kill.cancel();
                    }
                }
                for (job, r) in look.start {
                    run.start(job, r);
                }
                // What ended is said once the wait's sleep is gone: whoever hears it
                // and looks at the clock sees the scheduler awake, not that sleep.
                if let Some(done) = run.wait(look.wake_at).await {
                    run.finished(done);
                }
            }
            // Draining: the runs in flight finish, or are killed when the host's drain
            // bound interrupts them (the `Interrupt` the run's wait checks).
            while let Some(done) = run.tasks.join_next().await {
                run.finished(done);
            }
            Ok(())
        })
    }
}

/// A run in flight.
struct Running {
    id: i64,
    kill: CancellationToken,
}

type Done = (String, i64, Result<Performed>);

struct Loop {
    handle: Handle,
    shutdown: CancellationToken,
    bus: tokio::sync::broadcast::Receiver<Event>,
    launcher: Arc<Launcher>,
    /// One run in flight per job at most.
    running: BTreeMap<String, Running>,
    tasks: JoinSet<Done>,
    pruned_at: Option<Timestamp>,
}

impl Loop {
    fn prune_due(&self) -> bool {
        let now = self.handle.clock().now();
        self.pruned_at
            .is_none_or(|at| now.duration_since(at) >= crate::clock::signed(PRUNE_EVERY))
    }

    fn start(&mut self, job: JobConfig, run: Run) {
        let name = job.name.get_ref().clone();
        let kill = CancellationToken::new();
        self.running.insert(
            name.clone(),
            Running {
                id: run.id,
                kill: kill.clone(),
            },
        );
        let handle = self.handle.clone();
        let launcher = self.launcher.clone();
        let span = tracing::info_span!("run", job = %name, run = run.id);
        let task = async move {
            let bus = handle.bus().clone();
            let (job_name, id) = (name.clone(), run.id);
            let done = handle
                .blocking(move |o| {
                    let started_bus = bus.clone();
                    let (j, r) = (job_name.clone(), id);
                    let line_job = job_name.clone();
                    perform(
                        o,
                        &launcher,
                        &job,
                        &run,
                        &kill,
                        move |pid| {
                            started_bus.publish(Event::JobStarted {
                                job: j,
                                run: r,
                                pid,
                            })
                        },
                        move |line| tracing::debug!(job = %line_job, "{line}"),
                    )
                })
                .await;
            (name, id, done)
        };
        self.tasks.spawn(task.instrument(span));
    }

    fn finished(&mut self, done: std::result::Result<Done, tokio::task::JoinError>) {
        let Ok((job, id, done)) = done else {
            return;
        };
        if self.running.get(&job).is_some_and(|r| r.id == id) {
            self.running.remove(&job);
        }
        let bus = self.handle.bus();
        match done {
            Ok(performed) => {
                let run = &performed.run;
                match run.state {
                    RunState::Finished => {
                        tracing::info!(job = %job, run = id, "finished");
                        bus.publish(Event::JobFinished { job, run: id });
                    }
                    RunState::Failed => {
                        let why = run.detail.clone().unwrap_or_default();
                        tracing::warn!(job = %job, run = id, "failed: {why}");
                        bus.publish(Event::JobFailed {
                            job,
                            run: id,
                            why,
                            retry_at: performed.retry.as_ref().and_then(|r| r.not_before),
                            alert: performed.alert,
                        });
                    }
                    RunState::Skipped | RunState::Waiting | RunState::Running => {
                        let why = run.detail.clone().unwrap_or_default();
                        tracing::info!(job = %job, run = id, "not run: {why}");
                        bus.publish(Event::JobSkipped { job, run: id, why });
                    }
                }
            }
            Err(e) => {
                tracing::warn!(job = %job, run = id, "run could not be carried out: {}", crate::error::chain(&e));
            }
        }
    }

    /// Until the next look is due: `wake_at`, a run's end (returned), a queued run,
    /// a reload, or shutdown; at most [`MAX_SLEEP`].
    async fn wait(
        &mut self,
        wake_at: Option<Timestamp>,
    ) -> Option<std::result::Result<Done, tokio::task::JoinError>> {
        let clock = self.handle.clock().clone();
        let latest = clock.after(MAX_SLEEP);
        let until = wake_at.map_or(latest, |t| t.min(latest));
        let sleep = clock.sleep_until(until);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return None,
                _ = self.shutdown.cancelled() => return None,
                Some(done) = self.tasks.join_next() => return Some(done),
                event = self.bus.recv() => match event {
                    Ok(Event::JobQueued { .. } | Event::ConfigReloaded { .. }) => return None,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return None,
                    Err(RecvError::Closed) => self.shutdown.cancelled().await,
                },
            }
        }
    }
}

/// Fails the runs a dead daemon left `running`, killing a group whose leader is still
/// that run (its environment says `OSTLER_RUN=<id>`; a pid taken since is left alone).
fn settle_leftovers(ostler: &Ostler) -> Result<()> {
    let state = ostler.state()?;
    for run in runs::in_state(&state, RunState::Running)? {
        let ours = run
            .pid
            .filter(|pid| crate::process::has_env(*pid, "OSTLER_RUN", &run.id.to_string()));
        if let Some(pid) = ours {
            let _ = crate::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let detail = match ours {
            Some(pid) => {
                format!("the daemon ended while it ran; its process group {pid} was killed")
            }
            None => "the daemon ended while it ran".to_string(),
        };
        runs::ended(
            &state,
            run.id,
            &Ended {
                state: RunState::Failed,
                exit_status: None,
                detail: Some(detail),
                output: run.output.clone(),
            },
        )?;
    }
    Ok(())
}

/// What a look decided.
#[derive(Default)]
struct Look {
    /// Runs to start now, with their job's config.
    start: Vec<(JobConfig, Run)>,
    /// Jobs whose run in flight is to be killed (`kill-previous`).
    kill: Vec<String>,
    /// Runs recorded as skipped: (job, run id), why.
    skipped: Vec<((String, i64), String)>,
    /// When to look again at the latest.
    wake_at: Option<Timestamp>,
}

impl Look {
    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |t| t.min(at)));
    }
}

/// One look: claims due times, then decides which waiting runs start. `running` is
/// the run in flight per job.
fn look(ostler: &Ostler, running: &BTreeMap<String, i64>, prune: bool) -> Result<Look> {
    let state = ostler.state()?;
    let now = ostler.clock.now();
    let config = &ostler.config;
    let mut look = Look::default();
    for job in &config.jobs {
        let name = job.name.get_ref();
        let zone = job.zone(config);
        let Some(through) = runs::cursor(&state, name)? else {
            // A job seen for the first time owes nothing from before it existed.
            runs::set_cursor(&state, name, now)?;
            if let Some(next) = job.schedule.next_after(now, &zone) {
                look.wake(next);
            }
            continue;
        };
        let new = match due(&job.schedule, &zone, job.missed, through, now) {
            Due::Nothing => None,
            Due::OnTime { at, superseded } => Some(NewRun {
                not_before: Some(crate::clock::later(at, jitter(job, at))),
                missed: superseded,
                detail: (superseded > 0).then(|| {
                    format!(
                        "{superseded} earlier time{} came while the scheduler was late; this run stands for {}",
                        if superseded == 1 { "" } else { "s" },
                        if superseded == 1 { "it" } else { "them" },
                    )
                }),
                ..NewRun::scheduled(name, at)
            }),
            Due::Missed { latest, count, run } => Some(NewRun {
                trigger: Trigger::Missed,
                missed: count,
                state: if run {
                    RunState::Waiting
                } else {
                    RunState::Skipped
                },
                detail: Some(format!(
                    "{count}{} scheduled time{} passed unseen (the daemon was down or the machine slept); {} (missed = \"{}\")",
                    if count >= crate::jobs::due::MISSED_COUNT_CAP { " or more" } else { "" },
                    if count == 1 { "" } else { "s" },
                    if run { "run once for them" } else { "skipped" },
                    if run { "run-once" } else { "skip" },
                )),
                ..NewRun::scheduled(name, latest)
            }),
        };
        if let Some(new) = new {
            if let Some(id) = runs::record(&state, &new)? {
                if new.state == RunState::Skipped {
                    look.skipped
                        .push(((name.clone(), id), new.detail.clone().unwrap_or_default()));
                }
            }
        }
        let after = runs::cursor(&state, name)?.unwrap_or(now).max(through);
        if let Some(next) = job.schedule.next_after(after, &zone) {
            look.wake(next);
        }
    }
    // Waiting runs, oldest first: at most one starts per job.
    let mut starting: BTreeMap<String, ()> = BTreeMap::new();
    let mut waiting_per_job: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs::in_state(&state, RunState::Waiting)? {
        // Started by an earlier look, not yet marked running by its task: it is the
        // run in flight, not one waiting behind it.
        if running.get(&run.job) == Some(&run.id) {
            continue;
        }
        let Some(job) = config.job(&run.job) else {
            skip(
                &state,
                &mut look,
                &run,
                "the job is no longer in the config".to_string(),
            )?;
            continue;
        };
        if let Some(at) = run.not_before.filter(|t| *t > now) {
            look.wake(at);
            continue;
        }
        let scheduled = matches!(run.trigger, Trigger::Schedule | Trigger::Missed);
        let busy = running.contains_key(&run.job) || starting.contains_key(&run.job);
        if !busy {
            starting.insert(run.job.clone(), ());
            look.start.push((job.clone(), run));
            continue;
        }
        let previous = running.get(&run.job).copied();
        match (job.overlap, scheduled) {
            // Manual runs and retries wait for the run in flight, whatever the overlap.
            (_, false) => {}
            (Overlap::Skip, true) => skip(
                &state,
                &mut look,
                &run,
                match previous {
                    Some(p) => format!("the previous run ({p}) still runs (overlap = \"skip\")"),
                    None => "another run of the job starts now (overlap = \"skip\")".to_string(),
                },
            )?,
            (Overlap::Queue, true) => {
                // One scheduled run waits behind the one in flight; later ones skip.
                let n = waiting_per_job.entry(run.job.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    skip(
                        &state,
                        &mut look,
                        &run,
                        "a run of the job already waits for the previous one (overlap = \"queue\")"
                            .to_string(),
                    )?;
                }
            }
            (Overlap::KillPrevious, true) => {
                if previous.is_some() {
                    look.kill.push(run.job.clone());
                }
            }
        }
    }
    if prune {
        let keep = &config.scheduler;
        runs::prune(&state, keep.keep_runs, keep.keep_runs_for.0)?;
    }
    Ok(look)
}

/// Skips a waiting run (one that started meanwhile is left alone).
fn skip(state: &crate::state::State, look: &mut Look, run: &Run, why: String) -> Result<()> {
    if runs::skip_waiting(state, run.id, &why)? {
        look.skipped.push(((run.job.clone(), run.id), why));
    }
    Ok(())
}
