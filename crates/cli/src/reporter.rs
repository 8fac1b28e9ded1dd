//! Renders the library's events for people: `!!! CMD:` lines with `-v`, step messages
//! and warnings on stderr (for the daemon: as `tracing` events, [`TracingReporter`]), and progress in the form that suits where stderr goes:
//! indicatif bars on a terminal, a line per step in a log (systemd's journal, a cron
//! mail), nothing in `--json` (whose reader wants stdout's JSON and nothing else).
//!
//! Each progress is drawn in its unit: bytes as bytes (`1.5 MiB/3.0 MiB`), the rest
//! as counts (`3/12 tables`). In a log, a progress counted in tables prints a line
//! for every table; the others (bytes, rows, files, chunks, backups) are many and
//! quick, so they print at most one line every [`LINE_EVERY`] and one when they end.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};
use ostler_core::report::{Progress, Reporter, Unit};

/// The least time between two lines of one progress in a log.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct TerminalReporter {
    pub verbose: bool,
    pub json: bool,
    pub tty: bool,
    /// Every bar on the terminal, so several at once (tables, then a table's rows)
    /// stack instead of overwriting each other, and lines print above them.
    bars: MultiProgress,
}

impl TerminalReporter {
    pub fn new(verbose: bool, json: bool) -> TerminalReporter {
        TerminalReporter {
            verbose,
            json,
            tty: std::io::stderr().is_terminal(),
            bars: MultiProgress::new(),
        }
    }

    /// Prints `line` on stderr, above any bars.
    fn line(&self, line: &str) {
        self.bars.suspend(|| eprintln!("{line}"));
    }
}

impl Reporter for TerminalReporter {
    fn command(&self, line: &str) {
        if self.verbose {
            self.line(&format!("!!! CMD: {line}"));
        }
    }

    fn info(&self, instance: &str, message: &str) {
        if !self.json {
            if instance.is_empty() || message.starts_with(instance) {
                self.line(message);
            } else {
                self.line(&format!("{instance}: {message}"));
            }
        }
    }

    fn warn(&self, instance: &str, message: &str) {
        if instance.is_empty() || message.starts_with(instance) {
            self.line(&format!("warning: {message}"));
        } else {
            self.line(&format!("warning: {instance}: {message}"));
        }
    }

    fn progress(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Progress> {
        if self.json {
            Box::new(ostler_core::report::NoProgress)
        } else if self.tty {
            Box::new(Bar(self.bars.add(bar(label, unit, total))))
        } else {
            Box::new(Lines::new(
                label,
                unit,
                total,
                LINE_EVERY,
                Box::new(|line| eprintln!("{line}")),
            ))
        }
    }
}

/// The daemon's reporter: every message is a `tracing` event (so it lands in the log
/// file and in `--log-format`'s form), with the instance as a field; commands at
/// `debug` (`info` with `-v`); no progress (a daemon's log wants no bars).
pub struct TracingReporter {
    pub verbose: bool,
}

impl Reporter for TracingReporter {
    fn command(&self, line: &str) {
        if self.verbose {
            tracing::info!(command = line, "running a command");
        } else {
            tracing::debug!(command = line, "running a command");
        }
    }

    fn info(&self, instance: &str, message: &str) {
        if instance.is_empty() {
            tracing::info!("{message}");
        } else {
            tracing::info!(instance, "{message}");
        }
    }

    fn warn(&self, instance: &str, message: &str) {
        if instance.is_empty() {
            tracing::warn!("{message}");
        } else {
            tracing::warn!(instance, "{message}");
        }
    }
}

/// A bar (or, without a total, a spinner) showing `unit`s.
fn bar(label: &str, unit: Unit, total: Option<u64>) -> ProgressBar {
    let template = match (unit, total) {
        (Unit::Bytes, Some(_)) => {
            "{prefix:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta} {wide_msg}"
                .to_string()
        }
        (Unit::Bytes, None) => "{spinner} {prefix:20} {bytes} {bytes_per_sec} {wide_msg}".into(),
        (unit, Some(_)) => format!(
            "{{prefix:20}} [{{bar:30}}] {{human_pos}}/{{human_len}} {} {{eta}} {{wide_msg}}",
            unit.noun()
        ),
        (unit, None) => format!(
            "{{spinner}} {{prefix:20}} {{human_pos}} {} {{wide_msg}}",
            unit.noun()
        ),
    };
    let b = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    b.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(label.to_string());
    b
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn set(&self, done: u64) {
        self.0.set_position(done);
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn message(&self, text: &str) {
        self.0.set_message(text.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Progress as lines (on stderr), for logs.
struct Lines {
    label: String,
    unit: Unit,
    total: Option<u64>,
    /// The least time between two lines, but for units that are steps.
    every: Duration,
    write: Box<dyn Fn(&str) + Send + Sync>,
    state: Mutex<LineState>,
}

struct LineState {
    done: u64,
    /// The count the last line showed.
    printed: Option<u64>,
    last: Instant,
    message: String,
}

impl Lines {
    fn new(
        label: &str,
        unit: Unit,
        total: Option<u64>,
        every: Duration,
        write: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Lines {
        Lines {
            label: label.to_string(),
            unit,
            total,
            every,
            write,
            state: Mutex::new(LineState {
                done: 0,
                printed: None,
                last: Instant::now(),
                message: String::new(),
            }),
        }
    }

    fn advanced(&self, f: impl FnOnce(&mut u64)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s.done);
        if self.unit.is_step() || s.last.elapsed() >= self.every {
            self.print(&mut s);
        }
    }

    fn print(&self, s: &mut LineState) {
        let mut line = format!("{}: {}", self.label, amount(self.unit, s.done, self.total));
        if !s.message.is_empty() {
            line.push_str(&format!(" ({})", s.message));
        }
        (self.write)(&line);
        s.printed = Some(s.done);
        s.last = Instant::now();
    }
}

/// `done` (of `total`) in `unit`: `1.5 MiB/3.0 MiB`, `3/12 tables`, `40 rows`.
pub fn amount(unit: Unit, done: u64, total: Option<u64>) -> String {
    match (unit, total) {
        (Unit::Bytes, Some(t)) => format!("{}/{}", HumanBytes(done), HumanBytes(t)),
        (Unit::Bytes, None) => HumanBytes(done).to_string(),
        (unit, Some(t)) => format!("{done}/{t} {}", unit.noun()),
        (unit, None) => format!("{done} {}", unit.noun()),
    }
}

impl Progress for Lines {
    fn set(&self, done: u64) {
        self.advanced(|d| *d = done);
    }
    fn inc(&self, delta: u64) {
        self.advanced(|d| *d += delta);
    }
    fn message(&self, text: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.message = text.to_string();
    }
}

impl Drop for Lines {
    /// The last count, unless a line already showed it. Rows are counted within a
    /// table whose own line follows: a table quick enough to print no line of rows
    /// while it ran needs none at its end either.
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let rows_of_a_quick_table = self.unit == Unit::Rows && s.printed.is_none();
        if s.printed != Some(s.done) && !rows_of_a_quick_table {
            self.print(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A progress in lines at most `every` apart, and the lines it printed.
    fn lines(unit: Unit, total: Option<u64>, every: Duration) -> (Lines, Arc<Mutex<Vec<String>>>) {
        let printed = Arc::new(Mutex::new(Vec::new()));
        let keep = printed.clone();
        let write = Box::new(move |l: &str| keep.lock().unwrap().push(l.to_string()));
        (Lines::new("restore t", unit, total, every, write), printed)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn tables_print_a_line_each_whatever_the_interval() {
        let (p, printed) = lines(Unit::Tables, Some(2), HOUR);
        p.message("a");
        p.inc(1);
        p.message("b");
        p.inc(1);
        drop(p);
        let printed = printed.lock().unwrap().clone();
        assert_eq!(
            printed,
            ["restore t: 1/2 tables (a)", "restore t: 2/2 tables (b)"]
        );
    }

    #[test]
    fn a_long_table_prints_its_rows_as_they_go_and_nothing_more_at_its_end() {
        let (p, printed) = lines(Unit::Rows, Some(3), Duration::ZERO);
        (0..3).for_each(|_| p.inc(1));
        drop(p);
        let printed = printed.lock().unwrap().clone();
        assert_eq!(
            printed,
            [
                "restore t: 1/3 rows",
                "restore t: 2/3 rows",
                "restore t: 3/3 rows"
            ]
        );
    }

    #[test]
    fn a_quick_table_prints_no_rows() {
        let (p, printed) = lines(Unit::Rows, Some(3), HOUR);
        (0..3).for_each(|_| p.inc(1));
        drop(p);
        assert!(printed.lock().unwrap().is_empty());
    }

    #[test]
    fn bytes_between_lines_are_told_when_done() {
        let (p, printed) = lines(Unit::Bytes, None, HOUR);
        p.inc(1000);
        p.inc(536);
        assert!(printed.lock().unwrap().is_empty());
        drop(p);
        assert_eq!(*printed.lock().unwrap(), ["restore t: 1.50 KiB"]);
    }

    #[test]
    fn counts_of_tables_are_not_drawn_as_bytes() {
        assert_eq!(amount(Unit::Tables, 3, Some(12)), "3/12 tables");
        assert_eq!(amount(Unit::Rows, 40, None), "40 rows");
        assert_eq!(amount(Unit::Bytes, 1536, Some(3072)), "1.50 KiB/3.00 KiB");
        assert_eq!(amount(Unit::Bytes, 12, None), "12 B");
    }
}
