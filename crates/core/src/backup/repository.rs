//! The service's backup repository as the backup procedures reach it: opening it
//! (never creating one by accident), and reading what backups stored in it
//! (manifests, store listings, table chains).
//!
//! Why opening is not just `Repository::open_or_init`: a repository on a disk that is
//! not mounted, or one whose `config.json` was deleted, used to be replaced silently by
//! a new empty one, and `verify --all` then said "ok" about nothing. So a repository
//! is created only by `ostler init`, or by the first backup of a service whose catalog
//! is empty and which has never seen a repository. The repository's id is remembered
//! in the state the first time it is opened; a repository with another id at the
//! configured path is reported, not used.

use ostler_repo::{RepoError, Repository, StreamRef};
use ostler_rows::{ChainReader, DeltaReader, Row, RowReader, RowsError};

use super::manifest::{FileEntry, Manifest};
use crate::error::{Error, Result};
use crate::instance::Ostler;
use crate::state::State;

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
    pub path: std::path::PathBuf,
    pub id: String,
    /// False when a repository was already there (its id is now remembered).
    pub created: bool,
}

/// Opens the service's repository; a missing one is an error.
pub fn repository(ostler: &Ostler) -> Result<Repository> {
    open(ostler, Create::Never)
}

/// Opens the service's repository, creating it only as `create` allows, and checks its
/// id against the one remembered in the state.
pub fn open(ostler: &Ostler, create: Create) -> Result<Repository> {
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
            Repository::init(&dir).map_err(|e| repo_error_at(&dir, e))?
        }
        Err(e) => return Err(repo_error_at(&dir, e)),
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
            (
                Repository::init(&dir).map_err(|e| repo_error_at(&dir, e))?,
                true,
            )
        }
        Err(e) => return Err(repo_error_at(&dir, e)),
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

fn repository_dir(ostler: &Ostler) -> Result<std::path::PathBuf> {
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

fn missing(
    dir: &std::path::Path,
    reason: &str,
    remembered: Option<&crate::state::RepositoryId>,
) -> Error {
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

fn repo_error_at(dir: &std::path::Path, e: RepoError) -> Error {
    match e {
        RepoError::NoSpace(_) => Error::repository(e),
        other => Error::failed(format!("repository {}: {other}", dir.display())),
    }
}

pub fn repo_err(e: RepoError) -> Error {
    Error::repository(e)
}

pub fn rows_err(e: RowsError) -> Error {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::failed(text)
}

/// Rows of an existing chain, from the repository.
pub fn chain_rows<'a>(
    repo: &'a Repository,
    base: &StreamRef,
    deltas: &[StreamRef],
) -> Result<impl Iterator<Item = ostler_rows::Result<Row>> + 'a> {
    let base = RowReader::new(std::io::BufReader::with_capacity(
        1 << 20,
        repo.read_stream(base),
    ))
    .map_err(rows_err)?;
    let mut readers = Vec::new();
    for d in deltas {
        readers.push(
            DeltaReader::new(std::io::BufReader::new(repo.read_stream(d))).map_err(rows_err)?,
        );
    }
    Ok(ChainReader::new(base, readers))
}

/// The files of a store as a backup listed them.
pub fn read_listing(repo: &Repository, listing: &StreamRef) -> Result<Vec<FileEntry>> {
    let bytes = repo.read_to_vec(listing).map_err(repo_err)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::failed(format!("unreadable store listing: {e}")))
}

/// All manifests in the repository (any instance, any state dir).
pub fn repo_manifests(repo: &Repository) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for name in repo.list_files("backups").map_err(repo_err)? {
        if !name.ends_with(".json") {
            continue;
        }
        let bytes = repo.get_file(&name).map_err(repo_err)?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!("repository file {name}: unreadable manifest: {e}"))
        })?;
        out.push(m);
    }
    Ok(out)
}
