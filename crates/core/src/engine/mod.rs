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
//!
//! Dependencies point one way: `config` names a `DatabaseKind` and validates URLs
//! with `DbUrl`; `instance` builds the `Database` from the config; nothing here reads
//! the config.

use std::path::{Path, PathBuf};

use ostler_rows::Row;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exec::Runner;

mod database;
mod mysql;
mod postgres;
mod sqlite;

pub use database::{
    mask_url, rename_if_exists, resolve_path, with_suffix, Database, DatabaseIdentity, DbUrl,
    Sibling,
};

/// Each engine's quoting (its `quote.rs`), for SQL text written outside the engines
/// (forensics' in-memory SQLite tables) and for tests against the engines themselves.
pub mod quote {
    pub use super::mysql::quote as mysql;
    pub use super::postgres::quote as postgres;
    pub use super::sqlite::quote as sqlite;
}

/// A value as a rusqlite parameter (forensics evaluates predicates in SQLite).
pub use sqlite::to_sql as sqlite_param;

/// Which engine a database is on, as `[database] kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
    #[serde(alias = "mariadb")]
    Mysql,
}

impl DatabaseKind {
    /// The engine of this kind.
    pub fn engine(self) -> &'static dyn Engine {
        match self {
            DatabaseKind::Sqlite => &sqlite::Sqlite,
            DatabaseKind::Postgres => &postgres::Postgres,
            DatabaseKind::Mysql => &mysql::Mysql,
        }
    }
}

impl std::fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.engine().name())
    }
}

/// Where a database of an engine lives: how `[database]` names it and what its
/// server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// A file, `path`, relative to the instance's dir.
    File,
    /// A database on a server, `url`: one of `schemes`, and the port when none is given.
    Server {
        schemes: &'static [&'static str],
        default_port: u16,
        /// The longest database name the server takes, in bytes.
        max_name_len: usize,
        /// The environment variable the engine's own tools read the password from.
        password_env: &'static str,
    },
}

/// How to restore an export with the engine's own tools, for the export's README.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NativeRestore {
    /// The engine as people name it: `PostgreSQL`.
    pub engine: &'static str,
    /// What to run, in order.
    pub commands: &'static [&'static str],
    /// Another way, when there is one.
    pub alternative: Option<&'static str>,
}

/// One database engine: everything ostler does that depends on the kind of database.
/// One value per kind (`DatabaseKind::engine`, `Database::engine`); the methods that
/// take a `Database` expect one of this engine's kind and refuse any other.
pub trait Engine: Sync {
    fn kind(&self) -> DatabaseKind;
    /// The kind's name in config and messages: `sqlite`, `postgres`, `mysql`.
    fn name(&self) -> &'static str;
    fn address(&self) -> Address;
    /// Connection arguments for the engine's own client tools (never the password).
    fn client_args(&self, url: &DbUrl) -> Vec<String>;

    // ---- backups ----

    /// Opens a consistent snapshot of `db`. `tmp` is a private scratch directory.
    fn open_snapshot(
        &self,
        db: &Database,
        tmp: &Path,
        runner: &Runner,
    ) -> Result<Box<dyn Snapshot>>;
    /// Loads a whole database (schema, then every table's rows, then constraints)
    /// into `db`, which must be empty (a fresh SQLite path, or an empty server
    /// database). `database` overrides the server database name.
    fn load(
        &self,
        db: &Database,
        database: Option<&str>,
        schema: &[SchemaPart],
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()>;
    /// Writes the database as the engine's own native file(s) into `dir`, restorable
    /// with no ostler. Returns the files written.
    fn export(
        &self,
        schema: &[SchemaPart],
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
        dir: &Path,
    ) -> Result<Vec<PathBuf>>;
    /// How to restore what `export` wrote.
    fn native_restore(&self) -> NativeRestore;
    /// A database beside `like` (on its server, or a file in `dir`) named `name`,
    /// for a restore test.
    fn scratch(&self, like: &Database, name: &str, dir: &Path) -> Result<Database>;

    // ---- forensics ----

    /// Decodes a row payload into values, in the table's `columns` order.
    fn decode(&self, payload: &[u8]) -> Result<Vec<SqlValue>>;
    /// The SQLite column affinity that makes decoded values compare as they would in
    /// this engine (`""`: none, values keep their own type; ` NUMERIC`: numbers kept
    /// as text compare as numbers).
    fn column_affinity(&self) -> &'static str;
    /// What opens a write transaction in the engine's client, in printed statements
    /// (with the session settings the literals assume, where the engine needs them).
    fn begin(&self) -> &'static str;
    /// The statement that puts one row back, for a person to read or run in the
    /// engine's client: `INSERT INTO t (cols) VALUES (literals);` from decoded
    /// `values` (a SQLite rowid first where the payload carries one), quoted by the
    /// engine's `quote.rs`.
    fn insert_statement(&self, table: &TableSpec, values: &[SqlValue]) -> String;
    /// Inserts rows into existing tables of the live `db`, tables in the order given,
    /// in one transaction: all of them or none. Rows are the engine's own stored text,
    /// written through its driver as `load` writes them (SQLite parameters, PostgreSQL
    /// COPY, MySQL INSERT of the stored tuples): never SQL text through a shell.
    fn insert_rows(
        &self,
        db: &Database,
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()>;

    // ---- around an instance (`admin.rs`) ----

    /// Runs SQL with the engine's client and returns what it printed
    /// (tab-separated, no headers). `database` overrides the database's own name.
    fn run_sql(
        &self,
        db: &Database,
        runner: &Runner,
        database: Option<&str>,
        sql: &str,
    ) -> Result<String>;
    /// Runs a maintenance statement (one or several, `;`-separated) through the
    /// engine's driver in one transaction, in the session the engine's own client
    /// would have, and returns the rows it inserted, updated or deleted as the engine
    /// counts them. On an error the transaction is rolled back and the error names the
    /// database and carries the server's message.
    fn execute(&self, db: &Database, runner: &Runner, statement: &str) -> Result<u64>;
    /// Runs one read-only query through the engine's driver and returns its rows as
    /// text (NULL as `None`), for ostler's own bookkeeping tables in the database.
    fn query(&self, db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>>;
    /// Whether the database has a table of this name (in its default schema).
    fn has_table(&self, db: &Database, runner: &Runner, name: &str) -> Result<bool>;
    /// Writes a dump of everything in the database into `dest_dir` (created
    /// owner-only), for the safety copy taken before destructive steps.
    fn safety_dump(
        &self,
        db: &Database,
        runner: &Runner,
        dest_dir: &Path,
        stem: &str,
    ) -> Result<PathBuf>;
    /// Whether the database exists (the SQLite file, or the database on its server).
    fn exists(&self, db: &Database, runner: &Runner) -> Result<bool>;
    /// Whether a swap would bring anything in from this database.
    fn holds_data(&self, db: &Database, runner: &Runner) -> Result<bool> {
        self.exists(db, runner)
    }
    /// Empties the database: SQLite's file is removed; a server database is dropped
    /// and created again, empty.
    fn nuke(&self, db: &Database, runner: &Runner) -> Result<()>;
    /// Removes the database and everything in it.
    fn remove(&self, db: &Database, runner: &Runner) -> Result<()>;
    /// Puts `incoming` in `db`'s place and `db` at `aside` (see `Database::swap_in`).
    fn swap_in(
        &self,
        db: &Database,
        incoming: &Database,
        aside: &Database,
        runner: &Runner,
    ) -> Result<()>;
}

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

/// The rows of one table to load: its spec and its rows in key order.
pub type TableRows<'a> = (TableSpec, Box<dyn Iterator<Item = Result<Row>> + 'a>);

/// Opens a consistent snapshot of `db` (see [`Engine::open_snapshot`]).
pub fn open_snapshot(db: &Database, tmp: &Path, runner: &Runner) -> Result<Box<dyn Snapshot>> {
    db.engine().open_snapshot(db, tmp, runner)
}

/// Loads a whole database into the empty `db` (see [`Engine::load`]).
pub fn load(
    db: &Database,
    database: Option<&str>,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    db.engine().load(db, database, schema, tables)
}

/// Writes the database as `kind`'s native file(s) into `dir` (see [`Engine::export`]).
pub fn export(
    kind: DatabaseKind,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    kind.engine().export(schema, tables, dir)
}

/// Decodes a row payload of `kind` into values (see [`Engine::decode`]).
pub fn decode(kind: DatabaseKind, payload: &[u8]) -> Result<Vec<SqlValue>> {
    kind.engine().decode(payload)
}

/// Inserts rows into the existing tables of the live `db` (see [`Engine::insert_rows`]).
pub fn insert_rows(
    db: &Database,
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    db.engine().insert_rows(db, tables)
}

/// `INSERT INTO table (columns) VALUES (literals);` from names and values already quoted.
fn insert_sql(table: &str, columns: &[String], literals: impl Iterator<Item = String>) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES ({});",
        columns.join(", "),
        literals.collect::<Vec<_>>().join(", ")
    )
}

/// What the engines do around an instance, each in its own `admin.rs`.
impl Database {
    /// This database's engine.
    pub fn engine(&self) -> &'static dyn Engine {
        self.kind().engine()
    }

    /// Runs SQL with the engine's client and returns what it printed (tab-separated,
    /// no headers). `database` overrides the instance's own database name.
    pub fn run_sql(&self, runner: &Runner, database: Option<&str>, sql: &str) -> Result<String> {
        self.engine().run_sql(self, runner, database, sql)
    }

    /// Writes a dump of everything in the database into `dest_dir` (created
    /// owner-only), for the safety copy taken before destructive steps. Returns the
    /// file written.
    pub fn safety_dump(&self, runner: &Runner, dest_dir: &Path, stem: &str) -> Result<PathBuf> {
        self.engine().safety_dump(self, runner, dest_dir, stem)
    }

    /// Whether the database exists (the SQLite file, or the database on its server).
    pub fn exists(&self, runner: &Runner) -> Result<bool> {
        self.engine().exists(self, runner)
    }

    /// Empties the database: SQLite's file is removed; a server database is dropped and
    /// created again, empty.
    pub fn nuke(&self, runner: &Runner) -> Result<()> {
        self.engine().nuke(self, runner)
    }

    /// Whether a swap would bring anything in from this database: the SQLite file, the
    /// server database; for MariaDB a database with a table in it (a swap's
    /// `RENAME TABLE` empties the side database before it is dropped).
    pub fn holds_data(&self, runner: &Runner) -> Result<bool> {
        self.engine().holds_data(self, runner)
    }

    /// Removes the database and everything in it (a restore's side or aside).
    pub fn remove(&self, runner: &Runner) -> Result<()> {
        self.engine().remove(self, runner)
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
        self.engine().swap_in(self, incoming, aside, runner)
    }
}

#[cfg(test)]
mod tests;
