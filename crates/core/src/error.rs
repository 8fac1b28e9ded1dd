//! The library's error type. Every error carries a kind, so that front ends can map it
//! to an exit status without parsing messages, and the context a user needs to act:
//! which instance, which file and line, which command failed and what it printed.
//!
//! An error that wraps another keeps it as its `source()` and says only its own part
//! in its message (what was being done, where), so the CLI's cause-chain printer
//! shows each cause once. Where an error becomes text that outlives it (the journal,
//! a catalog row, a verify problem, a warning, another error's message), [`chain`]
//! renders it with its causes on one line.

use std::path::{Path, PathBuf};

pub use ostler_repo::NoSpace;

/// What sort of failure this is; the CLI maps each kind to an exit status. Serialized
/// (kebab-case) as the `kind` of the control API's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The user asked for something that cannot be done as asked (bad argument,
    /// unknown instance, ambiguous prefix, missing confirmation).
    User,
    /// The configuration file is wrong.
    Config,
    /// Someone else holds what we need (a lock, a port, the daemon's pidfile).
    Busy,
    /// Something outside ostler failed: a command, a process, a database, a health check.
    Failed,
    /// The operation was interrupted (Ctrl-C, SIGTERM).
    Interrupted,
    /// A bug or an unexpected environment.
    Internal,
}

impl ErrorKind {
    /// Exit status for this kind, following sysexits where one fits.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::User => 2,
            ErrorKind::Config => 78,
            ErrorKind::Busy => 75,
            ErrorKind::Failed => 1,
            ErrorKind::Interrupted => 130,
            ErrorKind::Internal => 70,
        }
    }
}

/// A position in a config file, for messages that point at the line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    User {
        message: String,
        hint: Option<String>,
    },

    #[error("configuration is invalid:\n{}", .diagnostics.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
    Config { diagnostics: Vec<Diagnostic> },

    #[error("cannot read configuration {}", .path.display())]
    ConfigIo {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{message}")]
    Busy {
        message: String,
        hint: Option<String>,
    },

    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },

    #[error("interrupted")]
    Interrupted,

    /// A disk (repository, state dir, copy target, restore target, TMPDIR) is full.
    #[error("{0}")]
    NoSpace(NoSpace),

    #[error("{context}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("state database {}", .path.display())]
    State {
        path: PathBuf,
        source: rusqlite::Error,
    },

    /// The backup repository failed: `context` says what was being done where (which
    /// repository, backup, table or store); `source` is the repository's own error.
    #[error("{context}")]
    Repository {
        context: String,
        #[source]
        source: ostler_repo::RepoError,
    },

    /// A row stream (a table's chain, a delta, a sort) failed: `context` says which.
    #[error("{context}")]
    Rows {
        context: String,
        #[source]
        source: ostler_rows::RowsError,
    },

    /// An error the daemon returned over its control API, of the kind it had there,
    /// when no variant of that kind can carry it (the others come back as themselves).
    #[error("{message}")]
    Remote {
        kind: ErrorKind,
        message: String,
        hint: Option<String>,
    },

    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::User { .. } => ErrorKind::User,
            Error::Config { .. } | Error::ConfigIo { .. } => ErrorKind::Config,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Failed { .. }
            | Error::Io { .. }
            | Error::NoSpace(_)
            | Error::Repository { .. }
            | Error::Rows { .. } => ErrorKind::Failed,
            Error::Interrupted => ErrorKind::Interrupted,
            Error::State { .. } | Error::Other(_) => ErrorKind::Internal,
            Error::Remote { kind, .. } => *kind,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::User { hint, .. }
            | Error::Busy { hint, .. }
            | Error::Failed { hint, .. }
            | Error::Remote { hint, .. } => hint.as_deref(),
            Error::NoSpace(_) => Some(
                "free space on that filesystem, or give it more room, and run the command again",
            ),
            _ => None,
        }
    }

    /// An I/O error on `path`: [`Error::NoSpace`] for a full disk, else [`Error::Io`]
    /// with `what` and the path as its context.
    pub fn io_at(what: &'static str, path: &Path, source: std::io::Error) -> Error {
        match NoSpace::from_io(what, path, &source) {
            Some(full) => Error::NoSpace(full),
            None => Error::Io {
                context: format!("{what} {}", path.display()),
                source,
            },
        }
    }

    /// An error of ostler's state database at `path`; a full disk is [`Error::NoSpace`].
    pub fn state(path: &Path, source: rusqlite::Error) -> Error {
        Error::sqlite_no_space(path, &source).unwrap_or_else(|| Error::State {
            path: path.to_path_buf(),
            source,
        })
    }

    /// A repository error while doing `context`: a full disk stays a full disk,
    /// anything else keeps the repository's error as its cause.
    pub fn repository(context: impl Into<String>, source: ostler_repo::RepoError) -> Error {
        match source {
            ostler_repo::RepoError::NoSpace(full) => Error::NoSpace(full),
            source => Error::Repository {
                context: context.into(),
                source,
            },
        }
    }

    /// A row stream error while doing `context`. A full disk met while reading or
    /// writing a stream (a sort spill file, a repository write behind a pipe) stays a
    /// full disk.
    pub fn rows(context: impl Into<String>, source: ostler_rows::RowsError) -> Error {
        if let Some(full) = rows_no_space(&source) {
            return Error::NoSpace(full);
        }
        Error::Rows {
            context: context.into(),
            source,
        }
    }

    /// A SQLite error on the database file `path` (ostler's state, a snapshot copy,
    /// a restore target): [`Error::NoSpace`] when its disk is full, else `None`.
    /// SQLite reports a full disk as `SQLITE_FULL`, or, when the shared-memory file
    /// cannot grow, as an I/O error; the latter counts only if `statvfs` agrees.
    pub fn sqlite_no_space(path: &Path, e: &rusqlite::Error) -> Option<Error> {
        let rusqlite::Error::SqliteFailure(f, _) = e else {
            return None;
        };
        let full = match f.code {
            rusqlite::ErrorCode::DiskFull => true,
            rusqlite::ErrorCode::SystemIoFailure => {
                ostler_repo::space::free_space(path).is_some_and(|free| free < 64 * 1024)
            }
            _ => false,
        };
        full.then(|| Error::NoSpace(NoSpace::at("write", path, None, false)))
    }

    pub fn user(message: impl Into<String>) -> Error {
        Error::User {
            message: message.into(),
            hint: None,
        }
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed {
            message: message.into(),
            hint: None,
        }
    }

    pub fn busy(message: impl Into<String>) -> Error {
        Error::Busy {
            message: message.into(),
            hint: None,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Adds a "Hint:" line to errors that carry one.
    pub fn with_hint(mut self, text: impl Into<String>) -> Error {
        match &mut self {
            Error::User { hint, .. } | Error::Busy { hint, .. } | Error::Failed { hint, .. } => {
                *hint = Some(text.into())
            }
            _ => {}
        }
        self
    }
}

/// The full disk somewhere in a row error's causes, if there is one.
fn rows_no_space(e: &ostler_rows::RowsError) -> Option<NoSpace> {
    match e {
        ostler_rows::RowsError::Spill { dir, source } => {
            NoSpace::from_io("write a sort spill file in", dir, source)
        }
        // A repository stream read or written behind `Read`/`Write`.
        ostler_rows::RowsError::Io(io) => ostler_repo::RepoError::from_io_error(io)
            .and_then(|r| r.no_space())
            .cloned(),
        _ => None,
    }
}

/// `e` and its causes on one line, `what: why: why`; see the module comment.
pub fn chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Chain<'a> {
    Chain(e)
}

/// See [`chain`].
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_puts_each_cause_once_on_one_line() {
        let os = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = Error::io("reading /x", os);
        assert_eq!(e.to_string(), "reading /x");
        assert_eq!(
            chain(&e).to_string(),
            "reading /x: Permission denied (os error 13)"
        );
    }

    #[test]
    fn a_full_disk_under_a_row_stream_stays_a_full_disk() {
        let dir = std::env::temp_dir();
        let spill = ostler_rows::RowsError::Spill {
            dir: dir.clone(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let e = Error::rows("sorting the rows of table `t`", spill);
        let Error::NoSpace(full) = &e else {
            panic!("not NoSpace: {e:?}")
        };
        assert_eq!(full.path, dir);
        let repo = ostler_repo::RepoError::NoSpace(NoSpace::at("write", &dir, Some(7), false));
        let piped = ostler_rows::RowsError::Io(std::io::Error::other(repo));
        assert!(matches!(
            Error::rows("storing the rows of table `t`", piped),
            Error::NoSpace(NoSpace {
                needed: Some(7),
                ..
            })
        ));
    }
}
