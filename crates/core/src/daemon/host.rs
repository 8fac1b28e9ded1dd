//! The host the daemon's components live in: one tokio runtime, one [`Handle`] to the
//! shared state that every component gets a clone of, one shutdown signal they each
//! receive as an argument (as mini-redis' `run(listener, shutdown)`), and a keeper per
//! component that restarts it with backoff when it fails, so no component takes the
//! daemon down.
//!
//! Blocking work (an operation under an instance's lock, a backup, a database client)
//! runs through [`Handle::blocking`], on tokio's blocking threads and counted, so that
//! a drain knows what is still in flight: on shutdown no new work starts, what runs is
//! given [`Drain::bound`] to finish, then is interrupted (the `Interrupt` every
//! operation checks) and given [`Drain::grace`] more.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::bus::{Bus, Event};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::instance::Ostler;

/// A future a component runs as.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One part of the daemon (supervisor, control API, scheduler...). `run` is called
/// again after a failure, so it starts from the handle's state each time, and returns
/// once `shutdown` is cancelled.
pub trait Component: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>>;
}

/// What the host knows of a component, as `ostler status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub name: String,
    pub state: ComponentState,
    /// Since when it is in this state.
    pub since: Timestamp,
    /// How many times the host restarted it.
    pub restarts: u32,
    pub last_error: Option<String>,
    /// When it runs again, while `restarting`.
    pub restart_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentState {
    Running,
    Restarting,
    Stopped,
}

impl ComponentState {
    /// The word status shows (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Running => "running",
            ComponentState::Restarting => "restarting",
            ComponentState::Stopped => "stopped",
        }
    }
}

/// The cheap-to-clone handle to what the components share.
#[derive(Clone)]
pub struct Handle(Arc<Shared>);

struct Shared {
    /// Replaced whole by a reload; a component reads it afresh at each step.
    ostler: RwLock<Arc<Ostler>>,
    config_path: PathBuf,
    clock: Clock,
    bus: Bus,
    started_at: Timestamp,
    pid: u32,
    health: Mutex<BTreeMap<&'static str, ComponentHealth>>,
    /// The proxy's routing and requests in flight.
    traffic: Arc<super::proxy::Traffic>,
    /// The components that said they serve ([`Handle::set_ready`]).
    ready: tokio::sync::watch::Sender<BTreeSet<&'static str>>,
    work: TaskTracker,
    shutdown: CancellationToken,
}

impl Handle {
    /// The handle of a daemon serving `ostler` (read from `config_path`), on `ostler`'s
    /// clock.
    pub fn new(ostler: Ostler, config_path: &Path) -> Handle {
        let clock = ostler.clock.clone();
        Handle(Arc::new(Shared {
            started_at: clock.now(),
            ostler: RwLock::new(Arc::new(ostler)),
            config_path: config_path.to_path_buf(),
            clock,
            bus: Bus::new(),
            pid: std::process::id(),
            health: Mutex::new(BTreeMap::new()),
            traffic: Arc::default(),
            ready: tokio::sync::watch::Sender::new(BTreeSet::new()),
            work: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }))
    }

    /// The service as the daemon sees it now (config, reporter, interrupt, clock).
    pub fn ostler(&self) -> Arc<Ostler> {
        self.0
            .ostler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a new config in force (a reload): components see it at their next step.
    pub fn replace_ostler(&self, ostler: Ostler) {
        *self.0.ostler.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ostler);
    }

    pub fn config_path(&self) -> &Path {
        &self.0.config_path
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub fn bus(&self) -> &Bus {
        &self.0.bus
    }

    pub fn started_at(&self) -> Timestamp {
        self.0.started_at
    }

    pub fn pid(&self) -> u32 {
        self.0.pid
    }

    /// The daemon's shutdown signal; components get a clone as `run`'s argument.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// True once shutdown was asked for: no new work starts.
    pub fn draining(&self) -> bool {
        self.0.shutdown.is_cancelled()
    }

    /// The proxy's routing and what it has in flight.
    pub fn traffic(&self) -> &super::proxy::Traffic {
        &self.0.traffic
    }

    /// Every component's health, by name.
    pub fn health(&self) -> Vec<ComponentHealth> {
        self.0
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Component `name` serves (the supervisor once it made its first look): what
    /// systemd's READY=1 waits for ([`super::notify`]). Saying it again is free.
    pub fn set_ready(&self, name: &'static str) {
        self.0.ready.send_if_modified(|ready| ready.insert(name));
    }

    /// Returns once every one of `names` said it serves ([`Handle::set_ready`]).
    pub async fn until_ready(&self, names: &[&str]) {
        let mut ready = self.0.ready.subscribe();
        // The sender lives as long as the handle: the wait cannot fail.
        let _ = ready
            .wait_for(|ready| names.iter().all(|n| ready.contains(n)))
            .await;
    }

    fn set_health(&self, name: &'static str, update: impl FnOnce(&mut ComponentHealth)) {
        let mut all = self.0.health.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.0.clock.now();
        let entry = all.entry(name).or_insert_with(|| ComponentHealth {
            name: name.to_string(),
            state: ComponentState::Running,
            since: now,
            restarts: 0,
            last_error: None,
            restart_at: None,
        });
        let before = entry.state;
        update(entry);
        if entry.state != before {
            entry.since = now;
        }
    }

    /// Runs blocking `f` (an operation, a database client, a backup) on a blocking
    /// thread, counted as work in flight for the drain. Refused once the daemon drains.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ostler) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.draining() {
            return Err(Error::busy(
                "the daemon is shutting down: no new work starts",
            ));
        }
        let ostler = self.ostler();
        // The caller's span (its component's) goes along, so what the work logs says
        // which component asked for it.
        let span = tracing::Span::current();
        match self
            .0
            .work
            .spawn_blocking(move || span.in_scope(|| f(&ostler)))
            .await
        {
            Ok(result) => result,
            Err(e) => Err(Error::failed(format!(
                "a blocking task panicked: {}",
                panic_message(e)
            ))),
        }
    }

    /// Journals a daemon event (not tied to an operation), off the async threads, also
    /// while draining; a journal that cannot be written is logged, not fatal.
    pub async fn journal(&self, operation: &str, instance: Option<&str>, detail: &str) {
        let ostler = self.ostler();
        let (operation, instance, detail) = (
            operation.to_string(),
            instance.map(str::to_string),
            detail.to_string(),
        );
        let written = tokio::task::spawn_blocking(move || {
            ostler.journal_event(&operation, instance.as_deref(), &detail)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %crate::error::chain(&e), "journal not written"),
            Err(e) => tracing::warn!(error = %panic_message(e), "journal not written"),
        }
    }
}

/// The text of a task's panic (or of its cancellation).
fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".into();
    }
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// How long a shutdown waits for work in flight.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// For operations to finish on their own.
    pub bound: Duration,
    /// After they were interrupted, for them to stop cleanly.
    pub grace: Duration,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            bound: Duration::from_secs(30),
            grace: Duration::from_secs(10),
        }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drained {
    /// Everything in flight finished within the bound.
    Finished,
    /// Work was still running at the bound and was interrupted; it stopped in the grace.
    Interrupted,
    /// Work was still running after the grace; it is left behind (its locks name a
    /// dead pid once the daemon exits, and are reclaimed).
    Abandoned,
}

/// A restarted component waits this long after its first failure, doubling up to
/// [`BACKOFF_MAX`]; a component that ran [`BACKOFF_RESET`] without failing starts over.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(60);

/// Runs `components` until `handle.shutdown()` is cancelled, then drains.
pub async fn run(handle: Handle, components: Vec<Arc<dyn Component>>, drain: Drain) -> Drained {
    let keepers = TaskTracker::new();
    for component in components {
        keepers.spawn(keep(handle.clone(), component));
    }
    keepers.close();
    handle.shutdown().cancelled().await;
    handle.bus().publish(Event::ShutdownRequested);
    tracing::info!("shutdown asked: no new work starts; draining");
    handle.0.work.close();
    let settled = async {
        keepers.wait().await;
        handle.0.work.wait().await;
    };
    tokio::pin!(settled);
    if tokio::time::timeout(drain.bound, &mut settled)
        .await
        .is_ok()
    {
        return Drained::Finished;
    }
    tracing::warn!(bound = ?drain.bound, "work still running at the drain bound: interrupting it");
    handle.ostler().interrupt.set();
    if tokio::time::timeout(drain.grace, &mut settled)
        .await
        .is_ok()
    {
        Drained::Interrupted
    } else {
        Drained::Abandoned
    }
}

/// Keeps one component running: runs it, and when it fails (an error, a panic, or an
/// end before shutdown) logs, journals and publishes that, then runs it again after
/// a backoff on the daemon's clock.
async fn keep(handle: Handle, component: Arc<dyn Component>) {
    let name = component.name();
    let shutdown = handle.shutdown().clone();
    let clock = handle.clock().clone();
    let mut failures = 0u32;
    loop {
        handle.set_health(name, |h| {
            h.state = ComponentState::Running;
            h.restart_at = None;
        });
        let started = clock.now();
        let run = component.run(handle.clone(), shutdown.clone());
        let outcome =
            tokio::spawn(run.instrument(tracing::info_span!("component", component = name))).await;
        let error = match outcome {
            Ok(Ok(())) if shutdown.is_cancelled() => None,
            Ok(Ok(())) => Some("it stopped on its own".to_string()),
            Ok(Err(e)) => Some(crate::error::chain(&e).to_string()),
            Err(e) => Some(format!("it panicked: {}", panic_message(e))),
        };
        let Some(error) = error else {
            handle.set_health(name, |h| h.state = ComponentState::Stopped);
            return;
        };
        if shutdown.is_cancelled() {
            tracing::warn!(component = name, %error, "component failed while the daemon stopped");
            handle.set_health(name, |h| {
                h.state = ComponentState::Stopped;
                h.last_error = Some(error);
            });
            return;
        }
        if clock.now().duration_since(started) >= crate::clock::signed(BACKOFF_RESET) {
            failures = 0;
        }
        failures += 1;
        let delay = (BACKOFF_INITIAL * (1u32 << (failures - 1).min(16))).min(BACKOFF_MAX);
        let restart_at = clock.after(delay);
        tracing::error!(component = name, %error, restart_in = ?delay, "component failed");
        handle.set_health(name, |h| {
            h.state = ComponentState::Restarting;
            h.restarts += 1;
            h.last_error = Some(error.clone());
            h.restart_at = Some(restart_at);
        });
        handle.bus().publish(Event::ComponentFailed {
            component: name.to_string(),
            error: error.clone(),
            restart_at,
        });
        handle
            .journal(
                "component-failed",
                None,
                &format!(
                    "{name}: {error}; restarting in {}",
                    humantime::format_duration(delay)
                ),
            )
            .await;
        tokio::select! {
            _ = clock.sleep_until(restart_at) => {}
            _ = shutdown.cancelled() => {
                handle.set_health(name, |h| h.state = ComponentState::Stopped);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use crate::report::{Interrupt, Silent};

    fn handle(dir: &Path, clock: &ManualClock) -> Handle {
        let path = dir.join("ostler.toml");
        std::fs::write(&path, "[service]\nname = \"host-test\"\n").unwrap();
        let config = Config::load(&path).unwrap();
        let ostler =
            Ostler::new(config, Arc::new(Silent), Interrupt::new()).with_clock(clock.clock());
        Handle::new(ostler, &path)
    }

    /// Panics on its first run; afterwards counts its runs and waits for shutdown.
    struct Flaky(Arc<AtomicU32>);

    impl Component for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn run(&self, _: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
            let runs = self.0.clone();
            Box::pin(async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("flaky's first run");
                }
                shutdown.cancelled().await;
                Ok(())
            })
        }
    }

    /// Runs until shutdown.
    struct Steady;

    impl Component for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }
        fn run(&self, _: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
            Box::pin(async move {
                shutdown.cancelled().await;
                Ok(())
            })
        }
    }

    async fn until(limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "gave up waiting");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_component_that_panics_is_restarted_after_its_backoff_and_the_others_keep_running() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let handle = handle(dir.path(), &clock);
        let mut events = handle.bus().subscribe();
        let runs = Arc::new(AtomicU32::new(0));
        let host = tokio::spawn(run(
            handle.clone(),
            vec![Arc::new(Flaky(runs.clone())), Arc::new(Steady)],
            Drain::default(),
        ));

        let failed = events.recv().await.unwrap();
        let Event::ComponentFailed {
            component,
            error,
            restart_at,
        } = failed
        else {
            panic!("expected a component failure, got {failed:?}");
        };
        assert_eq!(component, "flaky");
        assert!(error.contains("panicked: flaky's first run"), "{error}");
        assert_eq!(restart_at, clock.now() + jiff::SignedDuration::from_secs(1));
        let health = |name: &str| {
            handle
                .health()
                .into_iter()
                .find(|h| h.name == name)
                .unwrap()
        };
        assert_eq!(health("flaky").state, ComponentState::Restarting);
        assert_eq!(health("steady").state, ComponentState::Running);

        // Not before its backoff has passed on the daemon's clock...
        assert!(clock.until_sleepers(1, Duration::from_secs(5)).await);
        clock.advance(Duration::from_millis(999));
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // ...then at once.
        clock.advance(Duration::from_millis(1));
        until(Duration::from_secs(5), || runs.load(Ordering::SeqCst) == 2).await;
        until(Duration::from_secs(5), || {
            health("flaky").state == ComponentState::Running
        })
        .await;
        assert_eq!(health("flaky").restarts, 1);

        // The failure is in the journal.
        let journal = handle.ostler().state().unwrap().journal(None, 10).unwrap();
        assert!(
            journal.iter().any(|e| e.operation == "component-failed"
                && e.detail.as_deref().unwrap_or("").contains("flaky")),
            "{journal:?}"
        );

        handle.shutdown().cancel();
        assert_eq!(host.await.unwrap(), Drained::Finished);
        assert_eq!(health("flaky").state, ComponentState::Stopped);
        assert_eq!(health("steady").state, ComponentState::Stopped);
    }

    #[tokio::test]
    async fn ready_waits_for_every_component_named() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let handle = handle(dir.path(), &clock);
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.until_ready(&["supervisor", "control"]).await }
        });
        handle.set_ready("supervisor");
        handle.set_ready("supervisor");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ready before control said so");
        handle.set_ready("control");
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("ready once both said so")
            .unwrap();
        // Asked afterwards, it is ready at once.
        handle.until_ready(&["control"]).await;
    }

    #[tokio::test]
    async fn no_new_blocking_work_starts_once_the_daemon_drains() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let handle = handle(dir.path(), &clock);
        assert_eq!(handle.blocking(|_| Ok(7)).await.unwrap(), 7);
        handle.shutdown().cancel();
        let refused = handle.blocking(|_| Ok(7)).await.unwrap_err();
        assert!(matches!(refused, Error::Busy { .. }), "{refused}");
    }
}
