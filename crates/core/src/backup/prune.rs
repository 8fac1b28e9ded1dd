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
//!
//! Like restic's `prune_plan` then `prune`, it is planned first ([`plan`]: the
//! decisions and the steps, from the catalog alone), and the runner removes no more
//! than that plan said.

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
use crate::plan::{Action, Check, Effect, Plan, Procedure};
use crate::state::State;

/// How to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
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
    /// The plan this prune ran (or, for a dry run, would run).
    pub plan: Plan,
    pub dry_run: bool,
}

/// A prune planned: what each retention rule decided, and the steps.
#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub plan: Plan,
    pub decisions: Vec<Decision>,
    pub cleared: Vec<String>,
    /// Backups an interrupted prune had marked, to finish removing.
    pub marked: Vec<String>,
    policy: RetentionConfig,
    tz: jiff::tz::TimeZone,
}

impl PrunePlan {
    /// What a dry run reports: the plan, nothing done.
    pub fn dry_run(&self) -> PruneOutcome {
        PruneOutcome {
            decisions: self.decisions.clone(),
            cleared: self.cleared.clone(),
            finished: vec![],
            removed_chunks: 0,
            freed_bytes: 0,
            plan: self.plan.clone(),
            dry_run: true,
        }
    }
}

/// The rules prune applies: `[retention]`, with `keep_last` overriding its keep-last.
/// Refuses when there is neither.
pub fn policy(ostler: &Ostler, keep_last: Option<u32>) -> Result<RetentionConfig> {
    match (&ostler.config.retention, keep_last) {
        (None, None) => Err(Error::user(
            "not pruning: the config has no [retention] section, so nothing says which backups to keep",
        )
        .with_hint("add a [retention] section (for example `keep_last = 24` and `keep_daily = 7`), or pass --keep-last N")),
        (Some(r), None) => Ok(r.clone()),
        (r, Some(n)) => Ok(RetentionConfig {
            keep_last: Some(n),
            ..r.clone().unwrap_or_default()
        }),
    }
}

/// Plans a prune: which backups each rule keeps, which go, and the steps. Reads the
/// catalog only; changes nothing.
pub fn plan(ostler: &Ostler, options: &PruneOptions) -> Result<PrunePlan> {
    let policy = policy(ostler, options.keep_last)?;
    let tz = match &policy.timezone {
        Some(z) => jiff::tz::TimeZone::get(z)
            .map_err(|e| Error::user(format!("[retention] timezone {z}: {e}")))?,
        None => jiff::tz::TimeZone::system(),
    };
    let state = ostler.state()?;
    let marked = catalog::pruning(&state)?;
    let (decisions, cleared) = decide(&state, &policy, &tz)?;
    let mut plan = Plan::new(Procedure::Prune);
    if !marked.is_empty() {
        plan.push(
            None,
            Action::FinishInterruptedPrune {
                ids: marked.clone(),
            },
            Effect::RemovesBackups,
            Check::BackupsGone,
            None,
        );
    }
    let doomed: Vec<String> = decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.clone())
        .collect();
    if !doomed.is_empty() {
        plan.push(
            None,
            Action::RemoveBackups { ids: doomed },
            Effect::RemovesBackups,
            Check::BackupsGone,
            None,
        );
    }
    if !cleared.is_empty() {
        plan.push(
            None,
            Action::ClearEntries {
                ids: cleared.clone(),
            },
            Effect::RemovesBackups,
            Check::BackupsGone,
            None,
        );
    }
    plan.push(
        None,
        Action::CollectGarbage,
        Effect::RemovesBackups,
        Check::OnlyNeededChunksKept,
        None,
    );
    Ok(PrunePlan {
        plan,
        decisions,
        cleared,
        marked,
        policy,
        tz,
    })
}

/// Runs a prune plan: drops what the plan drops, then frees unreferenced chunks. The
/// rules are applied again under the repository's exclusive lock, and only a backup
/// both the plan and that second look drop is removed: a backup that finished in
/// between may keep an older one alive, never the other way round.
pub fn prune(ostler: &Ostler, planned: &PrunePlan) -> Result<PruneOutcome> {
    let state = ostler.state()?;
    let id = state.journal_begin("prune", None, None)?;
    state.journal_plan(id, &planned.plan.to_json())?;
    let result = run(ostler, &state, planned);
    let (status, detail) = match &result {
        Ok(_) => ("ok", None),
        Err(Error::Interrupted) => ("interrupted", Some("interrupted".to_string())),
        Err(e) => ("failed", Some(crate::error::chain(e).to_string())),
    };
    let _ = state.journal_end(id, status, detail.as_deref());
    result
}

fn run(ostler: &Ostler, state: &State, planned: &PrunePlan) -> Result<PruneOutcome> {
    // Exclusive: no backup, restore, verify or copy may run while backups and chunks
    // are removed. Decided again under the lock, so no backup finishes in between.
    let repo = OpenRepository::open(ostler, Access::Exclusive)?;
    let finished = finish_interrupted(&repo, state)?;
    let (now, now_cleared) = decide(state, &planned.policy, &planned.tz)?;
    let planned_drop: HashSet<&str> = planned
        .decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.as_str())
        .chain(planned.cleared.iter().map(String::as_str))
        .collect();
    let decisions: Vec<Decision> = now
        .into_iter()
        .map(|mut d| {
            if !d.keep && !planned_drop.contains(d.id.as_str()) {
                d.keep = true;
                d.reasons = vec!["not in the plan (it changed since); kept".into()];
            }
            d
        })
        .collect();
    let cleared: Vec<String> = now_cleared
        .into_iter()
        .filter(|id| planned_drop.contains(id.as_str()))
        .collect();
    let mut doomed: Vec<String> = decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.id.clone())
        .collect();
    doomed.extend(cleared.iter().cloned());
    catalog::mark_pruning(state, &doomed)?;
    crate::pause::point(ostler.reporter.as_ref(), "", "prune-marked");
    remove_marked(&repo, state, &doomed)?;
    let live = live_chunks(&repo, state)?;
    let gc = repo.gc(&live)?;
    Ok(PruneOutcome {
        decisions,
        cleared,
        finished,
        removed_chunks: gc.removed_chunks,
        freed_bytes: gc.freed_bytes,
        plan: planned.plan.clone(),
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
    let decisions = retention::plan(&good, policy, tz);
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
