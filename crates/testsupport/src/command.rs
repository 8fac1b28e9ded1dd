//! Running the database tools (initdb, psql, mariadb-install-db, mariadb ...) so
//! that a failure says what failed, which command it was and what it printed.
//!
//! The command line is rendered by hand rather than with `Command`'s `Debug`,
//! because `Debug` also shows environment variables set on the command, and that is
//! where the passwords are.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{anyhow, Context as _};

use crate::process;

/// How many lines of stderr or of a log an error message quotes.
pub(crate) const TAIL_LINES: usize = 30;

/// `program arg1 arg2 ...`, shell-quoted where needed. Never includes the
/// environment.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:@,+%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The last `lines` lines of `text`, for quoting in an error.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// The last lines of the log file at `path`, or a note saying why it can't be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => format!("(log {} is empty)", path.display()),
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), TAIL_LINES),
        Err(err) => format!("(could not read log {}: {err})", path.display()),
    }
}

/// Runs `cmd` to completion, feeding it `stdin` (if any), and returns its output if
/// it exited 0. Otherwise the error says `what` failed, the command line, the exit
/// status and the tail of stderr (and of stdout, where tools put their complaints
/// too).
pub(crate) fn run(cmd: &mut Command, what: &str, stdin: Option<&str>) -> anyhow::Result<Output> {
    run_inner(cmd, what, stdin, None)
}

/// Like [`run`] (without input), for a command that works in a server's `dir`
/// (initdb, mariadb-install-db): it runs in a process group of its own, recorded
/// for the dir's watchdog, so that it is stopped, children and all, before the dir
/// is removed if this process dies meanwhile.
pub(crate) fn run_tracked(cmd: &mut Command, what: &str, dir: &Path) -> anyhow::Result<Output> {
    cmd.process_group(0);
    let result = run_inner(cmd, what, None, Some(dir));
    process::untrack(dir);
    result
}

fn run_inner(
    cmd: &mut Command,
    what: &str,
    stdin: Option<&str>,
    track_dir: Option<&Path>,
) -> anyhow::Result<Output> {
    let line = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{what} failed: could not start `{line}`"))?;
    if let Some(dir) = track_dir {
        if let Err(err) = process::track(dir, child.id()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err.context(format!("{what} failed")));
        }
    }
    // Feed stdin from another thread so that a command which prints a lot before
    // reading all of its input cannot deadlock against us.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_owned();
            Some(std::thread::spawn(move || pipe.write_all(input.as_bytes())))
        }
        _ => None,
    };
    let output = child
        .wait_with_output()
        .with_context(|| format!("{what} failed: could not wait for `{line}`"))?;
    // A write error here is almost always EPIPE because the command failed early;
    // its exit status and stderr below tell the real story.
    let fed = feeder.map(|handle| handle.join());
    if output.status.success() {
        if let Some(Ok(Err(err))) = fed {
            return Err(anyhow!(
                "{what} failed: could not write its input to `{line}`: {err}"
            ));
        }
        return Ok(output);
    }
    Err(anyhow!(
        "{what} failed: `{line}` exited with {}\n{}",
        output.status,
        describe_output(&output)
    ))
}

/// The tails of stderr and stdout of a finished command, labelled.
pub(crate) fn describe_output(output: &Output) -> String {
    let mut text = String::new();
    for (name, bytes) in [("stderr", &output.stderr), ("stdout", &output.stdout)] {
        let body = String::from_utf8_lossy(bytes);
        if !body.trim().is_empty() {
            text.push_str(&format!(
                "--- {name} (last {TAIL_LINES} lines) ---\n{}\n",
                tail(&body, TAIL_LINES)
            ));
        }
    }
    if text.is_empty() {
        text.push_str("(it printed nothing)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_odd_words_and_never_shows_env() {
        let mut cmd = Command::new("psql");
        cmd.args(["-c", "select 'a b'", "-p", "5"])
            .env("PGPASSWORD", "hunter2");
        let line = describe(&cmd);
        assert_eq!(line, r#"psql -c 'select '\''a b'\''' -p 5"#);
        assert!(!line.contains("hunter2"));
    }

    #[test]
    fn run_reports_command_status_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let err = run(&mut cmd, "the demo", None).unwrap_err().to_string();
        assert!(err.starts_with("the demo failed: `sh -c"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn run_feeds_stdin() {
        let mut cmd = Command::new("cat");
        let out = run(&mut cmd, "cat", Some("hello\n")).unwrap();
        assert_eq!(out.stdout, b"hello\n");
    }
}
