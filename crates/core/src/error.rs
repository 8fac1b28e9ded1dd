//! The library's error type. Every error carries a kind, so that front ends can map it
//! to an exit status without parsing messages, and the context a user needs to act:
//! which instance, which file and line, which command failed and what it printed.

use std::path::PathBuf;

/// What sort of failure this is; the CLI maps each kind to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

    #[error("cannot read configuration {}: {source}", .path.display())]
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

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("state database {}: {source}", .path.display())]
    State {
        path: PathBuf,
        source: rusqlite::Error,
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
            Error::Failed { .. } | Error::Io { .. } => ErrorKind::Failed,
            Error::Interrupted => ErrorKind::Interrupted,
            Error::State { .. } | Error::Other(_) => ErrorKind::Internal,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::User { hint, .. } | Error::Busy { hint, .. } | Error::Failed { hint, .. } => {
                hint.as_deref()
            }
            _ => None,
        }
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
