//! Looking after a SQLite file outside backups: a maintenance statement through the
//! `sqlite3` shell (or, counting the rows it changed, through the driver), the safety copy (online backup API), whether it exists, nuking
//! and removing it, and swapping a restored file in by renames.

use std::path::Path;
use std::process::Command;

use super::connect::{file, sql_err};
use crate::engine::database::{private_file, rename_if_exists, with_suffix};
use crate::engine::Database;
use crate::error::{Error, Result};
use crate::exec::Runner;

/// Files SQLite keeps beside a database, which travel with it.
const SQLITE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Runs SQL with the `sqlite3` shell and returns what it printed.
pub(super) fn run_sql(db: &Database, runner: &Runner, sql: &str) -> Result<String> {
    let mut cmd = Command::new("sqlite3");
    cmd.arg("-batch").arg("-bail").arg(file(db)?);
    cmd.envs(db.child_env());
    runner.run_with_input(&mut cmd, sql.as_bytes())
}

/// Runs a maintenance statement in one immediate transaction and returns the rows it
/// changed: the difference of `total_changes()` (which counts rows changed by
/// triggers too). Never creates the file.
pub(super) fn execute(db: &Database, runner: &Runner, statement: &str) -> Result<u64> {
    let path = file(db)?;
    let e = sql_err(path);
    runner.interrupt().check()?;
    let mut conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(&e)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&e)?;
    let total = |tx: &rusqlite::Transaction| {
        tx.query_row("SELECT total_changes()", [], |row| row.get::<_, i64>(0))
    };
    let before = total(&tx).map_err(&e)?;
    tx.execute_batch(statement).map_err(&e)?;
    let after = total(&tx).map_err(&e)?;
    // Dropping the transaction rolls it back.
    runner.interrupt().check()?;
    tx.commit().map_err(&e)?;
    Ok(u64::try_from(after - before).unwrap_or(0))
}

/// Runs a read-only query and returns its rows as text. Never creates the file.
pub(super) fn query(db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    use rusqlite::types::ValueRef;
    let path = file(db)?;
    let e = sql_err(path);
    runner.interrupt().check()?;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(&e)?;
    let mut stmt = conn.prepare(sql).map_err(&e)?;
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(n) => Some(n.to_string()),
                        ValueRef::Real(f) => Some(f.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(&e)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(&e)?;
    Ok(rows)
}

/// Copies the database with the online backup API to `dest_dir/stem.sqlite`.
pub(super) fn safety_dump(
    db: &Database,
    dest_dir: &Path,
    stem: &str,
) -> Result<std::path::PathBuf> {
    let path = file(db)?;
    if !path.exists() {
        return Err(Error::failed(format!(
            "no database file at {}",
            path.display()
        )));
    }
    let (dest, _) = private_file(dest_dir, &format!("{stem}.sqlite"))?;
    let src =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| Error::failed(format!("opening {}: {e}", path.display())))?;
    src.busy_timeout(std::time::Duration::from_secs(10)).ok();
    src.backup(rusqlite::DatabaseName::Main, &dest, None)
        .map_err(|e| {
            Error::sqlite_no_space(&dest, &e)
                .unwrap_or_else(|| Error::failed(format!("backing up {}: {e}", path.display())))
        })?;
    Ok(dest)
}

/// Removes the file and its companions, those already gone included (SQLite's nuke:
/// the service or a load creates the file afresh).
pub(super) fn remove(db: &Database) -> Result<()> {
    let path = file(db)?;
    for suffix in std::iter::once("").chain(SQLITE_COMPANIONS) {
        let p = with_suffix(path, suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing {}", p.display()), e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Renames the live file (companions first) aside and the incoming one in its place.
pub(super) fn swap_in(db: &Database, incoming: &Database, aside: &Database) -> Result<()> {
    let (path, inc, asd) = (file(db)?, file(incoming)?, file(aside)?);
    // The database file is the instance's: the incoming one takes the
    // live one's mode (SQLite made it 0644, whatever the live one was).
    if let (Ok(live), true) = (std::fs::metadata(path), inc.exists()) {
        std::fs::set_permissions(inc, live.permissions())
            .map_err(|e| Error::io_at("chmod", inc, e))?;
    }
    if path.exists() {
        // Companions first: while the main file is in place, a rerun
        // moves whatever is left.
        for suffix in SQLITE_COMPANIONS {
            rename_if_exists(&with_suffix(path, suffix), &with_suffix(asd, suffix))?;
        }
        rename_if_exists(path, asd)?;
    }
    if inc.exists() {
        for suffix in SQLITE_COMPANIONS {
            rename_if_exists(&with_suffix(inc, suffix), &with_suffix(path, suffix))?;
        }
        rename_if_exists(inc, path)?;
    }
    Ok(())
}
