use ostler_core::backup::procedures::{self, Pick, RestoreOptions, RestoreOutcome, SafetyBackup};
use ostler_core::{time, Error, Result};

use ostler_core::forensics::partial;

use crate::cli::Context;
use crate::commands::manage::Guard;
use crate::plans;

/// Restore an instance from a backup: stops it, takes a safety backup, loads the
/// database and stores beside the live ones and swaps them in only when all is in
/// place (removing orphan files), and starts it again. On any failure the instance is
/// left as it was; a restore that was killed is finished or undone by the next
/// restore or by `ostler recover`.
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
    /// Confirms a restore over the production instance (or one sharing its database),
    /// whole or partial.
    #[arg(long)]
    pub yes_really_production: bool,
    /// Restore without first taking a safety backup of what is there (when taking one
    /// fails and what is there is not worth keeping).
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Partial restore: put back only rows of this table (with --where).
    #[arg(long, requires = "predicate")]
    pub table: Option<String>,
    /// Partial restore: the rows to put back, as an SQL predicate (evaluated by SQLite).
    #[arg(long = "where", value_name = "PREDICATE", requires = "table")]
    pub predicate: Option<String>,
    /// Partial restore: also rows referencing them by foreign key that are missing
    /// live, and the rows those need in turn.
    #[arg(long, requires = "table")]
    pub with_references: bool,
    /// Print the plan (each step, what proves it, how it is undone; a partial
    /// restore's statements too) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Partial restore: leave rows that exist live with the same key, restore the rest.
    #[arg(long, requires = "table")]
    pub skip_conflicts: bool,
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
        .with_hint(format!(
            "to put it into {instance}: ostler restore {} --from {} --into {instance}",
            m.instance, m.id
        )));
    }
    let target = args.into.clone().unwrap_or(instance);
    if let (Some(table), Some(pred)) = (&args.table, &args.predicate) {
        return partial(ctx, &ostler, &m, &target, table, pred, &args);
    }
    let plan = procedures::plan_restore(
        &ostler,
        &m,
        &target,
        RestoreOptions {
            scrub: None,
            no_safety_backup: args.no_safety_backup,
        },
    )?;
    if args.dry_run {
        if !ctx.json {
            outln!(
                "backup {} of {} (taken {})",
                m.id,
                m.instance,
                ctx.show_time(m.started_at)
            );
        }
        plans::print_dry_run(&ostler, &plan.plan, ctx.json)?;
        return Ok(0);
    }
    if !ctx.json {
        eprintln!(
            "restoring backup {} of {} (taken {}) into {target}",
            m.id,
            m.instance,
            ctx.show_time(m.started_at)
        );
    }
    let outcome = procedures::restore(
        &ostler,
        &plan,
        &Guard {
            yes: args.yes_really_production,
        },
    )?;
    if ctx.json {
        super::print_json(&outcome)?;
    } else {
        if let Some(r) = &outcome.recovered {
            outln!("{}", super::recover::describe(r));
        }
        for s in &outcome.stores {
            outln!(
                "store {}: {} files restored, {} orphans removed{}",
                s.name,
                s.files,
                s.orphans_removed.len(),
                if s.orphans_removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.orphans_removed.join(", "))
                }
            );
        }
        print_safety_backup(&outcome);
        match &outcome.started {
            Some(started) => outln!("{}", plans::started(&outcome.instance, started)),
            None => outln!(
                "{target} restored from {} (it was not running; not started)",
                outcome.backup
            ),
        }
    }
    Ok(0)
}

/// Says what was kept before a restore or mirror replaced the instance.
pub fn print_safety_backup(outcome: &RestoreOutcome) {
    match &outcome.safety_backup {
        SafetyBackup::Taken { id } => outln!("safety backup of what was there before: {id}"),
        SafetyBackup::DatabaseMissing { stores_backup } => outln!(
            "no safety backup of the database: it did not exist{}",
            stores_backup
                .as_ref()
                .map(|id| format!(" (the store files were kept in backup {id})"))
                .unwrap_or_default()
        ),
        SafetyBackup::NothingToKeep => {
            outln!(
                "no safety backup: {} held nothing to keep",
                outcome.instance
            )
        }
        SafetyBackup::Declined => outln!("no safety backup (--no-safety-backup)"),
    }
}

#[allow(clippy::too_many_arguments)]
fn partial(
    ctx: &Context,
    ostler: &ostler_core::Ostler,
    m: &ostler_core::backup::manifest::Manifest,
    target: &str,
    table: &str,
    predicate: &str,
    args: &Args,
) -> Result<i32> {
    let planned = partial::plan(
        ostler,
        m,
        target,
        table,
        predicate,
        args.with_references,
        args.skip_conflicts,
    )?;
    let out = if args.dry_run {
        planned.outcome
    } else {
        partial::apply(
            ostler,
            planned,
            &Guard {
                yes: args.yes_really_production,
            },
        )?
    };
    if ctx.json {
        super::print_json(&out)?;
        return Ok(0);
    }
    if args.dry_run {
        outln!(
            "-- dry run: rows from backup {} ({}) that {} lacks",
            out.backup,
            ctx.show_time(m.started_at),
            out.instance
        );
        for s in &out.statements {
            outln!("{s}");
        }
        for s in &out.plan.steps {
            outln!("-- {}", plans::step_line(ostler, s));
        }
    }
    for r in &out.rows {
        eprintln!(
            "{} {} {} ({})",
            if out.written {
                "restored"
            } else {
                "would restore"
            },
            r.table,
            r.key,
            r.reason
        );
    }
    for c in &out.conflicts {
        eprintln!("skipped {} {}: a live row has that key", c.table, c.key);
    }
    if out.already_live > 0 {
        eprintln!(
            "{} matching rows are already live, unchanged",
            out.already_live
        );
    }
    if out.rows.is_empty() {
        outln!("nothing to restore: every matching row is live");
    } else if out.written {
        outln!(
            "restored {} rows into {} in one transaction (safety backup {})",
            out.rows.len(),
            out.instance,
            out.safety_backup.clone().unwrap_or_default()
        );
    }
    Ok(0)
}
