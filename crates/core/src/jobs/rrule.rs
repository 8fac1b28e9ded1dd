//! The part of RFC 5545 recurrence rules that jobs use (`FREQ=DAILY;BYHOUR=2;BYMINUTE=0`,
//! as Indico writes them), evaluated in a job's zone.
//!
//! Why our own and not the `rrule` crate: `rrule` walks naive wall-clock times and puts a
//! zone on them afterwards, so an hourly rule loses the repeated hour in autumn and runs
//! 03:00 twice in spring, and a time in a gap lands where RFC 5545 puts it (02:30 runs at
//! 03:30), not where cron does; it also needs chrono and chrono-tz's own copy of the zone
//! database beside jiff's. Jobs need cron's daylight-saving rules for both kinds of
//! schedule (see `schedule`), which this small subset keeps:
//! - `FREQ=DAILY`, `WEEKLY`, `MONTHLY`, `YEARLY` pick local dates (every `INTERVAL`th
//!   day, week from `WKST`, month, year counted from `DTSTART`'s), then the times of day
//!   `BYHOUR` × `BYMINUTE` × `BYSECOND` (each defaulting to `DTSTART`'s), each resolved
//!   by cron's rule for fixed times (a gap runs at its end, a repeated time once);
//! - `FREQ=HOURLY`, `MINUTELY`, `SECONDLY` step on the real clock from `DTSTART` by
//!   `INTERVAL` units of elapsed time (`BYMINUTE`/`BYSECOND` pick the minutes and seconds
//!   inside each hour or minute), and the `BY...` parts of larger units filter by local
//!   time: cron's rule for interval jobs.
//!
//! Accepted parts: `FREQ`, `INTERVAL`, `COUNT`, `UNTIL`, `BYSECOND`, `BYMINUTE`, `BYHOUR`,
//! `BYDAY` (`MO`..`SU`; with an ordinal, `1MO`/`-1FR`, in monthly rules and yearly ones
//! with `BYMONTH`), `BYMONTHDAY` (negative counts from the month's end), `BYMONTH`,
//! `WKST`, and `DTSTART` (as a part, `DTSTART=20260101T020000`, or as the line
//! `DTSTART:20260101T020000` before `RRULE:...`; `...Z` is an instant, without it a wall-clock
//! time in the job's zone). Others (`BYSETPOS`, `BYYEARDAY`, `BYWEEKNO`, `TZID`) are refused by
//! name. Without `DTSTART` a rule starts at midnight, 2000-01-01, in the job's zone: the
//! origin `INTERVAL`s count from, so `FREQ=HOURLY;INTERVAL=2` runs at even hours.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::schedule::resolve_local;

/// Why a rule is not one ostler reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("`FREQ` is missing (e.g. FREQ=DAILY)")]
    NoFreq,
    #[error("`{0}` is not a part of a recurrence rule")]
    UnknownPart(String),
    #[error("`{0}` is not supported by ostler's recurrence rules")]
    Unsupported(String),
    #[error("`{0}` is given twice")]
    Twice(String),
    #[error("`{part}={value}`: {why}")]
    BadValue {
        part: String,
        value: String,
        why: String,
    },
    #[error("`COUNT` and `UNTIL` cannot both be given")]
    CountAndUntil,
    #[error("`{0}` is not `KEY=VALUE`")]
    NotAPart(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Freq {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Freq {
    /// The length of one step of a sub-daily frequency, in seconds.
    fn step_seconds(self) -> Option<i64> {
        match self {
            Freq::Secondly => Some(1),
            Freq::Minutely => Some(60),
            Freq::Hourly => Some(3600),
            _ => None,
        }
    }
}

/// A wall-clock time in the job's zone, or an instant (written with `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Local(DateTime),
    Instant(Timestamp),
}

impl When {
    fn resolve(self, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            When::Local(dt) => resolve_local(dt, tz),
            When::Instant(t) => Some(t),
        }
    }
}

/// A parsed rule. Lists are sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    freq: Freq,
    interval: i64,
    count: Option<u32>,
    until: Option<When>,
    seconds: Vec<i8>,
    minutes: Vec<i8>,
    hours: Vec<i8>,
    /// (ordinal within the month, weekday); ordinal 0 is every such weekday.
    days: Vec<(i8, Weekday)>,
    month_days: Vec<i8>,
    months: Vec<i8>,
    week_start: Weekday,
    start: When,
}

/// How far ahead a search looks before it says the rule fires no more: past every
/// combination of weekday, leap day and month the Gregorian calendar has (400 years).
const HORIZON_DAYS: i64 = 400 * 366;

impl Rule {
    pub(crate) fn parse(text: &str) -> Result<Rule, RuleError> {
        let mut parts: Vec<(String, String)> = Vec::new();
        for line in text.split_whitespace() {
            let upper = line.to_ascii_uppercase();
            let body = if let Some(rest) = upper.strip_prefix("RRULE:") {
                rest.to_string()
            } else if let Some(rest) = upper.strip_prefix("DTSTART:") {
                format!("DTSTART={rest}")
            } else if upper.starts_with("DTSTART;") {
                return Err(RuleError::Unsupported(
                    "DTSTART;TZID (the job's `timezone` is the rule's zone)".into(),
                ));
            } else {
                upper
            };
            for part in body.split(';').filter(|p| !p.is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| RuleError::NotAPart(part.to_string()))?;
                if parts.iter().any(|(seen, _)| seen == k) {
                    return Err(RuleError::Twice(k.to_string()));
                }
                parts.push((k.to_string(), v.to_string()));
            }
        }
        let mut rule = Rule {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            seconds: Vec::new(),
            minutes: Vec::new(),
            hours: Vec::new(),
            days: Vec::new(),
            month_days: Vec::new(),
            months: Vec::new(),
            week_start: Weekday::Monday,
            start: When::Local(jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0)),
        };
        let mut freq = None;
        for (k, v) in &parts {
            let bad = |why: &str| RuleError::BadValue {
                part: k.clone(),
                value: v.clone(),
                why: why.to_string(),
            };
            match k.as_str() {
                "FREQ" => {
                    freq =
                        Some(match v.as_str() {
                            "SECONDLY" => Freq::Secondly,
                            "MINUTELY" => Freq::Minutely,
                            "HOURLY" => Freq::Hourly,
                            "DAILY" => Freq::Daily,
                            "WEEKLY" => Freq::Weekly,
                            "MONTHLY" => Freq::Monthly,
                            "YEARLY" => Freq::Yearly,
                            _ => return Err(bad(
                                "one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY",
                            )),
                        })
                }
                "INTERVAL" => {
                    rule.interval = v
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("a whole number, 1 or more"))?
                        .into()
                }
                "COUNT" => {
                    rule.count = Some(
                        v.parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| bad("a whole number, 1 or more"))?,
                    )
                }
                "UNTIL" => rule.until = Some(parse_when(v).ok_or_else(|| bad(WHEN_FORM))?),
                "DTSTART" => rule.start = parse_when(v).ok_or_else(|| bad(WHEN_FORM))?,
                "BYSECOND" => {
                    rule.seconds = numbers(v, 0..=59).ok_or_else(|| bad("numbers 0 to 59"))?
                }
                "BYMINUTE" => {
                    rule.minutes = numbers(v, 0..=59).ok_or_else(|| bad("numbers 0 to 59"))?
                }
                "BYHOUR" => {
                    rule.hours = numbers(v, 0..=23).ok_or_else(|| bad("numbers 0 to 23"))?
                }
                "BYMONTH" => {
                    rule.months = numbers(v, 1..=12).ok_or_else(|| bad("numbers 1 to 12"))?
                }
                "BYMONTHDAY" => {
                    rule.month_days = numbers(v, -31..=31)
                        .filter(|d| !d.contains(&0))
                        .ok_or_else(|| bad("numbers 1 to 31 or -31 to -1"))?
                }
                "BYDAY" => {
                    let mut days = Vec::new();
                    for item in v.split(',') {
                        days.push(weekday_with_ordinal(item).ok_or_else(|| {
                            bad("weekdays MO,TU,WE,TH,FR,SA,SU, each maybe with an ordinal (1MO, -1FR)")
                        })?);
                    }
                    days.sort_by_key(|(n, d)| (*n, d.to_monday_zero_offset()));
                    days.dedup();
                    rule.days = days;
                }
                "WKST" => rule.week_start = weekday(v).ok_or_else(|| bad("a weekday: MO..SU"))?,
                "BYSETPOS" | "BYYEARDAY" | "BYWEEKNO" | "TZID" => {
                    return Err(RuleError::Unsupported(k.clone()))
                }
                _ => return Err(RuleError::UnknownPart(k.clone())),
            }
        }
        rule.freq = freq.ok_or(RuleError::NoFreq)?;
        if rule.count.is_some() && rule.until.is_some() {
            return Err(RuleError::CountAndUntil);
        }
        let ordinals_allowed =
            rule.freq == Freq::Monthly || (rule.freq == Freq::Yearly && !rule.months.is_empty());
        if !ordinals_allowed && rule.days.iter().any(|(n, _)| *n != 0) {
            return Err(RuleError::Unsupported(
                "a BYDAY ordinal (1MO, -1FR) outside monthly rules and yearly rules with BYMONTH"
                    .into(),
            ));
        }
        if rule.days.iter().any(|(n, _)| !(-5..=5).contains(n)) {
            return Err(RuleError::BadValue {
                part: "BYDAY".into(),
                value: parts
                    .iter()
                    .find(|(k, _)| k == "BYDAY")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                why: "an ordinal is 1 to 5 or -5 to -1".into(),
            });
        }
        Ok(rule)
    }

    /// Whether it fires at least once from its start on (in UTC; zones move times, they
    /// do not remove days).
    pub(crate) fn fires_ever(&self) -> bool {
        let Some(start) = self.start.resolve(&TimeZone::UTC) else {
            return false;
        };
        if self.freq.step_seconds().is_some()
            && !(self.clock_times_possible(start) && self.some_date_possible(start))
        {
            return false;
        }
        self.after(start - SignedDuration::from_secs(1), &TimeZone::UTC)
            .next()
            .is_some()
    }

    /// Whether a clock rule's steps ever meet its `BYHOUR`/`BYMINUTE`/`BYSECOND` (in
    /// UTC): the times of day its steps reach repeat every lcm(step, 1 day), so one such
    /// cycle of arithmetic tells (`FREQ=MINUTELY;INTERVAL=2;BYMINUTE=11` never does).
    fn clock_times_possible(&self, start: Timestamp) -> bool {
        let Some(unit) = self.freq.step_seconds() else {
            return true;
        };
        const DAY: i64 = 86_400;
        let step = unit * self.interval;
        let periods = DAY / gcd(step, DAY);
        let s0 = start.as_second();
        let offsets = self.clock_offsets(s0.rem_euclid(3600) / 60, s0.rem_euclid(60));
        (0..periods).any(|k| {
            let p = s0 + k * step;
            let unit_start = p - p.rem_euclid(unit);
            offsets.iter().any(|o| {
                let sod = (unit_start + o).rem_euclid(DAY);
                let (h, m, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
                self.clock_filters(h as i8, m as i8, s as i8)
            })
        })
    }

    /// Whether some date in the search horizon passes the `BYMONTH`/`BYMONTHDAY`/`BYDAY` limits.
    fn some_date_possible(&self, start: Timestamp) -> bool {
        if self.months.is_empty() && self.month_days.is_empty() && self.days.is_empty() {
            return true;
        }
        let mut d = start.to_zoned(TimeZone::UTC).date();
        for _ in 0..HORIZON_DAYS {
            if self.day_filters(d) {
                return true;
            }
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => return false,
            }
        }
        false
    }

    /// The instants inside one step of a clock rule, as seconds from the start of its hour
    /// (hourly) or minute (minutely): `BYMINUTE` × `BYSECOND`, defaults from the start.
    fn clock_offsets(&self, start_minute: i64, start_second: i64) -> Vec<i64> {
        let pick = |list: &Vec<i8>, default: i64| {
            if list.is_empty() {
                vec![default]
            } else {
                list.iter().map(|&n| i64::from(n)).collect()
            }
        };
        match self.freq {
            Freq::Hourly => {
                let mut v = Vec::new();
                for m in pick(&self.minutes, start_minute) {
                    for s in pick(&self.seconds, start_second) {
                        v.push(m * 60 + s);
                    }
                }
                v
            }
            Freq::Minutely => pick(&self.seconds, start_second),
            _ => vec![0],
        }
    }

    /// The limits a clock rule puts on a local time of day (an hourly rule's minutes and
    /// seconds are picked by [`Rule::clock_offsets`], not limited).
    fn clock_filters(&self, hour: i8, minute: i8, second: i8) -> bool {
        (self.hours.is_empty() || self.hours.contains(&hour))
            && (self.freq > Freq::Minutely
                || self.minutes.is_empty()
                || self.minutes.contains(&minute))
            && (self.freq > Freq::Secondly
                || self.seconds.is_empty()
                || self.seconds.contains(&second))
    }

    /// The times it fires strictly after `t`, in `tz`.
    pub(crate) fn after<'a>(&'a self, t: Timestamp, tz: &TimeZone) -> RuleOccurrences<'a> {
        let start = self.start.resolve(tz);
        let until = self.until.and_then(|u| u.resolve(tz));
        let mut it = RuleOccurrences {
            rule: self,
            tz: tz.clone(),
            start,
            until,
            last: t,
            left: None,
        };
        if let (Some(count), Some(start)) = (self.count, start) {
            // COUNT counts from the start: walk there first, counting the runs up to `t`.
            let mut left = count;
            let mut at = start - SignedDuration::from_secs(1);
            while let Some(next) = it.raw_next(at) {
                if next > t {
                    break;
                }
                left -= 1;
                if left == 0 {
                    break;
                }
                at = next;
            }
            it.left = Some(left);
        }
        it
    }

    /// The times of day of a calendar rule: `BYHOUR` × `BYMINUTE` × `BYSECOND`, defaults
    /// from the start, sorted.
    fn times_of_day(&self, start: &jiff::Zoned) -> Vec<jiff::civil::Time> {
        let or = |list: &Vec<i8>, default: i8| {
            if list.is_empty() {
                vec![default]
            } else {
                list.clone()
            }
        };
        let mut out = Vec::new();
        for h in or(&self.hours, start.hour()) {
            for m in or(&self.minutes, start.minute()) {
                for s in or(&self.seconds, start.second()) {
                    out.push(jiff::civil::time(h, m, s, 0));
                }
            }
        }
        out
    }

    /// Whether local date `d` is one the rule runs on (its period and its `BY...` days).
    fn date_matches(&self, d: Date, start: Date) -> bool {
        if d < start {
            return false;
        }
        let in_period = match self.freq {
            Freq::Daily => days_between(start, d) % self.interval == 0,
            Freq::Weekly => {
                let weeks = days_between(week_start(start, self.week_start), d) / 7;
                weeks % self.interval == 0
            }
            Freq::Monthly => months_between(start, d) % self.interval == 0,
            Freq::Yearly => i64::from(d.year() - start.year()) % self.interval == 0,
            // Sub-daily rules step on the clock; their periods are not dates.
            _ => true,
        };
        if !in_period || !self.day_filters(d) {
            return false;
        }
        // Without BY... days, a period's day is the start's (its weekday, its day of the
        // month, its date in the year).
        let no_days = self.days.is_empty() && self.month_days.is_empty();
        match self.freq {
            Freq::Weekly if no_days => d.weekday() == start.weekday(),
            Freq::Monthly if no_days => d.day() == start.day(),
            Freq::Yearly if no_days => {
                d.day() == start.day() && (!self.months.is_empty() || d.month() == start.month())
            }
            _ => true,
        }
    }

    /// The `BYMONTH`, `BYMONTHDAY` and `BYDAY` limits on a local date.
    fn day_filters(&self, d: Date) -> bool {
        if !self.months.is_empty() && !self.months.contains(&d.month()) {
            return false;
        }
        let dim = d.days_in_month();
        if !self.month_days.is_empty()
            && !self.month_days.iter().any(|&n| {
                if n > 0 {
                    d.day() == n
                } else {
                    d.day() == dim + 1 + n
                }
            })
        {
            return false;
        }
        if !self.days.is_empty()
            && !self.days.iter().any(|&(n, wd)| {
                d.weekday() == wd
                    && match n.cmp(&0) {
                        std::cmp::Ordering::Equal => true,
                        std::cmp::Ordering::Greater => (d.day() - 1) / 7 + 1 == n,
                        std::cmp::Ordering::Less => (dim - d.day()) / 7 + 1 == -n,
                    }
            })
        {
            return false;
        }
        true
    }
}

const WHEN_FORM: &str =
    "a date-time YYYYMMDDTHHMMSS (local to the job's zone), YYYYMMDDTHHMMSSZ (UTC) or a date YYYYMMDD";

fn parse_when(v: &str) -> Option<When> {
    let (body, utc) = match v.strip_suffix('Z') {
        Some(b) => (b, true),
        None => (v, false),
    };
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let digits =
        |s: &str, n: usize| (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then_some(());
    digits(date, 8)?;
    let d = Date::new(
        date[..4].parse().ok()?,
        date[4..6].parse().ok()?,
        date[6..8].parse().ok()?,
    )
    .ok()?;
    let dt = match time {
        None if !utc => d.at(0, 0, 0, 0),
        None => return None,
        Some(t) => {
            digits(t, 6)?;
            let t = jiff::civil::Time::new(
                t[..2].parse().ok()?,
                t[2..4].parse().ok()?,
                t[4..6].parse().ok()?,
                0,
            )
            .ok()?;
            d.to_datetime(t)
        }
    };
    Some(if utc {
        When::Instant(dt.to_zoned(TimeZone::UTC).ok()?.timestamp())
    } else {
        When::Local(dt)
    })
}

fn numbers(v: &str, range: std::ops::RangeInclusive<i8>) -> Option<Vec<i8>> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let n: i8 = item.trim().parse().ok()?;
        if !range.contains(&n) {
            return None;
        }
        out.push(n);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn weekday(v: &str) -> Option<Weekday> {
    Some(match v {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    })
}

fn weekday_with_ordinal(v: &str) -> Option<(i8, Weekday)> {
    let split = v.len().checked_sub(2)?;
    if !v.is_char_boundary(split) {
        return None;
    }
    let (n, d) = v.split_at(split);
    let n = if n.is_empty() {
        0
    } else {
        let n: i8 = n.strip_prefix('+').unwrap_or(n).parse().ok()?;
        if n == 0 {
            return None;
        }
        n
    };
    Some((n, weekday(d)?))
}

fn days_between(a: Date, b: Date) -> i64 {
    // Whole days: civil dates have no daylight saving.
    i64::from((b - a).get_days())
}

fn months_between(a: Date, b: Date) -> i64 {
    i64::from(b.year() - a.year()) * 12 + i64::from(b.month() - a.month())
}

/// The first day of the week (starting on `wkst`) that holds `d`.
fn week_start(d: Date, wkst: Weekday) -> Date {
    let back = (d.weekday().to_monday_zero_offset() - wkst.to_monday_zero_offset()).rem_euclid(7);
    d.checked_sub(i64::from(back).days()).unwrap_or(d)
}

/// A rule's times after some instant, in order. Built by [`Rule::after`].
pub(crate) struct RuleOccurrences<'a> {
    rule: &'a Rule,
    tz: TimeZone,
    /// The start in the zone; `None` if it is outside jiff's calendar.
    start: Option<Timestamp>,
    until: Option<Timestamp>,
    last: Timestamp,
    /// Runs `COUNT` still allows.
    left: Option<u32>,
}

impl Iterator for RuleOccurrences<'_> {
    type Item = Timestamp;
    fn next(&mut self) -> Option<Timestamp> {
        if self.left == Some(0) {
            return None;
        }
        let next = self.raw_next(self.last)?;
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        self.last = next;
        Some(next)
    }
}

impl RuleOccurrences<'_> {
    /// The first time strictly after `t` (and not before the start, nor after `UNTIL`),
    /// ignoring `COUNT`.
    fn raw_next(&self, t: Timestamp) -> Option<Timestamp> {
        let start = self.start?;
        let next = if self.rule.freq.step_seconds().is_some() {
            self.next_by_clock(t, start)
        } else {
            self.next_by_calendar(t, start)
        }?;
        match self.until {
            Some(until) if next > until => None,
            _ => Some(next),
        }
    }

    fn next_by_calendar(&self, t: Timestamp, start: Timestamp) -> Option<Timestamp> {
        let tz = &self.tz;
        let start_local = start.to_zoned(tz.clone());
        let start_date = start_local.date();
        let times = self.rule.times_of_day(&start_local);
        let floor = t.max(start - SignedDuration::from_nanos(1));
        // A day's times resolve to instants on that day or, in a gap, at its end, so the
        // search starts the day before `t`'s.
        let mut d = floor
            .to_zoned(tz.clone())
            .date()
            .yesterday()
            .ok()?
            .max(start_date);
        let end = d.checked_add(HORIZON_DAYS.days()).unwrap_or(Date::MAX);
        let until_date = self.until.map(|u| u.to_zoned(tz.clone()).date());
        while d <= end {
            if until_date.is_some_and(|u| d > u.tomorrow().unwrap_or(u)) {
                return None;
            }
            if self.rule.date_matches(d, start_date) {
                for time in &times {
                    let Some(at) = resolve_local(d.to_datetime(*time), tz) else {
                        continue;
                    };
                    if at > floor {
                        return Some(at);
                    }
                }
            }
            d = d.tomorrow().ok()?;
        }
        None
    }

    fn next_by_clock(&self, t: Timestamp, start: Timestamp) -> Option<Timestamp> {
        let rule = self.rule;
        let tz = &self.tz;
        let unit = rule.freq.step_seconds()?;
        let step = unit * rule.interval;
        let start = Timestamp::from_second(start.as_second()).ok()?;
        let floor = t.max(start - SignedDuration::from_nanos(1));
        let start_local = start.to_zoned(tz.clone());
        let offsets = rule.clock_offsets(
            i64::from(start_local.minute()),
            i64::from(start_local.second()),
        );
        let horizon = floor
            .checked_add(SignedDuration::from_hours(24 * HORIZON_DAYS))
            .ok()?;
        let elapsed = floor.as_second() - start.as_second();
        let mut k = (elapsed.div_euclid(step) - 1).max(0);
        // Steps looked at: a rule whose times the zone's offsets never reach (every other
        // minute, an odd BYMINUTE, in a zone 45 minutes off UTC) stops here instead of
        // walking 400 years.
        for _ in 0..MAX_CLOCK_STEPS {
            let p = start
                .checked_add(SignedDuration::from_secs(k * step))
                .ok()?;
            if p > horizon
                || self
                    .until
                    .is_some_and(|u| p > u + SignedDuration::from_secs(unit))
            {
                return None;
            }
            let local = p.to_zoned(tz.clone());
            // The step's hour or minute as the local clock cuts it.
            let into_unit = match rule.freq {
                Freq::Hourly => i64::from(local.minute()) * 60 + i64::from(local.second()),
                Freq::Minutely => i64::from(local.second()),
                _ => 0,
            };
            let unit_start = p - SignedDuration::from_secs(into_unit);
            let mut skip_to = None;
            for &o in &offsets {
                let c = unit_start + SignedDuration::from_secs(o);
                if c <= floor || c < start {
                    continue;
                }
                let cl = c.to_zoned(tz.clone());
                if !rule.day_filters(cl.date()) {
                    skip_to = cl
                        .tomorrow()
                        .ok()
                        .and_then(|z| z.start_of_day().ok())
                        .map(|z| z.timestamp());
                    break;
                }
                if rule.clock_filters(cl.hour(), cl.minute(), cl.second()) {
                    return Some(c);
                }
                skip_to = Some(c + SignedDuration::from_secs(rule.skip(&cl)));
                break;
            }
            let next_k = match skip_to {
                Some(s) => (s.as_second() - start.as_second()).div_euclid(step),
                None => k + 1,
            };
            k = next_k.max(k + 1);
        }
        None
    }
}

/// The most steps one search of a clock rule looks at (about a second of work).
const MAX_CLOCK_STEPS: u32 = 2_000_000;

impl Rule {
    /// Seconds from local time `cl` (which fails the clock limits) to the next time that
    /// could pass them: the next allowed hour, minute or second, else the next unit.
    fn skip(&self, cl: &jiff::Zoned) -> i64 {
        let (h, m, s) = (
            i64::from(cl.hour()),
            i64::from(cl.minute()),
            i64::from(cl.second()),
        );
        let next_in =
            |list: &Vec<i8>, now: i64| list.iter().map(|&n| i64::from(n)).find(|&n| n > now);
        if !self.hours.is_empty() && !self.hours.contains(&cl.hour()) {
            let into_hour = m * 60 + s;
            return match next_in(&self.hours, h) {
                Some(nh) => (nh - h) * 3600 - into_hour,
                None => 3600 - into_hour,
            };
        }
        if self.freq <= Freq::Minutely
            && !self.minutes.is_empty()
            && !self.minutes.contains(&cl.minute())
        {
            return match next_in(&self.minutes, m) {
                Some(nm) => (nm - m) * 60 - s,
                None => 3600 - (m * 60 + s),
            };
        }
        match next_in(&self.seconds, s) {
            Some(ns) => ns - s,
            None => 60 - s,
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs().max(1)
    } else {
        gcd(b, a % b)
    }
}
