//! `ostler jobs`: the scheduled jobs of `[[jobs]]` — each with its schedule, next
//! time, last result and runs per state; `run` one now (through the daemon when it is
//! up, else here), `history`, `next`, and `exec` (what a janitor action's run is).

use std::time::Duration;

use ostler_core::daemon::client::Client;
use ostler_core::jobs::launch::Launcher;
use ostler_core::jobs::runs::{self, Run, RunState};
use ostler_core::jobs::{self, action, perform};
use ostler_core::time::parse_user_time;
use ostler_core::{Error, Ostler, Result};
use tokio_util::sync::CancellationToken;

use crate::cli::Context;

/// Scheduled jobs: without a subcommand, each job with its schedule, next run, last
/// result and the count of its runs per state (waiting, running, failed, finished,
/// skipped).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
}

/// What to do with the jobs.
#[derive(clap::Subcommand, Debug)]
pub enum JobsCommand {
    /// Each job: schedule, next run, last result, runs per state (the default).
    List,
    /// Run a job now, and wait for its end: through the daemon when it runs (its
    /// scheduler starts it), else here. Exit 0 when it finished, 1 when it failed.
    Run(RunArgs),
    /// The runs of one job or all, newest first.
    History(HistoryArgs),
    /// The next times a job runs, strictly after a time (default now), one per line in
    /// RFC 3339 with the offset of the job's zone (`--json`: a list of them).
    Next(NextArgs),
    /// Carry out a janitor action (cleanup, sql, watch, probe) here, now: what a
    /// scheduled run of such a job executes. `--dry-run` lists what a cleanup would
    /// remove.
    #[command(hide = true)]
    Exec(ExecArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The job's `name`.
    pub name: String,
    /// Only queue it (with a daemon) and print the run's id.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Only this job's runs.
    pub name: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The job's `name`.
    pub name: String,
    #[arg(long)]
    pub dry_run: bool,
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
    match args.command.unwrap_or(JobsCommand::List) {
        JobsCommand::List => list(ctx),
        JobsCommand::Run(args) => run_now(ctx, args),
        JobsCommand::History(args) => history(ctx, args),
        JobsCommand::Next(args) => next(ctx, args),
        JobsCommand::Exec(args) => exec(ctx, args),
    }
}

fn list(ctx: &Context) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let jobs = jobs::overview(&ostler)?;
    if ctx.json {
        super::print_json(&jobs)?;
        return Ok(0);
    }
    if jobs.is_empty() {
        outln!("no [[jobs]] in {}", ostler.config.path.display());
        return Ok(0);
    }
    // Jobs run only under the daemon: say whether it is there to run them.
    let daemon = super::status::daemon_status(&ostler)?;
    match &daemon {
        Some(_) => outln!("{}", super::status::daemon_line(daemon.as_ref())),
        None => outln!("daemon: not running: these jobs run only under `ostler serve`"),
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let last = match (&job.running, &job.last) {
                (Some(r), _) => format!("running since {}", when(ctx, r.started_at)),
                (None, Some(r)) => format!(
                    "{} {}",
                    r.state.as_str(),
                    when(ctx, r.finished_at.or(r.started_at))
                ),
                (None, None) => "-".to_string(),
            };
            let c = &job.counts;
            vec![
                job.name.clone(),
                job.schedule.clone(),
                job.zone.clone(),
                match &job.instance {
                    Some(i) => format!("{} {i}", job.runs),
                    None => job.runs.clone(),
                },
                when(ctx, job.next),
                last,
                format!(
                    "{}/{}/{}/{}/{}",
                    c.waiting, c.running, c.failed, c.finished, c.skipped
                ),
            ]
        })
        .collect();
    crate::table::print(
        &[
            "JOB",
            "SCHEDULE",
            "ZONE",
            "RUNS",
            "NEXT",
            "LAST",
            "WAITING/RUNNING/FAILED/FINISHED/SKIPPED",
        ],
        &rows,
    );
    Ok(0)
}

fn when(ctx: &Context, t: Option<jiff::Timestamp>) -> String {
    t.map_or_else(|| "-".to_string(), |t| ctx.show_time(t))
}

fn run_now(ctx: &Context, args: RunArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    jobs::find(&ostler.config, &args.name)?;
    let run = match Client::connect(&ostler.state_dir())? {
        Some(client) => {
            let queued: Run = client.post(&format!("/v1/jobs/{}/run", args.name), &())?;
            if args.no_wait {
                return show_queued(ctx, &queued);
            }
            if !ctx.json {
                eprintln!(
                    "run {} queued with the daemon; waiting for its end",
                    queued.id
                );
            }
            wait_for_end(&ostler, queued.id)?
        }
        None => run_here(ctx, &ostler, &args.name)?,
    };
    show_end(ctx, &run)
}

fn show_queued(ctx: &Context, run: &Run) -> Result<i32> {
    if ctx.json {
        super::print_json(run)?;
    } else {
        outln!("{}", run.id);
    }
    Ok(0)
}

/// Polls the state for run `id`'s end (the daemon records it there).
fn wait_for_end(ostler: &Ostler, id: i64) -> Result<Run> {
    let state = ostler.state()?;
    loop {
        ostler.interrupt.check()?;
        let run = runs::get(&state, id)?
            .ok_or_else(|| Error::failed(format!("run {id} is no longer recorded")))?;
        if run.state.is_over() {
            return Ok(run);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No daemon: the run is recorded and carried out here, its output shown as it comes.
fn run_here(ctx: &Context, ostler: &Ostler, name: &str) -> Result<Run> {
    let job = jobs::find(&ostler.config, name)?.clone();
    let queued = jobs::queue(ostler, name)?;
    let launcher = Launcher::current(&ostler.config.path)?;
    let json = ctx.json;
    let performed = perform::perform(
        ostler,
        &launcher,
        &job,
        &queued,
        &CancellationToken::new(),
        |_| {},
        move |line| {
            if !json {
                eprintln!("{line}");
            }
        },
    )?;
    Ok(performed.run)
}

fn show_end(ctx: &Context, run: &Run) -> Result<i32> {
    let code = if run.state == RunState::Finished {
        0
    } else {
        1
    };
    if ctx.json {
        super::print_json(run)?;
        return Ok(code);
    }
    let took = match (run.started_at, run.finished_at) {
        (Some(a), Some(b)) => format!(" in {:.1} s", b.duration_since(a).as_secs_f64()),
        _ => String::new(),
    };
    outln!(
        "job {} run {}: {}{took}{}",
        run.job,
        run.id,
        run.state.as_str(),
        run.detail
            .as_deref()
            .map_or(String::new(), |d| format!(": {d}"))
    );
    Ok(code)
}

fn history(ctx: &Context, args: HistoryArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    if let Some(name) = &args.name {
        jobs::find(&ostler.config, name)?;
    }
    let runs = runs::history(&ostler.state()?, args.name.as_deref(), args.limit)?;
    if ctx.json {
        super::print_json(&runs)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let took = match (run.started_at, run.finished_at) {
                (Some(a), Some(b)) => format!("{:.1}s", b.duration_since(a).as_secs_f64()),
                _ => "-".to_string(),
            };
            let trigger = match (run.attempt, run.missed) {
                (a, _) if a > 1 => format!("{} #{a}", run.trigger.as_str()),
                (_, m) if m > 0 => format!("{} ({m})", run.trigger.as_str()),
                _ => run.trigger.as_str().to_string(),
            };
            vec![
                run.id.to_string(),
                run.job.clone(),
                trigger,
                when(ctx, run.scheduled_for),
                when(ctx, run.started_at),
                took,
                run.state.as_str().to_string(),
                run.exit_status
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                run.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::table::print(
        &[
            "RUN",
            "JOB",
            "TRIGGER",
            "SCHEDULED",
            "STARTED",
            "TOOK",
            "STATE",
            "EXIT",
            "DETAIL",
        ],
        &rows,
    );
    Ok(0)
}

fn exec(ctx: &Context, args: ExecArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let job = jobs::find(&ostler.config, &args.name)?;
    let done = action::run(&ostler, job, args.dry_run)?;
    if ctx.json {
        super::print_json(&done)?;
        return Ok(0);
    }
    match &done {
        action::Done::Cleanup(report) => {
            for r in &report.removed {
                outln!(
                    "{} {}",
                    if report.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    },
                    report.root.join(&r.path).display()
                );
            }
            for (path, why) in &report.problems {
                outln!("could not remove {}: {why}", path.display());
            }
            outln!(
                "{} {} entries ({}) below {}",
                if report.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                report.removed.len(),
                super::human_bytes(report.bytes),
                report.root.display()
            );
            if !report.problems.is_empty() {
                return Ok(1);
            }
        }
        action::Done::Sql { instance, outcome } => {
            outln!("{} rows affected on {instance}", outcome.rows_affected)
        }
        action::Done::Watch {
            observation,
            on_change,
        } => {
            if observation.first {
                outln!("first output kept; later runs compare with it");
            } else if observation.changed {
                outln!("output changed:");
                outln!("{}", observation.diff.as_deref().unwrap_or(""));
                match on_change {
                    Some(out) => outln!("on_change ran:\n{out}"),
                    None => outln!("journaled as watch-changed"),
                }
            } else {
                outln!("output unchanged");
            }
        }
        action::Done::Probe {
            instance,
            pid,
            health,
        } => outln!(
            "{instance} is running (pid {pid}){}",
            health
                .as_deref()
                .map_or(String::new(), |u| format!(", {u} answers"))
        ),
        action::Done::NamedProbe { line, .. } => outln!("{line}"),
    }
    Ok(0)
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
