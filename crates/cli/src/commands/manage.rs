//! `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]` — the bin/manage surface.
//! Options after the chain: `--yes-really-production`, `--dry-run`, `-v`, `--json`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};

use ostler_core::guard::{Confirm, Danger};
use ostler_core::plan::chain::{self, StepResult};
use ostler_core::{Error, Result};

use crate::cli::Context;
use crate::plans;

/// The production guard's confirmation: `--yes-really-production`, or the instance's
/// name typed on a terminal; never a yes when nobody is there to type it.
pub struct Guard {
    pub yes: bool,
}

impl Confirm for Guard {
    fn confirm(&self, danger: &Danger) -> bool {
        if self.yes {
            return true;
        }
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return false;
        }
        eprint!(
            "{}\nType the instance's name to go on: ",
            plans::describe_danger(danger)
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        line.trim() == danger.instance
    }
}

pub fn run(ctx: &Context, args: Vec<OsString>) -> Result<i32> {
    let mut words = Vec::new();
    let mut yes = false;
    let mut dry_run = false;
    let mut verbose = ctx.verbose;
    let mut json = ctx.json;
    for a in args {
        let a = a.to_string_lossy().to_string();
        match a.as_str() {
            "--yes-really-production" => yes = true,
            "--dry-run" | "-n" => dry_run = true,
            "-v" | "--verbose" => verbose = true,
            "--json" => json = true,
            s if s.starts_with('-') => {
                return Err(
                    Error::user(format!("unknown option `{s}` for an instance command"))
                        .with_hint("options: --yes-really-production, --dry-run, -v, --json"),
                )
            }
            _ => words.push(a),
        }
    }
    let (verbs, targets) =
        match words.as_slice() {
            [v, t] => (v.clone(), t.clone()),
            [v] => {
                return Err(Error::user(format!(
                    "`{v}` needs an instance: ostler {v} INSTANCE[,INSTANCE...]"
                )))
            }
            _ => return Err(Error::user(
                "usage: ostler CMD[,CMD...] INSTANCE[,INSTANCE...] (instances joined by commas)",
            )),
        };
    let ctx = Context {
        cli_config: ctx.cli_config.clone(),
        verbose,
        json,
        tz: ctx.tz.clone(),
        interrupt: ctx.interrupt.clone(),
    };
    let ostler = ctx.ostler()?;
    let plan = chain::plan(&ostler, &verbs, &targets)?;
    if dry_run {
        plans::print_dry_run(&ostler, &plan, json)?;
        return Ok(0);
    }
    let outcomes = chain::execute(&ostler, &plan, &Guard { yes }, &mut |o| {
        if json {
            return;
        }
        match o.result {
            StepResult::Echoed | StepResult::Printed(_) | StepResult::Processes { .. } => {
                outln!("{}", plans::outcome(o))
            }
            _ if o.ok => eprintln!("{}", plans::outcome(o)),
            _ => eprintln!("warning: {} (continuing)", plans::outcome(o)),
        }
    })?;
    if json {
        super::print_json(&outcomes)?;
    }
    // A chain that was only a stop and failed reports it in its status.
    let all_failed_stops = !outcomes.is_empty() && outcomes.iter().all(|o| !o.ok);
    Ok(if all_failed_stops { 1 } else { 0 })
}
