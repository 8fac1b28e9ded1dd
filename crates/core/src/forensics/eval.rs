//! Evaluating a user's SQL predicate on rows read from backups. The rows come out of
//! the repository in each engine's own text; rather than restore a backup into a live
//! server to ask it, rows are decoded and dropped in batches into an in-memory SQLite
//! table with the table's name and columns, and SQLite answers `WHERE (predicate)`.
//! That is fast and needs no server, at the price of SQLite's dialect: for PostgreSQL
//! and MySQL backups the columns get NUMERIC affinity, so `id = 5` and `name = 'DC'`
//! behave as expected; engine-specific functions in a predicate are not available.

use ostler_rows::{Key, Row};
use rusqlite::Connection;

use crate::engine::quote::sqlite::ident as quote;
use crate::engine::{self, sqlite_param as to_sql, DatabaseKind, SqlValue, TableSpec};
use crate::error::{Error, Result};

const BATCH: usize = 4096;

/// Decodes a payload into the table's column values (the rowid of SQLite rowid tables
/// is dropped).
pub fn values(kind: DatabaseKind, spec: &TableSpec, payload: &[u8]) -> Result<Vec<SqlValue>> {
    let mut v = engine::decode(kind, payload)?;
    if v.len() == spec.columns.len() + 1 {
        v.remove(0);
    }
    if v.len() != spec.columns.len() {
        return Err(Error::failed(format!(
            "table {}: a row has {} values for {} columns",
            spec.name,
            v.len(),
            spec.columns.len()
        )));
    }
    Ok(v)
}

/// The table's name without a schema (`public.entries` -> `entries`).
pub fn short_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// A value as text, to compare keys across engines' representations.
pub fn canonical(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "\u{0}NULL".into(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => t.clone(),
        SqlValue::Blob(b) => format!("x'{}'", hex::encode(b)),
    }
}

/// A row the predicate matched: as stored (key and payload, which a partial restore
/// writes back unchanged) and decoded.
#[derive(Debug, Clone)]
pub struct Matched {
    pub key: Key,
    pub payload: Vec<u8>,
    pub values: Vec<SqlValue>,
}

pub struct Matcher {
    conn: Connection,
    insert_sql: String,
    select_sql: String,
    kind: DatabaseKind,
    spec: TableSpec,
    batch: Vec<Matched>,
}

impl Matcher {
    /// Prepares `predicate` for rows of `spec`; a predicate SQLite cannot read is an
    /// error naming it.
    pub fn new(kind: DatabaseKind, spec: &TableSpec, predicate: &str) -> Result<Matcher> {
        let conn = Connection::open_in_memory()
            .map_err(|e| Error::failed(format!("in-memory SQLite: {e}")))?;
        let affinity = kind.engine().column_affinity();
        let cols: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("{}{affinity}", quote(c)))
            .collect();
        let table = quote(short_name(&spec.name));
        conn.execute_batch(&format!("CREATE TABLE {table} ({});", cols.join(", ")))
            .map_err(|e| Error::failed(format!("table {}: {e}", spec.name)))?;
        let marks: Vec<String> = (0..=spec.columns.len())
            .map(|i| format!("?{}", i + 1))
            .collect();
        let insert_sql = format!(
            "INSERT INTO {table} (rowid, {}) VALUES ({})",
            spec.columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            marks.join(", ")
        );
        let select_sql = format!("SELECT rowid FROM {table} WHERE ({predicate})");
        conn.prepare(&select_sql).map_err(|e| {
            Error::user(format!(
                "cannot use the predicate `{predicate}` on table {}: {e}",
                spec.name
            ))
            .with_hint(format!(
                "columns of {}: {}; the predicate is evaluated by SQLite",
                spec.name,
                spec.columns.join(", ")
            ))
        })?;
        Ok(Matcher {
            conn,
            insert_sql,
            select_sql,
            kind,
            spec: spec.clone(),
            batch: Vec::new(),
        })
    }

    /// Adds a row; returns the rows of any batch this completed that matched.
    pub fn push(&mut self, row: Row) -> Result<Vec<Matched>> {
        let values = values(self.kind, &self.spec, &row.payload)?;
        self.batch.push(Matched {
            key: row.key,
            payload: row.payload,
            values,
        });
        if self.batch.len() >= BATCH {
            self.flush()
        } else {
            Ok(vec![])
        }
    }

    /// Evaluates what is pending; returns the matching rows.
    pub fn flush(&mut self) -> Result<Vec<Matched>> {
        if self.batch.is_empty() {
            return Ok(vec![]);
        }
        let err = |e: rusqlite::Error| Error::failed(format!("evaluating the predicate: {e}"));
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut ins = tx.prepare_cached(&self.insert_sql).map_err(err)?;
            for (i, m) in self.batch.iter().enumerate() {
                let mut params: Vec<rusqlite::types::Value> =
                    vec![rusqlite::types::Value::Integer(i as i64 + 1)];
                params.extend(m.values.iter().map(to_sql));
                ins.execute(rusqlite::params_from_iter(params))
                    .map_err(err)?;
            }
        }
        let hits: Vec<i64> = {
            let mut sel = tx.prepare_cached(&self.select_sql).map_err(err)?;
            let rows = sel.query_map([], |r| r.get::<_, i64>(0)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)?
        };
        tx.execute_batch(&format!(
            "DELETE FROM {};",
            quote(short_name(&self.spec.name))
        ))
        .map_err(err)?;
        tx.commit().map_err(err)?;
        let mut batch = std::mem::take(&mut self.batch);
        let mut out = Vec::with_capacity(hits.len());
        let mut hits = hits;
        hits.sort_unstable();
        for h in hits.into_iter().rev() {
            out.push(batch.swap_remove((h - 1) as usize));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
