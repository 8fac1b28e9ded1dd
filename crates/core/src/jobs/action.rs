//! The janitor actions carried out in-process, as `ostler jobs exec NAME` runs them
//! (the scheduler starts that command for them, so a run is a process like any other):
//! `cleanup`, `sql` (under the instance's lock, journaled as the CLI's operations
//! are), `watch` (its command's output compared with the last run's; on a change the
//! `on_change` command runs, or the change is journaled as `watch-changed` for the
//! alerter), and `probe` (the instance runs, and answers its health URL; or, with
//! `args = ["NAME"]`, the `[[probes]]` entry NAME is run once and must be OK).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::cleanup::{cleanup, CleanupReport, CleanupSpec};
use super::sql::SqlOutcome;
use super::watch::Observation;
use super::{Action, JobConfig};
use crate::error::{Error, Result};
use crate::instance::Ostler;

/// How long a `sql` run may hold the instance's lock.
const SQL_LEASE: Duration = Duration::from_secs(3600);

/// How long a probe waits for the health URL.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What an in-process action did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Done {
    Cleanup(CleanupReport),
    Sql {
        instance: String,
        #[serde(flatten)]
        outcome: SqlOutcome,
    },
    Watch {
        #[serde(flatten)]
        observation: Observation,
        /// Its `on_change` command ran (with what it printed).
        on_change: Option<String>,
    },
    Probe {
        instance: String,
        pid: i32,
        /// The health URL answered 2xx (none when the instance has none).
        health: Option<String>,
    },
    /// `args = ["NAME"]`: the `[[probes]]` entry NAME, run once, was OK.
    #[serde(rename = "probe")]
    NamedProbe {
        probe: String,
        /// Its plugin line (`HTTP OK - 204 No Content in 0.012s | time=...`).
        line: String,
        #[serde(flatten)]
        result: crate::probes::ProbeResult,
    },
}

/// Carries out `job`'s janitor action (`dry_run`: a cleanup only lists).
pub fn run(ostler: &Ostler, job: &JobConfig, dry_run: bool) -> Result<Done> {
    let name = job.name.get_ref();
    let action = job.action.as_ref().map(|a| *a.get_ref());
    let dir = ostler.config.base_dir();
    match action {
        Some(Action::Cleanup) => {
            let path = job.path.as_deref().unwrap_or(Path::new("."));
            let root = dir.join(path);
            let spec = CleanupSpec {
                root: &root,
                older_than: job.older_than.map(|d| d.0).unwrap_or_default(),
                include: &job.include,
                exclude: &job.exclude,
            };
            Ok(Done::Cleanup(cleanup(&spec, ostler.clock.now(), dry_run)?))
        }
        Some(Action::Sql) => {
            let inst = ostler.instance(instance_of(job)?)?;
            let db = inst.database.clone().ok_or_else(|| {
                Error::user(format!(
                    "job `{name}`: instance {} has no [database] to run `query` against",
                    inst.name
                ))
            })?;
            let query = job.query.as_deref().unwrap_or("");
            let outcome = ostler.operate(&inst, "sql", SQL_LEASE, |runner| {
                super::sql::run(&db, runner, query)
            })?;
            Ok(Done::Sql {
                instance: inst.name,
                outcome,
            })
        }
        Some(Action::Watch) => {
            let runner = ostler.runner();
            let command = job.command.as_deref().unwrap_or("");
            let output = runner.shell(command, &dir, &[])?;
            let observation = super::watch::observe(&ostler.state_dir(), name, &output)?;
            let mut on_change = None;
            if observation.changed {
                let diff = observation.diff.clone().unwrap_or_default();
                match &job.on_change {
                    Some(line) => {
                        let env = [("OSTLER_WATCH_DIFF".to_string(), diff)];
                        on_change = Some(runner.shell(line, &dir, &env)?);
                    }
                    None => ostler.journal_event(
                        "watch-changed",
                        job.instance_in(&ostler.config).as_deref(),
                        &format!("{name}: the output of `{command}` changed:\n{diff}"),
                    )?,
                }
            }
            Ok(Done::Watch {
                observation,
                on_change,
            })
        }
        Some(Action::Probe) => probe(ostler, job),
        other => Err(Error::user(format!(
            "job `{name}` runs {}, which `ostler jobs exec` does not carry out",
            other.map_or("a command".to_string(), |a| format!(
                "action \"{}\"",
                a.name()
            ))
        ))
        .with_hint("`ostler jobs run NAME` runs any job")),
    }
}

fn instance_of(job: &JobConfig) -> Result<&str> {
    job.instance
        .as_ref()
        .map(|i| i.get_ref().as_str())
        .ok_or_else(|| Error::user(format!("job `{}` needs `instance`", job.name.get_ref())))
}

/// The instance runs, and its health URL (when it has one) answers 2xx; or, with
/// `args = ["NAME"]`, probe NAME is OK.
fn probe(ostler: &Ostler, job: &JobConfig) -> Result<Done> {
    if let Some(name) = job.args.first() {
        return named_probe(ostler, job, name);
    }
    let inst = ostler.instance(instance_of(job)?)?;
    let status = crate::ops::status(ostler, &inst)?;
    let Some(pid) = status.pid else {
        return Err(Error::failed(format!(
            "{} is not running ({})",
            inst.name, status.state
        )));
    };
    let health = match inst.health_url() {
        None => None,
        Some(url) => {
            let agent = ureq::AgentBuilder::new().timeout(PROBE_TIMEOUT).build();
            match agent.get(&url).call() {
                Ok(resp) if (200..300).contains(&resp.status()) => Some(url),
                Ok(resp) => {
                    return Err(Error::failed(format!(
                        "{}: {url} answered HTTP {}",
                        inst.name,
                        resp.status()
                    )))
                }
                Err(e) => return Err(Error::failed(format!("{}: {url}: {e}", inst.name))),
            }
        }
    };
    Ok(Done::Probe {
        instance: inst.name,
        pid,
        health,
    })
}

/// Runs `[[probes]]` entry `name` once; a result other than OK fails the run with its
/// plugin line.
fn named_probe(ostler: &Ostler, job: &JobConfig, name: &str) -> Result<Done> {
    let Some(probe) = ostler.config.probe(name) else {
        let known: Vec<&str> = ostler.config.probes.iter().map(|p| p.name()).collect();
        return Err(Error::user(format!(
            "job `{}`: its args name probe `{name}`, which is not in the config",
            job.name.get_ref()
        ))
        .with_hint(if known.is_empty() {
            "there are no [[probes]]".to_string()
        } else {
            format!("probes: {}", known.join(", "))
        }));
    };
    let result = crate::probes::run(ostler, probe);
    let line = result.nagios_line(probe.kind().nagios_word());
    if result.status != crate::probes::Status::Ok {
        return Err(Error::failed(format!("probe `{name}`: {line}")));
    }
    Ok(Done::NamedProbe {
        probe: name.to_string(),
        line,
        result,
    })
}
