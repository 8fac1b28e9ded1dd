use std::path::PathBuf;

use ostler_core::backup::procedures;
use ostler_core::{Error, Result};

use crate::cli::Context;
use crate::commands::manage::Guard;
use crate::plans;

/// Mirror SRC onto DST (CRDS's mirror_server): DST gets SRC's latest backup (or a
/// fresh one), stays stopped while inconsistent, runs the scrub SQL, then starts.
#[derive(clap::Args, Debug)]
pub struct Args {
    pub src: String,
    pub dst: String,
    /// Take a fresh backup of SRC first instead of using its latest.
    #[arg(long)]
    pub fresh: bool,
    /// SQL to run on DST before it starts (e.g. anonymise e-mail addresses).
    #[arg(long, value_name = "FILE")]
    pub scrub: Option<PathBuf>,
    /// Confirms mirroring onto the production instance (almost certainly a mistake).
    #[arg(long)]
    pub yes_really_production: bool,
    /// Mirror without first taking a safety backup of DST.
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Print the plan (each step, what proves it, how it is undone) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let scrub = match &args.scrub {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Error::user(format!("--scrub {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let plan = procedures::plan_mirror(
        &ostler,
        &args.src,
        &args.dst,
        args.fresh,
        procedures::RestoreOptions {
            scrub,
            no_safety_backup: args.no_safety_backup,
        },
    )?;
    if args.dry_run {
        plans::print_dry_run(&ostler, &plan.plan, ctx.json)?;
        return Ok(0);
    }
    let outcome = procedures::mirror(
        &ostler,
        &plan,
        &Guard {
            yes: args.yes_really_production,
        },
    )?;
    if ctx.json {
        super::print_json(&outcome)?;
    } else {
        super::restore::print_safety_backup(&outcome);
        outln!(
            "mirrored backup {} onto {}{}",
            outcome.backup,
            outcome.instance,
            outcome
                .started
                .as_ref()
                .map(|s| format!("; {}", plans::started(&outcome.instance, s)))
                .unwrap_or_default()
        );
    }
    Ok(0)
}
