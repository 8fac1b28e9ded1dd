//! The bin/manage surface as plans: `ostler CMD[,CMD...] INSTANCE[,INSTANCE...]`.
//! Verbs may be abbreviated to any unique prefix; `restart` and `rebuild` expand to
//! their steps; the plan is the ordered list of (instance, verb) steps, printable
//! before it runs. Execution stops at the first failure except a failed `stop`, and
//! between steps on Ctrl-C. Each step carries its effect; the production guard
//! (`guard`) judges the plan by those effects, not by the verbs' names.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::guard::{self, Action, Confirm, Effect};
use crate::instance::Ostler;
use crate::ops;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub instance: String,
    pub verb: Verb,
    /// The verb the user typed that this step comes from (`rebuild` for its `build`).
    pub from: Verb,
    /// What the step will do, as the production guard judges it.
    pub effect: Effect,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
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
    let mut steps = Vec::new();
    for instance in &instances {
        for v in &verbs {
            for step in v.expand() {
                steps.push(Step {
                    instance: instance.clone(),
                    verb: step,
                    from: *v,
                    effect: step.effect(&ostler.config, instance),
                });
            }
        }
    }
    Ok(Plan { steps })
}

/// What one step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub instance: String,
    pub verb: Verb,
    pub ok: bool,
    pub message: String,
}

/// Runs a plan. `on_step` receives each outcome as it happens (the CLI prints it).
pub fn execute(
    ostler: &Ostler,
    plan: &Plan,
    confirm: &dyn Confirm,
    on_step: &mut dyn FnMut(&StepOutcome),
) -> Result<Vec<StepOutcome>> {
    // The guard judges the whole plan before anything runs: a chain must not stop
    // half-way because its fourth step needed a confirmation.
    let actions: Vec<(String, Action)> = plan
        .steps
        .iter()
        .map(|s| {
            (
                s.instance.clone(),
                Action {
                    operation: s.from.name().to_string(),
                    effect: s.effect,
                },
            )
        })
        .collect();
    guard::check(&ostler.config, &actions, confirm)?;
    let mut outcomes = Vec::new();
    for s in &plan.steps {
        ostler.interrupt.check()?;
        let inst = ostler.instance(&s.instance)?;
        let result = match s.verb {
            Verb::Echo => Ok(inst.name.clone()),
            Verb::Print => ops::print(ostler, &inst),
            Verb::Processes => ops::processes(ostler, &inst).map(|ps| {
                let mut out = format!("{:>7} {:>7} {:>9}  COMMAND\n", "PID", "PPID", "RSS");
                for p in ps {
                    out += &format!(
                        "{:>7} {:>7} {:>7}Ki  {}{}\n",
                        p.pid,
                        p.ppid,
                        p.rss_kib,
                        "  ".repeat(p.depth),
                        p.command
                    );
                }
                out.trim_end().to_string()
            }),
            verb => ostler.operate(&inst, verb.name(), verb.lock_ttl(), |runner| match verb {
                Verb::Build => ops::build(ostler, &inst, runner),
                Verb::Start => ops::start(ostler, &inst, runner),
                Verb::Stop => ops::stop(ostler, &inst, runner),
                Verb::Configure => ops::configure(ostler, &inst, runner),
                Verb::LogNuke => ops::log_nuke(ostler, &inst),
                Verb::DbNuke => ops::db_nuke(ostler, &inst, runner),
                _ => unreachable!("expanded verbs only"),
            }),
        };
        match result {
            Ok(message) => {
                let o = StepOutcome {
                    instance: inst.name.clone(),
                    verb: s.verb,
                    ok: true,
                    message,
                };
                on_step(&o);
                outcomes.push(o);
            }
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) if s.verb == Verb::Stop && !matches!(e, Error::Busy { .. }) => {
                // A failed stop does not stop the chain: restart of a stopped instance works.
                let o = StepOutcome {
                    instance: inst.name.clone(),
                    verb: s.verb,
                    ok: false,
                    message: crate::error::chain(&e).to_string(),
                };
                on_step(&o);
                outcomes.push(o);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes)
}
