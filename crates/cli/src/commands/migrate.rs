//! `ostler migrate INSTANCE` applies its pending schema migrations; `ostler migrations
//! INSTANCE` shows each one: applied (when, how long), pending, changed since applied,
//! gone, or out of order.

use ostler_core::migrations::{self, MigrateOptions, Migrated, Version};
use ostler_core::{Error, Result};

use crate::cli::Context;

/// Apply an instance's pending migrations (`[instances.X.migrations]`), after a safety
/// copy of its database; refused when an applied file changed or is gone.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The instance (or role).
    pub instance: String,
    /// Only up to this version (`3`, `1.2`, `V003`).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// List what would be applied; apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirms migrating the production instance.
    #[arg(long)]
    pub yes_really_production: bool,
}

/// Each migration of an instance: applied, pending, changed, missing or out of order.
#[derive(clap::Args, Debug)]
pub struct MigrationsArgs {
    /// The instance (or role).
    pub instance: String,
}

pub fn migrate(ctx: &Context, args: MigrateArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let name = ostler.config.resolve(&args.instance)?;
    let inst = ostler.instance(&name)?;
    let to = match &args.to {
        Some(text) => Some(
            Version::parse(text)
                .ok_or_else(|| Error::user(format!("--to {text}: not a version (3, 1.2, V003)")))?,
        ),
        None => None,
    };
    if args.dry_run {
        let status = migrations::status(&inst, &ostler.runner())?;
        migrations::refuse_inconsistent(&inst, &status)?;
        let pending: Vec<_> = status
            .pending
            .iter()
            .filter(|m| to.as_ref().is_none_or(|to| m.version <= *to))
            .collect();
        if ctx.json {
            super::print_json(&pending)?;
        } else if pending.is_empty() {
            outln!("{name}: nothing to migrate");
        } else {
            for m in pending {
                outln!(
                    "would apply {} ({}){}",
                    m.version,
                    m.description,
                    if m.offline { ", offline" } else { "" }
                );
            }
        }
        return Ok(0);
    }
    let outcome = migrations::migrate(
        &ostler,
        &inst,
        &MigrateOptions {
            to,
            yes_really_production: args.yes_really_production,
            copied_already: false,
        },
    )?;
    if ctx.json {
        super::print_json(&outcome)?;
        return Ok(0);
    }
    if let Some(safety) = &outcome.safety {
        outln!("safety copy: {safety}");
    }
    match &outcome.migrated {
        Migrated::Files(done) if done.is_empty() => outln!("{name}: nothing to migrate"),
        Migrated::Files(done) => {
            for (m, took) in done {
                outln!(
                    "applied {} ({}) in {:.3} s",
                    m.version,
                    m.description,
                    took.as_secs_f64()
                );
            }
        }
        Migrated::Command { command, took } => {
            outln!("ran `{command}` in {:.3} s", took.as_secs_f64())
        }
    }
    Ok(0)
}

pub fn list(ctx: &Context, args: MigrationsArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let name = ostler.config.resolve(&args.instance)?;
    let inst = ostler.instance(&name)?;
    let status = migrations::status(&inst, &ostler.runner())?;
    if ctx.json {
        super::print_json(&status)?;
        return Ok(if status.is_consistent() { 0 } else { 1 });
    }
    let mut rows: Vec<(Version, Vec<String>)> = Vec::new();
    for a in &status.applied {
        let state = if status.changed.iter().any(|m| m.version == a.version) {
            "CHANGED since applied"
        } else if status.missing.iter().any(|m| m.version == a.version) {
            "applied, file GONE"
        } else {
            "applied"
        };
        rows.push((
            a.version.clone(),
            vec![
                a.version.to_string(),
                a.description.clone(),
                state.to_string(),
                a.applied_at.map_or("-".into(), |t| ctx.show_time(t)),
                a.duration_ms.map_or("-".into(), |d| format!("{d} ms")),
            ],
        ));
    }
    for (m, state) in status
        .pending
        .iter()
        .map(|m| (m, "pending"))
        .chain(status.out_of_order.iter().map(|m| (m, "OUT OF ORDER")))
    {
        let state = if m.offline {
            format!("{state} (offline)")
        } else {
            state.to_string()
        };
        rows.push((
            m.version.clone(),
            vec![
                m.version.to_string(),
                m.description.clone(),
                state,
                "-".into(),
                "-".into(),
            ],
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if rows.is_empty() {
        outln!("{name}: no migrations");
    } else {
        let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, r)| r).collect();
        crate::table::print(
            &["VERSION", "DESCRIPTION", "STATE", "APPLIED", "TOOK"],
            &rows,
        );
    }
    Ok(if status.is_consistent() { 0 } else { 1 })
}
