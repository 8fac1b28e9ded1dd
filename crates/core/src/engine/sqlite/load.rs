//! Loading rows into a new SQLite file, putting rows back into a live one (a partial
//! restore, the same parameterised INSERTs in one transaction), and the native export
//! (that same file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ostler_rows::Row;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::codec::decode_refs;
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
        // Values as stored (text as its bytes, UTF-8 or not), borrowed from the payload.
        let values = decode_refs(&row.payload)?;
        stmt.execute(rusqlite::params_from_iter(
            values
                .into_iter()
                .map(rusqlite::types::ToSqlOutput::Borrowed),
        ))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::engine::{load, open_snapshot, Database, TableRows};
    use crate::exec::Runner;
    use crate::report::{Interrupt, Silent};

    /// Regression: text SQLite holds that is not UTF-8 (SQLite never checks) came back
    /// from a backup with U+FFFD in place of its bytes.
    #[test]
    fn text_that_is_not_utf8_comes_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = rusqlite::Connection::open(&live).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT);
             CREATE TABLE k (s TEXT PRIMARY KEY);
             INSERT INTO t VALUES (1, CAST(X'FF00FE41C3' AS TEXT)), (2, 'plain');
             INSERT INTO k VALUES (CAST(X'80FF' AS TEXT));",
        )
        .unwrap();
        let runner = Runner::new(Arc::new(Silent), Interrupt::new());
        let db = Database::Sqlite { path: live.clone() };
        let mut snap = open_snapshot(&db, dir.path(), &runner).unwrap();
        let mut tables = Vec::new();
        for spec in snap.tables().to_vec() {
            let mut rows = Vec::new();
            snap.rows(&spec, &mut |r| {
                rows.push(r);
                Ok(())
            })
            .unwrap();
            tables.push((spec, rows));
        }
        let schema = snap.schema().to_vec();
        snap.finish().unwrap();

        let restored = dir.path().join("restored.db");
        let mut items = tables
            .into_iter()
            .map(|(spec, rows)| -> crate::Result<TableRows<'_>> {
                Ok((spec, Box::new(rows.into_iter().map(Ok))))
            });
        load(
            &Database::Sqlite {
                path: restored.clone(),
            },
            None,
            &schema,
            &mut items,
        )
        .unwrap();

        let dump = |path: &std::path::Path| -> Vec<String> {
            let c = rusqlite::Connection::open(path).unwrap();
            let mut st = c
                .prepare(
                    "SELECT 't', id, typeof(s), hex(s) FROM t \
                     UNION ALL SELECT 'k', 0, typeof(s), hex(s) FROM k ORDER BY 1, 2",
                )
                .unwrap();
            st.query_map([], |r| {
                Ok(format!(
                    "{} {} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
        };
        let want = dump(&live);
        assert_eq!(
            want,
            [
                "k 0 text 80FF",
                "t 1 text FF00FE41C3",
                "t 2 text 706C61696E"
            ]
        );
        assert_eq!(dump(&restored), want);
    }
}
