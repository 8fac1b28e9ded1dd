//! Results on stdout, and a closed stdout as a quiet exit.
//!
//! `ostler journal | head` closes our stdout early. Dying by SIGPIPE, as a C
//! program would, is no way for ostler to stop: the same signal also killed it
//! when one of its own pipes lost its reader (a backup's store thread on a full
//! repository disk), with no message, exit 141 and a catalog entry left
//! `running`. So SIGPIPE stays ignored (Rust's default), a write into a dead
//! pipe is an `EPIPE` error like any other, and every write to stdout goes
//! through [`write_out`] (the [`outln!`] and [`out!`] macros). A write that
//! finds stdout closed unwinds to `cli::main`, which exits 0 without a word:
//! the reader has all it wanted. Unwinding rather than `process::exit` runs
//! every destructor on the way, so locks are released and temporary files
//! removed. Any other failure to write stdout (a full disk under `> file`) is
//! reported as an error.

use std::io::{self, Write};

/// The payload a write to a closed stdout unwinds with.
pub struct StdoutClosed;

/// The payload a write to stdout that failed otherwise unwinds with.
pub struct StdoutFailed(pub io::Error);

/// Writes to stdout; see the module comment for what happens when it cannot.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::panic::resume_unwind(Box::new(StdoutClosed));
        }
        std::panic::resume_unwind(Box::new(StdoutFailed(e)));
    }
}

/// `println!` for results: a closed stdout is a quiet exit.
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for results: a closed stdout is a quiet exit.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}
