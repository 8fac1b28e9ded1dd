//! (stub, being written)

use std::path::{Path, PathBuf};

use ostler_rows::Row;

use super::{SchemaPart, Snapshot, SqlValue, TableRows, TableSpec};
use crate::database::Database;
use crate::error::{Error, Result};

pub struct MysqlSnapshot {
    schema: Vec<SchemaPart>,
    tables: Vec<TableSpec>,
}

impl MysqlSnapshot {
    pub fn open(_db: &Database, _database: Option<&str>) -> Result<MysqlSnapshot> {
        Err(Error::failed("not yet"))
    }
}

impl Snapshot for MysqlSnapshot {
    fn schema(&self) -> &[SchemaPart] {
        &self.schema
    }
    fn tables(&self) -> &[TableSpec] {
        &self.tables
    }
    fn rows(&mut self, _table: &TableSpec, _sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        Err(Error::failed("not yet"))
    }
    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

pub fn load(
    _db: &Database,
    _database: Option<&str>,
    _schema: &[SchemaPart],
    _tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    Err(Error::failed("not yet"))
}

pub fn export(
    _schema: &[SchemaPart],
    _tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    _dir: &Path,
) -> Result<Vec<PathBuf>> {
    Err(Error::failed("not yet"))
}

pub fn decode(_payload: &[u8]) -> Result<Vec<SqlValue>> {
    Err(Error::failed("not yet"))
}
