//! Email channels: a plain-text mail over SMTP with lettre's blocking transport, one
//! connection per message (the alerter sends few, and a pooled connection would only
//! go stale between them). Plain SMTP is meant for a relay on loopback; with
//! `starttls = true` the connection is upgraded (rustls) before any login.

use std::path::Path;
use std::time::SystemTime;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{SmtpTransport, Transport};

use super::{chain, io_cause, network, setup, Cause, Delivered};
use crate::alerts::config::ChannelConfig;
use crate::alerts::message::{Message, Reason};

pub(super) fn send(
    channel: &ChannelConfig,
    message: &Message,
    dir: &Path,
) -> Result<Delivered, (Cause, bool)> {
    let (host, port) = channel
        .smtp_address()
        .ok_or_else(|| setup("`smtp` is missing or not `host:port`"))?;
    let addr = format!("{host}:{port}");
    let from = channel.from();
    let from: Mailbox = from
        .parse()
        .map_err(|e| setup(format!("`from`: `{from}` is not a mail address ({e})")))?;
    let to: Vec<String> = channel
        .to
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_default();
    if to.is_empty() {
        return Err(setup("`to` names no recipient"));
    }
    let mut mail = lettre::Message::builder()
        .from(from)
        .subject(message.subject())
        .date(SystemTime::from(message.sent_at))
        .header(ContentType::TEXT_PLAIN);
    for address in &to {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|e| setup(format!("`to`: `{address}` is not a mail address ({e})")))?;
        mail = mail.to(mailbox);
    }
    let mail = mail
        .body(body(message))
        .map_err(|e| setup(format!("cannot build the mail: {e}")))?;

    let builder = if channel.starttls() {
        SmtpTransport::starttls_relay(&host)
            .map_err(|e| setup(format!("`smtp`: cannot set up STARTTLS for {host}: {e}")))?
    } else {
        SmtpTransport::builder_dangerous(&host)
    };
    let mut builder = builder.port(port).timeout(Some(channel.timeout.0));
    if let Some(user) = &channel.username {
        builder = builder.credentials(Credentials::new(
            user.get_ref().clone(),
            password(channel, dir)?,
        ));
    }
    // lettre's timeout bounds each read and write, not the conversation: one server
    // answering slowly line by line could hold a delivery for many timeouts. So the
    // conversation has its own thread and is waited for `timeout`; one cut off ends
    // in its thread at its next socket timeout.
    let transport = builder.build();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(transport.send(&mail));
    });
    let sent = rx.recv_timeout(channel.timeout.0).map_err(|_| {
        (
            Cause::TimedOut {
                addr: addr.clone(),
                after: channel.timeout.0,
            },
            true,
        )
    })?;
    match sent {
        Ok(response) => Ok(Delivered::Mailed {
            to,
            reply: format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            ),
        }),
        Err(e) => Err(failure(&addr, channel, &e)),
    }
}

/// The SMTP password: `password`, or the first line of `password_file`.
fn password(channel: &ChannelConfig, dir: &Path) -> Result<String, (Cause, bool)> {
    if let Some(p) = &channel.password {
        return Ok(p.get_ref().clone());
    }
    let Some(file) = &channel.password_file else {
        return Err(setup("`username` needs `password` or `password_file`"));
    };
    let path = dir.join(file.get_ref());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| setup(format!("cannot read password_file {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// What a failed SMTP conversation with `addr` was, and whether a retry may help.
fn failure(
    addr: &str,
    channel: &ChannelConfig,
    e: &lettre::transport::smtp::Error,
) -> (Cause, bool) {
    if let Some(code) = e.status() {
        let code: u16 = code.to_string().parse().unwrap_or(0);
        // The server's own words, without lettre's "permanent error (550): " prefix.
        let message = e
            .to_string()
            .split_once("): ")
            .map(|(_, m)| m.to_string())
            .unwrap_or_else(|| e.to_string());
        return (
            Cause::SmtpRefused {
                addr: addr.to_string(),
                code,
                message,
            },
            e.is_transient(),
        );
    }
    let after = channel.timeout.0;
    if e.is_timeout() {
        return (
            Cause::TimedOut {
                addr: addr.to_string(),
                after,
            },
            true,
        );
    }
    if e.is_client() {
        // lettre refused on our side: STARTTLS asked of a server that does not offer
        // it, no login mechanism in common. The server must change first.
        return (
            Cause::Smtp {
                addr: addr.to_string(),
                message: chain(e),
            },
            false,
        );
    }
    if let Some(io) = io_cause(e) {
        return (network(addr, io, after, chain(e)), true);
    }
    (
        Cause::Smtp {
            addr: addr.to_string(),
            message: chain(e),
        },
        true,
    )
}

/// The mail's plain-text body: why it is sent, then each alert with what a person
/// paged needs (what, where, how bad, since when, how often, who has it in hand).
pub fn body(message: &Message) -> String {
    let tier = message.tier + 1;
    let mut out = String::new();
    out += &match message.reason {
        Reason::Firing => format!("Firing: escalation tier {tier} is told.\n"),
        Reason::Renotify => format!(
            "Still firing, nobody has acknowledged: escalation tier {tier} is told again.\n"
        ),
        Reason::Resolved => format!("Resolved (escalation tier {tier} was told).\n"),
    };
    out += &format!("Service: {}\n", message.service);
    out += &format!("Sent: {}\n", message.sent_at);
    for (n, alert) in message.alerts.iter().enumerate() {
        out += &format!(
            "\n{}. {} {} (alert {})\n",
            n + 1,
            alert.source,
            alert.name,
            alert.id
        );
        let mut field = |label: &str, value: String| {
            out += &format!("   {:<14}{value}\n", format!("{label}:"));
        };
        field(
            "instance",
            alert.instance.clone().unwrap_or_else(|| "-".into()),
        );
        field("severity", alert.severity.as_str().into());
        field("summary", alert.summary.clone());
        field("opened", alert.opened_at.to_string());
        field("occurrences", alert.occurrences.to_string());
        field(
            "acknowledged",
            match (&alert.acked_at, &alert.acked_by) {
                (Some(at), by) => {
                    let mut text = format!("at {at}");
                    if let Some(by) = by {
                        text += &format!(" by {by}");
                    }
                    if let Some(note) = &alert.ack_note {
                        text += &format!(": {note}");
                    }
                    text
                }
                (None, _) => "no".into(),
            },
        );
        field(
            "resolved",
            alert
                .resolved_at
                .map(|t| format!("at {t}"))
                .unwrap_or_else(|| "no".into()),
        );
    }
    let open: Vec<i64> = message
        .alerts
        .iter()
        .filter(|a| a.acked_at.is_none() && a.resolved_at.is_none())
        .map(|a| a.id)
        .collect();
    if message.reason != Reason::Resolved && !open.is_empty() {
        out += "\nAcknowledging stops the escalation:\n";
        for id in open {
            out += &format!("    ostler alerts ack {id}\n");
        }
    }
    out
}
