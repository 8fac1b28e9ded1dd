//! `ostler alerts`: the open alerts (or all recent ones), with who was told, and every
//! notice that did not reach its channel; `ack` one; and `ostler silence` for planned
//! work. Acknowledgements and silences go through the daemon when it runs, else
//! straight to the state (the daemon's alerter reads them at its next look).

use ostler_core::alerts::store::{Alert, Silence};
use ostler_core::alerts::{self, Overview, SilenceRequest};
use ostler_core::config::parse_duration;
use ostler_core::daemon::client::Client;
use ostler_core::daemon::control::Acknowledgement;
use ostler_core::{Error, Result};

use crate::cli::Context;

/// Alerts: without a subcommand, the open ones (severity, what, instance, since, who
/// was told, acknowledged by), the silences in force, and the notices that could not
/// be delivered.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
    /// Resolved alerts too, newest first.
    #[arg(long)]
    pub all: bool,
    /// At most this many alerts.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(clap::Subcommand, Debug)]
pub enum AlertsCommand {
    /// Acknowledge an alert: its escalation stops (the next tier is not paged).
    Ack(AckArgs),
}

#[derive(clap::Args, Debug)]
pub struct AckArgs {
    /// The alert's id (first column of `ostler alerts`).
    pub id: i64,
    /// What you are doing about it; kept with the acknowledgement.
    #[arg(long)]
    pub note: Option<String>,
}

/// Hold back every alert notice about an instance (or role), probe or job for a while:
/// planned work. Alerts are still recorded; what is due is sent when the silence ends.
#[derive(clap::Args, Debug)]
pub struct SilenceArgs {
    /// An instance or role, a `[[probes]]` name or a `[[jobs]]` name.
    pub target: String,
    /// How long: `30m`, `2h`, `1d`.
    pub duration: String,
    /// Why; shown with the silence.
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    match args.command {
        None => list(ctx, args.all, args.limit),
        Some(AlertsCommand::Ack(ack)) => acknowledge(ctx, ack),
    }
}

fn list(ctx: &Context, all: bool, limit: usize) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let overview: Overview = match Client::connect(&ostler.state_dir())? {
        Some(client) => client.get(&format!("/v1/alerts?all={all}&limit={limit}"))?,
        None => alerts::overview(&ostler, all, limit)?,
    };
    if ctx.json {
        super::print_json(&overview)?;
        return Ok(0);
    }
    if overview.alerts.is_empty() {
        outln!("{}", if all { "no alerts" } else { "no open alerts" });
    } else {
        let rows: Vec<Vec<String>> = overview.alerts.iter().map(|a| row(ctx, a)).collect();
        crate::table::print(
            &[
                "ID", "SEVERITY", "ALERT", "INSTANCE", "SINCE", "STATE", "TOLD", "SUMMARY",
            ],
            &rows,
        );
    }
    for s in &overview.silences {
        outln!("silenced: {}", silence_line(ctx, s));
    }
    if !overview.undelivered.is_empty() {
        outln!("notices not delivered:");
        for d in &overview.undelivered {
            let when = match (d.gave_up_at, d.next_attempt_at) {
                (Some(at), _) => format!("given up at {}", ctx.show_time(at)),
                (None, next) => format!("tried again at {}", ctx.show_time(next)),
            };
            outln!(
                "  alert {} to {} ({}, tier {}): {} tries, {when}: {}",
                d.alert,
                d.channel,
                d.reason.as_str(),
                d.tier + 1,
                d.attempts,
                d.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(0)
}

fn row(ctx: &Context, a: &Alert) -> Vec<String> {
    let state = match (&a.resolved_at, &a.acked_by) {
        (Some(at), _) => format!("resolved {}", ctx.show_time(*at)),
        (None, Some(by)) => format!("acked by {by}"),
        (None, None) => "open".to_string(),
    };
    let told = match a.told.len() {
        0 => "-".to_string(),
        n => format!("{n} tier{}", if n == 1 { "" } else { "s" }),
    };
    let summary = if a.occurrences > 1 {
        format!("{} (x{})", a.summary, a.occurrences)
    } else {
        a.summary.clone()
    };
    vec![
        a.id.to_string(),
        a.severity.as_str().to_string(),
        a.key.clone(),
        a.instance.clone().unwrap_or_else(|| "-".into()),
        ctx.show_time(a.opened_at),
        state,
        told,
        summary,
    ]
}

fn silence_line(ctx: &Context, s: &Silence) -> String {
    format!(
        "{} until {} by {}{}",
        s.target,
        ctx.show_time(s.ends_at),
        s.created_by,
        s.reason
            .as_deref()
            .map_or(String::new(), |r| format!(": {r}"))
    )
}

fn acknowledge(ctx: &Context, args: AckArgs) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let ack = Acknowledgement {
        by: ostler_core::state::who(),
        note: args.note,
    };
    let alert: Alert = match Client::connect(&ostler.state_dir())? {
        Some(client) => client.post(&format!("/v1/alerts/{}/ack", args.id), &ack)?,
        None => alerts::acknowledge(&ostler, args.id, &ack.by, ack.note.as_deref())?,
    };
    if ctx.json {
        super::print_json(&alert)?;
    } else {
        outln!(
            "alert {} ({}) acknowledged by {}",
            alert.id,
            alert.key,
            ack.by
        );
    }
    Ok(0)
}

pub fn silence(ctx: &Context, args: SilenceArgs) -> Result<i32> {
    let length = parse_duration(&args.duration).map_err(|e| {
        Error::user(format!("silence: DURATION {:?}: {e}", args.duration))
            .with_hint("say how long: 30m, 2h, 1d")
    })?;
    let ostler = ctx.ostler()?;
    let request = SilenceRequest {
        target: args.target,
        seconds: length.as_secs(),
        by: ostler_core::state::who(),
        reason: args.reason,
    };
    let silence: Silence = match Client::connect(&ostler.state_dir())? {
        Some(client) => client.post("/v1/silences", &request)?,
        None => alerts::silence(&ostler, &request)?,
    };
    if ctx.json {
        super::print_json(&silence)?;
    } else {
        outln!("silenced: {}", silence_line(ctx, &silence));
    }
    Ok(0)
}
