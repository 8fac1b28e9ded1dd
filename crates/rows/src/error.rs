//! Errors, with the context a person needs to act on them: which kind of stream,
//! at which byte, which keys. Which *file* is the caller's to add: this crate only
//! sees `Read` and `Write`.

use std::fmt;

use crate::key::{display_key, Key};

/// Which of the two stream formats an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A table's rows (a base backup, or a spill file of the external sort).
    Rows,
    /// A row-level delta against the previous backup.
    Delta,
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamKind::Rows => "rows",
            StreamKind::Delta => "delta",
        })
    }
}

pub type Result<T, E = RowsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowsError {
    /// Reading or writing the stream failed; the `io::Error` says how (and, from a
    /// repository reader, carries the repository's error with its path).
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The rows of the table being read failed to arrive (a database error, say).
    /// Sources wrap their own errors in this so they can feed `diff` and friends.
    #[error("reading the source rows failed")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The external sort could not write or rewind a temporary file.
    #[error("cannot write a sort spill file in {}", dir.display())]
    Spill {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not an ostler {expected} stream: it starts with {found:02x?}")]
    BadMagic {
        expected: StreamKind,
        found: Vec<u8>,
    },

    #[error("{kind} stream has format version {version}; this build reads version 1 only")]
    UnsupportedVersion { kind: StreamKind, version: u8 },

    /// The stream stopped early: a crashed writer, an interrupted copy, a cut file.
    #[error(
        "{kind} stream is truncated: it ends at byte {offset}, in the middle of {during} \
         (was it written completely?)"
    )]
    Truncated {
        kind: StreamKind,
        offset: u64,
        during: &'static str,
    },

    /// The bytes are not what a writer produces: damaged storage or a bug.
    #[error("{kind} stream is corrupt at byte {offset}: {detail}")]
    Corrupt {
        kind: StreamKind,
        offset: u64,
        detail: String,
    },

    #[error(
        "rows are out of order: key {} follows key {}",
        display_key(next),
        display_key(previous)
    )]
    OutOfOrder { previous: Key, next: Key },

    #[error("key {} occurs more than once", display_key(key))]
    DuplicateKey { key: Key },

    /// A delta removes a row that the state it is applied to does not have: the chain
    /// is applied to the wrong base, or its deltas are in the wrong order.
    #[error(
        "delta {delta} of the chain (0 is the oldest) deletes key {}, which is not there; \
         the deltas do not belong to this base or are out of sequence",
        display_key(key)
    )]
    DeleteOfAbsentRow {
        /// Index into the chain's deltas, oldest first.
        delta: usize,
        key: Key,
    },
}

impl RowsError {
    /// Wraps an error of a row source (see [`RowsError::Source`]).
    pub fn from_source(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RowsError::Source(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_can_cross_threads_and_join_anyhow_chains() {
        fn assert_send_sync<T: Send + Sync + 'static + std::error::Error>() {}
        assert_send_sync::<RowsError>();
    }
}
