//! Log rotation with logrotate's semantics and words (issue 11 item 5), so that a
//! service tended by ostler needs no cron job and no /etc/logrotate.d file, and its
//! operators find the behaviour they know: for the same settings and the same files,
//! the result equals Debian's logrotate 3.21 (names, contents, which are compressed);
//! `crates/core/tests/logrotate.rs` runs both side by side.
//!
//! Which files: each `[[logs]]` entry (a path or glob relative to the config file),
//! and, when `[log_rotation]` or the instance's own `[instances.X.log_rotation]`
//! exists, each instance's own log (`Config::log_path`) and its declared `logs`, with
//! the instance's keys over `[log_rotation]`'s over the defaults (Debian's
//! logrotate.conf: weekly, rotate 4, create; but an instance's own log, which its
//! process holds open as stdout, is copied and truncated unless `create` or
//! `copytruncate` is said). `[log_rotation]` is also the default of
//! the `[[logs]]` entries, as logrotate's global options are. A file named by a
//! `[[logs]]` entry is rotated by that entry only.
//!
//! When: logrotate's rules, on `ostler.clock`'s time in the service's zone (`[service]
//! timezone`, the jobs' zone; else the system's, as logrotate's `localtime`): the last rotation of each file is kept in
//! `<state_dir>/logrotate.json` (logrotate's `/var/lib/logrotate/status`); a file seen
//! for the first time is recorded, not rotated, unless it is due by size or forced.
//!
//! How: each file due is planned first ([`plan::Step`]s: compress, rename, remove,
//! copy and truncate, create, postrotate, signal), so `--dry-run` shows exactly what
//! would be done, then the steps run in logrotate's order. Compressed files have the
//! same *content* as logrotate's `gzip`/`zstd` output (decompressed bytes equal), not
//! the same compressed bytes (flate2 and gzip's encoders differ, gzip's header may
//! carry a name and time).

mod apply;
pub mod config;
pub mod plan;
mod state;

use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::instance::Ostler;
use config::{Frequency, Rotation, RotationConfig};
pub use plan::Step;

/// What `ostler logs rotate` was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotateOptions {
    /// Rotate every file now, whatever its frequency or size (logrotate `-f`).
    pub force: bool,
    /// Plan only: say what would move where, change nothing (not even the state).
    pub dry_run: bool,
}

/// What one run did (or, for a dry run, would do), per file.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    pub dry_run: bool,
    pub at: Timestamp,
    pub files: Vec<FileReport>,
}

impl RotationReport {
    pub fn rotated(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Rotated { .. }))
            .count()
    }

    pub fn failed(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Failed { .. }))
            .count()
    }
}

/// One file (or one `[[logs]]` glob that matched nothing).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub source: Source,
    /// In JSON its fields sit beside `path`: `"outcome": "rotated", "steps": [...]`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Which part of the config asked for the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A `[[logs]]` entry: its place in the file and its `path`.
    Logs {
        file: PathBuf,
        line: usize,
        pattern: String,
    },
    /// An instance's own log or one of its `logs`, by `[log_rotation]`.
    Instance { instance: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Logs {
                file,
                line,
                pattern,
            } => write!(f, "[[logs]] `{pattern}` at {}:{line}", file.display()),
            Source::Instance { instance } => write!(f, "instance `{instance}`'s logs"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Rotated (or would be, in a dry run) by these steps, in order.
    Rotated { why: Why, steps: Vec<Step> },
    /// Not due; nothing done.
    Skipped { why: SkipWhy },
    /// Not rotated (or rotated part way: `done` lists the steps that ran).
    Failed { error: FileError, done: Vec<Step> },
}

/// Why a file was rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    Forced,
    /// Bigger than `maxsize`.
    Maxsize,
    /// At least `size`.
    Size,
    /// Its frequency's time came.
    Due,
    /// The state says it was last rotated more than a day in the future.
    LastRotatedInTheFuture,
}

/// Why a file was left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipWhy {
    /// It does not exist and `missingok` is on.
    Missing,
    /// Empty, and `notifempty`.
    Empty,
    /// Smaller than `size`.
    BelowSize { size: u64, bytes: u64 },
    /// Smaller than `minsize`.
    BelowMinsize { minsize: u64, bytes: u64 },
    /// Rotated within its period already (or first seen now, and recorded).
    NotDue {
        frequency: Frequency,
        last_rotated: Timestamp,
    },
    /// A symbolic link or a file with several hard links: logrotate refuses both.
    NotAPlainFile,
}

/// Why a file could not be rotated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum FileError {
    #[error("{} does not exist (named by {named_by}; set `missingok = true` if it may be absent)", path.display())]
    Missing { path: PathBuf, named_by: Source },
    #[error("{} is named by {first} already; {second} does not rotate it again", path.display())]
    Duplicate {
        path: PathBuf,
        first: Box<Source>,
        second: Box<Source>,
    },
    #[error("olddir {} does not exist (create it; it must be on the log's file system)", path.display())]
    NoOlddir { path: PathBuf },
    #[error("destination {} already exists, skipping rotation (dateext names one rotation per date)", path.display())]
    DestinationExists { path: PathBuf },
    #[error("{action} {}: {message}", path.display())]
    Io {
        action: String,
        path: PathBuf,
        message: String,
    },
    #[error("postrotate `{command}` failed: {message}")]
    Postrotate { command: String, message: String },
}

impl FileError {
    fn io(action: &str, path: &Path, e: impl std::fmt::Display) -> FileError {
        FileError::Io {
            action: action.into(),
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// One file to consider, with its settings.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub path: PathBuf,
    pub source: Source,
    pub rotation: Rotation,
    /// The instance whose process gets `signal` and whose environment `postrotate` has.
    pub instance: Option<String>,
}

/// Rotates every log file of the config that is due (all with `force`), or with
/// `dry_run` says what it would do. One run at a time per state dir; a second one
/// meanwhile is refused as busy. A file that cannot be rotated is reported as
/// `Failed` and the others go on, as logrotate does.
pub fn rotate(ostler: &Ostler, options: &RotateOptions) -> Result<RotationReport> {
    let state_dir = ostler.state_dir();
    let _lock = state::lock(&state_dir)?;
    let mut state = state::Status::load(&state_dir)?;
    let now = ostler.clock.now();
    let zone = ostler.config.timezone();
    let mut journal = Journal::default();
    let mut files = Vec::new();
    let mut seen: Vec<(PathBuf, Source)> = Vec::new();
    for found in targets(ostler)? {
        let target = match found {
            Ok(t) => t,
            Err(report) => {
                files.push(report);
                continue;
            }
        };
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == target.path) {
            files.push(FileReport {
                path: target.path.clone(),
                source: target.source.clone(),
                outcome: Outcome::Failed {
                    error: FileError::Duplicate {
                        path: target.path.clone(),
                        first: Box::new(first.clone()),
                        second: Box::new(target.source.clone()),
                    },
                    done: Vec::new(),
                },
            });
            continue;
        }
        seen.push((target.path.clone(), target.source.clone()));
        let outcome = match decide(&target, &mut state, now, &zone, options.force) {
            Decision::Skip(why) => Outcome::Skipped { why },
            Decision::Fail(error) => Outcome::Failed {
                error,
                done: Vec::new(),
            },
            Decision::Rotate(why) => {
                let now_local = now.to_zoned(zone.clone());
                match plan::plan(ostler, &target, &now_local) {
                    Err((error, before)) if options.dry_run => Outcome::Failed {
                        error,
                        done: before,
                    },
                    Err((error, before)) => {
                        match apply::apply(ostler, journal.runner(ostler)?, &target, &before) {
                            Ok(()) => Outcome::Failed {
                                error,
                                done: before,
                            },
                            Err((error, done)) => Outcome::Failed { error, done },
                        }
                    }
                    Ok(steps) if options.dry_run => Outcome::Rotated { why, steps },
                    Ok(steps) => {
                        state.rotated(&target.path, now);
                        match apply::apply(ostler, journal.runner(ostler)?, &target, &steps) {
                            Ok(()) => Outcome::Rotated { why, steps },
                            Err((error, done)) => Outcome::Failed { error, done },
                        }
                    }
                }
            }
        };
        files.push(FileReport {
            path: target.path,
            source: target.source,
            outcome,
        });
    }
    let report = RotationReport {
        dry_run: options.dry_run,
        at: now,
        files,
    };
    if !options.dry_run {
        state.save()?;
        if report.failed() > 0 {
            journal.runner(ostler)?;
        }
        journal.end(&report);
    }
    Ok(report)
}

/// The journal entry `rotate-logs` of a run, begun when the first file is touched
/// (or fails), so that runs that find nothing due leave no entry; its commands
/// (postrotate) are journaled under it.
#[derive(Default)]
struct Journal(Option<(crate::state::State, i64, crate::exec::Runner)>);

impl Journal {
    fn runner(&mut self, ostler: &Ostler) -> Result<&crate::exec::Runner> {
        if self.0.is_none() {
            let state = ostler.state()?;
            let id = state.journal_begin("rotate-logs", None, None)?;
            let runner = ostler.runner().journaled(&state, id);
            self.0 = Some((state, id, runner));
        }
        match &self.0 {
            Some((_, _, runner)) => Ok(runner),
            None => Err(Error::failed("the rotation's journal entry is missing")),
        }
    }

    fn end(self, report: &RotationReport) {
        let Some((state, id, _)) = self.0 else { return };
        let mut detail = format!(
            "rotated {} of {} files",
            report.rotated(),
            report.files.len()
        );
        for f in &report.files {
            if let Outcome::Failed { error, .. } = &f.outcome {
                detail += &format!("; {error}");
            }
        }
        let status = if report.failed() > 0 { "failed" } else { "ok" };
        // The rotation is done; a journal that cannot be written does not undo it.
        if let Err(e) = state.journal_end(id, status, Some(&detail)) {
            tracing::warn!("cannot end journal entry {id}: {e}");
        }
    }
}

enum Decision {
    Rotate(Why),
    Skip(SkipWhy),
    Fail(FileError),
}

/// logrotate's `findNeedRotating`: force, maxsize, size, the frequency against the
/// last rotation in local calendar terms, then minsize and notifempty. Records a
/// file seen for the first time as rotated now.
fn decide(
    t: &Target,
    state: &mut state::Status,
    now: Timestamp,
    zone: &TimeZone,
    force: bool,
) -> Decision {
    let r = &t.rotation;
    let meta = match std::fs::symlink_metadata(&t.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if r.missingok {
                Decision::Skip(SkipWhy::Missing)
            } else {
                Decision::Fail(FileError::Missing {
                    path: t.path.clone(),
                    named_by: t.source.clone(),
                })
            };
        }
        Err(e) => return Decision::Fail(FileError::io("cannot stat", &t.path, e)),
    };
    let last = state.last_rotated(&t.path, now);
    use std::os::unix::fs::MetadataExt;
    if meta.file_type().is_symlink() || meta.nlink() != 1 {
        return Decision::Skip(SkipWhy::NotAPlainFile);
    }
    let bytes = meta.len();
    let now_l = now.to_zoned(zone.clone());
    let last_l = last.to_zoned(zone.clone());
    let mut verdict = if force {
        Ok(Why::Forced)
    } else if r.maxsize.is_some_and(|m| bytes > m) {
        Ok(Why::Maxsize)
    } else if let Some(size) = r.size {
        if bytes >= size {
            Ok(Why::Size)
        } else {
            Err(SkipWhy::BelowSize { size, bytes })
        }
    } else if last.duration_since(now) > jiff::SignedDuration::from_hours(25) {
        // 25 hours allows for DST changes as well as moves between zones (logrotate).
        Ok(Why::LastRotatedInTheFuture)
    } else {
        let frequency = r.frequency.unwrap_or(Frequency::Weekly);
        let (n, l) = (now_l.datetime(), last_l.datetime());
        let same_hour = n.date() == l.date() && n.hour() == l.hour();
        let due = !same_hour
            && match frequency {
                Frequency::Hourly => true,
                Frequency::Daily => n.date() != l.date(),
                Frequency::Weekly => {
                    // logrotate: 7 days on, or a new day that is a Sunday (`weekly 0`).
                    let days = (n.date() - l.date()).get_days();
                    days >= 7 || (days >= 1 && n.date().weekday() == jiff::civil::Weekday::Sunday)
                }
                Frequency::Monthly => (n.year(), n.month()) != (l.year(), l.month()),
                Frequency::Yearly => n.year() != l.year(),
            };
        let minsize_blocks = !same_hour && r.minsize.is_some_and(|m| bytes < m);
        if minsize_blocks && due {
            Err(SkipWhy::BelowMinsize {
                minsize: r.minsize.unwrap_or(0),
                bytes,
            })
        } else if due {
            Ok(Why::Due)
        } else {
            Err(SkipWhy::NotDue {
                frequency,
                last_rotated: last,
            })
        }
    };
    if verdict.is_ok() && !r.ifempty && bytes == 0 {
        verdict = Err(SkipWhy::Empty);
    }
    match verdict {
        Ok(why) => Decision::Rotate(why),
        Err(why) => Decision::Skip(why),
    }
}

/// Every file the config asks to rotate, in config order: `[[logs]]` entries (globs
/// expanded, sorted as glob(3) does), then each instance's logs. A `[[logs]]` glob
/// that matches nothing is a `Failed` report (unless `missingok`: `Skipped`).
fn targets(ostler: &Ostler) -> Result<Vec<std::result::Result<Target, FileReport>>> {
    let config = &ostler.config;
    let base = config.base_dir();
    let global = config.log_rotation.clone().unwrap_or_default();
    let text = std::fs::read_to_string(&config.path).unwrap_or_default();
    let mut out = Vec::new();
    let mut listed: Vec<PathBuf> = Vec::new();
    for entry in &config.logs {
        let Some(pattern) = &entry.path else { continue };
        let source = Source::Logs {
            file: config.path.clone(),
            line: text[..pattern.span().start.min(text.len())]
                .matches('\n')
                .count()
                + 1,
            pattern: pattern.get_ref().clone(),
        };
        let rotation = entry.over(&global).resolve(false);
        let full = base.join(pattern.get_ref());
        // The config's directory is a place, not a pattern: its `[` or `*` match only
        // themselves.
        let full_text = if Path::new(pattern.get_ref()).is_absolute() {
            pattern.get_ref().clone()
        } else {
            let base = glob::Pattern::escape(&base.to_string_lossy());
            format!("{}/{}", base.trim_end_matches('/'), pattern.get_ref())
        };
        let mut paths: Vec<PathBuf> = match glob::glob(&full_text) {
            Ok(paths) => paths.filter_map(|p| p.ok()).collect(),
            Err(e) => {
                return Err(Error::user(format!("{source}: not a glob: {e}")));
            }
        };
        let is_glob = glob::Pattern::escape(pattern.get_ref()) != *pattern.get_ref();
        if paths.is_empty() {
            if is_glob {
                out.push(Err(FileReport {
                    path: full.clone(),
                    source: source.clone(),
                    outcome: if rotation.missingok {
                        Outcome::Skipped {
                            why: SkipWhy::Missing,
                        }
                    } else {
                        Outcome::Failed {
                            error: FileError::Missing {
                                path: full.clone(),
                                named_by: source.clone(),
                            },
                            done: Vec::new(),
                        }
                    },
                }));
                continue;
            }
            paths.push(full);
        }
        paths.sort();
        for path in paths {
            listed.push(path.clone());
            out.push(Ok(Target {
                path,
                source: source.clone(),
                rotation: rotation.clone(),
                instance: entry.instance.as_ref().map(|i| i.get_ref().clone()),
            }));
        }
    }
    for (name, inst) in &config.instances {
        let own: RotationConfig = match (&inst.log_rotation, &config.log_rotation) {
            (None, None) => continue,
            (Some(i), _) => i.over(&global),
            (None, Some(g)) => g.clone(),
        };
        let source = Source::Instance {
            instance: name.clone(),
        };
        let own_log = config.log_path(name, inst);
        for (i, path) in config.log_files(name).into_iter().enumerate() {
            if listed.contains(&path) {
                continue;
            }
            let writer_keeps_it_open = i == 0 && path == own_log;
            out.push(Ok(Target {
                path,
                source: source.clone(),
                rotation: own.resolve(writer_keeps_it_open),
                instance: Some(name.clone()),
            }));
        }
    }
    Ok(out)
}
