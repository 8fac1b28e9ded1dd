//! `ostler probe [NAME...]`: runs `[[probes]]` once, in parallel, here (not through the
//! daemon), and shows what each found. `--nagios` prints each probe's plugin line and
//! exits with the worst status's code, so the command can stand in a Nagios or Icinga
//! command definition.

use ostler_core::probes::{self, Probed};
use ostler_core::Result;

use crate::cli::Context;

/// Run probes once (all of them when none is named) and show each one's status,
/// summary and time. Exits with the worst status's Nagios code: 0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Probe names (`[[probes]] name`); default every probe.
    pub names: Vec<String>,
    /// Print each probe's plugin line (`HTTP OK - 204 No Content in 0.012s |
    /// time=0.012s;3;10;0`) as a Nagios plugin does; a config or name error is an
    /// UNKNOWN line and exit 3. (`--json`: an array of results, with the lines.)
    #[arg(long)]
    pub nagios: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    let probed = match probe(ctx, &args) {
        Ok(p) => p,
        Err(e) if args.nagios => {
            // A Nagios command that cannot run is UNKNOWN, said on stdout.
            outln!("UNKNOWN - {e}");
            crate::cli::report_error(&e);
            return Ok(probes::Status::Unknown.code());
        }
        Err(e) => return Err(e),
    };
    let code = probes::worst(probed.iter().map(|p| p.result.status)).code();
    if args.nagios {
        for p in &probed {
            outln!("{}", p.line);
        }
    } else if ctx.json {
        super::print_json(&probed)?;
    } else {
        let rows: Vec<Vec<String>> = probed
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.kind.name().to_string(),
                    p.result.status.nagios_word().to_string(),
                    format!("{:.3}s", p.result.duration.as_secs_f64()),
                    p.result.summary.clone(),
                ]
            })
            .collect();
        crate::table::print(&["NAME", "KIND", "STATUS", "TIME", "SUMMARY"], &rows);
    }
    Ok(code)
}

fn probe(ctx: &Context, args: &Args) -> Result<Vec<Probed>> {
    let ostler = ctx.ostler()?;
    let chosen = probes::select(&ostler.config, &args.names)?;
    Ok(probes::run_many(&ostler, &chosen))
}
