//! Off-host copies of the backup repository (`ostler copy`, `[[repository.copies]]`).
//!
//! A repository on the same disk as the service it backs up is lost with that disk,
//! so `ostler copy` sends it somewhere else: another directory (a mounted disk, NFS),
//! an SFTP server, or S3-compatible object storage. A copy has the repository's own
//! layout (`config.json`, `chunks/XX/<id>`, `files/backups/<id>.json`), so a directory
//! copy opens as a repository, and any copy can be fetched back with `sftp`, `rclone`
//! or `aws s3 sync` and restored from while ostler itself is gone.
//!
//! Every name in a repository is immutable once written, which keeps copying simple:
//! a copy is a set difference, not a sync. What makes it safe is the order. Chunks
//! travel before the manifests that need them, and every file arrives whole (see
//! [`Backend::put`]), so a copy interrupted at any point (Ctrl-C, a dropped link, a
//! full disk) holds only complete backups, and the next run sends only what is still
//! missing. [`prune_copy`] removes in the opposite order: manifests first, then the
//! chunks no remaining manifest needs.
//!
//! The backends live in their own files; each says why it is built the way it is.

mod dir;
mod prune;
mod s3;
mod sftp;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::backup::repository::OpenRepository;
use crate::config::{Config, CopyConfig, CopyTarget};
use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::report::{Interrupt, Reporter, Unit};

pub use dir::DirBackend;
pub use prune::{plan_prune_copy, prune_copy, PrunePlan, PruneStats};
pub use s3::S3Backend;
pub use sftp::{SftpBackend, SshOptions};

/// The repository's config at the destination; sent first, compared on every run.
pub const CONFIG_FILE: &str = "config.json";
/// Where chunks live, as `chunks/XX/<64 hex digits>`.
pub const CHUNKS_DIR: &str = "chunks";
/// Where named files live; backup manifests are `files/backups/<id>.json`.
pub const FILES_DIR: &str = "files";
/// Where manifests live at the destination.
pub const BACKUPS_DIR: &str = "files/backups";
/// Leading part of the name of a file being uploaded (see [`Backend::put`]).
/// Repository names never start with a dot, so these can never be taken for data.
pub const TEMP_PREFIX: &str = ".ostler-tmp-";

/// Chunks are sent by this many threads at once: sending one file is mostly
/// waiting (an fsync, a round trip), so a few in flight keep the link busy.
const SEND_THREADS: usize = 4;

/// Somewhere a copy of the repository can live. Paths are relative to the copy's
/// root, `/`-separated, without `.` or `..` components.
pub trait Backend: Send + Sync {
    /// Every file under the directory `prefix_dir` (`""` for all), recursively, as
    /// paths relative to the copy's root (usable with [`Backend::get`]), sorted.
    /// A directory that does not exist lists as empty. Leftovers of interrupted
    /// uploads (names starting with [`TEMP_PREFIX`]) are included, for prune.
    fn list(&self, prefix_dir: &str) -> Result<Vec<String>>;
    /// Whether the file exists.
    fn exists(&self, path: &str) -> Result<bool>;
    /// Stores the content of `local_file` at `path`, atomically: the bytes go to a
    /// temporary name in the same directory first and are renamed (or, for object
    /// storage, published by the one PUT) only when complete, so an interrupted
    /// upload never leaves a partial file under its real name. Missing directories
    /// are created. If `path` already exists the backend may keep the existing file
    /// (an SFTP rename does not replace): ostler only puts immutable files.
    fn put(&self, path: &str, local_file: &Path) -> Result<()>;
    /// The file's content.
    fn get(&self, path: &str) -> Result<Vec<u8>>;
    /// Removes the file; removing a missing file is not an error.
    fn remove(&self, path: &str) -> Result<()>;
    /// Where this is, for messages (`sftp://backup@nas:/srv/ostler`); never a secret.
    fn describe(&self) -> String;
}

/// Opens the backend for one of `config`'s copies; relative paths in it are
/// resolved against the config file's directory. SFTP connects here, its `ssh`
/// run through `runner`.
pub fn open_backend(
    config: &Config,
    copy: &CopyConfig,
    runner: &Runner,
) -> Result<Box<dyn Backend>> {
    let base = config.base_dir();
    let context = |e: Error| match e {
        Error::User { message, hint } => Error::User {
            message: format!("copy `{}`: {message}", copy.name),
            hint,
        },
        Error::Failed { message, hint } => Error::Failed {
            message: format!("copy `{}`: {message}", copy.name),
            hint,
        },
        other => other,
    };
    let backend: Box<dyn Backend> = match &copy.target {
        CopyTarget::Dir { path } => Box::new(DirBackend::new(&base.join(path))),
        CopyTarget::Sftp {
            host,
            user,
            port,
            path,
            identity_file,
            known_hosts,
        } => {
            let ssh = sftp::SshOptions {
                host: host.clone(),
                user: user.clone(),
                port: *port,
                identity_file: identity_file.as_ref().map(|p| base.join(p)),
                known_hosts: known_hosts.as_ref().map(|p| base.join(p)),
            };
            Box::new(SftpBackend::connect(&ssh, path, runner).map_err(context)?)
        }
        CopyTarget::S3 {
            endpoint,
            bucket,
            region,
            prefix,
            access_key_env,
            secret_key_env,
        } => {
            let key = env_var(access_key_env).map_err(context)?;
            let secret = env_var(secret_key_env).map_err(context)?;
            Box::new(
                S3Backend::new(endpoint, bucket, region, prefix.as_deref(), &key, &secret)
                    .map_err(context)?,
            )
        }
    };
    Ok(backend)
}

fn env_var(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) => Err(Error::user(format!("environment variable {name} is empty"))),
        Err(_) => Err(Error::user(format!(
            "environment variable {name} is not set"
        ))
        .with_hint(format!(
            "export {name} in the environment ostler runs in; keys are never read from the config file"
        ))),
    }
}

/// What [`copy_repository`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    /// Files sent by this run.
    pub files_sent: u64,
    /// Bytes of the files sent.
    pub bytes_sent: u64,
    /// Files of the local repository that the destination already had.
    pub files_present: u64,
}

/// Sends to `backend` what the local repository has and the copy lacks:
/// `config.json` first, then the missing chunks, then the missing manifests (and any
/// other named files) last. Idempotent; after an interruption the next run sends only
/// what is still missing. Refuses a destination that holds another repository.
pub fn copy_repository(
    repo: &OpenRepository,
    backend: &dyn Backend,
    reporter: &dyn Reporter,
    interrupt: &Interrupt,
) -> Result<CopyStats> {
    // The handle's shared lock keeps the local gc out while we read: a chunk listed
    // here stays until sent. Named files before chunks: a backup writes its chunks
    // before its manifest, so every manifest listed now has its chunks in the chunk
    // listing taken after it.
    let repo_dir = repo.path();
    let files = repo.named_files()?;
    let chunks = repo.chunk_ids()?;
    let present: HashSet<String> = backend.list("")?.into_iter().collect();
    check_same_repository(repo_dir, backend, &present)?;

    let mut stats = CopyStats::default();
    let mut missing = |path: String, local: std::path::PathBuf| -> Result<Option<Pending>> {
        if present.contains(&path) {
            stats.files_present += 1;
            return Ok(None);
        }
        let size = std::fs::metadata(&local)
            .map_err(|e| Error::io(format!("stat {}", local.display()), e))?
            .len();
        Ok(Some(Pending { path, local, size }))
    };
    let mut first = Vec::new();
    if let Some(p) = missing(CONFIG_FILE.to_string(), repo_dir.join(CONFIG_FILE))? {
        first.push(p);
    }
    let mut middle = Vec::new();
    for id in &chunks {
        let path = format!("{CHUNKS_DIR}/{}/{id}", &id[..2]);
        if let Some(p) = missing(path, repo.chunk_path(id)?)? {
            middle.push(p);
        }
    }
    let mut last = Vec::new();
    for name in &files {
        let local = repo_dir.join(FILES_DIR).join(name);
        if let Some(p) = missing(format!("{FILES_DIR}/{name}"), local)? {
            last.push(p);
        }
    }

    let total: u64 = first
        .iter()
        .chain(&middle)
        .chain(&last)
        .map(|p| p.size)
        .sum();
    let progress = reporter.progress(
        &format!("copy to {}", backend.describe()),
        Unit::Bytes,
        Some(total),
    );
    let sender = Sender {
        backend,
        interrupt,
        progress: progress.as_ref(),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let result = sender
        .send_in_order(&first)
        .and_then(|()| sender.send_parallel(&middle))
        .and_then(|()| sender.send_in_order(&last));
    stats.files_sent = sender.files.load(Ordering::SeqCst);
    stats.bytes_sent = sender.bytes.load(Ordering::SeqCst);
    tracing::info!(
        destination = %backend.describe(),
        files_sent = stats.files_sent,
        bytes_sent = stats.bytes_sent,
        files_present = stats.files_present,
        ok = result.is_ok(),
        "copy"
    );
    result.map(|()| stats)
}

/// Ids of the backups whose manifest is at the destination, sorted. Only complete
/// backups ever have one there (see the module comment).
pub fn list_backups(backend: &dyn Backend) -> Result<Vec<String>> {
    let prefix = format!("{BACKUPS_DIR}/");
    let mut ids: Vec<String> = backend
        .list(BACKUPS_DIR)?
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter(|name| !name.contains('/') && !name.starts_with('.'))
        .filter_map(|name| name.strip_suffix(".json"))
        .map(str::to_string)
        .collect();
    ids.sort();
    Ok(ids)
}

/// One file to send.
struct Pending {
    path: String,
    local: std::path::PathBuf,
    size: u64,
}

struct Sender<'a> {
    backend: &'a dyn Backend,
    interrupt: &'a Interrupt,
    progress: &'a dyn crate::report::Progress,
    files: AtomicU64,
    bytes: AtomicU64,
}

impl Sender<'_> {
    fn send(&self, file: &Pending) -> Result<()> {
        self.interrupt.check()?;
        self.backend.put(&file.path, &file.local)?;
        self.files.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(file.size, Ordering::SeqCst);
        self.progress.inc(file.size);
        Ok(())
    }

    fn send_in_order(&self, files: &[Pending]) -> Result<()> {
        files.iter().try_for_each(|f| self.send(f))
    }

    /// Sends `files` from a few threads; returns when every thread has stopped, so
    /// nothing sent after this call can overtake them. The first error stops all.
    fn send_parallel(&self, files: &[Pending]) -> Result<()> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..SEND_THREADS.min(files.len()) {
                scope.spawn(|| {
                    while !stop.load(Ordering::SeqCst) {
                        let Some(file) = files.get(next.fetch_add(1, Ordering::SeqCst)) else {
                            break;
                        };
                        if let Err(e) = self.send(file) {
                            stop.store(true, Ordering::SeqCst);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Refuses to mix two repositories: the destination's `config.json`, if any, must
/// name the same repository id as the local one.
fn check_same_repository(
    repo_dir: &Path,
    backend: &dyn Backend,
    present: &HashSet<String>,
) -> Result<()> {
    if !present.contains(CONFIG_FILE) {
        return Ok(());
    }
    let local_path = repo_dir.join(CONFIG_FILE);
    let local = std::fs::read(&local_path)
        .map_err(|e| Error::io(format!("read {}", local_path.display()), e))?;
    let remote = backend.get(CONFIG_FILE)?;
    let id = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_string))
    };
    match (id(&local), id(&remote)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (_, remote_id) => Err(Error::user(format!(
            "{} holds another repository ({}) than {}",
            backend.describe(),
            remote_id.map_or_else(
                || "its config.json has no id".into(),
                |id| format!("id {id}")
            ),
            repo_dir.display()
        ))
        .with_hint("give each repository its own copy destination")),
    }
}

/// Refuses paths that could leave the copy's root or be mistaken for something else.
/// Backends call it on every path they are given, so a hostile listing (an S3 key
/// with `..` in it) cannot make them touch anything outside the copy.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'));
    if bad {
        return Err(Error::failed(format!(
            "refusing the path {path:?} in a copy"
        )));
    }
    Ok(())
}

/// A name for an upload in progress next to `path` (same directory), unique across
/// threads, processes and hosts sending to one destination.
pub(crate) fn temp_path(path: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // Not a time anything records or compares, only a nonce against other hosts'
    // names: the system's clock, not the service's.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "{TEMP_PREFIX}{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name,
    }
}

/// Whether `path` is an upload that never finished (see [`TEMP_PREFIX`]).
pub fn is_temp_path(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with(TEMP_PREFIX))
}
