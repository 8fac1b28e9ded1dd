use ostler_core::backup::prune::{self, PruneOptions};
use ostler_core::Result;

use crate::cli::Context;

/// Apply [retention]: list what goes and why the rest stays, then free the space.
/// Refuses when the config has no [retention] section and no --keep-last is given.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what would be removed: print the decisions and the plan, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the newest N backups of each instance (replaces [retention]'s keep-last;
    /// its other rules still apply).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let options = PruneOptions {
        keep_last: args.keep_last,
    };
    let plan = prune::plan(&ostler, &options)?;
    let out = if args.dry_run {
        plan.dry_run()
    } else {
        prune::prune(&ostler, &plan)?
    };
    if ctx.json {
        super::print_json(&out)?;
        return Ok(0);
    }
    for d in &out.decisions {
        outln!(
            "{} {:<9} {:<10} {}  {}",
            if d.keep { "keep" } else { "drop" },
            d.id,
            d.instance,
            ctx.show_time(d.started_at),
            d.reasons.join("; ")
        );
    }
    for id in &out.finished {
        outln!("finished removing {id} (an interrupted prune had marked it)");
    }
    for id in &out.cleared {
        outln!("clear {id} (failed or interrupted)");
    }
    let dropped = out.decisions.iter().filter(|d| !d.keep).count();
    if out.dry_run {
        for s in &out.plan.steps {
            outln!("{}", crate::plans::step_line(&ostler, s));
        }
        outln!("dry run: would drop {dropped} backups; nothing changed");
    } else {
        outln!(
            "dropped {dropped} backups; removed {} chunks, freed {}",
            out.removed_chunks,
            super::human_bytes(out.freed_bytes)
        );
    }
    Ok(0)
}
