//! How the library tells its front end what is happening, without knowing whether that
//! is a terminal, a log or JSON: events for commands run and steps taken, and progress
//! handles for long operations. The CLI renders them (indicatif on a TTY, a line per
//! step in a log, nothing in `--json`); the daemon logs them.
//!
//! A progress counts something named by its [`Unit`], so a front end can draw bytes
//! as bytes and the rest as counts ("3/12 tables"), never one as the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub trait Reporter: Send + Sync {
    /// An external command is about to run (`!!! CMD: ...` with `-v`).
    fn command(&self, _line: &str) {}
    /// A step of an operation on an instance, for people.
    fn info(&self, _instance: &str, _message: &str) {}
    /// Something worth a warning that does not stop the operation.
    fn warn(&self, _instance: &str, _message: &str) {}
    /// A long operation starts, counting `unit`s up to `total` when it is known; the
    /// returned handle is advanced and dropped when done.
    fn progress(&self, _label: &str, _unit: Unit, _total: Option<u64>) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}

/// What a progress counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Rows,
    Tables,
    Backups,
    Files,
}

impl Unit {
    /// The plural noun, as in "3/12 tables".
    pub fn noun(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Rows => "rows",
            Unit::Tables => "tables",
            Unit::Backups => "backups",
            Unit::Files => "files",
        }
    }

    /// Whether each one counted is a step of its own worth telling a log about (a
    /// table takes a while; a row, a chunk or a file does not).
    pub fn is_step(self) -> bool {
        matches!(self, Unit::Tables)
    }
}

pub trait Progress: Send + Sync {
    fn set(&self, _done: u64) {}
    fn inc(&self, _delta: u64) {}
    fn message(&self, _text: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// A reporter that says nothing (tests, `--json`).
pub struct Silent;
impl Reporter for Silent {}

/// Cooperative cancellation: front ends set it on Ctrl-C / SIGTERM; long loops and
/// chains check it between steps.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn check(&self) -> crate::Result<()> {
        if self.is_set() {
            Err(crate::Error::Interrupted)
        } else {
            Ok(())
        }
    }
}
