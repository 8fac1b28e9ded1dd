use ostler_core::backup::recover::{self, Phase, RecoverOutcome, Settled};
use ostler_core::Result;

use crate::cli::Context;

/// Finish or undo restores that were killed (SIGKILL, a crash, a power cut): one
/// killed before its backup was wholly in place is undone, one killed while swapping
/// it in is finished, and the instance is started again if it was running. Leaves no
/// side databases or `*.ostler-restore` files behind.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance (or role) to recover; default every instance.
    pub instance: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let outcomes = match &args.instance {
        Some(name) => recover::recover(&ostler, name)?.into_iter().collect(),
        None => recover::recover_all(&ostler)?,
    };
    if ctx.json {
        super::print_json(&outcomes)?;
        return Ok(0);
    }
    if outcomes.is_empty() {
        outln!("nothing to recover: no unfinished restore");
    }
    for o in &outcomes {
        outln!("{}", describe(o));
        if let Some(started) = &o.started {
            outln!("{}", crate::plans::started(&o.instance, started));
        }
    }
    Ok(0)
}

/// One line on a settled restore.
pub fn describe(o: &RecoverOutcome) -> String {
    let phase = match o.phase {
        Phase::Building => "loading the backup beside the live data",
        Phase::Swapping => "swapping the restored data in",
        Phase::Swapped => "removing the data it replaced",
    };
    match o.settled {
        Settled::RolledBack => format!(
            "{}: the restore of backup {} was interrupted while {phase}; undone, the instance is as it was before",
            o.instance, o.backup
        ),
        Settled::Finished => format!(
            "{}: the restore of backup {} was interrupted while {phase}; finished, the instance holds the backup",
            o.instance, o.backup
        ),
    }
}
