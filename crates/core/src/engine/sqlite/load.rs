//! Loading rows into a new SQLite file, putting rows back into a live one (a partial
//! restore, the same parameterised INSERTs in one transaction), and the native export
//! (that same file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ostler_rows::Row;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::codec::{decode_values, to_sql};
use super::connect::sql_err;
use super::quote;
use crate::engine::{SchemaPart, TableRows, TableSpec};
use crate::error::{Error, Result};

fn is_without_rowid(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, String>(0),
    )
    .map(|sql| sql.to_ascii_uppercase().contains("WITHOUT ROWID"))
    .unwrap_or(false)
}

/// Creates a SQLite database at `path` (which must not exist) from a schema and rows.
pub(super) fn load(
    path: &Path,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    if path.exists() {
        return Err(Error::failed(format!("{} already exists", path.display())));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let e = sql_err(path);
    let mut conn = Connection::open(path).map_err(&e)?;
    conn.pragma_update(None, "journal_mode", "DELETE")
        .map_err(&e)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(&e)?;
    let ddl: String = schema
        .iter()
        .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
        .collect();
    let tx = conn.transaction().map_err(&e)?;
    // Tables first (indexes after the data load is faster, but the DDL is one text;
    // SQLite builds indexes incrementally at fine speed for our sizes).
    tx.execute_batch(&ddl).map_err(&e)?;
    for item in tables {
        let (spec, rows) = item?;
        insert_table(&tx, path, &spec, rows)?;
    }
    tx.commit().map_err(&e)?;
    Ok(())
}

/// Inserts one table's rows through `conn`: the values of each payload as parameters,
/// the rowid first for a table without a primary key (so the row keeps its identity).
fn insert_table(
    conn: &Connection,
    path: &Path,
    spec: &TableSpec,
    rows: Box<dyn Iterator<Item = Result<Row>> + '_>,
) -> Result<()> {
    let e = |err: rusqlite::Error| {
        Error::sqlite_no_space(path, &err).unwrap_or_else(|| {
            Error::failed(format!(
                "sqlite {}: writing rows of table {}: {err}",
                path.display(),
                spec.name
            ))
        })
    };
    let with_rowid = spec.key_columns.is_empty() && !is_without_rowid(conn, &spec.name);
    let mut cols: Vec<String> = spec.columns.iter().map(|c| quote::ident(c)).collect();
    if with_rowid {
        cols.insert(0, "rowid".into());
    }
    let marks: Vec<&str> = cols.iter().map(|_| "?").collect();
    let mut stmt = conn
        .prepare(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote::ident(&spec.name),
            cols.join(", "),
            marks.join(", ")
        ))
        .map_err(e)?;
    for row in rows {
        let row = row?;
        let values: Vec<rusqlite::types::Value> =
            decode_values(&row.payload)?.iter().map(to_sql).collect();
        stmt.execute(rusqlite::params_from_iter(values))
            .map_err(e)?;
    }
    Ok(())
}

/// Inserts rows into existing tables of the live database at `path`, tables in the
/// order given, in one `IMMEDIATE` transaction (waiting up to 30 s for the service's
/// writers): all of them or none. Foreign keys are checked, at the commit, so the
/// rows of a table that references itself may come in any order.
pub fn insert_rows(
    path: &Path,
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let e = sql_err(path);
    // Never creates a database: a missing file is an error, not a new empty database.
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&e)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(&e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(&e)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&e)?;
    tx.pragma_update(None, "defer_foreign_keys", "ON")
        .map_err(&e)?;
    for item in tables {
        let (spec, rows) = item?;
        insert_table(&tx, path, &spec, rows)?;
    }
    tx.commit().map_err(&e)?;
    Ok(())
}

/// Writes `dir/database.sqlite`, which is the database itself (`cp` or `sqlite3` it).
pub(super) fn export(
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let path = dir.join("database.sqlite");
    load(&path, schema, tables)?;
    // SQLite creates its files 0644; an export holds the whole database.
    ostler_repo::private::narrow(&path).map_err(|e| Error::io_at("chmod", &path, e))?;
    Ok(vec![path])
}
