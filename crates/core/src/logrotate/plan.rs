//! The steps of rotating one file, planned before anything moves (a dry run prints
//! them; the real run applies them), in the order logrotate 3.21's
//! `prerotateSingleLog`, `rotateSingleLog` and `postrotateSingleLog` take them.
//! Planning reads the directory once and plays each step on that listing, so later
//! steps see what earlier ones will have done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Zoned;
use serde::Serialize;

use super::config::{CompressMethod, DateFormat, SignalName};
use super::{FileError, Target};
use crate::instance::Ostler;

/// One thing done to the files (or the instance) while rotating one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Compress `from` into `to` and remove `from`.
    Compress {
        from: PathBuf,
        to: PathBuf,
        method: CompressMethod,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
    },
    Remove {
        path: PathBuf,
        why: RemoveWhy,
    },
    /// copytruncate: copy the log to `to`, then empty the log in place.
    CopyTruncate {
        from: PathBuf,
        to: PathBuf,
    },
    /// A new empty log, with `mode` (the rotated file's, or `create`'s) and the
    /// rotated file's owner and group.
    Create {
        path: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// `sh -c COMMAND sh LOG`.
    Postrotate {
        command: String,
        log: PathBuf,
    },
    /// The signal to the instance's process group; `pid` None: not running, not sent.
    Signal {
        instance: String,
        signal: SignalName,
        pid: Option<i32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveWhy {
    /// More rotated files than `rotate` keeps.
    BeyondRotate,
    /// Older than `maxage` days.
    Maxage,
}

/// A directory's listing as the planned steps leave it: name → mtime (seconds).
struct Listing {
    dir: PathBuf,
    names: BTreeMap<String, i64>,
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing, FileError> {
        use std::os::unix::fs::MetadataExt;
        let mut names = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| FileError::io("cannot list", dir, e))?;
        for entry in entries.flatten() {
            let mtime = entry.metadata().map(|m| m.mtime()).unwrap_or(0);
            names.insert(entry.file_name().to_string_lossy().into_owned(), mtime);
        }
        Ok(Listing {
            dir: dir.to_path_buf(),
            names,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn mv(&mut self, from: &str, to: &str) {
        if let Some(m) = self.names.remove(from) {
            self.names.insert(to.into(), m);
        }
    }

    fn older_than_days(&self, name: &str, now: i64, days: Option<u32>) -> bool {
        match (days, self.names.get(name)) {
            (Some(days), Some(mtime)) => (now - mtime) > i64::from(days) * 86_400,
            _ => false,
        }
    }
}

/// The steps that rotate `target` at `now` (its local time). When the rotation
/// cannot be done, the error comes with the steps logrotate takes before it finds
/// out (compressing earlier dated rotations, removing the oldest), which are still
/// to be taken, so that both leave the same files.
pub(crate) fn plan(
    ostler: &Ostler,
    target: &Target,
    now: &Zoned,
) -> Result<Vec<Step>, (FileError, Vec<Step>)> {
    let r = &target.rotation;
    let log = &target.path;
    let log_dir = log.parent().unwrap_or(Path::new("."));
    let base = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match &r.olddir {
        Some(o) => log_dir.join(o),
        None => log_dir.to_path_buf(),
    };
    if !dir.is_dir() {
        return Err((FileError::NoOlddir { path: dir }, Vec::new()));
    }
    let mut ls = Listing::read(&dir).map_err(|e| (e, Vec::new()))?;
    let secs = now.timestamp().as_second();
    let ext = r.compress.map(CompressMethod::extension).unwrap_or("");
    let delay = r.compress.is_some() && r.delaycompress;
    let count = r.rotate.max(1);
    let mut steps = Vec::new();
    let compress = |from: &str, ls: &mut Listing, steps: &mut Vec<Step>| {
        if let Some(method) = r.compress {
            let to = format!("{from}{ext}");
            steps.push(Step::Compress {
                from: ls.path(from),
                to: ls.path(&to),
                method,
            });
            ls.mv(from, &to);
        }
    };
    let mut dispose: Option<String>;
    let final_name: String;
    match &r.dateext {
        Some(format) => {
            let pattern = DatePattern::new(format);
            // First compress the previous rotations left uncompressed by delaycompress.
            if delay {
                let mut old: Vec<String> = ls
                    .names
                    .keys()
                    .filter(|n| pattern.dated(&base, n, "").is_some())
                    .cloned()
                    .collect();
                pattern.sort(&base, &mut old, "");
                for name in old {
                    compress(&name, &mut ls, &mut steps);
                }
            }
            let mut rotated: Vec<String> = ls
                .names
                .keys()
                .filter(|n| pattern.dated(&base, n, ext).is_some())
                .cloned()
                .collect();
            pattern.sort(&base, &mut rotated, ext);
            // Keep count - 1 of them (the new one makes count); the last one dropped
            // is removed after the rotation, as logrotate's "disposeName".
            dispose = None;
            let n = rotated.len();
            for (i, name) in rotated.iter().enumerate() {
                let beyond = n >= count as usize && i <= n - count as usize;
                let aged = ls.older_than_days(name, secs, r.maxage_days);
                if beyond || aged {
                    if let Some(prev) = dispose.replace(name.clone()) {
                        steps.push(Step::Remove {
                            path: ls.path(&prev),
                            why: remove_why(&ls, &prev, secs, r.maxage_days),
                        });
                        ls.names.remove(&prev);
                    }
                }
            }
            final_name = format!("{base}{}", strftime(format, now));
            let dest = format!("{final_name}{ext}");
            if ls.has(&dest) {
                let error = FileError::DestinationExists {
                    path: ls.path(&dest),
                };
                return Err((error, steps));
            }
        }
        None => {
            if delay && ls.has(&format!("{base}.1")) {
                compress(&format!("{base}.1"), &mut ls, &mut steps);
            }
            let oldest = format!("{base}.{}{ext}", count + 1);
            for i in (1..=count).rev() {
                let from = format!("{base}.{i}{ext}");
                if !ls.has(&from) {
                    continue;
                }
                if ls.older_than_days(&from, secs, r.maxage_days) {
                    steps.push(Step::Remove {
                        path: ls.path(&from),
                        why: RemoveWhy::Maxage,
                    });
                    ls.names.remove(&from);
                    continue;
                }
                let to = format!("{base}.{}{ext}", i + 1);
                steps.push(Step::Rename {
                    from: ls.path(&from),
                    to: ls.path(&to),
                });
                ls.mv(&from, &to);
            }
            dispose = ls.has(&oldest).then_some(oldest);
            final_name = format!("{base}.1");
        }
    }
    let final_path = ls.path(&final_name);
    if r.copytruncate {
        steps.push(Step::CopyTruncate {
            from: log.clone(),
            to: final_path.clone(),
        });
    } else {
        steps.push(Step::Rename {
            from: log.clone(),
            to: final_path.clone(),
        });
        if let Some(mode) = r.create {
            use std::os::unix::fs::MetadataExt;
            let old = std::fs::metadata(log)
                .map_err(|e| (FileError::io("cannot stat", log, e), steps.clone()))?;
            steps.push(Step::Create {
                path: log.clone(),
                mode: mode.unwrap_or(old.mode() & 0o777),
                uid: old.uid(),
                gid: old.gid(),
            });
        }
    }
    ls.names.insert(final_name.clone(), secs);
    if r.rotate == 0 {
        // Rotated once, then removed (logrotate's `rotate 0`).
        dispose = Some(if delay {
            final_name.clone()
        } else {
            format!("{final_name}{ext}")
        });
    }
    if let Some(command) = &r.postrotate {
        steps.push(Step::Postrotate {
            command: command.clone(),
            log: log.clone(),
        });
    }
    if let (Some(signal), Some(instance)) = (r.signal, &target.instance) {
        steps.push(Step::Signal {
            instance: instance.clone(),
            signal,
            pid: running_pid(ostler, instance),
        });
    }
    if !delay {
        compress(&final_name, &mut ls, &mut steps);
    }
    if let Some(name) = dispose {
        steps.push(Step::Remove {
            path: ls.path(&name),
            why: remove_why(&ls, &name, secs, r.maxage_days),
        });
    }
    Ok(steps)
}

fn remove_why(ls: &Listing, name: &str, now: i64, maxage: Option<u32>) -> RemoveWhy {
    if ls.older_than_days(name, now, maxage) {
        RemoveWhy::Maxage
    } else {
        RemoveWhy::BeyondRotate
    }
}

/// The pid of the instance's running process (ours, not a reused pid), if any.
fn running_pid(ostler: &Ostler, instance: &str) -> Option<i32> {
    let inst = ostler.instance(instance).ok()?;
    let state = ostler.state().ok()?;
    crate::ops::running_pid(&state, &inst).ok()?.1
}

/// `dateformat` expanded at a time (the subset [`DateFormat`] allows).
fn strftime(format: &DateFormat, now: &Zoned) -> String {
    let mut out = String::new();
    let mut chars = format.0.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out += &format!("{:04}", now.year()),
            Some('m') => out += &format!("{:02}", now.month()),
            Some('d') => out += &format!("{:02}", now.day()),
            Some('H') => out += &format!("{:02}", now.hour()),
            Some('M') => out += &format!("{:02}", now.minute()),
            Some('S') => out += &format!("{:02}", now.second()),
            Some('s') => out += &now.timestamp().as_second().to_string(),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// What logrotate's glob for dated names matches: the format with each conversion
/// as a run of digits (`%Y` 4, `%s` 10, the others 2), the rest literal.
struct DatePattern {
    parts: Vec<Part>,
}

enum Part {
    Digits(usize, char),
    Literal(char),
}

impl DatePattern {
    fn new(format: &DateFormat) -> DatePattern {
        let mut parts = Vec::new();
        let mut chars = format.0.trim_start_matches(' ').chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                parts.push(Part::Literal(c));
                continue;
            }
            match chars.next() {
                Some('Y') => parts.push(Part::Digits(4, 'Y')),
                Some('s') => parts.push(Part::Digits(10, 's')),
                Some(k @ ('m' | 'd' | 'H' | 'M' | 'S')) => parts.push(Part::Digits(2, k)),
                Some(other) => parts.push(Part::Literal(other)),
                None => {}
            }
        }
        DatePattern { parts }
    }

    /// For `name` = base + dated suffix + ext: the date's fields in sort order
    /// (year, month, day, hour, minute, second, epoch seconds); else None.
    fn dated(&self, base: &str, name: &str, ext: &str) -> Option<[i64; 7]> {
        let mid = name.strip_prefix(base)?.strip_suffix(ext)?;
        let mut rest = mid;
        let mut key = [0i64; 7];
        for part in &self.parts {
            match part {
                Part::Literal(c) => rest = rest.strip_prefix(*c)?,
                Part::Digits(n, k) => {
                    let digits = rest.get(..*n)?;
                    if !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let v: i64 = digits.parse().ok()?;
                    let slot = match k {
                        'Y' => 0,
                        'm' => 1,
                        'd' => 2,
                        'H' => 3,
                        'M' => 4,
                        'S' => 5,
                        _ => 6,
                    };
                    key[slot] = v;
                    rest = &rest[*n..];
                }
            }
        }
        rest.is_empty().then_some(key)
    }

    /// Oldest first, as logrotate sorts them (by the date parsed back; equal dates
    /// keep the listing's name order).
    fn sort(&self, base: &str, names: &mut [String], ext: &str) {
        names.sort_by_key(|n| self.dated(base, n, ext).unwrap_or_default());
    }
}
