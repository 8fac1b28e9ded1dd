//! What a channel is handed to deliver: one notice about one alert or about a group of
//! alerts that fired together (Alertmanager's grouping: one message for ten probes that
//! failed at once).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::store::{Alert, Severity};

/// Why this message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A tier is told for the first time (tier 1 when the alert opened).
    Firing,
    /// The highest tier told is told again (`renotify`, Alertmanager's `repeat_interval`).
    Renotify,
    /// What was told has resolved (Gatus' send-on-resolved).
    Resolved,
}

impl Reason {
    /// As recorded (a notice owed in the state database); anything else is firing.
    pub fn parse(text: &str) -> Reason {
        match text {
            "renotify" => Reason::Renotify,
            "resolved" => Reason::Resolved,
            _ => Reason::Firing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Firing => "firing",
            Reason::Renotify => "renotify",
            Reason::Resolved => "resolved",
        }
    }
}

/// One notice for one channel. Serialized as the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// `[service] name`.
    pub service: String,
    pub reason: Reason,
    /// The escalation tier told (0-based: tier 1 is 0).
    pub tier: usize,
    /// The highest severity among `alerts`.
    pub severity: Severity,
    pub alerts: Vec<Alert>,
    pub sent_at: Timestamp,
}

impl Message {
    pub fn new(
        service: &str,
        reason: Reason,
        tier: usize,
        alerts: Vec<Alert>,
        at: Timestamp,
    ) -> Message {
        let severity = alerts
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or(Severity::Warning);
        Message {
            service: service.to_string(),
            reason,
            tier,
            severity,
            alerts,
            sent_at: at,
        }
    }

    /// A one-line subject: `[ostler guestbook] CRITICAL: probe dav-put (production)`,
    /// `... RESOLVED: ...`, or `... CRITICAL: 10 alerts` for a group.
    pub fn subject(&self) -> String {
        let word = match self.reason {
            Reason::Resolved => "RESOLVED",
            _ => match self.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING",
            },
        };
        let what = match self.alerts.as_slice() {
            [one] => match &one.instance {
                Some(i) => format!("{} {} ({i})", one.source, one.name),
                None => format!("{} {}", one.source, one.name),
            },
            many => format!("{} alerts", many.len()),
        };
        format!("[ostler {}] {word}: {what}", self.service)
    }
}
