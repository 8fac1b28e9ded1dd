//! Scheduled jobs: when a job runs ([`schedule`]: cron patterns and RFC 5545 recurrence
//! rules, with Debian cron's daylight-saving rules) and what `[[jobs]]` in `ostler.toml`
//! may say ([`config`]); every run recorded ([`runs`]); when times are due, missed,
//! jittered and retried ([`due`]); a run as a process ([`launch`]) carried out and
//! recorded ([`perform`]); the janitor actions run in-process by `ostler jobs exec`
//! ([`action`]: [`cleanup`], [`sql`], [`watch`], probe). The daemon's scheduler
//! (`daemon::scheduler`) decides when; this module knows what.

pub mod action;
pub mod cleanup;
pub mod config;
pub mod due;
pub mod launch;
pub mod perform;
mod rrule;
pub mod runs;
pub mod schedule;
pub mod sql;
pub mod watch;

pub use config::{Action, JobConfig, Missed, Overlap, SchedulerConfig};
pub use rrule::RuleError;
pub use schedule::{Occurrences, Schedule, ScheduleError};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::instance::Ostler;
use runs::{Counts, Run, RunState};

/// The next runs of one job: `ostler jobs next`.
#[derive(Debug, Clone)]
pub struct NextRuns {
    pub job: String,
    /// The zone the schedule is read in (times are shown in it).
    pub zone: TimeZone,
    /// Strictly after the time asked from, in order; fewer than asked when the schedule
    /// ends (a rule's `UNTIL` or `COUNT`).
    pub times: Vec<Timestamp>,
}

/// The job named `name`, or an error listing the jobs there are.
pub fn find<'a>(config: &'a Config, name: &str) -> Result<&'a JobConfig> {
    config.job(name).ok_or_else(|| {
        let names: Vec<&str> = config
            .jobs
            .iter()
            .map(|j| j.name.get_ref().as_str())
            .collect();
        Error::user(format!("no job named `{name}`")).with_hint(if names.is_empty() {
            "the config has no [[jobs]]".to_string()
        } else {
            format!("jobs: {}", names.join(", "))
        })
    })
}

/// The next `count` times job `name` runs strictly after `from`.
pub fn next_runs(config: &Config, name: &str, from: Timestamp, count: usize) -> Result<NextRuns> {
    let job = find(config, name)?;
    let zone = job.zone(config);
    let times = job.schedule.after(from, &zone).take(count).collect();
    Ok(NextRuns {
        job: name.to_string(),
        zone,
        times,
    })
}

/// One job as `ostler jobs` shows it (Indico's `show status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    pub name: String,
    pub schedule: String,
    /// The zone its schedule is read in (IANA name).
    pub zone: String,
    /// `backup`, `sql`... or `command`.
    pub runs: String,
    pub instance: Option<String>,
    /// Its next scheduled time after now.
    pub next: Option<Timestamp>,
    /// The last run that is over.
    pub last: Option<Run>,
    /// The run in flight.
    pub running: Option<Run>,
    pub counts: Counts,
}

/// Every job of the config with its next time, its last run and its counts.
pub fn overview(ostler: &Ostler) -> Result<Vec<Overview>> {
    let state = ostler.state()?;
    let now = ostler.clock.now();
    let mut counts = runs::counts(&state)?;
    let running = runs::in_state(&state, RunState::Running)?;
    let mut out = Vec::new();
    for job in &ostler.config.jobs {
        let name = job.name.get_ref();
        let zone = job.zone(&ostler.config);
        out.push(Overview {
            name: name.clone(),
            schedule: job.schedule.text().to_string(),
            zone: zone.iana_name().unwrap_or("local").to_string(),
            runs: job
                .action
                .as_ref()
                .map_or("command", |a| a.get_ref().name())
                .to_string(),
            instance: job.instance.as_ref().map(|i| i.get_ref().clone()),
            next: job.schedule.next_after(now, &zone),
            last: runs::last_over(&state, name)?,
            running: running.iter().find(|r| &r.job == name).cloned(),
            counts: counts.remove(name).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Queues a run of job `name` to start now; the daemon's scheduler starts it (its
/// caller tells the scheduler: [`Event::JobQueued`](crate::daemon::bus::Event)).
pub fn queue(ostler: &Ostler, name: &str) -> Result<Run> {
    find(&ostler.config, name)?;
    let state = ostler.state()?;
    let id = runs::record(&state, &runs::NewRun::manual(name))?
        .ok_or_else(|| Error::failed(format!("a run of job `{name}` could not be queued")))?;
    runs::get(&state, id)?
        .ok_or_else(|| Error::failed(format!("run {id} of job `{name}` vanished")))
}
