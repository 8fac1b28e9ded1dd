//! ostler's log rotation side by side with Debian's logrotate 3.21: the same files in
//! two directories, the same settings written as `ostler.toml` `[[logs]]` and as a
//! logrotate config, several rounds of writing more lines and rotating, and after
//! each round the two directories compared: the file names, each file's content
//! (decompressed), which files are compressed and each file's mode.
//!
//! Needs `/usr/sbin/logrotate` (scripts/install-test-deps.sh installs it); without it
//! these tests fail rather than pass silently.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ostler_core::clock::ManualClock;
use ostler_core::config::Config;
use ostler_core::logrotate::{self, FileError, Outcome, RotateOptions, RotationReport, SkipWhy};
use ostler_core::report::{Interrupt, Silent};
use ostler_core::Ostler;

const LOGROTATE: &str = "/usr/sbin/logrotate";

/// A value of a rotation key, written both ways.
#[derive(Clone, Copy)]
enum V {
    On,
    Off,
    N(u32),
    S(&'static str),
}

/// One setup: a name for each log file under `logs/` and the keys of its entry.
struct Side {
    root: tempfile::TempDir,
    /// logrotate's state file (outside `logs/`).
    status: PathBuf,
    conf: PathBuf,
}

struct Pair {
    ours: Side,
    theirs: Side,
    ostler: Ostler,
    /// The `path` of the entry, relative to the config (a file or a glob).
    pattern: String,
}

impl Pair {
    /// Both sides with `files` (name → first content) under `logs/` and `dirs` made
    /// there too; the entry `pattern` with `keys`.
    fn new(pattern: &str, keys: &[(&str, V)], files: &[(&str, &str)], dirs: &[&str]) -> Pair {
        let make = || {
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir(root.path().join("logs")).unwrap();
            for d in dirs {
                std::fs::create_dir_all(root.path().join("logs").join(d)).unwrap();
            }
            for (name, text) in files {
                let p = root.path().join("logs").join(name);
                std::fs::write(&p, text).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            Side {
                status: root.path().join("status"),
                conf: root.path().join("logrotate.conf"),
                root,
            }
        };
        let (ours, theirs) = (make(), make());
        // ostler: the entry in ostler.toml, its defaults being logrotate.conf's.
        let mut toml =
            "[service]\nname = \"side-by-side\"\nstate_dir = \"state\"\n\n[[logs]]\n".to_string();
        toml += &format!("path = \"{pattern}\"\n");
        for (k, v) in keys {
            toml += &match v {
                V::On => format!("{k} = true\n"),
                V::Off => format!("{k} = false\n"),
                V::N(n) => format!("{k} = {n}\n"),
                V::S(s) => format!("{k} = \"{s}\"\n"),
            };
        }
        let config_path = ours.root.path().join("ostler.toml");
        std::fs::write(&config_path, &toml).unwrap();
        // logrotate: Debian's /etc/logrotate.conf defaults (ostler's), then the entry.
        let mut conf = "weekly\nrotate 4\ncreate\n\n".to_string();
        conf += &format!("{}/{pattern} {{\n", theirs.root.path().display());
        for (k, v) in keys {
            let line = match (k, v) {
                (&"frequency", V::S(f)) => f.to_string(),
                (&"create", V::S(mode)) => format!("create {mode}"),
                (&"create", V::Off) => "nocreate".into(),
                (&"postrotate", V::S(cmd)) => format!("postrotate\n        {cmd}\n    endscript"),
                (&"compress_method", V::S("zstd")) => {
                    "compresscmd /usr/bin/zstd\nuncompresscmd /usr/bin/unzstd\ncompressext .zst\ncompressoptions -q"
                        .into()
                }
                (k, V::On) => k.to_string(),
                (k, V::Off) => format!("no{k}"),
                (k, V::N(n)) => format!("{k} {n}"),
                (k, V::S(s)) => format!("{k} {s}"),
            };
            conf += &format!("    {line}\n");
        }
        conf += "}\n";
        std::fs::write(&theirs.conf, conf).unwrap();
        std::fs::set_permissions(&theirs.conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        // The system's clock, as logrotate's (Ostler::new's default).
        let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new());
        Pair {
            ours,
            theirs,
            ostler,
            pattern: pattern.into(),
        }
    }

    /// Appends the same text to `name` on both sides (creating it if missing).
    fn write(&self, name: &str, text: &str) {
        for side in [&self.ours, &self.theirs] {
            use std::io::Write;
            let p = side.root.path().join("logs").join(name);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }
    }

    /// One round on both sides: logrotate (`-f` when forced) and ostler. Returns
    /// ostler's report and whether logrotate exited 0 (with its output).
    fn round(&self, force: bool) -> (RotationReport, bool, String) {
        let mut cmd = Command::new(LOGROTATE);
        if force {
            cmd.arg("-f");
        }
        let out = cmd
            .arg("-v")
            .arg("-s")
            .arg(&self.theirs.status)
            .arg(&self.theirs.conf)
            .output()
            .unwrap_or_else(|e| {
                panic!("{LOGROTATE}: {e} (install logrotate: scripts/install-test-deps.sh)")
            });
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let report = logrotate::rotate(
            &self.ostler,
            &RotateOptions {
                force,
                dry_run: false,
            },
        )
        .unwrap();
        (report, out.status.success(), said)
    }

    /// A forced round whose results must be the same on both sides.
    fn same_after_round(&self, round: usize) {
        let (report, ok, said) = self.round(true);
        assert!(ok, "round {round}: logrotate failed:\n{said}");
        assert_eq!(report.failed(), 0, "round {round}: {report:#?}");
        self.assert_same(round, &said);
    }

    fn assert_same(&self, round: usize, said: &str) {
        let ours = snapshot(&self.ours.root.path().join("logs"));
        let theirs = snapshot(&self.theirs.root.path().join("logs"));
        assert_eq!(
            ours, theirs,
            "round {round} of `{}`: ostler (left) and logrotate (right) differ\nlogrotate said:\n{said}",
            self.pattern
        );
    }

    /// Puts both records of every file's last rotation back by a day.
    fn a_day_passes(&self) {
        self.days_pass(1);
    }

    /// Puts both records of every file's last rotation (logrotate's status file and
    /// ostler's logrotate.json) at `days` before now: logrotate reads the system's
    /// clock, so ostler does too in these tests.
    fn days_pass(&self, days: i64) {
        self.time_passes(jiff::Span::new().days(days));
    }

    /// [`Pair::days_pass`] for any span.
    fn time_passes(&self, span: jiff::Span) {
        let text = std::fs::read_to_string(&self.theirs.status).unwrap();
        let yesterday = jiff::Zoned::now().checked_sub(span).unwrap();
        let date = format!(
            "{}-{}-{}-{}:{}:{}",
            yesterday.year(),
            yesterday.month(),
            yesterday.day(),
            yesterday.hour(),
            yesterday.minute(),
            yesterday.second()
        );
        let mut out = String::new();
        for line in text.lines() {
            match line.rsplit_once(' ') {
                Some((path, _)) if line.starts_with('"') => out += &format!("{path} {date}\n"),
                _ => out += &format!("{line}\n"),
            }
        }
        std::fs::write(&self.theirs.status, out).unwrap();
        // ostler's record the same: each file's last rotation `days` before now.
        let ours = self.ours.root.path().join("state/logrotate.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ours).unwrap()).unwrap();
        let then = yesterday.timestamp().to_string();
        for (_, at) in json["files"].as_object_mut().unwrap() {
            *at = serde_json::Value::String(then.clone());
        }
        std::fs::write(&ours, serde_json::to_vec(&json).unwrap()).unwrap();
    }
}

/// What a directory holds, as the comparison sees it: relative name → (compressed
/// with, decompressed content, mode).
fn snapshot(dir: &Path) -> BTreeMap<String, (&'static str, String, u32)> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let (how, content) = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            ("gzip", s)
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            (
                "zstd",
                String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap(),
            )
        } else {
            ("plain", String::from_utf8(bytes).unwrap())
        };
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o7777;
        let name = entry.strip_prefix(dir).unwrap().display().to_string();
        out.insert(name, (how, content, mode));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn lines(round: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("round {round} line {i}\n"))
        .collect()
}

#[test]
fn rotate_3_compress_delaycompress_notifempty_missingok_over_5_rounds() {
    let pair = Pair::new(
        "logs/access.log",
        &[
            ("frequency", V::S("daily")),
            ("rotate", V::N(3)),
            ("compress", V::On),
            ("delaycompress", V::On),
            ("notifempty", V::On),
            ("missingok", V::On),
        ],
        &[("access.log", "")],
        &[],
    );
    for round in 1..=5 {
        pair.write("access.log", &lines(round, round * 3));
        pair.same_after_round(round);
    }
    let names: Vec<String> = snapshot(&pair.ours.root.path().join("logs"))
        .into_keys()
        .collect();
    assert_eq!(
        names,
        [
            "access.log",
            "access.log.1",
            "access.log.2.gz",
            "access.log.3.gz"
        ]
    );
}

#[test]
fn zstd_compression_matches_logrotate_with_zstd_as_its_compresscmd() {
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(2)),
            ("compress", V::On),
            ("compress_method", V::S("zstd")),
        ],
        &[("app.log", "first\n")],
        &[],
    );
    for round in 1..=4 {
        pair.write("app.log", &lines(round, 5));
        pair.same_after_round(round);
    }
}

#[test]
fn copytruncate_keeps_the_file_and_empties_it() {
    let pair = Pair::new(
        "logs/app.log",
        &[("rotate", V::N(2)), ("copytruncate", V::On)],
        &[("app.log", "")],
        &[],
    );
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let log = pair.ours.root.path().join("logs/app.log");
    let before = inode(&log);
    for round in 1..=4 {
        pair.write("app.log", &lines(round, 4));
        pair.same_after_round(round);
    }
    assert_eq!(
        inode(&log),
        before,
        "copytruncate must keep the writer's file"
    );
}

#[test]
fn dateext_names_rotations_by_date_and_keeps_rotate_of_them() {
    // Earlier days' rotations are made up front (logrotate dates by the system's
    // clock, so one real round per day is all a test gets); today's is the round.
    let old: Vec<(String, String)> = (20..27)
        .map(|d| (format!("app.log-202611{d}"), format!("day {d}\n")))
        .collect();
    let files: Vec<(&str, &str)> = old.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let mut with_log = files.clone();
    with_log.push(("app.log", "today\n"));
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(4)),
            ("dateext", V::On),
            ("compress", V::On),
            ("delaycompress", V::On),
        ],
        &with_log,
        &[],
    );
    pair.same_after_round(1);
    // The same day again: the destination exists; both refuse and change nothing.
    pair.write("app.log", "more today\n");
    let (report, ok, said) = pair.round(true);
    assert!(!ok, "logrotate should have refused:\n{said}");
    assert!(
        matches!(
            &report.files[0].outcome,
            Outcome::Failed {
                error: FileError::DestinationExists { .. },
                ..
            }
        ),
        "{report:#?}"
    );
    pair.assert_same(2, &said);
}

#[test]
fn a_dateformat_sorts_rotations_by_the_date_in_the_name_not_the_name() {
    // By name 01.12 comes before 29.11 and 30.11; by date it is the newest, and kept.
    let files = [
        ("app.log-30.11.2026", "b\n"),
        ("app.log-01.12.2026", "c\n"),
        ("app.log-29.11.2026", "a\n"),
        ("app.log", "now\n"),
    ];
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(2)),
            ("dateext", V::On),
            ("dateformat", V::S("-%d.%m.%Y")),
        ],
        &files,
        &[],
    );
    pair.same_after_round(1);
    let names = snapshot(&pair.ours.root.path().join("logs"));
    assert!(names.contains_key("app.log-01.12.2026"), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn postrotate_runs_per_file_after_the_rename_and_before_compressing() {
    // The hook lists the directory into `hooks`, which is compared like the logs: the
    // new rotation is not compressed yet, and the one beyond `rotate` not yet removed.
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(2)),
            ("compress", V::On),
            (
                "postrotate",
                V::S("cd $(dirname $1) && touch hooks && ls | paste -sd ' ' >> hooks"),
            ),
        ],
        &[("app.log", "")],
        &[],
    );
    for round in 1..=3 {
        pair.write("app.log", &lines(round, 2));
        pair.same_after_round(round);
    }
    let hooks = std::fs::read_to_string(pair.ours.root.path().join("logs/hooks")).unwrap();
    assert_eq!(
        hooks,
        "app.log app.log.1 hooks\napp.log app.log.1 app.log.2.gz hooks\napp.log app.log.1 app.log.2.gz app.log.3.gz hooks\n"
    );
}

#[test]
fn olddir_receives_the_rotations() {
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(2)),
            ("olddir", V::S("old")),
            ("compress", V::On),
        ],
        &[("app.log", "")],
        &["old"],
    );
    for round in 1..=4 {
        pair.write("app.log", &lines(round, 2));
        pair.same_after_round(round);
    }
    let names: Vec<String> = snapshot(&pair.ours.root.path().join("logs"))
        .into_keys()
        .collect();
    assert_eq!(names, ["app.log", "old/app.log.1.gz", "old/app.log.2.gz"]);
}

#[test]
fn an_empty_log_with_notifempty_is_left_alone() {
    let pair = Pair::new(
        "logs/app.log",
        &[
            ("rotate", V::N(2)),
            ("notifempty", V::On),
            ("create", V::S("0640")),
        ],
        &[("app.log", "")],
        &[],
    );
    let (report, ok, said) = pair.round(true);
    assert!(ok, "{said}");
    assert!(
        matches!(
            &report.files[0].outcome,
            Outcome::Skipped {
                why: SkipWhy::Empty
            }
        ),
        "{report:#?}"
    );
    pair.assert_same(1, &said);
    pair.write("app.log", "now something\n");
    pair.same_after_round(2);
    // The new log is empty again (created 0640): not rotated.
    pair.same_after_round(3);
}

#[test]
fn daily_rotates_once_a_day_and_not_on_the_first_sight() {
    let pair = Pair::new(
        "logs/app.log",
        &[("frequency", V::S("daily")), ("rotate", V::N(2))],
        &[("app.log", "first\n")],
        &[],
    );
    for round in 1..=5 {
        if round > 2 {
            pair.a_day_passes();
        }
        pair.write("app.log", &lines(round, 2));
        let (report, ok, said) = pair.round(false);
        assert!(ok, "{said}");
        pair.assert_same(round, &said);
        // Round 1 sees the file first (recorded, not rotated); round 2 is the same day.
        assert_eq!(
            report.rotated(),
            usize::from(round > 2),
            "round {round}: {report:#?}"
        );
    }
}

#[test]
fn size_rotates_when_the_file_reaches_it_and_minsize_and_maxsize_bend_a_frequency() {
    let pair = Pair::new(
        "logs/*.log",
        &[("size", V::S("1k")), ("rotate", V::N(3))],
        &[("a.log", "")],
        &[],
    );
    for (round, bytes) in [(1, 600), (2, 600), (3, 100), (4, 2000)] {
        pair.write("a.log", &"x".repeat(bytes));
        let (report, ok, said) = pair.round(false);
        assert!(ok, "{said}");
        pair.assert_same(round, &said);
        assert_eq!(
            report.rotated(),
            usize::from(round == 2 || round == 4),
            "{report:#?}"
        );
    }
    let pair = Pair::new(
        "logs/d.log",
        &[
            ("frequency", V::S("daily")),
            ("minsize", V::N(100)),
            ("maxsize", V::N(1000)),
            ("rotate", V::N(3)),
        ],
        &[("d.log", "")],
        &[],
    );
    // Round 1 first sight; 2: a day on but below minsize; 3: reaches minsize; 4: same
    // day, above maxsize.
    for (round, bytes, day) in [
        (1, 10, false),
        (2, 10, true),
        (3, 100, false),
        (4, 1200, false),
    ] {
        if day {
            pair.a_day_passes();
        }
        pair.write("d.log", &"y".repeat(bytes));
        let (report, ok, said) = pair.round(false);
        assert!(ok, "{said}");
        pair.assert_same(round, &said);
        assert_eq!(
            report.rotated(),
            usize::from(round >= 3),
            "round {round}: {report:#?}"
        );
    }
}

#[test]
fn maxage_removes_rotations_older_than_its_days() {
    let files = [
        ("app.log", "now\n"),
        ("app.log.1", "1\n"),
        ("app.log.2", "2\n"),
        ("app.log.3", "3\n"),
    ];
    let pair = Pair::new(
        "logs/app.log",
        &[("rotate", V::N(5)), ("maxage", V::N(5))],
        &files,
        &[],
    );
    let ten_days_ago = std::time::SystemTime::now() - Duration::from_secs(10 * 86_400);
    for side in [&pair.ours, &pair.theirs] {
        for old in ["app.log.2", "app.log.3"] {
            let f = std::fs::File::options()
                .write(true)
                .open(side.root.path().join("logs").join(old))
                .unwrap();
            f.set_modified(ten_days_ago).unwrap();
        }
    }
    pair.same_after_round(1);
    let names: Vec<String> = snapshot(&pair.ours.root.path().join("logs"))
        .into_keys()
        .collect();
    assert_eq!(names, ["app.log", "app.log.1", "app.log.2"]);
}

#[test]
fn hourly_weekly_monthly_and_yearly_wait_as_logrotate_does() {
    // What the calendar says, to check that both sides did rotate (or not), not only
    // that they agree: a new month (or year) since `days` ago?
    let now = jiff::Zoned::now();
    let new_month = |days: i64| {
        let then = now.checked_sub(jiff::Span::new().days(days)).unwrap();
        (then.year(), then.month()) != (now.year(), now.month())
    };
    let new_year = |days: i64| {
        let then = now.checked_sub(jiff::Span::new().days(days)).unwrap();
        then.year() != now.year()
    };
    for (frequency, days, rotates) in [
        ("weekly", 7, true),
        ("monthly", 1, new_month(1)),
        ("monthly", 40, true),
        ("yearly", 40, new_year(40)),
        ("yearly", 400, true),
    ] {
        let pair = Pair::new(
            "logs/app.log",
            &[("frequency", V::S(frequency)), ("rotate", V::N(2))],
            &[("app.log", "first\n")],
            &[],
        );
        pair.round(false);
        pair.days_pass(days);
        let (report, ok, said) = pair.round(false);
        assert!(ok, "{said}");
        pair.assert_same(2, &said);
        assert_eq!(
            report.rotated(),
            usize::from(rotates),
            "{frequency} after {days} days: {report:#?}"
        );
    }
    // Whether these rotate depends on today (a Sunday?) and the hour (past midnight?);
    // both must agree.
    for (frequency, back) in [
        ("weekly", jiff::Span::new().days(1)),
        ("hourly", jiff::Span::new().hours(1)),
        ("daily", jiff::Span::new().hours(1)),
        ("hourly", jiff::Span::new().minutes(1)),
    ] {
        let pair = Pair::new(
            "logs/app.log",
            &[("frequency", V::S(frequency)), ("rotate", V::N(2))],
            &[("app.log", "first\n")],
            &[],
        );
        pair.round(false);
        pair.time_passes(back);
        let (_, ok, said) = pair.round(false);
        assert!(ok, "{said}");
        pair.assert_same(2, &said);
    }
}

#[test]
fn a_file_named_twice_is_rotated_by_the_first_entry_and_an_instances_logs_by_log_rotation() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    std::fs::create_dir_all(dir.join("inst")).unwrap();
    std::fs::write(dir.join("inst/access.log"), "a\n").unwrap();
    std::fs::write(dir.join("inst/error.log"), "e\n").unwrap();
    std::fs::write(
        dir.join("ostler.toml"),
        "[service]\nname = \"s\"\n\n[instances.web]\ndir = \"inst\"\nstart = \"true\"\nport = 18999\nlogs = [\"access.log\", \"error.log\"]\n\n[log_rotation]\nrotate = 1\nmissingok = true\n\n[[logs]]\npath = \"inst/access.log\"\nrotate = 3\n\n[[logs]]\npath = \"inst/*.log\"\n",
    )
    .unwrap();
    let config = Config::load(&dir.join("ostler.toml")).unwrap();
    let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new());
    let report = logrotate::rotate(
        &ostler,
        &RotateOptions {
            force: true,
            dry_run: false,
        },
    )
    .unwrap();
    let seen: Vec<(String, String, String)> = report
        .files
        .iter()
        .map(|f| {
            let json = serde_json::to_value(f).unwrap();
            (
                f.path
                    .strip_prefix(dir)
                    .unwrap_or(&f.path)
                    .display()
                    .to_string(),
                json["outcome"].as_str().unwrap().to_string(),
                json["source"]["line"]
                    .as_u64()
                    .map(|l| format!("line {l}"))
                    .unwrap_or_else(|| {
                        format!(
                            "instance {}",
                            json["source"]["instance"].as_str().unwrap_or("?")
                        )
                    }),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        seen,
        [
            s("inst/access.log", "rotated", "line 15"),
            s("inst/access.log", "failed", "line 19"),
            s("inst/error.log", "rotated", "line 19"),
            // The instance's own log (in the state dir) does not exist: missingok.
            s(".ostler/logs/web.log", "skipped", "instance web"),
        ],
        "{report:#?}"
    );
    let Outcome::Failed { error, .. } = &report.files[1].outcome else {
        unreachable!()
    };
    assert!(matches!(error, FileError::Duplicate { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("is named by [[logs]] `inst/access.log` at "),
        "{error}"
    );
}

#[test]
fn the_frequency_is_judged_on_ostlers_clock_not_the_systems() {
    let pair = Pair::new(
        "logs/app.log",
        &[("frequency", V::S("daily")), ("rotate", V::N(5))],
        &[("app.log", "x\n")],
        &[],
    );
    // Noon in the system's zone (the zone rotation judges days in), so that neither
    // step below crosses a midnight by accident of when the test runs.
    let noon = jiff::civil::date(2026, 6, 15)
        .at(12, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::system())
        .unwrap()
        .timestamp();
    let manual = ManualClock::new(noon);
    let ostler = pair.ostler.clone().with_clock(manual.clock());
    let run = || {
        logrotate::rotate(&ostler, &RotateOptions::default())
            .unwrap()
            .rotated()
    };
    assert_eq!(run(), 0, "first sight is recorded, not rotated");
    manual.advance(Duration::from_secs(25 * 3600));
    pair.write("app.log", "y\n");
    assert_eq!(run(), 1, "a day later on ostler's clock");
    manual.advance(Duration::from_secs(60));
    pair.write("app.log", "z\n");
    assert_eq!(run(), 0, "the same day");
}

#[test]
fn a_glob_rotates_each_file_and_rotate_0_removes_the_rotation() {
    let pair = Pair::new(
        "logs/*.log",
        &[("rotate", V::N(0)), ("create", V::Off)],
        &[("a.log", "a\n"), ("b.log", "b\n"), ("c.txt", "c\n")],
        &[],
    );
    pair.same_after_round(1);
    let names: Vec<String> = snapshot(&pair.ours.root.path().join("logs"))
        .into_keys()
        .collect();
    // nocreate: no new a.log or b.log either.
    assert_eq!(names, ["c.txt"]);
}

#[test]
fn a_missing_log_without_missingok_is_an_error_naming_the_entry() {
    let pair = Pair::new("logs/gone.log", &[("rotate", V::N(2))], &[], &[]);
    let (report, ok, said) = pair.round(true);
    assert!(!ok, "logrotate should have failed:\n{said}");
    let Outcome::Failed { error, .. } = &report.files[0].outcome else {
        panic!("{report:#?}")
    };
    let message = error.to_string();
    assert!(message.contains("gone.log does not exist"), "{message}");
    assert!(
        message.contains("[[logs]] `logs/gone.log` at "),
        "{message}"
    );
    assert!(message.contains("ostler.toml:6"), "{message}");
    pair.assert_same(1, &said);
}

#[test]
fn a_dry_run_changes_nothing_and_lists_the_moves() {
    let pair = Pair::new(
        "logs/app.log",
        &[("rotate", V::N(2)), ("compress", V::On)],
        &[("app.log", "x\n"), ("app.log.1.gz", "")],
        &[],
    );
    let dir = pair.ours.root.path().join("logs");
    let before = snapshot_raw(&dir);
    let report = logrotate::rotate(
        &pair.ostler,
        &RotateOptions {
            force: true,
            dry_run: true,
        },
    )
    .unwrap();
    assert_eq!(snapshot_raw(&dir), before);
    assert!(!pair.ours.root.path().join("state/logrotate.json").exists());
    let Outcome::Rotated { steps, .. } = &report.files[0].outcome else {
        panic!("{report:#?}")
    };
    let json = serde_json::to_value(steps).unwrap();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["rename", "rename", "create", "compress"],
        "{json:#}"
    );
    assert!(json[0]["from"].as_str().unwrap().ends_with("app.log.1.gz"));
    assert!(json[0]["to"].as_str().unwrap().ends_with("app.log.2.gz"));
}

fn snapshot_raw(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn a_config_directory_with_glob_characters_in_its_name_is_a_place_not_a_pattern() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("svc [1] *");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.log"), "a\n").unwrap();
    std::fs::write(
        dir.join("ostler.toml"),
        "[service]\nname = \"s\"\n\n[[logs]]\npath = \"*.log\"\nrotate = 1\n",
    )
    .unwrap();
    let config = Config::load(&dir.join("ostler.toml")).unwrap();
    let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new());
    let report = logrotate::rotate(
        &ostler,
        &RotateOptions {
            force: true,
            dry_run: false,
        },
    )
    .unwrap();
    assert_eq!(report.rotated(), 1, "{report:#?}");
    assert_eq!(std::fs::read_to_string(dir.join("a.log.1")).unwrap(), "a\n");
}
