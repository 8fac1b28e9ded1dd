//! `[alerts]` in `ostler.toml`: the channels alerts are delivered through
//! (`[[alerts.channels]]`: email, webhook, command), who is told first and who next
//! (`[[alerts.tiers]]`), and the alerter's timing (renotify, grouping, delivery retries).
//!
//! A channel is one flat table whose `kind` says which keys it takes: keeping it flat
//! (not a serde enum tagged by `kind`) keeps toml's spans on every value, so a key that
//! belongs to another kind (`url` on an email channel) is refused at its own line by
//! [`problems`], with the kind it belongs to named. Values wrong on their own (a
//! duration, a severity, a kind nobody knows) are refused by serde; what needs other
//! keys or the rest of the config (a tier naming no channel, an instance that is not
//! defined, two channels with one name) is found by [`problems`], all at once, each at
//! its span, as `crate::jobs::config::problems` does for jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::escalation::Tier;
use super::message::Reason;
use super::store::{Alert, Severity};
use crate::config::{Config, HumanDuration};
use crate::jobs::config::Problem;

/// How long after the tier before a tier is told when its `after` is not given (the
/// first tier: at once). Chandler's "the next tier after 20 minutes without response".
pub const DEFAULT_TIER_AFTER: Duration = Duration::from_secs(20 * 60);

/// How often the highest tier told is told again when `renotify` is not given.
pub const DEFAULT_RENOTIFY: Duration = Duration::from_secs(3600);

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `[[alerts.channels]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelConfig>,
    /// `[[alerts.tiers]]`; none: one tier telling every channel at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierConfig>,
    /// The highest tier told is told again this often while nobody acknowledges
    /// (`"0s"` or `"never"`: never). Default [`DEFAULT_RENOTIFY`]; see [`Self::renotify`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify: Option<Spanned<Every>>,
    /// Alertmanager's name for `renotify`; one of the two may be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Spanned<Every>>,
    /// After the first alert of a group, the alerter waits this long for the others
    /// and sends one message for all (Alertmanager's `group_wait`).
    #[serde(default = "default_group_wait")]
    pub group_wait: HumanDuration,
    /// A delivery that failed for a reason worth retrying is tried this many times more.
    #[serde(default = "default_delivery_retries")]
    pub delivery_retries: u32,
    /// The wait before the first retry of a delivery, doubled for each next one.
    #[serde(default = "default_delivery_backoff")]
    pub delivery_backoff: HumanDuration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            channels: Vec::new(),
            tiers: Vec::new(),
            renotify: None,
            repeat_interval: None,
            group_wait: default_group_wait(),
            delivery_retries: default_delivery_retries(),
            delivery_backoff: default_delivery_backoff(),
        }
    }
}

fn default_group_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_delivery_retries() -> u32 {
    5
}

fn default_delivery_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// `[[alerts.tiers]]`: the channels told together, and when.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// How long after the tier before was told (the first tier: after the alert
    /// opened); default 0 for the first tier, [`DEFAULT_TIER_AFTER`] for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<HumanDuration>,
    /// Names of `[[alerts.channels]]`.
    pub channels: Spanned<Vec<Spanned<String>>>,
}

/// A duration that may be "never": `"1h"`, `"0s"` or `"never"` (both: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Option<Duration>);

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "never" {
            return Ok(Every(None));
        }
        let every = crate::config::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"never\"")))?;
        Ok(Every(Some(every).filter(|d| !d.is_zero())))
    }
}

impl Serialize for Every {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.serialize_str(&humantime::format_duration(d).to_string()),
            None => s.serialize_str("never"),
        }
    }
}

/// What a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelKind {
    /// Mail over SMTP: `to`, `smtp`, optional `from`, `starttls`, `username`,
    /// `password` or `password_file`.
    Email,
    /// The message as JSON POSTed to `url`, with optional `headers`.
    Webhook,
    /// A shell command (`sh -c`) given the message as JSON on stdin and
    /// `OSTLER_ALERT_*` variables.
    Command,
}

impl ChannelKind {
    pub fn name(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Command => "command",
        }
    }
}

/// One `[[alerts.channels]]` entry: where a message goes, and which alerts it takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// A name as instances have, unique among channels; tiers name channels by it.
    pub name: Spanned<String>,
    pub kind: Spanned<ChannelKind>,

    /// email: the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Spanned<Vec<String>>>,
    /// email: the sender; default `ostler@<hostname>` ([`ChannelConfig::from`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Spanned<String>>,
    /// email: the SMTP server, `host:port`. Plain SMTP unless `starttls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<Spanned<String>>,
    /// email: upgrade the connection with STARTTLS (refused if the server cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starttls: Option<Spanned<bool>>,
    /// email: the SMTP login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Spanned<String>>,
    /// email: the SMTP password (never shown by `config show`); or `password_file`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "masked"
    )]
    pub password: Option<Spanned<String>>,
    /// email: a file whose first line is the SMTP password; relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<Spanned<PathBuf>>,

    /// webhook: the URL POSTed to (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Spanned<String>>,
    /// webhook: extra request headers (`Authorization = "Bearer ..."`); their values
    /// are never shown by `config show`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "masked_values"
    )]
    pub headers: Option<Spanned<BTreeMap<String, String>>>,

    /// command: run with `sh -c` in the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<String>>,

    /// Routing: the severities this channel takes (default both).
    #[serde(default = "every_severity")]
    pub severities: Spanned<Vec<Severity>>,
    /// Routing: the instances (or roles) whose alerts this channel takes; default any
    /// alert, with or without an instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Spanned<String>>,
    /// Whether this channel is told when an alert resolves.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// A delivery still going after this long fails (and is retried).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn every_severity() -> Spanned<Vec<Severity>> {
    Spanned::new(0..0, vec![Severity::Warning, Severity::Critical])
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn masked<S: serde::Serializer>(
    value: &Option<Spanned<String>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("********"),
        None => s.serialize_none(),
    }
}

fn masked_values<S: serde::Serializer>(
    value: &Option<Spanned<BTreeMap<String, String>>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(headers) => s.collect_map(headers.get_ref().keys().map(|k| (k, "********"))),
        None => s.serialize_none(),
    }
}

impl AlertsConfig {
    /// The escalation tiers: as written, each `after` defaulted (0 for the first,
    /// [`DEFAULT_TIER_AFTER`] for the others); with no tiers written, one tier telling
    /// every channel at once.
    pub fn tiers(&self) -> Vec<Tier> {
        if self.tiers.is_empty() {
            if self.channels.is_empty() {
                return Vec::new();
            }
            return vec![Tier {
                after: Duration::ZERO,
                channels: self
                    .channels
                    .iter()
                    .map(|c| c.name.get_ref().clone())
                    .collect(),
            }];
        }
        self.tiers
            .iter()
            .enumerate()
            .map(|(i, t)| Tier {
                after: match t.after {
                    Some(a) => a.0,
                    None if i == 0 => Duration::ZERO,
                    None => DEFAULT_TIER_AFTER,
                },
                channels: t
                    .channels
                    .get_ref()
                    .iter()
                    .map(|c| c.get_ref().clone())
                    .collect(),
            })
            .collect()
    }

    /// How often the highest tier told is told again; `None`: never.
    pub fn renotify(&self) -> Option<Duration> {
        match self.renotify.as_ref().or(self.repeat_interval.as_ref()) {
            Some(every) => every.get_ref().0,
            None => Some(DEFAULT_RENOTIFY),
        }
    }

    /// The wait before retry `retry` (1 for the first) of a failed delivery:
    /// `delivery_backoff`, doubled for each retry after the first.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(20);
        self.delivery_backoff.0.saturating_mul(1 << doublings)
    }

    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name.get_ref() == name)
    }
}

impl ChannelConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub fn kind(&self) -> ChannelKind {
        *self.kind.get_ref()
    }

    /// Whether this channel takes `alert`: its severity is one of `severities`, and,
    /// when `instances` are given, its instance is one of them (a role standing for the
    /// instance it points at now). An alert without an instance (a job's) goes only to
    /// channels that name no instances.
    pub fn accepts(&self, config: &Config, alert: &Alert) -> bool {
        if !self.severities.get_ref().contains(&alert.severity) {
            return false;
        }
        if self.instances.is_empty() {
            return true;
        }
        let Some(instance) = alert.instance.as_deref() else {
            return false;
        };
        // Either side may be written as a role: both are compared as the instance
        // they stand for now.
        let resolved = |name: &str| config.resolve(name).unwrap_or_else(|_| name.to_string());
        let instance = resolved(instance);
        self.instances
            .iter()
            .any(|named| resolved(named.get_ref()) == instance)
    }

    /// Whether this channel is sent messages of `reason` (a resolution only with
    /// `send_resolved`).
    pub fn wants(&self, reason: Reason) -> bool {
        reason != Reason::Resolved || self.send_resolved
    }

    /// The sender of its mail: `from`, else `ostler@<hostname>`.
    pub fn from(&self) -> String {
        match &self.from {
            Some(from) => from.get_ref().clone(),
            None => {
                let host = nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into());
                format!("ostler@{host}")
            }
        }
    }

    /// `smtp` split into host and port (checked by [`problems`]).
    pub fn smtp_address(&self) -> Option<(String, u16)> {
        split_host_port(self.smtp.as_ref()?.get_ref()).ok()
    }

    /// Whether the mail connection is upgraded with STARTTLS.
    pub fn starttls(&self) -> bool {
        self.starttls.as_ref().is_some_and(|s| *s.get_ref())
    }
}

/// `host:port` (an IPv6 host in brackets: `[::1]:25`).
fn split_host_port(text: &str) -> std::result::Result<(String, u16), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("write it as `host:port`, e.g. \"127.0.0.1:25\"".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the host is missing (write `host:port`)".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host.to_string(), p)),
        _ => Err(format!("`{port}` is not a port (write `host:port`)")),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What serde cannot check in `[alerts]`: names, what each kind needs and does not
/// take, addresses, the instances routed on, the tiers' channels.
pub fn problems(config: &Config) -> Vec<Problem> {
    let alerts = &config.alerts;
    let mut out = Vec::new();
    if let (Some(_), Some(repeat)) = (&alerts.renotify, &alerts.repeat_interval) {
        out.push((
            repeat.span().start,
            "[alerts] `renotify` and `repeat_interval` are one setting (`repeat_interval` is Alertmanager's name for it); give one".to_string(),
        ));
    }
    let mut names = BTreeSet::new();
    for channel in &alerts.channels {
        let name = channel.name();
        let at = channel.name.span().start;
        if let Err(e) = crate::config::check_name(name) {
            out.push((at, format!("channel name `{name}` is not allowed: {e}")));
        }
        if !names.insert(name) {
            out.push((at, format!("two channels are named `{name}`")));
        }
        out.extend(
            channel_problems(channel)
                .into_iter()
                .map(|(at, m)| (at, format!("channel `{name}`: {m}"))),
        );
        if channel.severities.get_ref().is_empty() {
            out.push((
                channel.severities.span().start,
                format!("channel `{name}`: `severities` is empty, so it takes no alert (leave it out for both, or name \"warning\" or \"critical\")"),
            ));
        }
        if channel.timeout.0.is_zero() {
            out.push((
                at,
                format!("channel `{name}`: `timeout` must be more than 0s"),
            ));
        }
        for instance in &channel.instances {
            if config.resolve(instance.get_ref()).is_err() {
                out.push((
                    instance.span().start,
                    format!(
                        "channel `{name}` routes instance `{}`, which is not an instance or a role (instances: {})",
                        instance.get_ref(),
                        config.instance_names().join(", ")
                    ),
                ));
            }
        }
    }
    let mut known: Vec<&str> = Vec::new();
    for name in alerts.channels.iter().map(ChannelConfig::name) {
        if !known.contains(&name) {
            known.push(name);
        }
    }
    for (i, tier) in alerts.tiers.iter().enumerate() {
        let n = i + 1;
        if tier.channels.get_ref().is_empty() {
            out.push((
                tier.channels.span().start,
                format!("tier {n} has no channels: name at least one of [[alerts.channels]]"),
            ));
        }
        let mut seen = BTreeSet::new();
        for channel in tier.channels.get_ref() {
            let named = channel.get_ref();
            if !known.contains(&named.as_str()) {
                out.push((
                    channel.span().start,
                    format!(
                        "tier {n} names channel `{named}`, which is not defined (channels: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if !seen.insert(named.as_str()) {
                out.push((
                    channel.span().start,
                    format!("tier {n} names channel `{named}` twice"),
                ));
            }
        }
    }
    out
}

/// A channel's own problems: the keys its kind needs, their values, and the keys that
/// belong to another kind (each at its span).
fn channel_problems(channel: &ChannelConfig) -> Vec<Problem> {
    let kind = channel.kind();
    let kind_at = channel.kind.span().start;
    let mut out = Vec::new();
    let needs = |key: &str, given: bool, out: &mut Vec<Problem>| {
        if !given {
            out.push((kind_at, format!("kind \"{}\" needs `{key}`", kind.name())));
        }
    };
    match kind {
        ChannelKind::Email => {
            needs("to", channel.to.is_some(), &mut out);
            needs("smtp", channel.smtp.is_some(), &mut out);
            if let Some(to) = &channel.to {
                if to.get_ref().is_empty() {
                    out.push((to.span().start, "`to` names no recipient".into()));
                }
                for address in to.get_ref() {
                    if let Err(e) = address.parse::<lettre::message::Mailbox>() {
                        out.push((
                            to.span().start,
                            format!("`to`: `{address}` is not a mail address ({e})"),
                        ));
                    }
                }
            }
            if let Some(from) = &channel.from {
                if let Err(e) = from.get_ref().parse::<lettre::message::Mailbox>() {
                    out.push((
                        from.span().start,
                        format!("`from`: `{}` is not a mail address ({e})", from.get_ref()),
                    ));
                }
            }
            let mut plain_remote = None;
            if let Some(smtp) = &channel.smtp {
                match split_host_port(smtp.get_ref()) {
                    Err(e) => out.push((smtp.span().start, format!("`smtp`: {e}"))),
                    Ok((host, _)) if !is_loopback(&host) && !channel.starttls() => {
                        plain_remote = Some((smtp.span().start, host));
                    }
                    Ok(_) => {}
                }
            }
            if let (Some(p), Some(_)) = (&channel.password, &channel.password_file) {
                out.push((
                    p.span().start,
                    "give `password` or `password_file`, not both".into(),
                ));
            }
            let secret = channel
                .password
                .as_ref()
                .map(|p| p.span().start)
                .or(channel.password_file.as_ref().map(|p| p.span().start));
            match (&channel.username, secret) {
                (Some(u), None) => out.push((
                    u.span().start,
                    "`username` needs `password` or `password_file`".into(),
                )),
                (None, Some(at)) => {
                    out.push((at, "a password needs `username`".into()));
                }
                _ => {}
            }
            if let (Some((at, host)), Some(_)) = (plain_remote, &channel.username) {
                out.push((
                    at,
                    format!("`smtp`: the password would cross the network to {host} in clear; set `starttls = true` (plain SMTP is for a relay on loopback)"),
                ));
            }
        }
        ChannelKind::Webhook => {
            needs("url", channel.url.is_some(), &mut out);
            if let Some(url) = &channel.url {
                match url::Url::parse(url.get_ref()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    Ok(u) => out.push((
                        url.span().start,
                        format!(
                            "`url`: `{}` is not an http or https URL (scheme `{}`)",
                            url.get_ref(),
                            u.scheme()
                        ),
                    )),
                    Err(e) => out.push((
                        url.span().start,
                        format!("`url`: `{}` is not a URL: {e}", url.get_ref()),
                    )),
                }
            }
            if let Some(headers) = &channel.headers {
                for name in headers.get_ref().keys() {
                    let token = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    if !token {
                        out.push((
                            headers.span().start,
                            format!("`headers`: `{name}` is not an HTTP header name"),
                        ));
                    }
                }
            }
        }
        ChannelKind::Command => {
            needs("command", channel.command.is_some(), &mut out);
            if let Some(command) = &channel.command {
                if command.get_ref().trim().is_empty() {
                    out.push((command.span().start, "`command` is empty".into()));
                }
            }
        }
    }
    // Each kind's own keys, and where they are written when given.
    fn at<T>(value: &Option<Spanned<T>>) -> Option<usize> {
        value.as_ref().map(|v| v.span().start)
    }
    use ChannelKind::{Command, Email, Webhook};
    let own = [
        ("to", Email, at(&channel.to)),
        ("from", Email, at(&channel.from)),
        ("smtp", Email, at(&channel.smtp)),
        ("starttls", Email, at(&channel.starttls)),
        ("username", Email, at(&channel.username)),
        ("password", Email, at(&channel.password)),
        ("password_file", Email, at(&channel.password_file)),
        ("url", Webhook, at(&channel.url)),
        ("headers", Webhook, at(&channel.headers)),
        ("command", Command, at(&channel.command)),
    ];
    for (key, belongs, at) in own {
        if let Some(at) = at.filter(|_| belongs != kind) {
            out.push((
                at,
                format!(
                    "`{key}` is only for kind \"{}\" (this channel is \"{}\")",
                    belongs.name(),
                    kind.name()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split_and_a_missing_port_is_said() {
        assert_eq!(
            split_host_port("127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(split_host_port("[::1]:25"), Ok(("::1".into(), 25)));
        assert!(split_host_port("mail.example.org").is_err());
        assert!(split_host_port("mail.example.org:smtp").is_err());
        assert!(split_host_port(":25").is_err());
    }

    #[test]
    fn each_retry_waits_twice_as_long_as_the_one_before() {
        let alerts = AlertsConfig::default();
        let waits: Vec<u64> = (1..=4).map(|r| alerts.retry_delay(r).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240]);
    }
}
