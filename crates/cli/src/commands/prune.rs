use ostler_core::backup::procedures;
use ostler_core::Result;

use crate::cli::Context;

/// Apply [retention]: list what goes and why the rest stays, then free the space.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let out = procedures::prune(&ostler, args.dry_run)?;
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
    for id in &out.cleared {
        outln!("clear {id} (failed or interrupted)");
    }
    let dropped = out.decisions.iter().filter(|d| !d.keep).count();
    if out.dry_run {
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
