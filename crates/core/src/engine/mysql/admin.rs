//! Looking after a MySQL/MariaDB database outside backups, with the server's own
//! tools: a maintenance statement through the `mariadb` client (or, counting the rows
//! it changed, through the driver), the safety dump
//! (`mariadb-dump --single-transaction`), whether it exists or holds tables, nuking,
//! removing, and swapping a restored database in (MariaDB cannot rename a database:
//! one multi-table `RENAME TABLE`, which the server applies all or not at all).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::connect::{connect, my_err, url};
use super::quote;
use crate::engine::database::private_file;
use crate::engine::Database;
use crate::error::{Error, Result};
use crate::exec::Runner;

/// Runs SQL with the `mariadb` client and returns what it printed (tab-separated, no
/// headers). `database` overrides the database's own name (`""`: none).
pub(super) fn run_sql(
    db: &Database,
    runner: &Runner,
    database: Option<&str>,
    sql: &str,
) -> Result<String> {
    let url = url(db)?;
    let mut cmd = Command::new("mariadb");
    cmd.args(db.client_args())
        .args(["--batch", "--skip-column-names", "--raw"])
        .arg(database.unwrap_or(&url.database));
    cmd.envs(db.child_env());
    runner.run_with_input(&mut cmd, sql.as_bytes())
}

/// Runs a maintenance statement in one transaction and returns the rows it changed:
/// the sum of each statement's affected rows. The session takes the server's global
/// `sql_mode` and `time_zone`, as the `mariadb` client would, so `NOW()` and strictness
/// are the service's. A statement MariaDB commits implicitly (DDL: `CREATE`, `ALTER`,
/// `DROP`...) ends the transaction there, as it does in any client.
/// Runs a read-only query and returns its rows as text.
pub(super) fn query(db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    runner.interrupt().check()?;
    let (mut conn, label) = connect(db, None)?;
    super::connect::query_text(&mut conn, &label, "running the query", sql)
}

pub(super) fn execute(db: &Database, runner: &Runner, statement: &str) -> Result<u64> {
    use mysql::prelude::Queryable;

    runner.interrupt().check()?;
    let (mut conn, label) = connect(db, None)?;
    let label = label.as_str();
    conn.query_drop(
        "SET SESSION sql_mode = @@GLOBAL.sql_mode, SESSION time_zone = @@GLOBAL.time_zone",
    )
    .map_err(my_err(label, "setting up the session"))?;
    let mut tx = conn
        .start_transaction(mysql::TxOpts::default())
        .map_err(my_err(label, "starting the transaction"))?;
    let e = my_err(label, "running the maintenance statement");
    let mut changed = 0;
    {
        let mut result = tx.query_iter(statement).map_err(&e)?;
        while let Some(mut set) = result.iter() {
            // Read before the rows: reading them moves the set past its OK packet.
            changed += set.affected_rows();
            for row in set.by_ref() {
                row.map_err(&e)?;
            }
        }
    }
    // Dropping the transaction rolls it back.
    runner.interrupt().check()?;
    tx.commit()
        .map_err(my_err(label, "committing the maintenance statement"))?;
    Ok(changed)
}

/// `mariadb-dump --single-transaction` of the database to `dest_dir/stem.sql`.
pub(super) fn safety_dump(
    db: &Database,
    runner: &Runner,
    dest_dir: &Path,
    stem: &str,
) -> Result<PathBuf> {
    let url = url(db)?;
    let (dest, _) = private_file(dest_dir, &format!("{stem}.sql"))?;
    let mut c = Command::new("mariadb-dump");
    c.args(db.client_args())
        .args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--result-file",
        ])
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
        Some(""),
        &format!(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = {};",
            quote::string(&url.database)
        ),
    )?;
    Ok(out.trim() != "0")
}

/// Whether the database exists and has a table in it (a swap's `RENAME TABLE`
/// empties the side database before it is dropped).
pub(super) fn holds_data(db: &Database, runner: &Runner) -> Result<bool> {
    Ok(exists(db, runner)? && !tables(db, runner)?.is_empty())
}

/// Drops the database and creates it again, empty.
pub(super) fn nuke(db: &Database, runner: &Runner) -> Result<()> {
    let db_name = &url(db)?.database;
    run_sql(
        db,
        runner,
        Some(""),
        &format!(
            "DROP DATABASE IF EXISTS `{db_name}`; CREATE DATABASE `{db_name}` CHARACTER SET utf8mb4;"
        ),
    )?;
    Ok(())
}

pub(super) fn remove(db: &Database, runner: &Runner) -> Result<()> {
    run_sql(
        db,
        runner,
        Some(""),
        &format!(
            "DROP DATABASE IF EXISTS {};",
            quote::ident(&url(db)?.database)
        ),
    )?;
    Ok(())
}

/// Moves the live database's tables aside and the incoming one's in, in one
/// `RENAME TABLE`, then drops the emptied incoming database.
pub(super) fn swap_in(
    db: &Database,
    incoming: &Database,
    aside: &Database,
    runner: &Runner,
) -> Result<()> {
    let (url, inc, asd) = (url(db)?, url(incoming)?, url(aside)?);
    let q = quote::ident;
    for d in [db, incoming] {
        if exists(d, runner)? {
            refuse_unmovable(d, runner)?;
        }
    }
    let live_tables = if exists(db, runner)? {
        tables(db, runner)?
    } else {
        vec![]
    };
    let incoming_tables = if exists(incoming, runner)? {
        tables(incoming, runner)?
    } else {
        vec![]
    };
    let rename =
        |t: &String, from: &str, to: &str| format!("{}.{} TO {}.{}", q(from), q(t), q(to), q(t));
    let renames: Vec<String> = live_tables
        .iter()
        .map(|t| rename(t, &url.database, &asd.database))
        .chain(
            incoming_tables
                .iter()
                .map(|t| rename(t, &inc.database, &url.database)),
        )
        .collect();
    let mut sql = format!(
        "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4;\nCREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4;\n",
        q(&url.database),
        q(&asd.database)
    );
    if !renames.is_empty() {
        // One statement: MariaDB renames all of them or none.
        sql += &format!("RENAME TABLE {};\n", renames.join(", "));
    }
    sql += &format!("DROP DATABASE IF EXISTS {};\n", q(&inc.database));
    run_sql(db, runner, Some(""), &sql)?;
    Ok(())
}

/// The base tables of the database.
fn tables(db: &Database, runner: &Runner) -> Result<Vec<String>> {
    let out = run_sql(
        db,
        runner,
        Some(""),
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME;",
            quote::string(&url(db)?.database)
        ),
    )?;
    Ok(out
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// `RENAME TABLE` moves tables between databases, but not views, and not tables
/// with triggers; routines stay behind. Refuses (before anything moves) when the
/// database has any of them.
fn refuse_unmovable(db: &Database, runner: &Runner) -> Result<()> {
    let db_name = &url(db)?.database;
    let name = quote::string(db_name);
    let out = run_sql(
        db,
        runner,
        Some(""),
        &format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {name}) \
             + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {name}) \
             + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {name});"
        ),
    )?;
    if out.trim() != "0" {
        return Err(Error::failed(format!(
            "database {db_name} has views, triggers or routines, which an all-or-nothing restore cannot move on MariaDB (RENAME TABLE moves only tables); nothing was swapped"
        ))
        .with_hint("`ostler export` the backup and load database.sql with the mariadb client"));
    }
    Ok(())
}
