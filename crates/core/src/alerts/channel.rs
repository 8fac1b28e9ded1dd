//! Delivering one [`Message`] through one channel: a mail over SMTP ([`email`]), a
//! JSON POST ([`webhook`]), or a shell command given the JSON on stdin ([`command`]).
//!
//! Delivery is blocking and bounded by the channel's `timeout` (the alerter runs it
//! off its runtime's threads). It does not retry: it says whether a failure is worth
//! retrying ([`DeliveryError::is_transient`]): a refused connection, a timeout, an
//! SMTP 4xx or an HTTP 5xx/408/429 may pass; a 4xx, an SMTP 5xx or a bad address will
//! not, and the alerter shows it rather than retrying it. Either way the error names
//! the channel and the cause, so what could not be delivered is never a mystery.

pub mod command;
pub mod email;
pub mod webhook;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::config::{ChannelConfig, ChannelKind};
use super::message::Message;

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Delivered {
    /// The SMTP server took the mail for `to`; `reply` is what it answered the data
    /// with (`250 2.0.0 queued as 1C2D3`).
    Mailed { to: Vec<String>, reply: String },
    /// The webhook answered `status` (2xx).
    Posted { url: String, status: u16 },
    /// The command exited 0; the last lines it printed.
    Ran { stdout_tail: String },
}

impl std::fmt::Display for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivered::Mailed { to, reply } => {
                write!(f, "mailed to {}: {reply}", to.join(", "))
            }
            Delivered::Posted { url, status } => write!(f, "POST {url}: HTTP {status}"),
            Delivered::Ran { .. } => write!(f, "command exited 0"),
        }
    }
}

/// A delivery that failed: through which channel, why, and whether trying again later
/// may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("channel `{channel}`: {cause}")]
pub struct DeliveryError {
    pub channel: String,
    pub cause: Cause,
    /// Worth retrying (see [`DeliveryError::is_transient`]).
    pub transient: bool,
}

impl DeliveryError {
    /// Whether a retry may succeed: refused connections, timeouts, SMTP 4xx, HTTP 5xx,
    /// 408 and 429, a command that failed; not an HTTP 4xx, an SMTP 5xx, a bad address
    /// or a channel that lacks what it needs.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// Why a delivery failed. Addresses are `host:port`; URLs have any password masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    #[error("connection refused by {addr}")]
    Refused { addr: String },
    #[error("no answer from {addr} within {}", human(*.after))]
    TimedOut {
        addr: String,
        #[serde(serialize_with = "as_human")]
        after: Duration,
    },
    #[error("cannot reach {addr}: {message}")]
    Unreachable { addr: String, message: String },
    /// The SMTP server answered with an error code.
    #[error("the SMTP server at {addr} answered {code}: {message}")]
    SmtpRefused {
        addr: String,
        code: u16,
        message: String,
    },
    /// The SMTP conversation broke off (connection lost, TLS failed...).
    #[error("SMTP with {addr} failed: {message}")]
    Smtp { addr: String, message: String },
    #[error("HTTP {status} from {url}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        url: String,
        status: u16,
        /// The start of the response body.
        body: String,
    },
    #[error("the command {}{}", exit_text(*code, *signal), if stderr.is_empty() { String::new() } else { format!("; stderr: {stderr}") })]
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    #[error("the command was still running after {}; killed with its process group", human(*.after))]
    Killed {
        #[serde(serialize_with = "as_human")]
        after: Duration,
    },
    #[error("cannot run the command: {message}")]
    Spawn { message: String },
    /// The channel lacks something it needs, or has it wrong (a mail address that does
    /// not parse, an unreadable `password_file`): not worth retrying.
    #[error("{message}")]
    Setup { message: String },
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn as_human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&human(*d))
}

fn exit_text(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => "ended".to_string(),
    }
}

/// Delivers `message` through `channel`; `dir` is the config file's directory (a
/// command runs there, a relative `password_file` is read from there). Blocking, and
/// bounded by the channel's `timeout`. Routing (`accepts`, `wants`) is the caller's.
pub fn deliver(
    channel: &ChannelConfig,
    message: &Message,
    dir: &Path,
) -> Result<Delivered, DeliveryError> {
    let outcome = match channel.kind() {
        ChannelKind::Email => email::send(channel, message, dir),
        ChannelKind::Webhook => webhook::post(channel, message),
        ChannelKind::Command => command::run(channel, message, dir),
    };
    outcome.map_err(|(cause, transient)| DeliveryError {
        channel: channel.name().to_string(),
        cause,
        transient,
    })
}

/// A failure of a channel's own making (what [`problems`](super::config::problems)
/// refuses in a checked config): never worth retrying.
fn setup(message: impl Into<String>) -> (Cause, bool) {
    (
        Cause::Setup {
            message: message.into(),
        },
        false,
    )
}

/// The io::Error somewhere in `error`'s chain of causes.
fn io_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = at {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        at = e.source();
    }
    None
}

/// `error` and its causes, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut at = error.source();
    while let Some(e) = at {
        let more = e.to_string();
        if !out.contains(&more) {
            out += ": ";
            out += &more;
        }
        at = e.source();
    }
    out
}

/// What an I/O failure talking to `addr` was: refused, timed out, or otherwise
/// unreachable (all worth retrying).
fn network(addr: &str, io: &std::io::Error, after: Duration, message: String) -> Cause {
    match io.kind() {
        std::io::ErrorKind::ConnectionRefused => Cause::Refused {
            addr: addr.to_string(),
        },
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Cause::TimedOut {
            addr: addr.to_string(),
            after,
        },
        _ => Cause::Unreachable {
            addr: addr.to_string(),
            message,
        },
    }
}
