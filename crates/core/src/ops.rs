//! The single-instance operations of the bin/manage surface: build, start, stop,
//! print, processes, configure, log-nuke, db-nuke, and an instance's status. Each takes
//! a `Runner` already journaled under the instance's lock (see `Ostler::operate`), and
//! says what it did as a typed outcome ([`Built`], [`Started`], [`Stopped`],
//! [`LogsEmptied`], [`DatabaseNuked`], [`InstanceInfo`]) for the front end to render.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::engine::Address;
use crate::error::{Error, Result};
use crate::exec::{tail, Runner};
use crate::instance::{Instance, Ostler};
use crate::process::{self, PidState};
use crate::state::{LockInfo, LockStale, Runtime, State};

/// What `build` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Built {
    /// The build command ran and exited 0.
    Built,
    /// The instance has no build command: nothing ran.
    NoBuildCommand,
}

/// A started instance: its process and, when it has a health URL, how long it took
/// to answer it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Started {
    pub pid: i32,
    pub port: u16,
    pub healthy_after_secs: Option<f64>,
}

/// How an instance stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum Stopped {
    /// Its group exited on SIGTERM.
    Terminated { after_secs: f64 },
    /// It did not exit within `stop_timeout` of SIGTERM and was killed with SIGKILL.
    Killed { timeout_ms: u64 },
}

/// The log files `log-nuke` emptied (none when there were none yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogsEmptied {
    pub files: Vec<PathBuf>,
}

/// What `db-nuke` kept before it emptied the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseNuked {
    /// The safety dump; None when there was no database file yet (nothing to keep).
    pub safety_dump: Option<PathBuf>,
}

pub fn build(_ostler: &Ostler, inst: &Instance, runner: &Runner) -> Result<Built> {
    std::fs::create_dir_all(&inst.dir)
        .map_err(|e| Error::io(format!("creating {}", inst.dir.display()), e))?;
    match &inst.config.build {
        Some(cmd) => {
            runner.shell(&inst.expand(cmd), &inst.dir, &inst.env())?;
            Ok(Built::Built)
        }
        None => Ok(Built::NoBuildCommand),
    }
}

pub fn configure(_ostler: &Ostler, inst: &Instance, runner: &Runner) -> Result<()> {
    match &inst.config.configure {
        Some(cmd) => {
            runner.shell(&inst.expand(cmd), &inst.dir, &inst.env())?;
            Ok(())
        }
        None => Err(Error::user(format!(
            "instance `{}` has no `configure` command in the config",
            inst.name
        ))),
    }
}

/// The instance's process as recorded, checked against the kernel.
pub fn running_pid(state: &State, inst: &Instance) -> Result<(Runtime, Option<i32>, PidState)> {
    let rt = state.runtime(&inst.name)?;
    match rt.pid {
        Some(pid) => {
            let ps = process::pid_state(pid, rt.pid_start_ticks);
            Ok((rt, (ps == PidState::Ours).then_some(pid), ps))
        }
        None => Ok((rt, None, PidState::Gone)),
    }
}

/// Starts the instance detached, in its own session and process group, output appended
/// to its log. Waits for the health URL when there is one.
pub fn start(ostler: &Ostler, inst: &Instance, runner: &Runner) -> Result<Started> {
    let state = ostler.state()?;
    let (mut rt, pid, _) = running_pid(&state, inst)?;
    if let Some(pid) = pid {
        return Err(Error::user(format!(
            "{} is already running (pid {pid})",
            inst.name
        )));
    }
    // Half restored (a restore was killed mid-way) is no state to serve from.
    if crate::backup::recover::pending(ostler, &inst.name) {
        return Err(Error::user(format!(
            "not starting {}: a restore of it was interrupted and is unfinished",
            inst.name
        ))
        .with_hint(format!(
            "`ostler recover {}` finishes or undoes it and starts the instance",
            inst.name
        )));
    }
    if process::port_in_use(inst.port) {
        let holder = match process::port_holder(inst.port) {
            Some((pid, prog)) => format!(": pid {pid} ({prog}) holds it"),
            None => String::new(),
        };
        return Err(Error::busy(format!(
            "cannot start {}: port {} is already in use{holder}",
            inst.name, inst.port
        )));
    }
    if !inst.dir.is_dir() {
        return Err(Error::user(format!(
            "cannot start {}: its dir {} does not exist",
            inst.name,
            inst.dir.display()
        ))
        .with_hint(format!("run `ostler build {}` first", inst.name)));
    }
    if let Some(parent) = inst.log_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&inst.log_path)
        .map_err(|e| Error::io(format!("opening log {}", inst.log_path.display()), e))?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let line = inst.expand(&inst.config.start);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        // `exec` makes the service itself the group leader we recorded, unless the
        // line is a little script of its own.
        .arg(if line.contains([';', '&', '|', '\n']) {
            line.clone()
        } else {
            format!("exec {line}")
        })
        .current_dir(&inst.dir)
        .envs(inst.env())
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| Error::io("duplicating log handle", e))?,
        )
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child gets its own session and process
    // group, so a terminal's Ctrl-C does not reach it and stop can signal the group.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = runner.spawn(&mut cmd).map_err(|e| match e {
        Error::Interrupted => e,
        e => Error::failed(format!("cannot start {}: {e}", inst.name)),
    })?;
    let pid = child.id() as i32;
    // The child is left running on purpose once healthy: whoever reaps it (init, or
    // the daemon's reaper) does so; we keep its pid and start time, and the journal
    // its end if it comes while we wait for health.
    rt.pid = Some(pid);
    rt.pid_start_ticks = process::start_ticks(pid);
    rt.started_at = Some(ostler.clock.now());
    rt.desired = "running".into();
    rt.supervision = "ok".into();
    rt.next_restart_at = None;
    state.set_runtime(&inst.name, &rt)?;
    match wait_ready(ostler, inst, &mut child, log_offset) {
        Ok(healthy_after_secs) => Ok(Started {
            pid,
            port: inst.port,
            healthy_after_secs,
        }),
        // Interrupted while waiting for health: the process is up and recorded; leave
        // it to the operator rather than kill what may be a healthy service.
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => {
            // Leave nothing half-started behind.
            if process::signal_group(pid, Signal::SIGKILL).is_ok() {
                child.wait();
            }
            let mut rt = state.runtime(&inst.name)?;
            rt.pid = None;
            rt.pid_start_ticks = None;
            state.set_runtime(&inst.name, &rt)?;
            Err(e)
        }
    }
}

fn log_tail_since(inst: &Instance, offset: u64) -> String {
    let text = std::fs::read(&inst.log_path).unwrap_or_default();
    let start = (offset as usize).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    if text.trim().is_empty() {
        "    (the log is empty)".into()
    } else {
        tail(&text, 15)
    }
}

/// Waits until the instance is up: alive after a moment, or healthy (then how long
/// it took) when it has a health URL.
fn wait_ready(
    ostler: &Ostler,
    inst: &Instance,
    child: &mut crate::exec::Spawned,
    log_offset: u64,
) -> Result<Option<f64>> {
    let pid = child.id() as i32;
    // Our own child's exit is seen (and journaled) by `try_wait`; one a daemon's
    // reaper took first shows as a pid no longer alive.
    let mut alive = || child.try_wait().is_none() && process::pid_alive(pid);
    let died = |inst: &Instance| {
        Error::failed(format!(
            "{} exited right after start; last lines of {}:\n{}",
            inst.name,
            inst.log_path.display(),
            log_tail_since(inst, log_offset)
        ))
    };
    let Some(url) = inst.health_url() else {
        std::thread::sleep(Duration::from_millis(300));
        return if alive() { Ok(None) } else { Err(died(inst)) };
    };
    let timeout = inst.config.health_timeout.0;
    let started = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build();
    let mut last;
    loop {
        ostler.interrupt.check()?;
        if !alive() {
            return Err(died(inst));
        }
        match agent.get(&url).call() {
            Ok(resp) if (200..300).contains(&resp.status()) => {
                return Ok(Some(started.elapsed().as_secs_f64()));
            }
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(ureq::Error::Status(code, _)) => last = format!("HTTP {code}"),
            Err(e) => last = e.to_string(),
        }
        if started.elapsed() >= timeout {
            return Err(Error::failed(format!(
                "{} did not become healthy within {} ({url}: {last}); last lines of {}:\n{}",
                inst.name,
                humantime::format_duration(timeout),
                inst.log_path.display(),
                log_tail_since(inst, log_offset)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the instance: SIGTERM to its process group, then SIGKILL after
/// `stop_timeout`. Says which it took. A recorded pid now owned by another program is
/// not touched.
pub fn stop(ostler: &Ostler, inst: &Instance, _runner: &Runner) -> Result<Stopped> {
    let state = ostler.state()?;
    let (mut rt, _, ps) = running_pid(&state, inst)?;
    rt.desired = "stopped".into();
    rt.next_restart_at = None;
    let Some(pid) = rt.pid else {
        state.set_runtime(&inst.name, &rt)?;
        return Err(Error::failed(format!("{} is not running", inst.name)));
    };
    match ps {
        PidState::Gone => {
            // The top process is gone; stragglers in its group still get stopped.
            if process::group_members(pid).is_empty() {
                rt.pid = None;
                state.set_runtime(&inst.name, &rt)?;
                return Err(Error::failed(format!(
                    "{} is not running (recorded pid {pid} has exited)",
                    inst.name
                )));
            }
        }
        PidState::Reused => {
            let who = process::tree(pid)
                .first()
                .map(|p| p.command.clone())
                .unwrap_or_default();
            rt.pid = None;
            state.set_runtime(&inst.name, &rt)?;
            return Err(Error::failed(format!(
                "{} is not running: its recorded pid {pid} now belongs to another program ({who}); not killing it",
                inst.name
            )));
        }
        PidState::Ours => {}
    }
    let timeout = inst.config.stop_timeout.0;
    let _ = process::signal_group(pid, Signal::SIGTERM);
    let started = Instant::now();
    let how = loop {
        if process::group_members(pid).is_empty() && !process::pid_alive(pid) {
            break Stopped::Terminated {
                after_secs: started.elapsed().as_secs_f64(),
            };
        }
        if started.elapsed() >= timeout {
            let _ = process::signal_group(pid, Signal::SIGKILL);
            let killed_at = Instant::now();
            while (process::pid_alive(pid) || !process::group_members(pid).is_empty())
                && killed_at.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            break Stopped::Killed {
                timeout_ms: timeout.as_millis() as u64,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    rt.pid = None;
    rt.pid_start_ticks = None;
    state.set_runtime(&inst.name, &rt)?;
    Ok(how)
}

/// An instance as configured, with its status: what `print` shows.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    /// The start command, expanded.
    pub start: String,
    pub build: Option<String>,
    pub health: Option<String>,
    /// The database's kind and where it is (a path, or a server database without
    /// its password).
    pub database: Option<DatabaseInfo>,
    pub stores: Vec<StoreInfo>,
    pub log: PathBuf,
    pub status: InstanceStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    pub kind: String,
    pub locator: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    pub name: String,
    pub path: PathBuf,
    pub cache: bool,
}

pub fn print(ostler: &Ostler, inst: &Instance) -> Result<InstanceInfo> {
    Ok(InstanceInfo {
        name: inst.name.clone(),
        dir: inst.dir.clone(),
        port: inst.port,
        start: inst.expand(&inst.config.start),
        build: inst.config.build.as_deref().map(|b| inst.expand(b)),
        health: inst.health_url(),
        database: inst.database.as_ref().map(|db| DatabaseInfo {
            kind: db.kind().to_string(),
            locator: db.locator(),
        }),
        stores: inst
            .stores()
            .into_iter()
            .map(|(name, path, cache)| StoreInfo { name, path, cache })
            .collect(),
        log: inst.log_path.clone(),
        status: status(ostler, inst)?,
    })
}

pub fn processes(ostler: &Ostler, inst: &Instance) -> Result<Vec<process::ProcessInfo>> {
    let state = ostler.state()?;
    let (_, pid, _) = running_pid(&state, inst)?;
    match pid {
        Some(pid) => Ok(process::tree(pid)),
        None => Err(Error::failed(format!("{} is not running", inst.name))),
    }
}

/// Truncates the instance's log and any extra `logs` files.
pub fn log_nuke(ostler: &Ostler, inst: &Instance) -> Result<LogsEmptied> {
    let mut done = Vec::new();
    for p in ostler.config.log_files(&inst.name) {
        if p.exists() {
            let f = OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| Error::io(format!("opening {}", p.display()), e))?;
            f.set_len(0)
                .map_err(|e| Error::io(format!("truncating {}", p.display()), e))?;
            done.push(p);
        }
    }
    Ok(LogsEmptied { files: done })
}

/// Empties the instance's database after writing a safety dump; says where it is.
pub fn db_nuke(ostler: &Ostler, inst: &Instance, runner: &Runner) -> Result<DatabaseNuked> {
    let Some(db) = &inst.database else {
        return Err(Error::user(format!(
            "instance `{}` has no database",
            inst.name
        )));
    };
    let state = ostler.state()?;
    if let (_, Some(pid), _) = running_pid(&state, inst)? {
        return Err(Error::user(format!(
            "{} is running (pid {pid}); stop it before db-nuke",
            inst.name
        ))
        .with_hint(format!("ostler stop,db-nuke {}", inst.name)));
    }
    let stamp = ostler.clock.now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let safety = db.safety_dump(
        runner,
        &safety_dump_dir(ostler),
        &format!("{}-{stamp}", inst.name),
    );
    let dump = match safety {
        Ok(p) => Some(p),
        Err(e)
            if db.engine().address() == Address::File && matches!(db.exists(runner), Ok(false)) =>
        {
            drop(e);
            None
        }
        Err(e) => {
            return Err(Error::failed(format!(
                "not nuking {}: the safety dump failed: {}",
                inst.name,
                crate::error::chain(&e)
            )))
        }
    };
    db.nuke(runner)?;
    Ok(DatabaseNuked { safety_dump: dump })
}

/// Where db-nuke writes its safety dumps.
pub fn safety_dump_dir(ostler: &Ostler) -> PathBuf {
    ostler.state_dir().join("safety")
}

/// An instance's lock as `status` shows it: who holds it, and whether it is stale
/// (held by nobody alive, or past its lease), so the next operation will reclaim it.
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    #[serde(flatten)]
    pub lock: LockInfo,
    pub stale: Option<LockStale>,
}

/// What `ostler status` shows for one instance.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub roles: Vec<String>,
    /// running, stopped, crashed, crash-loop, backoff
    pub state: String,
    pub pid: Option<i32>,
    pub port: u16,
    pub started_at: Option<Timestamp>,
    pub desired: String,
    pub supervision: String,
    pub recent_crashes: usize,
    pub lock: Option<LockStatus>,
    pub autostart: bool,
    /// Other instances whose database is this one's (the same file or server database).
    pub shares_database_with: Vec<String>,
}

pub fn status(ostler: &Ostler, inst: &Instance) -> Result<InstanceStatus> {
    let state = ostler.state()?;
    status_with(&state, ostler, inst)
}

pub fn status_with(state: &State, ostler: &Ostler, inst: &Instance) -> Result<InstanceStatus> {
    let (rt, pid, ps) = running_pid(state, inst)?;
    let now = ostler.clock.now();
    let lock = state
        .locks()?
        .into_iter()
        .find(|l| l.instance == inst.name)
        .map(|lock| LockStatus {
            stale: lock.stale(now),
            lock,
        });
    let state_word = if pid.is_some() {
        "running".to_string()
    } else if rt.supervision == "crash-loop" {
        "crash-loop".to_string()
    } else if rt.desired == "running" && rt.supervision == "backoff" {
        "backoff".to_string()
    } else if rt.desired == "running" && (ps != PidState::Ours) && rt.pid.is_some() {
        "crashed".to_string()
    } else {
        "stopped".to_string()
    };
    Ok(InstanceStatus {
        name: inst.name.clone(),
        roles: ostler.config.roles_of(&inst.name),
        state: state_word,
        pid,
        port: inst.port,
        started_at: pid.and(rt.started_at),
        desired: rt.desired.clone(),
        supervision: rt.supervision.clone(),
        recent_crashes: rt.crashes.len(),
        lock,
        autostart: inst.config.autostart,
        shares_database_with: ostler
            .config
            .shared_databases()
            .into_iter()
            .filter(|s| s.instances.contains(&inst.name))
            .flat_map(|s| s.instances)
            .filter(|n| n != &inst.name)
            .collect(),
    })
}

/// The status of each of `names` (instance names, already resolved), read from one
/// opening of the state; what `ostler status` and the daemon's `/v1/instances` show.
pub fn statuses(ostler: &Ostler, names: &[String]) -> Result<Vec<InstanceStatus>> {
    let state = ostler.state()?;
    names
        .iter()
        .map(|n| status_with(&state, ostler, &ostler.instance(n)?))
        .collect()
}
