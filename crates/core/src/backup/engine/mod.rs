//! Database engines as backups see them: open a consistent snapshot, list its tables
//! with their keys, stream each table's rows in key order, and load rows back.
//!
//! Each engine keeps rows in its own text so that nothing is lost in translation and a
//! restore hands them straight back to the engine: SQLite rows in a small typed binary
//! encoding (`sqlite.rs`), PostgreSQL rows as COPY text lines (`postgres.rs`), MySQL /
//! MariaDB rows as SQL value tuples `(1,'a',NULL)` (`mysql.rs`). The schema is kept
//! as the engine's own DDL text in named parts.

use std::path::Path;

use ostler_rows::Row;
use serde::{Deserialize, Serialize};

use crate::database::Database;
use crate::error::Result;

pub mod mysql;
pub mod postgres;
pub mod sqlite;

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    /// The table's name as the engine quotes it in our SQL: `entries` (SQLite, MySQL),
    /// `public.entries` (PostgreSQL, schema-qualified).
    pub name: String,
    pub columns: Vec<String>,
    /// Primary key columns; empty when the table has none (then the whole row is the
    /// key, with a counter for duplicates).
    pub key_columns: Vec<String>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
}

/// `columns` of this table reference `ref_columns` of `ref_table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// A named piece of the engine's own DDL (`schema.sql`, `pre-data.sql`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaPart {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A value decoded from a row payload, engine-neutral (for forensics and checks).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A consistent, read-only view of one database, open until `finish`.
pub trait Snapshot: Send {
    fn schema(&self) -> &[SchemaPart];
    fn tables(&self) -> &[TableSpec];
    /// Streams the table's rows into `sink`, in ascending key order where the engine
    /// can give it (the caller checks and sorts when it could not).
    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()>;
    /// Ends the snapshot (commits the read transaction, removes temp files).
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Opens a consistent snapshot of `db`. `tmp` is a private scratch directory.
pub fn open_snapshot(db: &Database, tmp: &Path) -> Result<Box<dyn Snapshot>> {
    match db {
        Database::Sqlite { path } => Ok(Box::new(sqlite::SqliteSnapshot::open(path, tmp)?)),
        Database::Postgres { .. } => Ok(Box::new(postgres::PgSnapshot::open(db, None)?)),
        Database::Mysql { .. } => Ok(Box::new(mysql::MysqlSnapshot::open(db, None)?)),
    }
}

/// The rows of one table to load: its spec and its rows in key order.
pub type TableRows<'a> = (TableSpec, Box<dyn Iterator<Item = Result<Row>> + 'a>);

/// Loads a whole database (schema, then every table's rows, then constraints) into
/// `db`, which must be empty (a fresh SQLite path, or an empty server database).
/// `database` overrides the server database name (scratch databases).
pub fn load(
    db: &Database,
    database: Option<&str>,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    match db {
        Database::Sqlite { path } => sqlite::load(path, schema, tables),
        Database::Postgres { .. } => postgres::load(db, database, schema, tables),
        Database::Mysql { .. } => mysql::load(db, database, schema, tables),
    }
}

/// Writes the database as the engine's own native file(s) into `dir`, restorable with
/// no ostler (`sqlite3`, `psql`, `mysql`). Returns the files written.
pub fn export(
    kind: crate::config::DatabaseKind,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    match kind {
        crate::config::DatabaseKind::Sqlite => {
            let path = dir.join("database.sqlite");
            sqlite::load(&path, schema, tables)?;
            // SQLite creates its files 0644; an export holds the whole database.
            ostler_repo::private::narrow(&path)
                .map_err(|e| crate::Error::io_at("chmod", &path, e))?;
            Ok(vec![path])
        }
        crate::config::DatabaseKind::Postgres => postgres::export(schema, tables, dir),
        crate::config::DatabaseKind::Mysql => mysql::export(schema, tables, dir),
    }
}

/// Decodes a row payload into values, in `table.columns` order.
pub fn decode(kind: crate::config::DatabaseKind, payload: &[u8]) -> Result<Vec<SqlValue>> {
    match kind {
        crate::config::DatabaseKind::Sqlite => sqlite::decode(payload),
        crate::config::DatabaseKind::Postgres => postgres::decode(payload),
        crate::config::DatabaseKind::Mysql => mysql::decode(payload),
    }
}
