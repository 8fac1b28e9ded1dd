//! The service's backup repository as ostler reaches it: opened (never created by
//! accident) into an [`OpenRepository`], a handle that holds the repository lock for
//! as long as it lives, and through which alone backups are written and read
//! (manifests, store listings, table chains).
//!
//! Why a handle: garbage collection deletes chunks no manifest names, so every reader
//! and writer must hold the shared lock while it works, and prune the exclusive one.
//! When each caller had to remember `repo.lock_shared()`, one forgot, and a prune
//! running beside a verify showed as damage that was not there. Now the lock is taken
//! when the handle is made and released when it is dropped; there is no other way to
//! the repository's contents. Opening twice in one operation is fine while both are
//! shared (a restore's safety backup opens its own); nothing that holds a shared handle
//! may ask for an exclusive one (the lock is `flock`, so it would wait for itself).
//!
//! Why opening is not just `Repository::open_or_init`: a repository on a disk that is
//! not mounted, or one whose `config.json` was deleted, used to be replaced silently by
//! a new empty one, and `verify --all` then said "ok" about nothing. So a repository
//! is created only by `ostler init`, or by the first backup of a service whose catalog
//! is empty and which has never seen a repository. The repository's id is remembered
//! in the state the first time it is opened; a repository with another id at the
//! configured path is reported, not used.

use std::collections::HashSet;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use ostler_repo::{
    GcStats, RepoConfig, RepoError, RepoLock, Repository, StreamReader, StreamRef, WriteStats,
};
use ostler_rows::{ChainReader, DeltaOp, DeltaReader, Row, RowReader};

use super::manifest::{FileEntry, Manifest, TableEntry};
use crate::error::{Error, Result};
use crate::instance::Ostler;
use crate::state::State;

/// Which lock a handle holds, by what it will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Backup, restore, verify, find, diff, partial restore, export, copy: any number
    /// at once; garbage collection waits for all of them.
    Shared,
    /// Prune (garbage collection): no other holder while it removes chunks.
    Exclusive,
}

/// Who may create the repository when there is none at the configured path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Nobody: a missing repository is an error.
    Never,
    /// The first backup of a service: only when the catalog is empty and no repository
    /// id is remembered.
    FirstBackup,
}

/// What `ostler init` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitOutcome {
    pub path: PathBuf,
    pub id: String,
    /// False when a repository was already there (its id is now remembered).
    pub created: bool,
}

/// Opens the service's repository, creating it only as `create` allows, and checks its
/// id against the one remembered in the state.
fn open_checked(ostler: &Ostler, create: Create) -> Result<Repository> {
    let dir = repository_dir(ostler)?;
    let state = ostler.state()?;
    let remembered = state.repository_id()?;
    let repo = match Repository::open(&dir) {
        Ok(repo) => repo,
        Err(RepoError::NotARepository { reason, .. }) => {
            let first = create == Create::FirstBackup
                && remembered.is_none()
                && super::catalog::is_empty(&state)?;
            if !first {
                return Err(missing(&dir, &reason, remembered.as_ref()));
            }
            Repository::init(&dir).map_err(|e| creating(&dir, e))?
        }
        Err(e) => return Err(opening(&dir, e)),
    };
    check_identity(&state, &repo, remembered)?;
    Ok(repo)
}

/// `ostler init`: creates the repository, or adopts the one that is there. With
/// `adopt`, a repository whose id differs from the remembered one becomes the
/// service's repository (the old id is forgotten).
pub fn init(ostler: &Ostler, adopt: bool) -> Result<InitOutcome> {
    let dir = repository_dir(ostler)?;
    let state = ostler.state()?;
    let remembered = state.repository_id()?;
    let (repo, created) = match Repository::open(&dir) {
        Ok(repo) => (repo, false),
        Err(RepoError::NotARepository { .. }) => {
            if let Some(old) = remembered.as_ref().filter(|_| !adopt) {
                return Err(Error::user(format!(
                    "not creating a repository at {}: this service's backups are in repository {} ({}), which is missing",
                    dir.display(),
                    short(&old.id),
                    old.path
                ))
                .with_hint("mount or restore the old repository; to start over with a new one, `ostler init --adopt`"));
            }
            (Repository::init(&dir).map_err(|e| creating(&dir, e))?, true)
        }
        Err(e) => return Err(opening(&dir, e)),
    };
    let id = repo.config().id.clone();
    match remembered {
        Some(old) if old.id != id && !adopt => return Err(changed(&repo, &old)),
        Some(old) if old.id == id => {}
        _ => state.remember_repository(&id, &dir.display().to_string())?,
    }
    Ok(InitOutcome {
        path: dir,
        id,
        created,
    })
}

fn repository_dir(ostler: &Ostler) -> Result<PathBuf> {
    ostler.config.repository_dir().ok_or_else(|| {
        Error::user("no [repository] in the config: backups need somewhere to go")
            .with_hint("add:\n[repository]\npath = \"backups\"")
    })
}

fn check_identity(
    state: &State,
    repo: &Repository,
    remembered: Option<crate::state::RepositoryId>,
) -> Result<()> {
    let id = &repo.config().id;
    match remembered {
        None => state.remember_repository(id, &repo.path().display().to_string()),
        Some(old) if &old.id == id => Ok(()),
        Some(old) => Err(changed(repo, &old)),
    }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

fn missing(dir: &Path, reason: &str, remembered: Option<&crate::state::RepositoryId>) -> Error {
    let known = match remembered {
        Some(old) => format!(
            " (this service's backups are in repository {})",
            short(&old.id)
        ),
        None => String::new(),
    };
    Error::failed(format!(
        "the backup repository {} is missing: {reason}{known}",
        dir.display()
    ))
    .with_hint("if its disk is not mounted, mount it; to create a new repository, `ostler init`")
}

fn changed(repo: &Repository, old: &crate::state::RepositoryId) -> Error {
    Error::failed(format!(
        "the backup repository {} is not the one this service uses: its id is {}, the state remembers {} (first seen at {} on {})",
        repo.path().display(),
        short(&repo.config().id),
        short(&old.id),
        old.path,
        old.first_seen
    ))
    .with_hint("if the repository was replaced on purpose, `ostler init --adopt` makes it the service's repository")
}

fn opening(dir: &Path, e: RepoError) -> Error {
    Error::repository(
        format!("cannot open the backup repository {}", dir.display()),
        e,
    )
}

fn creating(dir: &Path, e: RepoError) -> Error {
    Error::repository(
        format!("cannot create the backup repository {}", dir.display()),
        e,
    )
}

/// What a table's rows are, for errors about them.
fn table_what(backup: &str, table: &TableEntry) -> String {
    format!("reading table `{}` of backup {backup}", table.spec.name)
}

/// The service's repository, open and locked as its [`Access`] says until dropped.
/// Every read and write of the repository's contents goes through one.
#[derive(Debug)]
pub struct OpenRepository {
    repo: Repository,
    access: Access,
    _lock: RepoLock,
}

impl OpenRepository {
    /// Opens the service's repository (a missing one is an error, never made anew)
    /// and takes its lock.
    pub fn open(ostler: &Ostler, access: Access) -> Result<OpenRepository> {
        OpenRepository::lock(open_checked(ostler, Create::Never)?, access)
    }

    /// Opens the repository for a backup, shared: the first backup of a service that
    /// has never had one creates it.
    pub fn for_backup(ostler: &Ostler) -> Result<OpenRepository> {
        OpenRepository::lock(open_checked(ostler, Create::FirstBackup)?, Access::Shared)
    }

    /// Opens the repository at `dir`, whichever service's it is (nothing is remembered
    /// or checked against the state), and takes its lock.
    pub fn at(dir: &Path, access: Access) -> Result<OpenRepository> {
        OpenRepository::lock(Repository::open(dir).map_err(|e| opening(dir, e))?, access)
    }

    fn lock(repo: Repository, access: Access) -> Result<OpenRepository> {
        let lock = match access {
            Access::Shared => repo.lock_shared(),
            Access::Exclusive => repo.lock_exclusive(),
        }
        .map_err(|e| {
            Error::repository(
                format!(
                    "cannot lock the backup repository {}",
                    repo.path().display()
                ),
                e,
            )
        })?;
        Ok(OpenRepository {
            repo,
            access,
            _lock: lock,
        })
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// The repository's `config.json` (its id, chunker...).
    pub fn config(&self) -> &RepoConfig {
        self.repo.config()
    }

    pub fn access(&self) -> Access {
        self.access
    }

    /// A repository error while doing `what`, naming this repository.
    fn err<'a>(
        &'a self,
        what: impl std::fmt::Display + 'a,
    ) -> impl FnOnce(RepoError) -> Error + 'a {
        move |e| {
            Error::repository(
                format!("{what} in the repository {}", self.path().display()),
                e,
            )
        }
    }

    // --- manifests ---

    /// All manifests in the repository (any instance, any state dir).
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for name in self
            .repo
            .list_files("backups")
            .map_err(self.err("listing the manifests"))?
        {
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = self
                .repo
                .get_file(&name)
                .map_err(self.err(format_args!("reading the manifest {name}")))?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                Error::failed(format!(
                    "the manifest {} is unreadable: {e}",
                    self.path().join("files").join(&name).display()
                ))
            })?;
            out.push(m);
        }
        Ok(out)
    }

    /// The bytes of backup `id`'s manifest as the repository holds it, if it does.
    pub fn manifest_bytes(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let name = Manifest::repo_file(id);
        let what = || format!("reading the manifest of backup {id}");
        if !self.repo.has_file(&name).map_err(self.err(what()))? {
            return Ok(None);
        }
        self.repo
            .get_file(&name)
            .map(Some)
            .map_err(self.err(what()))
    }

    /// Writes a backup's manifest: from now on the backup is in the repository.
    pub fn put_manifest(&self, m: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Other(e.into()))?;
        self.repo
            .put_file(&Manifest::repo_file(&m.id), &json)
            .map_err(self.err(format_args!("writing the manifest of backup {}", m.id)))
    }

    /// Removes backup `id`'s manifest; false when there was none.
    pub fn remove_manifest(&self, id: &str) -> Result<bool> {
        self.repo
            .remove_file(&Manifest::repo_file(id))
            .map_err(self.err(format_args!("removing the manifest of backup {id}")))
    }

    /// Every named file (manifests and whatever else is under `files/`).
    pub fn named_files(&self) -> Result<Vec<String>> {
        self.repo
            .list_files("")
            .map_err(self.err("listing the named files"))
    }

    /// One named file's bytes.
    pub fn named_file(&self, name: &str) -> Result<Vec<u8>> {
        self.repo
            .get_file(name)
            .map_err(self.err(format_args!("reading {name}")))
    }

    // --- streams ---

    /// A stream's bytes as a reader; its `Read` errors carry the [`RepoError`].
    pub fn read_stream(&self, stream: &StreamRef) -> StreamReader {
        self.repo.read_stream(stream)
    }

    /// A (small) stream's bytes; `what` names it for errors.
    pub fn read_to_vec(&self, stream: &StreamRef, what: &str) -> Result<Vec<u8>> {
        self.repo
            .read_to_vec(stream)
            .map_err(self.err(format_args!("reading {what}")))
    }

    /// Stores a stream read from `reader`.
    pub fn write_stream(&self, reader: impl Read, what: &str) -> Result<(StreamRef, WriteStats)> {
        self.repo
            .write_stream(reader, &|_| {})
            .map_err(self.err(format_args!("storing {what}")))
    }

    /// Stores `bytes` as a stream.
    pub fn write_bytes(&self, bytes: &[u8], what: &str) -> Result<(StreamRef, WriteStats)> {
        self.repo
            .write_bytes(bytes)
            .map_err(self.err(format_args!("storing {what}")))
    }

    /// The files of a store as a backup listed them.
    pub fn listing(&self, store: &str, listing: &StreamRef) -> Result<Vec<FileEntry>> {
        let what = format!("the listing of store `{store}`");
        let bytes = self.read_to_vec(listing, &what)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::failed(format!("{what} is unreadable: {e}")))
    }

    /// A table's rows as backup `backup` stored them: its chain (base and deltas)
    /// replayed, in key order.
    pub fn chain_rows(&self, backup: &str, table: &TableEntry) -> Result<TableChain<'_>> {
        let what = table_what(backup, table);
        let base = RowReader::new(BufReader::with_capacity(
            1 << 20,
            self.repo.read_stream(&table.base),
        ))
        .map_err(|e| Error::rows(what.clone(), e))?;
        let mut readers = Vec::new();
        for d in &table.deltas {
            readers.push(
                DeltaReader::new(BufReader::new(self.repo.read_stream(d)))
                    .map_err(|e| Error::rows(what.clone(), e))?,
            );
        }
        Ok(TableChain {
            rows: ChainReader::new(base, readers),
            what,
            _held: std::marker::PhantomData,
        })
    }

    /// The operations of one delta of `table`'s chain in backup `backup`.
    pub fn delta_ops(
        &self,
        backup: &str,
        table: &TableEntry,
        delta: &StreamRef,
    ) -> Result<impl Iterator<Item = Result<DeltaOp>> + '_> {
        let what = table_what(backup, table);
        let reader = DeltaReader::new(BufReader::new(self.repo.read_stream(delta)))
            .map_err(|e| Error::rows(what.clone(), e))?;
        Ok(reader.map(move |op| op.map_err(|e| Error::rows(what.clone(), e))))
    }

    // --- chunks ---

    /// Reads chunk `id` and checks it against its hash: the chunk's fault, if any, is
    /// the answer, not a failure of the caller.
    pub fn verify_chunk(&self, id: &str) -> std::result::Result<(), RepoError> {
        self.repo.verify_chunk(id)
    }

    /// Every chunk id in the repository.
    pub fn chunk_ids(&self) -> Result<Vec<String>> {
        self.repo
            .chunk_ids()
            .map_err(self.err("listing the chunks"))
    }

    /// Where chunk `id` lives.
    pub fn chunk_path(&self, id: &str) -> Result<PathBuf> {
        self.repo
            .chunk_path(id)
            .map_err(self.err(format_args!("finding chunk {id}")))
    }

    /// Marks chunks known bad, so writes of their content store them afresh.
    pub fn mark_damaged<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.repo.mark_damaged(ids)
    }

    pub fn is_marked_damaged(&self, id: &str) -> bool {
        self.repo.is_marked_damaged(id)
    }

    /// The chunks marked bad (by [`OpenRepository::mark_damaged`] or found by a read).
    pub fn damaged_chunks(&self) -> Vec<String> {
        self.repo.damaged_chunks()
    }

    /// The marked chunks that a write stored afresh.
    pub fn rewritten_chunks(&self) -> Vec<String> {
        self.repo.rewritten_chunks()
    }

    /// Removes every chunk not in `live`, and leftovers in `tmp/`. Only through an
    /// exclusive handle: asking for it under a shared one would wait for itself.
    pub fn gc(&self, live: &HashSet<String>) -> Result<GcStats> {
        if self.access != Access::Exclusive {
            return Err(Error::Other(anyhow::anyhow!(
                "internal: garbage collection through a shared repository handle"
            )));
        }
        let stats = self.repo.gc(live).map_err(self.err("collecting garbage"))?;
        let _ = self.repo.clean_tmp();
        Ok(stats)
    }
}

/// A table's rows from a backup, as [`OpenRepository::chain_rows`] replays them. As an
/// iterator it yields the row stream's own errors (for `diff` and `content_hash`);
/// [`TableChain::checked`] gives errors that say which table of which backup.
pub struct TableChain<'a> {
    rows: ChainReader<RowReader<BufReader<StreamReader>>, DeltaReader<BufReader<StreamReader>>>,
    what: String,
    /// The rows borrow the handle, whose lock keeps their chunks in place.
    _held: std::marker::PhantomData<&'a OpenRepository>,
}

impl<'a> TableChain<'a> {
    /// What these rows are, for an error about them ("reading table `x` of backup y").
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The rows, with errors in ostler's terms.
    pub fn checked(self) -> impl Iterator<Item = Result<Row>> + 'a {
        let what = self.what;
        self.rows
            .map(move |r| r.map_err(|e| Error::rows(what.clone(), e)))
    }
}

impl Iterator for TableChain<'_> {
    type Item = ostler_rows::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard: gc through a shared handle would wait for its own lock for a
    /// minute and then fail as "busy"; it is refused at once instead.
    #[test]
    fn gc_through_a_shared_handle_is_refused_not_left_waiting_for_itself() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init(&dir.path().join("repo")).unwrap();
        let shared = OpenRepository::at(&dir.path().join("repo"), Access::Shared).unwrap();
        let e = shared.gc(&HashSet::new()).unwrap_err();
        // Refused as a mistake in ostler, not left to time out as "busy".
        assert_eq!(e.kind(), crate::ErrorKind::Internal, "{e}");
        drop(shared);
        let exclusive = OpenRepository::at(&dir.path().join("repo"), Access::Exclusive).unwrap();
        assert_eq!(exclusive.gc(&HashSet::new()).unwrap().removed_chunks, 0);
    }

    /// A missing repository directory names the path and keeps the repository's
    /// reason as the cause.
    #[test]
    fn opening_a_missing_repository_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let e = OpenRepository::at(&dir.path().join("nope"), Access::Shared).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open the backup repository {}",
                dir.path().join("nope").display()
            )
        );
        let cause = std::error::Error::source(&e).expect("a cause").to_string();
        assert!(cause.contains("is not an ostler repository"), "{cause}");
    }
}
