//! Alerts: what is raised (a probe's hard state, a job's last failure, a crash loop),
//! who hears it and when ([`escalation`]), and how it is delivered.

pub mod channel;
pub mod config;
pub mod deliveries;
pub mod escalation;
pub mod message;
pub mod notices;
pub mod store;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::instance::Ostler;

/// What `ostler alerts` shows: the alerts (open, or all recent), the notices that
/// did not reach their channel, and the silences in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub alerts: Vec<store::Alert>,
    pub undelivered: Vec<deliveries::Delivery>,
    pub silences: Vec<store::Silence>,
}

/// The alerts (with `all` the resolved ones too, at most `limit`), undelivered notices
/// and silences.
pub fn overview(ostler: &Ostler, all: bool, limit: usize) -> Result<Overview> {
    let state = ostler.state()?;
    Ok(Overview {
        alerts: store::list(&state, all, limit)?,
        undelivered: deliveries::undelivered(&state, limit)?,
        silences: store::silences(&state)?,
    })
}

/// Acknowledges alert `id` for `who`: its escalation stops. Journaled.
pub fn acknowledge(
    ostler: &Ostler,
    id: i64,
    who: &str,
    note: Option<&str>,
) -> Result<store::Alert> {
    let alert = store::acknowledge(&ostler.state()?, id, who, note)?;
    ostler.journal_event(
        "alert-ack",
        alert.instance.as_deref(),
        &format!("alert {id} ({}) acknowledged by {who}", alert.key),
    )?;
    Ok(alert)
}

/// What a silence asks for: a target (an instance or role, a probe, a job), for how
/// long, by whom and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceRequest {
    pub target: String,
    /// How long, in seconds.
    pub seconds: u64,
    pub by: String,
    pub reason: Option<String>,
}

/// Silences what `request` names for its length (a role is silenced as the instance
/// it names now). Refused for a name that is no instance, role, probe or job. Journaled.
pub fn silence(ostler: &Ostler, request: &SilenceRequest) -> Result<store::Silence> {
    let config = &ostler.config;
    let target = &request.target;
    let known = config.resolve(target).ok().or_else(|| {
        let probe = config.probe(target).is_some();
        let job = config.jobs.iter().any(|j| j.name.get_ref() == target);
        (probe || job).then(|| target.clone())
    });
    let Some(target) = known else {
        return Err(Error::user(format!(
            "nothing called {target} to silence: name an instance or role, a [[probes]] or a [[jobs]] entry of {}",
            config.path.display()
        )));
    };
    let length = Duration::from_secs(request.seconds);
    if length.is_zero() {
        return Err(Error::user("a silence must last longer than 0 s"));
    }
    let silence = store::silence(
        &ostler.state()?,
        &target,
        length,
        &request.by,
        request.reason.as_deref(),
    )?;
    ostler.journal_event(
        "silence",
        config
            .instances
            .contains_key(&target)
            .then_some(target.as_str()),
        &format!(
            "{target} silenced by {} until {}{}",
            request.by,
            silence.ends_at,
            request
                .reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}"))
        ),
    )?;
    Ok(silence)
}
