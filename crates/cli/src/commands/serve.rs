use std::sync::Arc;
use std::time::Duration;

use ostler_core::daemon::{self, Drain, Drained};
use ostler_core::report::Silent;
use ostler_core::{Ostler, Result};

use crate::cli::Context;
use crate::logging::{self, LogArgs};
use crate::reporter::TracingReporter;

/// Run the daemon: start autostart instances and restart them when they crash.
/// SIGTERM or Ctrl-C drains (no new work; work in flight finishes or is interrupted
/// within --drain) and leaves instances running. Under systemd (Type=notify) it says
/// READY=1, STOPPING=1 and pings the watchdog: see docs/DAEMON.md.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How often to look at the instances.
    #[arg(long, default_value = "1s", value_parser = humantime_parse)]
    pub tick: Duration,
    /// On SIGTERM, how long work in flight may take to finish before it is interrupted.
    #[arg(long, default_value = "30s", value_parser = humantime_parse)]
    pub drain: Duration,
    #[command(flatten)]
    pub log: LogArgs,
    /// Do not serve: print the running daemon's status and exit 0 when it is up, 3
    /// when it is not (the LSB and `systemctl status` convention).
    #[arg(long)]
    pub status: bool,
}

fn humantime_parse(s: &str) -> std::result::Result<Duration, String> {
    ostler_core::config::parse_duration(s)
}

/// Exit status of `serve --status` when no daemon runs (LSB: "program is not running").
const NOT_RUNNING: i32 = 3;

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    if args.status {
        let ostler = ctx.ostler()?;
        let daemon = super::status::daemon_status(&ostler)?;
        if ctx.json {
            super::print_json(&daemon)?;
        } else {
            outln!("{}", super::status::daemon_line(daemon.as_ref()));
        }
        return Ok(if daemon.is_some() { 0 } else { NOT_RUNNING });
    }
    let config_path = ctx.config_path()?;
    // The lock first, then the log file: a second daemon, refused, must not write in
    // (or rotate) the first one's log. The config is read quietly for the state dir,
    // then again with the daemon's reporter, so its warnings reach the log.
    let quiet = Ostler::load(&config_path, Arc::new(Silent), ctx.interrupt.clone())?;
    let lock = daemon::daemon_lock(&quiet)?;
    let log_file = logging::init_serve(&args.log, &quiet.state_dir())?;
    let reporter = Arc::new(TracingReporter {
        verbose: ctx.verbose,
    });
    let ostler = Ostler::load(&config_path, reporter, ctx.interrupt.clone())?;
    tracing::info!(
        log_file = %log_file.as_deref().map_or("none".into(), |p| p.display().to_string()),
        "ostler serve: supervising {} (pid {})",
        ostler.config.service.name,
        std::process::id()
    );
    let options = daemon::Options {
        tick: args.tick,
        drain: Drain {
            bound: args.drain,
            ..Drain::default()
        },
    };
    let drained = daemon::serve(&lock, ostler, &config_path, options)?;
    tracing::info!(
        "ostler serve: stopped{}; instances left running",
        match drained {
            Drained::Finished => "",
            Drained::Interrupted => " (work in flight was interrupted)",
            Drained::Abandoned => " (work in flight did not stop in time)",
        }
    );
    Ok(0)
}
