//! The multi-step backup procedures, each one journaled operation under the instance's
//! lock: take a backup; restore one over an instance (stop, safety backup, database,
//! stores and orphans, start, health); mirror one instance onto another (CRDS's
//! mirror_server, with scrub SQL before the copy is started). Prune is in `prune.rs`.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::capture;
use super::catalog;
use super::manifest::Manifest;
use super::repository::{repo_err, repository};
use super::restore::{restore_database, restore_store, StoreOutcome};
use crate::error::{Error, Result};
use crate::guard::{self, Confirm, Confirmed, Effect};
use crate::instance::{Instance, Ostler};
use crate::ops;

/// Takes a backup of `instance` (name or role) under its lock.
pub fn take(ostler: &Ostler, instance: &str, note: Option<&str>) -> Result<Manifest> {
    let inst = ostler.instance(instance)?;
    ostler.operate(&inst, "backup", Duration::from_secs(6 * 3600), |_runner| {
        let m = capture::backup(ostler, &inst, note)?;
        Ok(m)
    })
}

/// Which backup to restore.
#[derive(Debug, Clone)]
pub enum Pick {
    Latest,
    Id(String),
    /// The newest good backup at or before this instant.
    At(Timestamp),
}

/// Finds a good backup of `instance` by the pick.
pub fn pick(ostler: &Ostler, instance: &str, pick: &Pick) -> Result<Manifest> {
    let state = ostler.state()?;
    let id = match pick {
        Pick::Id(prefix) => catalog::resolve(&state, prefix)?,
        Pick::Latest => catalog::list(&state, Some(instance))?
            .into_iter()
            .rev()
            .find(|b| b.status == "good")
            .map(|b| b.id)
            .ok_or_else(|| Error::user(format!("instance `{instance}` has no good backup")))?,
        Pick::At(t) => catalog::list(&state, Some(instance))?
            .into_iter()
            .rev()
            .find(|b| b.status == "good" && b.started_at <= *t)
            .map(|b| b.id)
            .ok_or_else(|| {
                Error::user(format!(
                    "instance `{instance}` has no good backup at or before {t}"
                ))
            })?,
    };
    catalog::manifest(&state, &id)?.ok_or_else(|| {
        Error::user(format!(
            "backup {id} is not a good backup (failed or interrupted)"
        ))
        .with_hint("`ostler backups` shows each backup's status")
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub backup: String,
    pub instance: String,
    pub safety_backup: Option<String>,
    pub stores: Vec<StoreOutcome>,
    pub was_running: bool,
    pub started: Option<String>,
}

/// Restores backup `m` over instance `target_name` (the backup's own instance, or
/// another one with `--into`). Refuses on production unless confirmed.
pub fn restore(
    ostler: &Ostler,
    m: &Manifest,
    target_name: &str,
    confirm: &dyn Confirm,
    scrub: Option<&str>,
) -> Result<RestoreOutcome> {
    let target = ostler.instance(target_name)?;
    guard::check_one(
        &ostler.config,
        &target.name,
        "restore over",
        Effect::ReplacesData,
        confirm,
    )?;
    if let (Some(db), Some(tdb)) = (&m.database, &target.database) {
        if db.kind != tdb.kind() {
            return Err(Error::user(format!(
                "backup {} holds a {} database; instance `{}` uses {}",
                m.id,
                db.kind,
                target.name,
                tdb.kind()
            )));
        }
    }
    let repo = repository(ostler)?;
    ostler.operate(
        &target,
        "restore",
        Duration::from_secs(6 * 3600),
        |runner| {
            let state = ostler.state()?;
            let was_running = ops::running_pid(&state, &target)?.1.is_some();
            if was_running {
                let msg = ops::stop(ostler, &target, runner)?;
                ostler.reporter.info(&target.name, &msg);
            }
            // Keep what is there now, whatever happens next.
            let safety = match safety_backup(
                ostler,
                &target,
                &format!("safety copy before restoring {}", m.id),
            ) {
                Ok(id) => id,
                Err(e) => {
                    if was_running {
                        let _ = ops::start(ostler, &target, runner);
                    }
                    return Err(Error::failed(format!(
                        "not restoring: the safety backup of {} failed: {e}",
                        target.name
                    )));
                }
            };
            let _lock = repo.lock_shared().map_err(repo_err)?;
            if let (Some(db), Some(tdb)) = (&m.database, &target.database) {
                ostler
                    .reporter
                    .info(&target.name, &format!("restoring database from {}", m.id));
                restore_database(&repo, db, tdb, runner)?;
            }
            let mut stores = Vec::new();
            for (name, path, cache) in target.stores() {
                if cache {
                    continue;
                }
                match m.stores.iter().find(|s| s.name == name) {
                    Some(entry) => {
                        let o = restore_store(&repo, entry, &path)?;
                        for orphan in &o.orphans_removed {
                            ostler.reporter.info(
                                &target.name,
                                &format!("store {name}: removed orphan {orphan}"),
                            );
                        }
                        stores.push(o);
                    }
                    None => ostler.reporter.warn(
                        &target.name,
                        &format!("backup {} has no store `{name}`; left as it is", m.id),
                    ),
                }
            }
            if let Some(sql) = scrub {
                let db = target.database.as_ref().ok_or_else(|| {
                    Error::user(format!(
                        "instance `{}` has no database to scrub",
                        target.name
                    ))
                })?;
                ostler.reporter.info(&target.name, "running scrub SQL");
                db.run_sql(runner, None, sql).map_err(|e| {
                    Error::failed(format!(
                        "scrub SQL failed on {} (left stopped): {e}",
                        target.name
                    ))
                })?;
            }
            let started = if was_running || scrub.is_some() {
                Some(ops::start(ostler, &target, runner)?)
            } else {
                None
            };
            Ok(RestoreOutcome {
                backup: m.id.clone(),
                instance: target.name.clone(),
                safety_backup: safety,
                stores,
                was_running,
                started,
            })
        },
    )
}

/// A backup of what an instance holds now, before something destroys it. None when
/// there is nothing to keep (no database file yet and no store files).
fn safety_backup(ostler: &Ostler, inst: &Instance, note: &str) -> Result<Option<String>> {
    let no_stores = inst.stores().iter().all(|(_, p, _)| !p.exists());
    let db_exists = match &inst.database {
        None => true,
        Some(db) => db.exists(&ostler.runner())?,
    };
    if !db_exists && no_stores {
        return Ok(None);
    }
    let m = capture::backup(ostler, inst, Some(note))?;
    ostler
        .reporter
        .info(&inst.name, &format!("safety backup {} taken", m.id));
    Ok(Some(m.id))
}

/// CRDS's mirror_server: DST gets SRC's latest backup (or a fresh one), is kept stopped
/// while inconsistent, gets the scrub SQL, then starts.
pub fn mirror(
    ostler: &Ostler,
    src: &str,
    dst: &str,
    fresh: bool,
    scrub: Option<&str>,
    confirm: &dyn Confirm,
) -> Result<RestoreOutcome> {
    let src = ostler.config.resolve(src)?;
    let dst = ostler.config.resolve(dst)?;
    if src == dst {
        return Err(Error::user(format!("cannot mirror {src} onto itself"))
            .with_hint("use `ostler restore` to put a backup back"));
    }
    // "Almost certainly an error to mirror onto OPS" (CRDS): ask before anything runs.
    guard::check_one(
        &ostler.config,
        &dst,
        "mirror onto",
        Effect::ReplacesData,
        confirm,
    )?;
    let m = if fresh {
        take(
            ostler,
            &src,
            Some(&format!("fresh backup for mirror onto {dst}")),
        )?
    } else {
        pick(ostler, &src, &Pick::Latest)?
    };
    let mut outcome = restore(ostler, &m, &dst, &Confirmed, scrub)?;
    if outcome.started.is_none() {
        let inst = ostler.instance(&dst)?;
        let msg = ostler.operate(&inst, "start", Duration::from_secs(600), |r| {
            ops::start(ostler, &inst, r)
        })?;
        outcome.started = Some(msg);
    }
    Ok(outcome)
}
