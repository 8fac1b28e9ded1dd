//! Command channels: `sh -c COMMAND` in the config file's directory, given the
//! [`Message`] as JSON on stdin and its gist in `OSTLER_ALERT_*` variables (for a
//! script that wants no JSON parser). It runs in its own process group, so at the
//! timeout the shell and everything it started are killed together.
//!
//! Variables: `OSTLER_ALERT_CHANNEL`, `_SERVICE`, `_REASON` (firing, renotify,
//! resolved), `_SEVERITY`, `_TIER` (1 for the first tier), `_SUBJECT`, `_COUNT`,
//! `_IDS` (comma-separated); and, when the message is about one alert, `_ID`, `_KEY`,
//! `_SOURCE`, `_NAME`, `_INSTANCE` (empty when none), `_SUMMARY`.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{setup, Cause, Delivered};
use crate::alerts::config::ChannelConfig;
use crate::alerts::message::Message;

/// How many lines of stdout (on success) or stderr (on failure) are kept.
const TAIL_LINES: usize = 5;

/// How often a running command is looked at.
const POLL: Duration = Duration::from_millis(10);

/// The environment a command channel's command gets for `message`.
pub fn env(channel: &ChannelConfig, message: &Message) -> Vec<(String, String)> {
    let mut vars = vec![
        ("CHANNEL", channel.name().to_string()),
        ("SERVICE", message.service.clone()),
        ("REASON", message.reason.as_str().to_string()),
        ("SEVERITY", message.severity.as_str().to_string()),
        ("TIER", (message.tier + 1).to_string()),
        ("SUBJECT", message.subject()),
        ("COUNT", message.alerts.len().to_string()),
        (
            "IDS",
            message
                .alerts
                .iter()
                .map(|a| a.id.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    if let [alert] = message.alerts.as_slice() {
        vars.extend([
            ("ID", alert.id.to_string()),
            ("KEY", alert.key.clone()),
            ("SOURCE", alert.source.clone()),
            ("NAME", alert.name.clone()),
            ("INSTANCE", alert.instance.clone().unwrap_or_default()),
            ("SUMMARY", alert.summary.clone()),
        ]);
    }
    vars.into_iter()
        .map(|(k, v)| (format!("OSTLER_ALERT_{k}"), v))
        .collect()
}

pub(super) fn run(
    channel: &ChannelConfig,
    message: &Message,
    dir: &Path,
) -> Result<Delivered, (Cause, bool)> {
    let script = channel
        .command
        .as_ref()
        .map(|c| c.get_ref().clone())
        .ok_or_else(|| setup("`command` is missing"))?;
    let input = serde_json::to_vec(message)
        .map_err(|e| setup(format!("cannot write the message as JSON: {e}")))?;
    let timeout = channel.timeout.0;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .envs(env(channel, message))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            (
                Cause::Spawn {
                    message: format!("sh -c in {}: {e}", dir.display()),
                },
                // A missing directory stays missing; anything else (no processes to be
                // had) may pass.
                e.kind() != std::io::ErrorKind::NotFound,
            )
        })?;
    let started = Instant::now();
    let pgid = child.id() as i32;

    // Fed and drained by threads, so a command that reads nothing, or prints a lot,
    // never blocks us; what they got comes back on a channel.
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    if let Some(mut stdin) = child.stdin.take() {
        std::thread::spawn(move || {
            // A command that does not read its stdin closes the pipe: not an error.
            let _ = stdin.write_all(&input);
        });
    }
    for (is_err, pipe) in [
        (
            false,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            true,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        if let Some(mut pipe) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let _ = pipe.read_to_end(&mut out);
                let _ = tx.send((is_err, out));
            });
        }
    }
    drop(tx);

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = crate::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err((Cause::Killed { after: timeout }, true));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                let _ = crate::process::signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err((
                    Cause::Spawn {
                        message: format!("waiting for it: {e}"),
                    },
                    true,
                ));
            }
        }
    };
    // The shell is gone; what it started in the background may still hold the pipes,
    // so what they printed is waited for only until the timeout.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Ok((is_err, bytes)) = rx.recv_timeout(timeout.saturating_sub(started.elapsed())) {
        if is_err {
            stderr = bytes;
        } else {
            stdout = bytes;
        }
    }
    if status.success() {
        return Ok(Delivered::Ran {
            stdout_tail: tail(&stdout),
        });
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status.code();
    Err((
        Cause::Exited {
            code,
            signal: status.signal(),
            stderr: tail(&stderr),
        },
        // 126 and 127: the shell found nothing it could run, which a retry will not change.
        !matches!(code, Some(126 | 127)),
    ))
}

/// The last lines of `bytes`, joined by ` | ` to stay on one line.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ")
}
