//! Probe results and states in the state database (the migration after the alerts'):
//! every result (status, whether the state was hard, the attempt, summary, perfdata,
//! how long it took), and each probe's [`ProbeState`] with when it was last checked,
//! written together in one transaction, so a daemon restarted between two results
//! resumes the soft count, the flap history and the schedule where they were.

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::run::{Perf, ProbeResult};
use super::state::ProbeState;
use super::Status;
use crate::error::{Error, Result};
use crate::state::State;

/// A probe's state as saved, and when it was last checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub state: ProbeState,
    pub checked_at: Timestamp,
}

/// One recorded result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    pub id: i64,
    pub probe: String,
    pub at: Timestamp,
    pub status: Status,
    /// The probe's state was hard after this result (a soft non-OK one is not).
    pub hard: bool,
    pub attempt: u32,
    pub summary: String,
    pub perfdata: Vec<Perf>,
    pub duration_ms: u64,
}

fn json_err(e: serde_json::Error) -> Error {
    Error::failed(format!("probe state cannot be encoded: {e}"))
}

/// Records `result` of `probe`, checked at `at`, and saves `after` (the state once the
/// result was observed), in one transaction. Returns the result's id.
pub fn record(
    state: &State,
    probe: &str,
    at: Timestamp,
    result: &ProbeResult,
    after: &ProbeState,
) -> Result<i64> {
    let perfdata = serde_json::to_string(&result.perfdata).map_err(json_err)?;
    let saved = serde_json::to_string(after).map_err(json_err)?;
    let tx = state.conn().unchecked_transaction().map_err(state.err())?;
    tx.execute(
        "INSERT INTO probe_results (probe, at, status, hard, attempt, summary, perfdata,
            duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            probe,
            at.to_string(),
            result.status.as_str(),
            !after.is_soft(),
            after.attempt,
            result.summary,
            perfdata,
            result.duration.as_millis() as i64
        ],
    )
    .map_err(state.err())?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO probe_states (probe, state, checked_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (probe) DO UPDATE SET state = ?2, checked_at = ?3",
        params![probe, saved, at.to_string()],
    )
    .map_err(state.err())?;
    tx.commit().map_err(state.err())?;
    Ok(id)
}

/// The saved state of `probe`, if it was ever checked (a state that cannot be read,
/// written by another version, is taken as none: the probe starts afresh).
pub fn load(state: &State, probe: &str) -> Result<Option<Saved>> {
    let row: Option<(String, String)> = state
        .conn()
        .query_row(
            "SELECT state, checked_at FROM probe_states WHERE probe = ?1",
            [probe],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(state.err())?;
    Ok(row.and_then(|(text, at)| {
        Some(Saved {
            state: serde_json::from_str(&text).ok()?,
            checked_at: at.parse().ok()?,
        })
    }))
}

/// The latest results (of `probe`, or of every probe), newest first, at most `limit`.
pub fn recent(state: &State, probe: Option<&str>, limit: usize) -> Result<Vec<Recorded>> {
    let mut stmt = state
        .conn()
        .prepare(
            "SELECT id, probe, at, status, hard, attempt, summary, perfdata, duration_ms
             FROM probe_results WHERE ?1 IS NULL OR probe = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .map_err(state.err())?;
    let rows = stmt
        .query_map(params![probe, limit as i64], |r| {
            let at: String = r.get(2)?;
            let status: String = r.get(3)?;
            let perfdata: String = r.get(7)?;
            Ok(Recorded {
                id: r.get(0)?,
                probe: r.get(1)?,
                at: at.parse().unwrap_or(Timestamp::UNIX_EPOCH),
                status: Status::parse(&status).unwrap_or(Status::Unknown),
                hard: r.get(4)?,
                attempt: r.get(5)?,
                summary: r.get(6)?,
                perfdata: serde_json::from_str(&perfdata).unwrap_or_default(),
                duration_ms: r.get::<_, i64>(8)?.max(0) as u64,
            })
        })
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(rows)
}

/// Keeps the last `keep` results of each probe; returns how many were deleted.
pub fn prune(state: &State, keep: usize) -> Result<usize> {
    state
        .conn()
        .execute(
            "DELETE FROM probe_results WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY probe ORDER BY id DESC) AS n
                    FROM probe_results
                ) WHERE n > ?1)",
            [keep as i64],
        )
        .map_err(state.err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_result_and_its_state_are_saved_together_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        assert_eq!(load(&state, "web").unwrap(), None);
        let mut probe_state = ProbeState::new(clock.now());
        let result =
            ProbeResult::new(Status::Critical, "down").with_perf(Perf::new("time", 0.5, "s"));
        probe_state.observe(Status::Critical, clock.now(), 3, (25.0, 50.0));
        let id = record(&state, "web", clock.now(), &result, &probe_state).unwrap();
        let saved = load(&state, "web").unwrap().unwrap();
        assert_eq!(saved.state, probe_state);
        assert_eq!(saved.state.attempt, 1);
        assert_eq!(saved.checked_at, clock.now());
        let recent = recent(&state, Some("web"), 10).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].id, id);
        assert_eq!(recent[0].status, Status::Critical);
        assert!(!recent[0].hard, "a first CRITICAL of three retries is soft");
        assert_eq!(recent[0].perfdata, result.perfdata);
    }

    #[test]
    fn prune_keeps_the_last_n_of_each_probe() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let s = ProbeState::new(clock.now());
        for i in 0..5 {
            for probe in ["a", "b"] {
                let r = ProbeResult::new(Status::Ok, format!("{probe} {i}"));
                record(&state, probe, clock.now(), &r, &s).unwrap();
            }
        }
        assert_eq!(prune(&state, 2).unwrap(), 6);
        let left: Vec<String> = recent(&state, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.summary)
            .collect();
        assert_eq!(left, ["b 4", "a 4", "b 3", "a 3"]);
    }
}
