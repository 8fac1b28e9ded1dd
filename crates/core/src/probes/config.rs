//! `[[probes]]` in `ostler.toml`. One flat entry per probe, as `[[jobs]]` are: the
//! keys common to every kind, then each kind's own, all optional to serde, so that a
//! key given to the wrong kind is refused at its own span by [`problems`] (an
//! internally tagged enum would lose toml's spans), and unknown keys are refused by
//! `deny_unknown_fields`.
//!
//! Values wrong on their own (a duration, a kind, a type) are refused by serde, so toml
//! points at them; thresholds are read with their kind's unit ([`Unit`]), and what
//! needs the rest of the config (an instance, two probes with one name) is found by
//! [`problems`], all at once, each at its span.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::range::{Range, Unit};
use crate::config::{Config, HumanDuration};
use crate::jobs::config::Problem;

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tcp,
    Command,
    Disk,
    Process,
    Sql,
    Tls,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Command => "command",
            Kind::Disk => "disk",
            Kind::Process => "process",
            Kind::Sql => "sql",
            Kind::Tls => "tls",
        }
    }

    /// The word a plugin line starts with (`HTTP OK - ...`); none for a command, whose
    /// plugin writes its own.
    pub fn nagios_word(self) -> &'static str {
        match self {
            Kind::Http => "HTTP",
            Kind::Tcp => "TCP",
            Kind::Command => "",
            Kind::Disk => "DISK",
            Kind::Process => "PROCESS",
            Kind::Sql => "SQL",
            Kind::Tls => "TLS",
        }
    }

    /// What `warn` and `crit` measure; none when the kind takes no thresholds.
    pub fn unit(self) -> Option<Unit> {
        match self {
            Kind::Http | Kind::Tcp => Some(Unit::Seconds),
            Kind::Disk => Some(Unit::Percent),
            Kind::Sql => Some(Unit::Plain),
            Kind::Tls => Some(Unit::Days),
            Kind::Command | Kind::Process => None,
        }
    }
}

/// A threshold as written: a string (`"3s"`, `"10:"`) or a bare number (`0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threshold(pub String);

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Threshold;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Nagios range such as \"10\", \"10:\", \"~:10\", \"@10:20\", \"3s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
                Ok(Threshold(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
                Ok(Threshold(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
                Ok(Threshold(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Threshold, E> {
                Ok(Threshold(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One `[[probes]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// A name as jobs have (`[A-Za-z0-9][A-Za-z0-9._-]*`), unique among probes.
    pub name: Spanned<String>,
    pub kind: Spanned<Kind>,
    /// The instance (or role) it is about: required for `process` and `sql`; on the
    /// others it routes the alert and lets an instance that is down inhibit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Spanned<String>>,
    /// How often it runs while OK or hard non-OK.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A check still going after this long is CRITICAL (a command is killed).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive non-OK results before the state is hard (alerted); 1 = at once.
    #[serde(default = "default_retries")]
    pub retries: Spanned<u32>,
    /// How often it runs while soft non-OK; default `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<HumanDuration>,
    /// It stops flapping below this weighted percent of state changes.
    #[serde(default = "default_flap_low")]
    pub flap_low: Spanned<f64>,
    /// It starts flapping above this one.
    #[serde(default = "default_flap_high")]
    pub flap_high: Spanned<f64>,
    /// WARNING when the measured value is in this range's alert zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<Spanned<Threshold>>,
    /// CRITICAL when it is in this one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Spanned<Threshold>>,

    // http
    /// `http`: the request method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Spanned<String>>,
    /// `http`: the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Spanned<String>>,
    /// `http`: a generated request body of this many bytes (a test file to PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<Spanned<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// `http`: the status to expect (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<Spanned<u16>>,
    /// `http`: text the body must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<Spanned<String>>,

    // tcp, tls
    /// `tcp`, `tls`: `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Spanned<String>>,
    /// `tls`: the name sent (SNI) and shown; default the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<Spanned<String>>,

    // command
    /// `command`: a Nagios plugin's command line, run with `sh -c` in the config's
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<String>>,

    // disk
    /// `disk`: a path on the filesystem to watch (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<PathBuf>>,
    /// `disk`: thresholds on the percent of inodes used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_warn: Option<Spanned<Threshold>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_crit: Option<Spanned<Threshold>>,

    // sql
    /// `sql`: a query returning one number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Spanned<String>>,
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_retries() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_flap_low() -> Spanned<f64> {
    Spanned::new(0..0, 25.0)
}
fn default_flap_high() -> Spanned<f64> {
    Spanned::new(0..0, 50.0)
}

/// The thresholds of one measure, read (checked by [`problems`]; one that cannot be
/// read is left out here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub warn: Option<Range>,
    pub crit: Option<Range>,
}

impl Thresholds {
    /// The status a value has against these.
    pub fn status(&self, value: f64) -> super::Status {
        if self.crit.as_ref().is_some_and(|r| r.alerts(value)) {
            super::Status::Critical
        } else if self.warn.as_ref().is_some_and(|r| r.alerts(value)) {
            super::Status::Warning
        } else {
            super::Status::Ok
        }
    }
}

fn read(t: &Option<Spanned<Threshold>>, unit: Unit) -> Option<Range> {
    t.as_ref()
        .and_then(|t| Range::parse(&t.get_ref().0, unit).ok())
}

impl ProbeConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub fn kind(&self) -> Kind {
        *self.kind.get_ref()
    }

    /// `warn` and `crit`, in the kind's unit.
    pub fn thresholds(&self) -> Thresholds {
        let unit = self.kind().unit().unwrap_or(Unit::Plain);
        Thresholds {
            warn: read(&self.warn, unit),
            crit: read(&self.crit, unit),
        }
    }

    /// `inodes_warn` and `inodes_crit` (percent).
    pub fn inode_thresholds(&self) -> Thresholds {
        Thresholds {
            warn: read(&self.inodes_warn, Unit::Percent),
            crit: read(&self.inodes_crit, Unit::Percent),
        }
    }

    /// Consecutive non-OK results before a hard state (at least 1).
    pub fn retries(&self) -> u32 {
        (*self.retries.get_ref()).max(1)
    }

    /// The wait before the next check: `retry_interval` while soft non-OK.
    pub fn next_wait(&self, soft: bool) -> Duration {
        match (soft, self.retry_interval) {
            (true, Some(r)) => r.0,
            _ => self.interval.0,
        }
    }

    /// (flap_low, flap_high), percents.
    pub fn flap(&self) -> (f64, f64) {
        (*self.flap_low.get_ref(), *self.flap_high.get_ref())
    }

    /// The instance it is about, a role resolved to the instance behind it now.
    pub fn instance_in(&self, config: &Config) -> Option<String> {
        let named = self.instance.as_ref()?.get_ref();
        Some(config.resolve(named).unwrap_or_else(|_| named.clone()))
    }
}

impl Config {
    /// The probe named `name`.
    pub fn probe(&self, name: &str) -> Option<&ProbeConfig> {
        self.probes.iter().find(|p| p.name() == name)
    }
}

/// What serde cannot check in `[[probes]]`: names, instances, the keys each kind
/// needs and refuses, thresholds in the kind's unit, flap percents.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for probe in &config.probes {
        let name = probe.name();
        let at = probe.name.span().start;
        let kind = probe.kind();
        if let Err(e) = crate::config::check_name(name) {
            out.push((at, format!("probe name `{name}` is not allowed: {e}")));
        }
        if !names.insert(name) {
            out.push((at, format!("two probes are named `{name}`")));
        }
        match &probe.instance {
            Some(instance) if config.resolve(instance.get_ref()).is_err() => out.push((
                instance.span().start,
                format!(
                    "probe `{name}` names instance `{}`, which is not defined (instances: {})",
                    instance.get_ref(),
                    config.instance_names().join(", ")
                ),
            )),
            Some(_) => {}
            None if matches!(kind, Kind::Process | Kind::Sql) => out.push((
                probe.kind.span().start,
                format!(
                    "probe `{name}`: kind \"{}\" needs `instance` (an instance or a role)",
                    kind.name()
                ),
            )),
            None => {}
        }
        if *probe.retries.get_ref() == 0 {
            out.push((
                probe.retries.span().start,
                format!(
                    "probe `{name}`: `retries` is at least 1 (1: a non-OK result is hard at once)"
                ),
            ));
        }
        let (low, high) = probe.flap();
        for (key, value) in [
            ("flap_low", &probe.flap_low),
            ("flap_high", &probe.flap_high),
        ] {
            if !(0.0..=100.0).contains(value.get_ref()) {
                out.push((
                    value.span().start,
                    format!("probe `{name}`: `{key}` is a percent, 0 to 100"),
                ));
            }
        }
        if low > high {
            out.push((
                probe.flap_low.span().start,
                format!("probe `{name}`: `flap_low` ({low}) is above `flap_high` ({high})"),
            ));
        }
        if probe.interval.0.is_zero() {
            out.push((at, format!("probe `{name}`: `interval` cannot be 0")));
        }
        out.extend(keys(probe));
        let thresholds = [
            ("warn", &probe.warn, kind.unit()),
            ("crit", &probe.crit, kind.unit()),
            ("inodes_warn", &probe.inodes_warn, Some(Unit::Percent)),
            ("inodes_crit", &probe.inodes_crit, Some(Unit::Percent)),
        ];
        for (key, t, unit) in thresholds {
            let (Some(t), Some(unit)) = (t, unit) else {
                continue;
            };
            if let Err(e) = Range::parse(&t.get_ref().0, unit) {
                out.push((t.span().start, format!("probe `{name}`: `{key}`: {e}")));
            }
        }
        if let Some(url) = &probe.url {
            if url::Url::parse(url.get_ref()).is_err() {
                out.push((
                    url.span().start,
                    format!("probe `{name}`: `{}` is not a URL", url.get_ref()),
                ));
            }
        }
        if let Some(address) = &probe.address {
            if address
                .get_ref()
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                out.push((
                    address.span().start,
                    format!(
                        "probe `{name}`: address `{}` is not host:port",
                        address.get_ref()
                    ),
                ));
            }
        }
    }
    out.extend(probe_jobs(config));
    out
}

/// A job of action `probe` whose `args` name a probe names one that exists.
fn probe_jobs(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for job in &config.jobs {
        let is_probe = job
            .action
            .as_ref()
            .is_some_and(|a| *a.get_ref() == crate::jobs::Action::Probe);
        let Some(named) = job.args.first().filter(|_| is_probe) else {
            continue;
        };
        if config.probe(named).is_none() {
            let known: Vec<&str> = config.probes.iter().map(|p| p.name()).collect();
            out.push((
                job.name.span().start,
                format!(
                    "job `{}`: its args name probe `{named}`, which is not defined (probes: {})",
                    job.name.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    out
}

/// Each kind's own keys: the ones it needs, and any given that belong to another kind.
fn keys(probe: &ProbeConfig) -> Vec<Problem> {
    use Kind::*;
    let name = probe.name();
    let kind = probe.kind();
    let span = |s: &std::ops::Range<usize>| s.start;
    // (key, where it is written if given, the kinds it belongs to)
    let given: [(&str, Option<usize>, &[Kind]); 16] = [
        (
            "method",
            probe.method.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        ("url", probe.url.as_ref().map(|v| span(&v.span())), &[Http]),
        (
            "body",
            probe.body.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        (
            "body_bytes",
            probe.body_bytes.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        (
            "headers",
            probe.headers.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        (
            "expect_status",
            probe.expect_status.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        (
            "expect_body",
            probe.expect_body.as_ref().map(|v| span(&v.span())),
            &[Http],
        ),
        (
            "address",
            probe.address.as_ref().map(|v| span(&v.span())),
            &[Tcp, Tls],
        ),
        (
            "server_name",
            probe.server_name.as_ref().map(|v| span(&v.span())),
            &[Tls],
        ),
        (
            "command",
            probe.command.as_ref().map(|v| span(&v.span())),
            &[Command],
        ),
        (
            "path",
            probe.path.as_ref().map(|v| span(&v.span())),
            &[Disk],
        ),
        (
            "inodes_warn",
            probe.inodes_warn.as_ref().map(|v| span(&v.span())),
            &[Disk],
        ),
        (
            "inodes_crit",
            probe.inodes_crit.as_ref().map(|v| span(&v.span())),
            &[Disk],
        ),
        (
            "query",
            probe.query.as_ref().map(|v| span(&v.span())),
            &[Sql],
        ),
        (
            "warn",
            probe.warn.as_ref().map(|v| span(&v.span())),
            &[Http, Tcp, Disk, Sql, Tls],
        ),
        (
            "crit",
            probe.crit.as_ref().map(|v| span(&v.span())),
            &[Http, Tcp, Disk, Sql, Tls],
        ),
    ];
    let mut out = Vec::new();
    for (key, at, kinds) in given {
        if let Some(at) = at {
            if !kinds.contains(&kind) {
                let names: Vec<String> =
                    kinds.iter().map(|k| format!("\"{}\"", k.name())).collect();
                out.push((
                    at,
                    format!(
                        "probe `{name}`: `{key}` is only for kind {}, not \"{}\"",
                        names.join(" or "),
                        kind.name()
                    ),
                ));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    let needs: &[(&str, bool)] = match kind {
        Http => &[("url", probe.url.is_some())],
        Tcp | Tls => &[("address", probe.address.is_some())],
        Command => &[("command", probe.command.is_some())],
        Disk => &[("path", probe.path.is_some())],
        Sql => &[("query", probe.query.is_some())],
        Process => &[],
    };
    for (key, present) in needs {
        if !present {
            out.push((
                probe.kind.span().start,
                format!("probe `{name}`: kind \"{}\" needs `{key}`", kind.name()),
            ));
        }
    }
    if let (Some(_), Some(bytes)) = (&probe.body, &probe.body_bytes) {
        out.push((
            bytes.span().start,
            format!("probe `{name}`: give `body` or `body_bytes`, not both"),
        ));
    }
    out
}
