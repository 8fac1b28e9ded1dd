//! The multi-step backup procedures, each one journaled operation under the instance's
//! lock: take a backup; restore one over an instance, all or nothing (stop, safety
//! backup, database and stores loaded beside the live ones, swapped in, start,
//! health; see `recover`); mirror one instance onto another (CRDS's mirror_server,
//! with scrub SQL before the copy goes live). Restore and mirror are planned first
//! (`plan_restore`, `plan_mirror`: the steps, nothing run), so `--dry-run` shows, the
//! guard judges and the journal records the plan their runner then follows. Prune is
//! in `prune.rs`.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::capture;
use super::catalog;
use super::manifest::Manifest;
use super::recover::{self, Place, RecoverOutcome, RestoreJournal};
use super::repository::{Access, OpenRepository};
use super::restore::{load_side_database, restore_store, store_orphans, StoreOutcome};
use crate::engine::Sibling;
use crate::error::{Error, Result};
use crate::guard::{self, Confirm};
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::plan::{Action, Check, Effect, Plan, Procedure, Step, Undo};

/// Takes a backup of `instance` (name or role) under its lock.
pub fn take(ostler: &Ostler, instance: &str, note: Option<&str>) -> Result<Manifest> {
    let inst = ostler.instance(instance)?;
    ostler.operate(&inst, "backup", Duration::from_secs(6 * 3600), |runner| {
        let m = capture::backup(ostler, &inst, note, runner)?;
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

/// Finds a good backup of `instance` by the pick. `Latest` and `At` pass over backups
/// that hold none of the instance's database (the stores-only safety backup a restore
/// over a lost database takes): restoring one would put back files and leave the
/// database as it is. `Id` takes exactly the backup named.
pub fn pick(ostler: &Ostler, instance: &str, pick: &Pick) -> Result<Manifest> {
    let state = ostler.state()?;
    let not_good = |id: &str| {
        Error::user(format!(
            "backup {id} is not a good backup (failed or interrupted)"
        ))
        .with_hint("`ostler backups` shows each backup's status")
    };
    if let Pick::Id(prefix) = pick {
        let id = catalog::resolve(&state, prefix)?;
        return catalog::manifest(&state, &id)?.ok_or_else(|| not_good(&id));
    }
    let before = match pick {
        Pick::At(t) => Some(*t),
        _ => None,
    };
    let wants_database = ostler.instance(instance)?.database.is_some();
    let candidates = catalog::list(&state, Some(instance))?
        .into_iter()
        .rev()
        .filter(|b| b.status == "good" && before.is_none_or(|t| b.started_at <= t));
    for b in candidates {
        let Some(m) = catalog::manifest(&state, &b.id)? else {
            continue;
        };
        if wants_database && m.database.is_none() {
            ostler.reporter.info(
                instance,
                &format!("passing over backup {}: it holds no database", m.id),
            );
            continue;
        }
        return Ok(m);
    }
    Err(match before {
        None => Error::user(format!("instance `{instance}` has no good backup")),
        Some(t) => Error::user(format!(
            "instance `{instance}` has no good backup at or before {t}"
        )),
    })
}

/// The newest good backup in the repository that holds a database, of any instance:
/// what `ostler verify --restore-test latest` tests (a nightly job's "the newest
/// backup", whichever instance took it).
pub fn newest_with_database(ostler: &Ostler) -> Result<Manifest> {
    let state = ostler.state()?;
    let good = catalog::list(&state, None)?
        .into_iter()
        .rev()
        .filter(|b| b.status == "good");
    for b in good {
        if let Some(m) = catalog::manifest(&state, &b.id)? {
            if m.database.is_some() {
                return Ok(m);
            }
        }
    }
    Err(
        Error::user("the repository has no good backup that holds a database")
            .with_hint("`ostler backup INSTANCE` takes one; `ostler backups` lists them"),
    )
}

/// What was kept of an instance before a restore replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SafetyBackup {
    /// A backup of the database and stores as they were.
    Taken { id: String },
    /// The database does not exist, so there was none to keep; the store files that
    /// were there are in `stores_backup` (None when there were none).
    DatabaseMissing { stores_backup: Option<String> },
    /// The instance has no database and no store files: nothing to keep.
    NothingToKeep,
    /// Not taken, as asked (`--no-safety-backup`).
    Declined,
}

/// How a restore runs, beyond which backup and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// SQL run on the restored database before it goes live (mirror's scrub).
    pub scrub: Option<String>,
    /// Restore without a safety backup first.
    pub no_safety_backup: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub backup: String,
    pub instance: String,
    pub safety_backup: SafetyBackup,
    /// An earlier restore of this instance that had been killed, settled first.
    pub recovered: Option<RecoverOutcome>,
    pub stores: Vec<StoreOutcome>,
    pub was_running: bool,
    pub started: Option<ops::Started>,
}

/// A restore planned: the steps it will take, and what its runner needs.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub plan: Plan,
    pub manifest: Manifest,
    pub target: String,
    /// The stores to restore: the target's stores (not caches) the backup holds.
    pub stores: Vec<(String, PathBuf)>,
    pub options: RestoreOptions,
}

/// Plans restoring backup `m` over instance `target_name` (the backup's own instance,
/// or another one with `--into`). Changes nothing; refuses what the restore would
/// refuse (another engine, a store that is a mount point, scrub SQL for no database).
pub fn plan_restore(
    ostler: &Ostler,
    m: &Manifest,
    target_name: &str,
    options: RestoreOptions,
) -> Result<RestorePlan> {
    let target = ostler.instance(target_name)?;
    let procedure = Procedure::Restore {
        backup: m.id.clone(),
        instance: target.name.clone(),
    };
    let (plan, stores) = restore_steps(ostler, Some(m), &target, &options, procedure)?;
    Ok(RestorePlan {
        plan,
        manifest: m.clone(),
        target: target.name.clone(),
        stores,
        options,
    })
}

/// The steps of a restore of `m` (None: a backup an earlier step takes, whose
/// contents are those of the target's config) over `target`.
fn restore_steps(
    ostler: &Ostler,
    m: Option<&Manifest>,
    target: &Instance,
    options: &RestoreOptions,
    procedure: Procedure,
) -> Result<(Plan, Vec<(String, PathBuf)>)> {
    let backup = m.map(|m| m.id.clone());
    if let (Some(m), Some(db), Some(tdb)) =
        (m, m.and_then(|m| m.database.as_ref()), &target.database)
    {
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
    if options.scrub.is_some() && target.database.is_none() {
        return Err(Error::user(format!(
            "instance `{}` has no database to scrub",
            target.name
        )));
    }
    let mut stores = Vec::new();
    for (name, path, cache) in target.stores() {
        if cache {
            continue;
        }
        if m.is_none_or(|m| m.stores.iter().any(|s| s.name == name)) {
            stores.push((name, path));
        } else if let Some(m) = m {
            ostler.reporter.warn(
                &target.name,
                &format!("backup {} has no store `{name}`; left as it is", m.id),
            );
        }
    }
    let has_database = m.map_or(target.database.is_some(), |m| m.database.is_some());
    let state = ostler.state()?;
    let running = ops::running_pid(&state, target)?.1.is_some();
    // The same places the runner journals (and the same refusals: a mount point).
    let journal = RestoreJournal::plan(
        ostler.clock.now(),
        target,
        "",
        running,
        has_database,
        &stores,
    )?;
    let name = Some(target.name.as_str());
    let mut plan = Plan::new(procedure);
    if let Some(pending) = RestoreJournal::read(&ostler.state_dir(), &target.name)? {
        plan.push(
            name,
            Action::SettleUnfinishedRestore {
                backup: pending.backup,
            },
            Effect::ReplacesData,
            Check::NoUnfinishedRestore,
            None,
        );
    }
    if running {
        plan.push(
            name,
            Action::Stop,
            Effect::InterruptsService,
            Check::ProcessGone,
            Some(Undo::Start),
        );
    }
    if !options.no_safety_backup {
        plan.push(
            name,
            Action::TakeSafetyBackup,
            Effect::Reads,
            Check::BackupGood,
            None,
        );
    }
    for place in &journal.places {
        match place {
            Place::Database { side, .. } => {
                plan.push(
                    name,
                    Action::LoadSideDatabase {
                        backup: backup.clone(),
                        side: side.clone(),
                    },
                    Effect::PreparesSide,
                    Check::TablesLoaded {
                        tables: m
                            .and_then(|m| m.database.as_ref())
                            .map_or(0, |d| d.tables.len()),
                    },
                    Some(Undo::RemoveSide),
                );
                if let Some(sql) = &options.scrub {
                    plan.push(
                        name,
                        Action::Scrub { sql: sql.clone() },
                        Effect::PreparesSide,
                        Check::SqlSucceeds,
                        Some(Undo::RemoveSide),
                    );
                }
            }
            Place::Store {
                name: store, side, ..
            } => plan.push(
                name,
                Action::RestoreStore {
                    name: store.clone(),
                    backup: backup.clone(),
                    side: side.clone(),
                },
                Effect::PreparesSide,
                Check::FilesRestored,
                Some(Undo::RemoveSide),
            ),
        }
    }
    plan.push(
        name,
        Action::SwapIn {
            places: journal
                .places
                .iter()
                .map(|p| match p {
                    Place::Database { live, .. } => live.clone(),
                    Place::Store { name, .. } => name.clone(),
                })
                .collect(),
        },
        Effect::ReplacesData,
        Check::JournalSwapped,
        Some(Undo::SwapBack),
    );
    plan.push(
        name,
        Action::RemoveAsides,
        Effect::ReplacesData,
        Check::Nothing,
        (!options.no_safety_backup).then_some(Undo::RestoreSafetyBackup),
    );
    if running || options.scrub.is_some() || matches!(plan.procedure, Procedure::Mirror { .. }) {
        plan.push(
            name,
            Action::Start,
            Effect::StartsService,
            Check::Healthy {
                url: target.health_url(),
            },
            Some(Undo::Stop),
        );
    }
    Ok((plan, stores))
}

/// Runs a restore plan, all or nothing: the backup is loaded beside the live
/// database and stores and swapped in only when all of it is in place (see
/// `recover`); on any failure the instance is as it was, and running again if it
/// was. The guard judges the plan first: on production it refuses unless confirmed.
pub fn restore(ostler: &Ostler, rp: &RestorePlan, confirm: &dyn Confirm) -> Result<RestoreOutcome> {
    guard::check(&ostler.config, &rp.plan, confirm)?;
    run_restore(ostler, rp, &rp.plan)
}

/// The restore itself, journaled with `journal_plan` (the restore's plan, or the
/// mirror's it is part of).
fn run_restore(ostler: &Ostler, rp: &RestorePlan, journal_plan: &Plan) -> Result<RestoreOutcome> {
    let m = &rp.manifest;
    let options = &rp.options;
    let target = ostler.instance(&rp.target)?;
    // Shared for the whole restore, so no prune removes the backup meanwhile; the
    // safety backup opens its own shared handle beside it.
    let repo = OpenRepository::open(ostler, Access::Shared)?;
    let state_dir = ostler.state_dir();
    ostler.operate_planned(
        &target,
        "restore",
        Duration::from_secs(6 * 3600),
        Some(journal_plan),
        |runner| {
            // A restore of this instance killed earlier is finished or undone first.
            let recovered = recover::settle_pending(ostler, &target, runner)?;
            let state = ostler.state()?;
            let running_now = ops::running_pid(&state, &target)?.1.is_some();
            let was_running = running_now || recovered.as_ref().is_some_and(|r| r.was_running);
            let mut journal = RestoreJournal::plan(
                ostler.clock.now(),
                &target,
                &m.id,
                was_running,
                m.database.is_some(),
                &rp.stores,
            )?;
            recover::clear_leftovers(&journal, &target, runner)?;
            journal.write(&state_dir)?;
            let built = (|| -> Result<(SafetyBackup, Vec<StoreOutcome>)> {
                if running_now {
                    ops::stop(ostler, &target, runner)?;
                    ostler.reporter.info(&target.name, "stopped");
                }
                // Keep what is there now, whatever happens next.
                let safety = if options.no_safety_backup {
                    SafetyBackup::Declined
                } else {
                    safety_backup(ostler, &target, &format!("safety copy before restoring {}", m.id), runner)
                        .map_err(|e| {
                            Error::failed(format!(
                                "not restoring {}: its safety backup failed: {}",
                                target.name,
                                crate::error::chain(&e)
                            ))
                            .with_hint("fix the cause, or pass --no-safety-backup to restore without one (a restore over production still asks)")
                        })?
                };
                if let (Some(db), Some(tdb)) = (&m.database, &target.database) {
                    ostler
                        .reporter
                        .info(&target.name, &format!("restoring database from {}", m.id));
                    let side = tdb.sibling(Sibling::Side)?;
                    load_side_database(&repo, &m.id, db, &side, runner)?;
                    if let Some(sql) = &options.scrub {
                        ostler.reporter.info(&target.name, "running scrub SQL");
                        side.run_sql(runner, None, sql).map_err(|e| {
                            Error::failed(format!(
                                "scrub SQL failed on {}: {}",
                                target.name,
                                crate::error::chain(&e)
                            ))
                        })?;
                    }
                }
                crate::pause::point(ostler.reporter.as_ref(), &target.name, "after-database-side");
                let mut outcomes = Vec::new();
                for place in &journal.places {
                    let Place::Store { name, live, side, .. } = place else {
                        continue;
                    };
                    let entry = m.stores.iter().find(|s| &s.name == name).ok_or_else(|| {
                        Error::failed(format!("internal: backup {} has no store `{name}`", m.id))
                    })?;
                    let mut o = restore_store(&repo, entry, side, ostler.reporter.as_ref())?;
                    copy_dir_mode(live, side);
                    o.orphans_removed = store_orphans(live, side);
                    outcomes.push(o);
                }
                recover::swap_all(&mut journal, &target, &state_dir, runner, ostler.reporter.as_ref())?;
                Ok((safety, outcomes))
            })();
            let (safety, stores) = match built {
                Ok(b) => b,
                Err(e) => {
                    recover::roll_back(&journal, &target, &state_dir, &runner.uninterruptible())
                        .map_err(|u| {
                            Error::failed(format!(
                                "the restore of {} failed ({}), and undoing it failed too: {}",
                                target.name,
                                crate::error::chain(&e),
                                crate::error::chain(&u)
                            ))
                            .with_hint("`ostler recover` tries again")
                        })?;
                    if was_running && !matches!(e, Error::Interrupted) {
                        if let Err(s) = ops::start(ostler, &target, runner) {
                            ostler.reporter.warn(
                                &target.name,
                                &format!(
                                    "restarting after the failed restore: {}",
                                    crate::error::chain(&s)
                                ),
                            );
                        }
                    }
                    return Err(e);
                }
            };
            recover::finish(&journal, &target, &state_dir, &runner.uninterruptible())?;
            for s in &stores {
                for orphan in &s.orphans_removed {
                    ostler.reporter.info(
                        &target.name,
                        &format!("store {}: removed orphan {orphan}", s.name),
                    );
                }
            }
            let started = if was_running || options.scrub.is_some() {
                Some(ops::start(ostler, &target, runner)?)
            } else {
                None
            };
            Ok(RestoreOutcome {
                backup: m.id.clone(),
                instance: target.name.clone(),
                safety_backup: safety,
                recovered,
                stores,
                was_running,
                started,
            })
        },
    )
}

/// A store restored in a side directory gets the live directory's permissions.
fn copy_dir_mode(live: &std::path::Path, side: &std::path::Path) {
    if let Ok(meta) = std::fs::metadata(live) {
        let _ = std::fs::set_permissions(side, meta.permissions());
    }
}

/// A backup of what an instance holds now, before something destroys it. A database
/// that does not exist is nothing to keep (then only the store files are kept); any
/// other failure is an error.
fn safety_backup(
    ostler: &Ostler,
    inst: &Instance,
    note: &str,
    runner: &crate::exec::Runner,
) -> Result<SafetyBackup> {
    let no_store_files = inst.stores().iter().all(|(_, p, _)| !p.exists());
    let db_exists = match &inst.database {
        None => None,
        Some(db) => Some(db.exists(&ostler.runner())?),
    };
    let (outcome_of, inst) = match db_exists {
        Some(false) => {
            if no_store_files {
                return Ok(SafetyBackup::DatabaseMissing {
                    stores_backup: None,
                });
            }
            let stores_only = Instance {
                database: None,
                ..inst.clone()
            };
            let f: fn(String) -> SafetyBackup = |id| SafetyBackup::DatabaseMissing {
                stores_backup: Some(id),
            };
            (f, stores_only)
        }
        None if no_store_files => return Ok(SafetyBackup::NothingToKeep),
        _ => {
            let f: fn(String) -> SafetyBackup = |id| SafetyBackup::Taken { id };
            (f, inst.clone())
        }
    };
    let m = capture::backup(ostler, &inst, Some(note), runner)?;
    ostler
        .reporter
        .info(&inst.name, &format!("safety backup {} taken", m.id));
    Ok(outcome_of(m.id))
}

/// A mirror planned: its steps, and the restore it runs (None when a fresh backup is
/// taken first: that restore is planned once the backup exists).
#[derive(Debug, Clone)]
pub struct MirrorPlan {
    pub plan: Plan,
    pub source: String,
    pub target: String,
    pub restore: Option<RestorePlan>,
    pub options: RestoreOptions,
}

/// Plans CRDS's mirror_server: DST gets SRC's latest backup (or a fresh one), is kept
/// stopped while inconsistent, gets the scrub SQL (on the side database, before it
/// goes live), then starts. Changes nothing.
pub fn plan_mirror(
    ostler: &Ostler,
    src: &str,
    dst: &str,
    fresh: bool,
    options: RestoreOptions,
) -> Result<MirrorPlan> {
    let source = ostler.config.resolve(src)?;
    let target = ostler.config.resolve(dst)?;
    if source == target {
        return Err(Error::user(format!("cannot mirror {source} onto itself"))
            .with_hint("use `ostler restore` to put a backup back"));
    }
    let m = if fresh {
        None
    } else {
        Some(pick(ostler, &source, &Pick::Latest)?)
    };
    let procedure = Procedure::Mirror {
        source: source.clone(),
        target: target.clone(),
        backup: m.as_ref().map(|m| m.id.clone()),
    };
    let dst_inst = ostler.instance(&target)?;
    let (mut plan, stores) = restore_steps(ostler, m.as_ref(), &dst_inst, &options, procedure)?;
    if fresh {
        plan.steps.insert(
            0,
            Step {
                instance: Some(source.clone()),
                action: Action::TakeBackup,
                from: None,
                effect: Effect::Reads,
                check: Check::BackupGood,
                undo: None,
            },
        );
    }
    let restore = m.map(|manifest| RestorePlan {
        plan: plan.clone(),
        manifest,
        target: target.clone(),
        stores,
        options: options.clone(),
    });
    Ok(MirrorPlan {
        plan,
        source,
        target,
        restore,
        options,
    })
}

/// Runs a mirror plan; the guard judges it first ("almost certainly an error to
/// mirror onto OPS", CRDS).
pub fn mirror(ostler: &Ostler, mp: &MirrorPlan, confirm: &dyn Confirm) -> Result<RestoreOutcome> {
    guard::check(&ostler.config, &mp.plan, confirm)?;
    let fresh;
    let rp = match &mp.restore {
        Some(rp) => rp,
        None => {
            let m = take(
                ostler,
                &mp.source,
                Some(&format!("fresh backup for mirror onto {}", mp.target)),
            )?;
            let procedure = Procedure::Mirror {
                source: mp.source.clone(),
                target: mp.target.clone(),
                backup: Some(m.id.clone()),
            };
            let dst = ostler.instance(&mp.target)?;
            let (plan, stores) = restore_steps(ostler, Some(&m), &dst, &mp.options, procedure)?;
            fresh = RestorePlan {
                plan,
                manifest: m,
                target: mp.target.clone(),
                stores,
                options: mp.options.clone(),
            };
            &fresh
        }
    };
    let mut outcome = run_restore(ostler, rp, &rp.plan)?;
    if outcome.started.is_none() {
        let inst = ostler.instance(&mp.target)?;
        let started = ostler.operate(&inst, "start", Duration::from_secs(600), |r| {
            ops::start(ostler, &inst, r)
        })?;
        outcome.started = Some(started);
    }
    Ok(outcome)
}
