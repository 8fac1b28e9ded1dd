//! Keeping a repository tidy: garbage collection, leftover temporaries, sizes.
//!
//! Nothing a crash leaves behind is harmful, only wasteful: files in `tmp/`
//! (a write that never reached its rename) and chunks no manifest references
//! (a backup killed before its manifest was written, or backups that were
//! forgotten). These are the two sweepers for that, plus the numbers an
//! operator wants before and after.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::{IoContext, RepoError, Result};
use crate::Repository;

/// How old a temporary file must be before [`Repository::clean_tmp`] removes
/// it. A live writer keeps a temporary file for the time it takes to write
/// and fsync one chunk or manifest, far less than this.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(60);

/// What garbage collection removed (or, dry, would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcStats {
    pub removed_chunks: u64,
    /// Stored bytes of the removed chunks.
    pub freed_bytes: u64,
}

/// Sizes of a repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoStats {
    /// Chunk files under `chunks/`.
    pub chunks: u64,
    /// Bytes of those chunk files (compressed, with headers).
    pub chunk_bytes: u64,
    /// Named files under `files/`.
    pub files: u64,
    /// Bytes of the named files.
    pub file_bytes: u64,
}

impl Repository {
    /// Removes every chunk whose id is not in `live`.
    ///
    /// Takes the exclusive lock (waiting up to the lock timeout for writers
    /// to finish). `live` must be computed while no backup session can run,
    /// i.e. while this thread already holds [`Repository::lock_exclusive`]:
    ///
    /// ```no_run
    /// # fn live_from_manifests(_: &ostler_repo::Repository) -> std::collections::HashSet<String> { Default::default() }
    /// # fn main() -> Result<(), ostler_repo::RepoError> {
    /// let repo = ostler_repo::Repository::open("/srv/backups".as_ref())?;
    /// let _lock = repo.lock_exclusive()?;
    /// let live = live_from_manifests(&repo);
    /// let stats = repo.gc(&live)?;
    /// # Ok(()) }
    /// ```
    ///
    /// Computing `live` before taking the lock races with a backup that
    /// reuses an unreferenced chunk and writes its manifest in between.
    pub fn gc(&self, live: &HashSet<String>) -> Result<GcStats> {
        let _lock = self.lock_exclusive()?;
        let mut stats = GcStats::default();
        let mut shards = BTreeSet::new();
        for (id, size) in self.unreferenced(live)? {
            let path = self.chunk_path(&id)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    stats.removed_chunks += 1;
                    stats.freed_bytes += size;
                    shards.insert(id[..2].to_string());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(RepoError::io("remove chunk", &path, e)),
            }
        }
        for shard in shards {
            durable::sync_dir(&self.chunks_dir().join(shard))?;
        }
        Ok(stats)
    }

    /// What [`Repository::gc`] would remove now, without removing anything or
    /// taking the lock.
    pub fn gc_dry_run(&self, live: &HashSet<String>) -> Result<GcStats> {
        let mut stats = GcStats::default();
        for (_, size) in self.unreferenced(live)? {
            stats.removed_chunks += 1;
            stats.freed_bytes += size;
        }
        Ok(stats)
    }

    fn unreferenced(&self, live: &HashSet<String>) -> Result<Vec<(String, u64)>> {
        let mut dead = Vec::new();
        self.for_each_chunk(|id, size| {
            if !live.contains(id) {
                dead.push((id.to_string(), size));
            }
            Ok(())
        })?;
        dead.sort_unstable();
        Ok(dead)
    }

    /// Removes files in `tmp/` older than [`TMP_MAX_AGE`]; returns how many.
    pub fn clean_tmp(&self) -> Result<u64> {
        self.clean_tmp_older_than(TMP_MAX_AGE)
    }

    /// Removes files in `tmp/` last modified more than `age` ago.
    ///
    /// An `age` shorter than the time a write takes can break a concurrent
    /// writer's write (it fails with an error; it never corrupts anything).
    pub fn clean_tmp_older_than(&self, age: Duration) -> Result<u64> {
        let tmp = self.tmp_dir();
        let now = SystemTime::now();
        let mut removed = 0;
        let entries = match fs::read_dir(&tmp) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(RepoError::io("list", &tmp, e)),
        };
        for entry in entries {
            let entry = entry.at("list", &tmp)?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RepoError::io("stat", &path, e)),
            };
            if meta.is_dir() {
                continue;
            }
            let modified = meta.modified().at("read modification time of", &path)?;
            // A file from the future (clock steps) counts as fresh.
            let old = now.duration_since(modified).is_ok_and(|d| d >= age);
            if !old {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(RepoError::io("remove", &path, e)),
            }
        }
        Ok(removed)
    }

    /// Counts and sizes of chunks and named files.
    pub fn stats(&self) -> Result<RepoStats> {
        let mut stats = RepoStats::default();
        self.for_each_chunk(|_, size| {
            stats.chunks += 1;
            stats.chunk_bytes += size;
            Ok(())
        })?;
        for name in self.list_files("")? {
            let path = self.files_dir().join(&name);
            match fs::symlink_metadata(&path) {
                Ok(meta) => {
                    stats.files += 1;
                    stats.file_bytes += meta.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(RepoError::io("stat", &path, e)),
            }
        }
        Ok(stats)
    }
}
