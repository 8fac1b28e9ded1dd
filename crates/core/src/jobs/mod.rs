//! Scheduled jobs (issue 11): when a job runs ([`schedule`]: cron patterns and RFC 5545
//! recurrence rules, with Debian cron's daylight-saving rules) and what `[[jobs]]` in
//! `ostler.toml` may say ([`config`]). The daemon's scheduler, the runs it records and the
//! actions themselves live elsewhere; this module only knows times and the config's shape.

pub mod config;
mod rrule;
pub mod schedule;

pub use config::{Action, JobConfig, Missed, Overlap};
pub use rrule::RuleError;
pub use schedule::{Occurrences, Schedule, ScheduleError};
