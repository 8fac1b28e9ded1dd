//! Running external commands the way the runbooks ask: each one echoed before it runs
//! (`!!! CMD: ...` with `-v`), recorded in the journal with exit status and duration,
//! and on failure an error that quotes the command and the tail of what it printed.
//! Secrets never reach argv (drivers pass them by environment), so echoing argv is safe.
//!
//! Most commands run to the end here ([`Runner::run`], [`Runner::run_bytes`]). Some
//! outlive the call: an instance's start command is a detached service, the SFTP
//! `ssh` stays open for a whole copy and is driven by async code. Those are announced
//! the same way ([`Runner::launch`], [`Runner::spawn`]) and their end, when it comes
//! and is seen, is recorded on the [`Launch`] they got.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::report::{Interrupt, Reporter};
use crate::state::State;

/// Runs commands on behalf of one journaled operation.
#[derive(Clone)]
pub struct Runner {
    reporter: Arc<dyn Reporter>,
    journal: Option<Journal>,
    interrupt: Interrupt,
}

impl Runner {
    pub fn new(reporter: Arc<dyn Reporter>, interrupt: Interrupt) -> Runner {
        Runner {
            reporter,
            journal: None,
            interrupt,
        }
    }

    /// A runner whose commands are recorded under journal entry `id` of `state`
    /// (in its dir, on its clock).
    pub fn journaled(&self, state: &State, id: i64) -> Runner {
        Runner {
            journal: Some(Journal {
                state_dir: state.dir().to_path_buf(),
                clock: state.clock().clone(),
                id,
            }),
            ..self.clone()
        }
    }

    /// The same runner, deaf to Ctrl-C: for undoing a failed step, which must run even
    /// (above all) when the operation was interrupted.
    pub fn uninterruptible(&self) -> Runner {
        Runner {
            interrupt: Interrupt::new(),
            ..self.clone()
        }
    }

    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.reporter
    }

    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// Runs `cmd`, returns its stdout; fails with its stderr tail when it exits non-zero.
    pub fn run(&self, cmd: &mut Command) -> Result<String> {
        let out = self.run_inner(cmd, None)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Like `run`, for a command whose output is data (a dump): stdout's bytes as they are.
    pub fn run_bytes(&self, cmd: &mut Command) -> Result<Vec<u8>> {
        Ok(self.run_inner(cmd, None)?.stdout)
    }

    /// Like `run`, feeding `input` on stdin.
    pub fn run_with_input(&self, cmd: &mut Command, input: &[u8]) -> Result<String> {
        let out = self.run_inner(cmd, Some(input))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Announces `cmd`, about to be started by the caller: echoes it and journals its
    /// start. Refuses once the operation is interrupted. The caller records its end
    /// on the returned [`Launch`] when it sees it.
    pub fn launch(&self, cmd: &Command) -> Result<Launch> {
        self.interrupt.check()?;
        let line = describe(cmd);
        self.reporter.command(&line);
        let record = self.journal.as_ref().and_then(|j| {
            // Its own connection: a launch may outlive the runner's borrow of the state.
            let state = State::open(&j.state_dir, j.clock.clone()).ok()?;
            let cid = state.journal_command_begin(j.id, &line).ok()?;
            Some((state, cid))
        });
        Ok(Launch {
            line,
            record,
            started: Instant::now(),
        })
    }

    /// Starts `cmd` with the stdio the caller set and leaves it running: announced
    /// like every command, its pid journaled, its end recorded when [`Spawned`] sees it.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Spawned> {
        let launch = self.launch(cmd)?;
        let child = cmd
            .spawn()
            .map_err(|e| Error::failed(format!("cannot run `{}`: {e}", launch.line)))?;
        launch.started_as(child.id());
        Ok(Spawned {
            child,
            launch: Some(launch),
        })
    }

    fn run_inner(&self, cmd: &mut Command, input: Option<&[u8]>) -> Result<Output> {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut spawned = self.spawn(cmd)?;
        let line = spawned.line().to_string();
        if let Some(bytes) = input {
            let mut stdin = spawned.child.stdin.take().expect("piped");
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let launch = spawned.launch.take();
        let out = spawned
            .child
            .wait_with_output()
            .map_err(|e| Error::failed(format!("waiting for `{line}`: {e}")))?;
        if let Some(launch) = launch {
            launch.ended(out.status);
        }
        if self.interrupt.is_set() {
            return Err(Error::Interrupted);
        }
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let text = if stderr.trim().is_empty() {
                stdout
            } else {
                stderr
            };
            return Err(Error::failed(format!(
                "`{line}` failed ({}):\n{}",
                out.status,
                tail(&text, 15)
            )));
        }
        Ok(out)
    }

    /// Runs a shell command line from the config (`build`, `configure`) in `dir`.
    pub fn shell(
        &self,
        line: &str,
        dir: &std::path::Path,
        env: &[(String, String)],
    ) -> Result<String> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)));
        self.run(&mut cmd)
    }
}

/// Where a journaled runner records its commands: entry `id` of the state in
/// `state_dir`, read on `clock`.
#[derive(Clone)]
struct Journal {
    state_dir: std::path::PathBuf,
    clock: Clock,
    id: i64,
}

/// A command that was announced and started; its end is recorded when it is seen.
pub struct Launch {
    line: String,
    /// The journal's record of it, when the runner journals.
    record: Option<(State, i64)>,
    started: Instant,
}

impl Launch {
    /// The command as echoed and journaled.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Journals the pid it started as.
    pub fn started_as(&self, pid: u32) {
        if let Some((state, cid)) = &self.record {
            let _ = state.journal_command_pid(*cid, pid);
        }
    }

    /// Journals how it ended (an exit code, or none when a signal ended it) and how
    /// long it ran.
    pub fn ended(self, status: ExitStatus) {
        if let Some((state, cid)) = &self.record {
            let _ = state.journal_command_end(*cid, status.code(), self.started.elapsed());
        }
    }
}

/// A command left running by [`Runner::spawn`]. Dropping it leaves the process
/// running, its end unknown to the journal.
pub struct Spawned {
    child: Child,
    /// Taken once the end is recorded.
    launch: Option<Launch>,
}

impl Spawned {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn line(&self) -> &str {
        self.launch.as_ref().map_or("", |l| l.line())
    }

    /// Whether it has ended, without waiting; the first time it has, its end is
    /// journaled. `None` also when someone else reaped it (a daemon's reaper): then
    /// its end is not ours to know.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        if let Some(launch) = self.launch.take() {
            launch.ended(status);
        }
        Some(status)
    }

    /// Waits for it to end (after it was signalled, say) and journals the end.
    pub fn wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.wait().ok()?;
        if let Some(launch) = self.launch.take() {
            launch.ended(status);
        }
        Some(status)
    }
}

/// A command as one line: program and arguments, shell-quoted where needed, and the
/// directory when it is set. Environment values are not shown (they may hold secrets).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![quote(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    let mut line = parts.join(" ");
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str(&format!("   (in {})", dir.display()));
    }
    line
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Silent;

    /// A runner journaling under a fresh entry of a state in `dir`; the entry's id.
    fn journaled(dir: &std::path::Path) -> (Runner, State, i64) {
        let state = State::open(dir, Clock::system()).unwrap();
        let id = state.journal_begin("test", None, None).unwrap();
        let runner = Runner::new(Arc::new(Silent), Interrupt::new()).journaled(&state, id);
        (runner, state, id)
    }

    #[test]
    fn run_bytes_gives_a_dumps_bytes_as_they_are_not_a_lossy_string() {
        let runner = Runner::new(Arc::new(Silent), Interrupt::new());
        let mut cmd = Command::new("printf");
        cmd.arg("\\377\\000x");
        assert_eq!(runner.run_bytes(&mut cmd).unwrap(), [0xff, 0, b'x']);
    }

    #[test]
    fn a_journaled_runner_stamps_its_commands_on_the_states_clock() {
        let dir = tempfile::tempdir().unwrap();
        let manual = crate::clock::ManualClock::at_new_year();
        let state = State::open(dir.path(), manual.clock()).unwrap();
        let id = state.journal_begin("test", None, None).unwrap();
        let runner = Runner::new(Arc::new(Silent), Interrupt::new()).journaled(&state, id);
        manual.advance(std::time::Duration::from_secs(90));
        runner.run(&mut Command::new("true")).unwrap();
        let entry = state.journal(None, 1).unwrap().pop().unwrap();
        assert_eq!(entry.commands[0].started_at, manual.now());
    }

    #[test]
    fn a_spawned_command_is_journaled_with_its_pid_then_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, state, _) = journaled(dir.path());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exit 3"]);
        let mut child = runner.spawn(&mut cmd).unwrap();
        let pid = child.id() as i64;
        let entry = state.journal(None, 1).unwrap().pop().unwrap();
        let c = &entry.commands[0];
        assert_eq!((c.command.as_str(), c.pid), ("sh -c 'exit 3'", Some(pid)));
        assert_eq!((c.exit_status, c.duration_ms), (None, None));
        assert_eq!(child.wait().and_then(|s| s.code()), Some(3));
        let entry = state.journal(None, 1).unwrap().pop().unwrap();
        let c = &entry.commands[0];
        assert_eq!(c.exit_status, Some(3));
        assert!(c.duration_ms.is_some());
    }

    #[test]
    fn nothing_is_launched_once_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, state, _) = journaled(dir.path());
        runner.interrupt().set();
        let err = runner.spawn(&mut Command::new("true")).err().unwrap();
        assert!(matches!(err, Error::Interrupted), "{err}");
        let entry = state.journal(None, 1).unwrap().pop().unwrap();
        assert!(entry.commands.is_empty());
    }
}
