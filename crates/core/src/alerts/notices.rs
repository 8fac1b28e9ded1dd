//! One round of the alerter, on the state database: what each open alert's escalation
//! calls for now ([`super::escalation::plan`]) becomes notices owed to the channels its
//! tiers name and its routing accepts ([`super::deliveries`]); alerts held back (an
//! instance that is down inhibits its own probes' alerts; a flapping probe's alerts
//! wait) are left for a later round. A resolution that comes before anyone was told
//! cancels what was still waiting, and is not sent.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::deliveries;
use super::escalation::{plan, sent, Notice, Tier};
use super::message::Reason;
use super::store::{self, Alert};
use crate::clock::{later, sooner};
use crate::error::Result;
use crate::state::State;

/// How the config says alerts are told.
pub struct Policy<'a> {
    pub tiers: &'a [Tier],
    pub renotify: Option<Duration>,
    /// A first notice waits this long for others to join its message.
    pub group_wait: Duration,
    /// Whether channel `channel` takes notices of this reason about this alert
    /// (severity and instance routing, send_resolved).
    pub routes: &'a dyn Fn(&str, &Alert, Reason) -> bool,
}

/// The alerts (by id) an open alert inhibits: an alert `is_down` says marks its
/// instance down (a crash loop, a process probe failing) holds back every other alert
/// from a probe on the same instance until it resolves.
pub fn inhibited(open: &[Alert], is_down: impl Fn(&Alert) -> bool) -> BTreeSet<i64> {
    let down: BTreeSet<&str> = open
        .iter()
        .filter(|a| a.resolved_at.is_none() && is_down(a))
        .filter_map(|a| a.instance.as_deref())
        .collect();
    open.iter()
        .filter(|a| a.source == "probe" && !is_down(a))
        .filter(|a| a.instance.as_deref().is_some_and(|i| down.contains(i)))
        .map(|a| a.id)
        .collect()
}

/// Owes the notices due at `now` for every alert not `held`, and records each
/// alert's escalation as moved. Returns when to look again for escalations (none:
/// nothing comes by itself).
pub fn round(
    state: &State,
    policy: &Policy,
    held: &BTreeSet<i64>,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let silences = store::silences(state)?;
    let mut next = None;
    for alert in store::owing(state)? {
        if held.contains(&alert.id) {
            continue;
        }
        let mut escalation = alert.escalation(store::silenced_until(&alert, &silences));
        let due = plan(&escalation, policy.tiers, policy.renotify, now);
        next = sooner(next, due.next);
        if due.now.is_empty() {
            continue;
        }
        let resolved_untold = alert.resolved_at.is_some()
            && deliveries::cancel_untold(state, alert.id)? == deliveries::Told::Nobody;
        if !resolved_untold {
            for notice in &due.now {
                owe(state, policy, &alert, notice, now)?;
            }
        }
        sent(&mut escalation, &due.now, now);
        store::record_escalation(state, alert.id, &escalation)?;
    }
    Ok(next)
}

fn owe(
    state: &State,
    policy: &Policy,
    alert: &Alert,
    notice: &Notice,
    now: Timestamp,
) -> Result<()> {
    let (reason, tiers, due) = match notice {
        // Only the alert's first notice waits for others to group with.
        Notice::Escalate { tier: 0 } => (Reason::Firing, vec![0], later(now, policy.group_wait)),
        Notice::Escalate { tier } => (Reason::Firing, vec![*tier], now),
        Notice::Renotify { tier } => (Reason::Renotify, vec![*tier], now),
        Notice::Resolved { tiers } => (Reason::Resolved, tiers.clone(), now),
    };
    for tier in tiers {
        let Some(t) = policy.tiers.get(tier) else {
            continue;
        };
        for channel in &t.channels {
            if (policy.routes)(channel, alert, reason) {
                deliveries::owe(state, alert.id, channel, reason, tier, due)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::deliveries::{delivered, due};
    use crate::alerts::store::{acknowledge, raise, resolve, Raise, Raised, Severity};
    use crate::clock::ManualClock;

    fn mins(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                after: Duration::ZERO,
                channels: vec!["oncall".into()],
            },
            Tier {
                after: mins(20),
                channels: vec!["second-tier".into(), "warnings-only".into()],
            },
        ]
    }

    /// Every channel takes everything but `warnings-only`, which takes warnings.
    fn routes(channel: &str, alert: &Alert, _: Reason) -> bool {
        channel != "warnings-only" || alert.severity == Severity::Warning
    }

    fn probe(state: &State, name: &str, instance: &str) -> i64 {
        let raised = raise(
            state,
            &Raise {
                source: "probe".into(),
                name: name.into(),
                condition: None,
                instance: Some(instance.into()),
                severity: Severity::Critical,
                summary: format!("{name} failed"),
            },
        )
        .unwrap();
        match raised {
            Raised::Opened(id) | Raised::Repeated(id) => id,
        }
    }

    /// Sends what is due (as a working channel would) and returns it as
    /// (channel, reason, alert ids) per message.
    fn send(state: &State, now: Timestamp) -> Vec<(String, &'static str, Vec<i64>)> {
        let mut out = Vec::new();
        for (key, group) in due(state, now, &BTreeSet::new()).unwrap() {
            let ids: Vec<i64> = group.iter().map(|d| d.id).collect();
            delivered(state, &ids, now).unwrap();
            out.push((
                key.channel,
                key.reason.as_str(),
                group.iter().map(|d| d.alert).collect(),
            ));
        }
        out
    }

    #[test]
    fn alerts_firing_within_the_group_wait_are_one_message_and_the_next_tier_hears_after_twenty_minutes(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let tiers = tiers();
        let policy = Policy {
            tiers: &tiers,
            renotify: Some(mins(60)),
            group_wait: Duration::from_secs(30),
            routes: &routes,
        };
        let none = BTreeSet::new();
        let a = probe(&state, "dav-put", "production");
        round(&state, &policy, &none, clock.now()).unwrap();
        clock.advance(Duration::from_secs(10));
        let b = probe(&state, "dav-get", "production");
        round(&state, &policy, &none, clock.now()).unwrap();
        assert!(send(&state, clock.now()).is_empty(), "the group waits");
        clock.advance(Duration::from_secs(20));
        assert_eq!(
            send(&state, clock.now()),
            vec![("oncall".to_string(), "firing", vec![a, b])]
        );
        // Nobody acknowledges: 20 minutes after tier 1 was told, tier 2 hears (only the
        // channels that route a critical alert).
        clock.set(clock.now() + jiff::SignedDuration::from_mins(20));
        round(&state, &policy, &none, clock.now()).unwrap();
        assert_eq!(
            send(&state, clock.now()),
            vec![("second-tier".to_string(), "firing", vec![a, b])]
        );
        // b is acknowledged; a is renotified on the highest tier an hour later.
        acknowledge(&state, b, "alice", None).unwrap();
        clock.set(clock.now() + jiff::SignedDuration::from_mins(60));
        round(&state, &policy, &none, clock.now()).unwrap();
        assert_eq!(
            send(&state, clock.now()),
            vec![("second-tier".to_string(), "renotify", vec![a])]
        );
        // a resolves: both tiers told hear it.
        resolve(&state, "probe:dav-put").unwrap();
        round(&state, &policy, &none, clock.now()).unwrap();
        let sent = send(&state, clock.now());
        assert_eq!(
            sent,
            vec![
                ("oncall".to_string(), "resolved", vec![a]),
                ("second-tier".to_string(), "resolved", vec![a]),
            ]
        );
        round(&state, &policy, &none, clock.now()).unwrap();
        assert!(send(&state, clock.now()).is_empty(), "told once");
    }

    #[test]
    fn an_alert_resolved_before_its_group_went_out_is_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let tiers = tiers();
        let policy = Policy {
            tiers: &tiers,
            renotify: None,
            group_wait: Duration::from_secs(30),
            routes: &routes,
        };
        let none = BTreeSet::new();
        probe(&state, "dav-put", "production");
        round(&state, &policy, &none, clock.now()).unwrap();
        clock.advance(Duration::from_secs(10));
        resolve(&state, "probe:dav-put").unwrap();
        round(&state, &policy, &none, clock.now()).unwrap();
        clock.advance(Duration::from_secs(60));
        assert!(send(&state, clock.now()).is_empty());
        assert!(store::owing(&state).unwrap().is_empty());
    }

    #[test]
    fn an_instance_that_is_down_holds_back_its_own_probes_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let state = State::open(dir.path(), clock.clock()).unwrap();
        let down = probe(&state, "production-up", "production");
        let http = probe(&state, "dav-put", "production");
        let other = probe(&state, "staging-get", "staging");
        let open = store::list(&state, false, 100).unwrap();
        let held = inhibited(&open, |a| a.name.ends_with("-up"));
        assert_eq!(held, BTreeSet::from([http]));
        assert!(!held.contains(&down) && !held.contains(&other));
        resolve(&state, "probe:production-up").unwrap();
        let open = store::list(&state, false, 100).unwrap();
        assert!(inhibited(&open, |a| a.name.ends_with("-up")).is_empty());
    }
}
