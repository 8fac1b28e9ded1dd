//! `ostler logs rotate`: the config's log rotation (`[[logs]]`, `[log_rotation]`) run
//! now. The work is `ostler_core::logrotate::rotate`; this renders its report: a
//! line per file, and under a rotated one each step (what moved where).

use std::path::Path;

use ostler_core::logrotate::config::CompressMethod;
use ostler_core::logrotate::plan::RemoveWhy;
use ostler_core::logrotate::{self, Outcome, RotateOptions, SkipWhy, Step, Why};
use ostler_core::Result;

use crate::cli::Context;

/// Rotate the log files the config names, as logrotate would: each `[[logs]]` entry,
/// and each instance's own log and `logs` when `[log_rotation]` (or the instance's
/// `log_rotation`) is given. A file is rotated when its frequency's time came (the
/// last rotations are kept in the state dir) or its size is reached.
///
/// Exits 1 when a file could not be rotated (a missing file without `missingok`, a
/// dated name that exists already...); the other files are rotated all the same.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rotate every file now, whatever its frequency or size (logrotate -f).
    #[arg(long)]
    pub force: bool,
    /// Only say what would be renamed, compressed, removed or created; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let report = logrotate::rotate(
        &ostler,
        &RotateOptions {
            force: args.force,
            dry_run: args.dry_run,
        },
    )?;
    let status = i32::from(report.failed() > 0);
    if ctx.json {
        super::print_json(&report)?;
        return Ok(status);
    }
    let base = ostler.config.base_dir();
    let show = |p: &Path| p.strip_prefix(&base).unwrap_or(p).display().to_string();
    for file in &report.files {
        let path = show(&file.path);
        match &file.outcome {
            Outcome::Rotated { why, steps } => {
                let verb = if report.dry_run {
                    "would rotate"
                } else {
                    "rotated"
                };
                outln!("{verb} {path} ({})", why_words(*why));
                for step in steps {
                    outln!("  {}", step_line(step, &show));
                }
            }
            Outcome::Skipped { why } => outln!("skip {path}: {}", skip_words(ctx, why)),
            Outcome::Failed { error, done } => {
                outln!("failed {path}: {error}");
                for step in done {
                    outln!("  (done) {}", step_line(step, &show));
                }
            }
        }
    }
    let rotated = report.rotated();
    let total = report.files.len();
    if report.dry_run {
        outln!("dry run: would rotate {rotated} of {total} files; nothing changed");
    } else {
        outln!(
            "rotated {rotated} of {total} files{}",
            match report.failed() {
                0 => String::new(),
                n => format!("; {n} failed"),
            }
        );
    }
    Ok(status)
}

fn why_words(why: Why) -> &'static str {
    match why {
        Why::Forced => "forced",
        Why::Maxsize => "bigger than maxsize",
        Why::Size => "reached its size",
        Why::Due => "due",
        Why::LastRotatedInTheFuture => "last rotation recorded in the future",
    }
}

fn skip_words(ctx: &Context, why: &SkipWhy) -> String {
    match why {
        SkipWhy::Missing => "missing (missingok)".into(),
        SkipWhy::Empty => "empty (notifempty)".into(),
        SkipWhy::BelowSize { size, bytes } => format!(
            "{} is below its size {}",
            super::human_bytes(*bytes),
            super::human_bytes(*size)
        ),
        SkipWhy::BelowMinsize { minsize, bytes } => format!(
            "{} is below its minsize {}",
            super::human_bytes(*bytes),
            super::human_bytes(*minsize)
        ),
        SkipWhy::NotDue {
            frequency,
            last_rotated,
        } => format!(
            "not due ({}, last rotated {})",
            frequency.as_str(),
            ctx.show_time(*last_rotated)
        ),
        SkipWhy::NotAPlainFile => "a symbolic link or hard-linked file (not rotated)".into(),
    }
}

fn step_line(step: &Step, show: &dyn Fn(&Path) -> String) -> String {
    match step {
        Step::Compress { from, to, method } => format!(
            "compress {} -> {} ({})",
            show(from),
            show(to),
            match method {
                CompressMethod::Gzip => "gzip",
                CompressMethod::Zstd => "zstd",
            }
        ),
        Step::Rename { from, to } => format!("rename {} -> {}", show(from), show(to)),
        Step::Remove { path, why } => format!(
            "remove {} ({})",
            show(path),
            match why {
                RemoveWhy::BeyondRotate => "beyond rotate",
                RemoveWhy::Maxage => "older than maxage",
            }
        ),
        Step::CopyTruncate { from, to } => {
            format!("copy {} -> {}, then truncate it", show(from), show(to))
        }
        Step::Create { path, mode, .. } => format!("create {} (mode {mode:04o})", show(path)),
        Step::Postrotate { command, log } => format!("postrotate `{command}` {}", show(log)),
        Step::Signal {
            instance,
            signal,
            pid,
        } => match pid {
            Some(pid) => format!("signal {signal} to {instance} (process group {pid})"),
            None => format!("signal {signal} to {instance}: not running, not sent"),
        },
    }
}
