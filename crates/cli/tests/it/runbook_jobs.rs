//! The runbooks' own jobs, exactly as `examples/ostler.toml` writes them, run through
//! `ostler jobs run NAME` on a real SQLite guestbook with a real repository: Chandler's
//! hourly backup and off-host copy, the nightly restore test of the newest backup,
//! Indico's prune, cache/tmp cleanup and log rotation, CRDS's expired-lock SQL and
//! Chandler's RAID watch. What a user would notice is asserted: the backups listed, the copy's
//! contents, the files and rows left, the run's recorded state (`ostler jobs history`).
//! And a backup job that finds its instance locked by another operation says so: it is
//! skipped (`overlap = "skip"`) or waits (`overlap = "queue"`).

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::databases::{native_sql, Engine};
use crate::support::*;

/// The `[[logs]]` and `[[jobs]]` of `examples/ostler.toml` (they come last in it), with
/// the RAID monitor's MegaCli command pointed at a file the test writes.
fn example_logs_and_jobs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ostler.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("\n[[logs]]").expect("the example has [[logs]]");
    assert!(
        text[..start].find("\n[[jobs]]").is_none(),
        "the example's [[jobs]] come after its [[logs]]"
    );
    let jobs = &text[start..];
    let line = jobs
        .lines()
        .find(|l| l.starts_with("command = \"/opt/MegaCli"))
        .expect("the example's raid-monitor runs MegaCli");
    jobs.replace(line, "command = \"cat raid-status.txt\"")
}

/// A service with gb-1 (production, SQLite), a repository, an off-host copy in a
/// directory, retention keeping the newest two, the example's jobs and `extra_jobs`;
/// with gb-1's port.
fn runbook_svc(extra_jobs: &str) -> (Svc, u16) {
    let port = free_port();
    let text = format!(
        "{}[repository]\npath = \"repo\"\n\n[[repository.copies]]\nname = \"offsite\"\nkind = \"dir\"\npath = \"offsite\"\n\n[retention]\nkeep_last = 2\n\n[roles]\nproduction = \"gb-1\"\n{}{}{}",
        service_header(""),
        guestbook_instance("gb-1", port, ""),
        example_logs_and_jobs(),
        extra_jobs
    );
    let svc = Svc::new(&text);
    svc.ok(&["build", "gb-1"]);
    (svc, port)
}

/// Runs job `name` now (no daemon: here) and returns the run as recorded, whatever its
/// end; the exit status is 0 exactly when it finished.
fn run_job(svc: &Svc, name: &str) -> Value {
    let out = svc.run(&["--json", "jobs", "run", name]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "jobs run {name}: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.success(),
        run["state"] == "finished",
        "jobs run {name}'s exit status says how it ended: {run:#}"
    );
    run
}

/// Runs job `name` and asserts it finished; returns the run.
fn run_finished(svc: &Svc, name: &str) -> Value {
    let run = run_job(svc, name);
    assert_eq!(run["state"], "finished", "job {name}: {run:#}");
    run
}

/// `ostler jobs history NAME --json`: its runs, newest first.
fn history(svc: &Svc, name: &str) -> Vec<Value> {
    let out = svc.ok(&["--json", "jobs", "history", name]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The ids of the good backups of `ostler backups --json`, oldest first.
fn good_backups(svc: &Svc) -> Vec<String> {
    let list: Value = serde_json::from_str(&svc.ok(&["--json", "backups"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "good")
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn post_entry(port: u16, author: &str) {
    let (code, body) = http_post(
        port,
        "/entries",
        &format!(r#"{{"author":"{author}","message":"from {author}","tags":["runbook"]}}"#),
    );
    assert_eq!(code, 201, "{body}");
}

/// Writes `path` (below the service dir) with its modification time `age` ago.
fn file_aged(svc: &Svc, path: &str, age: Duration) {
    let path = svc.path().join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, path.display().to_string()).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[test]
fn runbook_backup_verify_prune_and_copy_jobs_keep_the_newest_backups_tested_off_host() {
    let (svc, port) = runbook_svc("");
    svc.ok(&["start", "gb-1"]);
    // Chandler's hourly backup, three hours of it, the service writing in between.
    for hour in 0..3 {
        post_entry(port, &format!("hour{hour}"));
        let run = run_finished(&svc, "hourly-backup");
        assert_eq!(run["exit_status"], 0, "{run:#}");
    }
    let taken = good_backups(&svc);
    assert_eq!(taken.len(), 3, "three hourly backups listed: {taken:?}");
    // Each one journaled on gb-1 as the CLI's `ostler backup` is (under its lock), and
    // each run as a `job` entry of its own, filed under the instance behind the role.
    let count = |args: &[&str], op: &str| {
        let journal: Value = serde_json::from_str(&svc.ok(args)).unwrap();
        journal
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == op && e["status"] == "ok")
            .count()
    };
    let on_gb1 = ["--json", "journal", "--instance", "gb-1"];
    assert_eq!(count(&on_gb1, "backup"), 3);
    assert_eq!(count(&on_gb1, "job"), 3);

    // The nightly restore test takes the newest of them and finds it whole.
    let run = run_finished(&svc, "nightly-restore-test");
    let output = run["output"].as_str().unwrap();
    assert!(
        output.contains(&format!("restore test of {}: ok", taken[2])),
        "the newest backup was restore-tested: {output}"
    );
    assert!(
        output.contains("entries") && !output.contains("HASH DIFFERS"),
        "{output}"
    );

    // Prune keeps the newest two ([retention] keep_last = 2): the oldest is gone.
    run_finished(&svc, "prune");
    assert_eq!(good_backups(&svc), taken[1..].to_vec());

    // The copy off-host holds every backup the repository has, as a repository.
    run_finished(&svc, "copy-offsite");
    for id in &taken[1..] {
        assert!(
            svc.path()
                .join("offsite/files/backups")
                .join(format!("{id}.json"))
                .exists(),
            "backup {id} is in the copy"
        );
    }
    let listing = svc.ok(&["backups", "--where", "offsite"]);
    for id in &taken[1..] {
        let line = listing.lines().find(|l| l.starts_with(id.as_str()));
        assert!(
            line.is_some_and(|l| l.contains(" yes")),
            "backups --where offsite: {id} is there:\n{listing}"
        );
    }

    // `ostler jobs` counts them as a user reads it.
    let jobs: Value = serde_json::from_str(&svc.ok(&["--json", "jobs"])).unwrap();
    let backup = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "hourly-backup")
        .unwrap();
    assert_eq!(backup["counts"]["finished"], 3, "{backup:#}");
    assert_eq!(backup["instance"], "production");
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn runbook_cleanup_jobs_remove_old_cache_and_tmp_files_and_keep_new_ones_and_locks() {
    let (svc, _) = runbook_svc("");
    for old in [
        "instances/gb-1/cache/thumbs/old.png",
        "instances/gb-1/tmp/upload-1.part",
        "instances/gb-1/tmp/sessions/old-session",
        "instances/gb-1/tmp/upload-2.lock",
    ] {
        file_aged(&svc, old, 3 * DAY);
    }
    for new in [
        "instances/gb-1/cache/thumbs/new.png",
        "instances/gb-1/tmp/upload-3.part",
    ] {
        file_aged(&svc, new, Duration::from_secs(60));
    }
    run_finished(&svc, "indico-cache-cleanup");
    run_finished(&svc, "indico-tmp-cleanup");
    let exists = |p: &str| svc.path().join(p).exists();
    assert!(!exists("instances/gb-1/cache/thumbs/old.png"));
    assert!(exists("instances/gb-1/cache/thumbs/new.png"));
    assert!(!exists("instances/gb-1/tmp/upload-1.part"));
    assert!(!exists("instances/gb-1/tmp/sessions/old-session"));
    assert!(exists("instances/gb-1/tmp/upload-3.part"));
    assert!(
        exists("instances/gb-1/tmp/upload-2.lock"),
        "an old lock file is excluded"
    );
    let run = &history(&svc, "indico-tmp-cleanup")[0];
    assert_eq!(run["state"], "finished");
    assert!(
        run["output"].as_str().unwrap().contains("upload-1.part"),
        "the run's output names what it removed: {run:#}"
    );
}

#[test]
fn runbook_expired_lock_sql_deletes_exactly_the_expired_locks() {
    let (svc, port) = runbook_svc("");
    svc.ok(&["start", "gb-1"]);
    let db = svc.path().join("instances/gb-1/data.db");
    let db = db.to_str().unwrap();
    // CRDS's instrument locks: expired once their start plus duration has passed.
    native_sql(
        Engine::Sqlite,
        db,
        "CREATE TABLE locks (id INTEGER PRIMARY KEY, instrument TEXT, start_time TEXT, duration INTEGER);
         INSERT INTO locks VALUES (1, 'acs', '2000-01-01 00:00:00', 300);
         INSERT INTO locks VALUES (2, 'wfc3', datetime('now', '-2 hours'), 3600);
         INSERT INTO locks VALUES (3, 'cos', datetime('now', '-10 minutes'), 86400);
         INSERT INTO locks VALUES (4, 'stis', datetime('now'), 600);",
    );
    let run = run_finished(&svc, "crds-clear-expired-locks");
    assert!(
        run["output"]
            .as_str()
            .unwrap()
            .contains("2 rows affected on gb-1"),
        "{run:#}"
    );
    let left = native_sql(
        Engine::Sqlite,
        db,
        "SELECT id, instrument FROM locks ORDER BY id;",
    );
    assert_eq!(left, "3|cos\n4|stis\n");
    // The service kept serving its own tables through it.
    post_entry(port, "after-sql");
    // Done under the instance's lock and journaled like the CLI's operations.
    let journal: Value =
        serde_json::from_str(&svc.ok(&["--json", "journal", "--instance", "gb-1"])).unwrap();
    assert!(
        journal
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["operation"] == "sql" && e["status"] == "ok"),
        "{journal:#}"
    );
    // Run again, nothing more is expired.
    let run = run_finished(&svc, "crds-clear-expired-locks");
    assert!(
        run["output"].as_str().unwrap().contains("0 rows affected"),
        "{run:#}"
    );
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn runbook_raid_watch_acts_on_the_second_run_whose_output_changed() {
    // Chandler's diffmon mailed root; here the example's job (no on_change: the change
    // is journaled as watch-changed for the alerter) and one that runs a command.
    let (svc, _) = runbook_svc(
        r#"
[[jobs]]
name = "raid-monitor-mail"
schedule = "*/30 * * * *"
action = "watch"
command = "cat raid-status.txt"
on_change = "printf '%s' \"$OSTLER_WATCH_DIFF\" > raid-changed.txt"
"#,
    );
    let status = svc.path().join("raid-status.txt");
    std::fs::write(
        &status,
        "Virtual Drives    : 1\n  Degraded        : 0\n  Offline         : 0\n",
    )
    .unwrap();
    let changed = svc.path().join("raid-changed.txt");
    let watch_changed = |svc: &Svc| -> Vec<String> {
        let journal: Value = serde_json::from_str(&svc.ok(&["--json", "journal"])).unwrap();
        journal
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == "watch-changed")
            .map(|e| e["detail"].as_str().unwrap_or("").to_string())
            .collect()
    };
    for job in ["raid-monitor", "raid-monitor-mail"] {
        let run = run_finished(&svc, job);
        assert!(
            run["output"]
                .as_str()
                .unwrap()
                .contains("first output kept"),
            "{run:#}"
        );
    }
    // The same output again: nothing to say.
    for job in ["raid-monitor", "raid-monitor-mail"] {
        let run = run_finished(&svc, job);
        assert!(
            run["output"].as_str().unwrap().contains("output unchanged"),
            "{run:#}"
        );
    }
    assert!(!changed.exists());
    assert!(watch_changed(&svc).is_empty());

    // A drive degrades.
    std::fs::write(
        &status,
        "Virtual Drives    : 1\n  Degraded        : 1\n  Offline         : 0\n",
    )
    .unwrap();
    run_finished(&svc, "raid-monitor-mail");
    let diff = std::fs::read_to_string(&changed).unwrap();
    assert!(
        diff.contains("-  Degraded        : 0") && diff.contains("+  Degraded        : 1"),
        "on_change got the diff: {diff}"
    );
    assert!(
        watch_changed(&svc).is_empty(),
        "with on_change the change is not journaled"
    );
    run_finished(&svc, "raid-monitor");
    let events = watch_changed(&svc);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains("raid-monitor") && events[0].contains("+  Degraded        : 1"),
        "{events:?}"
    );
    assert_eq!(history(&svc, "raid-monitor").len(), 3);
}

#[test]
fn runbook_backup_finding_its_instance_locked_is_skipped_or_waits_and_says_so() {
    let (svc, _) = runbook_svc(
        r#"
[[jobs]]
name = "backup-or-skip"
schedule = "0 * * * *"
action = "backup"
instance = "gb-1"
overlap = "skip"
"#,
    );
    // Another operation holds gb-1's lock: a live process (this test) for a restore.
    svc.ok(&["status"]);
    let state = svc.path().join(".ostler/state.db");
    native_sql(
        Engine::Sqlite,
        state.to_str().unwrap(),
        &format!(
            "INSERT INTO locks (instance, holder_pid, holder, purpose, acquired_at, expires_at)
             VALUES ('gb-1', {}, 'operator@host', 'restore', '2026-01-01T00:00:00Z', '2999-01-01T00:00:00Z');",
            std::process::id()
        ),
    );

    let run = run_job(&svc, "backup-or-skip");
    assert_eq!(run["state"], "skipped", "{run:#}");
    let detail = run["detail"].as_str().unwrap();
    assert!(
        detail.contains("instance gb-1 is locked") && detail.contains("skipped"),
        "{detail}"
    );
    assert!(
        run["output"].as_str().unwrap().contains("restore"),
        "the run's output names the lock's holder and purpose: {run:#}"
    );

    // The example's hourly backup has overlap = "queue": it waits to be tried again.
    let run = run_job(&svc, "hourly-backup");
    assert_eq!(run["state"], "waiting", "{run:#}");
    let detail = run["detail"].as_str().unwrap();
    assert!(
        detail.contains("instance gb-1 is locked") && detail.contains("waiting"),
        "{detail}"
    );
    assert!(run["not_before"].is_string(), "{run:#}");

    let recorded = history(&svc, "backup-or-skip");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["state"], "skipped");
    let recorded = history(&svc, "hourly-backup");
    assert_eq!(recorded[0]["state"], "waiting");
    assert!(good_backups(&svc).is_empty(), "no backup was taken");
    // So the nightly restore test of a new repository has nothing to test, and says so.
    svc.ok(&["init"]);
    let run = run_job(&svc, "nightly-restore-test");
    assert_eq!(run["state"], "failed", "{run:#}");
    assert!(
        run["output"]
            .as_str()
            .unwrap()
            .contains("the repository has no good backup that holds a database"),
        "{run:#}"
    );
    let jobs: Value = serde_json::from_str(&svc.ok(&["--json", "jobs"])).unwrap();
    let counts = |name: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .unwrap()["counts"]
            .clone()
    };
    assert_eq!(counts("backup-or-skip")["skipped"], 1);
    assert_eq!(counts("hourly-backup")["waiting"], 1);
}

#[test]
fn runbook_log_rotation_job_rotates_the_examples_logs_into_their_backups_folder_when_due() {
    let (svc, _) = runbook_svc("");
    // The example's [[logs]]: instances/gb-1/logs/*.log, daily, into logs/backups.
    std::fs::create_dir_all(svc.path().join("instances/gb-1/logs/backups")).unwrap();
    let log = svc.path().join("instances/gb-1/logs/indico.log");
    std::fs::write(&log, "GET /event/1 200\n").unwrap();

    // First seen: recorded, not rotated (logrotate's first sight of a daily log).
    let run = run_finished(&svc, "rotate-logs");
    assert!(
        run["output"].as_str().unwrap().contains("not due"),
        "{run:#}"
    );
    assert!(!svc
        .path()
        .join("instances/gb-1/logs/backups/indico.log.1.gz")
        .exists());

    // A day and more later (the recorded rotation moved back, as a user may edit it).
    let status = svc.path().join(".ostler/logrotate.json");
    let mut stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
    for (_, when) in stored["files"].as_object_mut().unwrap() {
        *when = Value::from("2026-01-01T00:00:00Z");
    }
    std::fs::write(&status, stored.to_string()).unwrap();
    run_finished(&svc, "rotate-logs");
    assert!(
        svc.path()
            .join("instances/gb-1/logs/backups/indico.log.1.gz")
            .exists(),
        "rotated and compressed into backups/"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "copied and truncated in place"
    );
}
