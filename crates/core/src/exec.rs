//! Running external commands the way the runbooks ask: each one echoed before it runs
//! (`!!! CMD: ...` with `-v`), recorded in the journal with exit status and duration,
//! and on failure an error that quotes the command and the tail of what it printed.
//! Secrets never reach argv (drivers pass them by environment), so echoing argv is safe.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::report::{Interrupt, Reporter};
use crate::state::State;

/// Runs commands on behalf of one journaled operation.
#[derive(Clone)]
pub struct Runner {
    reporter: Arc<dyn Reporter>,
    journal: Option<(std::path::PathBuf, i64)>,
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

    /// A runner whose commands are recorded under journal entry `id` of the state in `state_dir`.
    pub fn journaled(&self, state_dir: &std::path::Path, id: i64) -> Runner {
        Runner {
            journal: Some((state_dir.to_path_buf(), id)),
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
        self.run_inner(cmd, None)
    }

    /// Like `run`, feeding `input` on stdin.
    pub fn run_with_input(&self, cmd: &mut Command, input: &[u8]) -> Result<String> {
        self.run_inner(cmd, Some(input))
    }

    fn record_begin(&self, line: &str) -> Option<(State, i64)> {
        let (dir, id) = self.journal.as_ref()?;
        let state = State::open(dir).ok()?;
        let cid = state.journal_command_begin(*id, line).ok()?;
        Some((state, cid))
    }

    fn run_inner(&self, cmd: &mut Command, input: Option<&[u8]>) -> Result<String> {
        self.interrupt.check()?;
        let line = describe(cmd);
        self.reporter.command(&line);
        let record = self.record_begin(&line);
        let started = Instant::now();
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::failed(format!("cannot run `{line}`: {e}")))?;
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("piped");
            let bytes = bytes.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::failed(format!("waiting for `{line}`: {e}")))?;
        if let Some((state, cid)) = record {
            let _ = state.journal_command_end(cid, out.status.code(), started.elapsed());
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
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
