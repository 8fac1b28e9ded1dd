use std::time::Duration;

use ostler_core::{supervisor, Result};

use crate::cli::Context;

/// Run the daemon: start autostart instances and restart them when they crash.
/// SIGTERM or Ctrl-C stops supervision and leaves instances running.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How often to look at the instances.
    #[arg(long, default_value = "1s", value_parser = humantime_parse)]
    pub tick: Duration,
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
    supervisor::serve(&ostler, args.tick)?;
    eprintln!("ostler serve: stopped; instances left running");
    Ok(0)
}
