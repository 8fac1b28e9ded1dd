//! `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]` — the bin/manage surface.
//! Options after the chain: `--yes-really-production`, `--dry-run`, `-v`, `--json`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};

use ostler_core::plan::{self, Confirm, Verb};
use ostler_core::{Error, Result};

use crate::cli::Context;

pub struct Guard {
    pub yes: bool,
}

impl Confirm for Guard {
    fn confirm(&self, instance: &str, verb: Verb) -> bool {
        if self.yes {
            return true;
        }
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return false;
        }
        eprint!(
            "{instance} is the PRODUCTION instance. {} will destroy data on it.\nType the instance's name to go on: ",
            verb.name()
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        line.trim() == instance
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
    let plan = plan::plan(&ostler, &verbs, &targets)?;
    if dry_run {
        if json {
            super::print_json(&plan)?;
        } else {
            for s in &plan.steps {
                println!("{} {}", s.verb.name(), s.instance);
            }
        }
        return Ok(0);
    }
    let outcomes = plan::execute(&ostler, &plan, &Guard { yes }, &mut |o| {
        if json {
            return;
        }
        match o.verb {
            Verb::Echo | Verb::Print | Verb::Processes => println!("{}", o.message),
            _ if o.ok => eprintln!("{}", o.message),
            _ => eprintln!("warning: {} (continuing)", o.message),
        }
    })?;
    if json {
        super::print_json(&outcomes)?;
    }
    // A chain that was only a stop and failed reports it in its status.
    let all_failed_stops = !outcomes.is_empty() && outcomes.iter().all(|o| !o.ok);
    Ok(if all_failed_stops { 1 } else { 0 })
}
