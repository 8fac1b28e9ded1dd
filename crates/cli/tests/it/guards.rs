//! The production guard judged by effect, instances sharing production's database,
//! and input that must never panic or surprise (instance names, offsets, URLs, ports,
//! stale locks). Each test is named after the defect it pins.

use ostler_testsupport::{MariaDbServer, PgServer};

use crate::databases::{Engine, EngineSvc};
use crate::support::*;

/// gb-1 (production) and gb-2, each on its own SQLite file, plus `extra` config.
fn production_and_another(extra: &str) -> Svc {
    let (p1, p2) = (free_port(), free_port());
    Svc::new(&format!(
        "{}[repository]\npath = \"repo\"\n\n[roles]\nproduction = \"gb-1\"\n{}{}{extra}",
        service_header(""),
        guestbook_instance("gb-1", p1, ""),
        guestbook_instance("gb-2", p2, "")
    ))
}

fn post_entry(svc: &Svc, instance: &str, message: &str) {
    let port = svc.instance_status(instance)["port"].as_u64().unwrap() as u16;
    let (code, body) = http_post(
        port,
        "/entries",
        &format!(r#"{{"author":"a","message":"{message}","tags":[]}}"#),
    );
    assert_eq!(code, 201, "{body}");
}

fn count_entries(db: &std::path::Path) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM entries")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A bare instance `name` on the SQLite file `path` (relative to its dir `dir`).
fn sqlite_instance(name: &str, dir: &str, path: &str) -> String {
    format!(
        "\n[instances.{name}]\ndir = \"{dir}\"\nstart = \"sleep 60\"\nport = {}\n\n[instances.{name}.database]\nkind = \"sqlite\"\npath = \"{path}\"\n",
        free_port()
    )
}

#[test]
fn a_chain_spelling_out_rebuild_on_production_is_guarded_like_rebuild() {
    let svc = production_and_another("");
    // A first build replaces nothing: no question.
    svc.ok(&["build,start", "production"]);
    let pid = svc.pid("gb-1").unwrap();
    for chain in ["stop,print,build,start", "rebuild", "bu"] {
        let err = svc.fails(&[chain, "production"]);
        assert!(
            err.contains("gb-1: it is the production instance"),
            "{chain}: {err}"
        );
        // Judged before anything ran: still running, same process.
        assert_eq!(svc.pid("gb-1"), Some(pid), "{chain}");
    }
    // The dry run says which steps are guarded.
    let dry = svc.ok(&["stop,print,build,start", "production", "--dry-run"]);
    assert!(
        dry.contains("stop gb-1  -- check: no process of its group is left; undo: start it\n"),
        "{dry}"
    );
    assert!(
        dry.contains("build gb-1  (guarded: replaces the build it runs)  -- check: the command exits 0; undo: none"),
        "{dry}"
    );
    // Stopping and starting lose nothing and stay unguarded; confirmed, the chain runs.
    svc.ok(&[
        "stop,print,build,start",
        "production",
        "--yes-really-production",
    ]);
    assert_ne!(svc.pid("gb-1"), Some(pid));
    svc.ok(&["restart", "production"]);
    svc.ok(&["stop", "gb-1"]);
    // Not production: the same chain needs nothing.
    svc.ok(&["build,build", "gb-2"]);
}

#[test]
fn log_nuke_of_production_asks_before_emptying_its_logs() {
    let svc = production_and_another("");
    svc.ok(&["build,start", "gb-1"]);
    post_entry(&svc, "gb-1", "logged");
    svc.ok(&["stop", "gb-1"]);
    let log = svc.path().join(".ostler/logs/gb-1.log");
    let before = std::fs::metadata(&log).unwrap().len();
    assert!(before > 0);
    let err = svc.fails(&["log-nuke", "production"]);
    assert!(
        err.contains("refusing to log-nuke gb-1: it is the production instance"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len(), before, "untouched");
    svc.ok(&["log-nuke", "production", "--yes-really-production"]);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
}

#[test]
fn log_nuke_of_an_instance_whose_logs_are_productions_is_guarded() {
    // q's extra log is production's access log; t's logs are its own.
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"gb-1\"\n{}{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), "logs = [\"access.log\"]"),
        format_args!(
        "\n[instances.q]\ndir = \"instances/q\"\nstart = \"sleep 60\"\nport = {}\nlogs = [\"../gb-1/access.log\"]\n\n[instances.t]\ndir = \"instances/t\"\nstart = \"sleep 60\"\nport = {}\nlogs = [\"access.log\"]\n",
            free_port(),
            free_port()
        )
    ));
    let access = svc.path().join("instances/gb-1/access.log");
    std::fs::create_dir_all(access.parent().unwrap()).unwrap();
    std::fs::create_dir_all(svc.path().join("instances/t")).unwrap();
    std::fs::create_dir_all(svc.path().join("instances/q")).unwrap();
    std::fs::write(&access, "GET / 200\n").unwrap();
    std::fs::write(svc.path().join("instances/t/access.log"), "GET / 200\n").unwrap();
    let err = svc.fails(&["log-nuke", "q"]);
    assert!(
        err.contains("refusing to log-nuke q: its logs are the production instance gb-1's (")
            && err.contains("instances/gb-1/access.log"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&access).unwrap(), "GET / 200\n");
    svc.ok(&["log-nuke", "t"]);
    assert_eq!(
        std::fs::metadata(svc.path().join("instances/t/access.log"))
            .unwrap()
            .len(),
        0
    );
    svc.ok(&["log-nuke", "q", "--yes-really-production"]);
    assert_eq!(std::fs::metadata(&access).unwrap().len(), 0);
}

#[test]
fn db_nuke_of_an_instance_whose_path_reaches_productions_sqlite_file_is_guarded() {
    // q reaches production's file through `..`; r through a symlink in its own dir.
    let svc = production_and_another(&format!(
        "{}{}",
        sqlite_instance("q", "instances/q", "../gb-1/data.db"),
        sqlite_instance("r", "instances/r", "data.db")
    ));
    svc.ok(&["build,start", "gb-1"]);
    post_entry(&svc, "gb-1", "keep me");
    svc.ok(&["stop", "gb-1"]);
    let live = svc.path().join("instances/gb-1/data.db");
    std::fs::create_dir_all(svc.path().join("instances/q")).unwrap();
    std::fs::create_dir_all(svc.path().join("instances/r")).unwrap();
    std::os::unix::fs::symlink(&live, svc.path().join("instances/r/data.db")).unwrap();
    for name in ["q", "r"] {
        let err = svc.fails(&["db-nuke", name]);
        assert!(
            err.contains(&format!(
                "refusing to db-nuke {name}: its database is the production instance gb-1's"
            )) && err.contains("--yes-really-production"),
            "{err}"
        );
        assert_eq!(
            count_entries(&live),
            1,
            "production's database is untouched"
        );
    }
    // Stopping or printing q touches no database: not guarded.
    svc.ok(&["print", "q"]);
    // An instance with a database of its own is not guarded.
    svc.ok(&["build,db-nuke", "gb-2"]);
    // Confirmed, it does what was asked, after a safety dump.
    let out = svc.run(&["db-nuke", "q", "--yes-really-production"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("safety dump:"));
    assert!(!live.exists());
}

#[test]
fn restore_over_an_instance_sharing_productions_database_is_guarded() {
    let svc = production_and_another(&sqlite_instance("q", "instances/q", "../gb-1/data.db"));
    svc.ok(&["build,start", "gb-1"]);
    post_entry(&svc, "gb-1", "one");
    svc.ok(&["backup", "gb-1"]);
    post_entry(&svc, "gb-1", "two");
    svc.ok(&["stop", "gb-1"]);
    let err = svc.fails(&["restore", "gb-1", "--into", "q"]);
    assert!(
        err.contains("refusing to restore backup ")
            && err.contains(" over q: its database is the production instance gb-1's"),
        "{err}"
    );
    assert_eq!(count_entries(&svc.path().join("instances/gb-1/data.db")), 2);
}

#[test]
fn partial_restore_into_production_asks_before_writing() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "ada", &["x"]);
    es.post_entry(0, "bob", &["x"]);
    svc.ok(&["backup", "gb-1"]);
    es.sql(0, "DELETE FROM entries WHERE author = 'bob';");
    let before = es.all_rows(0);
    let args = [
        "restore",
        "gb-1",
        "--table",
        "entries",
        "--where",
        "author = 'bob'",
    ];
    // A dry run writes nothing and asks nothing.
    svc.ok(&[&args[..], &["--dry-run"]].concat());
    let err = svc.fails(&args);
    assert!(
        err.contains("refusing to restore rows of entries from backup ")
            && err.contains(
                " into gb-1: it is the production instance (this writes rows into its database)"
            ),
        "{err}"
    );
    assert_eq!(es.all_rows(0), before, "nothing written");
    svc.ok(&[&args[..], &["--yes-really-production"]].concat());
    assert_eq!(es.rows(0, "entries").len(), 2);
    // With every row live there is nothing to write, and nothing to ask.
    assert!(svc.ok(&args).contains("nothing to restore"));
    svc.ok(&["stop", "gb-1"]);
}

/// blue (production) and green on one server database of `engine`, green's URL saying
/// `localhost` where blue's says 127.0.0.1: green's db-nuke is guarded.
fn db_nuke_on_productions_server_database_is_guarded(engine: Engine) {
    let sql = |db: &str, text: &str| match engine {
        Engine::Postgres => PgServer::shared().sql(db, text).unwrap(),
        _ => MariaDbServer::shared().sql(db, text).unwrap(),
    };
    let (db, url, password, kind) = match engine {
        Engine::Postgres => {
            let pg = PgServer::shared();
            let db = pg.unique_database("guard").unwrap();
            (
                db.clone(),
                pg.url(&db),
                pg.password().to_string(),
                "postgres",
            )
        }
        _ => {
            let my = MariaDbServer::shared();
            let db = my.unique_database("guard").unwrap();
            (db.clone(), my.url(&db), my.password().to_string(), "mysql")
        }
    };
    sql(
        &db,
        "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1);",
    );
    let same = url.replace("127.0.0.1", "localhost");
    assert_ne!(url, same, "the test expects a loopback address in {url}");
    let section = |name: &str, url: &str| {
        format!(
            "\n[instances.{name}]\ndir = \"{name}\"\nstart = \"sleep 60\"\nport = {}\n\n[instances.{name}.database]\nkind = \"{kind}\"\nurl = \"{url}\"\npassword_file = \"db.pw\"\n",
            free_port()
        )
    };
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"blue\"\n{}{}",
        service_header(""),
        section("blue", &url),
        section("green", &same)
    ));
    std::fs::write(svc.path().join("db.pw"), password).unwrap();
    let err = svc.fails(&["db-nuke", "green"]);
    assert!(
        err.contains("refusing to db-nuke green: its database is the production instance blue's"),
        "{err}"
    );
    assert_eq!(
        sql(&db, "SELECT count(*) FROM t;").trim(),
        "1",
        "production's database is untouched"
    );
    // Sharing is allowed, and said.
    let shown = svc.ok(&["config", "show"]);
    assert!(
        shown.contains(&format!(
            "# instances blue, green share one database: {kind} localhost:"
        )),
        "{shown}"
    );
}

#[test]
fn db_nuke_of_an_instance_on_productions_postgres_database_is_guarded() {
    db_nuke_on_productions_server_database_is_guarded(Engine::Postgres);
}

#[test]
fn db_nuke_of_an_instance_on_productions_mariadb_database_is_guarded() {
    db_nuke_on_productions_server_database_is_guarded(Engine::Mysql);
}

#[test]
fn config_show_and_status_say_which_instances_share_a_database() {
    let svc = production_and_another(&sqlite_instance("q", "instances/q", "../gb-1/data.db"));
    let shown = svc.ok(&["config", "show"]);
    let expected = format!(
        "# instances gb-1, q share one database: sqlite {}",
        svc.path()
            .canonicalize()
            .unwrap()
            .join("instances/gb-1/data.db")
            .display()
    );
    assert!(shown.contains(&expected), "{shown}");
    assert!(!shown.contains("gb-2, "), "{shown}");
    let status = svc.status_json();
    let q = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "q")
        .unwrap();
    assert_eq!(q["shares_database_with"], serde_json::json!(["gb-1"]));
    let gb2 = svc.instance_status("gb-2");
    assert_eq!(gb2["shares_database_with"], serde_json::json!([]));
    let printed = svc.ok(&["print", "q"]);
    assert!(
        printed.contains("shares its database with: gb-1"),
        "{printed}"
    );
    let text = svc.ok(&["status"]);
    assert!(text.contains("gb-1, q share one database"), "{text}");
}

#[test]
fn time_with_a_multibyte_character_in_its_offset_is_an_error_not_a_panic() {
    let svc = production_and_another("");
    for at in ["2016-04-06 17:00 +1é1", "2016-04-06 17:00 +-5"] {
        let out = svc.run(&["restore", "gb-1", "--at", at]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{at}: {err}");
        assert!(err.contains("cannot read the time"), "{at}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn an_instance_name_cannot_reach_a_file_outside_the_state_dir() {
    let svc = Svc::new("");
    let victim = svc.path().join("victim.log");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::write(
        svc.path().join("ostler.toml"),
        format!(
            "{}\n[instances.\"../../victim\"]\ndir = \"v\"\nstart = \"sleep 60\"\nport = {}\n",
            service_header(""),
            free_port()
        ),
    )
    .unwrap();
    let err = svc.fails(&["log-nuke", "../../victim"]);
    assert!(
        err.contains("ostler.toml:6:12: instance name `../../victim` is not allowed"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_password_in_the_url_query_is_refused_and_never_shown() {
    let svc = Svc::new(&format!(
        "{}\n[instances.a]\ndir = \"a\"\nstart = \"sleep 60\"\nport = {}\n\n[instances.a.database]\nkind = \"postgres\"\nurl = \"postgres://gb@127.0.0.1/gb?password=hunter2\"\n",
        service_header(""),
        free_port()
    ));
    for args in [&["config", "check"][..], &["config", "show"], &["status"]] {
        let out = svc.run(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("holds a password"), "{args:?}: {all}");
        assert!(!all.contains("hunter2"), "{args:?}: {all}");
    }
}

#[test]
fn demo_on_the_last_port_refuses_instead_of_writing_port_0() {
    let svc = Svc::new("");
    let err = svc.fails(&["demo", "d", "--port", "65535"]);
    assert!(
        err.contains("no free port for gb-2 from") && err.contains("--port"),
        "{err}"
    );
    assert!(!svc.path().join("d/ostler.toml").exists());
    let err = svc.fails(&["demo", "d", "--port", "0"]);
    assert!(err.contains("0"), "{err}");
    assert!(!svc.path().join("d/ostler.toml").exists());
}

#[test]
fn status_shows_the_lock_of_a_dead_holder_as_stale_not_held() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.x]\ndir = \"x\"\nbuild = \"sleep 30\"\nstart = \"sleep 60\"\nport = {port}\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("x")).unwrap();
    let mut holder = svc.cmd(&["build", "x"]).spawn().unwrap();
    wait_for(
        std::time::Duration::from_secs(10),
        "the build to take the lock",
        || svc.status_json()[0]["lock"].is_object(),
    );
    // Held by a live process: not stale.
    assert_eq!(
        svc.status_json()[0]["lock"]["stale"],
        serde_json::Value::Null
    );
    assert!(!svc.ok(&["status"]).contains("stale"));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let lock = &svc.status_json()[0]["lock"];
    assert_eq!(lock["stale"], "holder-gone", "{lock}");
    assert_eq!(lock["purpose"], "build", "{lock}");
    let text = svc.ok(&["status"]);
    assert!(
        text.contains("stale, reclaimable (its holder is gone): build by"),
        "{text}"
    );
    // And the next operation does reclaim it.
    svc.ok(&["start,stop", "x"]);
    assert!(svc.status_json()[0]["lock"].is_null());
}

/// Runs `ostler ARGS` on a real terminal (util-linux `script` gives it a pty), types
/// `answer` once the guard's question is on the screen, and returns (success, screen).
fn answer_on_a_terminal(svc: &Svc, args: &str, answer: &str) -> (bool, String) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", ostler_bin().display()),
            "/dev/null",
        ])
        .current_dir(svc.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", svc.path())
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    wait_for(
        std::time::Duration::from_secs(20),
        "the guard's question",
        || screen.lock().unwrap().contains("Type the instance's name"),
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let screen = screen.lock().unwrap().clone();
    (status.success(), screen)
}

#[test]
fn the_guard_on_a_terminal_goes_on_only_when_the_instance_is_named() {
    let svc = production_and_another(&sqlite_instance("q", "instances/q", "../gb-1/data.db"));
    let log = svc.path().join(".ostler/logs/gb-1.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "keep\n").unwrap();
    let (ok, screen) = answer_on_a_terminal(&svc, "log-nuke production", "production");
    assert!(!ok, "{screen}");
    assert!(
        screen.contains("gb-1 is the PRODUCTION instance. log-nuke gb-1 empties its logs."),
        "{screen}"
    );
    assert!(screen.contains("refusing to log-nuke gb-1"), "{screen}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "keep\n");
    let (ok, screen) = answer_on_a_terminal(&svc, "log-nuke production", "gb-1");
    assert!(ok, "{screen}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
    // The question says why an instance that is not production is guarded.
    let (ok, screen) = answer_on_a_terminal(&svc, "db-nuke q", "no");
    assert!(!ok, "{screen}");
    assert!(
        screen.contains("q's database is the PRODUCTION instance gb-1's database (sqlite ")
            && screen.contains("db-nuke q destroys its database."),
        "{screen}"
    );
}
