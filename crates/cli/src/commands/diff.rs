use ostler_core::forensics::diff;
use ostler_core::Result;

use crate::cli::Context;

/// Rows added, removed and changed per table between two backups (B may be `live`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backup id (or prefix).
    pub a: String,
    /// Backup id (or prefix), or `live` for the instance's database now.
    pub b: String,
    /// Only this table.
    #[arg(long)]
    pub table: Option<String>,
    /// At most this many detail rows per table.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let report = diff::diff(&ostler, &args.a, &args.b, args.table.as_deref(), args.limit)?;
    if ctx.json {
        super::print_json(&report)?;
        return Ok(0);
    }
    outln!("diff {} -> {}", report.a, report.b);
    for t in &report.tables {
        if t.same_hash {
            outln!("  {:<28} unchanged (same content hash)", t.table);
        } else {
            outln!(
                "  {:<28} +{} added  -{} removed  ~{} changed",
                t.table,
                t.added,
                t.removed,
                t.changed
            );
        }
    }
    for t in report.tables.iter().filter(|t| !t.details.is_empty()) {
        outln!("\n{} ({})", t.table, t.columns.join(", "));
        for d in &t.details {
            match d.kind.as_str() {
                "added" => outln!(
                    "  + {}  {}",
                    d.key,
                    d.after.clone().unwrap_or_default().join(" | ")
                ),
                "removed" => outln!(
                    "  - {}  {}",
                    d.key,
                    d.before.clone().unwrap_or_default().join(" | ")
                ),
                _ => {
                    outln!(
                        "  ~ {}  {}",
                        d.key,
                        d.before.clone().unwrap_or_default().join(" | ")
                    );
                    outln!(
                        "    {}  {}",
                        " ".repeat(d.key.len()),
                        d.after.clone().unwrap_or_default().join(" | ")
                    );
                }
            }
        }
        let total = t.added + t.removed + t.changed;
        if total > t.details.len() as u64 {
            outln!("  ... {} more (--limit)", total - t.details.len() as u64);
        }
    }
    Ok(0)
}
