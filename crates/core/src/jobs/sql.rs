//! The `sql` job action: a maintenance statement against an instance's database, as
//! the runbooks run them from cron (CRDS: expired locks deleted every five minutes; old
//! sessions purged), in one transaction, and how many rows it changed, for the run's
//! record. The engines do the work (`Engine::execute`, through each one's driver: the
//! count is the engine's own, not parsed from a client's output); a failure rolls the
//! whole statement back and says which database and what the server said.

use serde::Serialize;

use crate::engine::Database;
use crate::error::{Error, Result};
use crate::exec::Runner;

/// What a maintenance statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SqlOutcome {
    /// Rows inserted, updated or deleted, as the engine counts them.
    pub rows_affected: u64,
}

/// Runs `statement` (one or several, `;`-separated) against `db` in one transaction.
pub fn run(db: &Database, runner: &Runner, statement: &str) -> Result<SqlOutcome> {
    if statement.trim().trim_matches(';').trim().is_empty() {
        return Err(
            Error::user(format!("no statement to run against {}", db.locator()))
                .with_hint("a `sql` job's `query` is the statement to run"),
        );
    }
    let rows_affected = db.engine().execute(db, runner, statement)?;
    Ok(SqlOutcome { rows_affected })
}
