use ostler_core::config::{self, Config};
use ostler_core::daemon::client::Client;
use ostler_core::daemon::ConfigChanges;
use ostler_core::{Error, ErrorKind, Result};

use crate::cli::Context;

/// Exit status when no daemon runs: nothing was reloaded (the LSB "not running" code,
/// as `ostler serve --status`).
const NO_DAEMON: i32 = 3;

/// Ask the running daemon (`ostler serve`) to read the config again and put it in force.
///
/// An invalid config is refused with the errors `ostler config check` gives, and the
/// daemon keeps its current config. A valid one is applied by difference: an added
/// autostart instance is started; a removed one is no longer supervised (left running);
/// a changed one takes its new settings at its next restart; `[supervise]` at the next
/// crash. Nothing restarts now. SIGHUP to the daemon does the same.
///
/// Exit status: 0 reloaded (prints what changed), 78 the config is invalid, 3 no daemon
/// runs for this service (the config is checked all the same).
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> Result<i32> {
    let path = ctx.config_path()?;
    // Found from `[service] state_dir` alone, so a file the daemon will refuse still
    // leads to the daemon; a file that is not even TOML is refused here.
    let Some(state_dir) = config::state_dir_of(&path) else {
        Config::load(&path)?;
        return Err(Error::user(format!(
            "{} names no state dir",
            path.display()
        )));
    };
    let Some(client) = Client::connect(&state_dir)? else {
        Config::load(&path)?;
        eprintln!(
            "no daemon runs for this service ({}): nothing to reload; {} is valid and \
             `ostler serve` will read it when it starts",
            state_dir.display(),
            path.display()
        );
        return Ok(NO_DAEMON);
    };
    match client.post::<ConfigChanges>("/v1/reload", &serde_json::json!({})) {
        Ok(changes) => {
            if ctx.json {
                super::print_json(&changes)?;
            } else {
                outln!("reloaded: {changes}");
            }
            Ok(0)
        }
        // The daemon refused the file (or its state_dir): it keeps what it has.
        Err(e) if matches!(e.kind(), ErrorKind::Config | ErrorKind::User) => {
            let code = crate::cli::report_error(&e);
            eprintln!("the daemon keeps its current config");
            Ok(code)
        }
        Err(e) => Err(e),
    }
}
