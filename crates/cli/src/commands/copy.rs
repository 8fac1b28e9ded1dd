use ostler_core::backup::repository::{Access, OpenRepository};
use ostler_core::{copy, Error, Result};

use crate::cli::Context;

/// Send the repository's missing chunks and backups to its off-host copies
/// ([[repository.copies]]): idempotent, resumes after an interruption.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this copy (default: all).
    pub name: Option<String>,
    /// Also remove at the copy what the local repository no longer has (after prune).
    #[arg(long)]
    pub prune: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let copies = ostler
        .config
        .repository
        .as_ref()
        .map(|r| r.copies.clone())
        .unwrap_or_default();
    if copies.is_empty() {
        return Err(Error::user("no [[repository.copies]] in the config").with_hint(
            "add e.g.\n[[repository.copies]]\nname = \"offsite\"\nkind = \"sftp\"\nhost = \"backup.example.org\"\npath = \"/srv/ostler\"",
        ));
    }
    let selected: Vec<_> = match &args.name {
        Some(n) => {
            let c = copies
                .iter()
                .find(|c| &c.name == n)
                .ok_or_else(|| Error::user(format!("no copy named `{n}`")))?;
            vec![c.clone()]
        }
        None => copies,
    };
    // One shared handle for every copy and prune: the local gc stays out until all are done.
    let repo = OpenRepository::open(&ostler, Access::Shared)?;
    let mut results = Vec::new();
    for c in &selected {
        // Journaled before connecting, so the journal holds the `ssh` of an SFTP copy
        // and a connection that failed.
        let state = ostler.state()?;
        let id = state.journal_begin("copy", None, Some(&format!("to {}", c.name)))?;
        let runner = ostler.runner().journaled(&state, id);
        let result = copy::open_backend(&ostler.config, c, &runner).and_then(|backend| {
            let stats = copy::copy_repository(
                &repo,
                backend.as_ref(),
                ostler.reporter.as_ref(),
                &ostler.interrupt,
            )?;
            let pruned = if args.prune {
                Some(copy::prune_copy(&repo, backend.as_ref())?)
            } else {
                None
            };
            Ok((stats, pruned, backend.describe()))
        });
        let state = ostler.state()?;
        match &result {
            Ok((s, _, to)) => state.journal_end(
                id,
                "ok",
                Some(&format!(
                    "{} files sent ({} bytes) to {to}",
                    s.files_sent, s.bytes_sent
                )),
            )?,
            Err(e) => state.journal_end(
                id,
                "failed",
                Some(&ostler_core::error::chain(e).to_string()),
            )?,
        }
        let (stats, pruned, _) = result?;
        if !ctx.json {
            outln!(
                "{}: sent {} files ({}), {} already there{}",
                c.name,
                stats.files_sent,
                super::human_bytes(stats.bytes_sent),
                stats.files_present,
                pruned
                    .as_ref()
                    .map(|p| format!(
                        "; pruned {} backups, {} chunks",
                        p.files_removed, p.chunks_removed
                    ))
                    .unwrap_or_default()
            );
        }
        results.push(serde_json::json!({"copy": c.name, "stats": stats, "pruned": pruned}));
    }
    if ctx.json {
        super::print_json(&results)?;
    }
    Ok(0)
}
