use ostler_core::backup::procedures::{self, Pick};
use ostler_core::{time, Error, Result};

use crate::cli::Context;
use crate::commands::manage::Guard;

/// Restore an instance from a backup: stops it, takes a safety backup, restores the
/// database and stores (removing orphan files), and starts it again.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance (or role) whose backups to use.
    pub instance: String,
    /// Backup id (or unique prefix); default the newest good one.
    #[arg(long, conflicts_with = "at")]
    pub from: Option<String>,
    /// The newest backup at or before TIME, which must carry a zone:
    /// `2016-04-06 17:00 -04:00` or `2016-04-06 17:00 America/New_York`.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Restore into this other instance instead (same database engine).
    #[arg(long, value_name = "OTHER")]
    pub into: Option<String>,
    /// Confirms a restore over the production instance.
    #[arg(long)]
    pub yes_really_production: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let instance = ostler.config.resolve(&args.instance)?;
    let pick = match (&args.from, &args.at) {
        (Some(id), _) => Pick::Id(id.clone()),
        (None, Some(t)) => Pick::At(time::parse_user_time(t)?),
        (None, None) => Pick::Latest,
    };
    let m = procedures::pick(&ostler, &instance, &pick)?;
    if m.instance != instance {
        return Err(Error::user(format!(
            "backup {} belongs to instance `{}`, not `{instance}`",
            m.id, m.instance
        ))
        .with_hint(format!("to put it into {instance}: ostler restore {} --from {} --into {instance}", m.instance, m.id)));
    }
    let target = args.into.clone().unwrap_or(instance);
    if !ctx.json {
        eprintln!("restoring backup {} of {} (taken {}) into {target}", m.id, m.instance, ctx.show_time(m.started_at));
    }
    let outcome = procedures::restore(&ostler, &m, &target, &Guard { yes: args.yes_really_production }, None)?;
    if ctx.json {
        super::print_json(&outcome)?;
    } else {
        for s in &outcome.stores {
            println!(
                "store {}: {} files restored, {} orphans removed{}",
                s.name,
                s.files,
                s.orphans_removed.len(),
                if s.orphans_removed.is_empty() { String::new() } else { format!(": {}", s.orphans_removed.join(", ")) }
            );
        }
        if let Some(s) = &outcome.safety_backup {
            println!("safety backup of what was there before: {s}");
        }
        match &outcome.started {
            Some(msg) => println!("{msg}"),
            None => println!("{target} restored from {} (it was not running; not started)", outcome.backup),
        }
    }
    Ok(0)
}
