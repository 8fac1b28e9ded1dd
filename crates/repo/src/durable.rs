//! Crash-safe file writes.
//!
//! The repository's promise is that a file under `chunks/`, `files/` or
//! `config.json` is either absent or complete, whatever happens to the process
//! or the machine. The only way POSIX gives that is: write the bytes to a
//! temporary file on the same filesystem (`tmp/`), `fsync` it, `rename` it into
//! place, then `fsync` the directory that now holds the new name. A process
//! killed in between leaves a file in `tmp/` and nothing else;
//! `Repository::clean_tmp` removes those later.
//!
//! Directory fsyncs are returned to the caller to do (see [`write_atomic`]):
//! a stream writes hundreds of chunks into at most 256 shard directories, and
//! syncing each directory once before the stream is reported complete gives the
//! same guarantee as syncing it after every chunk, for a fraction of the cost.
//!
//! Everything is created owner-only (0700 directories, 0600 files): backups
//! hold whole databases, and the umask can only make that stricter.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

pub(crate) use crate::private::{DIR_MODE, FILE_MODE};
/// Suffix of every temporary file, so a stray one is recognisable.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name in `tmp_dir` no other thread or process will pick: pid, a
/// per-process counter and the clock (the clock guards against pid reuse
/// after a crash left a file with the same pid and counter behind).
pub(crate) fn tmp_path(tmp_dir: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    tmp_dir.join(format!("{}-{n}-{nanos:x}{TMP_SUFFIX}", std::process::id()))
}

/// What to do when the destination already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Atomically replace it (named files; chunks, whose content is fixed by their name).
    Replace,
    /// Leave it and report `Ok(false)` (config.json, so two racing `init`s cannot both win).
    Keep,
}

/// Writes `parts` (concatenated) to `dest` through a temporary file in
/// `tmp_dir`. Returns whether `dest` now holds our bytes (`false` only with
/// [`Existing::Keep`] when it already existed).
///
/// The caller must `fsync` `dest`'s directory (see [`sync_dir`]) before it
/// tells anyone the write is durable.
pub(crate) fn write_atomic(
    tmp_dir: &Path,
    dest: &Path,
    parts: &[&[u8]],
    existing: Existing,
) -> Result<bool> {
    let tmp = tmp_path(tmp_dir);
    let result = write_tmp_then_place(&tmp, dest, parts, existing).map_err(|e| match e {
        // The temporary name means nothing to the operator; the file being
        // written and its size do.
        crate::RepoError::NoSpace(full) => {
            let bytes = parts.iter().map(|p| p.len() as u64).sum();
            crate::RepoError::NoSpace(
                crate::NoSpace {
                    op: "write",
                    path: dest.to_path_buf(),
                    ..full
                }
                .needing(bytes),
            )
        }
        other => other,
    });
    if result.is_err() || existing == Existing::Keep {
        // Best effort: on success with Keep the tmp name is a second link (or
        // already renamed away); on failure it is garbage. Either way clean_tmp
        // would get it later.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_then_place(
    tmp: &Path,
    dest: &Path,
    parts: &[&[u8]],
    existing: Existing,
) -> Result<bool> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)
        .at("create temporary file", tmp)?;
    for part in parts {
        file.write_all(part).at("write temporary file", tmp)?;
    }
    file.sync_all().at("fsync temporary file", tmp)?;
    drop(file);
    match existing {
        Existing::Replace => {
            fs::rename(tmp, dest).at("rename into place", dest)?;
            Ok(true)
        }
        Existing::Keep => match fs::hard_link(tmp, dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) if link_unsupported(&e) => {
                // Filesystems without hard links: check-then-rename. The window
                // between the check and the rename only matters for two
                // concurrent `init`s, which then both succeed with one config.
                if dest.exists() {
                    return Ok(false);
                }
                fs::rename(tmp, dest).at("rename into place", dest)?;
                Ok(true)
            }
            Err(e) => Err(crate::RepoError::io("link into place", dest, e)),
        },
    }
}

fn link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::EOPNOTSUPP) | Some(libc::EXDEV) | Some(libc::EMLINK)
    )
}

/// `fsync` a directory, making the names created in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).at("open directory", dir)?;
    handle.sync_all().at("fsync directory", dir)
}

/// Creates `dir` (owner-only) if missing; returns whether it was created.
/// Does not create parents.
pub(crate) fn ensure_dir(dir: &Path) -> Result<bool> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(crate::RepoError::io("create directory", dir, e)),
    }
}

/// Creates every missing directory from `base` (which must exist) down to
/// `base/rel`, syncing each parent whose entries changed.
pub(crate) fn ensure_dirs_under(base: &Path, rel: &Path) -> Result<()> {
    let mut current = base.to_path_buf();
    for component in rel.components() {
        let parent = current.clone();
        current.push(component);
        if ensure_dir(&current)? {
            sync_dir(&parent)?;
        }
    }
    Ok(())
}
