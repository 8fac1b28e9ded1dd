//! `ostler jobs`: the scheduled jobs of `[[jobs]]`. Only `next` so far; the scheduler
//! adds `list`, `run` and `history` beside it.

use ostler_core::jobs;
use ostler_core::time::parse_user_time;
use ostler_core::Result;

use crate::cli::Context;

/// Scheduled jobs.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// What to do with the jobs (`list`, `run`, `history` come with the scheduler).
#[derive(clap::Subcommand, Debug)]
pub enum JobsCommand {
    /// The next times a job runs, strictly after a time (default now), one per line in
    /// RFC 3339 with the offset of the job's zone (`--json`: a list of them).
    Next(NextArgs),
}

#[derive(clap::Args, Debug)]
pub struct NextArgs {
    /// The job's `name`.
    pub name: String,
    /// How many times to list.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Start after this time; it must say its zone: `2026-03-29 00:00 Europe/Zurich`,
    /// `2026-03-28T23:00Z`.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    match args.command {
        JobsCommand::Next(args) => next(ctx, args),
    }
}

fn next(ctx: &Context, args: NextArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let from = match &args.from {
        Some(text) => parse_user_time(text)?,
        None => ostler.clock.now(),
    };
    let runs = jobs::next_runs(&ostler.config, &args.name, from, args.count)?;
    let shown: Vec<String> = runs
        .times
        .iter()
        .map(|t| {
            t.to_zoned(runs.zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect();
    if ctx.json {
        super::print_json(&shown)?;
    } else {
        for line in &shown {
            outln!("{line}");
        }
    }
    Ok(0)
}
