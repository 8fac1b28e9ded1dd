use ostler_core::forensics::find;
use ostler_core::Result;

use crate::cli::Context;

/// Across every backup of an instance, how many rows of a table match a predicate,
/// and when they vanished (or appeared). Reads the repository, restores nothing.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Instance or role.
    pub instance: String,
    /// The table (`tags`, or `public.tags`).
    #[arg(long)]
    pub table: String,
    /// SQL predicate on the table's columns, e.g. "name = 'DC'" (evaluated by SQLite).
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let report = find::find(&ostler, &args.instance, &args.table, &args.predicate)?;
    if ctx.json {
        super::print_json(&report)?;
        return Ok(0);
    }
    outln!(
        "{} rows of {} where {} — {} backups ({} read whole, {} by their deltas, {} unchanged and skipped)",
        report.instance,
        report.table,
        report.predicate,
        report.points.len(),
        report.read_full,
        report.read_delta,
        report.skipped_unchanged
    );
    for p in &report.points {
        outln!(
            "  {:<9} {}  {:>8}  {}",
            p.backup,
            ctx.show_time(p.at),
            p.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            p.how
        );
    }
    if report.transitions.is_empty() {
        outln!("no change: the count is the same in every backup");
    }
    for t in &report.transitions {
        let what = match t.kind.as_str() {
            "vanished" => format!("the {} matching rows VANISHED", t.before_rows),
            "appeared" => format!("{} matching rows APPEARED", t.after_rows),
            _ => format!(
                "{} matching rows went and {} came ({} -> {})",
                t.lost, t.gained, t.before_rows, t.after_rows
            ),
        };
        outln!(
            "{what} between backup {} ({}) and backup {} ({})",
            t.before_backup,
            ctx.show_time(t.before_at),
            t.after_backup,
            ctx.show_time(t.after_at)
        );
        if t.kind == "vanished" {
            outln!(
                "  present up to {}, absent from {} on; to put them back: ostler restore {} --from {} --table {} --where \"{}\" --with-references --dry-run",
                t.before_backup, t.after_backup, report.instance, t.before_backup, report.table, report.predicate
            );
        }
    }
    outln!("(predicate {})", report.evaluated_by);
    Ok(0)
}
