//! What long operations say while they run, and what every external command leaves
//! in the journal. Under systemd or cron stderr is a pipe, not a terminal: backups and
//! restores print a line per table, counted in tables (never "3 B/12 B"), and store
//! sizes in bytes; `--json` prints no progress at all. The instance's start command
//! and pg_dump go through the same runner as every other command: echoed with `-v`,
//! journaled with exit status and duration (the start command with its pid).

use crate::databases::{Engine, EngineSvc, TABLES};
use crate::support::*;

fn put_upload(port: u16, name: &str, body: &[u8]) {
    let r = ureq::put(&format!("http://127.0.0.1:{port}/uploads/{name}")).send_bytes(body);
    assert!(r.is_ok(), "upload {name}: {r:?}");
}

/// Runs ostler with stderr to a pipe (as under systemd); asserts success; its stderr.
fn stderr_of(svc: &Svc, args: &[&str]) -> String {
    let out = svc.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ostler {args:?}: {stderr}");
    stderr
}

/// The lines of `text` that start with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// The journal's entries for `operation`, newest last.
fn journal_of(svc: &Svc, operation: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&["journal", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == operation)
        .cloned()
        .collect()
}

#[test]
fn backup_and_restore_in_a_log_print_a_line_per_table_counted_in_tables_not_bytes() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &["t"]);
    put_upload(es.ports[0], "a.txt", &[7u8; 3000]);
    let n = TABLES.len() + 1; // and the migrations' table

    let backup = stderr_of(svc, &["backup", "gb-1"]);
    let steps = lines(&backup, "backup: ");
    assert_eq!(steps.len(), n, "{backup}");
    for (i, line) in steps.iter().enumerate() {
        assert!(
            line.starts_with(&format!("backup: {}/{n} tables (", i + 1)),
            "{backup}"
        );
    }
    for table in TABLES {
        assert!(
            steps.iter().any(|l| l.ends_with(&format!("({table})"))),
            "{backup}"
        );
    }
    assert!(!backup.contains(" B/"), "a count drawn as bytes: {backup}");
    let store = lines(&backup, "backup store uploads: ");
    assert_eq!(
        store,
        ["backup store uploads: 2.93 KiB (1 files)"],
        "{backup}"
    );

    svc.ok(&["stop", "gb-1"]);
    let restore = stderr_of(svc, &["restore", "gb-1", "--yes-really-production"]);
    let steps = lines(&restore, "restore: ");
    assert_eq!(steps.len(), n, "{restore}");
    for (i, line) in steps.iter().enumerate() {
        assert!(
            line.starts_with(&format!("restore: {}/{n} tables (", i + 1)),
            "{restore}"
        );
    }
    let store = lines(&restore, "restore store uploads: ");
    assert_eq!(
        store,
        ["restore store uploads: 2.93 KiB/2.93 KiB (1 files)"],
        "{restore}"
    );
    // Tables this small load before a line of rows is due: none is printed.
    assert!(!restore.contains(" rows"), "{restore}");
}

#[test]
fn backup_and_restore_with_json_print_no_progress() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &["t"]);
    put_upload(es.ports[0], "a.txt", b"x");
    svc.ok(&["stop", "gb-1"]);
    for args in [
        &["--json", "backup", "gb-1"][..],
        &["--json", "restore", "gb-1", "--yes-really-production"],
    ] {
        let stderr = stderr_of(svc, args);
        assert!(
            !stderr.contains("tables") && !stderr.contains("store uploads"),
            "{args:?} printed progress: {stderr}"
        );
    }
}

#[test]
fn the_start_command_is_echoed_and_journaled_with_its_pid() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    let stderr = stderr_of(svc, &["-v", "start", "gb-1"]);
    let echoed = lines(&stderr, "!!! CMD: sh -c 'exec ./guestbook --port ");
    assert_eq!(echoed.len(), 1, "{stderr}");
    let start = journal_of(svc, "start").pop().unwrap();
    let cmd = &start["commands"][0];
    assert_eq!(
        format!("!!! CMD: {}", cmd["command"].as_str().unwrap()),
        echoed[0]
    );
    // Still running: its end is not known yet, its pid is.
    assert_eq!(
        cmd["pid"].as_i64().map(|p| p as i32),
        svc.pid("gb-1"),
        "{cmd}"
    );
    assert!(
        cmd["exit_status"].is_null() && cmd["duration_ms"].is_null(),
        "{cmd}"
    );
    let text = svc.ok(&["journal"]);
    assert!(text.contains("end not seen"), "{text}");
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn a_start_command_that_exits_during_the_health_wait_is_journaled_with_its_status() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.brief]\ndir = \"brief\"\nstart = \"sleep 0.3; exit 3\"\nport = {port}\n\
         health = \"http://127.0.0.1:{{port}}/health\"\nhealth_timeout = \"20s\"\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("brief")).unwrap();
    let err = svc.fails(&["-v", "start", "brief"]);
    assert!(
        err.contains("!!! CMD: sh -c 'sleep 0.3; exit 3'")
            && err.contains("exited right after start"),
        "{err}"
    );
    let start = journal_of(&svc, "start").pop().unwrap();
    assert_eq!(start["status"], "failed");
    let cmd = &start["commands"][0];
    assert_eq!(cmd["exit_status"], 3, "{cmd}");
    assert!(cmd["duration_ms"].as_i64().unwrap() >= 300, "{cmd}");
    assert!(cmd["pid"].as_i64().is_some(), "{cmd}");
}

#[test]
fn pg_dump_of_a_postgres_backup_is_echoed_and_journaled() {
    let es = EngineSvc::new(Engine::Postgres, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &["t"]);
    let stderr = stderr_of(svc, &["-v", "backup", "gb-1"]);
    svc.ok(&["stop", "gb-1"]);
    let mut echoed = lines(&stderr, "!!! CMD: pg_dump ");
    echoed.sort();
    assert_eq!(echoed.len(), 2, "{stderr}");
    assert!(echoed[0].contains("--section=post-data"), "{stderr}");
    assert!(echoed[1].contains("--section=pre-data"), "{stderr}");
    let password = ostler_testsupport::PgServer::shared().password();
    assert!(!stderr.contains(password), "{stderr}");

    let backup = journal_of(svc, "backup").pop().unwrap();
    let mut dumps: Vec<&serde_json::Value> = backup["commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["command"].as_str().unwrap().starts_with("pg_dump "))
        .collect();
    dumps.sort_by_key(|c| c["command"].as_str().unwrap().to_string());
    assert_eq!(dumps.len(), 2, "{backup}");
    for (cmd, line) in dumps.iter().zip(&echoed) {
        assert_eq!(
            format!("!!! CMD: {}", cmd["command"].as_str().unwrap()),
            *line
        );
        assert_eq!(cmd["exit_status"], 0, "{cmd}");
        assert!(cmd["duration_ms"].as_i64().unwrap() > 0, "{cmd}");
    }
}
