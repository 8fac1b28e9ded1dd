//! The database engines: everything ostler does that depends on which engine holds
//! the data (SQLite, PostgreSQL, MySQL/MariaDB) lives here, one folder per engine,
//! and nothing outside matches on the kind of database.
//!
//! As backups see them, an engine opens a consistent snapshot, lists its tables with
//! their keys, streams each table's rows in key order, and loads rows back. Each
//! engine keeps rows in its own text so that nothing is lost in translation and a
//! restore hands them straight back to the engine: SQLite rows in a small typed binary
//! encoding, PostgreSQL rows as COPY text lines, MySQL / MariaDB rows as SQL value
//! tuples `(1,'a',NULL)`. The schema is kept as the engine's own DDL text in named
//! parts. Around an instance, an engine runs a maintenance statement with its own
//! client, takes a safety dump, nukes, removes and swaps databases
//! (`database.rs` holds what is the same for all: the `Database` value, URLs,
//! identities, sibling names).

use std::path::{Path, PathBuf};

use ostler_rows::Row;
use serde::{Deserialize, Serialize};

use crate::config::DatabaseKind;
use crate::error::{Error, Result};
use crate::exec::Runner;

mod database;
pub mod mysql;
pub mod postgres;
pub mod sqlite;

pub use database::{
    mask_url, rename_if_exists, resolve_path, with_suffix, Database, DatabaseIdentity, DbUrl,
    Sibling,
};

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
    kind: DatabaseKind,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    match kind {
        DatabaseKind::Sqlite => sqlite::export(schema, tables, dir),
        DatabaseKind::Postgres => postgres::export(schema, tables, dir),
        DatabaseKind::Mysql => mysql::export(schema, tables, dir),
    }
}

/// Decodes a row payload into values, in `table.columns` order.
pub fn decode(kind: DatabaseKind, payload: &[u8]) -> Result<Vec<SqlValue>> {
    match kind {
        DatabaseKind::Sqlite => sqlite::decode(payload),
        DatabaseKind::Postgres => postgres::decode(payload),
        DatabaseKind::Mysql => mysql::decode(payload),
    }
}

/// What the engines do around an instance, each in its own `admin.rs`.
impl Database {
    /// Runs SQL with the engine's client and returns what it printed (tab-separated,
    /// no headers). `database` overrides the instance's own database name.
    pub fn run_sql(&self, runner: &Runner, database: Option<&str>, sql: &str) -> Result<String> {
        match self {
            Database::Sqlite { .. } => sqlite::run_sql(self, runner, sql),
            Database::Postgres { .. } => postgres::run_sql(self, runner, database, sql),
            Database::Mysql { .. } => mysql::run_sql(self, runner, database, sql),
        }
    }

    /// Writes a dump of everything in the database into `dest_dir` (created
    /// owner-only), for the safety copy taken before destructive steps. Returns the
    /// file written.
    pub fn safety_dump(&self, runner: &Runner, dest_dir: &Path, stem: &str) -> Result<PathBuf> {
        match self {
            Database::Sqlite { .. } => sqlite::safety_dump(self, dest_dir, stem),
            Database::Postgres { .. } => postgres::safety_dump(self, runner, dest_dir, stem),
            Database::Mysql { .. } => mysql::safety_dump(self, runner, dest_dir, stem),
        }
    }

    /// Whether the database exists (the SQLite file, or the database on its server).
    pub fn exists(&self, runner: &Runner) -> Result<bool> {
        match self {
            Database::Sqlite { .. } => sqlite::exists(self),
            Database::Postgres { .. } => postgres::exists(self, runner),
            Database::Mysql { .. } => mysql::exists(self, runner),
        }
    }

    /// Empties the database: SQLite's file is removed; a server database is dropped and
    /// created again, empty.
    pub fn nuke(&self, runner: &Runner) -> Result<()> {
        match self {
            Database::Sqlite { .. } => sqlite::nuke(self),
            Database::Postgres { .. } => postgres::nuke(self, runner),
            Database::Mysql { .. } => mysql::nuke(self, runner),
        }
    }

    /// Whether a swap would bring anything in from this database: the SQLite file, the
    /// server database; for MariaDB a database with a table in it (a swap's
    /// `RENAME TABLE` empties the side database before it is dropped).
    pub fn holds_data(&self, runner: &Runner) -> Result<bool> {
        match self {
            Database::Mysql { .. } => mysql::holds_data(self, runner),
            _ => self.exists(runner),
        }
    }

    /// Removes the database and everything in it (a restore's side or aside).
    pub fn remove(&self, runner: &Runner) -> Result<()> {
        match self {
            Database::Sqlite { .. } => sqlite::remove(self),
            Database::Postgres { .. } => postgres::remove(self, runner),
            Database::Mysql { .. } => mysql::remove(self, runner),
        }
    }

    /// Puts `incoming` in this database's place and this one at `aside` (which must
    /// not exist), as one atomic step where the engine has one. Either side may be
    /// missing: a live database that is gone is not put aside, an incoming one that
    /// is gone is not brought in, so undoing a swap is swapping back.
    pub fn swap_in(&self, incoming: &Database, aside: &Database, runner: &Runner) -> Result<()> {
        if incoming.kind() != self.kind() || aside.kind() != self.kind() {
            return Err(Error::failed(format!(
                "internal: cannot swap {} with a database of another engine",
                self.locator()
            )));
        }
        match self {
            Database::Sqlite { .. } => sqlite::swap_in(self, incoming, aside),
            Database::Postgres { .. } => postgres::swap_in(self, incoming, aside, runner),
            Database::Mysql { .. } => mysql::swap_in(self, incoming, aside, runner),
        }
    }
}
