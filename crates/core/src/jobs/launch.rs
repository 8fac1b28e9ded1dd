//! One run of a job as a process: a `command` through `sh -c` in the config file's
//! directory; a built-in action as the ostler binary's own command for it (`ostler
//! backup INSTANCE`, `ostler verify ...`, `ostler logs rotate`; `ostler jobs exec NAME`
//! for the janitor actions), so it takes the instance's lock and journals exactly as
//! the CLI does, and a crash of the action is the run's failure, not the daemon's.
//!
//! The run is its own process group: a timeout, a `kill-previous` overlap or the
//! daemon's drain ending kills the group (SIGTERM, then SIGKILL after
//! [`KILL_GRACE`]), children and grandchildren with it. What it prints (stdout and
//! stderr, interleaved) is passed on line by line and its last [`TAIL_BYTES`] kept.
//! [`execute`] blocks until the run ended: the daemon calls it off its async threads.

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::runs::Run;
use super::{Action, JobConfig};
use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::instance::Ostler;
use crate::process::signal_group;

/// How much of a run's output is kept.
pub const TAIL_BYTES: usize = 16 * 1024;

/// After SIGTERM, a run's group has this long (on the service's clock) before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often a running run is looked at (its end, its timeout, a kill asked for).
const POLL: Duration = Duration::from_millis(20);

/// What a built-in action runs as: this ostler binary, reading this config.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
    pub config_path: PathBuf,
}

impl Launcher {
    /// The running binary, reading the config at `config_path`.
    pub fn current(config_path: &Path) -> Result<Launcher> {
        Ok(Launcher {
            exe: std::env::current_exe().map_err(|e| Error::io("finding the ostler binary", e))?,
            config_path: std::path::absolute(config_path)
                .map_err(|e| Error::io_at("resolving", config_path, e))?,
        })
    }

    /// The process a run of `job` is.
    pub fn command(&self, job: &JobConfig) -> Command {
        let dir = match self.config_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A built-in action is ostler's own command (a watch's `command` is run by it);
        // else the job's shell command.
        let mut cmd = match job.action.as_ref().map(|a| *a.get_ref()) {
            Some(action) => {
                let mut cmd = Command::new(&self.exe);
                cmd.arg("--config").arg(&self.config_path);
                cmd.args(action_args(job, action));
                cmd
            }
            None => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(job.command.as_deref().unwrap_or(""));
                cmd
            }
        };
        cmd.current_dir(dir);
        cmd
    }
}

/// The ostler command line of a built-in action.
fn action_args(job: &JobConfig, action: Action) -> Vec<String> {
    let instance = job.instance.as_ref().map(|i| i.get_ref().clone());
    let mut args: Vec<String> = match action {
        Action::Backup => vec!["backup".into()],
        Action::Prune => vec!["prune".into()],
        Action::Copy => vec!["copy".into()],
        Action::Verify => vec!["verify".into()],
        Action::RotateLogs => vec!["logs".into(), "rotate".into()],
        Action::Cleanup | Action::Sql | Action::Watch | Action::Probe => {
            return vec!["jobs".into(), "exec".into(), job.name.get_ref().clone()];
        }
    };
    if action == Action::Backup {
        args.extend(instance);
    }
    if action == Action::Verify && job.args.is_empty() {
        args.push("--all".into());
    }
    args.extend(job.args.iter().cloned());
    args
}

/// Why a run was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Its `timeout` passed.
    Timeout(Duration),
    /// A newer run of the job started (`overlap = "kill-previous"`), or an operator
    /// asked.
    Asked,
    /// The daemon's drain reached its bound (or Ctrl-C on `ostler jobs run`).
    Interrupted,
}

/// How a run's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal it did not get from us ended it.
    Signal(i32),
    /// We killed its group.
    Killed(KillReason),
}

/// A run that ended: how, and the tail of what it printed.
#[derive(Debug, Clone)]
pub struct Executed {
    pub exit: Exit,
    pub output: String,
}

impl Executed {
    pub fn succeeded(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

/// One run about to be executed, and what it runs with.
pub struct Execution<'a> {
    pub ostler: &'a Ostler,
    /// Echoes and journals the command (under the run's journal entry).
    pub runner: &'a Runner,
    pub launcher: &'a Launcher,
    pub job: &'a JobConfig,
    pub run: &'a Run,
    /// Cancelled to have the run's group killed.
    pub kill: &'a CancellationToken,
}

impl Execution<'_> {
    /// Runs it to its end. `on_start` gets the pid (= process group) once it runs (an
    /// error there kills it); `on_line` each line it prints, as it prints it.
    pub fn execute(
        &self,
        on_start: impl FnOnce(i32) -> Result<()>,
        on_line: impl FnMut(&str) + Send + 'static,
    ) -> Result<Executed> {
        execute(self, on_start, on_line)
    }
}

fn execute(
    e: &Execution,
    on_start: impl FnOnce(i32) -> Result<()>,
    on_line: impl FnMut(&str) + Send + 'static,
) -> Result<Executed> {
    let Execution {
        ostler,
        runner,
        launcher,
        job,
        run,
        kill,
    } = *e;
    let mut cmd = launcher.command(job);
    let (reader, writer) = std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| Error::io("creating a pipe", e))?;
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0)
        .env("OSTLER_JOB", job.name.get_ref())
        .env("OSTLER_RUN", run.id.to_string());
    if let Some(at) = run.scheduled_for {
        cmd.env("OSTLER_SCHEDULED_FOR", at.to_string());
    }
    let mut child = runner.spawn(&mut cmd)?;
    // The pipe's write ends now live only in the child (and what it starts).
    drop(cmd);
    let pid = child.id() as i32;
    let tail = Arc::new(Mutex::new(Tail::default()));
    let output = std::thread::spawn({
        let tail = tail.clone();
        let mut on_line = on_line;
        move || {
            let mut lines = BufReader::new(reader);
            let mut line = Vec::new();
            while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                on_line(text.trim_end_matches(['\n', '\r']));
                tail.lock().expect("tail").push(&line);
                line.clear();
            }
        }
    });
    let started = on_start(pid);
    let clock = ostler.clock.clone();
    let deadline = job.timeout.map(|t| crate::clock::later(clock.now(), t.0));
    // Why we kill it, and when SIGKILL follows the SIGTERM (none once sent).
    let mut killing: Option<(KillReason, Option<jiff::Timestamp>)> = None;
    let status = loop {
        if let Some(status) = child.try_wait() {
            break status;
        }
        let now = clock.now();
        if killing.is_none() {
            let reason = if started.is_err() || kill.is_cancelled() {
                Some(KillReason::Asked)
            } else if ostler.interrupt.is_set() {
                Some(KillReason::Interrupted)
            } else if deadline.is_some_and(|d| now >= d) {
                Some(KillReason::Timeout(
                    job.timeout.map(|t| t.0).unwrap_or_default(),
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                let _ = signal_group(pid, nix::sys::signal::Signal::SIGTERM);
                killing = Some((reason, Some(crate::clock::later(now, KILL_GRACE))));
            }
        }
        if let Some((_, grace_end)) = &mut killing {
            if grace_end.is_some_and(|end| now >= end) {
                let _ = signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                *grace_end = None;
            }
        }
        std::thread::sleep(POLL);
    };
    started?;
    // Whatever the group left running still holds the pipe: the tail is what came
    // until now (and a moment more), not what a daemonized grandchild prints later.
    let waited = std::time::Instant::now();
    while !output.is_finished() && waited.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let exit = match (killing, status.code(), status.signal()) {
        (Some((reason, ..)), _, _) => Exit::Killed(reason),
        (None, Some(code), _) => Exit::Code(code),
        (None, None, Some(sig)) => Exit::Signal(sig),
        (None, None, None) => Exit::Signal(0),
    };
    let output = tail.lock().expect("tail").text();
    Ok(Executed { exit, output })
}

/// The last [`TAIL_BYTES`] of a run's output, cut at a line start.
#[derive(Default)]
struct Tail {
    bytes: std::collections::VecDeque<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, line: &[u8]) {
        self.bytes.extend(line);
        while self.bytes.len() > TAIL_BYTES {
            self.cut = true;
            // Drop whole lines from the front.
            match self.bytes.iter().position(|b| *b == b'\n') {
                Some(i) if i + 1 < self.bytes.len() => {
                    self.bytes.drain(..=i);
                }
                _ => {
                    let over = self.bytes.len() - TAIL_BYTES;
                    self.bytes.drain(..over);
                }
            }
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(self.bytes.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        let text = String::from_utf8_lossy(&all).into_owned();
        if self.cut {
            format!("[...]\n{text}")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_whole() {
        let mut tail = Tail::default();
        for i in 0..5000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let text = tail.text();
        assert!(text.starts_with("[...]\nline "), "{}", &text[..40]);
        assert!(text.ends_with("line 4999\n"));
        assert!(text.len() <= TAIL_BYTES + 6);
        let first = text.lines().nth(1).unwrap();
        assert!(first.starts_with("line ") && first[5..].parse::<u32>().is_ok());
    }
}
