use ostler_core::daemon::client::Client;
use ostler_core::daemon::control::DaemonStatus;
use ostler_core::{ops, Ostler, Result};

use crate::cli::Context;

/// Show whether the daemon is up (pid, uptime, its components), then each instance:
/// state, pid, port, roles, lock. Works without a daemon.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Instances or roles (default: all).
    pub instances: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let daemon = daemon_status(&ostler)?;
    let names = if args.instances.is_empty() {
        ostler.config.instance_names()
    } else {
        args.instances
            .iter()
            .map(|n| ostler.config.resolve(n))
            .collect::<Result<Vec<_>>>()?
    };
    let all = ops::statuses(&ostler, &names)?;
    if ctx.json {
        super::print_json(&serde_json::json!({ "daemon": daemon, "instances": all }))?;
        return Ok(0);
    }
    outln!("{}", daemon_line(daemon.as_ref()));
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
    // Open alerts and notices that did not get through are seen here too.
    let alerts = ostler_core::alerts::overview(&ostler, false, 1000)?;
    if !alerts.alerts.is_empty() || !alerts.undelivered.is_empty() {
        let acked = alerts
            .alerts
            .iter()
            .filter(|a| a.acked_at.is_some())
            .count();
        outln!(
            "alerts: {} open ({acked} acknowledged), {} notices not delivered: `ostler alerts`",
            alerts.alerts.len(),
            alerts.undelivered.len()
        );
    }
    Ok(0)
}

/// The running daemon's status, or `None` when no daemon serves this state dir.
pub fn daemon_status(ostler: &Ostler) -> Result<Option<DaemonStatus>> {
    Client::connect(&ostler.state_dir())?
        .map(|client| client.status())
        .transpose()
}

/// `daemon: up, pid 812, up 3m 12s, components: supervisor running, control running`,
/// or `daemon: not running`.
pub fn daemon_line(daemon: Option<&DaemonStatus>) -> String {
    let Some(d) = daemon else {
        return "daemon: not running".into();
    };
    let components = d
        .components
        .iter()
        .map(|c| match c.restarts {
            0 => format!("{} {}", c.name, c.state.as_str()),
            n => format!("{} {} ({n} restarts)", c.name, c.state.as_str()),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "daemon: {}, pid {}, up {}, components: {}",
        if d.draining { "draining" } else { "up" },
        d.pid,
        humantime::format_duration(std::time::Duration::from_secs(d.uptime_seconds)),
        if components.is_empty() {
            "none yet"
        } else {
            &components
        }
    )
}
