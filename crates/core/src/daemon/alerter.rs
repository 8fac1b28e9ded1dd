//! The alerter component: what goes wrong in the daemon becomes an alert, and every
//! alert is told to the channels of its escalation tiers until it is acknowledged or
//! over.
//!
//! It hears the bus: a probe's hard state leaving OK raises `probe:NAME` and its return
//! resolves it; a job's last failed try raises `job:NAME` (when the job wants it) and its
//! next success resolves it; a crash loop raises `instance:NAME:crash-loop`, resolved
//! once the instance is no longer marked so (started again, by the supervisor or by
//! hand). Each round ([`notices::round`], on a blocking
//! thread) turns escalations into notices, holding back the alerts an instance that is
//! down inhibits and those of a flapping probe; the notices due are sent as one message
//! per channel, reason and tier ([`deliveries`]), each failure tried again with backoff
//! and, once given up on, journaled and kept for `ostler alerts` to show.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::bus::Event;
use super::host::{BoxFuture, Component, Handle};
use crate::alerts::channel::deliver;
use crate::alerts::deliveries::{self, Delivery, GroupKey};
use crate::alerts::message::{Message, Reason};
use crate::alerts::notices::{self, Policy};
use crate::alerts::store::{self, Alert, Raise, Severity};
use crate::config::Config;
use crate::error::Result;
use crate::instance::Ostler;
use crate::probes::Status;

/// The alerter looks at least this often (a silence or acknowledgement written while
/// it slept is seen by then; escalations come at their own times).
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Alerter;

impl Component for Alerter {
    fn name(&self) -> &'static str {
        "alerter"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        Box::pin(async move {
            let mut bus = handle.bus().subscribe();
            let mut flapping = handle.blocking(flapping_now).await?;
            let mut changes: Vec<Change> = Vec::new();
            handle.set_ready("alerter");
            while !shutdown.is_cancelled() {
                let (pending, held) = (std::mem::take(&mut changes), flapping.clone());
                let look = match handle.blocking(move |o| look(o, pending, &held)).await {
                    Ok(look) => look,
                    Err(crate::Error::Busy { .. }) if handle.draining() => break,
                    Err(e) => return Err(e),
                };
                for event in look.events {
                    handle.bus().publish(event);
                }
                send(&handle, look.messages).await;
                // Wait for the next escalation or notice, or for something to alert on.
                let clock = handle.clock().clone();
                let latest = clock.after(MAX_SLEEP);
                let until = look.next.map_or(latest, |t| t.min(latest));
                let sleep = clock.sleep_until(until);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        _ = shutdown.cancelled() => break,
                        event = bus.recv() => match event {
                            Ok(event) => {
                                if let Event::ProbeFlapping { probe, flapping: on, .. } = &event {
                                    if *on {
                                        flapping.insert(probe.clone());
                                    } else {
                                        flapping.remove(probe);
                                    }
                                    break;
                                }
                                if let Some(change) = Change::of(&event) {
                                    changes.push(change);
                                    break;
                                }
                                // A start may end a crash loop: the round sees it in the
                                // instance's runtime.
                                if matches!(event, Event::ConfigReloaded { .. } | Event::InstanceStarted { .. }) {
                                    break;
                                }
                            }
                            Err(RecvError::Lagged(n)) => {
                                tracing::warn!(missed = n, "the alerter fell behind the bus");
                                break;
                            }
                            Err(RecvError::Closed) => shutdown.cancelled().await,
                        },
                    }
                }
            }
            Ok(())
        })
    }
}

/// What an event asks of the alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Raise(Raise),
    /// Resolve the open alert of this key.
    Resolve(String),
    /// A job failed its last try: raised with the job's instance, looked up in the
    /// config in force.
    JobFailed {
        job: String,
        why: String,
    },
}

impl Change {
    /// The change `event` calls for, if any.
    pub fn of(event: &Event) -> Option<Change> {
        match event {
            Event::ProbeChanged {
                probe,
                instance,
                to,
                summary,
                ..
            } => Some(match to {
                Status::Ok => Change::Resolve(probe_key(probe)),
                other => Change::Raise(Raise {
                    source: "probe".into(),
                    name: probe.clone(),
                    condition: None,
                    instance: instance.clone(),
                    severity: severity_of(*other),
                    summary: summary.clone(),
                }),
            }),
            Event::JobFailed {
                job,
                why,
                retry_at: None,
                alert: true,
                ..
            } => Some(Change::JobFailed {
                job: job.clone(),
                why: why.clone(),
            }),
            Event::JobFinished { job, .. } => Some(Change::Resolve(format!("job:{job}"))),
            Event::CrashLoop {
                instance,
                crashes,
                why,
            } => Some(Change::Raise(crash_loop(instance, *crashes, why))),
            _ => None,
        }
    }
}

fn probe_key(probe: &str) -> String {
    format!("probe:{probe}")
}

fn crash_loop(instance: &str, crashes: u32, why: &str) -> Raise {
    Raise {
        source: "instance".into(),
        name: instance.to_string(),
        condition: Some("crash-loop".into()),
        instance: Some(instance.to_string()),
        severity: Severity::Critical,
        summary: format!("{crashes} crashes in a row, no longer restarted: {why}"),
    }
}

/// A probe's hard state as an alert's severity: CRITICAL pages as critical; WARNING and
/// UNKNOWN (the probe could not tell) as warnings.
pub fn severity_of(status: Status) -> Severity {
    match status {
        Status::Critical => Severity::Critical,
        _ => Severity::Warning,
    }
}

/// One message to send, and the notices it carries.
struct Outgoing {
    group: GroupKey,
    notices: Vec<Delivery>,
    message: Message,
}

struct Look {
    events: Vec<Event>,
    messages: Vec<Outgoing>,
    next: Option<Timestamp>,
}

/// Applies `changes`, runs a round, and gathers the messages due now.
fn look(ostler: &Ostler, changes: Vec<Change>, flapping: &BTreeSet<String>) -> Result<Look> {
    let state = ostler.state()?;
    let config = &ostler.config;
    let mut events = Vec::new();
    for change in changes {
        match change {
            Change::Raise(raise) => events.push(raised(ostler, &state, &raise)?),
            Change::JobFailed { job, why } => {
                let instance = config
                    .jobs
                    .iter()
                    .find(|j| j.name.get_ref() == &job)
                    .and_then(|j| j.instance_in(config));
                let raise = Raise {
                    source: "job".into(),
                    name: job,
                    condition: None,
                    instance,
                    severity: Severity::Critical,
                    summary: why,
                };
                events.push(raised(ostler, &state, &raise)?);
            }
            Change::Resolve(key) => events.extend(resolved(ostler, &state, key)?),
        }
    }
    // A crash loop is over once the instance is no longer marked so (started again
    // by hand: `ostler start` clears the mark; the supervisor publishes no start then).
    for alert in store::list(&state, false, usize::MAX >> 1)? {
        if alert.source == "instance" && state.runtime(&alert.name)?.supervision != "crash-loop" {
            events.extend(resolved(ostler, &state, alert.key)?);
        }
    }
    let open = store::list(&state, false, usize::MAX >> 1)?;
    let mut held = notices::inhibited(&open, |a| marks_down(config, a));
    held.extend(
        open.iter()
            .filter(|a| a.source == "probe" && flapping.contains(&a.name))
            .map(|a| a.id),
    );
    let tiers = config.alerts.tiers();
    let routes = |channel: &str, alert: &Alert, reason: Reason| {
        config
            .alerts
            .channel(channel)
            .is_some_and(|c| c.accepts(config, alert) && c.wants(reason))
    };
    let now = state.clock().now();
    let policy = Policy {
        tiers: &tiers,
        renotify: config.alerts.renotify(),
        group_wait: config.alerts.group_wait.0,
        routes: &routes,
    };
    let escalates_at = notices::round(&state, &policy, &held, now)?;
    let mut messages = Vec::new();
    for (group, notices) in deliveries::due(&state, now, &held)? {
        let mut alerts = Vec::new();
        for d in &notices {
            if let Some(alert) = store::get(&state, d.alert)? {
                alerts.push(alert);
            }
        }
        let message = Message::new(&config.service.name, group.reason, group.tier, alerts, now);
        messages.push(Outgoing {
            group,
            notices,
            message,
        });
    }
    let next = crate::clock::sooner(escalates_at, deliveries::next_due(&state, &held)?);
    Ok(Look {
        events,
        messages,
        next,
    })
}

/// Resolves the open alert of `key`, journaled; the event, if one was open.
fn resolved(ostler: &Ostler, state: &crate::state::State, key: String) -> Result<Option<Event>> {
    let Some(id) = store::resolve(state, &key)? else {
        return Ok(None);
    };
    ostler.journal_event("alert-resolved", None, &format!("alert {id} ({key})"))?;
    Ok(Some(Event::AlertResolved { id, key }))
}

/// Raises `raise`, journaling an alert that opened.
fn raised(ostler: &Ostler, state: &crate::state::State, raise: &Raise) -> Result<Event> {
    let key = raise.key();
    Ok(match store::raise(state, raise)? {
        store::Raised::Opened(id) => {
            ostler.journal_event(
                "alert",
                raise.instance.as_deref(),
                &format!(
                    "alert {id} ({key}) {}: {}",
                    raise.severity.as_str(),
                    raise.summary
                ),
            )?;
            Event::AlertRaised {
                id,
                key,
                repeated: false,
            }
        }
        store::Raised::Repeated(id) => Event::AlertRaised {
            id,
            key,
            repeated: true,
        },
    })
}

/// Whether `alert` says its instance is down: a crash loop, or a failing `process`
/// probe.
fn marks_down(config: &Config, alert: &Alert) -> bool {
    match alert.source.as_str() {
        "instance" => true,
        "probe" => config
            .probe(&alert.name)
            .is_some_and(|p| *p.kind.get_ref() == crate::probes::config::Kind::Process),
        _ => false,
    }
}

/// The probes that were flapping when the daemon last recorded them.
fn flapping_now(ostler: &Ostler) -> Result<BTreeSet<String>> {
    let state = ostler.state()?;
    let mut flapping = BTreeSet::new();
    for probe in &ostler.config.probes {
        if let Some(saved) = crate::probes::history::load(&state, probe.name())? {
            if saved.state.flapping {
                flapping.insert(probe.name().to_string());
            }
        }
    }
    Ok(flapping)
}

/// Sends `messages`, each on a blocking thread, and records how each went.
async fn send(handle: &Handle, messages: Vec<Outgoing>) {
    let mut sending = JoinSet::new();
    for out in messages {
        let handle = handle.clone();
        sending.spawn(async move {
            let channel = out.group.channel.clone();
            let sent = handle.blocking(move |o| send_one(o, out)).await;
            match sent {
                Ok(events) => {
                    for event in events {
                        handle.bus().publish(event);
                    }
                }
                Err(e) => tracing::error!(
                    channel = %channel,
                    error = %crate::error::chain(&e),
                    "a notice could not be sent or recorded"
                ),
            }
        });
    }
    while sending.join_next().await.is_some() {}
}

fn send_one(ostler: &Ostler, out: Outgoing) -> Result<Vec<Event>> {
    let config = &ostler.config;
    let state = ostler.state()?;
    let ids: Vec<i64> = out.notices.iter().map(|d| d.id).collect();
    let alert_ids: Vec<i64> = out.notices.iter().map(|d| d.alert).collect();
    let now = state.clock().now();
    let Some(channel) = config.alerts.channel(&out.group.channel) else {
        let error = format!("channel {} is no longer in the config", out.group.channel);
        deliveries::failed(&state, &ids, &error, now, None)?;
        return Ok(undelivered(&alert_ids, &out.group.channel, &error, None));
    };
    match deliver(channel, &out.message, &config.base_dir()) {
        Ok(done) => {
            deliveries::delivered(&state, &ids, state.clock().now())?;
            tracing::info!(channel = %out.group.channel, alerts = ?alert_ids, reason = out.group.reason.as_str(), ?done, "notice delivered");
            Ok(alert_ids
                .iter()
                .map(|id| Event::AlertDelivered {
                    id: *id,
                    channel: out.group.channel.clone(),
                })
                .collect())
        }
        Err(e) => {
            let error = e.to_string();
            let tries = out.notices.iter().map(|d| d.attempts).max().unwrap_or(0) + 1;
            let retry_at =
                (e.is_transient() && tries <= config.alerts.delivery_retries).then(|| {
                    crate::clock::later(state.clock().now(), config.alerts.retry_delay(tries))
                });
            deliveries::failed(&state, &ids, &error, state.clock().now(), retry_at)?;
            match retry_at {
                Some(at) => {
                    tracing::warn!(channel = %out.group.channel, %error, retry_at = %at, "notice not delivered; tried again")
                }
                None => {
                    tracing::error!(channel = %out.group.channel, %error, "notice not delivered; given up");
                    ostler.journal_event(
                        "alert-undelivered",
                        None,
                        &format!(
                            "alerts {alert_ids:?} to {} after {tries} tries: {error}",
                            out.group.channel
                        ),
                    )?;
                }
            }
            Ok(undelivered(
                &alert_ids,
                &out.group.channel,
                &error,
                retry_at,
            ))
        }
    }
}

fn undelivered(
    alerts: &[i64],
    channel: &str,
    error: &str,
    retry_at: Option<Timestamp>,
) -> Vec<Event> {
    alerts
        .iter()
        .map(|id| Event::AlertUndelivered {
            id: *id,
            channel: channel.to_string(),
            error: error.to_string(),
            retry_at,
        })
        .collect()
}
