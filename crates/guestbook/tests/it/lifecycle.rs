//! Starting, stopping and migrating: what ostler does to the service around the
//! requests (upgrade = migrate then start; stop = SIGTERM and expect exit 0).

use serde_json::json;

use crate::support::{count, open_db, run, Guestbook, Paths};

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

#[test]
fn sigterm_stops_the_server_gracefully_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    assert_eq!(
        gb.post("/entries", json!({"author": "a", "message": "m"}))
            .status,
        201
    );
    let (status, stderr) = gb.stop_with(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "only the start-up line: {stderr}");
    let rest = lines[0]
        .strip_prefix("guestbook listening on 127.0.0.1:")
        .unwrap();
    let (port, tail) = rest.split_once(' ').unwrap();
    assert!(port.parse::<u16>().unwrap() > 0);
    assert_eq!(tail, "(db: sqlite, schema 3)");
    // What was written is there after the stop.
    let db = open_db(&Paths::in_dir(dir.path()).db);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM entries"), 1);
}

#[test]
fn sigint_stops_the_server_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    let (status, stderr) = gb.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn sqlite_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let _gb = Guestbook::start(dir.path());
    let db = open_db(&Paths::in_dir(dir.path()).db);
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn migrate_to_1_then_starting_the_server_migrates_to_3() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let db_arg = format!("sqlite:{}", paths.db.display());

    let out = run(&["migrate", "--db", &db_arg, "--to", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.ends_with("migrated from schema 0 to 1\n"),
        "{stdout}"
    );
    {
        let db = open_db(&paths.db);
        assert_eq!(count(&db, "SELECT MAX(version) FROM schema_migrations"), 1);
        assert_eq!(
            columns(&db, "entries"),
            ["id", "author", "message", "created_at"]
        );
        assert!(columns(&db, "tags").is_empty());
        db.execute(
            "INSERT INTO entries (author, message, created_at) VALUES ('old', 'from v1', 'then')",
            [],
        )
        .unwrap();
    }

    let gb = Guestbook::start(dir.path());
    assert!(
        gb.stderr().contains("(db: sqlite, schema 3)"),
        "{}",
        gb.stderr()
    );
    assert_eq!(gb.get("/health").json()["schema"], 3);
    let entries = gb.get("/entries").json();
    assert_eq!(entries[0]["author"], "old", "rows survive the migration");
    assert_eq!(entries[0]["email"], serde_json::Value::Null);
    let (status, _) = gb.stop_with(libc::SIGTERM);
    assert!(status.success());

    let db = open_db(&paths.db);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM schema_migrations"), 3);
    assert_eq!(
        columns(&db, "entries"),
        ["id", "author", "message", "created_at", "email"]
    );
    assert_eq!(columns(&db, "tags"), ["id", "name"]);
    assert_eq!(columns(&db, "entry_tags"), ["entry_id", "tag_id"]);

    let out = run(&["migrate", "--db", &db_arg]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("already at schema 3"));
}

#[test]
fn migrate_refuses_to_go_backward() {
    let dir = tempfile::tempdir().unwrap();
    let path = Paths::in_dir(dir.path()).db;
    let db = path.display().to_string();
    assert!(run(&["migrate", "--db", &db]).status.success());
    let out = run(&["migrate", "--db", &db, "--to", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("refusing to migrate backward from schema 3 to 1"),
        "{stderr}"
    );
    let out = run(&["migrate", "--db", &db, "--to", "4"]);
    assert_eq!(out.status.code(), Some(1));
    let max = "SELECT MAX(version) FROM schema_migrations";
    assert_eq!(count(&open_db(&path), max), 3, "nothing changed");
}

#[test]
fn a_taken_port_is_a_clear_error_and_leaves_the_database_alone() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut args = paths.serve_args();
    args[1] = port.clone();
    let (status, stderr) = match Guestbook::start_with(&args) {
        Ok(_) => panic!("guestbook started on a taken port"),
        Err(failure) => failure,
    };
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}: the port is already in use")),
        "{stderr}"
    );
    assert!(!paths.db.exists(), "the database was touched");
}

#[test]
fn unreachable_database_fails_at_start_without_printing_the_password() {
    // Port 1 on loopback: refused at once, nothing listens there.
    let args = [
        "--port",
        "0",
        "--db",
        "postgres://app:hunter2@127.0.0.1:1/guestbook",
    ];
    let (status, stderr) = match Guestbook::start_with(&args.map(String::from)) {
        Ok(_) => panic!("started without a database"),
        Err(failure) => failure,
    };
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("cannot connect to postgres://app:***@127.0.0.1:1/guestbook"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn version_and_usage() {
    let out = run(&["version"]);
    assert!(out.status.success());
    let want = format!("guestbook {} (schema 3)\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let out = run(&["--db", "x.db"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let out = run(&["--port", "1", "--db", "mongodb://h/db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database scheme"));
}
