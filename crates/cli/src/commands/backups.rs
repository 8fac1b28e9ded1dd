use ostler_core::backup::catalog;
use ostler_core::{Error, Result};

use crate::cli::Context;

/// List backups: id, instance, time (with offset), duration, sizes, status, tables.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this instance (or role).
    pub instance: Option<String>,
    /// Show each table's row count and content hash.
    #[arg(long)]
    pub tables: bool,
    /// Show which backups the named off-host copy holds.
    #[arg(long = "where", value_name = "COPY")]
    pub copy: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let instance = match &args.instance {
        Some(i) => Some(ostler.config.resolve(i)?),
        None => None,
    };
    let list = catalog::list(&ostler.state()?, instance.as_deref())?;
    let held: Option<std::collections::HashSet<String>> = match &args.copy {
        Some(name) => {
            let copy = ostler
                .config
                .repository
                .as_ref()
                .and_then(|r| r.copies.iter().find(|c| &c.name == name))
                .ok_or_else(|| {
                    Error::user(format!("no copy named `{name}` in [[repository.copies]]"))
                })?;
            Some(copy_holds(&ostler, copy)?)
        }
        None => None,
    };
    if ctx.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|b| {
                let mut v = serde_json::to_value(b).unwrap_or_default();
                v["started_at_local"] = ctx.show_time(b.started_at).into();
                if let Some(h) = &held {
                    v["in_copy"] = h.contains(&b.id).into();
                }
                v
            })
            .collect();
        super::print_json(&v)?;
        return Ok(0);
    }
    outln!(
        "{:<9} {:<10} {:<26} {:>8} {:>10} {:>10}  {:<11}{}",
        "ID",
        "INSTANCE",
        "TIME",
        "TOOK",
        "LOGICAL",
        "ADDED",
        "STATUS",
        if held.is_some() { " IN COPY" } else { "" }
    );
    for b in &list {
        outln!(
            "{:<9} {:<10} {:<26} {:>8} {:>10} {:>10}  {:<11}{}{}",
            b.id,
            b.instance,
            ctx.show_time(b.started_at),
            b.duration_ms
                .map(|d| format!("{:.1}s", d as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            super::human_bytes(b.logical_bytes),
            super::human_bytes(b.new_bytes),
            b.status,
            held.as_ref()
                .map(|h| if h.contains(&b.id) { " yes" } else { " no" })
                .unwrap_or(""),
            b.note
                .as_ref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
        if let Some(e) = &b.error {
            outln!("          error: {}", e.lines().next().unwrap_or(""));
        }
        if args.tables {
            for t in &b.tables {
                outln!(
                    "          {:<28} {:>10} rows  {}",
                    t.name,
                    t.rows,
                    &t.hash[..16.min(t.hash.len())]
                );
            }
        }
    }
    Ok(0)
}

fn copy_holds(
    ostler: &ostler_core::Ostler,
    copy: &ostler_core::config::CopyConfig,
) -> Result<std::collections::HashSet<String>> {
    let backend = ostler_core::copy::open_backend(&ostler.config, copy, &ostler.runner())?;
    Ok(ostler_core::copy::list_backups(backend.as_ref())?
        .into_iter()
        .collect())
}
