//! `ostler upgrade [ROLE] --to NEW` and `ostler rollback [ROLE]`: the instance behind a
//! role replaced through the daemon's proxy, step by step, each step's time shown.

use ostler_core::daemon::client::Client;
use ostler_core::upgrade::{self, Done, Upgraded};
use ostler_core::{Error, Result};

use crate::cli::Context;

/// Replace the instance behind ROLE (default production) with NEW without a failed
/// request: build and start NEW, back up and migrate when NEW has pending migrations,
/// switch the proxy, let the old instance finish its requests, stop it, move the roles
/// (ROLE = NEW, old = the old one). A failure before the switch stops NEW and leaves
/// the old instance serving.
#[derive(clap::Args, Debug)]
pub struct UpgradeArgs {
    /// The role to upgrade.
    #[arg(default_value = "production")]
    pub role: String,
    /// The instance that takes over (built from the new code).
    #[arg(long, value_name = "NEW")]
    pub to: String,
    /// Say the steps; do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Switch ROLE back to the instance `old` names (after an upgrade), the same way.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[arg(default_value = "production")]
    pub role: String,
}

fn daemon(ctx: &Context) -> Result<(ostler_core::Ostler, Client)> {
    let ostler = ctx.ostler()?;
    let client = Client::connect(&ostler.state_dir())?.ok_or_else(|| {
        Error::user("no `ostler serve` runs here: an upgrade switches the daemon's proxy")
            .with_hint("start it with `ostler serve`")
    })?;
    Ok((ostler, client))
}

fn shown(ctx: &Context) -> impl Fn(&Done) + '_ {
    move |done: &Done| {
        if !ctx.json {
            eprintln!(
                "{:<9} {:>8.3} s{}",
                done.step.as_str(),
                done.took.as_secs_f64(),
                done.detail
                    .as_deref()
                    .map_or(String::new(), |d| format!("  {d}"))
            );
        }
    }
}

fn report(ctx: &Context, what: &str, u: &Upgraded) -> Result<i32> {
    if ctx.json {
        super::print_json(u)?;
    } else {
        let total: f64 = u.steps.iter().map(|s| s.took.as_secs_f64()).sum();
        outln!(
            "{what}: {} is now {} (was {}), in {total:.1} s{}",
            u.role,
            u.new,
            u.old,
            u.maintenance.map_or(String::new(), |m| format!(
                "; in maintenance {:.2} s for offline migrations",
                m.as_secs_f64()
            ))
        );
    }
    Ok(0)
}

pub fn run_upgrade(ctx: &Context, args: UpgradeArgs) -> Result<i32> {
    if args.dry_run {
        let ostler = ctx.ostler()?;
        let old = ostler.config.resolve(&args.role)?;
        let new = ostler.config.resolve(&args.to)?;
        outln!("upgrade of {} from {old} to {new} would:", args.role);
        for line in [
            format!("build {new}, start it and wait for its health check"),
            format!("if {new} has pending migrations: back up {old}, migrate (the proxy in maintenance only for offline ones)"),
            format!("switch the proxy to {new}; wait for {old}'s requests in flight"),
            format!("stop {old}; set {} = {new}, old = {old}", args.role),
        ] {
            outln!("  {line}");
        }
        return Ok(0);
    }
    let (ostler, client) = daemon(ctx)?;
    let done = upgrade::upgrade(&ostler, &client, &args.role, &args.to, &shown(ctx))?;
    report(ctx, "upgraded", &done)
}

pub fn run_rollback(ctx: &Context, args: RollbackArgs) -> Result<i32> {
    let (ostler, client) = daemon(ctx)?;
    let done = upgrade::rollback(&ostler, &client, &args.role, &shown(ctx))?;
    report(ctx, "rolled back", &done)
}
