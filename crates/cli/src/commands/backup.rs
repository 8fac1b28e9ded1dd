use ostler_core::backup::manifest::CaptureWarning;
use ostler_core::backup::procedures;
use ostler_core::Result;

use crate::cli::Context;

/// Back up an instance's database and stores into the repository, while it serves.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Instance or role.
    pub instance: String,
    /// A note kept with the backup.
    #[arg(long)]
    pub note: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let m = procedures::take(&ostler, &args.instance, args.note.as_deref())?;
    if ctx.json {
        super::print_json(&m)?;
    } else {
        let tables = m.database.as_ref().map(|d| d.tables.len()).unwrap_or(0);
        let files: u64 = m.stores.iter().map(|s| s.files).sum();
        outln!(
            "backup {} of {}: {} tables, {} store files, {} logical, {} newly stored, in {:.1}s",
            m.id,
            m.instance,
            tables,
            files,
            super::human_bytes(m.logical_bytes),
            super::human_bytes(m.new_bytes),
            m.finished_at.duration_since(m.started_at).as_secs_f64()
        );
    }
    for w in &m.warnings {
        eprintln!("warning: {}", warning_text(w));
    }
    Ok(0)
}

/// How a backup's warning reads.
pub fn warning_text(w: &CaptureWarning) -> String {
    match w {
        CaptureWarning::StoreListingUnreadable {
            store,
            parent,
            error,
        } => format!(
            "store {store}: the listing of backup {parent} is unreadable ({error}); every file was stored afresh"
        ),
        CaptureWarning::TableChainUnreadable {
            table,
            parent,
            error,
        } => format!(
            "table {table}: the chain of backup {parent} is unreadable ({error}); the table was stored whole"
        ),
        CaptureWarning::DamagedChunksRewritten { chunks } => format!(
            "{} damaged chunks were written afresh from live data (healing older backups): {}",
            chunks.len(),
            chunks.iter().map(|c| &c[..12]).collect::<Vec<_>>().join(", ")
        ),
    }
}
