//! The `command` probe: any Nagios plugin, run with `sh -c` in the config file's
//! directory. Its exit code is the status (past 3 is UNKNOWN, as Nagios reads it), its
//! first line before `|` the summary, and what follows `|` its perfdata, all taken as
//! they are. One still running at `timeout` is killed with its process group and is
//! CRITICAL, as Nagios' `service_check_timeout_state` has it by default.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::ProbeConfig;
use super::run::{timeout_of, Perf, ProbeResult};
use super::Status;
use crate::instance::Ostler;

/// How often a running plugin is looked at.
const POLL: Duration = Duration::from_millis(10);

pub(super) fn check(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let Some(line) = probe.command.as_ref().map(|c| c.get_ref().as_str()) else {
        return ProbeResult::new(Status::Unknown, "no `command` to run");
    };
    let timeout = timeout_of(probe);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(line)
        .current_dir(ostler.config.base_dir())
        .env("OSTLER_PROBE", probe.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ProbeResult::new(Status::Unknown, format!("cannot run `sh -c {line}`: {e}"))
        }
    };
    // Read both pipes off this thread, so a chatty plugin never blocks on them.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.by_ref().take(1 << 20).read_to_end(&mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let pid = child.id() as i32;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = crate::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                return ProbeResult::new(Status::Unknown, format!("waiting for `{line}`: {e}"))
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return ProbeResult::new(
            Status::Critical,
            format!(
                "`{line}` did not finish within {}; killed",
                humantime::format_duration(timeout)
            ),
        );
    };
    let (summary, perfdata) = plugin_output(&stdout);
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => {
            return ProbeResult::new(
                Status::Unknown,
                format!("`{line}` was killed by signal {signal}"),
            )
        }
        (None, None) => 3,
    };
    let summary = if summary.is_empty() {
        // A plugin that printed nothing: say what it did say, on stderr.
        match stderr.lines().find(|l| !l.trim().is_empty()) {
            Some(err) => format!("(no output; exit {code}) {}", err.trim()),
            None => format!("(no output; exit {code})"),
        }
    } else {
        summary
    };
    ProbeResult {
        perfdata,
        ..ProbeResult::new(Status::from_code(code), summary)
    }
}

/// A plugin's output read as Nagios does: the first line's text and perfdata, and the
/// perfdata of later lines after a `|` (the long output's own lines are not kept).
pub fn plugin_output(stdout: &str) -> (String, Vec<Perf>) {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    let (summary, mut perf_text) = match first.split_once('|') {
        Some((s, p)) => (s.trim().to_string(), p.to_string()),
        None => (first.trim().to_string(), String::new()),
    };
    let rest: Vec<&str> = lines.collect();
    if let Some((_, more)) = rest.join("\n").split_once('|') {
        perf_text.push(' ');
        perf_text.push_str(more);
    }
    (summary, Perf::parse_all(&perf_text))
}
