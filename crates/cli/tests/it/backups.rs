//! Backups as a user sees them, on all three engines: taken while the service serves,
//! restored row for row, restore-tested, exported to native files, verified against
//! flipped bytes, incremental at row level, pruned, and never looking good on failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::databases::{Engine, EngineSvc};
use crate::support::*;

pub fn put_upload(port: u16, name: &str, body: &str) {
    let r = ureq::put(&format!("http://127.0.0.1:{port}/uploads/{name}")).send_string(body);
    assert!(r.is_ok(), "upload {name}: {r:?}");
}

pub fn backups(svc: &Svc) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&svc.ok(&["backups", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub fn backup_id(svc: &Svc, args: &[&str]) -> String {
    let mut a = vec!["--json", "backup"];
    a.extend_from_slice(args);
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&a)).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// The whole life of backups on one engine.
fn round_trip(engine: Engine) {
    let es = EngineSvc::new(engine, 2, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    for i in 0..5 {
        es.post_entry(0, &format!("author{i}"), &["alpha", "beta"][..(i % 2) + 1]);
    }
    put_upload(es.ports[0], "a.txt", "original a");

    // A backup taken while the service keeps writing.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let port = es.ports[0];
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (code, _) = http_post(
                    port,
                    "/entries",
                    r#"{"author":"busy","message":"during backup","tags":["busy"]}"#,
                );
                assert_eq!(code, 201);
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let during = backup_id(svc, &["gb-1", "--note", "while serving"]);
    stop.store(true, Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);

    // A quiet backup whose content we record.
    let quiet = backup_id(svc, &["gb-1"]);
    let expected = es.all_rows(0);
    assert!(expected[0].len() >= 6, "{expected:?}");

    // Damage: a tag deleted with its links (AMY), new rows, an orphan file, a changed file.
    let r = ureq::delete(&format!("http://127.0.0.1:{}/tags/alpha", es.ports[0])).call();
    assert!(r.is_ok());
    es.post_entry(0, "later", &["gamma"]);
    put_upload(es.ports[0], "a.txt", "changed a");
    put_upload(es.ports[0], "orphan.txt", "not in the backup");
    assert_ne!(es.all_rows(0), expected);

    // Restore refuses on production without confirmation, and changes nothing.
    let err = svc.fails(&["restore", "gb-1", "--from", &quiet]);
    // Regression: the refusal names the restore and what it does, not another operation.
    assert!(
        err.contains(&format!(
            "refusing to restore backup {quiet} over gb-1: it is the production instance (this replaces its database and stores)"
        )),
        "{err}"
    );
    assert_eq!(svc.instance_status("gb-1")["state"], "running");

    let out = svc.ok(&[
        "restore",
        "gb-1",
        "--from",
        &quiet,
        "--yes-really-production",
    ]);
    assert!(out.contains("orphans removed: orphan.txt"), "{out}");
    assert!(
        out.contains("safety backup of what was there before"),
        "{out}"
    );
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    assert_eq!(
        es.all_rows(0),
        expected,
        "restored rows differ from the captured ones"
    );
    let uploads = svc.path().join("instances/gb-1/uploads");
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "original a"
    );
    assert!(!uploads.join("orphan.txt").exists());
    // The service works on the restored database (sequences / auto-increment intact).
    es.post_entry(0, "after restore", &["alpha"]);
    let (code, body) = http_get(es.ports[0], "/tags/alpha/entries").unwrap();
    assert_eq!(code, 200, "{body}");

    // The backup taken under load restores consistently.
    let out = svc.ok(&["verify", "--restore-test", &during]);
    assert!(
        out.contains(&format!("restore test of {during}: ok")),
        "{out}"
    );
    let out = svc.ok(&["verify", "--all"]);
    assert!(out.contains(": ok"), "{out}");

    // Into another instance, whose database does not even exist yet (regression: the
    // safety backup of a missing server database used to refuse the restore).
    match engine {
        Engine::Postgres => {
            ostler_testsupport::PgServer::shared()
                .sql("postgres", &format!("DROP DATABASE \"{}\";", es.dbs[1]))
                .unwrap();
        }
        Engine::Mysql => {
            ostler_testsupport::MariaDbServer::shared()
                .sql("", &format!("DROP DATABASE `{}`;", es.dbs[1]))
                .unwrap();
        }
        Engine::Sqlite => {}
    }
    svc.ok(&["restore", "gb-1", "--from", &quiet, "--into", "gb-2"]);
    assert_eq!(es.all_rows(1), expected);

    // Export: native files the engine's own tools restore.
    let export = svc.path().join("export");
    svc.ok(&["export", &quiet, export.to_str().unwrap()]);
    let native_rows = native_restore(engine, &export);
    assert_eq!(
        native_rows, expected,
        "the exported files restore to other rows"
    );
    assert_eq!(
        std::fs::read_to_string(export.join("stores/uploads/a.txt")).unwrap(),
        "original a"
    );
    svc.ok(&["stop", "gb-1"]);
}

/// Restores an export with the engine's own client into a fresh database and reads
/// the rows back.
fn native_restore(engine: Engine, dir: &std::path::Path) -> Vec<Vec<String>> {
    let target = native_load(engine, dir);
    crate::databases::TABLES
        .iter()
        .map(|t| {
            let (cols, order) = match *t {
                "entries" => ("id, author, message, created_at, email", "id"),
                "tags" => ("id, name", "id"),
                _ => ("entry_id, tag_id", "entry_id, tag_id"),
            };
            let sql = format!("SELECT {cols} FROM {t} ORDER BY {order};");
            crate::databases::native_sql(engine, &target, &sql)
                .lines()
                .map(|l| l.replace('|', "\t").replace("NULL", ""))
                .filter(|l| !l.is_empty())
                .collect()
        })
        .collect()
}

/// Loads an export with the engine's own tool, as a user without ostler would: the
/// SQLite file as it is, `psql -f database.sql` or `mariadb < database.sql` into a
/// fresh database. Returns where `native_sql` finds it.
pub fn native_load(engine: Engine, dir: &std::path::Path) -> String {
    use ostler_testsupport::{MariaDbServer, PgServer};
    match engine {
        Engine::Sqlite => dir.join("database.sqlite").display().to_string(),
        Engine::Postgres => {
            let pg = PgServer::shared();
            let db = pg.unique_database("native").unwrap();
            let out = std::process::Command::new(pg.bin_dir().join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &pg.port().to_string(),
                    "-U",
                    pg.user(),
                    "-d",
                    &db,
                    "-f",
                ])
                .arg(dir.join("database.sql"))
                .env("PGPASSWORD", pg.password())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "psql -f: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            db
        }
        Engine::Mysql => {
            let my = MariaDbServer::shared();
            let db = my.unique_database("native").unwrap();
            let sql = std::fs::read(dir.join("database.sql")).unwrap();
            let mut child = std::process::Command::new(my.client_path())
                .args([
                    "--protocol=tcp",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &my.port().to_string(),
                    "-u",
                    my.user(),
                    &db,
                ])
                .env("MYSQL_PWD", my.password())
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&sql).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "mariadb < database.sql: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            db
        }
    }
}

#[test]
fn sqlite_backup_restore_export_round_trip() {
    round_trip(Engine::Sqlite);
}

#[test]
fn postgres_backup_restore_export_round_trip() {
    round_trip(Engine::Postgres);
}

#[test]
fn mariadb_backup_restore_export_round_trip() {
    round_trip(Engine::Mysql);
}

/// A SQLite instance with `n` entries made directly in its database.
pub fn big_sqlite(n: usize) -> EngineSvc {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    es.svc.ok(&["start,stop", "gb-1"]); // let guestbook create its schema
    es.sql(
        0,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
             INSERT INTO entries (author, message, created_at) SELECT 'author ' || i, printf('message %d %s', i, hex(randomblob(24))), '2026-01-01T00:00:00Z' FROM n;"
        ),
    );
    es
}

#[test]
fn hourly_backups_cost_what_changed_at_row_level() {
    let es = big_sqlite(50_000);
    let svc = &es.svc;
    backup_id(svc, &["gb-1"]);
    // 1 % of rows changed, scattered: half updates, half new rows.
    es.sql(
        0,
        "UPDATE entries SET message = message || ' edited' WHERE id % 200 = 0;",
    );
    es.sql(0, "INSERT INTO entries (author, message, created_at) SELECT author, message, created_at FROM entries WHERE id % 200 = 1;");
    backup_id(svc, &["gb-1"]);
    let list = backups(svc);
    let (first, second) = (&list[0], &list[1]);
    let (n1, n2) = (
        first["new_bytes"].as_u64().unwrap(),
        second["new_bytes"].as_u64().unwrap(),
    );
    assert!(
        n2 * 10 < n1,
        "the second backup stored {n2} bytes, the first {n1}: not incremental"
    );
    let hash = |b: &serde_json::Value, t: &str| {
        b["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == t)
            .unwrap()["hash"]
            .clone()
    };
    assert_ne!(hash(first, "entries"), hash(second, "entries"));
    assert_eq!(
        hash(first, "tags"),
        hash(second, "tags"),
        "an unchanged table keeps its hash"
    );
    assert_eq!(
        second["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "entries")
            .unwrap()["rows"],
        50_250
    );
    let out = svc.ok(&["verify", "--all"]);
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn a_flipped_byte_is_reported_with_the_backups_and_tables_it_affects() {
    let es = big_sqlite(2_000);
    let svc = &es.svc;
    let a = backup_id(svc, &["gb-1"]);
    let b = backup_id(svc, &["gb-1"]);
    // Find the largest chunk (the entries table's base, shared by both backups).
    let mut chunks: Vec<std::path::PathBuf> = walk(&svc.path().join("repo/chunks"));
    chunks.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = chunks.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(victim, bytes).unwrap();
    let out = svc.run(&["verify", "--all"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let id = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains(&format!("BAD chunk {id}")), "{text}");
    assert!(
        text.contains(&format!("affects backup {a}: table entries")),
        "{text}"
    );
    assert!(
        text.contains(&format!("affects backup {b}: table entries")),
        "{text}"
    );
    // Restoring from it fails loudly rather than restoring wrong data. (The live rows
    // change first: otherwise the safety backup writes the same chunk afresh from them,
    // which heals the backup — see integrity.rs.)
    es.sql(0, "UPDATE entries SET message = message || ' changed';");
    let err = svc.fails(&["restore", "gb-1", "--from", &a, "--yes-really-production"]);
    assert!(err.contains(&id[..16]) || err.contains("hash"), "{err}");
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_failed_backup_leaves_nothing_that_looks_good() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    // No database yet: the backup fails and says why.
    let err = svc.fails(&["backup", "gb-1"]);
    assert!(err.contains("no SQLite database at"), "{err}");
    let list = backups(svc);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "failed");
    assert!(list[0]["error"]
        .as_str()
        .unwrap()
        .contains("no SQLite database"));
    // Restore never picks it.
    let err = svc.fails(&["restore", "gb-1", "--yes-really-production"]);
    assert!(err.contains("has no good backup"), "{err}");
    svc.ok(&["start,stop", "gb-1"]);
    svc.ok(&["backup", "gb-1"]);
    svc.ok(&["verify", "--all"]);
}

#[test]
fn a_backup_killed_mid_way_is_interrupted_and_a_second_one_at_once_refuses() {
    let es = big_sqlite(400_000);
    let svc = &es.svc;
    let mut child = svc.cmd(&["backup", "gb-1"]).spawn().unwrap();
    let state = svc.path().join(".ostler/state.db");
    wait_for(Duration::from_secs(30), "the backup to start", || {
        std::process::Command::new("sqlite3")
            .arg(&state)
            .arg("SELECT count(*) FROM backups WHERE status = 'running'")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
            .unwrap_or(false)
    });
    let out = svc.run(&["backup", "gb-1"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds its lock for `backup`"));
    child.kill().unwrap();
    child.wait().unwrap();
    let list = backups(svc);
    assert_eq!(list[0]["status"], "interrupted", "{list:?}");
    // Nothing reads it as valid; the repository still verifies; the next backup works.
    svc.ok(&["verify", "--all"]);
    svc.ok(&["backup", "gb-1"]);
    assert_eq!(
        backups(svc)
            .iter()
            .filter(|b| b["status"] == "good")
            .count(),
        1
    );
}

#[test]
fn restore_at_a_time_with_a_zone_picks_the_newest_backup_before_it() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "one", &[]);
    backup_id(svc, &["gb-1"]);
    std::thread::sleep(Duration::from_millis(1100));
    es.post_entry(0, "two", &[]);
    backup_id(svc, &["gb-1"]);
    let list = backups(svc);
    let t1: jiff::Timestamp = list[0]["started_at"].as_str().unwrap().parse().unwrap();
    // Between the two backups, written in New York time.
    // Printed to the second: t1 + 1 s truncated is at or after t1 and before the second
    // backup (taken 1.1 s or more later). (Regression: + 0.5 s truncated could fall before t1.)
    let between = (t1 + jiff::SignedDuration::from_millis(1000))
        .to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    let text = between
        .strftime("%Y-%m-%d %H:%M:%S America/New_York")
        .to_string();
    let out = svc.ok(&["restore", "gb-1", "--at", &text, "--yes-really-production"]);
    assert!(!out.is_empty());
    let entries = es.rows(0, "entries");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let err = svc.fails(&[
        "restore",
        "gb-1",
        "--at",
        "2026-01-01 10:00",
        "--yes-really-production",
    ]);
    assert!(err.contains("has no zone"), "{err}");
    let err = svc.fails(&[
        "restore",
        "gb-1",
        "--at",
        "2000-01-01 10:00 UTC",
        "--yes-really-production",
    ]);
    assert!(err.contains("no good backup at or before"), "{err}");
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn prune_keeps_what_the_rules_say_and_frees_the_rest() {
    let es = EngineSvc::new(
        Engine::Sqlite,
        1,
        "[retention]\nkeep-last = 2\ntimezone = \"Europe/Zurich\"\n",
    );
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    let mut ids = Vec::new();
    for i in 0..4 {
        es.post_entry(0, &format!("a{i}"), &["t"]);
        put_upload(es.ports[0], &format!("f{i}.bin"), &"x".repeat(100_000 + i));
        ids.push(backup_id(svc, &["gb-1"]));
    }
    svc.ok(&["stop", "gb-1"]);
    let dry = svc.ok(&["prune", "--dry-run"]);
    assert!(
        dry.contains(&format!("drop {}", ids[0])) && dry.contains(&format!("keep {}", ids[3])),
        "{dry}"
    );
    assert!(
        dry.contains("newest backup of the instance") && dry.contains("keep-last 2"),
        "{dry}"
    );
    assert_eq!(backups(svc).len(), 4, "a dry run changes nothing");
    let out = svc.ok(&["prune"]);
    assert!(out.contains("dropped 2 backups"), "{out}");
    let left: Vec<String> = backups(svc)
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ids[2..].to_vec());
    svc.ok(&["verify", "--all"]);
    svc.ok(&[
        "restore",
        "gb-1",
        "--from",
        &ids[2],
        "--yes-really-production",
    ]);
    assert_eq!(es.rows(0, "entries").len(), 3);
}

#[test]
fn mirror_copies_production_to_a_test_instance_with_scrub_and_refuses_the_reverse() {
    let es = EngineSvc::new(Engine::Sqlite, 2, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    let (code, _) = http_post(
        es.ports[0],
        "/entries",
        r#"{"author":"ann","message":"hi","email":"ann@example.org","tags":["x"]}"#,
    );
    assert_eq!(code, 201);
    let scrub = svc.path().join("scrub.sql");
    std::fs::write(
        &scrub,
        "UPDATE entries SET email = 'user' || id || '@example.invalid' WHERE email IS NOT NULL;",
    )
    .unwrap();
    let out = svc.ok(&[
        "mirror",
        "gb-1",
        "gb-2",
        "--fresh",
        "--scrub",
        scrub.to_str().unwrap(),
    ]);
    assert!(out.contains("mirrored backup"), "{out}");
    assert_eq!(svc.instance_status("gb-2")["state"], "running");
    let (_, body) = http_get(es.ports[1], "/entries").unwrap();
    assert!(
        body.contains("user1@example.invalid") && !body.contains("ann@example.org"),
        "{body}"
    );
    let err = svc.fails(&["mirror", "gb-2", "production", "--fresh"]);
    assert!(
        err.contains("refusing to mirror a fresh backup of gb-2 onto gb-1"),
        "{err}"
    );
    let (_, body) = http_get(es.ports[0], "/entries").unwrap();
    assert!(body.contains("ann@example.org"));
    svc.ok(&["stop", "gb-1,gb-2"]);
}

#[test]
fn copy_sends_what_is_missing_and_backups_where_shows_what_the_copy_holds() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    let config = svc.path().join("ostler.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[repository]\npath = \"repo\"\n",
        "[repository]\npath = \"repo\"\n\n[[repository.copies]]\nname = \"offsite\"\nkind = \"dir\"\npath = \"offsite\"\n",
    );
    std::fs::write(&config, text).unwrap();
    svc.ok(&["start,stop", "gb-1"]);
    let first = backup_id(svc, &["gb-1"]);
    let out = svc.ok(&["copy"]);
    assert!(
        out.contains("offsite: sent") && !out.contains("sent 0 files"),
        "{out}"
    );
    let second = backup_id(svc, &["gb-1"]);
    let listing = svc.ok(&["backups", "--where", "offsite"]);
    let line = |id: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(line(&first).contains(" yes"), "{listing}");
    assert!(line(&second).contains(" no"), "{listing}");
    svc.ok(&["copy", "offsite"]);
    let again = svc.ok(&["copy", "offsite"]);
    assert!(
        again.contains("sent 0 files"),
        "a second copy sends nothing: {again}"
    );
    // The copy is a repository of its own that verifies.
    assert!(svc
        .path()
        .join("offsite/files/backups")
        .join(format!("{second}.json"))
        .exists());
    let err = svc.fails(&["copy", "nowhere"]);
    assert!(err.contains("no copy named `nowhere`"), "{err}");
}
