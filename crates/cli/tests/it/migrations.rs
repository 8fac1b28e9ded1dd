//! `ostler migrate` and `ostler migrations` on the three engines: versioned SQL files
//! applied in order and recorded with checksums in the instance's own database, a
//! changed or vanished applied file refused, `--to` and `--dry-run`, a failing file
//! leaving nothing half-applied (PostgreSQL, SQLite), production refused without its
//! flag and copied before it is touched.

use serde_json::Value;

use crate::databases::{database_section, Engine};
use crate::support::{free_port, service_header, Svc};

fn service(engine: Engine, production: bool) -> (Svc, std::path::PathBuf) {
    let svc = Svc::new("");
    let (db, _) = database_section(svc.path(), engine, "app");
    let roles = if production {
        "[roles]\nproduction = \"app\"\n\n"
    } else {
        ""
    };
    std::fs::write(
        svc.path().join("ostler.toml"),
        format!(
            "{}{roles}[instances.app]\ndir = \"app\"\nstart = \"sleep 1000\"\nport = {}\n\n[instances.app.migrations]\ndir = \"migrations\"\n\n{db}",
            service_header(""),
            free_port()
        ),
    )
    .unwrap();
    let dir = svc.path().join("app/migrations");
    std::fs::create_dir_all(&dir).unwrap();
    if engine == Engine::Sqlite {
        std::fs::write(svc.path().join("app/data.db"), "").unwrap();
    }
    (svc, dir)
}

fn status(svc: &Svc) -> Value {
    let out = svc.run(&["--json", "migrations", "app"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn versions(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["version"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

fn applies_in_order_records_and_refuses_a_changed_file(engine: Engine) {
    let (svc, dir) = service(engine, false);
    std::fs::write(
        dir.join("V1__create_entries.sql"),
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, body VARCHAR(200));\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("V2__seed.sql"),
        "INSERT INTO entries (id, body) VALUES (1, 'first');\nINSERT INTO entries (id, body) VALUES (2, 'second');",
    )
    .unwrap();
    std::fs::write(
        dir.join("V10__add_tags.sql"),
        "-- ostler: offline\nCREATE TABLE tags (name VARCHAR(50) PRIMARY KEY);\n",
    )
    .unwrap();
    assert_eq!(versions(&status(&svc)["pending"]), ["1", "2", "10"]);
    let dry = svc.ok(&["migrate", "app", "--dry-run"]);
    assert!(dry.contains("would apply 10 (add tags), offline"), "{dry}");
    assert!(
        versions(&status(&svc)["applied"]).is_empty(),
        "a dry run applies nothing"
    );

    let out = svc.ok(&["migrate", "app", "--to", "2"]);
    assert!(out.contains("applied 1 (create entries)"), "{out}");
    assert!(out.contains("applied 2 (seed)"), "{out}");
    assert!(!out.contains("add tags"), "{out}");
    let s = status(&svc);
    assert_eq!(versions(&s["applied"]), ["1", "2"]);
    assert_eq!(versions(&s["pending"]), ["10"]);
    assert!(s["applied"][0]["checksum"].as_str().unwrap().len() == 64);
    svc.ok(&["migrate", "app"]);
    assert_eq!(versions(&status(&svc)["applied"]), ["1", "2", "10"]);
    assert!(svc.ok(&["migrate", "app"]).contains("nothing to migrate"));
    let table = svc.ok(&["migrations", "app"]);
    assert!(table.contains("add tags"), "{table}");
    assert!(table.contains("applied"), "{table}");

    // Someone edits an applied file: refused, saying which; nothing else applied.
    std::fs::write(
        dir.join("V2__seed.sql"),
        "INSERT INTO entries VALUES (3, 'x');",
    )
    .unwrap();
    std::fs::write(dir.join("V11__more.sql"), "CREATE TABLE more (x INTEGER);").unwrap();
    let err = svc.fails(&["migrate", "app"]);
    assert!(
        err.contains("V2__seed.sql was changed after it was applied"),
        "{err}"
    );
    let s = status(&svc);
    assert_eq!(versions(&s["changed"]), ["2"]);
    assert_eq!(versions(&s["pending"]), ["11"]);
    assert_eq!(svc.run(&["migrations", "app"]).status.code(), Some(1));
    let table = String::from_utf8(svc.run(&["migrations", "app"]).stdout).unwrap();
    assert!(table.contains("CHANGED since applied"), "{table}");

    // The file put back, another applied one removed: refused too.
    std::fs::write(
        dir.join("V2__seed.sql"),
        "INSERT INTO entries (id, body) VALUES (1, 'first');\nINSERT INTO entries (id, body) VALUES (2, 'second');",
    )
    .unwrap();
    std::fs::remove_file(dir.join("V1__create_entries.sql")).unwrap();
    let err = svc.fails(&["migrate", "app"]);
    assert!(
        err.contains("version 1 (create entries) was applied but its file is gone"),
        "{err}"
    );
}

fn a_failing_file_leaves_nothing_half_applied(engine: Engine) {
    let (svc, dir) = service(engine, false);
    std::fs::write(dir.join("V1__create.sql"), "CREATE TABLE a (x INTEGER);").unwrap();
    std::fs::write(
        dir.join("V2__broken.sql"),
        "INSERT INTO a (x) VALUES (1);\nINSERT INTO nosuch (x) VALUES (2);",
    )
    .unwrap();
    let err = svc.fails(&["migrate", "app"]);
    assert!(err.contains("migration 2 ("), "{err}");
    let s = status(&svc);
    assert_eq!(versions(&s["applied"]), ["1"]);
    assert_eq!(versions(&s["pending"]), ["2"]);
    // Its first insert was rolled back with it: fixing the file applies cleanly.
    std::fs::write(dir.join("V2__broken.sql"), "INSERT INTO a (x) VALUES (1);").unwrap();
    svc.ok(&["migrate", "app"]);
    assert_eq!(versions(&status(&svc)["applied"]), ["1", "2"]);
}

#[test]
fn sqlite_migrations_apply_in_order_and_a_changed_file_is_refused() {
    applies_in_order_records_and_refuses_a_changed_file(Engine::Sqlite);
}

#[test]
fn postgres_migrations_apply_in_order_and_a_changed_file_is_refused() {
    applies_in_order_records_and_refuses_a_changed_file(Engine::Postgres);
}

#[test]
fn mariadb_migrations_apply_in_order_and_a_changed_file_is_refused() {
    applies_in_order_records_and_refuses_a_changed_file(Engine::Mysql);
}

#[test]
fn sqlite_and_postgres_roll_back_a_failing_migration_whole() {
    a_failing_file_leaves_nothing_half_applied(Engine::Sqlite);
    a_failing_file_leaves_nothing_half_applied(Engine::Postgres);
}

#[test]
fn production_is_refused_without_its_flag_and_copied_before_it_is_migrated() {
    let (svc, dir) = service(Engine::Sqlite, true);
    std::fs::write(dir.join("V1__create.sql"), "CREATE TABLE a (x INTEGER);").unwrap();
    let err = svc.fails(&["migrate", "production"]);
    assert!(err.contains("instance `app` is production"), "{err}");
    assert!(err.contains("--yes-really-production"), "{err}");
    assert!(versions(&status(&svc)["applied"]).is_empty());
    let out = svc.ok(&["migrate", "production", "--yes-really-production"]);
    assert!(out.contains("safety copy: "), "{out}");
    let safety: Vec<_> = std::fs::read_dir(svc.path().join(".ostler/safety"))
        .unwrap()
        .collect();
    assert_eq!(safety.len(), 1);
    assert!(svc.ok(&["journal"]).contains("migrate"));
}

#[test]
fn a_migrations_table_with_both_dir_and_command_is_refused() {
    let svc = Svc::new(&format!(
        "{}[instances.app]\ndir = \"app\"\nstart = \"true\"\nport = {}\n[instances.app.migrations]\ndir = \"m\"\ncommand = \"alembic upgrade head\"\n",
        service_header(""),
        free_port()
    ));
    let err = svc.fails(&["config", "check"]);
    assert!(
        err.contains("takes `dir` (versioned SQL files) or `command`"),
        "{err}"
    );
}
