//! `ostler maintenance [on|off]`: the proxy answers every request with its maintenance
//! page (503, Retry-After) while on. Through the daemon when it runs (it switches at
//! once), else recorded for the daemon to start with.

use ostler_core::daemon::client::Client;
use ostler_core::daemon::control::{MaintenanceRequest, ProxyStatus};
use ostler_core::proxy::routing::{self, Routing};
use ostler_core::Result;

use crate::cli::Context;

/// Put the proxy in maintenance (`on`), take it out (`off`), or show whether it is.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(value_enum)]
    pub switch: Option<Switch>,
    /// Why; kept with the maintenance and journaled.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let ostler = ctx.ostler()?;
    let client = Client::connect(&ostler.state_dir())?;
    let routing: Routing = match (args.switch, &client) {
        (None, Some(client)) => client.get::<ProxyStatus>("/v1/proxy")?.routing,
        (None, None) => Routing::load(&ostler.state_dir())?,
        (Some(switch), client) => {
            let request = MaintenanceRequest {
                on: switch == Switch::On,
                by: ostler_core::state::who(),
                reason: args.reason,
            };
            match client {
                Some(client) => client.post("/v1/proxy/maintenance", &request)?,
                None => routing::set_maintenance(
                    &ostler,
                    request.on,
                    &request.by,
                    request.reason.as_deref(),
                )?,
            }
        }
    };
    if ctx.json {
        super::print_json(&routing)?;
        return Ok(0);
    }
    match &routing.maintenance {
        Some(m) => outln!(
            "maintenance: on since {} by {}{}",
            ctx.show_time(m.since),
            m.by,
            m.reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}"))
        ),
        None => outln!("maintenance: off"),
    }
    if client.is_none() && args.switch.is_some() {
        eprintln!("(no daemon runs: `ostler serve` starts its proxy this way)");
    }
    Ok(0)
}
