//! The one error type of the repository.
//!
//! Every variant carries what went wrong *and where*: the file path, the chunk
//! id, the lock holder. A restore that fails at 3 a.m. must tell the operator
//! which file to look at without a debugger, so no variant is a bare string and
//! no `io::Error` leaves this crate without the path it happened on. A variant that
//! wraps another error says only its own part and gives the other as its `source()`,
//! so a printer of the cause chain shows the operating system's words once.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::space::NoSpace;

/// Result alias used throughout the crate.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Everything that can go wrong in a repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The directory is missing, or has no readable `config.json`.
    #[error("{path} is not an ostler repository: {reason}")]
    NotARepository { path: PathBuf, reason: String },

    /// `init` refused: the path is already a repository.
    #[error("{path} is already an ostler repository (open it instead of initialising it)")]
    AlreadyARepository { path: PathBuf },

    /// `init` refused: the path exists and is not an empty directory.
    #[error("refusing to create a repository at {path}: it exists and is not an empty directory")]
    NotEmpty { path: PathBuf },

    /// `config.json` names a format version this build does not understand.
    #[error(
        "repository {path} has format version {found}; this ostler understands version {supported}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// `config.json` parsed but holds values this build cannot use.
    #[error("invalid repository config {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },

    /// An operating-system error on a named path.
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A write failed because the filesystem (or quota) is full: which path,
    /// how many bytes, how many are free. Never hidden behind an [`RepoError::Io`].
    #[error("{0}")]
    NoSpace(NoSpace),

    /// Reading the caller's input stream failed (not the repository's fault).
    #[error("reading the input stream failed after {offset} bytes")]
    Input {
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// A chunk file exists but its content is wrong.
    #[error("chunk {id} is corrupt ({path}): {reason}")]
    CorruptChunk {
        id: String,
        path: PathBuf,
        reason: String,
    },

    /// A chunk referenced by a stream is not in the repository.
    #[error("chunk {id} is missing (expected at {path})")]
    MissingChunk { id: String, path: PathBuf },

    /// A whole stream read back differs from what was recorded when it was written.
    #[error("stream {what} mismatch: recorded {expected}, read back {actual}")]
    HashMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },

    /// A string that should be a chunk id (64 lowercase hex digits) is not.
    #[error("invalid chunk id {id:?}: expected 64 lowercase hex digits")]
    InvalidChunkId { id: String },

    /// A named-file path that could escape `files/` or is otherwise unusable.
    #[error("invalid repository file name {name:?}: {reason}")]
    InvalidFileName { name: String, reason: &'static str },

    /// `get_file` of a name that does not exist.
    #[error("repository file {name} not found ({path})")]
    FileNotFound { name: String, path: PathBuf },

    /// The repository lock could not be taken in time.
    #[error("repository busy: could not take the {wanted} lock on {path} within {waited:?}; held by {holders}")]
    Busy {
        path: PathBuf,
        wanted: &'static str,
        holders: String,
        waited: Duration,
    },
}

impl RepoError {
    /// Shorthand for [`RepoError::Io`], or [`RepoError::NoSpace`] for `ENOSPC`/`EDQUOT`.
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        if let Some(full) = NoSpace::from_io(op, path.as_ref(), &source) {
            return RepoError::NoSpace(full);
        }
        RepoError::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The full disk behind this error, if that is what it is.
    pub fn no_space(&self) -> Option<&NoSpace> {
        match self {
            RepoError::NoSpace(full) => Some(full),
            _ => None,
        }
    }

    /// The [`RepoError`] inside an `io::Error` returned by [`crate::StreamReader`]'s
    /// `Read` impl, if there is one.
    pub fn from_io_error(err: &io::Error) -> Option<&RepoError> {
        err.get_ref().and_then(|e| e.downcast_ref::<RepoError>())
    }
}

/// Extension to attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| RepoError::io(op, path, e))
    }
}
