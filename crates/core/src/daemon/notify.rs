//! The daemon under systemd's `Type=notify`: it tells the service manager when it is
//! ready, what it is doing and when it stops, and, when the unit sets `WatchdogSec=`,
//! proves every half period that its runtime still runs, so a wedged daemon is
//! restarted by systemd instead of sitting there supervising nothing.
//!
//! - READY=1 once the components in [`Systemd::ready_after`] said they serve
//!   ([`Handle::set_ready`]): the supervisor after its first look at the instances, so
//!   `systemctl start` returns when the autostart instances were started (or their
//!   start failed and is being retried) and not before. A unit whose instances take
//!   long to become healthy wants a `TimeoutStartSec=` to match.
//! - STATUS= a line such as "supervising 3 instances: 2 running, 1 crash-loop",
//!   written again whenever an instance starts, crashes, enters a crash loop or the
//!   config is reloaded (`systemctl status` shows it).
//! - STOPPING=1 the moment the drain begins.
//! - WATCHDOG=1 every half `WATCHDOG_USEC`, from the [`Watchdog`] component on the
//!   daemon's clock: it runs on the daemon's runtime, so a runtime that no longer runs
//!   its tasks stops pinging.
//!
//! All of it is no-op when `NOTIFY_SOCKET` is unset (not run by systemd): the two
//! components are then not started at all ([`components`]). The instances the daemon
//! starts inherit `NOTIFY_SOCKET`, but systemd only listens to the unit's main pid
//! (`NotifyAccess=main`, the default), so they cannot speak for the daemon.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::error::{Error, Result};
use crate::instance::Ostler;

/// The components that speak to systemd, when it listens: [`Systemd`] always,
/// [`Watchdog`] when the unit set `WatchdogSec=`. None without `NOTIFY_SOCKET`.
pub fn components(ready_after: &'static [&'static str]) -> Vec<Arc<dyn Component>> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Vec::new();
    }
    let mut components: Vec<Arc<dyn Component>> = vec![Arc::new(Systemd { ready_after })];
    if let Some(period) = sd_notify::watchdog_enabled() {
        // A period of a few microseconds must not make a busy loop.
        let every = (period / 2).max(Duration::from_millis(1));
        components.push(Arc::new(Watchdog { every }));
    }
    components
}

/// Tells systemd READY=1, STATUS= and STOPPING=1.
pub struct Systemd {
    /// The components whose readiness READY=1 waits for.
    pub ready_after: &'static [&'static str],
}

impl Component for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        let ready_after = self.ready_after;
        Box::pin(async move {
            // Subscribed before the wait, so no change after READY goes unsaid.
            let mut events = handle.bus().subscribe();
            tokio::select! {
                _ = handle.until_ready(ready_after) => {}
                _ = shutdown.cancelled() => return stopping(),
            }
            let Some(status) = status_line(&handle).await? else {
                return stopping();
            };
            send(&[NotifyState::Ready, NotifyState::Status(&status)])?;
            tracing::info!(%status, "ready (told systemd)");
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(
                            Event::InstanceStarted { .. }
                            | Event::InstanceCrashed { .. }
                            | Event::CrashLoop { .. }
                            | Event::ConfigReloaded { .. },
                        )
                        // Missed some: say the state as it is now.
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            if let Some(status) = status_line(&handle).await? {
                                send(&[NotifyState::Status(&status)])?;
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            shutdown.cancelled().await;
                            return stopping();
                        }
                    },
                    _ = shutdown.cancelled() => return stopping(),
                }
            }
        })
    }
}

/// STOPPING=1: the drain has begun.
fn stopping() -> Result<()> {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining: no new work starts"),
    ])
}

/// The status line, or `None` once the daemon drains (no new work, reads included).
async fn status_line(handle: &Handle) -> Result<Option<String>> {
    match handle.blocking(supervision_summary).await {
        Ok(line) => Ok(Some(line)),
        Err(Error::Busy { .. }) if handle.draining() => Ok(None),
        Err(e) => Err(e),
    }
}

/// "supervising 3 instances: 2 running, 1 crash-loop": the autostart instances by
/// the state `ostler status` gives them.
fn supervision_summary(ostler: &Ostler) -> Result<String> {
    let state = ostler.state()?;
    let mut by_state = std::collections::BTreeMap::<String, usize>::new();
    let mut n = 0;
    for inst in ostler.instances()? {
        if inst.config.autostart {
            n += 1;
            let status = crate::ops::status_with(&state, ostler, &inst)?;
            *by_state.entry(status.state).or_default() += 1;
        }
    }
    if n == 0 {
        return Ok("supervising no instances (none has autostart)".into());
    }
    let noun = if n == 1 { "instance" } else { "instances" };
    let states: Vec<String> = by_state
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    Ok(format!("supervising {n} {noun}: {}", states.join(", ")))
}

/// Pings systemd's watchdog every `every` (half its `WatchdogSec=`).
pub struct Watchdog {
    pub every: Duration,
}

impl Component for Watchdog {
    fn name(&self) -> &'static str {
        "watchdog"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        let every = self.every;
        Box::pin(async move {
            while !shutdown.is_cancelled() {
                send(&[NotifyState::Watchdog])?;
                tokio::select! {
                    _ = handle.clock().sleep(every) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Ok(())
        })
    }
}

/// Sends `states` to systemd's notify socket (nothing without one).
fn send(states: &[NotifyState]) -> Result<()> {
    sd_notify::notify(states).map_err(|e| Error::io("telling systemd (NOTIFY_SOCKET)", e))
}
