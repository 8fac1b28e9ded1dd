//! The daemon's event bus: components publish what happened as typed [`Event`]s and
//! subscribe to what they care about, without knowing who else listens (the supervisor
//! publishes a crash loop; an alerter, when there is one, hears it).

use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::probes::Status;

/// Something that happened in the daemon. Serialized with its kind as `event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The supervisor started (or restarted) an instance.
    InstanceStarted {
        instance: String,
        pid: i32,
    },
    /// An instance's process died while it was wanted running.
    InstanceCrashed {
        instance: String,
        why: String,
        /// Crashes within the crash window, this one included.
        crashes: u32,
        restart_at: Option<Timestamp>,
    },
    /// Too many crashes within the window: the supervisor stopped restarting it.
    CrashLoop {
        instance: String,
        crashes: u32,
        why: String,
    },
    /// A backup the daemon ran finished (`backup` is its id) or failed.
    BackupFinished {
        instance: String,
        backup: String,
    },
    BackupFailed {
        instance: String,
        error: String,
    },
    /// A component returned an error or panicked; the host restarts it at `restart_at`.
    ComponentFailed {
        component: String,
        error: String,
        restart_at: Timestamp,
    },
    /// A new config is in force; the names are the instances it added, removed, changed.
    ConfigReloaded {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    /// A run was queued to start now (`ostler jobs run`).
    JobQueued {
        job: String,
        run: i64,
    },
    JobStarted {
        job: String,
        run: i64,
        pid: i32,
    },
    JobFinished {
        job: String,
        run: i64,
    },
    /// A run failed: it is tried again at `retry_at`, or (none) it was the last try,
    /// and then `alert` says whether the job wants it alerted.
    JobFailed {
        job: String,
        run: i64,
        why: String,
        retry_at: Option<Timestamp>,
        alert: bool,
    },
    JobSkipped {
        job: String,
        run: i64,
        why: String,
    },
    /// A probe's hard state changed (after its retries: Nagios' soft then hard states).
    ProbeChanged {
        probe: String,
        instance: Option<String>,
        from: Status,
        to: Status,
        summary: String,
    },
    /// A probe started (or stopped) flapping: its alerts are held while it flaps.
    ProbeFlapping {
        probe: String,
        instance: Option<String>,
        flapping: bool,
        /// The weighted percent of state changes over its last results.
        percent: f64,
    },
    /// An alert was opened (or, `repeated`, raised again while open).
    AlertRaised {
        id: i64,
        key: String,
        repeated: bool,
    },
    AlertResolved {
        id: i64,
        key: String,
    },
    /// A notice about alert `id` reached `channel`.
    AlertDelivered {
        id: i64,
        channel: String,
    },
    /// It did not: tried again at `retry_at`, or (none) given up on and shown.
    AlertUndelivered {
        id: i64,
        channel: String,
        error: String,
        retry_at: Option<Timestamp>,
    },
    /// The proxy's routing was changed (maintenance, a switch): `<state_dir>/proxy.json`
    /// holds the new one.
    RoutingChanged,
    /// SIGTERM (or a stop request): no new work starts from here on.
    ShutdownRequested,
}

/// How many events a slow subscriber may fall behind before it misses some (it is
/// told how many: `RecvError::Lagged`).
const CAPACITY: usize = 1024;

/// Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct Bus(broadcast::Sender<Event>);

impl Bus {
    pub fn new() -> Bus {
        Bus(broadcast::channel(CAPACITY).0)
    }

    /// Publishes to whoever subscribes now; nobody listening is fine.
    pub fn publish(&self, event: Event) {
        tracing::debug!(?event, "event");
        let _ = self.0.send(event);
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

impl Default for Bus {
    fn default() -> Bus {
        Bus::new()
    }
}
