//! Every run of every job, in the state database (`job_runs`), and how far each job's
//! schedule has been dealt with (`job_cursor`). A run is claimed for its job, scheduled
//! time and attempt exactly once (a UNIQUE key), in the same transaction that moves the
//! job's cursor past that time: a time is never run twice, also across a daemon restart
//! or two daemons racing. Runs go `waiting` → `running` → `finished` | `failed`, or are
//! `skipped` (recorded with why); history is pruned by count and age.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::state::State;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Queued: a manual run, a retry waiting for its backoff, or a run waiting for the
    /// previous one (`overlap = "queue"`).
    Waiting,
    Running,
    Finished,
    Failed,
    /// Not run, with why (the previous run still going, missed while the daemon was
    /// down with `missed = "skip"`, the instance locked).
    Skipped,
}

impl RunState {
    pub const ALL: [RunState; 5] = [
        RunState::Waiting,
        RunState::Running,
        RunState::Failed,
        RunState::Finished,
        RunState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Waiting => "waiting",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> RunState {
        RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(RunState::Failed)
    }

    /// Whether the run is over (nothing more happens to it).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            RunState::Finished | RunState::Failed | RunState::Skipped
        )
    }
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Its scheduled time came.
    Schedule,
    /// Times passed while the daemon was down (or the machine slept): one run for all
    /// of them, `missed` saying how many.
    Missed,
    /// `ostler jobs run`.
    Manual,
    /// A failed run tried again.
    Retry,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Missed => "missed",
            Trigger::Manual => "manual",
            Trigger::Retry => "retry",
        }
    }

    fn parse(text: &str) -> Trigger {
        [
            Trigger::Schedule,
            Trigger::Missed,
            Trigger::Manual,
            Trigger::Retry,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
        .unwrap_or(Trigger::Schedule)
    }
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub job: String,
    /// The schedule's time it is for; none for a manual run.
    pub scheduled_for: Option<Timestamp>,
    pub trigger: Trigger,
    /// 1, then 2... for its retries.
    pub attempt: u32,
    pub state: RunState,
    pub queued_at: Timestamp,
    /// A waiting run does not start before this (a retry's backoff, a jitter).
    pub not_before: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The process group it runs as (its leader's pid).
    pub pid: Option<i32>,
    /// The exit code; none when a signal ended it, or it did not run.
    pub exit_status: Option<i32>,
    /// How many scheduled times this one run stands for beyond its own (missed ones).
    pub missed: u64,
    /// Why it failed or was skipped, or what a built-in action reported.
    pub detail: Option<String>,
    /// The last lines of what it printed (stdout and stderr together).
    pub output: Option<String>,
}

impl Run {
    /// How late it started after its scheduled time.
    pub fn lateness(&self) -> Option<jiff::SignedDuration> {
        Some(self.started_at?.duration_since(self.scheduled_for?))
    }
}

/// How many runs a job has in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub waiting: u64,
    pub running: u64,
    pub failed: u64,
    pub finished: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, state: RunState, n: u64) {
        match state {
            RunState::Waiting => self.waiting += n,
            RunState::Running => self.running += n,
            RunState::Failed => self.failed += n,
            RunState::Finished => self.finished += n,
            RunState::Skipped => self.skipped += n,
        }
    }
}

/// A run to record: what it is for and how it starts out.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub job: &'a str,
    pub scheduled_for: Option<Timestamp>,
    pub trigger: Trigger,
    pub attempt: u32,
    /// `Waiting` (to start), or `Skipped` (recorded as not run, with `detail`).
    pub state: RunState,
    pub not_before: Option<Timestamp>,
    pub missed: u64,
    pub detail: Option<String>,
}

impl<'a> NewRun<'a> {
    /// A run of `job` for its scheduled time `at`, waiting to start.
    pub fn scheduled(job: &'a str, at: Timestamp) -> NewRun<'a> {
        NewRun {
            job,
            scheduled_for: Some(at),
            trigger: Trigger::Schedule,
            attempt: 1,
            state: RunState::Waiting,
            not_before: None,
            missed: 0,
            detail: None,
        }
    }

    /// A run asked for now (`ostler jobs run`).
    pub fn manual(job: &'a str) -> NewRun<'a> {
        NewRun {
            scheduled_for: None,
            trigger: Trigger::Manual,
            ..NewRun::scheduled(job, Timestamp::UNIX_EPOCH)
        }
    }
}

const COLUMNS: &str = "id, job, scheduled_for, trigger, attempt, state, queued_at, not_before,
    started_at, finished_at, pid, exit_status, missed, detail, output";

fn time(text: Option<String>) -> Option<Timestamp> {
    text.and_then(|t| t.parse().ok())
}

fn from_row(r: &Row) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        job: r.get(1)?,
        scheduled_for: time(r.get(2)?),
        trigger: Trigger::parse(&r.get::<_, String>(3)?),
        attempt: r.get(4)?,
        state: RunState::parse(&r.get::<_, String>(5)?),
        queued_at: time(r.get(6)?).unwrap_or(Timestamp::UNIX_EPOCH),
        not_before: time(r.get(7)?),
        started_at: time(r.get(8)?),
        finished_at: time(r.get(9)?),
        pid: r.get(10)?,
        exit_status: r.get(11)?,
        missed: r.get::<_, i64>(12)? as u64,
        detail: r.get(13)?,
        output: r.get(14)?,
    })
}

/// How far `job`'s schedule has been dealt with: every scheduled time up to it has a
/// run (or a skip) recorded. None for a job never seen.
pub fn cursor(state: &State, job: &str) -> Result<Option<Timestamp>> {
    let through: Option<String> = state
        .conn()
        .query_row(
            "SELECT through FROM job_cursor WHERE job = ?1",
            [job],
            |r| r.get(0),
        )
        .optional()
        .map_err(state.err())?;
    Ok(time(through))
}

/// Sets `job`'s cursor (a job seen for the first time starts from now: it owes no
/// runs from before it existed).
pub fn set_cursor(state: &State, job: &str, through: Timestamp) -> Result<()> {
    state
        .conn()
        .execute(
            "INSERT INTO job_cursor (job, through) VALUES (?1, ?2)
             ON CONFLICT(job) DO UPDATE SET through = ?2",
            params![job, through.to_string()],
        )
        .map_err(state.err())?;
    Ok(())
}

/// Records a run. A scheduled one is claimed: if its job, time and attempt already
/// have a run, nothing is recorded and `None` comes back; else the job's cursor moves
/// to its time in the same transaction.
pub fn record(state: &State, run: &NewRun) -> Result<Option<i64>> {
    let conn = state.conn();
    let tx = conn.unchecked_transaction().map_err(state.err())?;
    let inserted = tx
        .execute(
            "INSERT INTO job_runs (job, scheduled_for, trigger, attempt, state, queued_at,
                not_before, missed, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(job, scheduled_for, attempt) DO NOTHING",
            params![
                run.job,
                run.scheduled_for.map(|t| t.to_string()),
                run.trigger.as_str(),
                run.attempt,
                run.state.as_str(),
                state.clock().now().to_string(),
                run.not_before.map(|t| t.to_string()),
                run.missed as i64,
                run.detail,
            ],
        )
        .map_err(state.err())?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = tx.last_insert_rowid();
    if let (Some(at), Trigger::Schedule | Trigger::Missed) = (run.scheduled_for, run.trigger) {
        tx.execute(
            "INSERT INTO job_cursor (job, through) VALUES (?1, ?2)
             ON CONFLICT(job) DO UPDATE SET through = max(through, ?2)",
            params![run.job, at.to_string()],
        )
        .map_err(state.err())?;
    }
    tx.commit().map_err(state.err())?;
    Ok(Some(id))
}

/// Marks a waiting run skipped, with why; false when it is no longer waiting (it
/// started meanwhile), which leaves it as it is.
pub fn skip_waiting(state: &State, id: i64, why: &str) -> Result<bool> {
    let n = state
        .conn()
        .execute(
            "UPDATE job_runs SET state = 'skipped', finished_at = ?2, detail = ?3
             WHERE id = ?1 AND state = 'waiting'",
            params![id, state.clock().now().to_string(), why],
        )
        .map_err(state.err())?;
    Ok(n == 1)
}

/// Marks a waiting run running, as process group `pid`. A run no longer waiting
/// (skipped meanwhile) is not started: an error, which has the launch killed.
pub fn started(state: &State, id: i64, pid: i32) -> Result<()> {
    let n = state
        .conn()
        .execute(
            "UPDATE job_runs SET state = 'running', started_at = ?2, pid = ?3
             WHERE id = ?1 AND state = 'waiting'",
            params![id, state.clock().now().to_string(), pid],
        )
        .map_err(state.err())?;
    if n == 0 {
        return Err(crate::Error::failed(format!(
            "run {id} is no longer waiting; not started"
        )));
    }
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub state: RunState,
    pub exit_status: Option<i32>,
    pub detail: Option<String>,
    pub output: Option<String>,
}

/// Records how run `id` ended.
pub fn ended(state: &State, id: i64, end: &Ended) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE job_runs SET state = ?2, finished_at = ?3, exit_status = ?4,
                detail = coalesce(?5, detail), output = ?6
             WHERE id = ?1",
            params![
                id,
                end.state.as_str(),
                state.clock().now().to_string(),
                end.exit_status,
                end.detail,
                end.output,
            ],
        )
        .map_err(state.err())?;
    Ok(())
}

/// Puts a run that started back to waiting until `not_before` (it found its
/// instance busy and queues), keeping what it said.
pub fn wait_again(state: &State, id: i64, not_before: Timestamp, end: &Ended) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE job_runs SET state = 'waiting', not_before = ?2, started_at = NULL,
                pid = NULL, detail = ?3, output = ?4 WHERE id = ?1",
            params![id, not_before.to_string(), end.detail, end.output],
        )
        .map_err(state.err())?;
    Ok(())
}

/// Run `id`.
pub fn get(state: &State, id: i64) -> Result<Option<Run>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM job_runs WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()
        .map_err(state.err())
}

fn select(state: &State, filter: &str, args: impl rusqlite::Params) -> Result<Vec<Run>> {
    let mut stmt = state
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM job_runs {filter}"))
        .map_err(state.err())?;
    let runs = stmt
        .query_map(args, from_row)
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(runs)
}

/// The newest runs first, of one job or all, at most `limit`.
pub fn history(state: &State, job: Option<&str>, limit: usize) -> Result<Vec<Run>> {
    select(
        state,
        "WHERE (?1 IS NULL OR job = ?1) ORDER BY id DESC LIMIT ?2",
        params![job, limit as i64],
    )
}

/// Runs in `run_state`, oldest first.
pub fn in_state(state: &State, run_state: RunState) -> Result<Vec<Run>> {
    select(
        state,
        "WHERE state = ?1 ORDER BY id",
        params![run_state.as_str()],
    )
}

/// The last run of `job` that is over (finished, failed or skipped).
pub fn last_over(state: &State, job: &str) -> Result<Option<Run>> {
    Ok(select(
        state,
        "WHERE job = ?1 AND state IN ('finished', 'failed', 'skipped') ORDER BY id DESC LIMIT 1",
        params![job],
    )?
    .pop())
}

/// Each job's runs per state (Indico's `show status`).
pub fn counts(state: &State) -> Result<BTreeMap<String, Counts>> {
    let mut stmt = state
        .conn()
        .prepare("SELECT job, state, count(*) FROM job_runs GROUP BY job, state")
        .map_err(state.err())?;
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(state.err())?;
    for row in rows {
        let (job, run_state, n) = row.map_err(state.err())?;
        out.entry(job)
            .or_default()
            .add(RunState::parse(&run_state), n as u64);
    }
    Ok(out)
}

/// Forgets runs that are over beyond the newest `keep` of each job, and those older
/// than `max_age`. Returns how many went.
pub fn prune(state: &State, keep: usize, max_age: Duration) -> Result<usize> {
    let oldest = crate::clock::earlier(state.clock().now(), max_age).to_string();
    let n = state
        .conn()
        .execute(
            "DELETE FROM job_runs WHERE state IN ('finished', 'failed', 'skipped') AND (
                queued_at < ?2 OR id IN (
                    SELECT id FROM (
                        SELECT id, row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n
                        FROM job_runs
                    ) WHERE n > ?1))",
            params![keep as i64, oldest],
        )
        .map_err(state.err())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn run_and_end(state: &State, job: &str, at: Timestamp, end: RunState) -> i64 {
        let id = record(state, &NewRun::scheduled(job, at)).unwrap().unwrap();
        ended(
            state,
            id,
            &Ended {
                state: end,
                exit_status: None,
                detail: None,
                output: None,
            },
        )
        .unwrap();
        id
    }

    #[test]
    fn a_time_is_claimed_once_and_moves_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let at: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        assert!(record(&state, &NewRun::scheduled("a", at))
            .unwrap()
            .is_some());
        assert_eq!(record(&state, &NewRun::scheduled("a", at)).unwrap(), None);
        assert_eq!(cursor(&state, "a").unwrap(), Some(at));
        // Another job, or the same time's retry, is another run.
        assert!(record(&state, &NewRun::scheduled("b", at))
            .unwrap()
            .is_some());
        let retry = NewRun {
            attempt: 2,
            trigger: Trigger::Retry,
            ..NewRun::scheduled("a", at)
        };
        assert!(record(&state, &retry).unwrap().is_some());
        // Manual runs are never one another's duplicates, and leave the cursor.
        assert!(record(&state, &NewRun::manual("a")).unwrap().is_some());
        assert!(record(&state, &NewRun::manual("a")).unwrap().is_some());
        assert_eq!(cursor(&state, "a").unwrap(), Some(at));
    }

    #[test]
    fn history_is_pruned_by_count_per_job_and_by_age_but_never_a_run_not_over() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let hour = |h: i64| {
            "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap()
                + jiff::SignedDuration::from_hours(h)
        };
        let old = run_and_end(&state, "b", hour(0), RunState::Failed);
        clock.advance(Duration::from_secs(10 * 24 * 3600));
        let waiting = record(&state, &NewRun::scheduled("b", hour(1)))
            .unwrap()
            .unwrap();
        let a: Vec<i64> = (0..5)
            .map(|h| run_and_end(&state, "a", hour(h), RunState::Finished))
            .collect();
        let gone = prune(&state, 3, Duration::from_secs(7 * 24 * 3600)).unwrap();
        assert_eq!(gone, 3);
        let left: Vec<i64> = history(&state, None, 100)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, [a[4], a[3], a[2], waiting]);
        assert!(get(&state, old).unwrap().is_none());
        assert_eq!(counts(&state).unwrap()["a"].finished, 3);
    }
}
