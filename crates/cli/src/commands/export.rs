use std::path::PathBuf;

use ostler_core::backup::repository::{Access, OpenRepository};
use ostler_core::backup::{procedures, restore};
use ostler_core::Result;

use crate::cli::Context;

/// Write a backup as native files (SQLite file, SQL for psql/mysql, store trees) that
/// the database's own tools restore with no ostler.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backup id (or unique prefix).
    pub id: String,
    /// An empty or new directory.
    pub dir: PathBuf,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    // A reader: opened before the backup is picked, so prune cannot remove it meanwhile.
    let repo = OpenRepository::open(&ostler, Access::Shared)?;
    let m = procedures::pick(&ostler, "", &procedures::Pick::Id(args.id.clone()))?;
    let files = restore::export(&repo, &m, &args.dir)?;
    if ctx.json {
        super::print_json(&files)?;
    } else {
        for f in files {
            outln!("{}", f.display());
        }
    }
    Ok(0)
}
