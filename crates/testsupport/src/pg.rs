//! A throwaway PostgreSQL server: `initdb` into a temp dir, `postgres` on a free
//! port of 127.0.0.1, a superuser `ostler` with a random password, and password
//! (SCRAM) authentication on every connection, so a test that forgets the password
//! fails the way production would.
//!
//! PostgreSQL refuses to run as root, and CI runs the tests as root, so there the
//! server runs as the `postgres` system user (or `nobody`), in a dir given to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::Signal;

use crate::command::{run, run_tracked};
use crate::port::try_free_port;
use crate::process::{
    lost_port_race, running_as_root, wait_until_ready, Account, ServerDir, ServerProcess,
};
use crate::secret::{random_hex, unique_name};

const USER: &str = "ostler";
const HOST: &str = "127.0.0.1";
/// Where Debian and Ubuntu install the server binaries, one dir per major version.
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";
/// Overrides the search for the server binaries (a dir holding initdb, postgres
/// and psql), for machines that keep them elsewhere.
const BIN_DIR_ENV: &str = "OSTLER_TEST_PG_BIN_DIR";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;

/// A PostgreSQL server of its own for a test (or, through [`PgServer::shared`], for
/// a whole test process).
///
/// Dropping it stops the server (fast shutdown) and removes its dir.
pub struct PgServer {
    port: u16,
    password: String,
    bin_dir: PathBuf,
    process: ServerProcess,
    // Dropped after `process`, so the dir goes only once the server has stopped.
    dir: ServerDir,
}

impl PgServer {
    /// Initializes and starts a new server, and waits until it accepts the
    /// `ostler` user's password over TCP (at most a minute).
    pub fn start() -> anyhow::Result<PgServer> {
        let bin_dir = find_bin_dir()?;
        let account = if running_as_root() {
            Some(Account::first_existing(&["postgres", "nobody"])?)
        } else {
            None
        };
        let dir = ServerDir::create("ostler-pg-", account.as_ref(), "INT")?;
        let password = random_hex(16)?;
        init_cluster(&bin_dir, dir.path(), account.as_ref(), &password)?;

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = try_free_port()?;
            let process = launch(&bin_dir, dir.path(), account.as_ref(), port)?;
            let ready = wait_until_ready(&process, READY_TIMEOUT, || {
                let mut probe = psql(&bin_dir, port, &password, "postgres");
                run(
                    &mut probe,
                    "connecting to the new PostgreSQL server",
                    Some("SELECT 1"),
                )
                .map(drop)
            });
            match ready {
                Ok(()) => {
                    return Ok(PgServer {
                        port,
                        password,
                        bin_dir,
                        process,
                        dir,
                    })
                }
                Err(err) => {
                    drop(process);
                    let log = dir.path().join("server.log");
                    if attempt < PORT_ATTEMPTS && lost_port_race(&log) {
                        // Someone took the port first; the log restarts empty.
                        let _ = std::fs::write(&log, "");
                        continue;
                    }
                    return Err(err.context(format!(
                        "starting PostgreSQL in {} failed",
                        dir.path().display()
                    )));
                }
            }
        }
    }

    /// The one server of this test process, started on first use.
    ///
    /// It is never dropped; a watchdog process stops it and removes its dir when
    /// the test process exits. Stopping it stops it for every test in the process.
    ///
    /// # Panics
    /// Panics, with the reason, if the server cannot start (every caller then sees
    /// the same reason). Use [`PgServer::try_shared`] to handle that instead.
    pub fn shared() -> &'static PgServer {
        Self::try_shared().unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// Like [`PgServer::shared`], but returns why the server could not start.
    pub fn try_shared() -> anyhow::Result<&'static PgServer> {
        static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| PgServer::start().map_err(|err| format!("{err:#}")))
            .as_ref()
            .map_err(|err| anyhow!("the shared PostgreSQL server could not start: {err}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `127.0.0.1`: the server listens there only.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The superuser role the tests connect as: `ostler`.
    pub fn user(&self) -> &str {
        USER
    }

    /// The `ostler` role's password, random per server. Pass it in `PGPASSWORD`.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The dir holding this server's binaries (`psql`, `pg_dump`, `pg_restore` ...),
    /// so that tests use client tools of the same version as the server.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server's temp dir (data dir, socket, log); gone after drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The dir holding the server's Unix socket (also its temp dir).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the `postgres` process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `postgres://ostler@127.0.0.1:PORT/DB`, without the password, which travels
    /// in `PGPASSWORD` (see [`PgServer::client_env`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@{HOST}:{}/{db}", self.port)
    }

    /// The environment a PostgreSQL client needs to reach this server as `ostler`:
    /// `PGHOST`, `PGPORT`, `PGUSER` and `PGPASSWORD`.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", HOST.to_owned()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", USER.to_owned()),
            ("PGPASSWORD", self.password.clone()),
        ]
    }

    /// Creates a new, empty database whose name starts with `prefix` (cleaned up
    /// to `[a-z0-9_]`) and is unique, and returns the name.
    pub fn unique_database(&self, prefix: &str) -> anyhow::Result<String> {
        let name = unique_name(prefix, 63)?;
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .with_context(|| format!("could not create the database {name}"))?;
        Ok(name)
    }

    /// Runs `sql` (one or more statements) in database `db` with
    /// `psql -X -A -t -q -v ON_ERROR_STOP=1` as `ostler` over TCP, and returns what
    /// it printed: unaligned rows, `|` between columns, no headers.
    pub fn sql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut psql = psql(&self.bin_dir, self.port, &self.password, db);
        let what = format!(
            "running SQL in PostgreSQL database {db:?} on port {}",
            self.port
        );
        let output = run(&mut psql, &what, Some(sql))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether the server process is still running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Stops the server (fast shutdown: running sessions are cancelled) and waits
    /// for it, killing it after 30 s. The dir stays until the value is dropped.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.process.stop().context("stopping PostgreSQL")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Nowhere to report a failure to; the watchdog and `ServerProcess`'s own
        // drop make sure the process is gone either way.
        let _ = self.process.stop();
    }
}

impl std::fmt::Debug for PgServer {
    // By hand, to leave the password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("url", &self.url(""))
            .field("dir", &self.dir.path())
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

/// The dir of the newest PostgreSQL server binaries: `$OSTLER_TEST_PG_BIN_DIR`, or
/// the highest version under `/usr/lib/postgresql/*/bin` (not the `/usr/bin`
/// wrappers, which pick a version by their own rules).
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").is_file() {
            bail!("${BIN_DIR_ENV} is {} but it holds no initdb", dir.display());
        }
        return Ok(dir);
    }
    let entries = std::fs::read_dir(DEBIAN_LIB_DIR).with_context(|| {
        format!(
            "PostgreSQL server binaries not found: could not read {DEBIAN_LIB_DIR} (run \
             scripts/install-test-deps.sh, or set ${BIN_DIR_ENV})"
        )
    })?;
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(version) = name
            .split('.')
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        let complete = ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| bin.join(b).is_file());
        if complete && !matches!(&best, Some((v, _)) if *v >= version) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "PostgreSQL server binaries not found: no {DEBIAN_LIB_DIR}/*/bin holds initdb, \
             postgres and psql (run scripts/install-test-deps.sh, or set ${BIN_DIR_ENV})"
        )
    })
}

/// Runs `initdb` for the cluster in `{dir}/data`, with superuser `ostler` and SCRAM
/// password authentication for every connection, local and TCP.
fn init_cluster(
    bin_dir: &Path,
    dir: &Path,
    account: Option<&Account>,
    password: &str,
) -> anyhow::Result<()> {
    // initdb reads the password from a file, so it never shows in argv.
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n"))
        .with_context(|| format!("could not write {}", pwfile.display()))?;
    if let Some(account) = account {
        account.chown(&pwfile)?;
    }
    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .arg("--pgdata")
        .arg(dir.join("data"))
        .args([
            "--username",
            USER,
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
        ])
        .args(["--locale", "C", "--no-sync"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .current_dir(dir)
        .env("TZ", "UTC");
    if let Some(account) = account {
        account.apply(&mut initdb);
    }
    let result = run_tracked(
        &mut initdb,
        "initializing a PostgreSQL cluster (initdb)",
        dir,
    );
    let _ = std::fs::remove_file(&pwfile);
    result.map(drop)
}

/// Starts `postgres` on the cluster in `{dir}/data`, listening on 127.0.0.1:`port`
/// and a socket in `dir`, tuned for throwaway speed (no fsync).
fn launch(
    bin_dir: &Path,
    dir: &Path,
    account: Option<&Account>,
    port: u16,
) -> anyhow::Result<ServerProcess> {
    let mut postgres = Command::new(bin_dir.join("postgres"));
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string());
    let settings = [
        format!("listen_addresses={HOST}"),
        format!("unix_socket_directories={}", dir.display()),
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "shared_buffers=16MB".to_owned(),
        "max_connections=50".to_owned(),
        "logging_collector=off".to_owned(),
    ];
    for setting in settings {
        postgres.arg("-c").arg(setting);
    }
    postgres.current_dir(dir);
    if let Some(account) = account {
        account.apply(&mut postgres);
    }
    let log = dir.join("server.log");
    ServerProcess::spawn(
        "PostgreSQL",
        &mut postgres,
        dir,
        &log,
        &log,
        Signal::SIGINT,
        Duration::from_secs(30),
    )
}

/// A `psql` command for database `db` as `ostler` over TCP, with the password in
/// its environment, reading SQL from stdin.
fn psql(bin_dir: &Path, port: u16, password: &str, db: &str) -> Command {
    let mut command = Command::new(bin_dir.join("psql"));
    command
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            HOST,
            "-p",
            &port.to_string(),
            "-U",
            USER,
            "-d",
            db,
            "-f",
            "-",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .env_remove("PGOPTIONS");
    command
}
