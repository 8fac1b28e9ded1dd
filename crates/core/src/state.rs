//! ostler's own state: one SQLite file (`<state_dir>/state.db`) in WAL mode with
//! embedded migrations run on open. It holds the journal (every operation, written
//! before it runs and completed after, with each external command it ran), the
//! per-instance locks, and the runtime record of each instance (pid, desired state,
//! crashes). Later features add their tables through new migrations here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Clock;
use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: journal, commands, locks, runtime
    "CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        operation TEXT NOT NULL,
        instance TEXT,
        who TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        detail TEXT
    );
    CREATE INDEX journal_instance ON journal(instance, id);
    CREATE TABLE journal_commands (
        id INTEGER PRIMARY KEY,
        journal_id INTEGER NOT NULL REFERENCES journal(id),
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        exit_status INTEGER,
        duration_ms INTEGER
    );
    CREATE TABLE locks (
        instance TEXT PRIMARY KEY,
        holder_pid INTEGER NOT NULL,
        holder TEXT NOT NULL,
        purpose TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE runtime (
        instance TEXT PRIMARY KEY,
        pid INTEGER,
        pid_start_ticks INTEGER,
        started_at TEXT,
        desired TEXT NOT NULL DEFAULT 'stopped',
        supervision TEXT NOT NULL DEFAULT 'ok',
        crashes TEXT NOT NULL DEFAULT '[]',
        next_restart_at TEXT
    );",
    // 2: the backup catalog
    "CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        pid INTEGER NOT NULL,
        logical_bytes INTEGER NOT NULL DEFAULT 0,
        new_bytes INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        error TEXT,
        manifest TEXT
    );
    CREATE INDEX backups_instance ON backups(instance, started_at);
    CREATE TABLE backup_tables (
        backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        rows INTEGER NOT NULL,
        hash TEXT NOT NULL,
        logical_bytes INTEGER NOT NULL,
        PRIMARY KEY (backup_id, name)
    );",
    // 3: which repository this service's backups are in; chunks found damaged
    "CREATE TABLE repository (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        id TEXT NOT NULL,
        path TEXT NOT NULL,
        first_seen TEXT NOT NULL
    );
    CREATE TABLE damaged_chunks (
        id TEXT PRIMARY KEY,
        found_at TEXT NOT NULL,
        reason TEXT NOT NULL
    );",
    // 4: a damaged chunk a backup wrote afresh stays listed, as healed, until a verify
    // reads it back sound (and says which backups that healed)
    "ALTER TABLE damaged_chunks ADD COLUMN healed_by TEXT;",
    // 5: the pid a command started as, for those that outlive their launch (an
    // instance's start command)
    "ALTER TABLE journal_commands ADD COLUMN pid INTEGER;",
    // 6: the plan an operation ran (JSON), recorded before it runs
    "ALTER TABLE journal ADD COLUMN plan TEXT;",
    // 7: scheduled jobs: every run (one per job, scheduled time and attempt: never two
    // for one time), and how far each job's schedule has been dealt with
    "CREATE TABLE job_runs (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        scheduled_for TEXT,
        trigger TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        state TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        not_before TEXT,
        started_at TEXT,
        finished_at TEXT,
        pid INTEGER,
        exit_status INTEGER,
        missed INTEGER NOT NULL DEFAULT 0,
        detail TEXT,
        output TEXT,
        UNIQUE (job, scheduled_for, attempt)
    );
    CREATE INDEX job_runs_job ON job_runs(job, id);
    CREATE INDEX job_runs_state ON job_runs(state);
    CREATE TABLE job_cursor (
        job TEXT PRIMARY KEY,
        through TEXT NOT NULL
    );",
    // 8: alerts (one open per key: a repeat is counted on it), who was told when, and
    // silences for planned work
    "CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        source TEXT NOT NULL,
        name TEXT NOT NULL,
        instance TEXT,
        severity TEXT NOT NULL,
        summary TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        occurrences INTEGER NOT NULL DEFAULT 1,
        acked_at TEXT,
        acked_by TEXT,
        ack_note TEXT,
        resolved_at TEXT,
        told TEXT NOT NULL DEFAULT '[]',
        last_told_at TEXT,
        resolution_told INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX alerts_open ON alerts(key) WHERE resolved_at IS NULL;
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        reason TEXT
    );",
    // 9: every notice owed to a channel, until it is delivered (tried again with
    // backoff, and shown by `ostler alerts` while it is not: never dropped silently)
    "CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        alert INTEGER NOT NULL REFERENCES alerts(id),
        channel TEXT NOT NULL,
        reason TEXT NOT NULL,
        tier INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        delivered_at TEXT,
        gave_up_at TEXT,
        last_error TEXT
    );
    CREATE INDEX alert_deliveries_pending ON alert_deliveries(next_attempt_at)
        WHERE delivered_at IS NULL AND gave_up_at IS NULL;",
    // 10: probes: every result (pruned to the last N per probe), and each probe's soft/hard
    // and flap state, so a restarted daemon resumes its counts (crate::probes::history)
    "CREATE TABLE probe_results (
        id INTEGER PRIMARY KEY,
        probe TEXT NOT NULL,
        at TEXT NOT NULL,
        status TEXT NOT NULL,
        hard INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        summary TEXT NOT NULL,
        perfdata TEXT NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX probe_results_probe ON probe_results(probe, id);
    CREATE TABLE probe_states (
        probe TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        checked_at TEXT NOT NULL
    );",
];

/// A handle on the state database. Cheap to open; each process opens its own.
/// It carries the clock every time it records or compares comes from (journal,
/// locks, catalog), given when it is opened so that none can be forgotten.
pub struct State {
    conn: Connection,
    dir: PathBuf,
    path: PathBuf,
    clock: Clock,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    pub id: i64,
    pub operation: String,
    pub instance: Option<String>,
    pub who: String,
    pub pid: i64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub status: String,
    pub detail: Option<String>,
    /// The plan the operation ran, as recorded before it ran (`plan::Plan` as JSON;
    /// kept as JSON so an entry written by another ostler version still reads).
    pub plan: Option<serde_json::Value>,
    pub commands: Vec<JournalCommand>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalCommand {
    pub command: String,
    pub started_at: Timestamp,
    /// The exit code; none when a signal ended it, or while its end is unknown.
    pub exit_status: Option<i64>,
    /// How long it ran; none while its end is unknown (a service still running).
    pub duration_ms: Option<i64>,
    pub pid: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockInfo {
    pub instance: String,
    pub holder_pid: i64,
    pub holder: String,
    pub purpose: String,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Why a lock no longer protects anything. Such a lock is reclaimed, and the reclaim
/// journaled, by the next operation that needs it; `status` shows it as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockStale {
    /// The process that took it is gone (killed, crashed, host rebooted).
    HolderGone,
    /// Its lease ran out while the holder lives on.
    Expired,
}

impl std::fmt::Display for LockStale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockStale::HolderGone => "its holder is gone",
            LockStale::Expired => "expired",
        })
    }
}

impl LockInfo {
    /// Whether the lock is stale at `now`, and why; `None` while it is held.
    pub fn stale(&self, now: Timestamp) -> Option<LockStale> {
        if !crate::process::pid_alive(self.holder_pid as i32) {
            Some(LockStale::HolderGone)
        } else if self.expires_at <= now {
            Some(LockStale::Expired)
        } else {
            None
        }
    }
}

/// What ostler remembers of an instance's process and supervision.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Runtime {
    pub pid: Option<i32>,
    pub pid_start_ticks: Option<u64>,
    pub started_at: Option<Timestamp>,
    /// `running` or `stopped`: what the operator last asked for.
    pub desired: String,
    /// `ok`, `backoff` or `crash-loop`.
    pub supervision: String,
    /// Times of recent crashes, newest last.
    pub crashes: Vec<Timestamp>,
    pub next_restart_at: Option<Timestamp>,
}

/// The repository this service's backups are in, as first seen.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryId {
    pub id: String,
    pub path: String,
    pub first_seen: Timestamp,
}

fn ts(text: String) -> Timestamp {
    text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

impl State {
    /// Opens (creating if needed) the state database in `state_dir`, reading time
    /// from `clock`.
    pub fn open(state_dir: &Path, clock: Clock) -> Result<State> {
        ostler_repo::private::create_dir_all(state_dir)
            .map_err(|e| Error::io_at("create state dir", state_dir, e))?;
        let path = state_dir.join("state.db");
        // SQLite gives its -wal and -shm files the mode of the database file.
        // One made readable by others (by an older ostler) is narrowed: it holds the
        // journal and the catalog.
        match ostler_repo::private::create_new_file(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                use std::os::unix::fs::MetadataExt;
                let wide = std::fs::metadata(&path).is_ok_and(|m| m.mode() & 0o077 != 0);
                if wide {
                    ostler_repo::private::narrow(&path)
                        .map_err(|e| Error::io_at("chmod", &path, e))?;
                }
            }
            Err(e) => return Err(Error::io_at("create", &path, e)),
        }
        let err = |source| Error::state(&path, source);
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(15)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(err)? as usize;
        if version > MIGRATIONS.len() {
            return Err(Error::failed(format!(
                "state database {} is from a newer ostler (schema {version}, this one knows {})",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        if version < MIGRATIONS.len() {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
                .map_err(err)?;
            let current: usize = tx
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .map_err(err)? as usize;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
                tx.execute_batch(sql).map_err(err)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)
                    .map_err(err)?;
            }
            tx.commit().map_err(err)?;
        }
        Ok(State {
            conn,
            dir: state_dir.to_path_buf(),
            path,
            clock,
        })
    }

    /// The state database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state dir it is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this state's times come from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, on this state's clock, as the text its tables hold.
    fn now_text(&self) -> String {
        self.clock.now().to_string()
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The first column of every row `sql` returns, as text.
    pub fn strings(&self, sql: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Maps an error of this database to [`Error::state`] (naming the file; a full
    /// disk is a full disk), for the modules that keep their tables here.
    pub fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::state(&self.path, source)
    }

    // ---- repository identity ----

    /// The id of the repository this service uses, once one has been opened.
    pub fn repository_id(&self) -> Result<Option<RepositoryId>> {
        self.conn
            .query_row(
                "SELECT id, path, first_seen FROM repository WHERE one = 1",
                [],
                |r| {
                    Ok(RepositoryId {
                        id: r.get(0)?,
                        path: r.get(1)?,
                        first_seen: ts(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// Remembers `id` (at `path`) as the service's repository, replacing any other.
    pub fn remember_repository(&self, id: &str, path: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO repository (one, id, path, first_seen) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(one) DO UPDATE SET id = ?1, path = ?2, first_seen = ?3",
                params![id, path, self.now_text()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    // ---- journal ----

    /// Records an operation before it runs; returns its id.
    pub fn journal_begin(
        &self,
        operation: &str,
        instance: Option<&str>,
        detail: Option<&str>,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO journal (operation, instance, who, pid, started_at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![operation, instance, who(), std::process::id(), self.now_text(), detail],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the plan (JSON) operation `id` is about to run.
    pub fn journal_plan(&self, id: i64, plan: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE journal SET plan = ?2 WHERE id = ?1",
                params![id, plan],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Completes an operation: `ok`, `failed` or `interrupted`, with a detail line.
    pub fn journal_end(&self, id: i64, status: &str, detail: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE journal SET finished_at = ?2, status = ?3, detail = COALESCE(?4, detail) WHERE id = ?1",
                params![id, self.now_text(), status, detail],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn journal_command_begin(&self, journal_id: i64, command: &str) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO journal_commands (journal_id, command, started_at) VALUES (?1, ?2, ?3)",
                params![journal_id, command, self.now_text()],
            )
            .map_err(self.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn journal_command_pid(&self, id: i64, pid: u32) -> Result<()> {
        self.conn
            .execute(
                "UPDATE journal_commands SET pid = ?2 WHERE id = ?1",
                params![id, pid],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn journal_command_end(
        &self,
        id: i64,
        exit_status: Option<i32>,
        duration: Duration,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE journal_commands SET exit_status = ?2, duration_ms = ?3 WHERE id = ?1",
                params![id, exit_status, duration.as_millis() as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The newest `limit` journal entries, oldest first, optionally of one instance.
    pub fn journal(&self, instance: Option<&str>, limit: usize) -> Result<Vec<JournalEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, operation, instance, who, pid, started_at, finished_at, status, detail, plan FROM journal
                 WHERE (?1 IS NULL OR instance = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.err())?;
        let mut entries: Vec<JournalEntry> = stmt
            .query_map(params![instance, limit as i64], |r| {
                Ok(JournalEntry {
                    id: r.get(0)?,
                    operation: r.get(1)?,
                    instance: r.get(2)?,
                    who: r.get(3)?,
                    pid: r.get(4)?,
                    started_at: ts(r.get(5)?),
                    finished_at: r.get::<_, Option<String>>(6)?.map(ts),
                    status: r.get(7)?,
                    detail: r.get(8)?,
                    plan: r
                        .get::<_, Option<String>>(9)?
                        .and_then(|p| serde_json::from_str(&p).ok()),
                    commands: vec![],
                })
            })
            .map_err(self.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err())?;
        entries.reverse();
        let mut cmds = self
            .conn
            .prepare("SELECT command, started_at, exit_status, duration_ms, pid FROM journal_commands WHERE journal_id = ?1 ORDER BY id")
            .map_err(self.err())?;
        for e in &mut entries {
            e.commands = cmds
                .query_map([e.id], |r| {
                    Ok(JournalCommand {
                        command: r.get(0)?,
                        started_at: ts(r.get(1)?),
                        exit_status: r.get(2)?,
                        duration_ms: r.get(3)?,
                        pid: r.get(4)?,
                    })
                })
                .map_err(self.err())?
                .collect::<rusqlite::Result<_>>()
                .map_err(self.err())?;
        }
        Ok(entries)
    }

    // ---- locks ----

    /// Takes the instance's lock for `purpose`, or fails naming the holder. An expired
    /// lock, or one whose holder process is gone, is reclaimed and the reclaim journaled.
    pub fn lock(&self, instance: &str, purpose: &str, ttl: Duration) -> Result<()> {
        let now = self.clock.now();
        // Immediate: the write lock is taken (waiting out the busy timeout) before the
        // read, so two takers at once queue; a deferred read upgraded to a write fails
        // at once with "database is locked" when the other commits first.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(self.err())?;
        tx.execute_batch("SAVEPOINT lock_take").ok();
        let existing: Option<LockInfo> = tx
            .query_row(
                "SELECT instance, holder_pid, holder, purpose, acquired_at, expires_at FROM locks WHERE instance = ?1",
                [instance],
                |r| {
                    Ok(LockInfo {
                        instance: r.get(0)?,
                        holder_pid: r.get(1)?,
                        holder: r.get(2)?,
                        purpose: r.get(3)?,
                        acquired_at: ts(r.get(4)?),
                        expires_at: ts(r.get(5)?),
                    })
                },
            )
            .optional()
            .map_err(self.err())?;
        if let Some(l) = existing {
            let Some(why) = l.stale(now) else {
                return Err(Error::busy(format!(
                    "instance `{instance}` is busy: {} (pid {}) holds its lock for `{}` since {}",
                    l.holder, l.holder_pid, l.purpose, l.acquired_at
                ))
                .with_hint("wait for it to finish; `ostler status` shows the lock"));
            };
            tx.execute(
                "INSERT INTO journal (operation, instance, who, pid, started_at, finished_at, status, detail) VALUES ('lock-reclaim', ?1, ?2, ?3, ?4, ?4, 'ok', ?5)",
                params![
                    instance,
                    who(),
                    std::process::id(),
                    now.to_string(),
                    format!("reclaimed lock held by {} (pid {}) for `{}`: {why}", l.holder, l.holder_pid, l.purpose)
                ],
            )
            .map_err(self.err())?;
            tx.execute("DELETE FROM locks WHERE instance = ?1", [instance])
                .map_err(self.err())?;
        }
        // A lease too long for the calendar lasts until its end.
        let expires = crate::clock::later(now, ttl);
        tx.execute(
            "INSERT INTO locks (instance, holder_pid, holder, purpose, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![instance, std::process::id(), who(), purpose, now.to_string(), expires.to_string()],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(())
    }

    /// Releases our lock on the instance (a no-op if we do not hold it).
    pub fn unlock(&self, instance: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM locks WHERE instance = ?1 AND holder_pid = ?2",
                params![instance, std::process::id()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn locks(&self) -> Result<Vec<LockInfo>> {
        let mut stmt = self
            .conn
            .prepare("SELECT instance, holder_pid, holder, purpose, acquired_at, expires_at FROM locks ORDER BY instance")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(LockInfo {
                    instance: r.get(0)?,
                    holder_pid: r.get(1)?,
                    holder: r.get(2)?,
                    purpose: r.get(3)?,
                    acquired_at: ts(r.get(4)?),
                    expires_at: ts(r.get(5)?),
                })
            })
            .map_err(self.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    // ---- runtime ----

    pub fn runtime(&self, instance: &str) -> Result<Runtime> {
        let row = self
            .conn
            .query_row(
                "SELECT pid, pid_start_ticks, started_at, desired, supervision, crashes, next_restart_at FROM runtime WHERE instance = ?1",
                [instance],
                |r| {
                    Ok(Runtime {
                        pid: r.get(0)?,
                        pid_start_ticks: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        started_at: r.get::<_, Option<String>>(2)?.map(ts),
                        desired: r.get(3)?,
                        supervision: r.get(4)?,
                        crashes: serde_json::from_str::<Vec<String>>(&r.get::<_, String>(5)?)
                            .unwrap_or_default()
                            .into_iter()
                            .map(ts)
                            .collect(),
                        next_restart_at: r.get::<_, Option<String>>(6)?.map(ts),
                    })
                },
            )
            .optional()
            .map_err(self.err())?;
        Ok(row.unwrap_or(Runtime {
            desired: "stopped".into(),
            supervision: "ok".into(),
            ..Runtime::default()
        }))
    }

    pub fn set_runtime(&self, instance: &str, rt: &Runtime) -> Result<()> {
        let crashes: Vec<String> = rt.crashes.iter().map(|t| t.to_string()).collect();
        self.conn
            .execute(
                "INSERT INTO runtime (instance, pid, pid_start_ticks, started_at, desired, supervision, crashes, next_restart_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(instance) DO UPDATE SET pid = ?2, pid_start_ticks = ?3, started_at = ?4, desired = ?5,
                    supervision = ?6, crashes = ?7, next_restart_at = ?8",
                params![
                    instance,
                    rt.pid,
                    rt.pid_start_ticks.map(|v| v as i64),
                    rt.started_at.map(|t| t.to_string()),
                    rt.desired,
                    rt.supervision,
                    serde_json::to_string(&crashes).unwrap_or_else(|_| "[]".into()),
                    rt.next_restart_at.map(|t| t.to_string()),
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

/// Who is acting, for the journal: the login name and host.
pub fn who() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()))
        });
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{signed, ManualClock};
    use crate::error::ErrorKind;

    fn on(manual: &ManualClock) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), manual.clock()).unwrap();
        (dir, state)
    }

    #[test]
    fn a_lock_is_refused_naming_its_holder_until_its_lease_ends_then_reclaimed_and_journaled() {
        let manual = ManualClock::at_new_year();
        let (_dir, state) = on(&manual);
        let taken_at = manual.now();
        let ttl = Duration::from_secs(120);
        state.lock("gb-1", "backup", ttl).unwrap();
        let lock = state.locks().unwrap().pop().unwrap();
        assert_eq!(lock.acquired_at, taken_at);
        assert_eq!(lock.expires_at, taken_at + signed(ttl));

        manual.advance(Duration::from_secs(60));
        let refused = state.lock("gb-1", "restore", ttl).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Busy);
        let said = refused.to_string();
        let holder = format!(
            "{} (pid {}) holds its lock for `backup`",
            who(),
            std::process::id()
        );
        assert!(said.contains(&holder), "{said}");
        // Stale from the end of its lease on, not a millisecond before.
        manual.set(lock.expires_at - signed(Duration::from_millis(1)));
        assert_eq!(lock.stale(manual.now()), None);
        manual.set(lock.expires_at);
        assert_eq!(lock.stale(manual.now()), Some(LockStale::Expired));

        manual.set(taken_at + signed(Duration::from_secs(121)));
        state.lock("gb-1", "restore", ttl).unwrap();
        let now = state.locks().unwrap().pop().unwrap();
        assert_eq!(
            (now.purpose.as_str(), now.acquired_at),
            ("restore", manual.now())
        );
        let reclaim = state.journal(Some("gb-1"), 1).unwrap().pop().unwrap();
        assert_eq!(reclaim.operation, "lock-reclaim");
        assert_eq!(
            (reclaim.started_at, reclaim.finished_at),
            (manual.now(), Some(manual.now()))
        );
        let detail = reclaim.detail.unwrap();
        assert!(detail.ends_with("for `backup`: expired"), "{detail}");
    }

    #[test]
    fn journal_entries_and_their_commands_carry_the_states_clock() {
        let manual = ManualClock::at_new_year();
        let (_dir, state) = on(&manual);
        let begun = manual.now();
        let id = state.journal_begin("backup", Some("gb-1"), None).unwrap();
        manual.advance(Duration::from_millis(250));
        let cid = state.journal_command_begin(id, "pg_dump").unwrap();
        state
            .journal_command_end(cid, Some(0), Duration::from_millis(1250))
            .unwrap();
        manual.advance(Duration::from_millis(1500));
        state.journal_end(id, "ok", None).unwrap();
        let entry = state.journal(None, 1).unwrap().pop().unwrap();
        assert_eq!(entry.started_at, begun);
        assert_eq!(
            entry.finished_at,
            Some(begun + signed(Duration::from_millis(1750)))
        );
        assert_eq!(
            entry.commands[0].started_at,
            begun + signed(Duration::from_millis(250))
        );
    }

    #[test]
    fn the_repository_is_remembered_as_first_seen_on_the_states_clock() {
        let manual = ManualClock::at_new_year();
        let (_dir, state) = on(&manual);
        manual.advance(Duration::from_secs(3600));
        state.remember_repository("3f2a1c", "/srv/repo").unwrap();
        let seen = state.repository_id().unwrap().unwrap();
        assert_eq!(seen.first_seen, manual.now());
    }
}
