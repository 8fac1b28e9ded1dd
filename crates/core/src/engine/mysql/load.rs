//! Loading a snapshot into an empty MySQL/MariaDB database (multi-row INSERTs through
//! the driver), putting rows back into a live one (a partial restore, the same
//! INSERTs in one transaction), and the native export (one SQL file for the
//! `mariadb` client).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use mysql::prelude::Queryable;
use mysql::Conn;
use ostler_rows::Row;

use super::codec::check_tuple;
use super::connect::{cell, connect, my_err, query_text};
use super::quote;
use super::snapshot::{POST_DATA, SCHEMA};
use crate::engine::database::private_file;
use crate::engine::{Database, SchemaPart, TableRows, TableSpec};
use crate::error::{Error, Result};

/// The mode rows are loaded in: `0` stays `0` in AUTO_INCREMENT columns, backslash
/// escapes on, and a value the table cannot hold is an error, not a silent truncation.
pub(super) const LOAD_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES";

/// What printed statements start with, for a person to run them in the `mariadb`
/// client: the session our literals assume (UTF-8, timestamps in UTC as the snapshot
/// prints them, backslash escapes and `LOAD_SQL_MODE`), then the transaction.
pub(crate) const BEGIN: &str = "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'; \
     SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'; START TRANSACTION;";

/// One INSERT statement holds rows up to about this many bytes.
const STATEMENT_BYTES: usize = 1 << 20;

fn part_text<'a>(schema: &'a [SchemaPart], name: &str) -> Result<std::borrow::Cow<'a, str>> {
    let p = schema
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::failed(format!("the MySQL schema has no part {name}")))?;
    Ok(String::from_utf8_lossy(&p.bytes))
}

/// Splits a part into what a driver can run: plain text as one multi-statement
/// chunk, and each statement of a `DELIMITER ;;` block (ended by a `;;` line) alone,
/// as the `mariadb` client would send them.
fn chunks(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_block = false;
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.trim().is_empty() {
            out.push(std::mem::take(current));
        }
        current.clear();
    };
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(delimiter) = trimmed.strip_prefix("DELIMITER ") {
            flush(&mut current, &mut out);
            match delimiter.trim() {
                ";;" => in_block = true,
                ";" => in_block = false,
                other => return Err(format!("unsupported delimiter {other:?}")),
            }
        } else if in_block && trimmed == ";;" {
            flush(&mut current, &mut out);
        } else {
            current.push_str(line);
        }
    }
    if in_block {
        return Err("a DELIMITER ;; block is not closed".into());
    }
    flush(&mut current, &mut out);
    Ok(out)
}

fn run_part(conn: &mut Conn, label: &str, schema: &[SchemaPart], name: &str) -> Result<()> {
    let text = part_text(schema, name)?;
    let what = format!("running {name}");
    let pieces = chunks(&text).map_err(|d| Error::failed(format!("{label}: {what}: {d}")))?;
    for piece in pieces {
        conn.query_drop(piece).map_err(my_err(label, &what))?;
    }
    Ok(())
}

/// Feeds `INSERT INTO t (cols) VALUES` statements of about `limit` bytes to `emit`.
/// For the `mariadb` client (`for_client`), line breaks in strings are escaped.
fn insert_statements(
    spec: &TableSpec,
    rows: Box<dyn Iterator<Item = Result<Row>> + '_>,
    limit: usize,
    for_client: bool,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let cols: Vec<String> = spec.columns.iter().map(|c| quote::ident(c)).collect();
    let head = format!(
        "INSERT INTO {} ({}) VALUES\n",
        quote::ident(&spec.name),
        cols.join(",")
    );
    let mut statement = String::with_capacity(limit + 4096);
    let mut rows_in = 0usize;
    for row in rows {
        let row = row?;
        check_tuple(&row.payload, &spec.name)?;
        let payload = if for_client {
            quote::client_text(&row.payload)
        } else {
            std::borrow::Cow::Borrowed(&row.payload[..])
        };
        let tuple = std::str::from_utf8(&payload).map_err(|_| {
            Error::failed(format!(
                "table {}: a row is not UTF-8; the backup is damaged",
                spec.name
            ))
        })?;
        if rows_in > 0 && statement.len() + tuple.len() > limit {
            emit(&statement)?;
            statement.clear();
            rows_in = 0;
        }
        if rows_in == 0 {
            statement.push_str(&head);
        } else {
            statement.push_str(",\n");
        }
        statement.push_str(tuple);
        rows_in += 1;
    }
    if rows_in > 0 {
        emit(&statement)?;
    }
    Ok(())
}

/// How long one INSERT may be: `STATEMENT_BYTES`, less where the server's
/// `max_allowed_packet` is smaller.
fn statement_limit(conn: &mut Conn, label: &str) -> Result<usize> {
    let packet = query_text(
        conn,
        label,
        "reading max_allowed_packet",
        "SELECT @@max_allowed_packet",
    )?;
    let packet: usize = packet
        .first()
        .map(|r| cell(r, 0))
        .unwrap_or_default()
        .parse()
        .unwrap_or(1 << 22);
    Ok(STATEMENT_BYTES.min(packet.saturating_sub(64 << 10).max(64 << 10)))
}

/// Inserts rows into existing tables of the live database, tables in the order
/// given, in one transaction (InnoDB): all of them or none. Each payload is the
/// stored value tuple, spliced into `INSERT ... VALUES` after `check_tuple` has
/// proved it holds literals only, as `load` does. Foreign keys are checked.
pub fn insert_rows(
    db: &Database,
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let (mut conn, label) = connect(db, None)?;
    let label = label.as_str();
    conn.query_drop(format!("SET SESSION sql_mode = '{LOAD_SQL_MODE}'"))
        .map_err(my_err(label, "setting up the session"))?;
    let limit = statement_limit(&mut conn, label)?;
    conn.query_drop("START TRANSACTION")
        .map_err(my_err(label, "starting the transaction"))?;
    let written = || -> Result<()> {
        for item in tables {
            let (spec, rows) = item?;
            let what = format!("writing rows of table {}", spec.name);
            insert_statements(&spec, rows, limit, false, &mut |sql| {
                conn.query_drop(sql).map_err(my_err(label, &what))
            })?;
        }
        Ok(())
    };
    match written() {
        Ok(()) => conn
            .query_drop("COMMIT")
            .map_err(my_err(label, "committing the rows")),
        Err(e) => {
            // Closing the connection would roll back too; this says so at once.
            let _ = conn.query_drop("ROLLBACK");
            Err(e)
        }
    }
}

/// Loads a snapshot into an empty database: schema.sql (tables, routines, views),
/// the rows in one transaction of multi-row INSERTs (InnoDB loads an empty table in
/// bulk that way), then the triggers. DDL commits by itself in MySQL, so a failure
/// leaves the tables created so far; the database must be emptied before a retry.
pub(super) fn load(
    db: &Database,
    database: Option<&str>,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let (mut conn, label) = connect(db, database)?;
    let label = label.as_str();
    let existing = query_text(
        &mut conn,
        label,
        "checking that the database is empty",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )?;
    let existing = existing.first().map(|r| cell(r, 0)).unwrap_or_default();
    if existing != "0" {
        return Err(Error::failed(format!(
            "{label} is not empty ({existing} tables or views); a load needs an empty database"
        )));
    }
    conn.query_drop(format!(
        "SET SESSION sql_mode = '{LOAD_SQL_MODE}'; SET FOREIGN_KEY_CHECKS = 0; SET UNIQUE_CHECKS = 0"
    ))
    .map_err(my_err(label, "setting up the load session"))?;
    let limit = statement_limit(&mut conn, label)?;
    run_part(&mut conn, label, schema, SCHEMA)?;
    conn.query_drop("START TRANSACTION")
        .map_err(my_err(label, "starting the load transaction"))?;
    for item in tables {
        let (spec, rows) = item?;
        let what = format!("loading table {}", spec.name);
        insert_statements(&spec, rows, limit, false, &mut |sql| {
            conn.query_drop(sql).map_err(my_err(label, &what))
        })?;
    }
    conn.query_drop("COMMIT")
        .map_err(my_err(label, "committing the rows"))?;
    run_part(&mut conn, label, schema, POST_DATA)?;
    conn.query_drop("SET FOREIGN_KEY_CHECKS = 1; SET UNIQUE_CHECKS = 1")
        .map_err(my_err(label, "ending the load"))?;
    Ok(())
}

/// Writes `dir/database.sql`, which `mariadb DBNAME < database.sql` (or `mysql`)
/// restores into an empty database without ostler.
pub(super) fn export(
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let (path, file) = private_file(dir, "database.sql")?;
    let io = |e: std::io::Error| Error::io_at("write", &path, e);
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(
        b"-- MySQL/MariaDB database exported by ostler.\n\
          -- Restore into an empty database with:  mariadb DBNAME < database.sql\n\n",
    )
    .map_err(io)?;
    w.write_all(part_text(schema, SCHEMA)?.as_bytes())
        .map_err(io)?;
    w.write_all(b"\nSTART TRANSACTION;\n").map_err(io)?;
    for item in tables {
        let (spec, rows) = item?;
        write!(w, "\n-- Data for {}\n", quote::ident(&spec.name)).map_err(io)?;
        insert_statements(&spec, rows, STATEMENT_BYTES, true, &mut |sql| {
            w.write_all(sql.as_bytes()).map_err(io)?;
            w.write_all(b";\n").map_err(io)
        })?;
    }
    w.write_all(b"\nCOMMIT;\n\n").map_err(io)?;
    w.write_all(part_text(schema, POST_DATA)?.as_bytes())
        .map_err(io)?;
    w.write_all(b"\nSET FOREIGN_KEY_CHECKS = 1;\nSET UNIQUE_CHECKS = 1;\n")
        .map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(vec![path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_delimiter_blocks() {
        let text = "SET a = 1;\nCREATE TABLE t (x int);\nDELIMITER ;;\nCREATE TRIGGER x BEGIN SET @a = 1; END\n;;\nDELIMITER ;\nSET b = 2;\n";
        assert_eq!(
            chunks(text).unwrap(),
            vec![
                "SET a = 1;\nCREATE TABLE t (x int);\n".to_string(),
                "CREATE TRIGGER x BEGIN SET @a = 1; END\n".to_string(),
                "SET b = 2;\n".to_string()
            ]
        );
    }

    #[test]
    fn printed_statements_start_in_the_load_mode() {
        assert!(BEGIN.contains(&format!("sql_mode = '{LOAD_SQL_MODE}'")));
    }
}
