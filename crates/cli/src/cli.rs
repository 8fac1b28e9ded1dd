//! Command-line parsing and dispatch, error rendering and exit codes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ostler_core::report::Interrupt;
use ostler_core::{Error, Ostler};

use crate::commands;
use crate::output::{StdoutClosed, StdoutFailed};
use crate::reporter::TerminalReporter;

/// ostler tends a database-backed web service: builds, starts, stops and supervises its
/// instances, and keeps their data safe.
///
/// Chains of instance commands work like bin/manage: `ostler stop,print,build,start
/// production` (abbreviations allowed: `ostler sto,pri production`). Commands:
/// build, start, stop, restart, rebuild, print, echo, processes, configure, log-nuke,
/// db-nuke.
#[derive(Parser, Debug)]
#[command(name = "ostler", version, propagate_version = true)]
pub struct Cli {
    /// The config file (default: $OSTLER_CONFIG, else ./ostler.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Echo every external command as a `!!! CMD:` line.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Machine-readable output on stdout; no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show times in this zone (IANA name like America/New_York, or UTC).
    #[arg(long, global = true, value_name = "ZONE")]
    pub tz: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show each instance: state, pid, port, roles, lock.
    Status(commands::status::Args),
    /// Show or move roles (production, old, new...).
    Role(commands::role::Args),
    /// Check or show the configuration.
    Config(commands::config::Args),
    /// Show the journal of operations.
    Journal(commands::journal::Args),
    /// Run the daemon: supervise autostart instances.
    Serve(commands::serve::Args),
    /// Ask the running daemon to re-read the config (as SIGHUP); exit 3 if none runs.
    Reload(commands::reload::Args),
    /// Create the backup repository (or adopt the one there).
    Init(commands::init::Args),
    /// Back up an instance's database and stores.
    Backup(commands::backup::Args),
    /// List backups.
    Backups(commands::backups::Args),
    /// Verify backups (hashes), or restore-test one.
    Verify(commands::verify::Args),
    /// Restore an instance from a backup.
    Restore(commands::restore::Args),
    /// Mirror one instance onto another (with scrub SQL).
    Mirror(commands::mirror::Args),
    /// Finish or undo restores that were killed, and start what was running.
    Recover(commands::recover::Args),
    /// Write a backup as native files, restorable without ostler.
    Export(commands::export::Args),
    /// Find when rows vanished: matching rows in every backup, and the verdict.
    Find(commands::find::Args),
    /// Rows added, removed, changed between two backups (or a backup and live).
    Diff(commands::diff::Args),
    /// Access logs: sharp changes in what a URL answers, timelines; and log rotation.
    Logs(commands::logs::Args),
    /// Send backups to the off-host copies.
    Copy(commands::copy::Args),
    /// Apply retention and free space.
    Prune(commands::prune::Args),
    /// Scheduled jobs: when they run next.
    Jobs(commands::jobs::Args),
    /// The daemon's proxy: its backend and requests in flight; `switch` it.
    Proxy(commands::proxy::Args),
    /// Replace the instance behind a role with another, through the proxy.
    Upgrade(commands::upgrade::UpgradeArgs),
    /// Switch a role back to the instance `old` names.
    Rollback(commands::upgrade::RollbackArgs),
    /// The proxy's maintenance page: `on`, `off`, or whether it is on.
    Maintenance(commands::maintenance::Args),
    /// Alerts: open ones, who was told, undelivered notices; `ack` one.
    Alerts(commands::alerts::Args),
    /// Hold back alert notices about an instance, probe or job for planned work.
    Silence(commands::alerts::SilenceArgs),
    /// Apply an instance's pending schema migrations.
    Migrate(commands::migrate::MigrateArgs),
    /// An instance's schema migrations: applied, pending, changed.
    Migrations(commands::migrate::MigrationsArgs),
    /// Run probes once (`--nagios`: plugin lines and exit code).
    Probe(commands::probe::Args),
    /// Make a working demo of the bundled sample service and start it.
    Demo(commands::demo::Args),
    /// Instance command chains: `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]`.
    #[command(external_subcommand)]
    Manage(Vec<OsString>),
}

/// Everything a command needs from the command line.
pub struct Context {
    pub cli_config: Option<PathBuf>,
    pub verbose: bool,
    pub json: bool,
    pub tz: jiff::tz::TimeZone,
    pub interrupt: Interrupt,
}

impl Context {
    pub fn config_path(&self) -> ostler_core::Result<PathBuf> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
        ostler_core::config::locate(
            self.cli_config.as_deref(),
            std::env::var_os("OSTLER_CONFIG").as_deref(),
            &cwd,
        )
    }

    pub fn reporter(&self) -> Arc<TerminalReporter> {
        Arc::new(TerminalReporter::new(self.verbose, self.json))
    }

    pub fn ostler(&self) -> ostler_core::Result<Ostler> {
        Ostler::load(
            &self.config_path()?,
            self.reporter(),
            self.interrupt.clone(),
        )
    }

    /// A time as people read it: in the display zone, with its offset.
    pub fn show_time(&self, t: jiff::Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    }
}

pub fn main() -> i32 {
    // SIGPIPE stays ignored (Rust's default): a closed stdout is a quiet exit through
    // `output`, and a dead internal pipe is an error with its real cause, never a
    // silent death by signal.
    let cli = Cli::parse();
    // The daemon sets up its logging from its own arguments (`serve --log-*`).
    if !matches!(cli.command, Command::Serve(_)) {
        crate::logging::init_command();
    }
    let interrupt = Interrupt::new();
    // The daemon handles its own signals: SIGTERM drains it rather than interrupting
    // what it runs at once.
    if !matches!(cli.command, Command::Serve(_)) {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, interrupt.flag());
        }
    }
    let tz = match &cli.tz {
        None => jiff::tz::TimeZone::system(),
        Some(name) => match jiff::tz::TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                eprintln!("error: --tz {name}: {e}");
                return 2;
            }
        },
    };
    let ctx = Context {
        cli_config: cli.config.clone(),
        verbose: cli.verbose,
        json: cli.json,
        tz,
        interrupt,
    };
    // A write to a closed stdout unwinds to here (see `output`).
    let dispatched =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&ctx, cli.command)));
    match dispatched {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report_error(&e),
        Err(payload) => match payload.downcast::<StdoutClosed>() {
            Ok(_) => 0,
            Err(payload) => match payload.downcast::<StdoutFailed>() {
                Ok(failed) => report_error(&Error::io("writing to stdout", failed.0)),
                Err(payload) => std::panic::resume_unwind(payload),
            },
        },
    }
}

fn dispatch(ctx: &Context, command: Command) -> ostler_core::Result<i32> {
    match command {
        Command::Status(args) => commands::status::run(ctx, args),
        Command::Role(args) => commands::role::run(ctx, args),
        Command::Config(args) => commands::config::run(ctx, args),
        Command::Journal(args) => commands::journal::run(ctx, args),
        Command::Serve(args) => commands::serve::run(ctx, args),
        Command::Reload(args) => commands::reload::run(ctx, args),
        Command::Demo(args) => commands::demo::run(ctx, args),
        Command::Jobs(args) => commands::jobs::run(ctx, args),
        Command::Migrate(args) => commands::migrate::migrate(ctx, args),
        Command::Migrations(args) => commands::migrate::list(ctx, args),
        Command::Maintenance(args) => commands::maintenance::run(ctx, args),
        Command::Proxy(args) => commands::proxy::run(ctx, args),
        Command::Upgrade(args) => commands::upgrade::run_upgrade(ctx, args),
        Command::Rollback(args) => commands::upgrade::run_rollback(ctx, args),
        Command::Alerts(args) => commands::alerts::run(ctx, args),
        Command::Silence(args) => commands::alerts::silence(ctx, args),
        Command::Probe(args) => commands::probe::run(ctx, args),
        Command::Init(args) => commands::init::run(ctx, args),
        Command::Backup(args) => commands::backup::run(ctx, args),
        Command::Backups(args) => commands::backups::run(ctx, args),
        Command::Verify(args) => commands::verify::run(ctx, args),
        Command::Restore(args) => commands::restore::run(ctx, args),
        Command::Mirror(args) => commands::mirror::run(ctx, args),
        Command::Recover(args) => commands::recover::run(ctx, args),
        Command::Export(args) => commands::export::run(ctx, args),
        Command::Prune(args) => commands::prune::run(ctx, args),
        Command::Copy(args) => commands::copy::run(ctx, args),
        Command::Find(args) => commands::find::run(ctx, args),
        Command::Logs(args) => commands::logs::run(ctx, args),
        Command::Diff(args) => commands::diff::run(ctx, args),
        Command::Manage(args) => commands::manage::run(ctx, args),
    }
}

/// Prints an error with its cause chain and hint; returns the exit status for its kind.
pub fn report_error(e: &Error) -> i32 {
    eprint!("{}", render_error(e));
    e.kind().exit_code()
}

/// The text [`report_error`] prints: the error, each cause once (every error says only
/// its own part and hands the rest to `source()`), and the hint.
pub fn render_error(e: &Error) -> String {
    use std::fmt::Write;
    let mut out = format!("error: {e}\n");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = writeln!(out, "  caused by: {s}");
        source = s.source();
    }
    if let Some(h) = e.hint() {
        let _ = writeln!(out, "hint: {h}");
    }
    out
}

#[cfg(test)]
mod tests {
    /// Regression: `Error::Io` said its OS error in its message and again as its cause.
    #[test]
    fn an_os_error_is_printed_once() {
        let os = std::io::Error::from_raw_os_error(libc::EACCES);
        let text = super::render_error(&ostler_core::Error::io("reading /x", os));
        assert_eq!(
            text,
            "error: reading /x\n  caused by: Permission denied (os error 13)\n"
        );
    }

    /// Regression: the causes of an `Error::Other` were printed by the chain loop and
    /// again by anyhow's own chain.
    #[test]
    fn the_causes_of_an_other_error_are_printed_once() {
        let os = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = ostler_core::Error::Other(anyhow::Error::new(os).context("reading /x"));
        assert_eq!(
            super::render_error(&e),
            "error: reading /x\n  caused by: Permission denied (os error 13)\n"
        );
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
