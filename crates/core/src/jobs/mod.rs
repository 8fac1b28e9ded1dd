//! Scheduled jobs (issue 11): when a job runs ([`schedule`]: cron patterns and RFC 5545
//! recurrence rules, with Debian cron's daylight-saving rules) and what `[[jobs]]` in
//! `ostler.toml` may say ([`config`]). The daemon's scheduler, the runs it records and the
//! actions themselves live elsewhere; this module only knows times and the config's shape.

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

pub use config::{Action, JobConfig, Missed, Overlap};
pub use rrule::RuleError;
pub use schedule::{Occurrences, Schedule, ScheduleError};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::Config;
use crate::error::{Error, Result};

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

/// The next `count` times job `name` runs strictly after `from`.
pub fn next_runs(config: &Config, name: &str, from: Timestamp, count: usize) -> Result<NextRuns> {
    let job = config.job(name).ok_or_else(|| {
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
    })?;
    let zone = job.zone(config);
    let times = job.schedule.after(from, &zone).take(count).collect();
    Ok(NextRuns {
        job: name.to_string(),
        zone,
        times,
    })
}
