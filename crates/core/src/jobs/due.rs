//! When a job is due, decided without I/O: which of its scheduled times passed since its
//! cursor, whether they came on time or were missed (the daemon was down, the machine
//! slept), a run's jitter, and a retry's wait. The scheduler does what these say.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{JobConfig, Missed, Schedule};

/// A scheduled time seen more than this after it passed was missed, not merely late.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// At most this many missed times are counted (a seconds-level job down for a week
/// would otherwise be counted for seconds on end); more shows as this many.
pub const MISSED_COUNT_CAP: u64 = 100_000;

/// What the scheduled times since the cursor call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing passed.
    Nothing,
    /// The newest time passed just now: run it. `superseded` earlier times came too,
    /// all within [`ON_TIME`] (the scheduler woke late, a run of a seconds-level job
    /// held a core): the run stands for them; none of them was missed.
    OnTime { at: Timestamp, superseded: u64 },
    /// Times passed unseen (the daemon was down, the machine slept): `count` of them,
    /// the last at `latest`. One run stands for all (`missed = "run-once"`), or none
    /// (`"skip"`).
    Missed {
        latest: Timestamp,
        count: u64,
        run: bool,
    },
}

/// The times of `schedule` (in `zone`) after `through` up to `now`.
pub fn due(
    schedule: &Schedule,
    zone: &TimeZone,
    missed: Missed,
    through: Timestamp,
    now: Timestamp,
) -> Due {
    let mut count = 0u64;
    let mut first = None;
    let mut latest = None;
    for t in schedule.after(through, zone) {
        if t > now || count >= MISSED_COUNT_CAP {
            break;
        }
        count += 1;
        first.get_or_insert(t);
        latest = Some(t);
    }
    let (Some(first), Some(latest)) = (first, latest) else {
        return Due::Nothing;
    };
    // The oldest time decides: seen within ON_TIME, every time since the cursor came
    // while the scheduler was watching.
    if now.duration_since(first) <= crate::clock::signed(ON_TIME) {
        Due::OnTime {
            at: latest,
            superseded: count - 1,
        }
    } else {
        Due::Missed {
            latest,
            count,
            run: missed == Missed::RunOnce,
        }
    }
}

/// How long after its time a run of `job` for `at` starts: up to `jitter`, the same
/// for the same job and time (so a restarted daemon picks the same moment), spread
/// across jobs (so a hundred hourly jobs do not all start at :00).
pub fn jitter(job: &JobConfig, at: Timestamp) -> Duration {
    let Some(max) = job.jitter.map(|j| j.0).filter(|d| !d.is_zero()) else {
        return Duration::ZERO;
    };
    let key = format!("{}\0{}", job.name.get_ref(), at.as_second());
    let hash = blake3::hash(key.as_bytes());
    let n = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    let millis = max.as_millis().min(u64::MAX as u128) as u64;
    Duration::from_millis(n % (millis + 1))
}

/// How long retry number `retry` (1 for the first) waits: the job's `retry_backoff`,
/// doubled for each next retry, at most a day.
pub fn retry_wait(job: &JobConfig, retry: u32) -> Duration {
    let doubled = job
        .retry_backoff
        .0
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
    doubled.min(Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn hourly() -> Schedule {
        Schedule::parse("0 * * * *").unwrap()
    }

    #[test]
    fn a_time_just_passed_is_on_time() {
        let d = due(
            &hourly(),
            &TimeZone::UTC,
            Missed::RunOnce,
            at("2026-01-01T09:00:00Z"),
            at("2026-01-01T10:00:00.020Z"),
        );
        assert_eq!(
            d,
            Due::OnTime {
                at: at("2026-01-01T10:00:00Z"),
                superseded: 0
            }
        );
    }

    #[test]
    fn nothing_passed_before_the_next_time() {
        let d = due(
            &hourly(),
            &TimeZone::UTC,
            Missed::RunOnce,
            at("2026-01-01T10:00:00Z"),
            at("2026-01-01T10:59:59Z"),
        );
        assert_eq!(d, Due::Nothing);
    }

    /// Kubernetes' CronJob gives up after 100 missed schedules; systemd's
    /// `Persistent=` runs once. Three days of an hourly job: one run, 72 counted.
    #[test]
    fn times_missed_while_down_are_one_run_that_says_how_many() {
        let d = due(
            &hourly(),
            &TimeZone::UTC,
            Missed::RunOnce,
            at("2026-01-01T10:00:00Z"),
            at("2026-01-04T10:30:00Z"),
        );
        assert_eq!(
            d,
            Due::Missed {
                latest: at("2026-01-04T10:00:00Z"),
                count: 72,
                run: true
            }
        );
        let skip = due(
            &hourly(),
            &TimeZone::UTC,
            Missed::Skip,
            at("2026-01-01T10:00:00Z"),
            at("2026-01-04T10:30:00Z"),
        );
        assert!(matches!(skip, Due::Missed { run: false, .. }));
    }

    #[test]
    fn one_time_seen_long_after_it_passed_was_missed() {
        let d = due(
            &hourly(),
            &TimeZone::UTC,
            Missed::RunOnce,
            at("2026-01-01T09:00:00Z"),
            at("2026-01-01T10:05:00Z"),
        );
        assert!(matches!(d, Due::Missed { count: 1, .. }), "{d:?}");
    }

    /// A seconds-level job whose scheduler woke 2.5 s late: three times came while it
    /// watched; one run for the newest, standing for the two before, none "missed".
    #[test]
    fn times_that_came_while_the_scheduler_was_late_are_on_time() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        let d = due(
            &every_second,
            &TimeZone::UTC,
            Missed::Skip,
            at("2026-01-01T10:00:00Z"),
            at("2026-01-01T10:00:03.500Z"),
        );
        assert_eq!(
            d,
            Due::OnTime {
                at: at("2026-01-01T10:00:03Z"),
                superseded: 2
            }
        );
    }

    #[test]
    fn a_seconds_job_down_for_a_month_is_counted_up_to_the_cap() {
        let every_second = Schedule::parse("* * * * * *").unwrap();
        let d = due(
            &every_second,
            &TimeZone::UTC,
            Missed::RunOnce,
            at("2026-01-01T00:00:00Z"),
            at("2026-02-01T00:00:00Z"),
        );
        assert!(
            matches!(
                d,
                Due::Missed {
                    count: MISSED_COUNT_CAP,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    fn job(toml_text: &str) -> JobConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn jitter_is_within_bounds_stable_and_spread() {
        let a =
            job("name = \"a\"\nschedule = \"0 * * * *\"\ncommand = \"true\"\njitter = \"10m\"\n");
        let b =
            job("name = \"b\"\nschedule = \"0 * * * *\"\ncommand = \"true\"\njitter = \"10m\"\n");
        let t = at("2026-01-01T10:00:00Z");
        assert_eq!(jitter(&a, t), jitter(&a, t));
        let spread: std::collections::BTreeSet<Duration> = (0..24)
            .map(|h| {
                jitter(
                    &a,
                    at("2026-01-01T00:00:00Z") + jiff::SignedDuration::from_hours(h),
                )
            })
            .collect();
        assert!(spread.len() > 20, "{spread:?}");
        assert!(spread.iter().all(|d| *d <= Duration::from_secs(600)));
        assert_ne!(jitter(&a, t), jitter(&b, t));
        let none = job("name = \"c\"\nschedule = \"0 * * * *\"\ncommand = \"true\"\n");
        assert_eq!(jitter(&none, t), Duration::ZERO);
    }

    #[test]
    fn retries_wait_doubling_from_the_backoff() {
        let j = job("name = \"a\"\nschedule = \"0 * * * *\"\ncommand = \"true\"\nretries = 3\nretry_backoff = \"10s\"\n");
        let waits: Vec<u64> = (1..=4).map(|n| retry_wait(&j, n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80]);
        assert_eq!(retry_wait(&j, 60), Duration::from_secs(24 * 3600));
    }
}
