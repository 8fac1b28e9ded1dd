//! Full disks, said plainly.
//!
//! A backup that dies because a disk filled up must say which disk and by how
//! much, not "os error 28" three causes deep, and never something else that
//! happened because of it (a pipe whose reader gave up, a database that
//! "failed"). So every `ENOSPC` and `EDQUOT`, wherever ostler writes (the
//! repository, the state dir, a copy target, a restore target, `TMPDIR`), is
//! turned into one [`NoSpace`] naming the path being written, how many bytes
//! that write needed when it is known, and what `statvfs(2)` says is free on
//! the filesystem. It lives in this crate, the lowest one that writes files,
//! so the library above uses the same type and the CLI renders one message.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A write failed because the filesystem (or the user's quota) is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSpace {
    /// What was being done (`write`, `create`, ...).
    pub op: &'static str,
    /// The path being written.
    pub path: PathBuf,
    /// Bytes the failed write needed, when known.
    pub needed: Option<u64>,
    /// Bytes free for us on the filesystem holding `path` right after the
    /// failure, when `statvfs` could tell.
    pub free: Option<u64>,
    /// The quota, not the disk, ran out (`EDQUOT`).
    pub quota: bool,
}

impl NoSpace {
    /// A [`NoSpace`] for `path`, measuring the free space now.
    pub fn at(op: &'static str, path: &Path, needed: Option<u64>, quota: bool) -> NoSpace {
        NoSpace {
            op,
            path: path.to_path_buf(),
            needed,
            free: free_space(path),
            quota,
        }
    }

    /// The [`NoSpace`] an `io::Error` stands for, if it is `ENOSPC`/`EDQUOT`.
    pub fn from_io(op: &'static str, path: &Path, e: &io::Error) -> Option<NoSpace> {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => Some(NoSpace::at(op, path, None, false)),
            Some(libc::EDQUOT) => Some(NoSpace::at(op, path, None, true)),
            _ => None,
        }
    }

    /// The same failure with the size of the write that hit it.
    pub fn needing(mut self, bytes: u64) -> NoSpace {
        self.needed.get_or_insert(bytes);
        self
    }
}

impl fmt::Display for NoSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.quota {
            "disk quota exceeded"
        } else {
            "no space left on device"
        };
        write!(f, "{what}: cannot {} {}", self.op, self.path.display())?;
        match (self.needed, self.free) {
            (Some(n), Some(free)) => write!(f, " ({n} bytes to write, {free} bytes free)"),
            (Some(n), None) => write!(f, " ({n} bytes to write)"),
            (None, Some(free)) => write!(f, " ({free} bytes free)"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for NoSpace {}

/// Whether `e` is `ENOSPC` or `EDQUOT`.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Bytes an unprivileged writer may still use on the filesystem holding
/// `path` (or, if `path` does not exist yet, its nearest existing ancestor).
// `fsblkcnt_t` and `c_ulong` are u64 here but u32 on 32-bit targets.
#[allow(clippy::useless_conversion)]
pub fn free_space(path: &Path) -> Option<u64> {
    let mut probe = Some(path);
    while let Some(p) = probe {
        if let Ok(s) = nix::sys::statvfs::statvfs(p) {
            return Some(
                u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())),
            );
        }
        probe = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_names_the_path_the_size_and_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        let ns = NoSpace::from_io("write", &dir.path().join("x"), &e)
            .unwrap()
            .needing(4096);
        let text = ns.to_string();
        assert!(
            text.starts_with("no space left on device: cannot write "),
            "{text}"
        );
        assert!(
            text.contains(&dir.path().join("x").display().to_string()),
            "{text}"
        );
        assert!(text.contains("4096 bytes to write"), "{text}");
        assert!(ns.free.is_some(), "statvfs of the parent answers");
        assert!(NoSpace::from_io("write", dir.path(), &io::Error::other("x")).is_none());
    }
}
