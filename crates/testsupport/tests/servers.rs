//! The throwaway servers, started for real: they start, they demand their
//! password, they run SQL, and they leave nothing behind.

use std::path::Path;
use std::process::Command;

use ostler_testsupport::{free_port, MariaDbServer, PgServer};

/// Whether process `pid` still exists (as anything but a zombie).
fn process_exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Asserts that the server process is gone and its dir removed.
fn assert_left_nothing(pid: u32, dir: &Path) {
    // Drop waits for both, so there is nothing to wait for here.
    assert!(
        !process_exists(pid),
        "server pid {pid} still runs after drop"
    );
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
}

#[test]
fn free_port_never_hands_out_the_same_port_twice() {
    let mut ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 200);
    assert!(ports.iter().all(|&p| p != 0));
}

#[test]
fn pg_sql_round_trip_in_a_unique_database() {
    let pg = PgServer::shared();
    let db = pg.unique_database("round trip").unwrap();
    assert!(db.starts_with("round_trip_"), "{db}");
    let out = pg
        .sql(
            &db,
            "CREATE TABLE t (id int PRIMARY KEY, name text);
             INSERT INTO t VALUES (1, 'one'), (2, 'two');
             SELECT id, name FROM t ORDER BY id;",
        )
        .unwrap();
    assert_eq!(out, "1|one\n2|two\n");
    let other = pg.unique_database("round trip").unwrap();
    assert_ne!(db, other);
    // Statements that cannot run in a transaction block work too.
    pg.sql("postgres", &format!("DROP DATABASE \"{other}\""))
        .unwrap();
    assert_eq!(
        pg.url(&db),
        format!("postgres://ostler@127.0.0.1:{}/{db}", pg.port())
    );
    assert_eq!((pg.host(), pg.user()), ("127.0.0.1", "ostler"));
}

#[test]
fn pg_rejects_a_wrong_or_missing_password() {
    let pg = PgServer::shared();
    for password in [Some("not-the-password"), None] {
        let mut psql = Command::new(pg.bin_dir().join("psql"));
        psql.args([
            "-X",
            "-A",
            "-t",
            "-h",
            pg.host(),
            "-U",
            pg.user(),
            "-d",
            "postgres",
        ])
        .args(["-p", &pg.port().to_string(), "-w", "-c", "SELECT 1"])
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/dev/null");
        if let Some(password) = password {
            psql.env("PGPASSWORD", password);
        }
        let out = psql.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "logged in with password {password:?}"
        );
        assert!(
            stderr.contains("password authentication failed")
                || stderr.contains("no password supplied"),
            "{stderr}"
        );
    }
    assert_eq!(pg.sql("postgres", "SELECT 1").unwrap(), "1\n");
}

#[test]
fn pg_sql_errors_name_the_command_and_keep_the_password_out() {
    let pg = PgServer::shared();
    let err = pg.sql("postgres", "SELEC 1").unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("running SQL in PostgreSQL database"),
        "{text}"
    );
    assert!(text.contains("psql -X -A -t -q"), "{text}");
    assert!(text.contains("syntax error"), "{text}");
    assert!(!text.contains(pg.password()), "{text}");
    assert!(!format!("{pg:?}").contains(pg.password()));
}

#[test]
fn pg_shared_is_one_server_for_the_whole_process() {
    let here = PgServer::shared() as *const PgServer as usize;
    let there = std::thread::spawn(|| PgServer::shared() as *const PgServer as usize)
        .join()
        .unwrap();
    assert_eq!(here, there);
    assert!(std::ptr::eq(PgServer::shared(), PgServer::shared()));
    assert!(PgServer::shared().is_running());
}

#[test]
fn pg_drop_stops_the_server_and_removes_its_dir() {
    let pg = PgServer::start().unwrap();
    let (pid, dir) = (pg.pid(), pg.dir().to_owned());
    assert!(dir.join("data/PG_VERSION").is_file());
    assert!(pg.is_running() && process_exists(pid));
    assert_eq!(pg.sql("postgres", "SELECT 40 + 2").unwrap(), "42\n");
    drop(pg);
    assert_left_nothing(pid, &dir);
}

#[test]
fn pg_stop_stops_the_server_and_keeps_its_dir_until_drop() {
    let pg = PgServer::start().unwrap();
    pg.stop().unwrap();
    assert!(!pg.is_running());
    assert!(pg.sql("postgres", "SELECT 1").is_err());
    assert!(pg.dir().exists());
    pg.stop().unwrap(); // stopping twice is fine
    let (pid, dir) = (pg.pid(), pg.dir().to_owned());
    drop(pg);
    assert_left_nothing(pid, &dir);
}

#[test]
fn mariadb_sql_round_trip_in_a_unique_database() {
    let my = MariaDbServer::shared();
    let db = my.unique_database("round-trip").unwrap();
    assert!(db.starts_with("round_trip_"), "{db}");
    let out = my
        .sql(
            &db,
            "CREATE TABLE t (id int PRIMARY KEY, name text);
             INSERT INTO t VALUES (1, 'one'), (2, 'two');
             SELECT id, name FROM t ORDER BY id;",
        )
        .unwrap();
    assert_eq!(out, "1\tone\n2\ttwo\n");
    assert_eq!(
        my.sql("", "SELECT CURRENT_USER()").unwrap(),
        "ostler@127.0.0.1\n"
    );
    assert_eq!(
        my.url(&db),
        format!("mysql://ostler@127.0.0.1:{}/{db}", my.port())
    );
    assert_eq!((my.host(), my.user()), ("127.0.0.1", "ostler"));
    let grants = my.sql("", "SHOW GRANTS").unwrap();
    assert!(grants.contains("ALL PRIVILEGES ON *.*") && grants.contains("WITH GRANT OPTION"));
}

#[test]
fn mariadb_rejects_a_wrong_or_missing_password() {
    let my = MariaDbServer::shared();
    let tcp = ["--protocol=TCP", "-h", "127.0.0.1", "-u", "ostler"];
    let socket = format!("--socket={}", my.socket().display());
    let attempts: [(&[&str], Option<&str>); 4] = [
        (&tcp, Some("not-the-password")),
        (&tcp, None),
        (&["--protocol=socket", &socket, "-u", "ostler"], None),
        (&["--protocol=socket", &socket, "-u", "root"], None),
    ];
    for (how, password) in attempts {
        let mut client = Command::new(my.client_path());
        client
            .arg("--no-defaults")
            .args(how)
            .args(["-P", &my.port().to_string(), "-e", "SELECT 1"])
            .env_remove("MYSQL_PWD");
        if let Some(password) = password {
            client.env("MYSQL_PWD", password);
        }
        let out = client.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "logged in with {how:?} {password:?}");
        assert!(stderr.contains("Access denied"), "{how:?}: {stderr}");
    }
    // The socket works with the password, as ostler@localhost.
    let out = Command::new(my.client_path())
        .args([
            "--no-defaults",
            "--protocol=socket",
            &socket,
            "-u",
            "ostler",
            "-N",
            "-B",
        ])
        .args(["-e", "SELECT CURRENT_USER()"])
        .env("MYSQL_PWD", my.password())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"ostler@localhost\n");
}

#[test]
fn mariadb_sql_errors_name_the_command_and_keep_the_password_out() {
    let my = MariaDbServer::shared();
    let text = format!("{:#}", my.sql("", "SELEC 1").unwrap_err());
    assert!(text.contains("running SQL in MariaDB database"), "{text}");
    assert!(text.contains("--batch --skip-column-names"), "{text}");
    assert!(text.contains("error in your SQL syntax"), "{text}");
    assert!(!text.contains(my.password()), "{text}");
    assert!(!format!("{my:?}").contains(my.password()));
}

#[test]
fn mariadb_shared_is_one_server_for_the_whole_process() {
    let here = MariaDbServer::shared() as *const MariaDbServer as usize;
    let there = std::thread::spawn(|| MariaDbServer::shared() as *const MariaDbServer as usize)
        .join()
        .unwrap();
    assert_eq!(here, there);
    assert!(MariaDbServer::shared().is_running());
}

#[test]
fn mariadb_drop_stops_the_server_and_removes_its_dir() {
    let my = MariaDbServer::start().unwrap();
    let (pid, dir) = (my.pid(), my.dir().to_owned());
    assert!(my.socket().exists());
    assert!(my.is_running() && process_exists(pid));
    assert_eq!(my.sql("", "SELECT 40 + 2").unwrap(), "42\n");
    my.stop().unwrap();
    assert!(!my.is_running());
    drop(my);
    assert_left_nothing(pid, &dir);
}

/// Regression: on CI, `mariadb-install-db` failed with "Could not remove temporary
/// table: '/tmp/#sql-temptable-278a-1-3', error: 2" and "ERROR: 1051 Unknown table
/// 'mysql.tmp_user_sys'" when several installs shared /tmp at the same time.
#[test]
fn mariadb_install_db_tmp_collision_two_servers_started_concurrently() {
    let servers: Vec<MariaDbServer> = (0..2)
        .map(|_| std::thread::spawn(MariaDbServer::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap().unwrap())
        .collect();
    assert_ne!(servers[0].port(), servers[1].port());
    assert_ne!(servers[0].dir(), servers[1].dir());
    for (i, server) in servers.iter().enumerate() {
        let db = server.unique_database("concurrent").unwrap();
        server
            .sql(
                &db,
                &format!("CREATE TABLE t (n int); INSERT INTO t VALUES ({i});"),
            )
            .unwrap();
        assert_eq!(
            server.sql(&db, "SELECT n FROM t").unwrap(),
            format!("{i}\n")
        );
    }
}
