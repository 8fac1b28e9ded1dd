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
    Ok(0)
}
