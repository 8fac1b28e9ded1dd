//! `ostler proxy`: where the daemon's proxy sends requests and what it has in flight;
//! `ostler proxy switch INSTANCE` moves the traffic at once (blue/green by hand, and an
//! upgrade's switch) and waits until the previous backend has answered what it had.

use std::time::Instant;

use ostler_core::config::parse_duration;
use ostler_core::daemon::client::Client;
use ostler_core::daemon::control::{ProxyStatus, SwitchRequest};
use ostler_core::{Error, Result};

use crate::cli::Context;

/// The proxy's routing: the backend, maintenance, requests in flight.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<ProxyCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ProxyCommand {
    /// Send every new request to INSTANCE (or, with `--role`, back to the instance
    /// `[proxy] role` names), then wait until the previous backend has finished the
    /// requests it was answering.
    Switch(SwitchArgs),
}

#[derive(clap::Args, Debug)]
pub struct SwitchArgs {
    /// The instance (or role) to send requests to.
    #[arg(required_unless_present = "role")]
    pub instance: Option<String>,
    /// Back to the instance `[proxy] role` names.
    #[arg(long, conflicts_with = "instance")]
    pub role: bool,
    /// How long to wait for the previous backend's requests in flight.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub drain_timeout: String,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let client = Client::connect(&ostler.state_dir())?.ok_or_else(|| {
        Error::user("no `ostler serve` runs here: the proxy is the daemon's")
            .with_hint("start it with `ostler serve`")
    })?;
    let status = match args.command {
        None => client.get::<ProxyStatus>("/v1/proxy")?,
        Some(ProxyCommand::Switch(s)) => {
            let drain = parse_duration(&s.drain_timeout)
                .map_err(|e| Error::user(format!("--drain-timeout {:?}: {e}", s.drain_timeout)))?;
            let before: ProxyStatus = client.get("/v1/proxy")?;
            let after: ProxyStatus = client.post(
                "/v1/proxy/switch",
                &SwitchRequest {
                    to: s.instance,
                    by: ostler_core::state::who(),
                },
            )?;
            let previous = before
                .backend
                .map(|b| b.instance)
                .filter(|p| after.backend.as_ref().is_none_or(|b| &b.instance != p));
            if let Some(previous) = previous {
                let started = Instant::now();
                match client.wait_drained(&previous, drain)? {
                    0 if !ctx.json => eprintln!(
                        "{previous} finished its requests in flight ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    ),
                    0 => {}
                    left => {
                        return Err(Error::failed(format!(
                            "{previous} still answers {left} requests after {drain:?}; the switch is done, the old backend is not drained"
                        )))
                    }
                }
            }
            after
        }
    };
    if ctx.json {
        super::print_json(&status)?;
        return Ok(0);
    }
    match &status.backend {
        Some(b) => outln!("backend: {} (port {})", b.instance, b.port),
        None => outln!("backend: none"),
    }
    match &status.routing.maintenance {
        Some(m) => outln!(
            "maintenance: on since {} by {}",
            ctx.show_time(m.since),
            m.by
        ),
        None => outln!("maintenance: off"),
    }
    for (instance, n) in &status.in_flight {
        outln!("in flight to {instance}: {n}");
    }
    Ok(0)
}
