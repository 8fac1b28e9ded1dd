//! SQLite as backups see it. The snapshot is the online backup API copying the live
//! database (WAL and all) into a private file while the service keeps writing; tables
//! are then read from that copy in primary key order (rowid order for tables without one).
//! A row's payload is its values in a small typed binary encoding (`codec::encode_refs`), so
//! integers, reals, text and blobs come back exactly, rowid included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ostler_rows::{KeyPart, Row};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::codec::encode_refs;
use super::connect::sql_err;
use super::quote;
use crate::engine::{ForeignKey, SchemaPart, Snapshot, TableSpec};
use crate::error::{Error, Result};

pub struct SqliteSnapshot {
    conn: Connection,
    copy: PathBuf,
    schema: Vec<SchemaPart>,
    tables: Vec<TableSpec>,
}

impl SqliteSnapshot {
    pub fn open(path: &Path, tmp: &Path) -> Result<SqliteSnapshot> {
        if !path.exists() {
            return Err(Error::failed(format!(
                "no SQLite database at {}",
                path.display()
            )));
        }
        let copy = tmp.join("snapshot.sqlite");
        {
            let src = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql_err(path))?;
            src.busy_timeout(Duration::from_secs(30))
                .map_err(sql_err(path))?;
            let mut dst = Connection::open(&copy).map_err(sql_err(&copy))?;
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sql_err(path))?;
            // Copy in steps of many pages; a writer between steps makes SQLite restart
            // the copy, so the result is always one consistent state.
            // A failure here is the source's or the copy's (TMPDIR full): a full
            // disk is the copy's, anything else is reported on the source.
            backup
                .run_to_completion(4096, Duration::from_millis(0), None)
                .map_err(|e| {
                    Error::sqlite_no_space(&copy, &e).unwrap_or_else(|| sql_err(path)(e))
                })?;
        }
        let conn = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err(&copy))?;
        let (schema, tables) = read_schema(&conn, &copy)?;
        Ok(SqliteSnapshot {
            conn,
            copy,
            schema,
            tables,
        })
    }
}

fn read_schema(conn: &Connection, path: &Path) -> Result<(Vec<SchemaPart>, Vec<TableSpec>)> {
    let e = sql_err(path);
    let mut stmt = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid",
        )
        .map_err(&e)?;
    let entries: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(&e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&e)?;
    let mut ddl = String::new();
    let mut tables = Vec::new();
    for (kind, name, sql) in &entries {
        ddl.push_str(sql);
        ddl.push_str(";\n");
        if kind == "table" {
            tables.push(table_spec(conn, name, sql, path)?);
        }
    }
    Ok((
        vec![SchemaPart {
            name: "schema.sql".into(),
            bytes: ddl.into_bytes(),
        }],
        tables,
    ))
}

fn table_spec(conn: &Connection, name: &str, sql: &str, path: &Path) -> Result<TableSpec> {
    let e = sql_err(path);
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", quote::ident(name)))
        .map_err(&e)?;
    let cols: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
        .map_err(&e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&e)?;
    let mut pk: Vec<(i64, String)> = cols
        .iter()
        .filter(|c| c.1 > 0)
        .map(|c| (c.1, c.0.clone()))
        .collect();
    pk.sort();
    let mut fks: Vec<ForeignKey> = Vec::new();
    let mut stmt = conn
        .prepare(&format!("PRAGMA foreign_key_list({})", quote::ident(name)))
        .map_err(&e)?;
    let rows: Vec<(i64, String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .map_err(&e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&e)?;
    for (id, table, from, to) in rows {
        if let Some(fk) = fks.get_mut(id as usize) {
            fk.columns.push(from);
            fk.ref_columns.push(to.unwrap_or_default());
        } else {
            fks.push(ForeignKey {
                columns: vec![from],
                ref_table: table,
                ref_columns: vec![to.unwrap_or_default()],
            });
        }
    }
    let _ = sql;
    Ok(TableSpec {
        name: name.to_string(),
        columns: cols.into_iter().map(|c| c.0).collect(),
        key_columns: pk.into_iter().map(|p| p.1).collect(),
        foreign_keys: fks,
    })
}

impl Snapshot for SqliteSnapshot {
    fn schema(&self) -> &[SchemaPart] {
        &self.schema
    }

    fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let e = sql_err(&self.copy);
        let cols: Vec<String> = table.columns.iter().map(|c| quote::ident(c)).collect();
        // Keyed by the declared primary key, so that a row keeps its identity when it is
        // put back (a restored row may get another rowid). Only a table without one is
        // keyed by rowid, which is then kept with the row.
        let keyed_by_rowid = table.key_columns.is_empty();
        let (select, key_count) = if keyed_by_rowid {
            (
                format!(
                    "SELECT rowid, {} FROM {} ORDER BY rowid",
                    cols.join(", "),
                    quote::ident(&table.name)
                ),
                1,
            )
        } else {
            let order: Vec<String> = table.key_columns.iter().map(|c| quote::ident(c)).collect();
            (
                format!(
                    "SELECT {}, {} FROM {} ORDER BY {}",
                    order.join(", "),
                    cols.join(", "),
                    quote::ident(&table.name),
                    order.join(", ")
                ),
                order.len(),
            )
        };
        let mut stmt = self.conn.prepare(&select).map_err(&e)?;
        let mut rows = stmt.query([]).map_err(&e)?;
        let n = table.columns.len();
        while let Some(r) = rows.next().map_err(&e)? {
            let mut key = Vec::with_capacity(key_count);
            for i in 0..key_count {
                key.push(match r.get_ref(i).map_err(&e)? {
                    ValueRef::Integer(v) => KeyPart::Int(v),
                    ValueRef::Text(t) | ValueRef::Blob(t) => KeyPart::Bytes(t.to_vec()),
                    other => KeyPart::Bytes(encode_refs(&[other])),
                });
            }
            let mut values = Vec::with_capacity(n + 1);
            if keyed_by_rowid {
                values.push(r.get_ref(0).map_err(&e)?);
            }
            for i in 0..n {
                values.push(r.get_ref(key_count + i).map_err(&e)?);
            }
            sink(Row {
                key,
                payload: encode_refs(&values),
            })?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let copy = self.copy.clone();
        drop(self);
        let _ = std::fs::remove_file(copy);
        Ok(())
    }
}
