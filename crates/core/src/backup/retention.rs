//! Retention: which backups to keep, by the rules restic and borg users know
//! (keep-last, -hourly, -daily, -weekly, -monthly, -within), with the buckets cut in an
//! explicit zone so that DST and the host's zone never move them. The newest good
//! backup of an instance is always kept. Deciding is pure (a list in, a plan out) and
//! tested with fixed times; `prune` applies the plan.
//!
//! Every rule counts back from an instance's newest backup, never from now (as restic
//! does): an instance whose backups stopped for a month keeps what its rules kept the
//! day they stopped, so pruning never needs to know what time it is.

use std::collections::{BTreeMap, HashSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::config::RetentionConfig;

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: String,
    pub instance: String,
    pub started_at: Timestamp,
    pub keep: bool,
    /// Why kept (the rules that keep it) or why dropped.
    pub reasons: Vec<String>,
}

/// Names the bucket (hour, day, ISO week, month) a backup's local time falls in.
type Bucket = fn(&jiff::Zoned) -> String;

/// Decides for good backups `(id, instance, time)`; each instance separately.
pub fn plan(
    backups: &[(String, String, Timestamp)],
    policy: &RetentionConfig,
    tz: &TimeZone,
) -> Vec<Decision> {
    let mut by_instance: BTreeMap<&str, Vec<&(String, String, Timestamp)>> = BTreeMap::new();
    for b in backups {
        by_instance.entry(&b.1).or_default().push(b);
    }
    let mut out = Vec::new();
    for (_, mut list) in by_instance {
        // newest first
        list.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        let mut reasons: Vec<Vec<String>> = vec![Vec::new(); list.len()];
        reasons[0].push("newest backup of the instance".into());
        if let Some(n) = policy.keep_last {
            for r in reasons.iter_mut().take(n as usize) {
                r.push(format!("keep-last {n}"));
            }
        }
        let buckets: [(&str, Option<u32>, Bucket); 4] = [
            ("hourly", policy.keep_hourly, |z| {
                z.strftime("%Y-%m-%d %H").to_string()
            }),
            ("daily", policy.keep_daily, |z| {
                z.strftime("%Y-%m-%d").to_string()
            }),
            ("weekly", policy.keep_weekly, |z| {
                let d = z.date().iso_week_date();
                format!("{}-W{:02}", d.year(), d.week())
            }),
            ("monthly", policy.keep_monthly, |z| {
                z.strftime("%Y-%m").to_string()
            }),
        ];
        for (name, count, bucket) in buckets {
            let Some(n) = count else { continue };
            let mut seen: HashSet<String> = HashSet::new();
            for (i, b) in list.iter().enumerate() {
                if seen.len() >= n as usize {
                    break;
                }
                let key = bucket(&b.2.to_zoned(tz.clone()));
                if seen.insert(key.clone()) {
                    reasons[i].push(format!("keep-{name} {n} ({key})"));
                }
            }
        }
        if let Some(within) = &policy.keep_within {
            let newest = list[0].2;
            let span =
                jiff::SignedDuration::try_from(within.0).unwrap_or(jiff::SignedDuration::ZERO);
            for (i, b) in list.iter().enumerate() {
                if newest.duration_since(b.2) <= span {
                    reasons[i].push(format!(
                        "keep-within {}",
                        humantime::format_duration(within.0)
                    ));
                }
            }
        }
        for (b, r) in list.iter().zip(reasons) {
            out.push(Decision {
                id: b.0.clone(),
                instance: b.1.clone(),
                started_at: b.2,
                keep: !r.is_empty(),
                reasons: if r.is_empty() {
                    vec!["no rule keeps it".into()]
                } else {
                    r
                },
            });
        }
    }
    out.sort_by(|a, b| {
        a.instance
            .cmp(&b.instance)
            .then(a.started_at.cmp(&b.started_at))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hourly(n: usize, from: &str) -> Vec<(String, String, Timestamp)> {
        (0..n)
            .map(|i| {
                let t = at(from) + jiff::SignedDuration::from_hours(i as i64);
                (format!("b{i:03}"), "gb-1".to_string(), t)
            })
            .collect()
    }

    #[test]
    fn hourly_and_daily_buckets_follow_the_zone() {
        // 48 hourly backups from 2026-03-28 00:00 UTC, across the EU DST switch.
        let backups = hourly(48, "2026-03-28T00:00:00Z");
        let policy = RetentionConfig {
            keep_daily: Some(3),
            ..Default::default()
        };
        let zurich = TimeZone::get("Europe/Zurich").unwrap();
        let kept: Vec<String> = plan(&backups, &policy, &zurich)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| {
                d.started_at
                    .to_zoned(zurich.clone())
                    .strftime("%Y-%m-%d %H:%M %:z")
                    .to_string()
            })
            .collect();
        // The last backup of each Zurich day: 03-28 23:00 +01:00, 03-29 23:00 +02:00,
        // and the newest (03-29 23:00 UTC = 03-30 01:00 +02:00).
        assert_eq!(
            kept,
            [
                "2026-03-28 23:00 +01:00",
                "2026-03-29 23:00 +02:00",
                "2026-03-30 01:00 +02:00"
            ]
        );
        let utc_kept = plan(&backups, &policy, &TimeZone::UTC)
            .into_iter()
            .filter(|d| d.keep)
            .count();
        assert_eq!(utc_kept, 2, "in UTC the 48 hours are exactly two days");
    }

    #[test]
    fn the_newest_is_always_kept_and_every_decision_has_a_reason() {
        let backups = hourly(5, "2026-01-01T00:00:00Z");
        let d = plan(&backups, &RetentionConfig::default(), &TimeZone::UTC);
        assert_eq!(d.iter().filter(|d| d.keep).count(), 1);
        assert!(d.last().unwrap().keep);
        assert!(d.iter().all(|d| !d.reasons.is_empty()));
    }

    #[test]
    fn keep_last_and_within() {
        let backups = hourly(10, "2026-01-01T00:00:00Z");
        let policy = RetentionConfig {
            keep_last: Some(2),
            keep_within: Some(HumanDuration(std::time::Duration::from_secs(4 * 3600))),
            ..Default::default()
        };
        let kept = plan(&backups, &policy, &TimeZone::UTC)
            .into_iter()
            .filter(|d| d.keep)
            .count();
        assert_eq!(kept, 5, "the newest 5 are within 4h of the newest");
    }
}
