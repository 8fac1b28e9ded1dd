//! The janitor job actions on the real thing: `cleanup` on temp dirs whose entries are
//! aged with real mtimes (files and the symlinks themselves), `sql` on a SQLite file and
//! the test harness's PostgreSQL and MariaDB servers, `watch` on a real state dir.
//! Times are the `now` handed in, never the test's wall clock.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use ostler_core::engine::{Database, DatabaseKind, DbUrl};
use ostler_core::error::ErrorKind;
use ostler_core::exec::Runner;
use ostler_core::jobs::cleanup::{cleanup, CleanupSpec, EntryKind};
use ostler_core::jobs::{sql, watch};
use ostler_core::report::{Interrupt, Silent};
use ostler_testsupport::{MariaDbServer, PgServer};

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

/// The cleanups' "now": a fixed instant, far from the machine's clock.
fn now() -> Timestamp {
    "2026-06-15T12:00:00Z".parse().unwrap()
}

fn at(age: Duration) -> SystemTime {
    SystemTime::from(now()) - age
}

/// Writes `rel` below `root` (`bytes` long), last modified `age` before `now()`.
fn file(root: &Path, rel: &str, bytes: usize, age: Duration) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, vec![b'x'; bytes]).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(at(age))
        .unwrap();
    path
}

/// Sets the mtime of `path` itself (a symlink's own, not its target's).
fn age_itself(path: &Path, age: Duration) {
    let t = at(age).duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let stamp = rustix::fs::Timespec {
        tv_sec: t.as_secs() as i64,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: stamp,
        last_modification: stamp,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn spec<'a>(root: &'a Path, include: &'a [String], exclude: &'a [String]) -> CleanupSpec<'a> {
    CleanupSpec {
        root,
        older_than: DAY,
        include,
        exclude,
    }
}

fn strings(globs: &[&str]) -> Vec<String> {
    globs.iter().map(|g| g.to_string()).collect()
}

/// Every path below `root`, relative, sorted, directories with a trailing `/`.
fn tree(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().is_dir() {
                format!("{rel}/")
            } else {
                rel
            }
        })
        .collect();
    out.sort();
    out
}

fn removed_paths(report: &ostler_core::jobs::cleanup::CleanupReport) -> Vec<String> {
    let mut out: Vec<String> = report
        .removed
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn cleanup_removes_what_is_older_than_the_age_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    file(root, "old.tmp", 100, 2 * DAY);
    file(root, "fresh.tmp", 10, HOUR);
    file(root, "just-under-a-day", 10, DAY - Duration::from_secs(60));
    file(root, "cache/a/old.bin", 7, 3 * DAY);
    file(root, "cache/a/new.bin", 5, HOUR);

    let report = cleanup(&spec(root, &[], &[]), now(), false).unwrap();

    assert_eq!(removed_paths(&report), ["cache/a/old.bin", "old.tmp"]);
    assert_eq!(report.bytes, 107);
    assert!(!report.dry_run);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let old = report
        .removed
        .iter()
        .find(|r| r.path == Path::new("old.tmp"))
        .unwrap();
    assert_eq!(old.kind, EntryKind::File);
    assert_eq!(old.modified, now() - jiff::SignedDuration::from_hours(48));
    assert_eq!(
        tree(root),
        [
            "cache/",
            "cache/a/",
            "cache/a/new.bin",
            "fresh.tmp",
            "just-under-a-day"
        ]
    );
}

#[test]
fn cleanup_removes_directories_it_emptied_but_not_ones_in_use_or_empty_before() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // An old upload's scratch tree, all old: goes whole, directories after contents.
    file(root, "upload-17/part/1.chunk", 3, 5 * DAY);
    file(root, "upload-17/meta", 2, 5 * DAY);
    age_itself(&root.join("upload-17/part"), 5 * DAY);
    age_itself(&root.join("upload-17"), 5 * DAY);
    // A directory the service uses (changed recently) holding only old files: stays.
    file(root, "sessions/s1", 1, 3 * DAY);
    // An empty directory the service made long ago: stays.
    fs::create_dir(root.join("spool")).unwrap();
    age_itself(&root.join("spool"), 30 * DAY);

    let report = cleanup(&spec(root, &[], &[]), now(), false).unwrap();

    let order: Vec<String> = report
        .removed
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    let pos = |p: &str| order.iter().position(|x| x == p).unwrap();
    assert!(pos("upload-17/part/1.chunk") < pos("upload-17/part"));
    assert!(pos("upload-17/part") < pos("upload-17"));
    assert!(pos("upload-17/meta") < pos("upload-17"));
    let kind = |p: &str| report.removed[pos(p)].kind;
    assert_eq!(kind("upload-17"), EntryKind::Directory);
    assert_eq!(tree(root), ["sessions/", "spool/"]);
}

#[test]
fn cleanup_never_follows_a_symlink_out_of_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tmp");
    let outside = dir.path().join("precious");
    let kept = file(&outside, "thesis.pdf", 50, 400 * DAY);
    file(&outside, "data/archive.tar", 50, 400 * DAY);

    fs::create_dir(&root).unwrap();
    // An old link to a directory outside: the link goes, nothing behind it.
    symlink(&outside, root.join("old-link-to-dir")).unwrap();
    age_itself(&root.join("old-link-to-dir"), 3 * DAY);
    // A fresh link to a directory outside whose files are old: not descended into.
    symlink(&outside, root.join("fresh-link-to-dir")).unwrap();
    age_itself(&root.join("fresh-link-to-dir"), HOUR);
    // A fresh link to an old file: the link's own age counts, so it stays.
    symlink(&kept, root.join("fresh-link-to-file")).unwrap();
    age_itself(&root.join("fresh-link-to-file"), HOUR);
    // An old dangling link goes.
    symlink(dir.path().join("nowhere"), root.join("dangling")).unwrap();
    age_itself(&root.join("dangling"), 3 * DAY);

    let report = cleanup(&spec(&root, &[], &[]), now(), false).unwrap();

    assert_eq!(removed_paths(&report), ["dangling", "old-link-to-dir"]);
    assert!(report.removed.iter().all(|r| r.kind == EntryKind::Symlink));
    assert_eq!(tree(&root), ["fresh-link-to-dir", "fresh-link-to-file"]);
    assert_eq!(tree(&outside), ["data/", "data/archive.tar", "thesis.pdf"]);
}

#[test]
fn cleanup_of_a_symlinked_root_cleans_the_directory_it_points_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("var-tmp-indico");
    file(&real, "old", 1, 2 * DAY);
    file(&real, "new", 1, HOUR);
    let link = dir.path().join("opt-indico-tmp");
    symlink(&real, &link).unwrap();

    let report = cleanup(&spec(&link, &[], &[]), now(), false).unwrap();

    assert_eq!(removed_paths(&report), ["old"]);
    assert_eq!(report.root, fs::canonicalize(&real).unwrap());
    assert_eq!(tree(&real), ["new"]);
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn cleanup_include_and_exclude_globs_are_relative_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    file(root, "a.tmp", 1, 2 * DAY);
    file(root, "deep/er/b.tmp", 1, 2 * DAY);
    file(root, "deep/er/b.log", 1, 2 * DAY);
    file(root, "keep/c.tmp", 1, 2 * DAY);
    file(root, "sessions/inner/d.tmp", 1, 2 * DAY);
    file(root, "cache/e.dat", 1, 2 * DAY);

    let include = strings(&["**/*.tmp", "cache/**"]);
    // `keep/**` spares what is below keep/; `sessions` spares the whole subtree.
    let exclude = strings(&["keep/**", "sessions"]);
    let report = cleanup(&spec(root, &include, &exclude), now(), false).unwrap();

    assert_eq!(
        removed_paths(&report),
        ["a.tmp", "cache/e.dat", "deep/er/b.tmp"]
    );
    assert_eq!(
        tree(root),
        [
            "cache/",
            "deep/",
            "deep/er/",
            "deep/er/b.log",
            "keep/",
            "keep/c.tmp",
            "sessions/",
            "sessions/inner/",
            "sessions/inner/d.tmp"
        ]
    );

    // `*` stays within one directory.
    let report = cleanup(&spec(root, &strings(&["*.log"]), &[]), now(), true).unwrap();
    assert!(report.removed.is_empty(), "{:?}", report.removed);
}

#[test]
fn cleanup_dry_run_lists_what_would_go_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    file(root, "old/1", 4, 2 * DAY);
    file(root, "old/2", 6, 2 * DAY);
    age_itself(&root.join("old"), 2 * DAY);
    file(root, "new", 1, HOUR);
    let before = tree(root);

    let dry = cleanup(&spec(root, &[], &[]), now(), true).unwrap();

    assert!(dry.dry_run);
    assert_eq!(removed_paths(&dry), ["old", "old/1", "old/2"]);
    assert_eq!(dry.bytes, 10);
    assert_eq!(tree(root), before);

    // And the real run removes exactly what the dry run listed.
    let real = cleanup(&spec(root, &[], &[]), now(), false).unwrap();
    assert_eq!(real.removed, dry.removed);
    assert_eq!(tree(root), ["new"]);
}

#[test]
fn cleanup_refuses_a_missing_root_a_file_root_and_a_bad_glob_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let e = cleanup(&spec(&missing, &[], &[]), now(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::User);
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
    assert!(e.to_string().contains("does not exist"), "{e}");

    let plain = file(dir.path(), "plain", 1, 2 * DAY);
    let e = cleanup(&spec(&plain, &[], &[]), now(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::User);
    assert!(e.to_string().contains("is not a directory"), "{e}");
    assert!(plain.exists());

    let bad = strings(&["cache/[a-"]);
    let e = cleanup(&spec(dir.path(), &bad, &[]), now(), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::User);
    assert!(e.to_string().contains("include glob `cache/[a-`"), "{e}");
    let e = cleanup(&spec(dir.path(), &[], &bad), now(), false).unwrap_err();
    assert!(e.to_string().contains("exclude glob `cache/[a-`"), "{e}");
    assert!(plain.exists());
}

/// Makes `path` immutable (`chattr +i`: not even root may unlink it) until dropped;
/// `None` where the filesystem or the user cannot.
struct Immutable(fs::File);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let file = fs::File::open(path).unwrap();
        let flags = rustix::fs::ioctl_getflags(&file).ok()?;
        rustix::fs::ioctl_setflags(&file, flags | rustix::fs::IFlags::IMMUTABLE).ok()?;
        Some(Immutable(file))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if let Ok(flags) = rustix::fs::ioctl_getflags(&self.0) {
            let _ = rustix::fs::ioctl_setflags(&self.0, flags - rustix::fs::IFlags::IMMUTABLE);
        }
    }
}

#[test]
fn cleanup_lists_what_it_could_not_remove_and_goes_on_with_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let stuck = file(root, "a/stuck", 3, 2 * DAY);
    file(root, "a/loose", 4, 2 * DAY);
    file(root, "b/loose", 5, 2 * DAY);
    age_itself(&root.join("a"), 2 * DAY);
    age_itself(&root.join("b"), 2 * DAY);
    let Some(_guard) = Immutable::set(&stuck) else {
        eprintln!("skipped: cannot make a file immutable here (not root, or no chattr +i on this filesystem)");
        return;
    };

    let report = cleanup(&spec(root, &[], &[]), now(), false).unwrap();

    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].0, Path::new("a/stuck"));
    assert!(
        report.problems[0].1.contains("not permitted"),
        "{:?}",
        report.problems
    );
    // Its directory still holds it, so it stays; the rest went.
    assert_eq!(removed_paths(&report), ["a/loose", "b", "b/loose"]);
    assert_eq!(tree(root), ["a/", "a/stuck"]);
}

// ---- sql ----

fn runner() -> Runner {
    Runner::new(std::sync::Arc::new(Silent), Interrupt::new())
}

/// Three locks, two of them expired (before 1000).
const LOCKS: &str = "CREATE TABLE locks (name VARCHAR(40) PRIMARY KEY, holder VARCHAR(40), \
     expires_at INTEGER NOT NULL); \
     INSERT INTO locks VALUES ('a', 'cron', 100), ('b', 'web', 200), ('live', 'web', 5000);";
const REAP: &str = "DELETE FROM locks WHERE expires_at < 1000; SELECT count(*) FROM locks";
/// The second statement breaks the primary key: the first one's delete must not stay.
const REAP_THEN_FAIL: &str =
    "DELETE FROM locks WHERE expires_at < 1000; INSERT INTO locks VALUES ('live', 'x', 1)";

/// What each engine's test checks: the rows left, by name.
fn check_sql_on(db: &Database, names: impl Fn() -> String, duplicate_message: &str) {
    let err = sql::run(db, &runner(), REAP_THEN_FAIL).unwrap_err();
    let text = ostler_core::error::chain(&err).to_string();
    assert!(text.contains(duplicate_message), "{text}");
    assert_eq!(names(), "a b live", "a failed statement changed nothing");

    // The SELECT's row is not a changed row.
    let outcome = sql::run(db, &runner(), REAP).unwrap();
    assert_eq!(outcome.rows_affected, 2);
    assert_eq!(names(), "live");

    let outcome = sql::run(db, &runner(), REAP).unwrap();
    assert_eq!(outcome.rows_affected, 0);
}

fn words(out: &str) -> String {
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn sql_on_sqlite_counts_the_rows_deleted_and_rolls_back_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(LOCKS)
        .unwrap();
    let db = Database::Sqlite { path: path.clone() };
    let names = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM locks ORDER BY name")
            .unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.join(" ")
    };
    check_sql_on(&db, names, "UNIQUE constraint failed");

    let err = sql::run(&db, &runner(), "DELETE FROM nosuch").unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("no such table: nosuch"), "{err}");

    // Once the operation is interrupted (the daemon shutting down), nothing runs.
    let interrupt = Interrupt::new();
    interrupt.set();
    let interrupted = Runner::new(std::sync::Arc::new(Silent), interrupt);
    let e = sql::run(&db, &interrupted, "DELETE FROM locks").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted);
    assert_eq!(names(), "live");

    // A missing file is an error, never a new empty database.
    let gone = Database::Sqlite {
        path: dir.path().join("gone.sqlite"),
    };
    assert!(sql::run(&gone, &runner(), REAP).is_err());
    assert!(!dir.path().join("gone.sqlite").exists());
}

#[test]
fn sql_on_postgres_counts_the_rows_deleted_and_rolls_back_a_failure() {
    let pg = PgServer::shared();
    let name = pg.unique_database("janitor").unwrap();
    pg.sql(&name, LOCKS).unwrap();
    // The service's sessions read times in its zone: so does the maintenance statement.
    pg.sql(
        "postgres",
        &format!("ALTER DATABASE \"{name}\" SET TimeZone = 'Europe/Paris'"),
    )
    .unwrap();
    let db = Database::Postgres {
        url: DbUrl::parse(&pg.url(&name), DatabaseKind::Postgres).unwrap(),
        password: Some(pg.password().to_string()),
    };
    let names = || {
        words(
            &pg.sql(&name, "SELECT name FROM locks ORDER BY name")
                .unwrap(),
        )
    };
    check_sql_on(&db, names, "duplicate key value violates unique constraint");

    let err = sql::run(&db, &runner(), "DELETE FROM nosuch").unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("PostgreSQL database {name}")),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("relation \"nosuch\" does not exist"),
        "{err}"
    );

    let outcome = sql::run(
        &db,
        &runner(),
        "UPDATE locks SET holder = current_setting('TimeZone')",
    )
    .unwrap();
    assert_eq!(outcome.rows_affected, 1);
    assert_eq!(
        words(&pg.sql(&name, "SELECT holder FROM locks").unwrap()),
        "Europe/Paris"
    );
}

#[test]
fn sql_on_mariadb_counts_the_rows_deleted_and_rolls_back_a_failure() {
    let maria = MariaDbServer::shared();
    let name = maria.unique_database("janitor").unwrap();
    maria.sql(&name, LOCKS).unwrap();
    let db = Database::Mysql {
        url: DbUrl::parse(&maria.url(&name), DatabaseKind::Mysql).unwrap(),
        password: Some(maria.password().to_string()),
    };
    let names = || {
        words(
            &maria
                .sql(&name, "SELECT name FROM locks ORDER BY name")
                .unwrap(),
        )
    };
    check_sql_on(&db, names, "Duplicate entry 'live'");

    let err = sql::run(&db, &runner(), "DELETE FROM nosuch").unwrap_err();
    assert!(
        err.to_string().contains(&format!("MySQL database {name}")),
        "{err}"
    );
    assert!(err.to_string().contains("nosuch' doesn't exist"), "{err}");

    // The session is the server's (its time zone), not the snapshot reader's UTC.
    let outcome = sql::run(
        &db,
        &runner(),
        "UPDATE locks SET holder = @@SESSION.time_zone",
    )
    .unwrap();
    assert_eq!(outcome.rows_affected, 1);
    assert_eq!(
        words(&maria.sql(&name, "SELECT holder FROM locks").unwrap()),
        words(&maria.sql("", "SELECT @@GLOBAL.time_zone").unwrap())
    );
}

#[test]
fn sql_refuses_an_empty_statement() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite {
        path: dir.path().join("app.sqlite"),
    };
    let e = sql::run(&db, &runner(), " ; \n").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::User);
}

// ---- watch ----

#[test]
fn watch_first_output_is_no_change_then_unchanged_then_changed_with_a_diff() {
    let state = tempfile::tempdir().unwrap();
    let md0 = "md0 : active raid1 sdb1[1] sda1[0]\n      [2/2] [UU]\n";
    let md0_degraded = "md0 : active raid1 sdb1[1] sda1[0](F)\n      [2/1] [_U]\n";

    let first = watch::observe(state.path(), "raid", md0).unwrap();
    assert!(first.first);
    assert!(!first.changed);
    assert_eq!(first.previous, None);
    assert_eq!(first.diff, None);

    let same = watch::observe(state.path(), "raid", md0).unwrap();
    assert!(!same.first && !same.changed);
    assert_eq!(same.previous.as_deref(), Some(md0));
    assert_eq!(same.diff, None);

    let changed = watch::observe(state.path(), "raid", md0_degraded).unwrap();
    assert!(!changed.first && changed.changed);
    assert_eq!(changed.previous.as_deref(), Some(md0));
    let diff = changed.diff.unwrap();
    assert!(diff.contains("-      [2/2] [UU]\n"), "{diff}");
    assert!(diff.contains("+      [2/1] [_U]\n"), "{diff}");
    assert!(diff.contains("--- previous"), "{diff}");

    let path = state.path().join("jobs/raid/watched");
    assert_eq!(fs::read_to_string(&path).unwrap(), md0_degraded);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Nothing but the output is left in the job's directory (no temp files).
    assert_eq!(tree(&state.path().join("jobs/raid")), ["watched"]);
}

#[test]
fn watch_compares_with_the_last_output_kept_across_a_restart_and_per_job() {
    let state = tempfile::tempdir().unwrap();
    watch::observe(state.path(), "queue", "pending: 3\n").unwrap();
    watch::observe(state.path(), "other.job_2", "x\n").unwrap();

    // A new daemon (nothing in memory) reads what the last run kept.
    let after_restart = watch::observe(state.path(), "queue", "pending: 4\n").unwrap();
    assert!(after_restart.changed);
    assert_eq!(after_restart.previous.as_deref(), Some("pending: 3\n"));

    let other = watch::observe(state.path(), "other.job_2", "x\n").unwrap();
    assert!(!other.changed && !other.first);
}

#[test]
fn watch_refuses_job_names_that_would_leave_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    for bad in ["../escape", "a/b", "..", ".hidden", "", "/abs"] {
        let e = watch::observe(&state, bad, "out\n").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::User, "{bad:?}");
    }
    assert_eq!(tree(dir.path()), ["state/"]);
}
