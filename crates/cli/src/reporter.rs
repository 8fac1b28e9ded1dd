//! Renders the library's events for people: `!!! CMD:` lines with `-v`, step messages
//! and warnings on stderr, progress bars only on a terminal and never in `--json`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use ostler_core::report::{Progress, Reporter};

pub struct TerminalReporter {
    pub verbose: bool,
    pub json: bool,
    pub tty: bool,
}

impl TerminalReporter {
    pub fn new(verbose: bool, json: bool) -> TerminalReporter {
        TerminalReporter {
            verbose,
            json,
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Reporter for TerminalReporter {
    fn command(&self, line: &str) {
        if self.verbose {
            eprintln!("!!! CMD: {line}");
        }
    }

    fn info(&self, instance: &str, message: &str) {
        if !self.json {
            if instance.is_empty() || message.starts_with(instance) {
                eprintln!("{message}");
            } else {
                eprintln!("{instance}: {message}");
            }
        }
    }

    fn warn(&self, instance: &str, message: &str) {
        if instance.is_empty() || message.starts_with(instance) {
            eprintln!("warning: {message}");
        } else {
            eprintln!("warning: {instance}: {message}");
        }
    }

    fn progress(&self, label: &str, total: Option<u64>) -> Box<dyn Progress> {
        if self.json || !self.tty {
            return Box::new(ostler_core::report::NoProgress);
        }
        let bar = match total {
            Some(n) => {
                let b = ProgressBar::new(n);
                b.set_style(
                    ProgressStyle::with_template(
                        "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("{spinner} {msg:20} {bytes} {bytes_per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b
            }
        };
        bar.set_message(label.to_string());
        Box::new(Bar(bar))
    }
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
