use ostler_core::backup::repository;
use ostler_core::Result;

use crate::cli::Context;

/// Create the backup repository named in [repository], or adopt the one that is there.
///
/// Other commands never create a repository (only the very first backup of a service
/// does), so a disk that is not mounted is reported instead of replaced by an empty one.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Make the repository at the configured path this service's repository even if
    /// its id is not the one the state remembers (a repository replaced on purpose).
    #[arg(long)]
    pub adopt: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let out = repository::init(&ostler, args.adopt)?;
    if ctx.json {
        super::print_json(&out)?;
    } else if out.created {
        outln!(
            "created repository {} at {}",
            &out.id[..12],
            out.path.display()
        );
    } else {
        outln!(
            "repository {} at {} is this service's repository",
            &out.id[..12],
            out.path.display()
        );
    }
    Ok(0)
}
