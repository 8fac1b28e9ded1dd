//! The engines as values, without processes: which engine each kind names, how a
//! `[database]` section becomes a `Database`, and what SQLite's admin does to files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::report::{Interrupt, Silent};

const KINDS: [DatabaseKind; 3] = [
    DatabaseKind::Sqlite,
    DatabaseKind::Postgres,
    DatabaseKind::Mysql,
];

fn runner() -> Runner {
    Runner::new(Arc::new(Silent), Interrupt::new())
}

fn server(kind: DatabaseKind, url: &str) -> Database {
    Database::new(kind, Path::new("/srv"), None, Some(url), Some("pw".into())).unwrap()
}

#[test]
fn each_kind_has_its_own_engine_named_as_in_config() {
    for kind in KINDS {
        let engine = kind.engine();
        assert_eq!(engine.kind(), kind);
        // The config word and the displayed name are one.
        let word: DatabaseKind = serde_json::from_str(&format!("\"{}\"", engine.name())).unwrap();
        assert_eq!(word, kind);
        assert_eq!(kind.to_string(), engine.name());
    }
    let maria: DatabaseKind = serde_json::from_str("\"mariadb\"").unwrap();
    assert_eq!(maria, DatabaseKind::Mysql);
    assert_eq!(DatabaseKind::Sqlite.engine().address(), Address::File);
    assert!(matches!(
        DatabaseKind::Postgres.engine().address(),
        Address::Server {
            default_port: 5432,
            ..
        }
    ));
}

#[test]
fn a_database_section_becomes_a_database_or_says_what_is_missing() {
    let db = Database::new(
        DatabaseKind::Sqlite,
        Path::new("/srv/app"),
        Some(Path::new("data/app.db")),
        None,
        None,
    )
    .unwrap();
    assert_eq!(db.locator(), "/srv/app/data/app.db");
    assert_eq!(db.engine().kind(), DatabaseKind::Sqlite);

    let pg = server(DatabaseKind::Postgres, "postgresql://app@db.example/shop");
    assert_eq!(pg.locator(), "postgres://app@db.example:5432/shop");
    assert_eq!(pg.password(), Some("pw"));
    assert_eq!(pg.child_env(), vec![("PGPASSWORD".into(), "pw".into())]);
    let my = server(DatabaseKind::Mysql, "mariadb://app@127.0.0.1/shop");
    assert_eq!(my.locator(), "mysql://app@127.0.0.1:3306/shop");
    assert_eq!(my.child_env(), vec![("MYSQL_PWD".into(), "pw".into())]);

    let no_path = Database::new(DatabaseKind::Sqlite, Path::new("/"), None, None, None);
    assert_eq!(no_path.unwrap_err(), "a sqlite database needs `path`");
    let no_url = Database::new(DatabaseKind::Mysql, Path::new("/"), None, None, None);
    assert_eq!(no_url.unwrap_err(), "a mysql database needs `url`");
    let wrong = Database::new(
        DatabaseKind::Postgres,
        Path::new("/"),
        None,
        Some("mysql://a@h/db"),
        None,
    );
    assert!(wrong.unwrap_err().contains("should start with postgres://"));
    let e = DbUrl::parse("postgres://a@h/db", DatabaseKind::Sqlite).unwrap_err();
    assert_eq!(e, "a sqlite database takes `path`, not `url`");
}

#[test]
fn a_scratch_database_sits_on_the_same_server_with_the_same_login() {
    let dir = Path::new("/tmp/x");
    for kind in [DatabaseKind::Postgres, DatabaseKind::Mysql] {
        let live = server(kind, &format!("{kind}://app@10.0.0.5:7000/shop"));
        let scratch = kind
            .engine()
            .scratch(&live, "ostler_scratch_1", dir)
            .unwrap();
        assert_eq!(scratch.kind(), kind);
        assert_eq!(scratch.name(), "ostler_scratch_1");
        assert_eq!(scratch.client_args(), live.client_args());
        assert_eq!(scratch.child_env(), live.child_env());
    }
    let live = Database::Sqlite {
        path: PathBuf::from("/srv/app.db"),
    };
    let scratch = live.engine().scratch(&live, "s", dir).unwrap();
    assert_eq!(scratch.name(), "/tmp/x/s.sqlite");
    // An engine given another engine's database refuses, it does not guess.
    let pg = server(DatabaseKind::Postgres, "postgres://a@h/db");
    assert!(DatabaseKind::Mysql.engine().scratch(&pg, "s", dir).is_err());
}

#[test]
fn every_engine_says_how_to_restore_its_export_without_ostler() {
    for kind in KINDS {
        let native = kind.engine().native_restore();
        assert!(!native.engine.is_empty());
        let all = native.commands.join(" && ");
        let file = if kind == DatabaseKind::Sqlite {
            "database.sqlite"
        } else {
            "database.sql"
        };
        assert!(all.contains(file), "{kind}: {all}");
    }
}

#[test]
fn swapping_databases_of_two_engines_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let live = Database::Sqlite {
        path: tmp.path().join("live.db"),
    };
    std::fs::write(tmp.path().join("live.db"), b"live").unwrap();
    let pg = server(DatabaseKind::Postgres, "postgres://a@127.0.0.1:1/db");
    let err = live.swap_in(&pg, &live, &runner()).unwrap_err().to_string();
    assert!(err.contains("another engine"), "{err}");
    assert_eq!(std::fs::read(tmp.path().join("live.db")).unwrap(), b"live");
}

#[test]
fn sqlite_swap_moves_companions_and_swapping_back_undoes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let at = |name: &str| tmp.path().join(name);
    let db = |name: &str| Database::Sqlite { path: at(name) };
    let (live, side, aside) = (db("app.db"), db("app.db.side"), db("app.db.aside"));
    std::fs::write(at("app.db"), b"old").unwrap();
    std::fs::write(at("app.db-wal"), b"old wal").unwrap();
    std::fs::write(at("app.db.side"), b"new").unwrap();
    let r = runner();
    assert!(live.exists(&r).unwrap() && side.holds_data(&r).unwrap());

    live.swap_in(&side, &aside, &r).unwrap();
    assert_eq!(std::fs::read(at("app.db")).unwrap(), b"new");
    assert_eq!(std::fs::read(at("app.db.aside")).unwrap(), b"old");
    assert_eq!(std::fs::read(at("app.db.aside-wal")).unwrap(), b"old wal");
    assert!(!at("app.db-wal").exists() && !side.exists(&r).unwrap());

    // Undo: the aside comes back and the restored file goes to the side again.
    live.swap_in(&aside, &side, &r).unwrap();
    assert_eq!(std::fs::read(at("app.db")).unwrap(), b"old");
    assert_eq!(std::fs::read(at("app.db-wal")).unwrap(), b"old wal");
    assert_eq!(std::fs::read(at("app.db.side")).unwrap(), b"new");

    side.remove(&r).unwrap();
    side.remove(&r).unwrap(); // already gone: still fine
    live.nuke(&r).unwrap();
    assert!(!live.exists(&r).unwrap() && !at("app.db-wal").exists());
}
