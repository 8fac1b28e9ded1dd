//! The catalog: what backups exist, in ostler's state database, so that listing them
//! and comparing their tables never reads the repository. A backup is entered as
//! `running` before it starts and becomes `good` only after its manifest is safely in
//! the repository; one that failed is `failed` with its error; one whose process died
//! (SIGKILL) stays `running` with a dead pid and is shown as `interrupted`. Only `good`
//! backups are ever used by restore, find or as the parent of a delta. A backup being
//! removed by prune is `pruning` until its manifest and entry are gone.

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::manifest::Manifest;
use crate::error::{Error, Result};
use crate::state::State;

#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    pub id: String,
    pub instance: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    /// good, failed, running, interrupted, pruning (being removed)
    pub status: String,
    pub logical_bytes: u64,
    pub new_bytes: u64,
    pub note: Option<String>,
    pub error: Option<String>,
    pub tables: Vec<TableRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableRecord {
    pub name: String,
    pub rows: u64,
    pub hash: String,
    pub logical_bytes: u64,
}

fn ts(text: String) -> Timestamp {
    text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn begin(
    state: &State,
    id: &str,
    instance: &str,
    started_at: Timestamp,
    note: Option<&str>,
) -> Result<()> {
    state
        .conn()
        .execute(
            "INSERT INTO backups (id, instance, started_at, status, pid, note) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![id, instance, started_at.to_string(), std::process::id(), note],
        )
        .map_err(state.err())?;
    Ok(())
}

pub fn fail(state: &State, id: &str, error: &str) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE backups SET status = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1",
            params![id, error, state.clock().now().to_string()],
        )
        .map_err(state.err())?;
    Ok(())
}

/// Records a finished backup (also used to import a manifest found in the repository).
pub fn record_good(state: &State, m: &Manifest) -> Result<()> {
    let tx = state.conn().unchecked_transaction().map_err(state.err())?;
    tx.execute(
        "INSERT INTO backups (id, instance, started_at, finished_at, status, pid, logical_bytes, new_bytes, note, manifest)
         VALUES (?1, ?2, ?3, ?4, 'good', ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(id) DO UPDATE SET finished_at = ?4, status = 'good', logical_bytes = ?6, new_bytes = ?7, manifest = ?9, error = NULL",
        params![
            m.id,
            m.instance,
            m.started_at.to_string(),
            m.finished_at.to_string(),
            std::process::id(),
            m.logical_bytes as i64,
            m.new_bytes as i64,
            m.note,
            serde_json::to_string(m).map_err(|e| Error::Other(e.into()))?,
        ],
    )
    .map_err(state.err())?;
    tx.execute("DELETE FROM backup_tables WHERE backup_id = ?1", [&m.id])
        .map_err(state.err())?;
    if let Some(db) = &m.database {
        for t in &db.tables {
            tx.execute(
                "INSERT INTO backup_tables (backup_id, name, rows, hash, logical_bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.id, t.spec.name, t.rows as i64, t.hash, t.logical_bytes as i64],
            )
            .map_err(state.err())?;
        }
    }
    tx.commit().map_err(state.err())?;
    Ok(())
}

/// Marks backups as being pruned (one transaction): from now on they are not good, and
/// an interrupted prune is finished by the next one (see `prune::finish_interrupted`).
pub fn mark_pruning(state: &State, ids: &[String]) -> Result<()> {
    let tx = state.conn().unchecked_transaction().map_err(state.err())?;
    for id in ids {
        tx.execute("UPDATE backups SET status = 'pruning' WHERE id = ?1", [id])
            .map_err(state.err())?;
    }
    tx.commit().map_err(state.err())
}

/// Backups marked by a prune that has not finished removing them.
pub fn pruning(state: &State) -> Result<Vec<String>> {
    state.strings("SELECT id FROM backups WHERE status = 'pruning' ORDER BY id")
}

pub fn remove(state: &State, id: &str) -> Result<()> {
    state
        .conn()
        .execute("DELETE FROM backups WHERE id = ?1", [id])
        .map_err(state.err())?;
    Ok(())
}

/// Whether the catalog holds no backup at all (of any status).
pub fn is_empty(state: &State) -> Result<bool> {
    let n: i64 = state
        .conn()
        .query_row("SELECT count(*) FROM backups", [], |r| r.get(0))
        .map_err(state.err())?;
    Ok(n == 0)
}

/// Backups, oldest first, optionally of one instance.
pub fn list(state: &State, instance: Option<&str>) -> Result<Vec<BackupRecord>> {
    let mut stmt = state
        .conn()
        .prepare(
            "SELECT id, instance, started_at, finished_at, status, pid, logical_bytes, new_bytes, note, error FROM backups
             WHERE (?1 IS NULL OR instance = ?1) ORDER BY started_at, id",
        )
        .map_err(state.err())?;
    let mut out: Vec<BackupRecord> = stmt
        .query_map(params![instance], |r| {
            let started = ts(r.get(2)?);
            let finished = r.get::<_, Option<String>>(3)?.map(ts);
            let mut status: String = r.get(4)?;
            let pid: i64 = r.get(5)?;
            if status == "running" && !crate::process::pid_alive(pid as i32) {
                status = "interrupted".into();
            }
            Ok(BackupRecord {
                id: r.get(0)?,
                instance: r.get(1)?,
                started_at: started,
                finished_at: finished,
                duration_ms: finished.map(|f| f.duration_since(started).as_millis() as i64),
                status,
                logical_bytes: r.get::<_, i64>(6)? as u64,
                new_bytes: r.get::<_, i64>(7)? as u64,
                note: r.get(8)?,
                error: r.get(9)?,
                tables: vec![],
            })
        })
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    let mut tstmt = state
        .conn()
        .prepare("SELECT name, rows, hash, logical_bytes FROM backup_tables WHERE backup_id = ?1 ORDER BY name")
        .map_err(state.err())?;
    for b in &mut out {
        b.tables = tstmt
            .query_map([&b.id], |r| {
                Ok(TableRecord {
                    name: r.get(0)?,
                    rows: r.get::<_, i64>(1)? as u64,
                    hash: r.get(2)?,
                    logical_bytes: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(state.err())?
            .collect::<rusqlite::Result<_>>()
            .map_err(state.err())?;
    }
    Ok(out)
}

/// The manifest of a good backup.
pub fn manifest(state: &State, id: &str) -> Result<Option<Manifest>> {
    let Some(json) = manifest_json(state, id)? else {
        return Ok(None);
    };
    serde_json::from_value(json).map(Some).map_err(|e| {
        Error::failed(format!(
            "backup {id}: unreadable manifest in the catalog: {e}"
        ))
    })
}

/// The manifest of a good backup as the catalog holds it, key for key (written with the
/// repository's copy, so the two compare equal unless one is damaged).
pub fn manifest_json(state: &State, id: &str) -> Result<Option<serde_json::Value>> {
    let text: Option<Option<String>> = state
        .conn()
        .query_row(
            "SELECT manifest FROM backups WHERE id = ?1 AND status = 'good'",
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(state.err())?;
    text.flatten()
        .map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                Error::failed(format!(
                    "backup {id}: unreadable manifest in the catalog: {e}"
                ))
            })
        })
        .transpose()
}

/// Resolves an id or unique id prefix to a backup id. The prefix is compared as text,
/// not as a LIKE pattern, so `%` and `_` match only themselves.
pub fn resolve(state: &State, prefix: &str) -> Result<String> {
    let mut stmt = state
        .conn()
        .prepare("SELECT id FROM backups WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id")
        .map_err(state.err())?;
    let ids: Vec<String> = stmt
        .query_map([prefix], |r| r.get(0))
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::user(format!("no backup with id `{prefix}`"))
            .with_hint("`ostler backups` lists them")),
        many => Err(Error::user(format!(
            "backup id `{prefix}` is ambiguous: {}",
            many.join(", ")
        ))),
    }
}

/// The newest good backup of an instance.
pub fn latest_good(state: &State, instance: &str) -> Result<Option<Manifest>> {
    let id: Option<String> = state
        .conn()
        .query_row(
            "SELECT id FROM backups WHERE instance = ?1 AND status = 'good' ORDER BY started_at DESC, id DESC LIMIT 1",
            [instance],
            |r| r.get(0),
        )
        .optional()
        .map_err(state.err())?;
    match id {
        Some(id) => manifest(state, &id),
        None => Ok(None),
    }
}
