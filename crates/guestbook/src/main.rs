//! `guestbook`: the sample database-backed web service that ostler tends.
//!
//! ostler's demo and tests need a real service to back up, upgrade, restore, probe
//! and break on purpose: one that owns a database on any of the three engines, a
//! file store and an access log, migrates its schema, and shuts down cleanly. This
//! file is the command line; the service itself is in the modules below.
//!
//! Exit codes: 0 success (including a signalled shutdown), 1 failure (database
//! unreachable, port taken, refused migration), 2 bad usage (from clap).

mod accesslog;
mod db;
mod dburl;
mod http;
mod migrations;
mod pool;
mod queries;
mod uploads;

use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use crate::accesslog::AccessLog;
use crate::db::Db;
use crate::dburl::DbTarget;
use crate::migrations::LATEST;
use crate::pool::Pool;

/// The sample web service that ostler tends: a guestbook with tags and uploads.
///
/// Without a subcommand, migrates the database to the newest schema and serves the
/// HTTP API until SIGTERM or SIGINT. A database password is never an argument: put
/// it in PGPASSWORD (PostgreSQL) or MYSQL_PWD (MySQL), as the native tools read it.
#[derive(Parser, Debug)]
#[command(
    name = "guestbook",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// TCP port to listen on (0 picks a free one; the start-up line says which).
    #[arg(long, required = true)]
    port: Option<u16>,
    /// The database: a SQLite path, sqlite:PATH, postgres://USER@HOST:PORT/DB or
    /// mysql://USER@HOST:PORT/DB.
    #[arg(long, required = true, value_name = "DB")]
    db: Option<String>,
    /// Directory for uploaded files (created if missing); without it /uploads is off.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Append every request to FILE in Apache combined log format; SIGHUP reopens it.
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Migrate the database schema forward (never backward) and exit.
    Migrate(MigrateArgs),
    /// Print guestbook's version and the newest schema it knows.
    Version,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    /// The database, as for serving.
    #[arg(long, value_name = "DB")]
    db: String,
    /// The schema version to reach (default: the newest).
    #[arg(long, value_name = "N")]
    to: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Some(Command::Migrate(args)) => migrate(args),
        Some(Command::Version) => {
            println!("guestbook {} (schema {LATEST})", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("guestbook: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `GUESTBOOK_LOG` (default: warnings and errors).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GUESTBOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn parse_db(arg: &str) -> Result<DbTarget> {
    DbTarget::parse(arg, |key| std::env::var(key).ok())
}

/// Now, in UTC, as guestbook stores times: `2026-10-10T13:55:36Z`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn migrate(args: MigrateArgs) -> Result<()> {
    let target = parse_db(&args.db)?;
    let mut db = Db::connect(&target)?;
    let done = migrations::migrate(&mut db, args.to.unwrap_or(LATEST))
        .with_context(|| format!("cannot migrate {target}"))?;
    if done.from == done.to {
        println!("{target}: already at schema {}", done.to);
    } else {
        println!(
            "{target}: migrated from schema {} to {}",
            done.from, done.to
        );
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let (Some(port), Some(db)) = (args.port, args.db.as_deref()) else {
        anyhow::bail!("--port and --db are required to serve");
    };
    let target = parse_db(db)?;
    let addr = SocketAddr::new(args.bind, port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_server(addr, target, args.store, args.access_log));
    // A query still running on a blocking thread must not hold the exit hostage.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn run_server(
    addr: SocketAddr,
    target: DbTarget,
    store: Option<PathBuf>,
    access_log: Option<PathBuf>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen on {addr}: the port is already in use (is another guestbook running?)"
            ),
            _ => anyhow::Error::new(err).context(format!("cannot listen on {addr}")),
        })?;
    let local = listener.local_addr()?;
    // Before anything is announced, so a SIGTERM sent right after the start-up line
    // is a graceful shutdown and not the default "terminate now".
    let shutdown = shutdown_signal()?;

    if let Some(dir) = &store {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the store {}", dir.display()))?;
    }
    let access_log = access_log.as_deref().map(AccessLog::open).transpose()?;
    if let Some(log) = &access_log {
        reopen_on_sighup(std::sync::Arc::clone(log))?;
    }

    let pool = Pool::new(target);
    let schema = pool
        .run(|db| migrations::migrate(db, LATEST))
        .await
        .context("cannot bring the database schema up to date")?
        .to;
    let engine = pool.engine().name();
    let router = http::router(http::AppState { pool, store }, access_log);
    eprintln!("guestbook listening on {local} (db: {engine}, schema {schema})");
    http::serve(listener, router, shutdown).await?;
    tracing::info!("guestbook stopped");
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn reopen_on_sighup(log: std::sync::Arc<AccessLog>) -> Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Err(err) = log.reopen() {
                tracing::error!("{err:#}");
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serving_needs_port_and_db_but_subcommands_do_not() {
        assert!(Cli::try_parse_from(["guestbook", "--port", "1"]).is_err());
        assert!(Cli::try_parse_from(["guestbook", "--db", "x.db"]).is_err());
        let cli = Cli::try_parse_from(["guestbook", "--port", "0", "--db", "x.db"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.bind.to_string(), "127.0.0.1");
        let cli =
            Cli::try_parse_from(["guestbook", "migrate", "--db", "x.db", "--to", "1"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Migrate(MigrateArgs { to: Some(1), .. }))
        ));
        assert!(Cli::try_parse_from(["guestbook", "version"]).is_ok());
        assert!(Cli::try_parse_from(["guestbook", "--port", "1", "version"]).is_err());
    }
}
