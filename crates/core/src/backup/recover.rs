//! All-or-nothing restores, and finishing or undoing one that was killed.
//!
//! A restore never writes into the live database or stores. It loads the backup into
//! *side* locations beside them (a SQLite file, a server database, a sibling store
//! directory), and only when every side is complete does it swap them in, putting
//! each live one *aside*; the asides are removed once every swap is done. Every step
//! of that is recorded first in a small journal file,
//! `<state_dir>/restores/<instance>.json` (phase, side locations, whether the instance
//! was running), written atomically, so that whatever moment a restore dies at, the
//! next `ostler restore`, `ostler recover` or `ostler serve` knows what to do:
//!
//! - killed while *building* the sides: nothing live was touched; the sides are
//!   removed (rolled back);
//! - killed while *swapping*: every side is complete, so the swap is finished (each
//!   swap is idempotent: what was already moved is not moved again); if finishing
//!   fails, the swaps done are undone;
//! - killed once *swapped*: only the asides are left to remove.
//!
//! Then the instance is started again if it was running. A journal with no side
//! locations left and no asides is the same as no journal.
//!
//! Why a file and not a state row: it is written and fsynced before anything is
//! touched and read without a migration; one file per instance also keeps two
//! instances' restores apart. Secrets never go in it (databases are named, not their
//! URLs' passwords; the connection comes from the config at recovery).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::{rename_if_exists, with_suffix, Database, Sibling};
use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::report::Reporter;

/// How far a restore got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Loading the backup into the side locations; nothing live changed.
    Building,
    /// Every side is complete; swapping them in.
    Swapping,
    /// Every side is in place; removing what was put aside.
    Swapped,
}

/// One thing a restore replaces, with its side and aside locations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Place {
    /// The instance's database; `live`, `side` and `aside` name it (a path for SQLite,
    /// a database name on the server otherwise).
    Database {
        live: String,
        side: String,
        aside: String,
    },
    /// A store directory.
    Store {
        name: String,
        live: PathBuf,
        side: PathBuf,
        aside: PathBuf,
    },
}

/// The journal of one restore in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreJournal {
    pub instance: String,
    pub backup: String,
    pub pid: u32,
    pub started_at: Timestamp,
    pub was_running: bool,
    pub phase: Phase,
    pub places: Vec<Place>,
}

/// What settling an unfinished restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Settled {
    /// The instance is as it was before the restore.
    RolledBack,
    /// The instance holds the restored backup.
    Finished,
}

/// What `ostler recover` (or a restore, or the daemon, finding a journal) did.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverOutcome {
    pub instance: String,
    pub backup: String,
    /// The phase the restore was killed in.
    pub phase: Phase,
    pub settled: Settled,
    pub was_running: bool,
    pub started: Option<ops::Started>,
}

/// Where restore journals live.
fn journal_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("restores")
}

fn journal_path(state_dir: &Path, instance: &str) -> PathBuf {
    journal_dir(state_dir).join(format!("{instance}.json"))
}

impl RestoreJournal {
    /// The journal of a restore of backup `backup` over `inst`: its places, side and
    /// aside locations for the database (when `database`) and each named store,
    /// begun at `started_at`.
    pub fn plan(
        started_at: Timestamp,
        inst: &Instance,
        backup: &str,
        was_running: bool,
        database: bool,
        stores: &[(String, PathBuf)],
    ) -> Result<RestoreJournal> {
        let mut places = Vec::new();
        if let (true, Some(db)) = (database, &inst.database) {
            places.push(Place::Database {
                live: db.name(),
                side: db.sibling(Sibling::Side)?.name(),
                aside: db.sibling(Sibling::Aside)?.name(),
            });
        }
        for (name, live) in stores {
            refuse_mount_point(&inst.name, name, live)?;
            places.push(Place::Store {
                name: name.clone(),
                live: live.clone(),
                side: with_suffix(live, Sibling::Side.file_suffix()),
                aside: with_suffix(live, Sibling::Aside.file_suffix()),
            });
        }
        Ok(RestoreJournal {
            instance: inst.name.clone(),
            backup: backup.to_string(),
            pid: std::process::id(),
            started_at,
            was_running,
            phase: Phase::Building,
            places,
        })
    }

    /// The unfinished restore of `instance`, if there is one.
    pub fn read(state_dir: &Path, instance: &str) -> Result<Option<RestoreJournal>> {
        let path = journal_path(state_dir, instance);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::failed(format!(
                    "restore journal {} is unreadable: {e}",
                    path.display()
                ))
                .with_hint("it records an unfinished restore; move it away only after checking the instance's database and stores by hand")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Writes the journal atomically (a temp file fsynced, renamed over, dir fsynced).
    pub fn write(&self, state_dir: &Path) -> Result<()> {
        use std::io::Write;
        let dir = journal_dir(state_dir);
        ostler_repo::private::create_dir_all(&dir).map_err(|e| Error::io_at("create", &dir, e))?;
        let path = journal_path(state_dir, &self.instance);
        let io = |e| Error::io_at("write", &path, e);
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.into()))?;
        tmp.write_all(&json).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        sync_dir(&dir);
        Ok(())
    }

    fn set_phase(&mut self, state_dir: &Path, phase: Phase) -> Result<()> {
        self.phase = phase;
        self.write(state_dir)
    }

    fn remove(&self, state_dir: &Path) -> Result<()> {
        let path = journal_path(state_dir, &self.instance);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()), e))
            }
            _ => {
                sync_dir(&journal_dir(state_dir));
                Ok(())
            }
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A place's three locations, resolved against the instance.
enum Resolved {
    Database {
        live: Box<Database>,
        side: Box<Database>,
        aside: Box<Database>,
    },
    Store {
        live: PathBuf,
        side: PathBuf,
        aside: PathBuf,
    },
}

fn resolve(inst: &Instance, place: &Place) -> Result<Resolved> {
    match place {
        Place::Database { live, .. } => {
            let db = inst.database.as_ref().ok_or_else(|| {
                Error::failed(format!(
                    "the restore journal of {} names database {live}, but the instance has no database in the config any more",
                    inst.name
                ))
            })?;
            Ok(Resolved::Database {
                live: Box::new(db.clone()),
                side: Box::new(db.sibling(Sibling::Side)?),
                aside: Box::new(db.sibling(Sibling::Aside)?),
            })
        }
        Place::Store {
            live, side, aside, ..
        } => Ok(Resolved::Store {
            live: live.clone(),
            side: side.clone(),
            aside: aside.clone(),
        }),
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn remove_dir(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", p.display()), e))
        }
        _ => Ok(()),
    }
}

impl Resolved {
    /// Whether the side has been swapped in (it is gone from its side location).
    fn swapped(&self, runner: &Runner) -> Result<bool> {
        match self {
            Resolved::Database { side, .. } => Ok(!side.holds_data(runner)?),
            Resolved::Store { side, .. } => Ok(!exists(side)),
        }
    }

    /// Live to aside, side to live; what was already moved is not moved again.
    fn swap(&self, runner: &Runner) -> Result<()> {
        match self {
            Resolved::Database { live, side, aside } => live.swap_in(side, aside, runner),
            Resolved::Store { live, side, aside } => {
                if exists(side) {
                    if !exists(aside) {
                        rename_if_exists(live, aside)?;
                    }
                    rename_if_exists(side, live)?;
                }
                Ok(())
            }
        }
    }

    /// Puts the aside back in the live location, sending what is live (if it came
    /// from the side) back to the side location.
    fn unswap(&self, runner: &Runner) -> Result<()> {
        let swapped = self.swapped(runner)?;
        match self {
            Resolved::Database { live, side, aside } => {
                if swapped {
                    live.swap_in(aside, side, runner)
                } else if aside.holds_data(runner)? && !live.holds_data(runner)? {
                    // Killed between moving live aside and moving side in (SQLite).
                    live.swap_in(aside, side, runner)
                } else {
                    Ok(())
                }
            }
            Resolved::Store { live, side, aside } => {
                if swapped {
                    rename_if_exists(live, side)?;
                }
                if exists(aside) && !exists(live) {
                    rename_if_exists(aside, live)?;
                }
                Ok(())
            }
        }
    }

    fn remove_side(&self, runner: &Runner) -> Result<()> {
        match self {
            Resolved::Database { side, .. } => side.remove(runner),
            Resolved::Store { side, .. } => remove_dir(side),
        }
    }

    fn remove_aside(&self, runner: &Runner) -> Result<()> {
        match self {
            Resolved::Database { aside, .. } => aside.remove(runner),
            Resolved::Store { aside, .. } => remove_dir(aside),
        }
    }
}

/// Removes side and aside locations left by a restore that left no journal (older
/// ostler versions left `*.ostler-restore` files): with no journal, nothing in them
/// is anyone's only copy.
pub fn clear_leftovers(journal: &RestoreJournal, inst: &Instance, runner: &Runner) -> Result<()> {
    for place in &journal.places {
        let r = resolve(inst, place)?;
        r.remove_side(runner)?;
        r.remove_aside(runner)?;
    }
    Ok(())
}

/// Swaps every side in (phase `Swapping`, then `Swapped`), journaling first.
pub fn swap_all(
    journal: &mut RestoreJournal,
    inst: &Instance,
    state_dir: &Path,
    runner: &Runner,
    reporter: &dyn Reporter,
) -> Result<()> {
    journal.set_phase(state_dir, Phase::Swapping)?;
    crate::pause::point(reporter, &inst.name, "before-swap");
    for (i, place) in journal.places.iter().enumerate() {
        // Every side was just built, so each is swapped without asking whether it
        // was (the question recovery asks cannot tell an empty MariaDB side apart).
        resolve(inst, place)?.swap(runner)?;
        if i == 0 {
            crate::pause::point(reporter, &inst.name, "mid-swap");
        }
    }
    journal.set_phase(state_dir, Phase::Swapped)?;
    crate::pause::point(reporter, &inst.name, "after-swap");
    Ok(())
}

/// Ends a restore whose sides are all in place: removes the asides and the journal.
pub fn finish(
    journal: &RestoreJournal,
    inst: &Instance,
    state_dir: &Path,
    runner: &Runner,
) -> Result<()> {
    for place in &journal.places {
        let r = resolve(inst, place)?;
        if !r.swapped(runner)? {
            r.swap(runner)?;
        }
    }
    for place in &journal.places {
        let r = resolve(inst, place)?;
        r.remove_aside(runner)?;
        r.remove_side(runner)?;
    }
    journal.remove(state_dir)
}

/// Undoes a restore: every live location back as it was, sides and asides removed,
/// the journal removed.
pub fn roll_back(
    journal: &RestoreJournal,
    inst: &Instance,
    state_dir: &Path,
    runner: &Runner,
) -> Result<()> {
    for place in journal.places.iter().rev() {
        let r = resolve(inst, place)?;
        // While building, a side that is not there was not made yet: nothing live
        // was touched. Once swapping, every side was complete, so one that is gone
        // from its side location was swapped in.
        if journal.phase != Phase::Building {
            r.unswap(runner)?;
            r.remove_aside(runner)?;
        }
        r.remove_side(runner)?;
    }
    journal.remove(state_dir)
}

/// Finishes or undoes an unfinished restore of `inst`, by the phase it reached. The
/// caller holds the instance's lock. Does not start the instance.
pub fn settle(
    journal: &RestoreJournal,
    inst: &Instance,
    state_dir: &Path,
    runner: &Runner,
) -> Result<Settled> {
    let runner = runner.uninterruptible();
    match journal.phase {
        Phase::Building => {
            roll_back(journal, inst, state_dir, &runner)?;
            Ok(Settled::RolledBack)
        }
        Phase::Swapping | Phase::Swapped => match finish(journal, inst, state_dir, &runner) {
            Ok(()) => Ok(Settled::Finished),
            Err(e) => {
                roll_back(journal, inst, state_dir, &runner).map_err(|u| {
                    Error::failed(format!(
                        "finishing the interrupted restore of {} failed ({}), and so did undoing it: {}",
                        inst.name,
                        crate::error::chain(&e),
                        crate::error::chain(&u)
                    ))
                    .with_hint(format!(
                        "the journal {} names the side and aside locations to check by hand",
                        journal_path(state_dir, &inst.name).display()
                    ))
                })?;
                Ok(Settled::RolledBack)
            }
        },
    }
}

/// Settles the unfinished restore of `inst`, if any; the caller holds the lock.
/// Does not start the instance (the caller knows whether to, from `was_running`).
pub fn settle_pending(
    ostler: &Ostler,
    inst: &Instance,
    runner: &Runner,
) -> Result<Option<RecoverOutcome>> {
    let state_dir = ostler.state_dir();
    let Some(journal) = RestoreJournal::read(&state_dir, &inst.name)? else {
        return Ok(None);
    };
    let settled = settle(&journal, inst, &state_dir, runner)?;
    Ok(Some(RecoverOutcome {
        instance: inst.name.clone(),
        backup: journal.backup.clone(),
        phase: journal.phase,
        settled,
        was_running: journal.was_running,
        started: None,
    }))
}

/// Whether `instance` has an unfinished restore (a cheap look for a file).
pub fn pending(ostler: &Ostler, instance: &str) -> bool {
    journal_path(&ostler.state_dir(), instance).exists()
}

/// `ostler recover` for one instance: under its lock (a restore still running holds
/// it, so this is busy then), settles an unfinished restore and starts the instance
/// again if it was running. None when there was nothing to recover.
pub fn recover(ostler: &Ostler, instance: &str) -> Result<Option<RecoverOutcome>> {
    let inst = ostler.instance(instance)?;
    if !pending(ostler, &inst.name) {
        return Ok(None);
    }
    ostler.operate(&inst, "recover", Duration::from_secs(6 * 3600), |runner| {
        let Some(mut outcome) = settle_pending(ostler, &inst, runner)? else {
            return Ok(None);
        };
        let state = ostler.state()?;
        if outcome.was_running && ops::running_pid(&state, &inst)?.1.is_none() {
            outcome.started = Some(ops::start(ostler, &inst, runner)?);
        }
        Ok(Some(outcome))
    })
}

/// A store is restored into a sibling directory and swapped in by rename, which a
/// mount point refuses (EBUSY): say so before anything is stopped or built.
fn refuse_mount_point(instance: &str, store: &str, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (Ok(dir), Some(Ok(parent))) = (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return Ok(());
    };
    if dir.dev() == parent.dev() {
        return Ok(());
    }
    Err(Error::user(format!(
        "cannot restore store `{store}` of {instance}: {} is a mount point, and a restore swaps a store in by renaming a sibling directory over it",
        path.display()
    ))
    .with_hint(format!(
        "mount the volume one level up and point the store at a directory inside it (e.g. mount at {}/vol, path = \"vol/{store}\"); until then `ostler export` writes the backup's files to copy back by hand",
        path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )))
}

/// `ostler recover` for every instance of the service.
pub fn recover_all(ostler: &Ostler) -> Result<Vec<RecoverOutcome>> {
    let mut out = Vec::new();
    for name in ostler.config.instance_names() {
        if let Some(o) = recover(ostler, &name)? {
            out.push(o);
        }
    }
    Ok(out)
}
