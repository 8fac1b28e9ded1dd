//! The production guard. It judges a plan by what each step will do, not by what the
//! verb is called:
//! `rebuild production` and `stop,print,build,start production` replace production's
//! build alike, so both ask; `log-nuke` empties production's logs, so it asks; a
//! partial restore writes into production's database, so it asks. Each step has an
//! [`Effect`]; the effects that lose data or replace what production runs need a
//! confirmation the front end supplies ([`Confirm`]), asked once per instance before
//! anything runs.
//!
//! An instance is guarded as production when it is production, and, for the effects
//! that touch the database, when its database *is* production's database (the same
//! SQLite file once paths and symlinks are resolved, or the same server database; see
//! [`DatabaseIdentity`]); likewise `log-nuke` when its log files are production's.
//! Sharing is legitimate (a blue-green upgrade runs two
//! instances on one database), so it is not refused, only guarded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::engine::{resolve_path, DatabaseIdentity};
use crate::error::{Error, Result};
use crate::plan::Plan;

/// What a step does to the instance it runs on, as far as the guard is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Only looks (print, echo, processes), or writes only ostler's own records.
    Reads,
    /// Writes beside the live data (a restore's side database and stores): nothing
    /// live changes, and removing it undoes it.
    PreparesSide,
    /// Removes backups from the repository and the catalog (prune): the instances
    /// themselves are untouched.
    RemovesBackups,
    /// Builds an instance that has no build yet (its dir is missing or empty).
    CreatesBuild,
    /// Starts the service.
    StartsService,
    /// Stops the service: an outage, but nothing is lost and `start` undoes it.
    InterruptsService,
    /// Replaces the build the instance runs (a build in a dir that holds one).
    ReplacesBuild,
    /// Runs the instance's configure command, rewriting its configuration.
    Reconfigures,
    /// Empties the instance's log files.
    EmptiesLogs,
    /// Inserts rows into the live database (a partial restore).
    WritesDatabase,
    /// Replaces the database and stores with a backup's (restore, mirror).
    ReplacesData,
    /// Drops the database (db-nuke).
    DestroysDatabase,
}

impl Effect {
    /// Whether this effect on production needs a confirmation. Stopping and starting do
    /// not: they are the operator's daily tools and lose nothing. What loses data, or
    /// replaces what production runs, does.
    pub fn needs_confirmation(self) -> bool {
        matches!(
            self,
            Effect::ReplacesBuild
                | Effect::Reconfigures
                | Effect::EmptiesLogs
                | Effect::WritesDatabase
                | Effect::ReplacesData
                | Effect::DestroysDatabase
        )
    }

    /// What the effect does to the instance, in a few words for refusals and prompts.
    pub fn words(self) -> &'static str {
        match self {
            Effect::Reads => "only reads",
            Effect::PreparesSide => "writes beside its data",
            Effect::RemovesBackups => "removes backups",
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

    /// Whether the effect reaches the instance's database, and so production's when
    /// the two share it.
    pub fn touches_database(self) -> bool {
        matches!(
            self,
            Effect::WritesDatabase | Effect::ReplacesData | Effect::DestroysDatabase
        )
    }
}

/// Why an instance is guarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Exposure {
    /// It is the instance the `production` role points at.
    Production,
    /// Its database is the production instance's database.
    SharesProductionDatabase {
        production: String,
        database: DatabaseIdentity,
    },
    /// Some of its log files are the production instance's (after resolving paths).
    SharesProductionLogs {
        production: String,
        files: Vec<PathBuf>,
    },
}

/// One thing a plan will do to an instance: the operation as the user asked for it
/// (`rebuild`, `db-nuke`, `restore backup 3f2a1c over`) and its effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consequence {
    pub operation: String,
    pub effect: Effect,
}

/// What needs a confirmation: the instance, why it is guarded, what will be done to it.
#[derive(Debug, Clone, Serialize)]
pub struct Danger {
    pub instance: String,
    pub exposure: Exposure,
    pub consequences: Vec<Consequence>,
}

/// Asks the front end whether the actions may run on a guarded instance.
pub trait Confirm {
    fn confirm(&self, danger: &Danger) -> bool;
}

/// A confirmation already given (earlier in the same procedure).
pub struct Confirmed;

impl Confirm for Confirmed {
    fn confirm(&self, _: &Danger) -> bool {
        true
    }
}

/// Why `instance` is guarded for `effect`, if it is.
pub fn exposure(config: &Config, instance: &str, effect: Effect) -> Option<Exposure> {
    if !effect.needs_confirmation() {
        return None;
    }
    let production = config.production()?;
    if production == instance {
        return Some(Exposure::Production);
    }
    if effect == Effect::EmptiesLogs {
        let theirs: Vec<PathBuf> = config
            .log_files(production)
            .iter()
            .map(|p| resolve_path(p))
            .collect();
        let files: Vec<PathBuf> = config
            .log_files(instance)
            .iter()
            .map(|p| resolve_path(p))
            .filter(|p| theirs.contains(p))
            .collect();
        return (!files.is_empty()).then(|| Exposure::SharesProductionLogs {
            production: production.to_string(),
            files,
        });
    }
    if !effect.touches_database() {
        return None;
    }
    let database = config.database_identity(instance)?;
    (config.database_identity(production).as_ref() == Some(&database)).then(|| {
        Exposure::SharesProductionDatabase {
            production: production.to_string(),
            database,
        }
    })
}

/// Judges a plan before anything runs: for each guarded instance, asks once for all
/// the plan's steps will do to it, and refuses at the first "no", naming the
/// procedure, the instance, why it is guarded and what the steps would have done.
pub fn check(config: &Config, plan: &Plan, confirm: &dyn Confirm) -> Result<()> {
    let consequences: Vec<(String, Consequence)> = plan
        .steps
        .iter()
        .filter_map(|s| {
            Some((
                s.instance.clone()?,
                Consequence {
                    operation: plan.operation(s),
                    effect: s.effect,
                },
            ))
        })
        .collect();
    for d in &dangers(config, &consequences) {
        if !confirm.confirm(d) {
            return Err(refusal(d));
        }
    }
    Ok(())
}

/// The guarded instances among (instance, consequence) pairs, each once with all that
/// will be done to it, in the order they first appear.
fn dangers(config: &Config, consequences: &[(String, Consequence)]) -> Vec<Danger> {
    let mut dangers: Vec<Danger> = Vec::new();
    for (instance, consequence) in consequences {
        let Some(exposure) = exposure(config, instance, consequence.effect) else {
            continue;
        };
        match dangers.iter_mut().find(|d| &d.instance == instance) {
            Some(d) => {
                if !d.consequences.contains(consequence) {
                    d.consequences.push(consequence.clone());
                }
                // Production outranks sharing its database: say the stronger reason.
                if exposure == Exposure::Production {
                    d.exposure = exposure;
                }
            }
            None => dangers.push(Danger {
                instance: instance.clone(),
                exposure,
                consequences: vec![consequence.clone()],
            }),
        }
    }
    dangers
}

fn refusal(d: &Danger) -> Error {
    let mut operations: Vec<&str> = Vec::new();
    let mut effects: Vec<&str> = Vec::new();
    for c in &d.consequences {
        if !operations.contains(&c.operation.as_str()) {
            operations.push(&c.operation);
        }
        if !effects.contains(&c.effect.words()) {
            effects.push(c.effect.words());
        }
    }
    let why = match &d.exposure {
        Exposure::Production => "it is the production instance".to_string(),
        Exposure::SharesProductionDatabase {
            production,
            database,
        } => format!("its database is the production instance {production}'s ({database})"),
        Exposure::SharesProductionLogs { production, files } => format!(
            "its logs are the production instance {production}'s ({})",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Error::user(format!(
        "refusing to {} {}: {why} (this {})",
        operations.join(", "),
        d.instance,
        effects.join("; ")
    ))
    .with_hint("pass --yes-really-production, or run it on a terminal and type the instance's name")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        let text = r#"
[service]
name = "s"

[roles]
production = "p"

[instances.p]
dir = "p"
start = "x"
port = 1
logs = ["access.log"]
database = { kind = "sqlite", path = "data.db" }

[instances.q]
dir = "q"
start = "x"
port = 2
logs = ["../p/access.log"]
database = { kind = "sqlite", path = "../p/data.db" }

[instances.t]
dir = "t"
start = "x"
port = 3
database = { kind = "sqlite", path = "data.db" }
"#;
        Config::parse(text, &dir.join("ostler.toml")).unwrap()
    }

    #[test]
    fn only_effects_that_lose_data_or_replace_what_runs_are_guarded_and_sharing_only_for_what_is_shared(
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let c = config(tmp.path());
        for effect in [
            Effect::Reads,
            Effect::CreatesBuild,
            Effect::StartsService,
            Effect::InterruptsService,
        ] {
            assert_eq!(exposure(&c, "p", effect), None, "{effect:?}");
        }
        for effect in [
            Effect::ReplacesBuild,
            Effect::Reconfigures,
            Effect::EmptiesLogs,
            Effect::WritesDatabase,
            Effect::ReplacesData,
            Effect::DestroysDatabase,
        ] {
            assert_eq!(
                exposure(&c, "p", effect),
                Some(Exposure::Production),
                "{effect:?}"
            );
            // q shares p's database and a log file: guarded for what reaches them.
            assert_eq!(
                exposure(&c, "q", effect).is_some(),
                effect.touches_database() || effect == Effect::EmptiesLogs,
                "{effect:?}"
            );
            assert_eq!(exposure(&c, "t", effect), None, "{effect:?}");
        }
    }
}
