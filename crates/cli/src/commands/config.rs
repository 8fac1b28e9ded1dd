use ostler_core::config::{Config, SharedDatabase};
use ostler_core::report::Reporter;
use ostler_core::{Error, Result};

use crate::cli::Context;

/// Check or show the configuration.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Report every problem with file, line and column; exit non-zero if any.
    Check,
    /// Print the effective config (defaults filled in, secrets masked).
    Show,
}

/// `config show --json`: the effective config, secrets masked, and which instances
/// share a database.
#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    config: &'a Config,
    shared_databases: Vec<SharedDatabase>,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let path = ctx.config_path()?;
    let config = Config::load(&path);
    if let Ok(c) = &config {
        // `check` shows them in its --json too; every other command through
        // `Ostler::load`. Either way once, on stderr.
        let reporter = ctx.reporter();
        for old in &c.deprecations {
            reporter.warn("", &old.to_string());
        }
    }
    match args.action {
        Action::Check => match config {
            Ok(c) => {
                if ctx.json {
                    super::print_json(
                        &serde_json::json!({"ok": true, "file": path, "instances": c.instance_names(), "deprecations": c.deprecations}),
                    )?;
                } else {
                    outln!(
                        "{}: ok ({} instances: {})",
                        path.display(),
                        c.instances.len(),
                        c.instance_names().join(", ")
                    );
                }
                Ok(0)
            }
            Err(Error::Config { diagnostics }) if ctx.json => {
                super::print_json(
                    &serde_json::json!({"ok": false, "file": path, "problems": diagnostics}),
                )?;
                Ok(ostler_core::ErrorKind::Config.exit_code())
            }
            Err(e) => Err(e),
        },
        Action::Show => {
            let c = config?;
            if ctx.json {
                super::print_json(&Shown {
                    config: &c.masked(),
                    shared_databases: c.shared_databases(),
                })?;
            } else {
                out!("{}", c.show());
            }
            Ok(0)
        }
    }
}
