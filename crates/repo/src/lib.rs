//! ostler's backup repository: content-addressed, deduplicated, compressed.
//!
//! Hourly backups of a mostly unchanged database should cost little, and a
//! backup must stay readable if ostler is gone. So streams (one per table
//! dump or store file) are cut into content-defined chunks, each chunk is
//! stored once under the hash of its content, and the format is simple enough
//! to read with `b3sum`, `zstd` and a few lines of shell. `FORMAT.md` beside
//! this crate is the full description; in short:
//!
//! ```text
//! <repo>/config.json          {"format":"ostler-repo","version":1,"id","created","chunker":{..},"hash":"blake3","compression":"zstd"}
//! <repo>/chunks/XX/<id>       "OSTC" 0x01 <one zstd frame>; id = blake3(plaintext) as 64 hex digits; XX = id[0..2]
//! <repo>/files/<name>         small named files (ostler: files/backups/<id>.json manifests)
//! <repo>/tmp/                 writes in progress (tmp, fsync, rename, fsync dir)
//! <repo>/lock                 flock(2): shared by writers, exclusive for gc
//! ```
//!
//! A stream is recorded by the caller as a [`StreamRef`] (size, whole-stream
//! BLAKE3, ordered chunk ids and lengths), typically inside a manifest stored
//! with [`Repository::put_file`]. The repository itself does not know which
//! chunks are referenced; [`Repository::gc`] is told.
//!
//! Guarantees: a name under `chunks/`, `files/` or `config.json` is complete
//! or absent after any crash; concurrent writers (threads or processes) never
//! conflict; every byte read back is verified against its hash before it is
//! returned. Unix only (`flock`, `fsync` on directories).

mod chunk;
mod config;
mod durable;
mod error;
mod files;
mod lock;
mod maintenance;
pub mod private;
mod reader;
pub mod space;
mod stream;

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use chunk::{CHUNK_FORMAT_ZSTD, CHUNK_MAGIC, ZSTD_LEVEL};
pub use config::{
    ChunkerAlgorithm, ChunkerParams, RepoConfig, DEFAULT_AVG_SIZE, DEFAULT_MAX_SIZE,
    DEFAULT_MIN_SIZE, FORMAT_NAME, FORMAT_VERSION,
};
pub use error::{RepoError, Result};
pub use lock::{LockMode, RepoLock};
pub use maintenance::{GcStats, RepoStats, TMP_MAX_AGE};
pub use reader::StreamReader;
pub use space::NoSpace;
pub use stream::{ChunkRef, StreamRef, WriteStats};

use durable::{Existing, DIR_MODE};
use error::IoContext;

const CONFIG_FILE: &str = "config.json";
const CHUNKS_DIR: &str = "chunks";
const FILES_DIR: &str = "files";
const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
/// Top-level entries `init` itself creates, so an init interrupted before it
/// wrote `config.json` can be run again on the same directory.
const SKELETON: [&str; 4] = [CHUNKS_DIR, FILES_DIR, TMP_DIR, LOCK_FILE];

/// How long lock requests wait by default before failing with [`RepoError::Busy`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// An open repository. Cheap to clone; clones share the lock bookkeeping.
#[derive(Clone, Debug)]
pub struct Repository {
    root: PathBuf,
    config: RepoConfig,
    lock_timeout: Duration,
    exclusive_owner: lock::ExclusiveOwner,
    damage: chunk::Damage,
}

/// Fails with [`RepoError::NotEmpty`] naming the first directory under `dir` (at most
/// `depth` levels down) that holds a file. A missing `dir` holds nothing.
fn refuse_content(dir: &Path, depth: usize) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RepoError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.at("list", dir)?;
        let is_dir = entry.file_type().at("stat", entry.path())?.is_dir();
        if !is_dir || depth <= 1 {
            return Err(RepoError::NotEmpty {
                path: dir.to_path_buf(),
            });
        }
        refuse_content(&entry.path(), depth - 1)?;
    }
    Ok(())
}

impl Repository {
    /// Creates a repository at `path`, which must not exist or be an empty
    /// directory (or hold only what an interrupted `init` left: empty directories).
    pub fn init(path: &Path) -> Result<Repository> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                if path.join(CONFIG_FILE).exists() {
                    return Err(RepoError::AlreadyARepository {
                        path: path.to_path_buf(),
                    });
                }
                for entry in fs::read_dir(path).at("list", path)? {
                    let entry = entry.at("list", path)?;
                    let name = entry.file_name();
                    if !SKELETON.iter().any(|s| name.as_os_str() == *s) {
                        return Err(RepoError::NotEmpty {
                            path: path.to_path_buf(),
                        });
                    }
                }
                // An interrupted init leaves empty directories only. Chunks or named
                // files without config.json are a repository that lost its config:
                // a new one there would get a new id and hide that.
                refuse_content(&path.join(CHUNKS_DIR), 2)?;
                refuse_content(&path.join(FILES_DIR), usize::MAX)?;
            }
            Ok(_) => {
                return Err(RepoError::NotEmpty {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(path)
                    .at("create repository directory", path)?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    durable::sync_dir(parent)?;
                }
            }
            Err(e) => return Err(RepoError::io("stat", path, e)),
        }

        let chunks = path.join(CHUNKS_DIR);
        durable::ensure_dir(&chunks)?;
        for shard in 0..=255u8 {
            durable::ensure_dir(&chunks.join(format!("{shard:02x}")))?;
        }
        durable::sync_dir(&chunks)?;
        durable::ensure_dir(&path.join(FILES_DIR))?;
        durable::ensure_dir(&path.join(TMP_DIR))?;
        let lock_path = path.join(LOCK_FILE);
        durable::write_atomic(&path.join(TMP_DIR), &lock_path, &[], Existing::Keep)?;
        durable::sync_dir(path)?;

        // config.json last: its presence is what makes the directory a repository.
        let config_path = path.join(CONFIG_FILE);
        let config = RepoConfig::new(path);
        let bytes = config.to_bytes(&config_path)?;
        let created =
            durable::write_atomic(&path.join(TMP_DIR), &config_path, &[&bytes], Existing::Keep)?;
        if !created {
            return Err(RepoError::AlreadyARepository {
                path: path.to_path_buf(),
            });
        }
        durable::sync_dir(path)?;
        Ok(Repository::with_config(path, config))
    }

    /// Opens the repository at `path`.
    pub fn open(path: &Path) -> Result<Repository> {
        let not_repo = |reason: &str| RepoError::NotARepository {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_repo("it is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_repo("the directory does not exist"))
            }
            Err(e) => return Err(RepoError::io("stat", path, e)),
        }
        let config_path = path.join(CONFIG_FILE);
        let bytes = match fs::read(&config_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_repo("it has no config.json"))
            }
            Err(e) => return Err(RepoError::io("read", &config_path, e)),
        };
        let config = RepoConfig::parse(&config_path, &bytes)?;
        if !path.join(CHUNKS_DIR).is_dir() {
            return Err(not_repo("it has config.json but no chunks/ directory"));
        }
        Ok(Repository::with_config(path, config))
    }

    /// Opens the repository at `path`, creating it first if there is none.
    pub fn open_or_init(path: &Path) -> Result<Repository> {
        if path.join(CONFIG_FILE).exists() {
            return Repository::open(path);
        }
        match Repository::init(path) {
            // Another process initialised it between our check and our init.
            Err(RepoError::AlreadyARepository { .. }) => Repository::open(path),
            other => other,
        }
    }

    fn with_config(path: &Path, config: RepoConfig) -> Repository {
        Repository {
            root: path.to_path_buf(),
            config,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            exclusive_owner: Arc::default(),
            damage: Arc::default(),
        }
    }

    /// Sets how long [`Repository::lock_shared`] and
    /// [`Repository::lock_exclusive`] (and the operations that take them) wait.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Repository {
        self.lock_timeout = timeout;
        self
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Takes the writers' lock. Hold it for a whole backup session (all its
    /// streams *and* its manifest) so that `gc` cannot run in between. Any
    /// number of processes may hold it at once.
    pub fn lock_shared(&self) -> Result<RepoLock> {
        lock::acquire(
            &self.lock_path(),
            lock::LockMode::Shared,
            self.lock_timeout,
            &self.exclusive_owner,
        )
    }

    /// Takes the lock exclusively (for garbage collection): waits for every
    /// writer to finish and keeps new ones out until dropped. Lock requests
    /// from the same thread through this handle or its clones pass while it is
    /// held; upgrading a shared lock the thread holds is not supported (it
    /// waits for itself and fails with [`RepoError::Busy`]).
    pub fn lock_exclusive(&self) -> Result<RepoLock> {
        lock::acquire(
            &self.lock_path(),
            lock::LockMode::Exclusive,
            self.lock_timeout,
            &self.exclusive_owner,
        )
    }

    pub(crate) fn chunks_dir(&self) -> PathBuf {
        self.root.join(CHUNKS_DIR)
    }

    pub(crate) fn files_dir(&self) -> PathBuf {
        self.root.join(FILES_DIR)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }
}
