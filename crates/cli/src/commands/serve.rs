use std::time::Duration;

use ostler_core::daemon::{self, Drain, Drained};
use ostler_core::Result;

use crate::cli::Context;

/// Run the daemon: start autostart instances and restart them when they crash.
/// SIGTERM or Ctrl-C drains (no new work; work in flight finishes or is interrupted
/// within --drain) and leaves instances running.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How often to look at the instances.
    #[arg(long, default_value = "1s", value_parser = humantime_parse)]
    pub tick: Duration,
    /// On SIGTERM, how long work in flight may take to finish before it is interrupted.
    #[arg(long, default_value = "30s", value_parser = humantime_parse)]
    pub drain: Duration,
}

fn humantime_parse(s: &str) -> std::result::Result<Duration, String> {
    ostler_core::config::parse_duration(s)
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    eprintln!(
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
    let drained = daemon::serve(ostler, &ctx.config_path()?, options)?;
    eprintln!(
        "ostler serve: stopped{}; instances left running",
        match drained {
            Drained::Finished => "",
            Drained::Interrupted => " (work in flight was interrupted)",
            Drained::Abandoned => " (work in flight did not stop in time)",
        }
    );
    Ok(0)
}
