//! `[[jobs]]` in `ostler.toml`: what runs when. One entry names a job, its schedule
//! (cron or RFC 5545 rule, read by [`Schedule`]'s `Deserialize`, so a bad one points at
//! its own line), its zone, and what it runs: a built-in [`Action`] or a shell `command`,
//! never both. Keys that belong to one action (`query` to `sql`, `path` to `cleanup`...)
//! are refused on any other.
//!
//! Values wrong on their own (a schedule, a duration, an action's name) are refused by
//! serde, so toml points at them; what needs other keys or the rest of the config (an
//! instance that does not exist, two jobs with one name, a zone nobody knows) is found by
//! [`problems`], all at once, each at its span.

use std::path::PathBuf;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Schedule;
use crate::config::{Config, HumanDuration};

/// One `[[jobs]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// A name as instances have (`[A-Za-z0-9][A-Za-z0-9._-]*`), unique among jobs.
    pub name: Spanned<String>,
    /// `0 * * * *`, `*/10 * * * * *` (seconds first), `@daily`, or
    /// `FREQ=DAILY;BYHOUR=2;BYMINUTE=0`.
    pub schedule: Schedule,
    /// An IANA zone the schedule is read in; default `[service] timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Spanned<String>>,
    /// A built-in action; or `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Spanned<Action>>,
    /// A shell command (`sh -c`), in the config file's directory; with `action =
    /// "watch"`, the command whose output is watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The instance (or role) an action works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Spanned<String>>,
    /// A run still going after this long is killed with its process group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub missed: Missed,
    /// Each run starts up to this much later than its time, at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<HumanDuration>,
    /// A failed run is tried again this many times.
    #[serde(default)]
    pub retries: u32,
    /// The wait before the first retry, doubled for each next one.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: HumanDuration,
    /// A failed run (after its retries) raises an alert; on unless turned off, so a
    /// failure is never only counted.
    #[serde(default = "default_true")]
    pub alert_on_failure: bool,
    /// Built-in actions: their command-line arguments (`["--restore-test"]` for verify,
    /// `["offsite"]`, a copy's name, for copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `sql`: the statement, run in a transaction against the instance's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `cleanup`: the directory files are deleted below (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `cleanup`: files older than this are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<HumanDuration>,
    /// `cleanup`: only files matching one of these globs (relative to `path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// `cleanup`: never files matching one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `watch`: a shell command run when the watched output changed (without it, the
    /// change is alerted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<String>,
}

/// `[scheduler]`: the run history kept (runs that are over; pruned hourly).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// At most this many runs per job.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: usize,
    /// None older than this.
    #[serde(default = "default_keep_runs_for")]
    pub keep_runs_for: HumanDuration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            keep_runs: default_keep_runs(),
            keep_runs_for: default_keep_runs_for(),
        }
    }
}

fn default_keep_runs() -> usize {
    1000
}

fn default_keep_runs_for() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(90 * 24 * 3600))
}

fn default_retry_backoff() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

fn default_true() -> bool {
    true
}

/// The built-in things a job can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Backup,
    Prune,
    Copy,
    Verify,
    RotateLogs,
    Cleanup,
    Sql,
    Watch,
    Probe,
}

impl Action {
    /// Whether the action needs `instance`.
    pub fn needs_instance(self) -> bool {
        matches!(self, Action::Backup | Action::Sql | Action::Probe)
    }

    /// The name written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Prune => "prune",
            Action::Copy => "copy",
            Action::Verify => "verify",
            Action::RotateLogs => "rotate-logs",
            Action::Cleanup => "cleanup",
            Action::Sql => "sql",
            Action::Watch => "watch",
            Action::Probe => "probe",
        }
    }
}

/// What a run does when the previous run of the job is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    /// This run is skipped (and recorded as skipped).
    #[default]
    Skip,
    /// This run waits for the previous one.
    Queue,
    /// The previous run is killed, then this one starts.
    KillPrevious,
}

/// What happens to the runs a job missed while the daemon was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// The missed runs are coalesced into one, run at start-up, saying how many were
    /// missed (systemd's `Persistent=`; never Kubernetes' give-up after 100).
    #[default]
    RunOnce,
    /// Missed runs are only counted; the next run is the next scheduled time.
    Skip,
}

impl JobConfig {
    /// The instance its action works on, a role resolved to the instance behind it
    /// now (what the journal files its runs under).
    pub fn instance_in(&self, config: &Config) -> Option<String> {
        let named = self.instance.as_ref()?.get_ref();
        Some(config.resolve(named).unwrap_or_else(|_| named.clone()))
    }

    /// The zone its schedule is read in: its own `timezone`, else the service's.
    /// (Both are checked when the config is read; an unknown name here falls back to
    /// the service's zone.)
    pub fn zone(&self, config: &Config) -> TimeZone {
        match &self.timezone {
            Some(name) => TimeZone::get(name.get_ref()).unwrap_or_else(|_| config.timezone()),
            None => config.timezone(),
        }
    }
}

impl Config {
    /// `[service] timezone`, else the host's zone (as cron reads its crontab in).
    pub fn timezone(&self) -> TimeZone {
        self.service
            .timezone
            .as_ref()
            .and_then(|name| TimeZone::get(name.get_ref()).ok())
            .unwrap_or_else(TimeZone::system)
    }

    /// The job named `name`.
    pub fn job(&self, name: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.name.get_ref() == name)
    }
}

/// A problem in the text: where it starts, and what it is.
pub type Problem = (usize, String);

/// What serde cannot check in `[service] timezone` and `[[jobs]]`.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let unknown_zone = |name: &Spanned<String>| TimeZone::get(name.get_ref()).is_err();
    if let Some(tz) = &config.service.timezone {
        if unknown_zone(tz) {
            out.push((
                tz.span().start,
                format!(
                    "[service] timezone `{}` is not a known time zone (write an IANA name like \"Europe/Zurich\", or \"UTC\")",
                    tz.get_ref()
                ),
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for job in &config.jobs {
        let name = job.name.get_ref();
        let at = job.name.span().start;
        if let Err(e) = crate::config::check_name(name) {
            out.push((at, format!("job name `{name}` is not allowed: {e}")));
        }
        if !names.insert(name.as_str()) {
            out.push((at, format!("two jobs are named `{name}`")));
        }
        if let Some(tz) = &job.timezone {
            if unknown_zone(tz) {
                out.push((
                    tz.span().start,
                    format!(
                        "job `{name}`: timezone `{}` is not a known time zone",
                        tz.get_ref()
                    ),
                ));
            }
        }
        if let Some(instance) = &job.instance {
            if config.resolve(instance.get_ref()).is_err() {
                out.push((
                    instance.span().start,
                    format!(
                        "job `{name}` names instance `{}`, which is not defined (instances: {})",
                        instance.get_ref(),
                        config.instance_names().join(", ")
                    ),
                ));
            }
        }
        out.extend(
            what_runs(job)
                .into_iter()
                .map(|m| (at, format!("job `{name}`: {m}"))),
        );
    }
    out
}

/// The problems with what a job runs: exactly one of `action` and `command` (a watch
/// has both), the keys its action needs, and none that belong to another.
fn what_runs(job: &JobConfig) -> Vec<String> {
    let mut out = Vec::new();
    let action = job.action.as_ref().map(|a| *a.get_ref());
    match (action, &job.command) {
        (None, None) => out.push("say what it runs: `action = \"backup\"` (or another built-in) or `command = \"...\"`".to_string()),
        (Some(a), Some(_)) if a != Action::Watch => out.push(format!(
            "give `action` or `command`, not both (`command` goes with action \"{}\" only for \"watch\")",
            a.name()
        )),
        (Some(Action::Watch), None) => out.push("action \"watch\" needs `command`: the command whose output is watched".to_string()),
        _ => {}
    }
    if let Some(a) = action {
        // A probe job naming a [[probes]] entry in `args` checks that probe instead.
        let names_a_probe = a == Action::Probe && !job.args.is_empty();
        if a.needs_instance() && job.instance.is_none() && !names_a_probe {
            out.push(format!("action \"{}\" needs `instance`", a.name()));
        }
        if a == Action::Sql && job.query.is_none() {
            out.push("action \"sql\" needs `query`".to_string());
        }
        if a == Action::Cleanup {
            if job.path.is_none() {
                out.push("action \"cleanup\" needs `path`".to_string());
            }
            if job.older_than.is_none() {
                out.push("action \"cleanup\" needs `older_than`".to_string());
            }
        }
    }
    // Each action's own keys, and whether they are given.
    let own: [(&str, Option<Action>, bool); 7] = [
        ("query", Some(Action::Sql), job.query.is_some()),
        ("path", Some(Action::Cleanup), job.path.is_some()),
        (
            "older_than",
            Some(Action::Cleanup),
            job.older_than.is_some(),
        ),
        ("include", Some(Action::Cleanup), !job.include.is_empty()),
        ("exclude", Some(Action::Cleanup), !job.exclude.is_empty()),
        ("on_change", Some(Action::Watch), job.on_change.is_some()),
        ("args", None, !job.args.is_empty()),
    ];
    for (key, belongs, given) in own {
        if !given {
            continue;
        }
        let fits = match belongs {
            Some(b) => action == Some(b),
            // `args` are for any built-in action.
            None => action.is_some(),
        };
        if !fits {
            out.push(match belongs {
                Some(b) => format!("`{key}` is only for action \"{}\"", b.name()),
                None => format!(
                    "`{key}` is only for built-in actions (a `command` has its arguments in it)"
                ),
            });
        }
    }
    out
}
