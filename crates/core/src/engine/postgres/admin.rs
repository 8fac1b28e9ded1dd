//! Looking after a PostgreSQL database outside backups, with the server's own tools:
//! a maintenance statement through `psql` (or, counting the rows it changed, through the
//! driver), the safety dump (`pg_dump -Fc`), whether it
//! exists, nuking (drop and create), removing, and swapping a restored database in
//! (`ALTER DATABASE ... RENAME` twice in one transaction).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::connect::{connect, pg_err, url};
use super::quote;
use crate::engine::database::private_file;
use crate::engine::Database;
use crate::error::Result;
use crate::exec::Runner;

/// Runs SQL with `psql` and returns what it printed (tab-separated, no headers).
/// `database` overrides the database's own name.
pub(super) fn run_sql(
    db: &Database,
    runner: &Runner,
    database: Option<&str>,
    sql: &str,
) -> Result<String> {
    let url = url(db)?;
    let mut cmd = Command::new("psql");
    cmd.args(db.client_args())
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
        ])
        .arg(database.unwrap_or(&url.database));
    cmd.envs(db.child_env());
    runner.run_with_input(&mut cmd, sql.as_bytes())
}

/// Runs a maintenance statement in one transaction and returns the rows it changed:
/// the sum of its statements' command tags (`DELETE 3`), leaving out statements that
/// returned rows (a `SELECT`'s count is of rows read; so is a `RETURNING` one's). The
/// session is reset to the server's defaults for the database and role (`RESET
/// ALL`), as `psql` would have it, so `now()` and casts read as the service's do.
/// Runs a read-only query and returns its rows as text.
pub(super) fn query(db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    runner.interrupt().check()?;
    let (mut client, label) = connect(db, None)?;
    let messages = client
        .simple_query(sql)
        .map_err(pg_err(&label, "running the query"))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

pub(super) fn execute(db: &Database, runner: &Runner, statement: &str) -> Result<u64> {
    runner.interrupt().check()?;
    let (mut client, label) = connect(db, None)?;
    let label = label.as_str();
    client
        .batch_execute("RESET ALL")
        .map_err(pg_err(label, "resetting the session"))?;
    let mut tx = client
        .transaction()
        .map_err(pg_err(label, "starting the transaction"))?;
    let messages = tx
        .simple_query(statement)
        .map_err(pg_err(label, "running the maintenance statement"))?;
    let mut changed = 0;
    let mut returned_rows = false;
    for message in messages {
        match message {
            postgres::SimpleQueryMessage::CommandComplete(n) => {
                if !returned_rows {
                    changed += n;
                }
                returned_rows = false;
            }
            _ => returned_rows = true,
        }
    }
    // Dropping the transaction rolls it back.
    runner.interrupt().check()?;
    tx.commit()
        .map_err(pg_err(label, "committing the maintenance statement"))?;
    Ok(changed)
}

/// `pg_dump -Fc` of the database to `dest_dir/stem.pgdump`.
pub(super) fn safety_dump(
    db: &Database,
    runner: &Runner,
    dest_dir: &Path,
    stem: &str,
) -> Result<PathBuf> {
    let url = url(db)?;
    let (dest, _) = private_file(dest_dir, &format!("{stem}.pgdump"))?;
    let mut c = Command::new("pg_dump");
    c.args(db.client_args())
        .arg("-Fc")
        .arg("-f")
        .arg(&dest)
        .arg(&url.database);
    c.envs(db.child_env());
    runner.run(&mut c)?;
    Ok(dest)
}

pub(super) fn exists(db: &Database, runner: &Runner) -> Result<bool> {
    let url = url(db)?;
    let out = run_sql(
        db,
        runner,
        Some("postgres"),
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {};",
            quote::string(&url.database)
        ),
    )?;
    Ok(out.trim() != "0")
}

/// Drops the database and creates it again, empty.
pub(super) fn nuke(db: &Database, runner: &Runner) -> Result<()> {
    let db_name = &url(db)?.database;
    run_sql(
        db,
        runner,
        Some("postgres"),
        &format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE);\nCREATE DATABASE \"{db_name}\";\n"
        ),
    )?;
    Ok(())
}

pub(super) fn remove(db: &Database, runner: &Runner) -> Result<()> {
    run_sql(
        db,
        runner,
        Some("postgres"),
        &format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE);",
            quote::ident(&url(db)?.database)
        ),
    )?;
    Ok(())
}

/// Renames the live database aside and the incoming one in its place, in one
/// transaction.
pub(super) fn swap_in(
    db: &Database,
    incoming: &Database,
    aside: &Database,
    runner: &Runner,
) -> Result<()> {
    let (url, inc, asd) = (url(db)?, url(incoming)?, url(aside)?);
    let (live_there, inc_there) = (exists(db, runner)?, exists(incoming, runner)?);
    let q = quote::ident;
    let l = quote::string;
    // A database being renamed must have no sessions; the instance is
    // stopped, so what is left are strays (as `db-nuke`'s FORCE assumes).
    let mut sql = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ({}, {}) AND pid <> pg_backend_pid();\nBEGIN;\n",
        l(&url.database),
        l(&inc.database)
    );
    if live_there {
        sql += &format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            q(&url.database),
            q(&asd.database)
        );
    }
    if inc_there {
        sql += &format!(
            "ALTER DATABASE {} RENAME TO {};\n",
            q(&inc.database),
            q(&url.database)
        );
    }
    sql += "COMMIT;\n";
    run_sql(db, runner, Some("postgres"), &sql)?;
    Ok(())
}
