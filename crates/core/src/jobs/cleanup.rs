//! The `cleanup` job action: delete what has not changed for a while below one
//! directory, as the runbooks do with `find /opt/indico/tmp -mtime +1 -delete`, but
//! without the ways that line can hurt: it never follows a symlink out of the tree,
//! can be told what to spare, and can say what it would remove before it does.
//!
//! What goes, and why these rules:
//! - Every entry that is not a directory (regular files, symlinks, sockets, fifos) whose
//!   own mtime (`lstat`, as `find -mtime` sees it) is older than `older_than` before
//!   `now`, that matches an include glob (all do when there is none) and no exclude glob.
//!   The age is exact, not `find`'s whole days (`-mtime +1` means two days or more).
//! - A symlink is an entry like any file: its own mtime counts, removing it removes the
//!   link and never touches its target, and a symlinked directory is never descended
//!   into. Removal goes by name under directory handles opened from the root without
//!   following symlinks (`openat(O_NOFOLLOW)`, `unlinkat`), so a directory swapped for a
//!   symlink while the cleanup runs makes that removal fail (a problem), never reach
//!   outside the tree.
//! - A directory matching an exclude glob is skipped whole: `exclude = ["sessions"]`
//!   spares everything below `sessions/`, not only the name.
//! - A directory below the root goes too when the cleanup itself left it empty (it held
//!   entries and every one of them went), it is older than `older_than` by its own mtime
//!   as the walk saw it before removing anything in it, and no exclude glob matches it.
//!   That is what `find ... -delete` does for old trees of old files, without its
//!   errors on the directories that stay. A directory that was empty already is left
//!   alone (the service may expect it there), and so is one still in use: adding or
//!   removing entries renews a directory's mtime. The root itself always stays.
//! - A root that is itself a symlink is resolved once (`/opt/indico/tmp` pointing at
//!   `/var/tmp/indico` cleans the latter, as `find /opt/indico/tmp/` would); nothing
//!   below it is followed. Paths in the report are relative to the resolved root.
//!
//! A dry run walks and judges the same way and removes nothing. An entry that vanished
//! before it could be removed is not an error (someone else cleaned it); one that could
//! not be removed (permissions, a read-only mount) is a [`CleanupReport::problems`]
//! entry and the rest goes on.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{GlobSet, GlobSetBuilder};
use jiff::Timestamp;
use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;
use serde::Serialize;

use crate::clock::signed;
use crate::error::{Error, Result};

/// What one cleanup looks at.
#[derive(Debug, Clone, Copy)]
pub struct CleanupSpec<'a> {
    /// The directory entries are removed below (it stays).
    pub root: &'a Path,
    /// Entries whose mtime is older than this before `now` go.
    pub older_than: Duration,
    /// Globs relative to `root` (`**/*.tmp`, `cache/**`); empty: every entry. `*`
    /// stays within one directory, `**/` spans any number.
    pub include: &'a [String],
    /// Globs relative to `root` of entries never removed; a directory matching one is
    /// skipped with everything below it.
    pub exclude: &'a [String],
}

/// What kind of entry was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Symlink,
    Directory,
    /// A socket, fifo or device node.
    Other,
}

/// One entry removed (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Relative to the (resolved) root.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Its size as `lstat` gave it; 0 for a directory.
    pub bytes: u64,
    pub modified: Timestamp,
}

/// What a cleanup did.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    /// The root as walked (a symlinked root resolved).
    pub root: PathBuf,
    /// Entries removed, each directory after what was in it.
    pub removed: Vec<Removed>,
    /// The sum of `removed`'s bytes.
    pub bytes: u64,
    pub dry_run: bool,
    /// Entries that could not be read or removed: the path (relative to the root) and
    /// the system's reason.
    pub problems: Vec<(PathBuf, String)>,
}

/// Removes entries older than `spec.older_than` before `now` below `spec.root` (see
/// the module comment for what goes); with `dry_run`, only lists them.
pub fn cleanup(spec: &CleanupSpec, now: Timestamp, dry_run: bool) -> Result<CleanupReport> {
    let include = globs(spec.include, "include")?;
    let exclude = globs(spec.exclude, "exclude")?;
    let root = resolve_root(spec.root)?;
    let cutoff = now
        .checked_sub(signed(spec.older_than))
        .unwrap_or(Timestamp::MIN);

    let report = CleanupReport {
        root: root.clone(),
        removed: Vec::new(),
        bytes: 0,
        dry_run,
        problems: Vec::new(),
    };
    let remover = if dry_run {
        None
    } else {
        Some(Remover::open(&root)?)
    };
    let mut sweep = Sweep {
        cutoff,
        include,
        remover,
        report,
        tally: HashMap::new(),
        open_dirs: Vec::new(),
    };

    // Directories that keep something the walk does not yield (an excluded entry):
    // never left empty by the cleanup. The walk is in pre-order, so an excluded
    // directory is not descended into; directories are judged once the walk has left
    // them (`Sweep::leave_deeper_than`).
    let excluded_in: RefCell<HashSet<PathBuf>> = RefCell::new(HashSet::new());
    let walk = walkdir::WalkDir::new(&root)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| {
            let rel = relative(&root, entry.path());
            let keep = !exclude.is_match(&rel);
            if !keep {
                excluded_in.borrow_mut().insert(parent_of(&rel));
            }
            keep
        });
    for item in walk {
        match item {
            Ok(entry) => {
                sweep.leave_deeper_than(entry.depth(), &excluded_in.borrow());
                sweep.visit(&root, &entry);
            }
            Err(e) => {
                if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) {
                    continue;
                }
                // What could not be read stays, and so does what holds it.
                let rel = e.path().map(|p| relative(&root, p)).unwrap_or_default();
                sweep.tally.entry(parent_of(&rel)).or_default().0 += 1;
                sweep.report.problems.push((rel, why(&e)));
            }
        }
    }
    sweep.leave_deeper_than(1, &excluded_in.borrow());
    Ok(sweep.report)
}

/// A directory the walk is inside: judged when the walk leaves it.
struct OpenDir {
    rel: PathBuf,
    depth: usize,
    old: bool,
    modified: Timestamp,
}

/// The cleanup's state along the walk.
struct Sweep {
    cutoff: Timestamp,
    include: GlobSet,
    remover: Option<Remover>,
    report: CleanupReport,
    /// Per directory (relative path): entries seen in it, and how many of them went.
    tally: HashMap<PathBuf, (usize, usize)>,
    /// The directories the walk is inside, outermost first.
    open_dirs: Vec<OpenDir>,
}

impl Sweep {
    fn visit(&mut self, root: &Path, entry: &walkdir::DirEntry) {
        let rel = relative(root, entry.path());
        self.tally.entry(parent_of(&rel)).or_default().0 += 1;
        // walkdir's metadata is the entry's own (`lstat`): links are not followed.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                if e.io_error().map(|io| io.kind()) != Some(std::io::ErrorKind::NotFound) {
                    self.report.problems.push((rel, why(&e)));
                } else {
                    self.tally.entry(parent_of(&rel)).or_default().1 += 1;
                }
                return;
            }
        };
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| Timestamp::try_from(t).ok())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let old = modified < self.cutoff;
        let file_type = entry.file_type();
        if file_type.is_dir() {
            self.open_dirs.push(OpenDir {
                rel,
                depth: entry.depth(),
                old,
                modified,
            });
            return;
        }
        let kind = if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        if old && (self.include.is_empty() || self.include.is_match(&rel)) {
            self.remove(rel, kind, meta.len(), modified);
        }
    }

    /// Judges the directories the walk has left: those at `depth` or deeper.
    fn leave_deeper_than(&mut self, depth: usize, excluded_in: &HashSet<PathBuf>) {
        while self.open_dirs.last().is_some_and(|d| d.depth >= depth) {
            let dir = self.open_dirs.pop().expect("checked");
            let (seen, went) = self.tally.remove(&dir.rel).unwrap_or_default();
            if dir.old && went > 0 && went == seen && !excluded_in.contains(&dir.rel) {
                self.remove(dir.rel, EntryKind::Directory, 0, dir.modified);
            }
        }
    }

    fn remove(&mut self, rel: PathBuf, kind: EntryKind, bytes: u64, modified: Timestamp) {
        let outcome = match &self.remover {
            None => Ok(true),
            Some(remover) => remover.remove(&rel, kind == EntryKind::Directory),
        };
        let parent = parent_of(&rel);
        match outcome {
            Ok(true) => {
                self.report.bytes += bytes;
                self.report.removed.push(Removed {
                    path: rel,
                    kind,
                    bytes,
                    modified,
                });
            }
            // Gone before we came: gone for its directory too, but not listed.
            Ok(false) => {}
            // Something arrived in the directory meanwhile: it stays, rightly.
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => return,
            Err(errno) => {
                self.report
                    .problems
                    .push((rel, std::io::Error::from(errno).to_string()));
                return;
            }
        }
        self.tally.entry(parent).or_default().1 += 1;
    }
}

fn parent_of(rel: &Path) -> PathBuf {
    rel.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The root, resolved once if it is a symlink; refused when missing or not a directory.
fn resolve_root(root: &Path) -> Result<PathBuf> {
    let resolved = std::fs::canonicalize(root).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::user(format!("cleanup path {} does not exist", root.display()))
                .with_hint("create it, or correct the job's `path`")
        } else {
            Error::io_at("resolving", root, e)
        }
    })?;
    if !resolved.is_dir() {
        return Err(Error::user(format!(
            "cleanup path {} is not a directory",
            root.display()
        ))
        .with_hint("a cleanup's `path` names the directory entries are removed below"));
    }
    Ok(resolved)
}

fn globs(patterns: &[String], key: &str) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                Error::user(format!("bad {key} glob `{pattern}`: {}", e.kind()))
                    .with_hint("globs are relative to the cleanup's path: `**/*.tmp`, `cache/**`")
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| {
        Error::user(format!("bad {key} globs: {e}"))
            .with_hint("globs are relative to the cleanup's path: `**/*.tmp`, `cache/**`")
    })
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

fn why(e: &walkdir::Error) -> String {
    match e.io_error() {
        Some(io) => io.to_string(),
        None => e.to_string(),
    }
}

/// Removes entries by name below a root opened once, each parent directory opened
/// from it one component at a time without following symlinks.
struct Remover {
    root: OwnedFd,
}

impl Remover {
    fn open(root: &Path) -> Result<Remover> {
        let fd = rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io_at("opening", root, e.into()))?;
        Ok(Remover { root: fd })
    }

    /// Removes `rel` (a directory with `dir`): `Ok(false)` when it was already gone.
    fn remove(&self, rel: &Path, dir: bool) -> std::result::Result<bool, Errno> {
        let mut names: Vec<&std::ffi::OsStr> = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => names.push(name),
                // Paths come from the walk below the root: never `..` or absolute.
                _ => return Err(Errno::INVAL),
            }
        }
        let Some((last, parents)) = names.split_last() else {
            return Err(Errno::INVAL);
        };
        let mut held: Option<OwnedFd> = None;
        for name in parents {
            let at = held.as_ref().unwrap_or(&self.root);
            let next = rustix::fs::openat(
                at,
                *name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            match next {
                Ok(fd) => held = Some(fd),
                Err(Errno::NOENT) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        let at = held.as_ref().unwrap_or(&self.root);
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(at, *last, flags) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// The walk saw `a/` as a directory; by the time of the removal it is a symlink
    /// to elsewhere. The removal must fail there, not unlink the file behind it.
    #[test]
    fn a_directory_swapped_for_a_symlink_before_removal_stops_the_removal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), b"keep").unwrap();
        let remover = Remover::open(&root).unwrap();

        std::fs::remove_dir(root.join("a")).unwrap();
        symlink(&outside, root.join("a")).unwrap();

        let errno = remover.remove(Path::new("a/f"), false).unwrap_err();
        assert!(matches!(errno, Errno::LOOP | Errno::NOTDIR), "{errno:?}");
        assert!(outside.join("f").exists());
        // The link itself is an entry of the root like any other.
        assert_eq!(remover.remove(Path::new("a"), false), Ok(true));
        assert!(outside.join("f").exists());
        // Gone already: not an error.
        assert_eq!(remover.remove(Path::new("a"), false), Ok(false));
        assert_eq!(remover.remove(Path::new("a/f"), false), Ok(false));
    }
}
