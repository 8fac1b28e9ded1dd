//! Alerts and silences in the state database. One alert is open per key (`probe:NAME`,
//! `job:NAME`, `instance:NAME:crash-loop`): raising it again counts a repeat on the
//! open one (deduplicated) and raises its severity if higher; resolving closes it; an
//! acknowledgement (who, a note) stops its escalation. A silence holds back every
//! notice about its target (an instance or role, a probe, a job) until it ends.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::escalation::Escalation;
use crate::error::{Error, Result};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    fn parse(text: &str) -> Severity {
        if text == "warning" {
            Severity::Warning
        } else {
            Severity::Critical
        }
    }
}

/// What raises an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// `probe`, `job` or `instance`.
    pub source: String,
    /// The probe's, job's or instance's name.
    pub name: String,
    /// What about it (`crash-loop`); part of the key when given.
    pub condition: Option<String>,
    pub instance: Option<String>,
    pub severity: Severity,
    pub summary: String,
}

impl Raise {
    /// The key one open alert is kept per.
    pub fn key(&self) -> String {
        match &self.condition {
            Some(c) => format!("{}:{}:{c}", self.source, self.name),
            None => format!("{}:{}", self.source, self.name),
        }
    }
}

/// An alert as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub key: String,
    pub source: String,
    pub name: String,
    pub instance: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub opened_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// How many times it was raised while open.
    pub occurrences: u64,
    pub acked_at: Option<Timestamp>,
    pub acked_by: Option<String>,
    pub ack_note: Option<String>,
    pub resolved_at: Option<Timestamp>,
    /// When each tier was told (tier 1 first).
    pub told: Vec<Timestamp>,
    pub last_told_at: Option<Timestamp>,
    pub resolution_told: bool,
}

impl Alert {
    /// Its escalation, with the silence that holds it (if any).
    pub fn escalation(&self, silenced_until: Option<Timestamp>) -> Escalation {
        Escalation {
            opened_at: self.opened_at,
            acknowledged: self.acked_at.is_some(),
            resolved_at: self.resolved_at,
            told: self.told.clone(),
            last_told_at: self.last_told_at,
            resolution_told: self.resolution_told,
            silenced_until,
        }
    }
}

/// Whether a raise opened an alert or counted a repeat on the open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    Opened(i64),
    Repeated(i64),
}

const COLUMNS: &str = "id, key, source, name, instance, severity, summary, opened_at,
    last_seen_at, occurrences, acked_at, acked_by, ack_note, resolved_at, told, last_told_at,
    resolution_told";

fn time(text: Option<String>) -> Option<Timestamp> {
    text.and_then(|t| t.parse().ok())
}

fn from_row(r: &Row) -> rusqlite::Result<Alert> {
    let told: String = r.get(14)?;
    Ok(Alert {
        id: r.get(0)?,
        key: r.get(1)?,
        source: r.get(2)?,
        name: r.get(3)?,
        instance: r.get(4)?,
        severity: Severity::parse(&r.get::<_, String>(5)?),
        summary: r.get(6)?,
        opened_at: time(r.get(7)?).unwrap_or(Timestamp::UNIX_EPOCH),
        last_seen_at: time(r.get(8)?).unwrap_or(Timestamp::UNIX_EPOCH),
        occurrences: r.get::<_, i64>(9)? as u64,
        acked_at: time(r.get(10)?),
        acked_by: r.get(11)?,
        ack_note: r.get(12)?,
        resolved_at: time(r.get(13)?),
        told: serde_json::from_str(&told).unwrap_or_default(),
        last_told_at: time(r.get(15)?),
        resolution_told: r.get::<_, i64>(16)? != 0,
    })
}

/// Raises an alert: opens one for its key, or counts a repeat on the open one.
pub fn raise(state: &State, raise: &Raise) -> Result<Raised> {
    let now = state.clock().now().to_string();
    let key = raise.key();
    let conn = state.conn();
    let tx = conn.unchecked_transaction().map_err(state.err())?;
    let open: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, severity FROM alerts WHERE key = ?1 AND resolved_at IS NULL",
            [&key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(state.err())?;
    let raised = match open {
        Some((id, severity)) => {
            let severity = Severity::parse(&severity).max(raise.severity);
            tx.execute(
                "UPDATE alerts SET last_seen_at = ?2, occurrences = occurrences + 1,
                    severity = ?3, summary = ?4 WHERE id = ?1",
                params![id, now, severity.as_str(), raise.summary],
            )
            .map_err(state.err())?;
            Raised::Repeated(id)
        }
        None => {
            tx.execute(
                "INSERT INTO alerts (key, source, name, instance, severity, summary, opened_at,
                    last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    key,
                    raise.source,
                    raise.name,
                    raise.instance,
                    raise.severity.as_str(),
                    raise.summary,
                    now
                ],
            )
            .map_err(state.err())?;
            Raised::Opened(tx.last_insert_rowid())
        }
    };
    tx.commit().map_err(state.err())?;
    Ok(raised)
}

/// Resolves the open alert of `key` (a probe back to OK); its id, if one was open.
pub fn resolve(state: &State, key: &str) -> Result<Option<i64>> {
    let id: Option<i64> = state
        .conn()
        .query_row(
            "UPDATE alerts SET resolved_at = ?2 WHERE key = ?1 AND resolved_at IS NULL
             RETURNING id",
            params![key, state.clock().now().to_string()],
            |r| r.get(0),
        )
        .optional()
        .map_err(state.err())?;
    Ok(id)
}

/// Alert `id`.
pub fn get(state: &State, id: i64) -> Result<Option<Alert>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()
        .map_err(state.err())
}

/// Open alerts (and with `all` the resolved ones too, newest first, at most `limit`).
pub fn list(state: &State, all: bool, limit: usize) -> Result<Vec<Alert>> {
    let mut stmt = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE ?1 OR resolved_at IS NULL ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(state.err())?;
    let alerts = stmt
        .query_map(params![all, limit as i64], from_row)
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(alerts)
}

/// The alerts escalation still has something to say about: the open ones, and the
/// resolved ones whose resolution is not told yet to the tiers that were told.
pub fn owing(state: &State) -> Result<Vec<Alert>> {
    let mut stmt = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE resolved_at IS NULL
                OR (resolution_told = 0 AND told != '[]') ORDER BY id"
        ))
        .map_err(state.err())?;
    let alerts = stmt
        .query_map([], from_row)
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(alerts)
}

/// Acknowledges open alert `id`: its escalation stops. Refused when there is no
/// such alert, or it is resolved or acknowledged already (saying by whom).
pub fn acknowledge(state: &State, id: i64, who: &str, note: Option<&str>) -> Result<Alert> {
    let alert = get(state, id)?.ok_or_else(|| {
        Error::user(format!("no alert {id}")).with_hint("`ostler alerts` lists the open ones")
    })?;
    if alert.resolved_at.is_some() {
        return Err(Error::user(format!(
            "alert {id} ({}) is resolved already",
            alert.key
        )));
    }
    if let (Some(at), Some(by)) = (alert.acked_at, &alert.acked_by) {
        return Err(Error::user(format!(
            "alert {id} ({}) was acknowledged by {by} at {at}",
            alert.key
        )));
    }
    state
        .conn()
        .execute(
            "UPDATE alerts SET acked_at = ?2, acked_by = ?3, ack_note = ?4 WHERE id = ?1",
            params![id, state.clock().now().to_string(), who, note],
        )
        .map_err(state.err())?;
    get(state, id)?.ok_or_else(|| Error::failed(format!("alert {id} vanished")))
}

/// Records that alert `alert`'s escalation moved (tiers told, renotified, resolution
/// told), as [`super::escalation::sent`] left it.
pub fn record_escalation(state: &State, id: i64, e: &Escalation) -> Result<()> {
    let told = serde_json::to_string(&e.told).map_err(|e| Error::Other(e.into()))?;
    state
        .conn()
        .execute(
            "UPDATE alerts SET told = ?2, last_told_at = ?3, resolution_told = ?4 WHERE id = ?1",
            params![
                id,
                told,
                e.last_told_at.map(|t| t.to_string()),
                e.resolution_told
            ],
        )
        .map_err(state.err())?;
    Ok(())
}

/// A silence: notices about `target` held back from `starts_at` to `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    pub target: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub reason: Option<String>,
}

/// Silences `target` for `length` from now.
pub fn silence(
    state: &State,
    target: &str,
    length: Duration,
    who: &str,
    reason: Option<&str>,
) -> Result<Silence> {
    let now = state.clock().now();
    let ends = crate::clock::later(now, length);
    state
        .conn()
        .execute(
            "INSERT INTO silences (target, starts_at, ends_at, created_by, reason)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![target, now.to_string(), ends.to_string(), who, reason],
        )
        .map_err(state.err())?;
    Ok(Silence {
        id: state.conn().last_insert_rowid(),
        target: target.to_string(),
        starts_at: now,
        ends_at: ends,
        created_by: who.to_string(),
        reason: reason.map(str::to_string),
    })
}

/// Ends silence `id` now (a plan that silenced its instance is over).
pub fn end_silence(state: &State, id: i64) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE silences SET ends_at = ?2 WHERE id = ?1 AND ends_at > ?2",
            params![id, state.clock().now().to_string()],
        )
        .map_err(state.err())?;
    Ok(())
}

/// The silences in force now.
pub fn silences(state: &State) -> Result<Vec<Silence>> {
    let now = state.clock().now().to_string();
    let mut stmt = state
        .conn()
        .prepare(
            "SELECT id, target, starts_at, ends_at, created_by, reason FROM silences
             WHERE starts_at <= ?1 AND ends_at > ?1 ORDER BY ends_at",
        )
        .map_err(state.err())?;
    let found = stmt
        .query_map([now], |r| {
            Ok(Silence {
                id: r.get(0)?,
                target: r.get(1)?,
                starts_at: time(r.get(2)?).unwrap_or(Timestamp::UNIX_EPOCH),
                ends_at: time(r.get(3)?).unwrap_or(Timestamp::UNIX_EPOCH),
                created_by: r.get(4)?,
                reason: r.get(5)?,
            })
        })
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(found)
}

/// Until when `alert` is silenced: the latest end of a silence on its name or its
/// instance.
pub fn silenced_until(alert: &Alert, silences: &[Silence]) -> Option<Timestamp> {
    silences
        .iter()
        .filter(|s| s.target == alert.name || alert.instance.as_deref() == Some(&s.target))
        .map(|s| s.ends_at)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn probe(severity: Severity) -> Raise {
        Raise {
            source: "probe".into(),
            name: "dav-put".into(),
            condition: None,
            instance: Some("hub-03".into()),
            severity,
            summary: "HTTP CRITICAL - 500".into(),
        }
    }

    #[test]
    fn a_repeat_is_counted_on_the_open_alert_and_a_resolved_one_opens_anew() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let Raised::Opened(id) = raise(&state, &probe(Severity::Warning)).unwrap() else {
            panic!("opened")
        };
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            raise(&state, &probe(Severity::Critical)).unwrap(),
            Raised::Repeated(id)
        );
        assert_eq!(
            raise(&state, &probe(Severity::Warning)).unwrap(),
            Raised::Repeated(id)
        );
        let alert = get(&state, id).unwrap().unwrap();
        assert_eq!(alert.occurrences, 3);
        assert_eq!(
            alert.severity,
            Severity::Critical,
            "never lowered while open"
        );
        assert_eq!(alert.last_seen_at, clock.now());
        assert_eq!(resolve(&state, "probe:dav-put").unwrap(), Some(id));
        assert_eq!(resolve(&state, "probe:dav-put").unwrap(), None);
        assert!(
            matches!(raise(&state, &probe(Severity::Warning)).unwrap(), Raised::Opened(n) if n != id)
        );
        assert_eq!(list(&state, false, 10).unwrap().len(), 1);
        assert_eq!(list(&state, true, 10).unwrap().len(), 2);
    }

    #[test]
    fn an_acknowledgement_is_recorded_once_with_who_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let Raised::Opened(id) = raise(&state, &probe(Severity::Critical)).unwrap() else {
            panic!()
        };
        let acked = acknowledge(&state, id, "alice", Some("restarting the DAV backend")).unwrap();
        assert_eq!(acked.acked_by.as_deref(), Some("alice"));
        assert!(acked.escalation(None).acknowledged);
        let again = acknowledge(&state, id, "bob", None)
            .unwrap_err()
            .to_string();
        assert!(again.contains("was acknowledged by alice"), "{again}");
        assert!(acknowledge(&state, 99, "bob", None)
            .unwrap_err()
            .to_string()
            .contains("no alert 99"));
    }

    #[test]
    fn a_silence_covers_its_target_by_name_or_instance_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let Raised::Opened(id) = raise(&state, &probe(Severity::Critical)).unwrap() else {
            panic!()
        };
        let alert = get(&state, id).unwrap().unwrap();
        silence(
            &state,
            "hub-03",
            Duration::from_secs(3600),
            "alice",
            Some("upgrade"),
        )
        .unwrap();
        let on = silences(&state).unwrap();
        assert_eq!(
            silenced_until(&alert, &on),
            Some(clock.clock().after(Duration::from_secs(3600)))
        );
        clock.advance(Duration::from_secs(3600));
        assert!(silences(&state).unwrap().is_empty());
        silence(&state, "other", Duration::from_secs(60), "alice", None).unwrap();
        assert_eq!(silenced_until(&alert, &silences(&state).unwrap()), None);
    }
}
