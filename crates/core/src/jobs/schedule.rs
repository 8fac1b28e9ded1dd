//! When a job runs: a cron pattern or an RFC 5545 recurrence rule, read from the text in
//! `schedule = "..."`, and the times it fires in a zone.
//!
//! Daylight saving follows Debian's cron (vixie cron's rule, which croner and
//! healthchecks.io's cronsim follow too; `docs/SCHEDULES.md` says it for users):
//! - a *fixed-time* schedule (one second, one minute and one hour: `30 2 * * *`, a daily
//!   rule at 02:30) runs once a day whatever the clock does: a time that falls in the
//!   spring-forward gap runs at the first instant after the gap (03:00 in Europe/Zurich),
//!   a time that happens twice in the fall-back hour runs at its first occurrence only;
//! - an *interval* schedule (a `*` or a step in the second, minute or hour field, as in
//!   `*/5 * * * *` and `0 * * * *`; a rule with `FREQ=HOURLY`, `MINUTELY` or `SECONDLY`)
//!   runs on the real clock: nothing in the gap (that wall-clock hour does not exist), both passes of
//!   the repeated hour, so an hourly job still runs once every real hour.
//!
//! Cron patterns are croner's (4.0.3 or later: the DST gap panic of croner-rust #16 and
//! the doubled run before a gap of #67 are fixed there), driven through croner's own
//! civil-time trait on jiff's types, so ostler's one time library stays in the API.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use croner::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, Zoned};

use super::rrule::{Rule, RuleError};

/// A parsed `schedule`: either kind, with the text it was read from.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<croner::Cron>),
    Rule(Box<Rule>),
}

/// Why a schedule's text is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the schedule is empty (write a cron pattern like \"0 * * * *\" or a rule like \"FREQ=DAILY;BYHOUR=2;BYMINUTE=0\")")]
    Empty,
    /// croner's reason, in its words.
    #[error("not a cron pattern (5 fields, or 6 with seconds first): {0}")]
    Cron(String),
    #[error("not a recurrence rule: {0}")]
    Rule(#[from] RuleError),
    /// A pattern or rule that is well formed but matches no time at all (`0 0 30 2 *`).
    #[error("it never fires: no date matches it")]
    NeverFires,
}

impl Schedule {
    /// Reads a cron pattern (`0 * * * *`, `*/10 * * * * *`, `@daily`) or, when the text
    /// has `FREQ=`, a recurrence rule (`FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=3`). A schedule
    /// that can never fire is an error here, not a silent job.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let kind = if trimmed.to_ascii_uppercase().contains("FREQ=") {
            Kind::Rule(Box::new(Rule::parse(trimmed)?))
        } else {
            let cron = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Optional)
                .year(croner::parser::Year::Disallowed)
                .build()
                .parse(trimmed)
                .map_err(|e| ScheduleError::Cron(cron_reason(&e)))?;
            Kind::Cron(Box::new(cron))
        };
        let schedule = Schedule {
            text: trimmed.to_string(),
            kind,
        };
        if !schedule.fires_ever() {
            return Err(ScheduleError::NeverFires);
        }
        Ok(schedule)
    }

    /// The text it was read from (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether it is a recurrence rule (else a cron pattern).
    pub fn is_rule(&self) -> bool {
        matches!(self.kind, Kind::Rule(_))
    }

    /// The first time it fires strictly after `t`, in zone `tz`; `None` when it fires no
    /// more (a rule's `UNTIL` or `COUNT` is spent, or the calendar's end is reached).
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        self.after(t, tz).next()
    }

    /// Every time it fires strictly after `t`, in order.
    pub fn after(&self, t: Timestamp, tz: &TimeZone) -> Occurrences<'_> {
        let state = match &self.kind {
            Kind::Cron(cron) => State::Cron {
                cron,
                last: Some(Local(t.to_zoned(tz.clone()))),
            },
            Kind::Rule(rule) => State::Rule(rule.after(t, tz)),
        };
        Occurrences { state }
    }

    /// Whether it fires at all. Checked from 2000-01-01 UTC over croner's whole calendar
    /// (to 5000) or a rule's search horizon: a pattern that matches some date fires within
    /// that span, one that matches none (February 30th) never does.
    fn fires_ever(&self) -> bool {
        let origin: Timestamp = "2000-01-01T00:00:00Z".parse().expect("a valid timestamp");
        match &self.kind {
            // A cron pattern's days repeat every 400 years; croner looks far enough.
            Kind::Cron(_) => self.next_after(origin, &TimeZone::UTC).is_some(),
            // A rule fires from its DTSTART on (which may be long before 2000 or after).
            Kind::Rule(rule) => rule.fires_ever(),
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Read from the text in the file, so a bad schedule is refused where it is written.
impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("schedule `{}`: {e}", text.trim())))
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// croner's error without its own prefix ("Invalid pattern: ...").
fn cron_reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The times a [`Schedule`] fires after some instant, in order, each strictly later than
/// the one before.
pub struct Occurrences<'a> {
    state: State<'a>,
}

enum State<'a> {
    Cron {
        cron: &'a croner::Cron,
        last: Option<Local>,
    },
    Rule(super::rrule::RuleOccurrences<'a>),
}

impl Iterator for Occurrences<'_> {
    type Item = Timestamp;
    fn next(&mut self) -> Option<Timestamp> {
        match &mut self.state {
            State::Cron { cron, last } => {
                let from = last.take()?;
                // croner errs past its calendar's end (year 5000): no more runs.
                let next = cron.find_next_occurrence(&from, false).ok()?;
                let t = next.0.timestamp();
                *last = Some(next);
                Some(t)
            }
            State::Rule(rule) => rule.next(),
        }
    }
}

/// The instant a wall-clock time names in `tz`, by cron's rule: a time in a
/// spring-forward gap is the first instant after the gap, a time that happens twice is
/// its first occurrence. `None` only at the ends of jiff's calendar.
pub(crate) fn resolve_local(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()
        }
        AmbiguousOffset::Gap { .. } => {
            // Read with the offset before the gap, the time lands after the transition
            // (RFC 5545's reading: 02:30 is 03:30); the transition itself is where the
            // gap ends and the clock's first valid time.
            let late = ambiguous.later().ok()?;
            let transition = tz.preceding(late + SignedDuration::from_nanos(1)).next()?;
            Some(transition.timestamp())
        }
    }
}

/// jiff's zoned time as croner's civil-time backend (croner's own jiff backend is for
/// jiff 0.2; ostler is on 0.1). A copy of croner's `jiff_impl` on these types.
#[derive(Clone, Debug)]
struct Local(Zoned);

impl CronDateTime for Local {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0.datetime();
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(i32::from(d.year()), d.month() as u32, d.day() as u32),
            CivilTime::from_parts_unchecked(d.hour() as u32, d.minute() as u32, d.second() as u32),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(self.0.weekday().to_sunday_zero_offset() as u32)
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> Result<Resolution<Local>, croner::errors::CronError> {
        let invalid = |_| croner::errors::CronError::InvalidDate;
        let year =
            i16::try_from(civil.year()).map_err(|_| croner::errors::CronError::InvalidDate)?;
        let dt = DateTime::new(
            year,
            civil.month() as i8,
            civil.day() as i8,
            civil.hour() as i8,
            civil.minute() as i8,
            civil.second() as i8,
            0,
        )
        .map_err(invalid)?;
        let ambiguous = self.0.time_zone().to_ambiguous_zoned(dt);
        Ok(match ambiguous.offset() {
            AmbiguousOffset::Unambiguous { .. } => {
                Resolution::Single(Local(ambiguous.unambiguous().map_err(invalid)?))
            }
            AmbiguousOffset::Fold { .. } => Resolution::Ambiguous(
                Local(ambiguous.clone().earlier().map_err(invalid)?),
                Local(ambiguous.later().map_err(invalid)?),
            ),
            AmbiguousOffset::Gap { .. } => Resolution::Gap,
        })
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Local> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Local)
    }

    fn cmp_instant(&self, other: &Local) -> Ordering {
        self.0.timestamp().cmp(&other.0.timestamp())
    }
}

#[cfg(test)]
mod tests;
