//! The bin/manage surface as plans: `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]`.
//! Verbs may be abbreviated to any unique prefix; `restart` and `rebuild` expand to
//! their steps; the plan holds one step per (instance, verb), printable before it
//! runs (db-nuke's names the safety dump it writes first, and how to load it back).
//! Execution stops at the first failure except a failed `stop`, and between steps on
//! Ctrl-C. Each step carries its effect; the production guard (`guard`) judges the
//! plan by those effects, not by the verbs' names.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Action, Check, Plan, Procedure, Step, Undo};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::guard::{self, Confirm, Effect};
use crate::instance::{Instance, Ostler};
use crate::ops;
use crate::process::ProcessInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    Build,
    Start,
    Stop,
    Restart,
    Rebuild,
    Print,
    Echo,
    Processes,
    Configure,
    LogNuke,
    DbNuke,
}

impl Verb {
    pub const ALL: [Verb; 11] = [
        Verb::Build,
        Verb::Start,
        Verb::Stop,
        Verb::Restart,
        Verb::Rebuild,
        Verb::Print,
        Verb::Echo,
        Verb::Processes,
        Verb::Configure,
        Verb::LogNuke,
        Verb::DbNuke,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verb::Build => "build",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Rebuild => "rebuild",
            Verb::Print => "print",
            Verb::Echo => "echo",
            Verb::Processes => "processes",
            Verb::Configure => "configure",
            Verb::LogNuke => "log-nuke",
            Verb::DbNuke => "db-nuke",
        }
    }

    /// Parses a verb or a unique prefix of one (`sto`, `pri`); `_` may stand for `-`.
    pub fn parse(text: &str) -> Result<Verb> {
        let word = text.trim().replace('_', "-").to_ascii_lowercase();
        if word.is_empty() {
            return Err(Error::user(
                "empty command in the chain (two commas in a row?)",
            ));
        }
        if let Some(v) = Verb::ALL.iter().find(|v| v.name() == word) {
            return Ok(*v);
        }
        let matches: Vec<Verb> = Verb::ALL
            .iter()
            .copied()
            .filter(|v| v.name().starts_with(&word))
            .collect();
        match matches.as_slice() {
            [v] => Ok(*v),
            [] => Err(
                Error::user(format!("unknown command `{text}`")).with_hint(format!(
                    "commands: {}",
                    Verb::ALL
                        .iter()
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            many => Err(Error::user(format!(
                "`{text}` is ambiguous: it could be {}",
                many.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The primitive steps this verb stands for.
    pub fn expand(self) -> Vec<Verb> {
        match self {
            Verb::Restart => vec![Verb::Stop, Verb::Start],
            Verb::Rebuild => vec![Verb::Stop, Verb::Print, Verb::Build, Verb::Start],
            v => vec![v],
        }
    }

    /// What this step will do to `instance`, judged before anything runs: a
    /// build in a dir that already holds one replaces what the instance runs, a first
    /// build does not.
    pub fn effect(self, config: &Config, instance: &str) -> Effect {
        match self {
            Verb::Build => {
                let has_build = config
                    .instance_dir(instance)
                    .and_then(|d| std::fs::read_dir(d).ok())
                    .is_some_and(|mut entries| entries.next().is_some());
                if has_build {
                    Effect::ReplacesBuild
                } else {
                    Effect::CreatesBuild
                }
            }
            Verb::Start => Effect::StartsService,
            Verb::Stop => Effect::InterruptsService,
            // The gravest effect of their steps (plans hold only expanded steps).
            Verb::Restart | Verb::Rebuild => self
                .expand()
                .into_iter()
                .map(|v| v.effect(config, instance))
                .max()
                .unwrap_or(Effect::Reads),
            Verb::Print | Verb::Echo | Verb::Processes => Effect::Reads,
            Verb::Configure => Effect::Reconfigures,
            Verb::LogNuke => Effect::EmptiesLogs,
            Verb::DbNuke => Effect::DestroysDatabase,
        }
    }

    fn lock_ttl(self) -> Duration {
        match self {
            Verb::Build => Duration::from_secs(3600),
            _ => Duration::from_secs(600),
        }
    }
}

/// Builds the plan for `verbs` (comma-separated, abbreviations allowed) on `targets`
/// (comma-separated instances or roles). Nothing runs.
pub fn plan(ostler: &Ostler, verbs: &str, targets: &str) -> Result<Plan> {
    let verbs: Vec<Verb> = verbs.split(',').map(Verb::parse).collect::<Result<_>>()?;
    let mut instances = Vec::new();
    for t in targets.split(',') {
        let t = t.trim();
        if t.is_empty() {
            return Err(Error::user(
                "empty instance name in the list (two commas in a row?)",
            ));
        }
        let name = ostler.config.resolve(t)?;
        if !instances.contains(&name) {
            instances.push(name);
        }
    }
    let mut plan = Plan::new(Procedure::Chain {
        verbs: verbs.clone(),
        instances: instances.clone(),
    });
    for name in &instances {
        let inst = ostler.instance(name)?;
        for v in &verbs {
            for verb in v.expand() {
                let (action, check, undo) = step(ostler, &inst, verb)?;
                plan.steps.push(Step {
                    instance: Some(name.clone()),
                    action,
                    from: Some(*v),
                    effect: verb.effect(&ostler.config, name),
                    check,
                    undo,
                });
            }
        }
    }
    Ok(plan)
}

/// What one expanded verb does to `inst`, what proves it and how it is undone.
fn step(ostler: &Ostler, inst: &Instance, verb: Verb) -> Result<(Action, Check, Option<Undo>)> {
    Ok(match verb {
        Verb::Build => (
            Action::Build {
                command: inst.config.build.as_deref().map(|c| inst.expand(c)),
            },
            Check::CommandSucceeds,
            None,
        ),
        Verb::Configure => (
            Action::Configure {
                command: inst.config.configure.as_deref().map(|c| inst.expand(c)),
            },
            Check::CommandSucceeds,
            None,
        ),
        Verb::Start => (
            Action::Start,
            Check::Healthy {
                url: inst.health_url(),
            },
            Some(Undo::Stop),
        ),
        Verb::Stop => (Action::Stop, Check::ProcessGone, Some(Undo::Start)),
        Verb::Print => (Action::Print, Check::Nothing, None),
        Verb::Echo => (Action::Echo, Check::Nothing, None),
        Verb::Processes => (Action::Processes, Check::Nothing, None),
        Verb::LogNuke => (
            Action::EmptyLogs {
                files: ostler.config.log_files(&inst.name),
            },
            Check::LogsEmpty,
            None,
        ),
        Verb::DbNuke => {
            let db = inst
                .database
                .as_ref()
                .ok_or_else(|| Error::user(format!("instance `{}` has no database", inst.name)))?;
            let dump_dir = ops::safety_dump_dir(ostler);
            (
                Action::DropDatabase {
                    database: db.locator(),
                    dump_dir: dump_dir.clone(),
                },
                Check::DumpWrittenAndDatabaseEmpty,
                Some(Undo::LoadSafetyDump { dump_dir }),
            )
        }
        Verb::Restart | Verb::Rebuild => unreachable!("expanded verbs only"),
    })
}

/// What one step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub instance: String,
    pub verb: Verb,
    pub ok: bool,
    #[serde(flatten)]
    pub result: StepResult,
}

/// A step's result, typed: the front end says it in words.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum StepResult {
    Echoed,
    Printed(Box<ops::InstanceInfo>),
    Processes {
        processes: Vec<ProcessInfo>,
    },
    Built {
        built: ops::Built,
    },
    Configured,
    Started(ops::Started),
    Stopped(ops::Stopped),
    LogsEmptied(ops::LogsEmptied),
    DatabaseNuked(ops::DatabaseNuked),
    /// A stop that failed (the chain goes on: restart of a stopped instance works).
    Failed {
        error: String,
    },
}

/// The verb an action of a chain stands for.
fn verb_of(action: &Action) -> Result<Verb> {
    Ok(match action {
        Action::Build { .. } => Verb::Build,
        Action::Configure { .. } => Verb::Configure,
        Action::Start => Verb::Start,
        Action::Stop => Verb::Stop,
        Action::Print => Verb::Print,
        Action::Echo => Verb::Echo,
        Action::Processes => Verb::Processes,
        Action::EmptyLogs { .. } => Verb::LogNuke,
        Action::DropDatabase { .. } => Verb::DbNuke,
        other => {
            return Err(Error::failed(format!(
                "internal: a chain holds no step that does {other:?}"
            )))
        }
    })
}

/// Runs a chain's plan. `on_step` receives each outcome as it happens (the CLI prints
/// it). Each operation's journal entry records the plan it is part of.
pub fn execute(
    ostler: &Ostler,
    plan: &Plan,
    confirm: &dyn Confirm,
    on_step: &mut dyn FnMut(&StepOutcome),
) -> Result<Vec<StepOutcome>> {
    // The guard judges the whole plan before anything runs: a chain must not stop
    // half-way because its fourth step needed a confirmation.
    guard::check(&ostler.config, plan, confirm)?;
    let mut outcomes = Vec::new();
    for s in &plan.steps {
        ostler.interrupt.check()?;
        let name = s.instance.as_deref().ok_or_else(|| {
            Error::failed("internal: a chain's step names no instance".to_string())
        })?;
        let inst = ostler.instance(name)?;
        let verb = verb_of(&s.action)?;
        let result = match verb {
            Verb::Echo => Ok(StepResult::Echoed),
            Verb::Print => ops::print(ostler, &inst).map(|i| StepResult::Printed(Box::new(i))),
            Verb::Processes => {
                ops::processes(ostler, &inst).map(|processes| StepResult::Processes { processes })
            }
            verb => {
                ostler.operate_planned(&inst, verb.name(), verb.lock_ttl(), Some(plan), |runner| {
                    match verb {
                        Verb::Build => ops::build(ostler, &inst, runner)
                            .map(|built| StepResult::Built { built }),
                        Verb::Start => ops::start(ostler, &inst, runner).map(StepResult::Started),
                        Verb::Stop => ops::stop(ostler, &inst, runner).map(StepResult::Stopped),
                        Verb::Configure => {
                            ops::configure(ostler, &inst, runner).map(|()| StepResult::Configured)
                        }
                        Verb::LogNuke => ops::log_nuke(ostler, &inst).map(StepResult::LogsEmptied),
                        Verb::DbNuke => {
                            ops::db_nuke(ostler, &inst, runner).map(StepResult::DatabaseNuked)
                        }
                        _ => unreachable!("expanded verbs only"),
                    }
                })
            }
        };
        match result {
            Ok(result) => {
                let o = StepOutcome {
                    instance: inst.name.clone(),
                    verb,
                    ok: true,
                    result,
                };
                on_step(&o);
                outcomes.push(o);
            }
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) if verb == Verb::Stop && !matches!(e, Error::Busy { .. }) => {
                // A failed stop does not stop the chain: restart of a stopped instance works.
                let o = StepOutcome {
                    instance: inst.name.clone(),
                    verb,
                    ok: false,
                    result: StepResult::Failed {
                        error: crate::error::chain(&e).to_string(),
                    },
                };
                on_step(&o);
                outcomes.push(o);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes)
}
