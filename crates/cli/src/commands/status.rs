use ostler_core::{ops, Result};

use crate::cli::Context;

/// Show each instance: state, pid, port, roles, lock.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Instances or roles (default: all).
    pub instances: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let state = ostler.state()?;
    let names = if args.instances.is_empty() {
        ostler.config.instance_names()
    } else {
        args.instances
            .iter()
            .map(|n| ostler.config.resolve(n))
            .collect::<Result<Vec<_>>>()?
    };
    let mut all = Vec::new();
    for n in names {
        let inst = ostler.instance(&n)?;
        all.push(ops::status_with(&state, &ostler, &inst)?);
    }
    if ctx.json {
        super::print_json(&all)?;
        return Ok(0);
    }
    outln!(
        "{:<14} {:<12} {:<11} {:>7} {:>6}  {:<27} LOCK",
        "INSTANCE",
        "ROLES",
        "STATE",
        "PID",
        "PORT",
        "SINCE"
    );
    for s in all {
        let lock = s
            .lock
            .as_ref()
            .map(|l| {
                let held = format!(
                    "{} by {} (pid {})",
                    l.lock.purpose, l.lock.holder, l.lock.holder_pid
                );
                match l.stale {
                    Some(why) => format!("stale, reclaimable ({why}): {held}"),
                    None => held,
                }
            })
            .unwrap_or_else(|| "-".into());
        let state = if s.state == "crash-loop" || s.state == "backoff" {
            format!("{} ({})", s.state, s.recent_crashes)
        } else {
            s.state.clone()
        };
        outln!(
            "{:<14} {:<12} {:<11} {:>7} {:>6}  {:<27} {}",
            s.name,
            if s.roles.is_empty() {
                "-".to_string()
            } else {
                s.roles.join(",")
            },
            state,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.port,
            s.started_at
                .map(|t| ctx.show_time(t))
                .unwrap_or_else(|| "-".into()),
            lock
        );
    }
    for shared in ostler.config.shared_databases() {
        outln!(
            "note: {} share one database ({})",
            shared.instances.join(", "),
            shared.database
        );
    }
    Ok(0)
}
