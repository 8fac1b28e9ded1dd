//! Prune: drop the backups no retention rule keeps, then free the chunks no remaining
//! backup needs.
//!
//! The catalog and the repository must agree after any crash. So prune first marks
//! every backup it will drop as `pruning` in the catalog (one transaction; from then on
//! nothing restores it or builds on it), then removes each one's manifest and catalog
//! entry, and only then collects chunks. A prune killed in between leaves backups
//! marked `pruning`, which the next prune, verify or backup finishes removing
//! ([`finish_interrupted`]); it never leaves a `good` backup without its manifest.
//! The chunks kept are those named by the repository's manifests *and* by the
//! catalog's good backups, so a manifest deleted by hand never costs its chunks.
//!
//! Prune refuses to run without a rule: with no `[retention]` section it used to keep
//! only the newest backup of each instance, without asking.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

use super::catalog;
use super::manifest::Manifest;
use super::repository::{Access, OpenRepository};
use super::retention::{self, Decision};
use crate::config::RetentionConfig;
use crate::error::{Error, Result};
use crate::instance::Ostler;
use crate::state::State;

/// How to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Only decide; change nothing.
    pub dry_run: bool,
    /// Keep this many newest backups per instance, instead of `[retention]`'s keep-last.
    pub keep_last: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    pub decisions: Vec<Decision>,
    /// Failed or interrupted catalog entries cleared.
    pub cleared: Vec<String>,
    /// Backups an interrupted prune had marked, whose removal this one finished.
    pub finished: Vec<String>,
    pub removed_chunks: u64,
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// The rules prune applies: `[retention]`, with `keep_last` overriding its keep-last.
/// Refuses when there is neither.
pub fn policy(ostler: &Ostler, keep_last: Option<u32>) -> Result<RetentionConfig> {
    match (&ostler.config.retention, keep_last) {
        (None, None) => Err(Error::user(
            "not pruning: the config has no [retention] section, so nothing says which backups to keep",
        )
        .with_hint("add a [retention] section (for example `keep-last = 24` and `keep-daily = 7`), or pass --keep-last N")),
        (Some(r), None) => Ok(r.clone()),
        (r, Some(n)) => Ok(RetentionConfig {
            keep_last: Some(n),
            ..r.clone().unwrap_or_default()
        }),
    }
}

/// Applies the retention rules: drops what no rule keeps, then frees unreferenced chunks.
pub fn prune(ostler: &Ostler, options: &PruneOptions) -> Result<PruneOutcome> {
    let policy = policy(ostler, options.keep_last)?;
    let tz = match &policy.timezone {
        Some(z) => jiff::tz::TimeZone::get(z)
            .map_err(|e| Error::user(format!("[retention] timezone {z}: {e}")))?,
        None => jiff::tz::TimeZone::system(),
    };
    let state = ostler.state()?;
    if options.dry_run {
        let (decisions, cleared) = decide(&state, &policy, &tz)?;
        return Ok(PruneOutcome {
            decisions,
            cleared,
            finished: vec![],
            removed_chunks: 0,
            freed_bytes: 0,
            dry_run: true,
        });
    }
    // Exclusive: no backup, restore, verify or copy may run while backups and chunks
    // are removed. Decided under the lock, so no backup finishes in between.
    let repo = OpenRepository::open(ostler, Access::Exclusive)?;
    let finished = finish_interrupted(&repo, &state)?;
    let (decisions, cleared) = decide(&state, &policy, &tz)?;
    let mut doomed: Vec<String> = decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.clone())
        .collect();
    doomed.extend(cleared.iter().cloned());
    catalog::mark_pruning(&state, &doomed)?;
    crate::pause::point(ostler.reporter.as_ref(), "", "prune-marked");
    remove_marked(&repo, &state, &doomed)?;
    let live = live_chunks(&repo, &state)?;
    let gc = repo.gc(&live)?;
    Ok(PruneOutcome {
        decisions,
        cleared,
        finished,
        removed_chunks: gc.removed_chunks,
        freed_bytes: gc.freed_bytes,
        dry_run: false,
    })
}

/// Finishes what a killed prune left: every backup marked `pruning` loses its manifest
/// and its catalog entry. A shared handle is enough (a prune holds the exclusive one
/// while it marks, so none is under way); nothing reads a backup that is not good, so
/// finishing cannot disturb another reader.
pub fn finish_interrupted(repo: &OpenRepository, state: &State) -> Result<Vec<String>> {
    let marked = catalog::pruning(state)?;
    remove_marked(repo, state, &marked)?;
    Ok(marked)
}

/// Retention decisions for the good backups, and the failed or interrupted entries to clear.
fn decide(
    state: &State,
    policy: &RetentionConfig,
    tz: &jiff::tz::TimeZone,
) -> Result<(Vec<Decision>, Vec<String>)> {
    let records = catalog::list(state, None)?;
    let good: Vec<(String, String, Timestamp)> = records
        .iter()
        .filter(|b| b.status == "good")
        .map(|b| (b.id.clone(), b.instance.clone(), b.started_at))
        .collect();
    let decisions = retention::plan(&good, policy, tz, Timestamp::now());
    let cleared = records
        .iter()
        .filter(|b| b.status == "failed" || b.status == "interrupted")
        .map(|b| b.id.clone())
        .collect();
    Ok((decisions, cleared))
}

/// Removes each marked backup's manifest, then its catalog entry (so an interruption
/// leaves the mark, and the next run finishes it).
fn remove_marked(repo: &OpenRepository, state: &State, ids: &[String]) -> Result<()> {
    for id in ids {
        repo.remove_manifest(id)?;
        catalog::remove(state, id)?;
    }
    Ok(())
}

/// Every chunk a remaining backup needs: those named by the repository's manifests and
/// by the catalog's good backups (whose manifest file may be gone).
fn live_chunks(repo: &OpenRepository, state: &State) -> Result<HashSet<String>> {
    let mut manifests: HashMap<String, Manifest> = repo
        .manifests()?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    for record in catalog::list(state, None)? {
        if record.status == "good" && !manifests.contains_key(&record.id) {
            if let Some(m) = catalog::manifest(state, &record.id)? {
                manifests.insert(m.id.clone(), m);
            }
        }
    }
    let mut live = HashSet::new();
    for m in manifests.values() {
        for (_, s) in m.streams() {
            live.extend(s.chunks.iter().map(|c| c.id.clone()));
        }
        for s in &m.stores {
            for f in repo.listing(&s.name, &s.listing)? {
                live.extend(f.stream.chunks.iter().map(|c| c.id.clone()));
            }
        }
    }
    Ok(live)
}
