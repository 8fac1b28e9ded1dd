//! `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]` — the bin/manage surface.
//! Options after the chain: `--yes-really-production`, `--dry-run`, `-v`, `--json`.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};

use ostler_core::guard::{self, Confirm, Danger, Effect, Exposure};
use ostler_core::plan::{self, Verb};
use ostler_core::{Error, Result};

use crate::cli::Context;

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
            describe_danger(danger)
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        line.trim() == danger.instance
    }
}

/// What the guard asks about, in words: why the instance is guarded and what each
/// action will do to it.
pub fn describe_danger(danger: &Danger) -> String {
    let who = match &danger.exposure {
        Exposure::Production => format!("{} is the PRODUCTION instance.", danger.instance),
        Exposure::SharesProductionDatabase {
            production,
            database,
        } => format!(
            "{}'s database is the PRODUCTION instance {production}'s database ({database}).",
            danger.instance
        ),
        Exposure::SharesProductionLogs { production, files } => format!(
            "{}'s logs are the PRODUCTION instance {production}'s ({}).",
            danger.instance,
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let what: Vec<String> = danger
        .actions
        .iter()
        .map(|a| format!("{} {}", a.operation, effect_words(a.effect)))
        .collect();
    format!("{who} {}.", what.join("; "))
}

fn effect_words(effect: Effect) -> &'static str {
    match effect {
        Effect::Reads => "only reads",
        Effect::CreatesBuild => "builds it",
        Effect::StartsService => "starts it",
        Effect::InterruptsService => "stops its service",
        Effect::ReplacesBuild => "replaces the build it runs",
        Effect::Reconfigures => "rewrites its configuration",
        Effect::EmptiesLogs => "empties its logs",
        Effect::WritesDatabase => "writes rows into its database",
        Effect::ReplacesData => "replaces its database and stores",
        Effect::DestroysDatabase => "destroys its database",
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
                match guard::exposure(&ostler.config, &s.instance, s.effect) {
                    Some(_) => outln!(
                        "{} {}  (guarded: {})",
                        s.verb.name(),
                        s.instance,
                        effect_words(s.effect)
                    ),
                    None => outln!("{} {}", s.verb.name(), s.instance),
                }
            }
        }
        return Ok(0);
    }
    let outcomes = plan::execute(&ostler, &plan, &Guard { yes }, &mut |o| {
        if json {
            return;
        }
        match o.verb {
            Verb::Echo | Verb::Print | Verb::Processes => outln!("{}", o.message),
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
