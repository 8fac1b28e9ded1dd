//! A throwaway MariaDB server: `mariadb-install-db` into a temp dir, `mariadbd` on a
//! free port of 127.0.0.1 and a socket in that dir, and users `ostler`@`127.0.0.1`
//! and `ostler`@`localhost` with a random password and every privilege.
//!
//! `mariadb-install-db` is the fragile part. Its bootstrap server puts temporary
//! tables in the temp dir, and several installs sharing `/tmp` at once fail with
//! "Could not remove temporary table: '/tmp/#sql-temptable-...'" followed by
//! "ERROR: 1051 Unknown table 'mysql.tmp_user_sys'" (this failed a CI run once).
//! So each install gets a tmpdir of its own (both `--tmpdir` and `$TMPDIR`),
//! installs within a process take turns, and a failed install is retried on a
//! wiped data dir before giving up with its stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::Signal;

use crate::command::{run, run_tracked};
use crate::port::try_free_port;
use crate::process::{lost_port_race, running_as_root, wait_until_ready, ServerDir, ServerProcess};
use crate::secret::{random_hex, unique_name};

const USER: &str = "ostler";
const HOST: &str = "127.0.0.1";
/// Overrides where the MariaDB programs are looked for (before `$PATH`).
const BIN_DIR_ENV: &str = "OSTLER_TEST_MARIADB_BIN_DIR";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;
const INSTALL_ATTEMPTS: usize = 3;

/// Small InnoDB settings, given to both the install's bootstrap server and the real
/// one (so the redo log is created at the size the server then expects).
const INNODB_SETTINGS: &[&str] = &[
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
];

/// Runs during the install, before any server listens on TCP: no anonymous users,
/// and `root` only over the socket (which lives in our 0700 dir). `root` gets the
/// random password right after the server starts.
const LOCKDOWN_SQL: &str =
    "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');\n";

/// A MariaDB server of its own for a test (or, through [`MariaDbServer::shared`],
/// for a whole test process).
///
/// Dropping it stops the server and removes its dir.
pub struct MariaDbServer {
    port: u16,
    password: String,
    socket: PathBuf,
    client: PathBuf,
    process: ServerProcess,
    // Dropped after `process`, so the dir goes only once the server has stopped.
    dir: ServerDir,
}

/// The MariaDB programs this crate runs.
struct Programs {
    server: PathBuf,
    install_db: PathBuf,
    client: PathBuf,
}

impl MariaDbServer {
    /// Installs and starts a new server, and waits until it accepts connections
    /// (at most a minute), then creates the `ostler` users.
    pub fn start() -> anyhow::Result<MariaDbServer> {
        let programs = find_programs()?;
        let dir = ServerDir::create("ostler-mariadb-", None, "TERM")?;
        let password = random_hex(16)?;
        install_db(&programs, dir.path())
            .with_context(|| format!("starting MariaDB in {} failed", dir.path().display()))?;

        let socket = dir.path().join("mysqld.sock");
        let mut attempt = 0;
        let (process, port) = loop {
            attempt += 1;
            let port = try_free_port()?;
            let process = launch(&programs, dir.path(), port)?;
            let ready = wait_until_ready(&process, READY_TIMEOUT, || {
                let mut probe = root_client(&programs.client, &socket);
                run(
                    &mut probe,
                    "connecting to the new MariaDB server",
                    Some("SELECT 1"),
                )
                .map(drop)
            });
            match ready {
                Ok(()) => break (process, port),
                Err(err) => {
                    drop(process);
                    let log = dir.path().join("error.log");
                    if attempt < PORT_ATTEMPTS && lost_port_race(&log) {
                        let _ = std::fs::write(&log, "");
                        continue;
                    }
                    return Err(err.context(format!(
                        "starting MariaDB in {} failed",
                        dir.path().display()
                    )));
                }
            }
        };
        let server = MariaDbServer {
            port,
            password,
            socket,
            client: programs.client,
            process,
            dir,
        };
        server.create_users()?;
        Ok(server)
    }

    /// The one server of this test process, started on first use.
    ///
    /// It is never dropped; a watchdog process stops it and removes its dir when
    /// the test process exits. Stopping it stops it for every test in the process.
    ///
    /// # Panics
    /// Panics, with the reason, if the server cannot start (every caller then sees
    /// the same reason). Use [`MariaDbServer::try_shared`] to handle that instead.
    pub fn shared() -> &'static MariaDbServer {
        Self::try_shared().unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Like [`MariaDbServer::shared`], but returns why the server could not start.
    pub fn try_shared() -> anyhow::Result<&'static MariaDbServer> {
        static SHARED: OnceLock<Result<MariaDbServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| MariaDbServer::start().map_err(|err| format!("{err:#}")))
            .as_ref()
            .map_err(|err| anyhow!("the shared MariaDB server could not start: {err}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `127.0.0.1`: the server listens there only.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The user the tests connect as: `ostler`, with every privilege.
    pub fn user(&self) -> &str {
        USER
    }

    /// The `ostler` user's password, random per server. Pass it in `MYSQL_PWD`.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The server's Unix socket (`ostler`@`localhost` connects there).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `mariadb` command-line client used by [`MariaDbServer::sql`].
    pub fn client_path(&self) -> &Path {
        &self.client
    }

    /// The server's temp dir (data dir, socket, logs); gone after drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the `mariadbd` process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `mysql://ostler@127.0.0.1:PORT/DB`, without the password, which travels in
    /// `MYSQL_PWD` (see [`MariaDbServer::client_env`]).
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{USER}@{HOST}:{}/{db}", self.port)
    }

    /// The environment a MariaDB client needs for the password: `MYSQL_PWD`.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![("MYSQL_PWD", self.password.clone())]
    }

    /// Creates a new, empty database whose name starts with `prefix` (cleaned up
    /// to `[a-z0-9_]`) and is unique, and returns the name.
    pub fn unique_database(&self, prefix: &str) -> anyhow::Result<String> {
        let name = unique_name(prefix, 64)?;
        self.sql("", &format!("CREATE DATABASE `{name}`"))
            .with_context(|| format!("could not create the database {name}"))?;
        Ok(name)
    }

    /// Runs `sql` (one or more statements) in database `db` (none if empty) with
    /// `mariadb --batch --skip-column-names` as `ostler` over TCP, and returns what
    /// it printed: rows with tabs between columns, no headers.
    pub fn sql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut client = Command::new(&self.client);
        client
            .args(["--no-defaults", "--protocol=TCP", "-h", HOST, "-P"])
            .arg(self.port.to_string())
            .args([
                "-u",
                USER,
                "--batch",
                "--skip-column-names",
                "--connect-timeout=10",
            ])
            .env("MYSQL_PWD", &self.password);
        if !db.is_empty() {
            client.arg(format!("--database={db}"));
        }
        let what = format!(
            "running SQL in MariaDB database {db:?} on port {}",
            self.port
        );
        let output = run(&mut client, &what, Some(sql))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether the server process is still running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Stops the server (normal shutdown) and waits for it, killing it after 60 s.
    /// The dir stays until the value is dropped.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.process.stop().context("stopping MariaDB")
    }

    /// Creates `ostler`@`127.0.0.1` and `ostler`@`localhost` with every privilege,
    /// gives `root` the same password, and checks the password works over TCP.
    fn create_users(&self) -> anyhow::Result<()> {
        let pw = &self.password;
        let setup = format!(
            "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{pw}';\n\
             CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{pw}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION;\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost' WITH GRANT OPTION;\n\
             ALTER USER 'root'@'localhost' IDENTIFIED BY '{pw}';\n\
             FLUSH PRIVILEGES;\n"
        );
        // The SQL goes through stdin, so the password never shows in argv.
        let mut client = root_client(&self.client, &self.socket);
        run(
            &mut client,
            "creating the ostler users in MariaDB",
            Some(&setup),
        )?;
        self.sql("", "SELECT 1")
            .context("the new ostler user of MariaDB cannot log in over TCP")?;
        Ok(())
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // Nowhere to report a failure to; the watchdog and `ServerProcess`'s own
        // drop make sure the process is gone either way.
        let _ = self.process.stop();
    }
}

impl std::fmt::Debug for MariaDbServer {
    // By hand, to leave the password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDbServer")
            .field("url", &self.url(""))
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

/// Finds the server, the installer and the client: in `$OSTLER_TEST_MARIADB_BIN_DIR`,
/// `$PATH`, then the sbin dirs that a non-root `$PATH` often lacks. The MySQL-era
/// names are accepted where the MariaDB ones are missing.
fn find_programs() -> anyhow::Result<Programs> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        dirs.push(dir.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    let find = |names: &[&str]| -> anyhow::Result<PathBuf> {
        names
            .iter()
            .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                anyhow!(
                    "MariaDB is not installed: none of {names:?} found in ${BIN_DIR_ENV}, \
                     $PATH or the sbin dirs (run scripts/install-test-deps.sh)"
                )
            })
    };
    Ok(Programs {
        server: find(&["mariadbd", "mysqld"])?,
        install_db: find(&["mariadb-install-db", "mysql_install_db"])?,
        client: find(&["mariadb", "mysql"])?,
    })
}

/// Runs `mariadb-install-db` for `{dir}/data` with `{dir}/tmp` as its temp dir,
/// one install at a time in this process, up to three tries on a wiped data dir.
fn install_db(programs: &Programs, dir: &Path) -> anyhow::Result<()> {
    static INSTALL_LOCK: Mutex<()> = Mutex::new(());
    let data = dir.join("data");
    let tmp = dir.join("tmp");
    let lockdown = dir.join("lockdown.sql");
    std::fs::write(&lockdown, LOCKDOWN_SQL)
        .with_context(|| format!("could not write {}", lockdown.display()))?;

    // The lock guards no data, so one poisoned by a panicking thread is still good.
    let _turn = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for attempt in 1..=INSTALL_ATTEMPTS {
        for path in [&data, &tmp] {
            if path.exists() {
                std::fs::remove_dir_all(path)
                    .with_context(|| format!("could not wipe {}", path.display()))?;
            }
        }
        std::fs::create_dir(&tmp).with_context(|| format!("could not create {}", tmp.display()))?;
        let mut cmd = Command::new(&programs.install_db);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg("--skip-name-resolve")
            .arg(format!("--extra-file={}", lockdown.display()))
            .args(INNODB_SETTINGS)
            .env("TMPDIR", &tmp)
            .current_dir(dir);
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let what = format!("mariadb-install-db (attempt {attempt} of {INSTALL_ATTEMPTS})");
        match run_tracked(&mut cmd, &what, dir) {
            Ok(_) => return Ok(()),
            Err(err) => failures.push(err),
        }
    }
    // The command line is the same every time: quote it once, in full, with the
    // last attempt, and only the last words of the earlier ones.
    let mut summary = String::new();
    for (n, earlier) in failures[..failures.len() - 1].iter().enumerate() {
        let text = format!("{earlier:#}");
        let last_line = text.lines().rev().find(|l| !l.trim().is_empty());
        summary.push_str(&format!(
            "  attempt {}: {}\n",
            n + 1,
            last_line.unwrap_or("")
        ));
    }
    let last = failures.pop().map(|e| format!("{e:#}")).unwrap_or_default();
    bail!(
        "installing MariaDB's system tables failed {INSTALL_ATTEMPTS} times:\n\
         {summary}last attempt: {last}"
    )
}

/// Starts `mariadbd` on `{dir}/data`, listening on 127.0.0.1:`port` and
/// `{dir}/mysqld.sock`, logging to `{dir}/error.log`.
fn launch(programs: &Programs, dir: &Path, port: u16) -> anyhow::Result<ServerProcess> {
    let arg = |name: &str, path: &str| format!("--{name}={}", dir.join(path).display());
    let mut cmd = Command::new(&programs.server);
    cmd.arg("--no-defaults")
        .arg(arg("datadir", "data"))
        .arg(format!("--port={port}"))
        .arg(arg("socket", "mysqld.sock"))
        .arg(arg("pid-file", "mysqld.pid"))
        .arg(arg("tmpdir", "tmp"))
        .arg(arg("log-error", "error.log"))
        .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
        .args(["--performance-schema=OFF", "--max-connections=100"])
        .args(INNODB_SETTINGS)
        .env("TMPDIR", dir.join("tmp"))
        .current_dir(dir);
    if running_as_root() {
        cmd.arg("--user=root");
    }
    ServerProcess::spawn(
        "MariaDB",
        &mut cmd,
        dir,
        &dir.join("server.out"),
        &dir.join("error.log"),
        Signal::SIGTERM,
        Duration::from_secs(60),
    )
}

/// A client connected as `root` over the socket, reading SQL from stdin. Root has
/// no password until [`MariaDbServer::create_users`] gives it one.
fn root_client(client: &Path, socket: &Path) -> Command {
    let mut cmd = Command::new(client);
    cmd.args(["--no-defaults", "--protocol=socket"])
        .arg(format!("--socket={}", socket.display()))
        .args([
            "-u",
            "root",
            "--batch",
            "--skip-column-names",
            "--connect-timeout=10",
        ])
        .env_remove("MYSQL_PWD");
    cmd
}
