use ostler_core::backup::repository::{Access, OpenRepository};
use ostler_core::backup::{procedures, restore, verify};
use ostler_core::{Error, Result};

use crate::cli::Context;

/// Re-read and re-hash backups; or restore one into a scratch database and compare.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backup id (or unique prefix).
    pub id: Option<String>,
    /// Every backup in the repository.
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Restore this backup into a scratch database of the same engine and compare
    /// every table's row count and content hash with the catalog. `latest`: the
    /// newest good backup that holds a database, of any instance.
    #[arg(long, value_name = "ID|latest", conflicts_with_all = ["id", "all"])]
    pub restore_test: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    // A reader: prune must not remove what is being read or restored.
    let repo = OpenRepository::open(&ostler, Access::Shared)?;
    if let Some(id) = &args.restore_test {
        // Backup ids are hex: `latest` is never one's prefix.
        let m = if id == "latest" {
            procedures::newest_with_database(&ostler)?
        } else {
            procedures::pick(&ostler, "", &procedures::Pick::Id(id.clone()))?
        };
        let inst = ostler.instance(&m.instance)?;
        let checks = restore::restore_test(&ostler, &repo, &m, &inst)?;
        let ok = checks
            .iter()
            .all(|c| c.hash_matches && c.rows_expected == c.rows_restored);
        if ctx.json {
            super::print_json(&serde_json::json!({"backup": m.id, "ok": ok, "tables": checks}))?;
        } else {
            for c in &checks {
                outln!(
                    "{:<30} {:>10} rows expected {:>10} restored  {}",
                    c.table,
                    c.rows_expected,
                    c.rows_restored,
                    if c.hash_matches {
                        "hash ok"
                    } else {
                        "HASH DIFFERS"
                    }
                );
            }
            outln!(
                "restore test of {}: {}",
                m.id,
                if ok { "ok" } else { "FAILED" }
            );
        }
        return Ok(if ok { 0 } else { 1 });
    }
    let which = match (&args.id, args.all) {
        (_, true) => verify::Selection::All,
        (Some(id), false) => verify::Selection::One(id.clone()),
        (None, false) => return Err(Error::user("say which backup: ostler verify ID, or --all")),
    };
    let report = verify::check(&ostler, &repo, &which)?;
    if ctx.json {
        super::print_json(&report)?;
    } else {
        for p in &report.problems {
            match &p.chunk {
                Some(c) => outln!("BAD chunk {c}: {}", p.message),
                None => outln!("BAD: {}", p.message),
            }
            for (backup, what) in verify::by_backup(p) {
                outln!("    affects backup {backup}: {}", what.join(", "));
            }
        }
        for id in &report.finished_prune {
            outln!("finished removing {id} (an interrupted prune had marked it)");
        }
        if !report.healed.is_empty() {
            outln!(
                "healed: {} (the damaged chunks they need were written afresh by a later backup)",
                report.healed.join(", ")
            );
        }
        if !report.damaged.is_empty() {
            outln!("still damaged: {}", report.damaged.join(", "));
        }
        outln!(
            "verified {} backups: {} chunks ({}), {} tables replayed: {}",
            report.backups.len(),
            report.chunks_checked,
            super::human_bytes(report.bytes_checked),
            report.tables_checked,
            if report.ok() {
                "ok".to_string()
            } else {
                format!("{} problems", report.problems.len())
            }
        );
    }
    Ok(if report.ok() { 0 } else { 1 })
}
