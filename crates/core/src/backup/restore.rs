//! Putting a backup back: the whole database and stores of an instance, loaded into
//! side locations that `recover` swaps in (`load_side_database`, `restore_store`),
//! into a scratch database to prove a backup restores (`restore_test`), or out as the
//! engine's own files that need no ostler (`export`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{DatabaseEntry, Manifest, StoreEntry};
use super::repository::OpenRepository;
use crate::engine::Database;
use crate::engine::{self, SchemaPart, TableRows};
use crate::error::{Error, Result};
use crate::instance::{Instance, Ostler};
use crate::report::{Progress, Reporter, Silent, Unit};

/// The schema parts of a backup, read from the repository.
pub fn schema_parts(repo: &OpenRepository, db: &DatabaseEntry) -> Result<Vec<SchemaPart>> {
    db.schema
        .iter()
        .map(|s| {
            Ok(SchemaPart {
                name: s.name.clone(),
                bytes: repo.read_to_vec(&s.stream, &format!("the schema part {}", s.name))?,
            })
        })
        .collect()
}

/// Every table of backup `backup` with its rows, streamed from the repository.
pub fn table_rows<'a>(
    repo: &'a OpenRepository,
    backup: &'a str,
    db: &'a DatabaseEntry,
) -> impl Iterator<Item = Result<TableRows<'a>>> + 'a {
    db.tables.iter().map(move |t| {
        let rows = repo.chain_rows(backup, t)?.checked();
        Ok((
            t.spec.clone(),
            Box::new(rows) as Box<dyn Iterator<Item = Result<ostler_rows::Row>>>,
        ))
    })
}

/// Loads backup `backup`'s database into `side`, a side database beside the live one
/// (see `recover`), created empty first; the live database is not touched.
pub fn load_side_database(
    repo: &OpenRepository,
    backup: &str,
    db: &DatabaseEntry,
    side: &Database,
    runner: &crate::exec::Runner,
) -> Result<()> {
    if db.kind != side.kind() {
        return Err(Error::user(format!(
            "the backup holds a {} database; the target instance uses {}",
            db.kind,
            side.kind()
        )));
    }
    let schema = schema_parts(repo, db)?;
    let reporter = runner.reporter().as_ref();
    let loaded = reporter.progress("restore", Unit::Tables, Some(db.tables.len() as u64));
    let mut tables = table_rows(repo, backup, db)
        .zip(&db.tables)
        .map(|(t, entry)| {
            let (spec, rows) = t?;
            let label = format!("restore {}", spec.name);
            let rows = Loading {
                rows,
                counted: Some(reporter.progress(&label, Unit::Rows, Some(entry.rows))),
                loaded: loaded.as_ref(),
                table: spec.name.clone(),
            };
            Ok((spec, Box::new(rows) as Box<dyn Iterator<Item = _>>))
        });
    // Drops a leftover side and, on a server, creates the side database empty.
    side.nuke(runner)?;
    engine::load(side, None, &schema, &mut tables)
}

/// A table's rows on their way into the database, counted: each row on the table's
/// own progress, and the table on `loaded` once its last row was taken.
struct Loading<'a> {
    rows: Box<dyn Iterator<Item = Result<ostler_rows::Row>> + 'a>,
    counted: Option<Box<dyn Progress>>,
    loaded: &'a dyn Progress,
    table: String,
}

impl Iterator for Loading<'_> {
    type Item = Result<ostler_rows::Row>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.rows.next();
        match (&next, self.counted.take()) {
            (Some(_), Some(counted)) => {
                counted.inc(1);
                self.counted = Some(counted);
            }
            (None, Some(counted)) => {
                // The table's own progress ends before the tables' line names it.
                drop(counted);
                self.loaded.message(&self.table);
                self.loaded.inc(1);
            }
            (_, None) => {}
        }
        next
    }
}

/// Files under `live` that have no counterpart under `restored`: what a restore of
/// the store removes (the orphans), as paths relative to the store.
pub fn store_orphans(live: &Path, restored: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(live)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(live).ok()?.to_path_buf();
            (std::fs::symlink_metadata(restored.join(&rel)).is_err())
                .then(|| rel.to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

/// What restoring a store did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreOutcome {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    /// Files that were in the store but not in the backup, removed.
    pub orphans_removed: Vec<String>,
}

/// Writes a store's files from the backup into `root` and removes files the backup
/// does not have (orphans), listing them.
pub fn restore_store(
    repo: &OpenRepository,
    entry: &StoreEntry,
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<StoreOutcome> {
    use std::os::unix::fs::PermissionsExt;
    let files = repo.listing(&entry.name, &entry.listing)?;
    let progress = reporter.progress(
        &format!("restore store {}", entry.name),
        Unit::Bytes,
        Some(entry.bytes),
    );
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let mut outcome = StoreOutcome {
        name: entry.name.clone(),
        ..Default::default()
    };
    let wanted: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for f in &files {
        if f.path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(Error::failed(format!(
                "store {}: unsafe path `{}` in the backup",
                entry.name, f.path
            )));
        }
        let dest = root.join(&f.path);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let tmp = dest.with_file_name(format!(
            ".{}.ostler-restore",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let written = (|| {
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&tmp).map_err(|e| Error::io_at("create", &tmp, e))?,
            );
            let mut reader = repo.read_stream(&f.stream);
            std::io::copy(&mut reader, &mut out)
                .and_then(|_| out.flush())
                .map_err(
                    |e| match ostler_repo::NoSpace::from_io("write", &dest, &e) {
                        Some(full) => Error::NoSpace(full.needing(f.size)),
                        None => Error::io(format!("restoring {}", dest.display()), e),
                    },
                )
        })();
        if let Err(e) = written {
            // Never leave a half-written temporary beside the store's files.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode & 0o7777));
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(f.mtime_ns.max(0) as u64);
        if let Ok(file) = std::fs::File::options().write(true).open(&tmp) {
            let _ = file.set_modified(mtime);
        }
        std::fs::rename(&tmp, &dest)
            .map_err(|e| Error::io(format!("replacing {}", dest.display()), e))?;
        outcome.files += 1;
        outcome.bytes += f.size;
        progress.message(&format!("{} files", outcome.files));
        progress.inc(f.size);
    }
    drop(progress);
    for entry in walkdir::WalkDir::new(root).contents_first(true) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        if !wanted.contains(rel.as_str()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(format!("removing orphan {}", entry.path().display()), e))?;
            outcome.orphans_removed.push(rel);
        }
    }
    outcome.orphans_removed.sort();
    Ok(outcome)
}

/// Writes a backup as native files into `dir`: the database in the engine's own format
/// and the store files as a plain tree, plus a README saying how to restore by hand.
pub fn export(repo: &OpenRepository, m: &Manifest, dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(Error::user(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let existed = dir.exists();
    // Owner-only: nobody else reaches anything inside. Store files keep the modes
    // recorded in the backup, so `rsync -a stores/NAME/ DEST/` puts them back as they were.
    ostler_repo::private::create_dir_all(dir).map_err(|e| Error::io_at("create", dir, e))?;
    let result = write_export(repo, m, dir);
    if result.is_err() {
        // Half an export looks like an export, and a full disk wants its room back.
        if existed {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}

/// The files of [`export`], into the existing empty `dir`.
fn write_export(repo: &OpenRepository, m: &Manifest, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut how = format!(
        "Backup {} of instance {} ({}), taken {}.\nRestore with the database's own tools, no ostler needed:\n\n",
        m.id, m.instance, m.service, m.started_at
    );
    if let Some(db) = &m.database {
        let schema = schema_parts(repo, db)?;
        let files = engine::export(db.kind, &schema, &mut table_rows(repo, &m.id, db), dir)?;
        let native = db.kind.engine().native_restore();
        how += &format!(
            "  {:<11} {}",
            format!("{}:", native.engine),
            native.commands.join(" && ")
        );
        if let Some(other) = native.alternative {
            how += &format!("   (or: {other})");
        }
        how += "\n";
        written.extend(files);
    }
    if !m.stores.is_empty() {
        let stores = dir.join("stores");
        ostler_repo::private::create_dir_all(&stores)
            .map_err(|e| Error::io_at("create", &stores, e))?;
    }
    for s in &m.stores {
        let root = dir.join("stores").join(&s.name);
        restore_store(repo, s, &root, &Silent)?;
        how += &format!(
            "  store {}:  copy stores/{}/ into place (rsync -a stores/{}/ DEST/)\n",
            s.name, s.name, s.name
        );
        written.push(root);
    }
    let readme = dir.join("README.txt");
    ostler_repo::private::write_file(&readme, how.as_bytes())
        .map_err(|e| Error::io_at("write", &readme, e))?;
    written.push(readme);
    Ok(written)
}

/// One table's comparison in a restore test.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows_expected: u64,
    pub rows_restored: u64,
    pub hash_matches: bool,
}

/// Restores the backup's database into a scratch database of the same engine (a temp
/// file, or a fresh database on the instance's server), re-captures it and compares
/// every table's row count and content hash with the catalog. The scratch is removed.
pub fn restore_test(
    ostler: &Ostler,
    repo: &OpenRepository,
    m: &Manifest,
    inst: &Instance,
) -> Result<Vec<TableCheck>> {
    let Some(db) = &m.database else {
        return Ok(vec![]);
    };
    let target = inst.database.as_ref().ok_or_else(|| {
        Error::user(format!(
            "instance `{}` has no database to borrow a server from",
            inst.name
        ))
    })?;
    let schema = schema_parts(repo, db)?;
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temp dir", e))?;
    let runner = ostler.runner();
    let scratch_name = format!("ostler_scratch_{}", m.id);
    let scratch = target.engine().scratch(target, &scratch_name, tmp.path())?;
    if db.kind != scratch.kind() {
        return Err(Error::user(format!(
            "backup {} holds a {} database but instance `{}` uses {}",
            m.id,
            db.kind,
            inst.name,
            scratch.kind()
        )));
    }
    ostler.reporter.info(
        &inst.name,
        &format!("restore test of {} into scratch {}", m.id, scratch.name()),
    );
    // Drops a leftover scratch and, on a server, creates it empty.
    scratch.nuke(&runner)?;
    let result = (|| -> Result<Vec<TableCheck>> {
        engine::load(&scratch, None, &schema, &mut table_rows(repo, &m.id, db))?;
        let mut snap = engine::open_snapshot(&scratch, tmp.path(), &runner)?;
        let mut checks = Vec::new();
        for t in &db.tables {
            let spec = snap
                .tables()
                .iter()
                .find(|s| s.name == t.spec.name)
                .cloned()
                .ok_or_else(|| {
                    Error::failed(format!("table {} missing after restore", t.spec.name))
                })?;
            let mut hasher = ostler_rows::ContentHasher::new();
            let mut rows = Vec::new();
            snap.rows(&spec, &mut |row| {
                rows.push(row);
                Ok(())
            })?;
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            for r in &rows {
                hasher.add_row(r);
            }
            let (n, hash) = hasher.finish();
            checks.push(TableCheck {
                table: t.spec.name.clone(),
                rows_expected: t.rows,
                rows_restored: n,
                hash_matches: hash == t.hash,
            });
        }
        snap.finish()?;
        Ok(checks)
    })();
    if let Err(e) = scratch.remove(&runner) {
        ostler.reporter.warn(
            &inst.name,
            &format!(
                "could not remove the scratch database {}: {e}",
                scratch.name()
            ),
        );
    }
    result
}
