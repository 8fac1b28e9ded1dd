//! SQLite: a file. Backups copy it with the online backup API and read tables from
//! the copy; rows are kept in a small typed binary encoding; maintenance goes through
//! the `sqlite3` shell.

mod admin;
mod codec;
mod connect;
mod load;
pub mod quote;
mod snapshot;

use std::path::{Path, PathBuf};

pub use codec::to_sql;
use snapshot::SqliteSnapshot;

use super::{
    Address, Database, DatabaseKind, DbUrl, Engine, NativeRestore, SchemaPart, Snapshot, SqlValue,
    TableRows, TableSpec,
};
use crate::error::Result;
use crate::exec::Runner;

/// The SQLite engine.
pub struct Sqlite;

impl Engine for Sqlite {
    fn kind(&self) -> DatabaseKind {
        DatabaseKind::Sqlite
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn address(&self) -> Address {
        Address::File
    }

    fn client_args(&self, _url: &DbUrl) -> Vec<String> {
        // The `sqlite3` shell takes the file, not a connection.
        vec![]
    }

    fn open_snapshot(
        &self,
        db: &Database,
        tmp: &Path,
        _runner: &Runner,
    ) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(SqliteSnapshot::open(connect::file(db)?, tmp)?))
    }

    fn load(
        &self,
        db: &Database,
        _database: Option<&str>,
        schema: &[SchemaPart],
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()> {
        load::load(connect::file(db)?, schema, tables)
    }

    fn export(
        &self,
        schema: &[SchemaPart],
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
        dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        load::export(schema, tables, dir)
    }

    fn native_restore(&self) -> NativeRestore {
        NativeRestore {
            engine: "SQLite",
            commands: &["cp database.sqlite /path/to/data.db"],
            alternative: Some("sqlite3 database.sqlite .dump"),
        }
    }

    fn scratch(&self, _like: &Database, name: &str, dir: &Path) -> Result<Database> {
        Ok(Database::Sqlite {
            path: dir.join(format!("{name}.sqlite")),
        })
    }

    fn decode(&self, payload: &[u8]) -> Result<Vec<SqlValue>> {
        codec::decode(payload)
    }

    fn column_affinity(&self) -> &'static str {
        // Decoded SQLite values keep their own types, as in the live table.
        ""
    }

    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE;"
    }

    fn insert_statement(&self, table: &TableSpec, values: &[SqlValue]) -> String {
        quote::insert(table, values)
    }

    fn insert_rows(
        &self,
        db: &Database,
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()> {
        load::insert_rows(connect::file(db)?, tables)
    }

    fn run_sql(
        &self,
        db: &Database,
        runner: &Runner,
        _database: Option<&str>,
        sql: &str,
    ) -> Result<String> {
        admin::run_sql(db, runner, sql)
    }

    fn query(&self, db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        admin::query(db, runner, sql)
    }

    fn has_table(&self, db: &Database, runner: &Runner, name: &str) -> Result<bool> {
        let rows = self.query(
            db,
            runner,
            &format!(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{}'",
                name.replace('\'', "''")
            ),
        )?;
        Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .is_some_and(|n| n != "0"))
    }

    fn execute(&self, db: &Database, runner: &Runner, statement: &str) -> Result<u64> {
        admin::execute(db, runner, statement)
    }

    fn safety_dump(
        &self,
        db: &Database,
        _runner: &Runner,
        dest_dir: &Path,
        stem: &str,
    ) -> Result<PathBuf> {
        admin::safety_dump(db, dest_dir, stem)
    }

    fn exists(&self, db: &Database, _runner: &Runner) -> Result<bool> {
        Ok(connect::file(db)?.exists())
    }

    fn nuke(&self, db: &Database, _runner: &Runner) -> Result<()> {
        admin::remove(db)
    }

    fn remove(&self, db: &Database, _runner: &Runner) -> Result<()> {
        admin::remove(db)
    }

    fn swap_in(
        &self,
        db: &Database,
        incoming: &Database,
        aside: &Database,
        _runner: &Runner,
    ) -> Result<()> {
        admin::swap_in(db, incoming, aside)
    }
}
