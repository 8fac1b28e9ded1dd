//! Chunks known to be damaged, remembered in the state so that no new backup builds on
//! them. `verify` records every chunk it finds bad (and forgets those that read back
//! sound); a backup that cannot read its parent records the bad chunks it finds. A
//! backup tells the repository about all of them before it writes, so a chunk of the
//! same content is written afresh from live data instead of being reused — which
//! heals every older backup that names it — and it is never marked good while it
//! still references one.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use ostler_repo::StreamRef;
use rusqlite::params;

use super::repository::OpenRepository;
use crate::error::Result;
use crate::state::State;

/// Every chunk recorded as damaged and not written afresh since.
pub fn known(state: &State) -> Result<BTreeSet<String>> {
    ids(
        state,
        "SELECT id FROM damaged_chunks WHERE healed_by IS NULL",
    )
}

/// Every chunk recorded as damaged, healed or not, with when it was found: what a
/// verify checks again.
pub fn recorded(state: &State) -> Result<BTreeMap<String, Timestamp>> {
    let mut stmt = state
        .conn()
        .prepare("SELECT id, found_at FROM damaged_chunks")
        .map_err(state.err())?;
    let found = stmt
        .query_map([], |r| {
            let at: String = r.get(1)?;
            Ok((r.get(0)?, at.parse().unwrap_or(Timestamp::UNIX_EPOCH)))
        })
        .map_err(state.err())?
        .collect::<rusqlite::Result<_>>()
        .map_err(state.err())?;
    Ok(found)
}

fn ids(state: &State, sql: &str) -> Result<BTreeSet<String>> {
    Ok(state.strings(sql)?.into_iter().collect())
}

/// Records chunks found damaged, with why.
pub fn record(state: &State, found: &[(String, String)]) -> Result<()> {
    let now = state.clock().now().to_string();
    for (id, reason) in found {
        state
            .conn()
            .execute(
                "INSERT INTO damaged_chunks (id, found_at, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET reason = ?3, healed_by = NULL",
                params![id, now, reason],
            )
            .map_err(state.err())?;
    }
    Ok(())
}

/// Notes that `backup` wrote these chunks afresh; the next verify confirms and forgets them.
pub fn healed_by<'a>(
    state: &State,
    backup: &str,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    for id in ids {
        state
            .conn()
            .execute(
                "UPDATE damaged_chunks SET healed_by = ?2 WHERE id = ?1",
                params![id, backup],
            )
            .map_err(state.err())?;
    }
    Ok(())
}

/// Forgets chunks that read back sound.
pub fn clear<'a>(state: &State, ids: impl IntoIterator<Item = &'a String>) -> Result<()> {
    for id in ids {
        state
            .conn()
            .execute("DELETE FROM damaged_chunks WHERE id = ?1", [id])
            .map_err(state.err())?;
    }
    Ok(())
}

/// Reads every chunk of `streams` not already marked and returns those that are bad,
/// with the reason; used when a stream failed to read, to learn which chunk it was.
pub fn find_bad<'a>(
    repo: &OpenRepository,
    streams: impl IntoIterator<Item = &'a StreamRef>,
) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for stream in streams {
        for c in &stream.chunks {
            if !seen.insert(c.id.as_str()) || repo.is_marked_damaged(&c.id) {
                continue;
            }
            if let Err(e) = repo.verify_chunk(&c.id) {
                bad.push((c.id.clone(), crate::error::chain(&e).to_string()));
            }
        }
    }
    bad
}
