//! The repository lock: many writers or one garbage collector.
//!
//! Writers never conflict with each other (chunks are immutable and named by
//! their content, named files are replaced atomically), so they share the
//! lock. Garbage collection is the one operation that deletes what a writer
//! might be about to reference (a writer that finds a chunk already present
//! skips writing it, and only references it in a manifest later), so `gc`
//! takes the lock exclusively: no backup session may be open while it runs,
//! and the live set it is given must be computed while it holds the lock.
//!
//! We use `flock(2)` on the `lock` file because the kernel drops it when the
//! process dies, SIGKILL included: there is nothing stale to clean up. A lock
//! that cannot be had within the timeout fails with [`RepoError::Busy`], which
//! names the holders as the kernel reports them in `/proc/locks` (pid and
//! command name), so the operator can see *who* is in the way.
//!
//! Re-entrancy: `flock` locks belong to open file descriptions, so a second
//! lock taken by the same process through a new descriptor conflicts with the
//! first like any other process would. The one nesting we need is "the thread
//! holding the exclusive lock also writes or collects", so a [`Repository`]
//! handle (and its clones) remembers which thread holds its exclusive lock and
//! lets that thread's further lock requests pass as already covered.
//!
//! [`Repository`]: crate::Repository

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::durable::FILE_MODE;
use crate::error::{IoContext, RepoError, Result};

/// Which kind of lock a [`RepoLock`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Held by writers (backup sessions); any number at once.
    Shared,
    /// Held by garbage collection; excludes every other holder.
    Exclusive,
}

impl LockMode {
    fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// Which thread of this process holds the handle's exclusive lock, if any.
pub(crate) type ExclusiveOwner = Arc<Mutex<Option<ThreadId>>>;

/// A held repository lock; released when dropped.
#[derive(Debug)]
pub struct RepoLock {
    /// `None` when the request was covered by this thread's exclusive lock.
    file: Option<File>,
    mode: LockMode,
    path: PathBuf,
    /// Set on the exclusive lock that registered itself as the owner.
    owner: Option<ExclusiveOwner>,
}

impl RepoLock {
    /// The mode that was requested.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            *owner.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        if let Some(file) = self.file.take() {
            // Unlock explicitly so a forked child that inherited the
            // descriptor cannot keep the repository locked; closing follows.
            // SAFETY: flock on a descriptor we own; no memory is involved.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Takes `mode` on `path`, waiting up to `timeout`.
pub(crate) fn acquire(
    path: &Path,
    mode: LockMode,
    timeout: Duration,
    owner: &ExclusiveOwner,
) -> Result<RepoLock> {
    let me = std::thread::current().id();
    if *owner.lock().unwrap_or_else(PoisonError::into_inner) == Some(me) {
        return Ok(RepoLock {
            file: None,
            mode,
            path: path.to_path_buf(),
            owner: None,
        });
    }
    // Read-only is enough for flock, and works on a read-only mount.
    let file = match File::open(path) {
        Ok(file) => file,
        // Recreated if someone removed it; init normally makes it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(path)
            .at("create lock file", path)?,
        Err(e) => return Err(RepoError::io("open lock file", path, e)),
    };
    let operation = match mode {
        LockMode::Shared => libc::LOCK_SH,
        LockMode::Exclusive => libc::LOCK_EX,
    } | libc::LOCK_NB;
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => {}
            _ => return Err(RepoError::io("lock", path, err)),
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(RepoError::Busy {
                path: path.to_path_buf(),
                wanted: mode.as_str(),
                holders: describe_holders(&file),
                waited,
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    let owner = if mode == LockMode::Exclusive {
        *owner.lock().unwrap_or_else(PoisonError::into_inner) = Some(me);
        Some(Arc::clone(owner))
    } else {
        None
    };
    Ok(RepoLock {
        file: Some(file),
        mode,
        path: path.to_path_buf(),
        owner,
    })
}

/// "pid 4242 (ostler) exclusive, pid 17 (ostler) shared", from `/proc/locks`.
///
/// Matches on the inode number only: on overlay filesystems the device
/// `/proc/locks` shows is the underlying layer's, not the one `stat` returns.
fn describe_holders(file: &File) -> String {
    let Ok(meta) = file.metadata() else {
        return "unknown holders (cannot stat the lock file)".into();
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return "unknown holders (/proc/locks is not readable)".into();
    };
    let ino = meta.ino().to_string();
    let mut holders = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 4242 08:02:131 0 EOF"; waiters have "->" after the number.
        if fields.len() < 6 || fields[1] != "FLOCK" {
            continue;
        }
        if fields[5].rsplit(':').next() != Some(ino.as_str()) {
            continue;
        }
        let kind = if fields[3] == "WRITE" {
            "exclusive"
        } else {
            "shared"
        };
        let pid = fields[4];
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        holders.push(format!("pid {pid} ({comm}) {kind}"));
    }
    if holders.is_empty() {
        "a holder /proc/locks does not show (another host or container?)".into()
    } else {
        holders.join(", ")
    }
}
