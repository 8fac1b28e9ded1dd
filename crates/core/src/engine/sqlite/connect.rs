//! Reaching a SQLite file: errors that name the file (a full disk as `NoSpace`).

use std::path::Path;

use crate::engine::Database;
use crate::error::{Error, Result};

pub(super) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| {
        Error::sqlite_no_space(path, &e)
            .unwrap_or_else(|| Error::failed(format!("sqlite {}: {e}", path.display())))
    }
}

/// The file of a SQLite `Database`.
pub(super) fn file(db: &Database) -> Result<&Path> {
    match db {
        Database::Sqlite { path } => Ok(path),
        _ => Err(Error::failed(
            "internal: the SQLite engine was given another kind of database",
        )),
    }
}
