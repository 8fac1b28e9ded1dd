//! PostgreSQL: one `REPEATABLE READ` snapshot shared with `pg_dump` for the DDL, rows
//! as COPY text lines, loads through COPY in one transaction, and maintenance with
//! the server's own tools (`psql`, `pg_dump`).

mod admin;
mod codec;
mod connect;
mod load;
pub mod quote;
mod snapshot;

use std::path::{Path, PathBuf};

use snapshot::PgSnapshot;

use super::{
    Address, Database, DatabaseKind, DbUrl, Engine, NativeRestore, SchemaPart, Snapshot, SqlValue,
    TableRows, TableSpec,
};
use crate::error::Result;
use crate::exec::Runner;

/// The PostgreSQL engine.
pub struct Postgres;

impl Engine for Postgres {
    fn kind(&self) -> DatabaseKind {
        DatabaseKind::Postgres
    }

    fn name(&self) -> &'static str {
        "postgres"
    }

    fn address(&self) -> Address {
        Address::Server {
            schemes: &["postgres", "postgresql"],
            default_port: 5432,
            max_name_len: 63,
            password_env: "PGPASSWORD",
        }
    }

    fn client_args(&self, url: &DbUrl) -> Vec<String> {
        vec![
            "-h".into(),
            url.host.clone(),
            "-p".into(),
            url.port.to_string(),
            "-U".into(),
            url.user.clone(),
        ]
    }

    fn open_snapshot(
        &self,
        db: &Database,
        _tmp: &Path,
        runner: &Runner,
    ) -> Result<Box<dyn Snapshot>> {
        Ok(Box::new(PgSnapshot::open(db, None, runner)?))
    }

    fn load(
        &self,
        db: &Database,
        database: Option<&str>,
        schema: &[SchemaPart],
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()> {
        load::load(db, database, schema, tables)
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
            engine: "PostgreSQL",
            commands: &[
                "createdb NEWDB",
                "psql -v ON_ERROR_STOP=1 -d NEWDB -f database.sql",
            ],
            alternative: None,
        }
    }

    fn scratch(&self, like: &Database, name: &str, _dir: &Path) -> Result<Database> {
        connect::url(like)?; // refuses a database of another engine
        Ok(like.named(name))
    }

    fn decode(&self, payload: &[u8]) -> Result<Vec<SqlValue>> {
        codec::decode(payload)
    }

    fn column_affinity(&self) -> &'static str {
        // COPY text gives every value as text; numbers must still compare as numbers.
        " NUMERIC"
    }

    fn begin(&self) -> &'static str {
        "BEGIN;"
    }

    fn insert_statement(&self, table: &TableSpec, values: &[SqlValue]) -> String {
        quote::insert(table, values)
    }

    fn insert_rows(
        &self,
        db: &Database,
        tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    ) -> Result<()> {
        load::insert_rows(db, tables)
    }

    fn run_sql(
        &self,
        db: &Database,
        runner: &Runner,
        database: Option<&str>,
        sql: &str,
    ) -> Result<String> {
        admin::run_sql(db, runner, database, sql)
    }

    fn query(&self, db: &Database, runner: &Runner, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        admin::query(db, runner, sql)
    }

    fn has_table(&self, db: &Database, runner: &Runner, name: &str) -> Result<bool> {
        let rows = self.query(db, runner, &format!("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '{}'", name.replace('\'', "''")))?;
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
        runner: &Runner,
        dest_dir: &Path,
        stem: &str,
    ) -> Result<PathBuf> {
        admin::safety_dump(db, runner, dest_dir, stem)
    }

    fn exists(&self, db: &Database, runner: &Runner) -> Result<bool> {
        admin::exists(db, runner)
    }

    fn nuke(&self, db: &Database, runner: &Runner) -> Result<()> {
        admin::nuke(db, runner)
    }

    fn remove(&self, db: &Database, runner: &Runner) -> Result<()> {
        admin::remove(db, runner)
    }

    fn swap_in(
        &self,
        db: &Database,
        incoming: &Database,
        aside: &Database,
        runner: &Runner,
    ) -> Result<()> {
        admin::swap_in(db, incoming, aside, runner)
    }
}
