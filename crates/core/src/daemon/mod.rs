//! `ostler serve`: the daemon, a host of components on one tokio runtime.
//!
//! - [`host`]: the [`Handle`] every component shares, the [`Component`] trait, the
//!   keeper that restarts a failed component with backoff, and the drain on shutdown.
//! - [`bus`]: typed [`Event`]s components publish and subscribe to.
//! - [`supervisor`]: keeps autostart instances running (backoff, crash loops).
//! - [`scheduler`]: runs `[[jobs]]` at their times and records every run.
//! - [`prober`]: runs `[[probes]]` on their intervals; says hard changes and flapping.
//! - [`notify`]: tells systemd READY, STATUS, STOPPING and pings its watchdog.
//! - [`reload`]: SIGHUP (or `ostler reload`) puts an edited config in force.
//! - [`alerter`]: raises alerts from probes, jobs and crash loops, and tells them to
//!   the channels of their escalation tiers.
//! - [`proxy`]: forwards HTTP to the instance behind `[proxy] role`, with a
//!   maintenance page.
//! - [`control`]: the control API on `<state_dir>/control.sock`; [`client`] is the
//!   CLI's side of it.
//!
//! One daemon per state dir (a flock on `<state_dir>/serve.lock`, which also names its
//! pid). SIGTERM or SIGINT drains: no new work starts, work in flight finishes or is
//! interrupted within the drain's bound, and the instances keep running: supervision
//! stops, service does not.

pub mod alerter;
pub mod bus;
pub mod client;
pub mod control;
pub mod host;
pub mod notify;
pub mod prober;
pub mod proxy;
pub mod reload;
pub mod scheduler;
pub mod supervisor;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use bus::{Bus, Event};
pub use host::{Component, ComponentHealth, ComponentState, Drain, Drained, Handle};
pub use reload::{ConfigChanges, InstanceChange};

use crate::error::{Error, Result};
use crate::instance::Ostler;

/// How `ostler serve` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the supervisor looks at the instances.
    pub tick: Duration,
    pub drain: Drain,
}

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

/// Runs the daemon for `ostler` (loaded from `config_path`) until SIGTERM or SIGINT,
/// then drains. Returns how the drain ended. The caller took the daemon lock
/// ([`daemon_lock`]) first, so that nothing it opens for the daemon (its log file) is
/// touched by a second daemon that is about to be refused.
pub fn serve(
    _lock: &DaemonLock,
    ostler: Ostler,
    config_path: &Path,
    options: Options,
) -> Result<Drained> {
    ostler.journal_event(
        "serve-start",
        None,
        &format!("daemon pid {}", std::process::id()),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ostler-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the daemon's runtime", e))?;
    let handle = Handle::new(ostler, config_path);
    let launcher = crate::jobs::launch::Launcher::current(config_path)?;
    let drained = runtime.block_on(async {
        listen_for_signals(&handle)?;
        let mut components: Vec<Arc<dyn Component>> = vec![
            Arc::new(supervisor::Supervisor { tick: options.tick }),
            Arc::new(scheduler::Scheduler { launcher }),
            Arc::new(control::Control),
            Arc::new(proxy::Proxy),
            Arc::new(alerter::Alerter),
            Arc::new(prober::Prober),
        ];
        components.extend(notify::components(&[
            "supervisor",
            "scheduler",
            "control",
            "proxy",
            "alerter",
            "prober",
        ]));
        Ok::<_, Error>(host::run(handle.clone(), components, options.drain).await)
    })?;
    // Blocking threads still running an abandoned operation are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let how = match drained {
        Drained::Finished => "daemon stopped; instances left running",
        Drained::Interrupted => {
            "daemon stopped after interrupting work in flight; instances left running"
        }
        Drained::Abandoned => {
            "daemon stopped leaving work that did not stop in time; instances left running"
        }
    };
    handle.ostler().journal_event("serve-stop", None, how)?;
    Ok(drained)
}

/// SIGTERM and SIGINT ask the daemon to shut down; SIGHUP reloads the config (a
/// refused one is logged with its located errors, and the daemon goes on).
fn listen_for_signals(handle: &Handle) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind| signal(kind).map_err(|e| Error::io("listening for signals", e));
    let mut term = listen(SignalKind::terminate())?;
    let mut int = listen(SignalKind::interrupt())?;
    let mut hup = listen(SignalKind::hangup())?;
    let reloader = handle.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            // `reload` logs and journals the outcome itself.
            let _ = reload::reload(&reloader).await;
        }
    });
    let shutdown = handle.shutdown().clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
        shutdown.cancel();
    });
    Ok(())
}
