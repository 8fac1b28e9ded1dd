//! Schedules against the calendar: daylight saving as Debian's cron does it, both kinds of
//! schedule, never-firing ones refused, and no input that panics.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use proptest::prelude::*;

use super::{Schedule, ScheduleError};
use crate::jobs::RuleError;

fn zurich() -> TimeZone {
    TimeZone::get("Europe/Zurich").unwrap()
}

fn at(text: &str) -> Timestamp {
    crate::time::parse_user_time(text).unwrap()
}

/// Every run from `from` (exclusive) up to `to` (exclusive), as RFC 3339 in `tz`.
fn runs(schedule: &str, tz: &TimeZone, from: &str, to: &str) -> Vec<String> {
    let s = Schedule::parse(schedule).unwrap();
    let to = at(to);
    s.after(at(from), tz)
        .take_while(|t| *t < to)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect()
}

#[test]
fn a_daily_0230_job_runs_once_on_the_spring_forward_day_at_0300() {
    for schedule in ["30 2 * * *", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"] {
        assert_eq!(
            runs(
                schedule,
                &zurich(),
                "2026-03-28 00:00 Europe/Zurich",
                "2026-03-31 00:00 Europe/Zurich"
            ),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
            ],
            "{schedule}"
        );
    }
}

#[test]
fn a_daily_0230_job_runs_once_on_the_fall_back_day_at_the_first_0230() {
    for schedule in ["30 2 * * *", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"] {
        assert_eq!(
            runs(
                schedule,
                &zurich(),
                "2026-10-24 00:00 Europe/Zurich",
                "2026-10-27 00:00 Europe/Zurich"
            ),
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
            ],
            "{schedule}"
        );
        // Asked from inside the repeated hour's second pass, it does not run again that day.
        let s = Schedule::parse(schedule).unwrap();
        let second_pass = at("2026-10-25T01:10:00Z"); // 02:10 +01:00
        assert_eq!(
            s.next_after(second_pass, &zurich()),
            Some(at("2026-10-26 02:30 Europe/Zurich")),
            "{schedule}"
        );
    }
}

#[test]
fn hourly_jobs_run_every_real_hour_across_both_transitions() {
    for schedule in ["0 * * * *", "FREQ=HOURLY", "@hourly"] {
        for (day, hours) in [("2026-03-29", 23), ("2026-10-25", 25)] {
            let s = Schedule::parse(schedule).unwrap();
            let from = at(&format!("{day} 00:00 Europe/Zurich"));
            let list: Vec<Timestamp> = std::iter::once(from)
                .chain(s.after(from, &zurich()))
                .take(hours + 1)
                .collect();
            for w in list.windows(2) {
                assert_eq!(
                    w[1].as_second() - w[0].as_second(),
                    3600,
                    "{schedule} on {day}: {w:?}"
                );
            }
            // The last one is the next day's midnight: the day had `hours` hours.
            assert_eq!(
                list.last()
                    .unwrap()
                    .to_zoned(zurich())
                    .strftime("%H:%M")
                    .to_string(),
                "00:00",
                "{schedule} on {day}"
            );
        }
    }
}

#[test]
fn every_five_minutes_keeps_five_real_minutes_across_the_gap_and_the_fold() {
    for schedule in ["*/5 * * * *", "FREQ=MINUTELY;INTERVAL=5"] {
        for day in ["2026-03-29", "2026-10-25"] {
            let s = Schedule::parse(schedule).unwrap();
            let from = at(&format!("{day} 01:00 Europe/Zurich"));
            let list: Vec<Timestamp> = s.after(from, &zurich()).take(40).collect();
            for w in list.windows(2) {
                assert_eq!(
                    w[1].as_second() - w[0].as_second(),
                    300,
                    "{schedule} on {day}: {w:?}"
                );
            }
        }
    }
}

/// croner-rust #16: the next occurrence in a DST gap panicked.
#[test]
fn croner_16_next_occurrence_in_a_dst_gap_is_the_gaps_end() {
    let ny = TimeZone::get("America/New_York").unwrap();
    let s = Schedule::parse("0 2 * * *").unwrap();
    let next = s.next_after(at("2025-03-09 01:30 America/New_York"), &ny);
    assert_eq!(next, Some(at("2025-03-09 03:00 -04:00")));
}

#[test]
fn a_schedule_that_never_fires_is_an_error() {
    for text in [
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=4",
        // Every other minute from minute 0: minute 11 never comes.
        "FREQ=MINUTELY;INTERVAL=2;BYMINUTE=11",
        "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30",
    ] {
        assert_eq!(
            Schedule::parse(text).unwrap_err(),
            ScheduleError::NeverFires,
            "{text}"
        );
    }
    // February 29th fires (in leap years).
    let s = Schedule::parse("0 0 29 2 *").unwrap();
    assert_eq!(
        s.next_after(at("2026-01-01T00:00:00Z"), &TimeZone::UTC),
        Some(at("2028-02-29T00:00:00Z"))
    );
}

#[test]
fn bad_schedules_say_why() {
    let e = |t: &str| Schedule::parse(t).unwrap_err().to_string();
    assert!(e("").contains("empty"), "{}", e(""));
    assert!(
        e("61 * * * *").starts_with("not a cron pattern"),
        "{}",
        e("61 * * * *")
    );
    assert!(
        e("* * *").starts_with("not a cron pattern"),
        "{}",
        e("* * *")
    );
    assert_eq!(
        Schedule::parse("FREQ=DAILY;BYSETPOS=1").unwrap_err(),
        ScheduleError::Rule(RuleError::Unsupported("BYSETPOS".into()))
    );
    assert_eq!(
        Schedule::parse("FREQ=DAILY;COLOUR=RED").unwrap_err(),
        ScheduleError::Rule(RuleError::UnknownPart("COLOUR".into()))
    );
    assert_eq!(
        Schedule::parse("FREQ=FORTNIGHTLY").unwrap_err().to_string(),
        "not a recurrence rule: `FREQ=FORTNIGHTLY`: one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY"
    );
    assert!(e("FREQ=DAILY;BYHOUR=24").contains("numbers 0 to 23"));
    assert!(e("FREQ=DAILY;FREQ=HOURLY").contains("twice"));
    assert!(e("FREQ=DAILY;COUNT=2;UNTIL=20300101").contains("COUNT"));
    assert!(e("FREQ=WEEKLY;BYDAY=1MO").contains("ordinal"));
}

#[test]
fn rules_as_indico_writes_them() {
    let utc = TimeZone::UTC;
    // Mondays and Fridays at 03:00.
    assert_eq!(
        runs(
            "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=3",
            &utc,
            "2026-06-01 00:00 UTC",
            "2026-06-09 00:00 UTC"
        ),
        [
            "2026-06-01T03:00:00+00:00",
            "2026-06-05T03:00:00+00:00",
            "2026-06-08T03:00:00+00:00"
        ]
    );
    // Every two hours from the default start (midnight, 2000-01-01): even hours.
    assert_eq!(
        runs(
            "FREQ=HOURLY;INTERVAL=2",
            &utc,
            "2026-06-01 00:30 UTC",
            "2026-06-01 07:00 UTC"
        ),
        [
            "2026-06-01T02:00:00+00:00",
            "2026-06-01T04:00:00+00:00",
            "2026-06-01T06:00:00+00:00"
        ]
    );
    // Twice an hour.
    assert_eq!(
        runs(
            "FREQ=HOURLY;BYMINUTE=0,30",
            &utc,
            "2026-06-01 00:10 UTC",
            "2026-06-01 01:45 UTC"
        ),
        [
            "2026-06-01T00:30:00+00:00",
            "2026-06-01T01:00:00+00:00",
            "2026-06-01T01:30:00+00:00"
        ]
    );
    // The last Friday of the month at 18:00.
    assert_eq!(
        runs(
            "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18;BYMINUTE=0",
            &utc,
            "2026-01-01 00:00 UTC",
            "2026-04-01 00:00 UTC"
        ),
        [
            "2026-01-30T18:00:00+00:00",
            "2026-02-27T18:00:00+00:00",
            "2026-03-27T18:00:00+00:00"
        ]
    );
    // Every other day from a start, until an end; and a count.
    assert_eq!(
        runs(
            "DTSTART:20260601T080000\nRRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260606T235959",
            &zurich(),
            "2026-01-01 00:00 UTC",
            "2027-01-01 00:00 UTC"
        ),
        [
            "2026-06-01T08:00:00+02:00",
            "2026-06-03T08:00:00+02:00",
            "2026-06-05T08:00:00+02:00"
        ]
    );
    let s = Schedule::parse("FREQ=DAILY;DTSTART=20260601T080000Z;COUNT=3").unwrap();
    assert_eq!(s.after(at("2026-06-02 12:00 UTC"), &utc).count(), 1);
    assert_eq!(s.after(at("2026-01-01 12:00 UTC"), &utc).count(), 3);
}

#[test]
fn next_after_is_strictly_after_even_on_the_second() {
    let s = Schedule::parse("0 * * * *").unwrap();
    let t = at("2026-06-01 10:00 UTC");
    assert_eq!(
        s.next_after(t, &TimeZone::UTC),
        Some(at("2026-06-01 11:00 UTC"))
    );
    let t = at("2026-06-01T09:59:59.999Z");
    assert_eq!(
        s.next_after(t, &TimeZone::UTC),
        Some(at("2026-06-01 10:00 UTC"))
    );
    let s = Schedule::parse("FREQ=HOURLY").unwrap();
    let t = at("2026-06-01 10:00 UTC");
    assert_eq!(
        s.next_after(t, &TimeZone::UTC),
        Some(at("2026-06-01 11:00 UTC"))
    );
}

fn zones() -> impl Strategy<Value = TimeZone> {
    prop::sample::select(vec![
        "UTC",
        "Europe/Zurich",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Apia",
    ])
    .prop_map(|z| TimeZone::get(z).unwrap())
}

/// One cron field: `*`, a value, a step, a range or a list, within `lo..=hi`.
fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (lo..=hi).prop_map(|v| v.to_string()),
        (1..=hi.max(2)).prop_map(|s| format!("*/{s}")),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        prop::collection::vec(lo..=hi, 1..4).prop_map(|v| v
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

fn instants() -> impl Strategy<Value = Timestamp> {
    // 1990 to 2060.
    (631_152_000i64..2_871_763_200).prop_map(|s| Timestamp::from_second(s).unwrap())
}

/// Each of the next five runs is later than the one before, and `next_after` the one
/// before gives it. A text refused (a schedule that never fires) passes.
fn strictly_increasing(text: &str, t: Timestamp, tz: &TimeZone) -> Result<(), TestCaseError> {
    if let Ok(s) = Schedule::parse(text) {
        let mut last = t;
        for next in s.after(t, tz).take(5) {
            prop_assert!(next > last, "{text} in {tz:?}: {next} after {last}");
            prop_assert_eq!(s.next_after(last, tz), Some(next), "{} from {}", text, last);
            last = next;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cron_next_after_is_strictly_increasing_and_never_panics(
        second in prop::option::of(field(0, 59)),
        minute in field(0, 59),
        hour in field(0, 23),
        dom in field(1, 31),
        month in field(1, 12),
        dow in field(0, 6),
        t in instants(),
        tz in zones(),
    ) {
        let text = match second {
            Some(s) => format!("{s} {minute} {hour} {dom} {month} {dow}"),
            None => format!("{minute} {hour} {dom} {month} {dow}"),
        };
        // A pattern may be refused (never fires) but never panics.
        strictly_increasing(&text, t, &tz)?;
    }

    #[test]
    fn rule_next_after_is_strictly_increasing_and_never_panics(
        freq in prop::sample::select(vec!["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
        interval in 1u32..5,
        hours in prop::option::of(prop::collection::vec(0u32..24, 1..3)),
        minutes in prop::option::of(prop::collection::vec(0u32..60, 1..3)),
        days in prop::option::of(prop::sample::subsequence(vec!["MO", "TU", "WE", "TH", "FR", "SA", "SU"], 1..3)),
        month_days in prop::option::of(prop::collection::vec(-31i32..=31, 1..3)),
        t in instants(),
        tz in zones(),
    ) {
        let list = |v: &Vec<u32>| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut text = format!("FREQ={freq};INTERVAL={interval}");
        if let Some(h) = &hours { text += &format!(";BYHOUR={}", list(h)); }
        if let Some(m) = &minutes { text += &format!(";BYMINUTE={}", list(m)); }
        if let Some(d) = &days { text += &format!(";BYDAY={}", d.join(",")); }
        if let Some(md) = &month_days {
            text += &format!(";BYMONTHDAY={}", md.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
        }
        strictly_increasing(&text, t, &tz)?;
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panic(text in "\\PC{0,40}") {
        let _ = Schedule::parse(&text);
    }
}
