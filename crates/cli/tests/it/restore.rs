//! Restores that never make things worse: they work when the database is gone, are all
//! or nothing when the backup is damaged, and a restore killed at any moment is
//! finished or undone by `ostler recover` (or by `ostler serve`, which then brings the
//! instance back), leaving no side database and no `*.ostler-restore*` file behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ostler_testsupport::{MariaDbServer, PgServer};

use crate::databases::{Engine, EngineSvc};
use crate::support::*;

fn put_upload(port: u16, name: &str, body: &[u8]) {
    let r = ureq::put(&format!("http://127.0.0.1:{port}/uploads/{name}")).send_bytes(body);
    assert!(r.is_ok(), "upload {name}: {r:?}");
}

fn backup_id(svc: &Svc, instance: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "backup", instance])).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Every file of a store with its content, for "exactly as before" comparisons.
fn store_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// No restore temporaries anywhere: no `*.ostler-restore*` file or directory in the
/// service, no restore journal, and no side or aside database on the server.
fn assert_no_temporaries(es: &EngineSvc) {
    let left: Vec<PathBuf> = walk(es.svc.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".ostler-restore"))
        .collect();
    assert!(left.is_empty(), "restore temporaries left: {left:?}");
    let journals = es.svc.path().join(".ostler/restores");
    if journals.exists() {
        let j: Vec<_> = std::fs::read_dir(&journals).unwrap().collect();
        assert!(j.is_empty(), "restore journal left: {j:?}");
    }
    let like = |db: &str| format!("{db}__ostler%");
    for db in &es.dbs {
        let found = match es.engine {
            Engine::Sqlite => String::new(),
            Engine::Postgres => PgServer::shared()
                .sql(
                    "postgres",
                    &format!(
                        "SELECT datname FROM pg_database WHERE datname LIKE '{}';",
                        like(db)
                    ),
                )
                .unwrap(),
            Engine::Mysql => MariaDbServer::shared()
                .sql(
                    "",
                    &format!(
                        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{}';",
                        like(db)
                    ),
                )
                .unwrap(),
        };
        assert!(found.trim().is_empty(), "side databases left: {found}");
    }
}

fn drop_database(es: &EngineSvc) {
    match es.engine {
        Engine::Sqlite => {
            std::fs::remove_file(es.svc.path().join("instances/gb-1/data.db")).unwrap();
        }
        Engine::Postgres => {
            PgServer::shared()
                .sql("postgres", &format!("DROP DATABASE \"{}\";", es.dbs[0]))
                .unwrap();
        }
        Engine::Mysql => {
            MariaDbServer::shared()
                .sql("", &format!("DROP DATABASE `{}`;", es.dbs[0]))
                .unwrap();
        }
    }
}

fn restore_works_when_the_database_is_gone(engine: Engine) {
    let es = EngineSvc::new(engine, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &["t"]);
    put_upload(es.ports[0], "a.txt", b"in the backup");
    let id = backup_id(svc, "gb-1");
    let expected = es.all_rows(0);
    put_upload(es.ports[0], "later.txt", b"only live");
    svc.ok(&["stop", "gb-1"]);
    drop_database(&es);

    let out = svc.ok(&["restore", "gb-1", "--yes-really-production"]);
    assert!(
        out.contains("no safety backup of the database: it did not exist")
            && out.contains("the store files were kept in backup"),
        "{out}"
    );
    assert_eq!(es.all_rows(0), expected);
    let uploads = svc.path().join("instances/gb-1/uploads");
    assert_eq!(
        std::fs::read(uploads.join("a.txt")).unwrap(),
        b"in the backup"
    );
    assert!(!uploads.join("later.txt").exists());
    // The store files that were there are in the stores-only safety backup.
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&["backups", "--json"])).unwrap();
    let safety = v.as_array().unwrap().last().unwrap().clone();
    assert_ne!(safety["id"], id.as_str());
    assert_eq!(safety["status"], "good", "{safety}");
    assert_no_temporaries(&es);
    // And the restored database serves.
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "after", &["t"]);
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn restore_works_when_the_sqlite_file_is_gone() {
    restore_works_when_the_database_is_gone(Engine::Sqlite);
}

#[test]
fn restore_works_after_drop_database_on_postgres() {
    restore_works_when_the_database_is_gone(Engine::Postgres);
}

#[test]
fn restore_works_after_drop_database_on_mariadb() {
    restore_works_when_the_database_is_gone(Engine::Mysql);
}

#[test]
fn restore_of_the_latest_passes_over_a_stores_only_safety_backup() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &["t"]);
    put_upload(es.ports[0], "a.txt", b"in the backup");
    let id = backup_id(svc, "gb-1");
    let expected = es.all_rows(0);
    svc.ok(&["stop", "gb-1"]);
    drop_database(&es);
    // This restore keeps the store files in a backup without a database...
    svc.ok(&["restore", "gb-1", "--yes-really-production"]);
    drop_database(&es);
    // ...which the next restore of "the latest" must not pick: it would put back
    // the files and leave no database.
    let out = svc.ok(&["restore", "gb-1", "--yes-really-production"]);
    assert!(out.contains(&id), "restored {id}? {out}");
    assert_eq!(es.all_rows(0), expected);
    assert_no_temporaries(&es);
}

#[test]
fn a_failing_safety_backup_refuses_with_its_reason_and_offers_no_safety_backup() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "kept", &[]);
    backup_id(svc, "gb-1");
    let expected = es.all_rows(0);
    svc.ok(&["stop", "gb-1"]);
    let db = svc.path().join("instances/gb-1/data.db");
    std::fs::write(
        &db,
        b"this is not a SQLite database, and it is all there is",
    )
    .unwrap();

    let err = svc.fails(&["restore", "gb-1", "--yes-really-production"]);
    assert!(
        err.contains("not restoring gb-1: its safety backup failed")
            && err.contains("--no-safety-backup"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"this is not a SQLite database, and it is all there is"
    );
    assert_no_temporaries(&es);
    // --no-safety-backup does not get past the production guard...
    let err = svc.fails(&["restore", "gb-1", "--no-safety-backup"]);
    assert!(
        err.contains("refusing to restore backup ")
            && err.contains(" over gb-1: it is the production instance"),
        "{err}"
    );
    // ...and with the confirmation it restores.
    let out = svc.ok(&[
        "restore",
        "gb-1",
        "--no-safety-backup",
        "--yes-really-production",
    ]);
    assert!(
        out.contains("no safety backup (--no-safety-backup)"),
        "{out}"
    );
    assert_eq!(es.all_rows(0), expected);
    assert_no_temporaries(&es);
}

/// The repository's chunk files newer than `before` (a set of chunk paths).
fn chunks(svc: &Svc) -> Vec<PathBuf> {
    walk(&svc.path().join("repo/chunks"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

fn a_corrupt_store_chunk_leaves_the_instance_exactly_as_before(engine: Engine) {
    let es = EngineSvc::new(engine, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "one", &["t"]);
    put_upload(es.ports[0], "small.txt", b"small");
    backup_id(svc, "gb-1");
    let before: Vec<PathBuf> = chunks(svc);
    // A file of its own chunk: random bytes, so nothing else shares it.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    put_upload(es.ports[0], "big.bin", &big);
    let damaged = backup_id(svc, "gb-1");
    // Life goes on after the backup.
    es.post_entry(0, "two", &["u"]);
    put_upload(es.ports[0], "small.txt", b"changed after the backup");
    let rows = es.all_rows(0);
    let uploads = svc.path().join("instances/gb-1/uploads");
    let files = store_files(&uploads);
    let pid = svc.pid("gb-1").unwrap();

    let mut new: Vec<PathBuf> = chunks(svc)
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    new.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = new.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(victim, bytes).unwrap();

    let err = svc.fails(&[
        "restore",
        "gb-1",
        "--from",
        &damaged,
        "--yes-really-production",
    ]);
    assert!(err.contains("big.bin") || err.contains("chunk"), "{err}");
    assert_eq!(es.all_rows(0), rows, "the database changed");
    assert_eq!(store_files(&uploads), files, "the store changed");
    let st = svc.instance_status("gb-1");
    assert_eq!(st["state"], "running", "{st}");
    assert_ne!(svc.pid("gb-1"), Some(pid), "it was restarted");
    assert_eq!(http_get(es.ports[0], "/health").unwrap().0, 200);
    assert_no_temporaries(&es);
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn a_corrupt_store_chunk_leaves_the_sqlite_instance_exactly_as_before() {
    a_corrupt_store_chunk_leaves_the_instance_exactly_as_before(Engine::Sqlite);
}

#[test]
fn a_corrupt_store_chunk_leaves_the_postgres_instance_exactly_as_before() {
    a_corrupt_store_chunk_leaves_the_instance_exactly_as_before(Engine::Postgres);
}

/// Starts `ostler restore` paused at `point` (an `ostler_core::pause` point) and SIGKILLs it there.
fn kill_restore_at(svc: &Svc, args: &[&str], point: &str) {
    let mut child = svc
        .cmd(args)
        .env("OSTLER_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let marker = format!("test pause at {point}");
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                seen += &line;
                seen.push('\n');
                if line.contains(&marker) {
                    break;
                }
            }
            _ => panic!("the restore ended before {point}:\n{seen}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The state of an instance as tests compare it: its rows and its store files.
type Snapshot = (Vec<Vec<String>>, Vec<(String, Vec<u8>)>);

fn snapshot(es: &EngineSvc) -> Snapshot {
    (
        es.all_rows(0),
        store_files(&es.svc.path().join("instances/gb-1/uploads")),
    )
}

fn killed_restores_are_finished_or_undone_by_recover(engine: Engine, points: &[&str]) {
    let es = EngineSvc::new(engine, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "in the backup", &["t"]);
    put_upload(es.ports[0], "a.txt", b"backup's a");
    let id = backup_id(svc, "gb-1");
    let restored = snapshot(&es);
    for (i, point) in points.iter().enumerate() {
        // Something other than the backup, live.
        es.post_entry(0, &format!("live {i}"), &["u"]);
        put_upload(es.ports[0], "a.txt", format!("live a {i}").as_bytes());
        put_upload(es.ports[0], &format!("orphan{i}.txt"), b"live only");
        let old = snapshot(&es);
        assert_ne!(old, restored);

        kill_restore_at(
            svc,
            &["restore", "gb-1", "--from", &id, "--yes-really-production"],
            point,
        );
        assert_eq!(svc.instance_status("gb-1")["state"], "stopped");
        let out = svc.ok(&["recover"]);
        let now = snapshot(&es);
        if *point == "after-database-side" {
            assert!(out.contains("undone"), "{point}: {out}");
            assert!(now == old, "{point}: not the old state after recover");
        } else {
            assert!(out.contains("finished"), "{point}: {out}");
            assert!(
                now == restored,
                "{point}: not the restored state after recover"
            );
        }
        assert_no_temporaries(&es);
        let st = svc.instance_status("gb-1");
        assert_eq!(st["state"], "running", "{point}: {st}");
        assert!(svc.ok(&["recover"]).contains("nothing to recover"));
    }
    // A half-restored instance is not started; a killed restore is also settled by
    // the next restore, which then runs.
    kill_restore_at(
        svc,
        &["restore", "gb-1", "--from", &id, "--yes-really-production"],
        "mid-swap",
    );
    let err = svc.fails(&["start", "gb-1"]);
    assert!(
        err.contains("a restore of it was interrupted") && err.contains("ostler recover gb-1"),
        "{err}"
    );
    let out = svc.ok(&["restore", "gb-1", "--from", &id, "--yes-really-production"]);
    assert!(out.contains("was interrupted while"), "{out}");
    assert!(snapshot(&es) == restored);
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    assert_no_temporaries(&es);
    svc.ok(&["stop", "gb-1"]);
}

const POINTS: [&str; 4] = [
    "after-database-side",
    "before-swap",
    "mid-swap",
    "after-swap",
];

#[test]
fn a_killed_sqlite_restore_is_finished_or_undone_by_recover() {
    killed_restores_are_finished_or_undone_by_recover(Engine::Sqlite, &POINTS);
}

#[test]
fn a_killed_postgres_restore_is_finished_or_undone_by_recover() {
    killed_restores_are_finished_or_undone_by_recover(
        Engine::Postgres,
        &["after-database-side", "mid-swap"],
    );
}

#[test]
fn a_killed_mariadb_restore_is_finished_or_undone_by_recover() {
    killed_restores_are_finished_or_undone_by_recover(
        Engine::Mysql,
        &["after-database-side", "mid-swap"],
    );
}

#[test]
fn a_killed_restore_does_not_leave_an_autostart_instance_down_under_serve() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    let config = svc.path().join("ostler.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "stop_timeout = \"5s\"\n",
        "stop_timeout = \"5s\"\nautostart = true\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = svc
        .cmd(&["serve", "--tick", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = |svc: &Svc| {
        let s = svc.instance_status("gb-1");
        s["state"] == "running" && s["lock"].is_null()
    };
    wait_for(Duration::from_secs(30), "serve to start gb-1", || up(svc));
    es.post_entry(0, "in the backup", &[]);
    let id = backup_id(svc, "gb-1");
    es.post_entry(0, "live", &[]);
    let old = snapshot(&es);

    kill_restore_at(
        svc,
        &["restore", "gb-1", "--from", &id, "--yes-really-production"],
        "after-database-side",
    );
    wait_for(Duration::from_secs(30), "serve to bring gb-1 back", || {
        up(svc)
    });
    assert!(snapshot(&es) == old, "not the old state");
    assert_no_temporaries(&es);
    assert_eq!(http_get(es.ports[0], "/health").unwrap().0, 200);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn a_mariadb_restore_that_cannot_swap_a_view_refuses_and_changes_nothing() {
    let es = EngineSvc::new(Engine::Mysql, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "in the backup", &["t"]);
    let id = backup_id(svc, "gb-1");
    es.post_entry(0, "live", &["u"]);
    // RENAME TABLE cannot move a view to another database.
    es.sql(
        0,
        "CREATE VIEW authors AS SELECT DISTINCT author FROM entries;",
    );
    let old = snapshot(&es);

    let err = svc.fails(&["restore", "gb-1", "--from", &id, "--yes-really-production"]);
    assert!(
        err.contains("has views, triggers or routines") && err.contains("nothing was swapped"),
        "{err}"
    );
    assert!(snapshot(&es) == old, "the instance changed");
    assert_eq!(es.sql(0, "SELECT COUNT(*) FROM authors;").trim(), "2");
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    assert_no_temporaries(&es);
    svc.ok(&["stop", "gb-1"]);
}
