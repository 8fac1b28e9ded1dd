//! Who is told about an open alert, and when, decided without I/O (so it is tested
//! with times written down, not waited for).
//!
//! - Tier 1 is told at once (`after` of the first tier, normally zero).
//! - Each next tier is told when the alert is still unacknowledged `after` (that tier's,
//!   20 minutes when not given) past the moment the tier before it was told: Chandler's
//!   pager tiers, "the next tier after 20 minutes without response".
//! - While unacknowledged, the highest tier told so far is told again every
//!   `renotify` (none: never again).
//! - An acknowledgement stops both; a silence holds every notice back until it ends
//!   (then what was due is sent); a resolution tells every tier that was told (Gatus'
//!   send-on-resolved), once.

use std::time::Duration;

use jiff::Timestamp;

use crate::clock::{later, sooner};

/// The tier an alert escalates to when nobody acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// How long after the tier before was told (for the first: after the alert opened).
    pub after: Duration,
    pub channels: Vec<String>,
}

/// An alert as escalation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub opened_at: Timestamp,
    pub acknowledged: bool,
    pub resolved_at: Option<Timestamp>,
    /// When each tier was told, in order (`told[0]` is tier 1).
    pub told: Vec<Timestamp>,
    /// When the highest tier told was last told (a renotify moves it).
    pub last_told_at: Option<Timestamp>,
    /// The recovery was sent.
    pub resolution_told: bool,
    /// Notices are held back until then.
    pub silenced_until: Option<Timestamp>,
}

impl Escalation {
    pub fn opened(at: Timestamp) -> Escalation {
        Escalation {
            opened_at: at,
            acknowledged: false,
            resolved_at: None,
            told: Vec::new(),
            last_told_at: None,
            resolution_told: false,
            silenced_until: None,
        }
    }
}

/// A notice to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Tier `tier` (0-based) told for the first time.
    Escalate { tier: usize },
    /// The highest tier told so far, told again.
    Renotify { tier: usize },
    /// Every tier told hears that it is resolved.
    Resolved { tiers: Vec<usize> },
}

/// What is due: the notices to send now, and when to look again (none: nothing more
/// will come by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub now: Vec<Notice>,
    pub next: Option<Timestamp>,
}

/// What `alert` calls for at `now`, given the `tiers` and the `renotify` interval.
pub fn plan(
    alert: &Escalation,
    tiers: &[Tier],
    renotify: Option<Duration>,
    now: Timestamp,
) -> Plan {
    if let Some(until) = alert.silenced_until.filter(|u| *u > now) {
        // Held back; looked at again when the silence ends (if anything is owed then).
        let owed = !alert.resolution_told && (alert.resolved_at.is_some() || !alert.acknowledged);
        return Plan {
            now: Vec::new(),
            next: owed.then_some(until),
        };
    }
    if alert.resolved_at.is_some() {
        let tiers: Vec<usize> = (0..alert.told.len()).collect();
        let now = if alert.resolution_told || tiers.is_empty() {
            Vec::new()
        } else {
            vec![Notice::Resolved { tiers }]
        };
        return Plan { now, next: None };
    }
    if alert.acknowledged || tiers.is_empty() {
        return Plan {
            now: Vec::new(),
            next: None,
        };
    }
    let mut notices = Vec::new();
    // Tiers escalate in a chain: each counts from when the one before was told (for
    // tiers told now, from now).
    let mut told = alert.told.clone();
    let mut next = None;
    while told.len() < tiers.len() {
        let tier = told.len();
        let from = told.last().copied().unwrap_or(alert.opened_at);
        let due = later(from, tiers[tier].after);
        if due <= now {
            notices.push(Notice::Escalate { tier });
            told.push(now);
        } else {
            next = Some(due);
            break;
        }
    }
    let highest = told.len().saturating_sub(1);
    let last = if notices.is_empty() {
        alert.last_told_at
    } else {
        Some(now)
    };
    if let (Some(every), Some(last)) = (renotify.filter(|d| !d.is_zero()), last) {
        let due = later(last, every);
        if notices.is_empty() && due <= now {
            notices.push(Notice::Renotify { tier: highest });
            next = sooner(next, Some(later(now, every)));
        } else {
            next = sooner(next, Some(due));
        }
    }
    Plan { now: notices, next }
}

/// Records on `alert` that `notices` were sent at `now`.
pub fn sent(alert: &mut Escalation, notices: &[Notice], now: Timestamp) {
    for notice in notices {
        match notice {
            Notice::Escalate { .. } => {
                alert.told.push(now);
                alert.last_told_at = Some(now);
            }
            Notice::Renotify { .. } => alert.last_told_at = Some(now),
            Notice::Resolved { .. } => alert.resolution_told = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> Timestamp {
        "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap()
            + jiff::SignedDuration::from_mins(minutes)
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    /// Chandler's three pager tiers: at once, then 20 minutes without response each.
    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                after: Duration::ZERO,
                channels: vec!["oncall".into()],
            },
            Tier {
                after: mins(20),
                channels: vec!["second-tier".into()],
            },
            Tier {
                after: mins(20),
                channels: vec!["third-tier".into()],
            },
        ]
    }

    /// Walks an alert from `from` to `to` minute by minute, sending what is due;
    /// returns (minute, notice) for each.
    fn walk(
        alert: &mut Escalation,
        renotify: Option<Duration>,
        from: i64,
        to: i64,
    ) -> Vec<(i64, Notice)> {
        let mut out = Vec::new();
        for m in from..=to {
            let p = plan(alert, &tiers(), renotify, t(m));
            sent(alert, &p.now, t(m));
            out.extend(p.now.into_iter().map(|n| (m, n)));
        }
        out
    }

    #[test]
    fn unacknowledged_it_climbs_a_tier_every_20_minutes() {
        let mut alert = Escalation::opened(t(0));
        let told = walk(&mut alert, None, 0, 90);
        assert_eq!(
            told,
            [
                (0, Notice::Escalate { tier: 0 }),
                (20, Notice::Escalate { tier: 1 }),
                (40, Notice::Escalate { tier: 2 }),
            ]
        );
        assert_eq!(plan(&alert, &tiers(), None, t(91)).next, None);
    }

    #[test]
    fn the_next_look_is_when_the_next_tier_is_due() {
        let alert = Escalation::opened(t(0));
        let p = plan(&alert, &tiers(), None, t(0));
        assert_eq!(p.now, [Notice::Escalate { tier: 0 }]);
        assert_eq!(p.next, Some(t(20)));
    }

    #[test]
    fn an_acknowledgement_stops_the_escalation_and_the_renotifies() {
        let mut alert = Escalation::opened(t(0));
        walk(&mut alert, Some(mins(15)), 0, 10);
        alert.acknowledged = true;
        assert!(walk(&mut alert, Some(mins(15)), 11, 120).is_empty());
        // Its resolution still tells the tier that was told.
        alert.resolved_at = Some(t(121));
        assert_eq!(
            walk(&mut alert, Some(mins(15)), 121, 130),
            [(121, Notice::Resolved { tiers: vec![0] })]
        );
    }

    #[test]
    fn renotify_repeats_the_highest_tier_told_until_acknowledged() {
        let mut alert = Escalation::opened(t(0));
        let told = walk(&mut alert, Some(mins(15)), 0, 75);
        assert_eq!(
            told,
            [
                (0, Notice::Escalate { tier: 0 }),
                (15, Notice::Renotify { tier: 0 }),
                // Tier 2 is due 20 minutes after tier 1 was told (0), not after a renotify.
                (20, Notice::Escalate { tier: 1 }),
                (35, Notice::Renotify { tier: 1 }),
                (40, Notice::Escalate { tier: 2 }),
                (55, Notice::Renotify { tier: 2 }),
                (70, Notice::Renotify { tier: 2 }),
            ]
        );
    }

    #[test]
    fn a_resolution_tells_every_tier_told_once_and_never_a_tier_not_reached() {
        let mut alert = Escalation::opened(t(0));
        walk(&mut alert, None, 0, 25);
        alert.resolved_at = Some(t(26));
        assert_eq!(
            walk(&mut alert, None, 26, 200),
            [(26, Notice::Resolved { tiers: vec![0, 1] })]
        );
    }

    #[test]
    fn a_silence_holds_notices_back_until_it_ends_then_sends_what_is_owed() {
        let mut alert = Escalation::opened(t(0));
        alert.silenced_until = Some(t(30));
        let p = plan(&alert, &tiers(), None, t(0));
        assert_eq!((p.now, p.next), (vec![], Some(t(30))));
        // At its end tier 1 is told; tier 2 counts 20 minutes from then.
        let told = walk(&mut alert, None, 1, 60);
        assert_eq!(
            told,
            [
                (30, Notice::Escalate { tier: 0 }),
                (50, Notice::Escalate { tier: 1 })
            ]
        );
        // Resolved while silenced and never told: nothing to say.
        let mut quiet = Escalation::opened(t(0));
        quiet.silenced_until = Some(t(30));
        quiet.resolved_at = Some(t(10));
        assert!(walk(&mut quiet, None, 0, 60).is_empty());
    }

    #[test]
    fn a_late_look_tells_the_first_tier_and_gives_it_its_time() {
        // The daemon was down for an hour: tier 1 is told now, and tier 2 only when
        // tier 1 has had its 20 minutes, not at once.
        let alert = Escalation::opened(t(0));
        let p = plan(&alert, &tiers(), None, t(60));
        assert_eq!(p.now, [Notice::Escalate { tier: 0 }]);
        assert_eq!(p.next, Some(t(80)));
    }

    #[test]
    fn no_tiers_means_nothing_is_sent() {
        let alert = Escalation::opened(t(0));
        assert_eq!(
            plan(&alert, &[], Some(mins(5)), t(0)),
            Plan {
                now: vec![],
                next: None
            }
        );
    }
}
