//! Notices owed to channels, in the state database, until each is delivered. A notice
//! that fails is tried again with backoff; one given up on stays recorded with its
//! error and is shown by `ostler alerts` (never dropped silently). Notices owed to one
//! channel for the same reason and tier and due together go out as one message (the
//! grouping: a notice joins the pending group of its channel instead of going alone).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::message::Reason;
use crate::error::Result;
use crate::state::State;

/// One notice owed to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub alert: i64,
    pub channel: String,
    pub reason: Reason,
    /// 0-based escalation tier.
    pub tier: usize,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub gave_up_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

/// Notices that go out as one message: one channel, one reason, one tier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub channel: String,
    pub reason: Reason,
    pub tier: usize,
}

impl Delivery {
    pub fn group(&self) -> GroupKey {
        GroupKey {
            channel: self.channel.clone(),
            reason: self.reason,
            tier: self.tier,
        }
    }
}

fn time(text: Option<String>) -> Option<Timestamp> {
    text.and_then(|t| t.parse().ok())
}

const COLUMNS: &str = "id, alert, channel, reason, tier, created_at, attempts, next_attempt_at,
    delivered_at, gave_up_at, last_error";

fn from_row(r: &Row) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        alert: r.get(1)?,
        channel: r.get(2)?,
        reason: Reason::parse(&r.get::<_, String>(3)?),
        tier: r.get::<_, i64>(4)? as usize,
        created_at: time(r.get(5)?).unwrap_or(Timestamp::UNIX_EPOCH),
        attempts: r.get::<_, i64>(6)? as u32,
        next_attempt_at: time(r.get(7)?).unwrap_or(Timestamp::UNIX_EPOCH),
        delivered_at: time(r.get(8)?),
        gave_up_at: time(r.get(9)?),
        last_error: r.get(10)?,
    })
}

/// Owes alert `alert` a notice on `channel`, due at `due`, or with the group already
/// pending for the same channel, reason and tier when that one is due sooner (so the
/// alerts that fire within one group wait go out together).
pub fn owe(
    state: &State,
    alert: i64,
    channel: &str,
    reason: Reason,
    tier: usize,
    due: Timestamp,
) -> Result<i64> {
    let conn = state.conn();
    let pending: Option<String> = conn
        .query_row(
            "SELECT min(next_attempt_at) FROM alert_deliveries
             WHERE channel = ?1 AND reason = ?2 AND tier = ?3 AND attempts = 0
               AND delivered_at IS NULL AND gave_up_at IS NULL",
            params![channel, reason.as_str(), tier as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(state.err())?
        .flatten();
    let due = match time(pending) {
        Some(group) if group < due => group,
        _ => due,
    };
    conn.execute(
        "INSERT INTO alert_deliveries (alert, channel, reason, tier, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            alert,
            channel,
            reason.as_str(),
            tier as i64,
            state.clock().now().to_string(),
            due.to_string()
        ],
    )
    .map_err(state.err())?;
    Ok(conn.last_insert_rowid())
}

/// The notices due by `now` about alerts not `held`, grouped into messages.
pub fn due(
    state: &State,
    now: Timestamp,
    held: &BTreeSet<i64>,
) -> Result<BTreeMap<GroupKey, Vec<Delivery>>> {
    let mut groups: BTreeMap<GroupKey, Vec<Delivery>> = BTreeMap::new();
    for d in pending(state)? {
        if d.next_attempt_at <= now && !held.contains(&d.alert) {
            groups.entry(d.group()).or_default().push(d);
        }
    }
    Ok(groups)
}

/// When the next pending notice about an alert not `held` is due.
pub fn next_due(state: &State, held: &BTreeSet<i64>) -> Result<Option<Timestamp>> {
    Ok(pending(state)?
        .into_iter()
        .filter(|d| !held.contains(&d.alert))
        .map(|d| d.next_attempt_at)
        .min())
}

/// Every notice still to be sent, oldest first.
fn pending(state: &State) -> Result<Vec<Delivery>> {
    let mut stmt = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM alert_deliveries
             WHERE delivered_at IS NULL AND gave_up_at IS NULL ORDER BY id"
        ))
        .map_err(state.err())?;
    let rows = stmt
        .query_map([], from_row)
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(rows)
}

/// Notices `ids` were delivered at `at`.
pub fn delivered(state: &State, ids: &[i64], at: Timestamp) -> Result<()> {
    let tx = state.conn().unchecked_transaction().map_err(state.err())?;
    for id in ids {
        tx.execute(
            "UPDATE alert_deliveries SET delivered_at = ?2, attempts = attempts + 1
             WHERE id = ?1",
            params![id, at.to_string()],
        )
        .map_err(state.err())?;
    }
    tx.commit().map_err(state.err())
}

/// Notices `ids` failed with `error`: tried again at `retry_at`, or (none) given up on
/// at `at`, and kept with their error.
pub fn failed(
    state: &State,
    ids: &[i64],
    error: &str,
    at: Timestamp,
    retry_at: Option<Timestamp>,
) -> Result<()> {
    let tx = state.conn().unchecked_transaction().map_err(state.err())?;
    for id in ids {
        tx.execute(
            "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?2,
                next_attempt_at = coalesce(?3, next_attempt_at), gave_up_at = ?4
             WHERE id = ?1",
            params![
                id,
                error,
                retry_at.map(|t| t.to_string()),
                retry_at.is_none().then(|| at.to_string())
            ],
        )
        .map_err(state.err())?;
    }
    tx.commit().map_err(state.err())
}

/// Notices not delivered after a try (pending a retry, or given up on), newest first,
/// at most `limit`: what `ostler alerts` shows so that a failed delivery is seen.
pub fn undelivered(state: &State, limit: usize) -> Result<Vec<Delivery>> {
    let mut stmt = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM alert_deliveries
             WHERE delivered_at IS NULL AND (attempts > 0 OR gave_up_at IS NOT NULL)
             ORDER BY id DESC LIMIT ?1"
        ))
        .map_err(state.err())?;
    let rows = stmt
        .query_map([limit as i64], from_row)
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(rows)
}

/// Whether anyone heard of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    Somebody,
    Nobody,
}

/// Drops the notices about alert `alert` that are still waiting (its alert is over
/// before they went out), and says whether any of its notices was delivered.
pub fn cancel_untold(state: &State, alert: i64) -> Result<Told> {
    let conn = state.conn();
    conn.execute(
        "DELETE FROM alert_deliveries
         WHERE alert = ?1 AND delivered_at IS NULL AND gave_up_at IS NULL",
        [alert],
    )
    .map_err(state.err())?;
    let heard: i64 = conn
        .query_row(
            "SELECT count(*) FROM alert_deliveries WHERE alert = ?1 AND delivered_at IS NOT NULL",
            [alert],
            |r| r.get(0),
        )
        .map_err(state.err())?;
    Ok(if heard > 0 {
        Told::Somebody
    } else {
        Told::Nobody
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::store::{raise, Raise, Raised, Severity};
    use crate::clock::ManualClock;

    fn open(state: &State, name: &str) -> i64 {
        let raised = raise(
            state,
            &Raise {
                source: "probe".into(),
                name: name.into(),
                condition: None,
                instance: None,
                severity: Severity::Critical,
                summary: "down".into(),
            },
        )
        .unwrap();
        let Raised::Opened(id) = raised else { panic!() };
        id
    }

    #[test]
    fn notices_owed_within_a_group_wait_go_out_together_and_failures_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let wait = Duration::from_secs(30);
        let (a, b) = (open(&state, "a"), open(&state, "b"));
        owe(
            &state,
            a,
            "oncall",
            Reason::Firing,
            0,
            clock.clock().after(wait),
        )
        .unwrap();
        clock.advance(Duration::from_secs(10));
        // Due 40 s after the start alone; it joins the group due at 30 s.
        owe(
            &state,
            b,
            "oncall",
            Reason::Firing,
            0,
            clock.clock().after(wait),
        )
        .unwrap();
        assert!(due(&state, clock.now(), &BTreeSet::new())
            .unwrap()
            .is_empty());
        assert_eq!(
            next_due(&state, &BTreeSet::new()).unwrap(),
            Some(clock.now() + jiff::SignedDuration::from_secs(20))
        );
        clock.advance(Duration::from_secs(20));
        let groups = due(&state, clock.now(), &BTreeSet::new()).unwrap();
        assert_eq!(groups.len(), 1);
        let group: Vec<i64> = groups
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|d| d.alert)
            .collect();
        assert_eq!(group, vec![a, b]);

        let ids: Vec<i64> = groups
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        let retry = clock.clock().after(Duration::from_secs(60));
        failed(&state, &ids, "connection refused", clock.now(), Some(retry)).unwrap();
        assert!(due(&state, clock.now(), &BTreeSet::new())
            .unwrap()
            .is_empty());
        assert_eq!(undelivered(&state, 10).unwrap().len(), 2);
        clock.advance(Duration::from_secs(60));
        failed(&state, &ids[..1], "connection refused", clock.now(), None).unwrap();
        delivered(&state, &ids[1..], clock.now()).unwrap();
        let left = undelivered(&state, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].attempts, 2);
        assert_eq!(left[0].gave_up_at, Some(clock.now()));
        assert_eq!(left[0].last_error.as_deref(), Some("connection refused"));
        assert!(due(&state, clock.now(), &BTreeSet::new())
            .unwrap()
            .is_empty());
        assert_eq!(next_due(&state, &BTreeSet::new()).unwrap(), None);
    }
}
