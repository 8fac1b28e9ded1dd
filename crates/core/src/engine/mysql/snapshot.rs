//! MySQL and MariaDB as backups see them.
//!
//! A snapshot is one `REPEATABLE READ` transaction started `WITH CONSISTENT SNAPSHOT,
//! READ ONLY` (what `mysqldump --single-transaction` does; consistent for InnoDB
//! tables, not for MyISAM and other non-transactional engines). The schema is the
//! server's own DDL: `SHOW CREATE TABLE` for every base table (AUTO_INCREMENT counters
//! included), then routines and views, in part `schema.sql`; triggers, which must not
//! fire while rows are loaded, in part `post-data.sql`. Definers are left out, as
//! pg_dump's `--no-owner` does, so a restore by another user works.
//!
//! A row's payload is an SQL value tuple, `(1,'it\'s',NULL,X'00FF')`, ready for
//! `INSERT ... VALUES`: numbers as the server prints them, binary strings (blobs,
//! `BINARY`, `BIT`, geometry) as hex literals so any bytes survive, everything else
//! as a string escaped exactly as the server's `QUOTE()` escapes (backslash, quote,
//! NUL and Ctrl-Z), which lets a table without a primary key be ordered by its
//! payload on the server (`whole_row_order`). Strings use backslash escapes, so
//! whatever runs them sets `sql_mode` first (our header does, as mysqldump's does).
//!
//! The session prints TIMESTAMPs in UTC (`time_zone = '+00:00'`, as mysqldump does),
//! so the same data gives the same payload whatever the server's zone.

use std::collections::HashMap;

use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use ostler_rows::{KeyPart, Row};

use super::codec::{column_of, encode_value, key_part, Column, Kind};
use super::connect::{cell, connect, my_err, query_text};
use super::quote;
use super::schema::{read_routines, read_sequences, read_triggers, read_views, SCHEMA_HEADER};
use crate::engine::{Database, ForeignKey, SchemaPart, Snapshot, TableSpec};
use crate::error::{Error, Result};

pub(super) const SCHEMA: &str = "schema.sql";
pub(super) const POST_DATA: &str = "post-data.sql";

pub struct MysqlSnapshot {
    conn: Conn,
    label: String,
    schema: Vec<SchemaPart>,
    tables: Vec<TableSpec>,
    /// Per table name, per column of `columns`.
    columns: HashMap<String, Vec<Column>>,
}

impl MysqlSnapshot {
    pub fn open(db: &Database, database: Option<&str>) -> Result<MysqlSnapshot> {
        let (mut conn, label) = connect(db, database)?;
        conn.query_drop(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
             START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        )
        .map_err(my_err(&label, "starting the snapshot transaction"))?;
        let Listing {
            tables,
            columns,
            views,
            sequences,
        } = read_tables(&mut conn, &label)?;
        let mut ddl = String::from(SCHEMA_HEADER);
        ddl.push_str(&read_sequences(&mut conn, &label, &sequences)?);
        for t in &tables {
            let what = format!("reading the definition of table {}", t.name);
            let rows = query_text(
                &mut conn,
                &label,
                &what,
                &format!("SHOW CREATE TABLE {}", quote::ident(&t.name)),
            )?;
            let create = rows
                .first()
                .and_then(|r| r.get(1).cloned().flatten())
                .ok_or_else(|| {
                    Error::failed(format!("{label}: {what}: the server returned nothing"))
                })?;
            ddl.push_str(&format!("\n{create};\n"));
        }
        ddl.push_str(&read_routines(&mut conn, &label)?);
        ddl.push_str(&read_views(&mut conn, &label, &views)?);
        let mut post = read_triggers(&mut conn, &label)?;
        // The server names objects of this database with its name now and then
        // (MariaDB: `DEFAULT nextval(`db`.`seq`)`); a restore into another database
        // must find its own.
        let current = query_text(
            &mut conn,
            &label,
            "reading the database name",
            "SELECT DATABASE()",
        )?;
        let current = current.first().map(|r| cell(r, 0)).unwrap_or_default();
        if !current.is_empty() {
            let qualifier = format!("{}.", quote::ident(&current));
            ddl = ddl.replace(&qualifier, "");
            post = post.replace(&qualifier, "");
        }
        Ok(MysqlSnapshot {
            conn,
            label,
            schema: vec![
                SchemaPart {
                    name: SCHEMA.into(),
                    bytes: ddl.into_bytes(),
                },
                SchemaPart {
                    name: POST_DATA.into(),
                    bytes: post.into_bytes(),
                },
            ],
            tables,
            columns,
        })
    }
}

/// What a database holds besides routines and triggers.
struct Listing {
    tables: Vec<TableSpec>,
    columns: HashMap<String, Vec<Column>>,
    views: Vec<String>,
    /// MariaDB's `CREATE SEQUENCE` objects.
    sequences: Vec<String>,
}

fn read_tables(conn: &mut Conn, label: &str) -> Result<Listing> {
    let what = "listing tables";
    let mut names = Vec::new();
    let mut views = Vec::new();
    let mut sequences = Vec::new();
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )? {
        match cell(&row, 1).as_str() {
            // A system-versioned table (MariaDB) is taken as it is now; its history
            // is not kept (as mysqldump does by default).
            "BASE TABLE" | "SYSTEM VERSIONED" => names.push(cell(&row, 0)),
            "VIEW" => views.push(cell(&row, 0)),
            "SEQUENCE" => sequences.push(cell(&row, 0)),
            other => {
                return Err(Error::failed(format!(
                    "{label}: {what}: {} is a {other}, which ostler cannot back up yet",
                    cell(&row, 0)
                )))
            }
        }
    }
    names.sort();
    views.sort();
    sequences.sort();
    let mut tables: Vec<TableSpec> = names
        .iter()
        .map(|n| TableSpec {
            name: n.clone(),
            columns: Vec::new(),
            key_columns: Vec::new(),
            foreign_keys: Vec::new(),
        })
        .collect();
    let index: HashMap<String, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let mut columns: Vec<Vec<Column>> = vec![Vec::new(); tables.len()];
    // Generated columns are computed on load, and refuse values.
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND COALESCE(GENERATION_EXPRESSION, '') = '' \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )? {
        if let Some(&i) = index.get(&cell(&row, 0)) {
            tables[i].columns.push(cell(&row, 1));
            columns[i].push(column_of(&cell(&row, 2), &cell(&row, 3)));
        }
    }
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX",
    )? {
        if let Some(&i) = index.get(&cell(&row, 0)) {
            tables[i].key_columns.push(cell(&row, 1));
        }
    }
    let mut last: Option<(usize, String)> = None;
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, \
                REFERENCED_COLUMN_NAME, REFERENCED_TABLE_SCHEMA = DATABASE() \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
    )? {
        let Some(&i) = index.get(&cell(&row, 0)) else { continue };
        let constraint = cell(&row, 1);
        let same = last.as_ref().is_some_and(|(t, c)| *t == i && *c == constraint);
        if !same {
            let ref_table = if cell(&row, 6) == "1" {
                cell(&row, 4)
            } else {
                format!("{}.{}", cell(&row, 3), cell(&row, 4))
            };
            tables[i].foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table,
                ref_columns: Vec::new(),
            });
            last = Some((i, constraint));
        }
        if let Some(fk) = tables[i].foreign_keys.last_mut() {
            fk.columns.push(cell(&row, 2));
            fk.ref_columns.push(cell(&row, 5));
        }
    }
    let columns = names.into_iter().zip(columns).collect();
    Ok(Listing {
        tables,
        columns,
        views,
        sequences,
    })
}

/// The ORDER BY term of a key column: native where its order is the byte order of
/// our key part, else the bytes of its text (what the key part holds). The server
/// cannot use the primary key index for the latter, so a text-keyed table is sorted
/// by the server (as it would otherwise be by the caller).
fn key_order_term(name: &str, column: Column) -> String {
    let c = quote::ident(name);
    if column.natural_order {
        c
    } else {
        format!("CAST(CONVERT({c} USING utf8mb4) AS BINARY)")
    }
}

/// Orders a table without a primary key (whose key is the payload) by its key: the
/// bytes of the row's payload, built on the server as `encode_value` builds it, then
/// a hash of them. The server compares only the first `max_sort_length` bytes of a
/// sort key (16 KB here; longer costs sort buffer), so rows alike that far come out
/// in hash order: identical rows are still next to each other, as the duplicate
/// counter needs, and the caller, finding the order broken, sorts. It does so too
/// where the server prints a value differently from the driver (BIT).
fn whole_row_order(names: &[String], columns: &[Column]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(columns)
        .map(|(name, column)| {
            let c = quote::ident(name);
            match column.kind {
                Kind::Int | Kind::UnsignedBig | Kind::Number => {
                    format!("IFNULL(CAST({c} AS CHAR), 'NULL')")
                }
                Kind::Binary => format!("IFNULL(CONCAT('X''', HEX({c}), ''''), 'NULL')"),
                Kind::Text => format!("CONVERT(QUOTE({c}) USING utf8mb4)"),
            }
        })
        .collect();
    let row = format!(
        "CAST(CONCAT('(', {}, ')') AS BINARY)",
        parts.join(", ',', ")
    );
    format!("{row}, MD5({row})")
}

impl Snapshot for MysqlSnapshot {
    fn schema(&self) -> &[SchemaPart] {
        &self.schema
    }

    fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let label = &self.label;
        let name = &table.name;
        let columns = self
            .columns
            .get(name)
            .filter(|c| c.len() == table.columns.len() && !c.is_empty())
            .ok_or_else(|| {
                Error::failed(format!(
                    "{label}: table {name} is not part of this snapshot"
                ))
            })?;
        let mut key_at = Vec::with_capacity(table.key_columns.len());
        for k in &table.key_columns {
            let i = table.columns.iter().position(|c| c == k).ok_or_else(|| {
                Error::failed(format!(
                    "{label}: table {name}: key column {k} is not a stored column"
                ))
            })?;
            key_at.push(i);
        }
        let order = if key_at.is_empty() {
            whole_row_order(&table.columns, columns)
        } else {
            key_at
                .iter()
                .map(|&i| key_order_term(&table.columns[i], columns[i]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cols: Vec<String> = table.columns.iter().map(|c| quote::ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {order}",
            cols.join(", "),
            quote::ident(name)
        );
        let what = format!("reading table {name}");
        let e = my_err(label, &what);
        let bad = |detail: String| Error::failed(format!("{label}: {what}: {detail}"));
        // Streams: the driver reads each row off the socket as it is asked for.
        let mut result = self.conn.query_iter(sql).map_err(&e)?;
        let mut previous: Vec<u8> = Vec::new();
        let mut duplicates: i64 = 0;
        let mut first = true;
        for row in result.by_ref() {
            let values = row.map_err(&e)?.unwrap_raw();
            if values.len() != columns.len() {
                return Err(bad(format!(
                    "a row has {} values, expected {}",
                    values.len(),
                    columns.len()
                )));
            }
            let mut payload = Vec::with_capacity(previous.len().max(64));
            payload.push(b'(');
            for (i, (value, column)) in values.iter().zip(columns).enumerate() {
                if i > 0 {
                    payload.push(b',');
                }
                encode_value(
                    &mut payload,
                    value.as_ref().unwrap_or(&Value::NULL),
                    column.kind,
                );
            }
            payload.push(b')');
            let key = if key_at.is_empty() {
                if !first && payload == previous {
                    duplicates += 1;
                } else {
                    duplicates = 0;
                    previous.clone_from(&payload);
                }
                first = false;
                vec![KeyPart::Bytes(payload.clone()), KeyPart::Int(duplicates)]
            } else {
                let mut key = Vec::with_capacity(key_at.len());
                for &i in &key_at {
                    let value = values[i].as_ref().unwrap_or(&Value::NULL);
                    key.push(key_part(value, columns[i].kind).map_err(&bad)?);
                }
                key
            };
            sink(Row { key, payload })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.conn
            .query_drop("COMMIT")
            .map_err(my_err(&self.label, "ending the snapshot transaction"))
    }
}
