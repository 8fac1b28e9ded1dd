//! The prober component: runs each `[[probes]]` entry on its interval, on the daemon's
//! clock, and says on the bus when a probe's hard state changes (`ProbeChanged`) or it
//! starts or stops flapping (`ProbeFlapping`); the alerter listens.
//!
//! Each probe runs every `interval` from the start of its previous check
//! (`retry_interval` while soft non-OK). A probe seen for the first time (at start, or
//! added by a reload) runs first at an offset within its interval taken from a stable
//! hash of its name, so a hundred probes with one interval do not fire at once; one
//! whose saved next check is still ahead keeps it (a restart resumes the schedule, the
//! soft count and the flap history: [`crate::probes::history`]). At most
//! [`MAX_RUNNING`] checks run at once, each on a blocking thread; the config is read
//! afresh each round, so a reload adds, changes and removes probes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::clock::later;
use crate::error::Result;
use crate::probes::state::{Observed, ProbeState};
use crate::probes::{history, ProbeConfig, ProbeResult, Status};

/// Checks in flight at once, at most.
pub const MAX_RUNNING: usize = 16;

/// The prober looks at least this often (a reload it missed, a clock that jumped).
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Results kept per probe (pruned hourly).
pub const KEEP_RESULTS: usize = 2000;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The prober.
pub struct Prober;

impl Component for Prober {
    fn name(&self) -> &'static str {
        "prober"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        Box::pin(async move {
            let mut run = Loop {
                bus: handle.bus().subscribe(),
                handle,
                shutdown,
                slots: BTreeMap::new(),
                tasks: JoinSet::new(),
                pruned_at: None,
                recorder: Arc::default(),
            };
            let mut ready = false;
            while !run.shutdown.is_cancelled() {
                match run.round().await {
                    Ok(()) => {}
                    Err(crate::Error::Busy { .. }) if run.handle.draining() => break,
                    Err(e) => return Err(e),
                }
                if !ready {
                    run.handle.set_ready("prober");
                    ready = true;
                }
                if let Some(done) = run.wait().await {
                    run.finished(done);
                }
            }
            // Draining: the checks in flight end within their timeouts.
            while let Some(done) = run.tasks.join_next().await {
                run.finished(done);
            }
            Ok(())
        })
    }
}

/// What the prober keeps of one probe between checks.
struct Slot {
    state: ProbeState,
    next_at: Timestamp,
    running: bool,
}

/// A finished check: the probe, when it started, what it found, and the state after.
struct Checked {
    probe: ProbeConfig,
    instance: Option<String>,
    at: Timestamp,
    result: ProbeResult,
    state: ProbeState,
    observed: Observed,
}

/// A check's task ends with its probe's name, when it started, and what it gave.
type Done = (String, Timestamp, Result<Checked>);

struct Loop {
    handle: Handle,
    shutdown: CancellationToken,
    bus: tokio::sync::broadcast::Receiver<Event>,
    slots: BTreeMap<String, Slot>,
    tasks: JoinSet<Done>,
    pruned_at: Option<Timestamp>,
    /// One connection to the state database that every check records through: opening
    /// one per check (and closing the last, which checkpoints the WAL) cost more than
    /// the checks.
    recorder: Arc<std::sync::Mutex<Option<crate::state::State>>>,
}

/// Runs `f` on the shared connection, opening it first if needed (and again after an
/// error, in case the connection is what failed).
fn record<T>(
    recorder: &std::sync::Mutex<Option<crate::state::State>>,
    ostler: &crate::instance::Ostler,
    f: impl FnOnce(&crate::state::State) -> Result<T>,
) -> Result<T> {
    let mut cached = recorder.lock().unwrap_or_else(|p| p.into_inner());
    let state = match cached.take() {
        Some(state) => state,
        None => ostler.state()?,
    };
    let done = f(&state);
    if done.is_ok() {
        *cached = Some(state);
    }
    done
}

/// FNV-1a: a hash of a name that is the same in every build and on every host (std's
/// hasher promises neither), for the first check's offset.
fn stable_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where in its interval a probe seen for the first time runs first.
pub fn first_offset(name: &str, interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(stable_hash(name) % ms)
}

impl Loop {
    /// Brings the slots in step with the config, then starts the checks that are due.
    async fn round(&mut self) -> Result<()> {
        let ostler = self.handle.ostler();
        let now = self.handle.clock().now();
        let probes = ostler.config.probes.clone();
        self.slots
            .retain(|name, slot| slot.running || probes.iter().any(|p| p.name() == name));
        let new: Vec<String> = probes
            .iter()
            .map(|p| p.name().to_string())
            .filter(|n| !self.slots.contains_key(n))
            .collect();
        if !new.is_empty() {
            let names = new.clone();
            let saved = self
                .handle
                .blocking(move |o| {
                    let state = o.state()?;
                    names
                        .iter()
                        .map(|n| history::load(&state, n))
                        .collect::<Result<Vec<_>>>()
                })
                .await?;
            for (name, saved) in new.into_iter().zip(saved) {
                let Some(probe) = probes.iter().find(|p| p.name() == name) else {
                    continue;
                };
                let first = crate::clock::later(now, first_offset(&name, probe.interval.0));
                let (state, next_at) = match saved {
                    Some(s) => {
                        let due = later(s.checked_at, probe.next_wait(s.state.is_soft()));
                        (s.state, if due > now { due } else { first })
                    }
                    None => (ProbeState::new(now), first),
                };
                tracing::debug!(probe = %name, next = %next_at, "probe scheduled");
                self.slots.insert(
                    name,
                    Slot {
                        state,
                        next_at,
                        running: false,
                    },
                );
            }
        }
        let mut due: Vec<(Timestamp, &ProbeConfig)> = probes
            .iter()
            .filter_map(|p| {
                let slot = self.slots.get(p.name())?;
                (!slot.running && slot.next_at <= now).then_some((slot.next_at, p))
            })
            .collect();
        due.sort_by_key(|(at, _)| *at);
        for (_, probe) in due {
            if self.tasks.len() >= MAX_RUNNING {
                break;
            }
            self.start(probe.clone(), now);
        }
        if self.prune_due(now) {
            self.pruned_at = Some(now);
            self.handle
                .blocking(|o| history::prune(&o.state()?, KEEP_RESULTS))
                .await?;
        }
        Ok(())
    }

    fn prune_due(&self, now: Timestamp) -> bool {
        self.pruned_at
            .is_none_or(|at| now.duration_since(at) >= crate::clock::signed(PRUNE_EVERY))
    }

    fn start(&mut self, probe: ProbeConfig, at: Timestamp) {
        let Some(slot) = self.slots.get_mut(probe.name()) else {
            return;
        };
        slot.running = true;
        let mut state = slot.state.clone();
        let handle = self.handle.clone();
        let span = tracing::info_span!("probe", probe = %probe.name());
        let name = probe.name().to_string();
        let recorder = self.recorder.clone();
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let checked = handle
                    .blocking(move |o| {
                        let result = crate::probes::run(o, &probe);
                        let observed =
                            state.observe(result.status, at, probe.retries(), probe.flap());
                        record(&recorder, o, |st| {
                            history::record(st, probe.name(), at, &result, &state)
                        })?;
                        Ok(Checked {
                            instance: probe.instance_in(&o.config),
                            probe,
                            at,
                            result,
                            state,
                            observed,
                        })
                    })
                    .await;
                (name, at, checked)
            },
            span,
        ));
    }

    fn finished(&mut self, done: std::result::Result<Done, tokio::task::JoinError>) {
        let checked = match done {
            Ok((_, _, Ok(c))) => c,
            Ok((name, at, Err(e))) => {
                // Tried again at its interval; the state it had is kept. (Refused
                // because the daemon drains: nothing to say.)
                if !self.handle.draining() {
                    tracing::warn!(probe = %name, error = %crate::error::chain(&e), "the probe's check could not be made or recorded");
                }
                if let Some((slot, probe)) = self
                    .slots
                    .get_mut(&name)
                    .zip(self.handle.ostler().config.probe(&name).cloned())
                {
                    slot.running = false;
                    slot.next_at = later(at, probe.interval.0);
                } else {
                    self.slots.remove(&name);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a probe's check did not finish");
                self.free_lost();
                return;
            }
        };
        let name = checked.probe.name().to_string();
        let soft = checked.state.is_soft();
        let wait = checked.probe.next_wait(soft);
        if let Some(slot) = self.slots.get_mut(&name) {
            slot.running = false;
            slot.state = checked.state.clone();
            slot.next_at = later(checked.at, wait);
        }
        let result = &checked.result;
        let bus = self.handle.bus();
        match (result.status, soft) {
            (Status::Ok, _) => tracing::debug!(probe = %name, summary = %result.summary, "ok"),
            (s, true) => tracing::info!(
                probe = %name,
                attempt = checked.state.attempt,
                retries = checked.probe.retries(),
                "soft {}: {}",
                s.as_str(),
                result.summary
            ),
            (s, false) => tracing::debug!(probe = %name, "{}: {}", s.as_str(), result.summary),
        }
        if let Some((from, to)) = checked.observed.hard_changed {
            tracing::warn!(probe = %name, from = from.as_str(), to = to.as_str(), "{}", result.summary);
            bus.publish(Event::ProbeChanged {
                probe: name.clone(),
                instance: checked.instance.clone(),
                from,
                to,
                summary: result.summary.clone(),
            });
        }
        if let Some(flapping) = checked.observed.flapping_changed {
            tracing::warn!(probe = %name, percent = checked.observed.percent, "{}", if flapping { "started flapping" } else { "stopped flapping" });
            bus.publish(Event::ProbeFlapping {
                probe: name,
                instance: checked.instance,
                flapping,
                percent: checked.observed.percent,
            });
        }
    }

    /// After a task that ended without saying which probe it checked (aborted): once no
    /// task is left, every slot still marked running is free again, due now.
    fn free_lost(&mut self) {
        if self.tasks.is_empty() {
            let now = self.handle.clock().now();
            for slot in self.slots.values_mut().filter(|s| s.running) {
                slot.running = false;
                slot.next_at = now;
            }
        }
    }

    /// Until the next check is due, a check ends (returned), a reload, or shutdown; at
    /// most [`MAX_SLEEP`].
    async fn wait(&mut self) -> Option<std::result::Result<Done, tokio::task::JoinError>> {
        let clock = self.handle.clock().clone();
        let mut until = clock.after(MAX_SLEEP);
        if self.tasks.len() < MAX_RUNNING {
            if let Some(next) = self
                .slots
                .values()
                .filter(|s| !s.running)
                .map(|s| s.next_at)
                .min()
            {
                until = until.min(next);
            }
        }
        let sleep = clock.sleep_until(until);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return None,
                _ = self.shutdown.cancelled() => return None,
                Some(done) = self.tasks.join_next() => return Some(done),
                event = self.bus.recv() => match event {
                    Ok(Event::ConfigReloaded { .. }) | Err(RecvError::Lagged(_)) => return None,
                    Ok(_) => {}
                    Err(RecvError::Closed) => self.shutdown.cancelled().await,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
