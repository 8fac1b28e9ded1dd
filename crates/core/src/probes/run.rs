//! Running one probe once: what it found, as a Nagios plugin would say it (a status,
//! a one-line summary, perfdata), and how long it took. A probe that cannot run says
//! so in its result (UNKNOWN, or CRITICAL where a plugin would: a refused connection,
//! a timeout) rather than failing: the prober and `ostler probe` always get a result.

use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::{Kind, ProbeConfig};
use super::range::show;
use super::Status;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::instance::Ostler;

/// One performance value, as plugins write them after `|`:
/// `label=value[unit];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perf {
    pub label: String,
    pub value: f64,
    /// `s`, `%`, `B`, `c`... or empty.
    pub unit: String,
    /// The ranges as Nagios writes them (`3`, `10:`), in `unit`.
    pub warn: Option<String>,
    pub crit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Perf {
    pub fn new(label: &str, value: f64, unit: &str) -> Perf {
        Perf {
            label: label.to_string(),
            value,
            unit: unit.to_string(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }

    /// With the thresholds it was judged against.
    pub fn judged(mut self, thresholds: &super::config::Thresholds) -> Perf {
        self.warn = thresholds.warn.as_ref().map(|r| r.to_string());
        self.crit = thresholds.crit.as_ref().map(|r| r.to_string());
        self
    }

    pub fn bounded(mut self, min: Option<f64>, max: Option<f64>) -> Perf {
        self.min = min;
        self.max = max;
        self
    }

    /// Reads one perfdata item a plugin wrote (`'a b'=1.5ms;1;2;0;`); none when it is
    /// not one.
    pub fn parse(item: &str) -> Option<Perf> {
        let (label, rest) = item.rsplit_once('=')?;
        let label = label.trim_matches('\'').replace("''", "'");
        let mut fields = rest.split(';');
        let value_text = fields.next()?;
        let split = value_text
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(value_text.len());
        let (number, unit) = value_text.split_at(split);
        let value: f64 = number.parse().ok()?;
        let text = |f: Option<&str>| f.filter(|s| !s.is_empty()).map(str::to_string);
        let warn = text(fields.next());
        let crit = text(fields.next());
        let min = fields.next().and_then(|s| s.parse().ok());
        let max = fields.next().and_then(|s| s.parse().ok());
        Some(Perf {
            label,
            value,
            unit: unit.to_string(),
            warn,
            crit,
            min,
            max,
        })
    }

    /// Every item of a plugin's perfdata text (space-separated, labels maybe quoted).
    pub fn parse_all(text: &str) -> Vec<Perf> {
        let mut items = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    current.push(c);
                }
                c if c.is_whitespace() && !quoted => {
                    if !current.is_empty() {
                        items.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            items.push(current);
        }
        items.iter().filter_map(|i| Perf::parse(i)).collect()
    }
}

/// `label=value[unit];warn;crit;min;max`, trailing empty fields left out.
impl std::fmt::Display for Perf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = if self
            .label
            .chars()
            .any(|c| c.is_whitespace() || c == '=' || c == '\'')
        {
            format!("'{}'", self.label.replace('\'', "''"))
        } else {
            self.label.clone()
        };
        let mut fields = vec![
            format!("{}{}", show(self.value), self.unit),
            self.warn.clone().unwrap_or_default(),
            self.crit.clone().unwrap_or_default(),
            self.min.map(show).unwrap_or_default(),
            self.max.map(show).unwrap_or_default(),
        ];
        while fields.len() > 1 && fields.last().is_some_and(String::is_empty) {
            fields.pop();
        }
        write!(f, "{label}={}", fields.join(";"))
    }
}

/// What one run of a probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub status: Status,
    /// One line: what was seen (`204 No Content in 0.012s`), or why it could not run.
    pub summary: String,
    pub perfdata: Vec<Perf>,
    /// How long the check took.
    #[serde(with = "duration_secs")]
    pub duration: Duration,
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
    }
}

impl ProbeResult {
    pub fn new(status: Status, summary: impl Into<String>) -> ProbeResult {
        ProbeResult {
            status,
            summary: summary.into(),
            perfdata: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn with_perf(mut self, perf: Perf) -> ProbeResult {
        self.perfdata.push(perf);
        self
    }

    /// The perfdata as plugins write it after `|`.
    pub fn perf_text(&self) -> String {
        let items: Vec<String> = self.perfdata.iter().map(Perf::to_string).collect();
        items.join(" ")
    }

    /// The plugin line: `HTTP OK - 204 No Content in 0.012s | time=0.012s;3;10;0`.
    /// An empty `kind_word` (a command probe: the plugin wrote its own words) gives the
    /// summary as it is.
    pub fn nagios_line(&self, kind_word: &str) -> String {
        let mut line = if kind_word.is_empty() {
            self.summary.clone()
        } else {
            format!(
                "{kind_word} {} - {}",
                self.status.nagios_word(),
                self.summary
            )
        };
        if !self.perfdata.is_empty() {
            let _ = write!(line, " | {}", self.perf_text());
        }
        line
    }
}

/// Runs `probe` once (blocking; at most about its `timeout`). Never fails and never
/// panics: a check that cannot be made is a result saying why.
pub fn run(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let started = Instant::now();
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match probe.kind() {
        Kind::Http => super::http::check(probe),
        Kind::Tcp => super::net::check_tcp(probe),
        Kind::Tls => super::net::check_tls(ostler, probe),
        Kind::Command => super::command::check(ostler, probe),
        Kind::Disk => super::disk::check(ostler, probe),
        Kind::Process => super::instance::check_process(ostler, probe),
        Kind::Sql => super::instance::check_sql(ostler, probe),
    }));
    let mut result = checked.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        ProbeResult::new(Status::Unknown, format!("the check panicked: {why}"))
    });
    result.duration = started.elapsed();
    tracing::debug!(probe = probe.name(), status = result.status.as_str(), summary = %result.summary, "probed");
    result
}

/// One probe's result, named, as `ostler probe` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probed {
    pub name: String,
    pub kind: Kind,
    pub instance: Option<String>,
    /// The plugin line (`HTTP OK - ... | time=...`).
    pub line: String,
    #[serde(flatten)]
    pub result: ProbeResult,
}

/// The probes called `names` (every one when none), in the order asked; an unknown
/// name is an error naming it and the known ones.
pub fn select<'a>(config: &'a Config, names: &[String]) -> Result<Vec<&'a ProbeConfig>> {
    if names.is_empty() {
        return Ok(config.probes.iter().collect());
    }
    let mut out = Vec::new();
    for name in names {
        let probe = config.probe(name).ok_or_else(|| {
            let known: Vec<&str> = config.probes.iter().map(|p| p.name()).collect();
            Error::user(format!("no probe named `{name}`")).with_hint(if known.is_empty() {
                "the config has no [[probes]]".to_string()
            } else {
                format!("probes: {}", known.join(", "))
            })
        })?;
        out.push(probe);
    }
    Ok(out)
}

/// Runs `probes` once each, in parallel (at most [`crate::daemon::prober::MAX_RUNNING`]
/// at once); results in the order given.
pub fn run_many(ostler: &Ostler, probes: &[&ProbeConfig]) -> Vec<Probed> {
    let mut out = Vec::with_capacity(probes.len());
    for chunk in probes.chunks(crate::daemon::prober::MAX_RUNNING) {
        std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|p| scope.spawn(move || run(ostler, p)))
                .collect();
            for (probe, thread) in chunk.iter().zip(running) {
                let result = thread
                    .join()
                    .unwrap_or_else(|_| ProbeResult::new(Status::Unknown, "the check panicked"));
                out.push(Probed {
                    name: probe.name().to_string(),
                    kind: probe.kind(),
                    instance: probe.instance_in(&ostler.config),
                    line: result.nagios_line(probe.kind().nagios_word()),
                    result,
                });
            }
        });
    }
    out
}

/// The worst of `statuses` as Nagios ranks them (CRITICAL, WARNING, UNKNOWN, OK); OK
/// for none.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    let rank = |s: Status| match s {
        Status::Ok => 0,
        Status::Unknown => 1,
        Status::Warning => 2,
        Status::Critical => 3,
    };
    statuses
        .into_iter()
        .max_by_key(|s| rank(*s))
        .unwrap_or(Status::Ok)
}

/// Seconds the Nagios way in a summary: `0.012s`.
pub(super) fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A time as perfdata holds it: seconds, to the millisecond.
pub(super) fn perf_secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `probe`'s `timeout`.
pub(super) fn timeout_of(probe: &ProbeConfig) -> Duration {
    probe.timeout.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_line_is_nagios_shaped() {
        let result = ProbeResult::new(Status::Ok, "204 No Content in 0.012s").with_perf(Perf {
            warn: Some("3".into()),
            crit: Some("10".into()),
            min: Some(0.0),
            ..Perf::new("time", 0.012, "s")
        });
        assert_eq!(
            result.nagios_line("HTTP"),
            "HTTP OK - 204 No Content in 0.012s | time=0.012s;3;10;0"
        );
        assert_eq!(
            ProbeResult::new(Status::Critical, "down").nagios_line("TCP"),
            "TCP CRITICAL - down"
        );
    }

    #[test]
    fn the_worst_status_is_critical_then_warning_then_unknown() {
        use Status::*;
        assert_eq!(worst([Ok, Unknown, Warning]), Warning);
        assert_eq!(worst([Unknown, Critical, Warning]), Critical);
        assert_eq!(worst([Ok, Unknown]), Unknown);
        assert_eq!(worst([]), Ok);
    }

    #[test]
    fn plugin_perfdata_reads_back_as_written() {
        let text = "'free space'=12.5%;20;10;0;100 time=0.2s;;; load1=0.5";
        let perfs = Perf::parse_all(text);
        assert_eq!(perfs.len(), 3, "{perfs:?}");
        assert_eq!(perfs[0].label, "free space");
        assert_eq!(perfs[0].unit, "%");
        assert_eq!(perfs[0].crit.as_deref(), Some("10"));
        assert_eq!(perfs[0].max, Some(100.0));
        let back: Vec<String> = perfs.iter().map(Perf::to_string).collect();
        assert_eq!(
            back.join(" "),
            "'free space'=12.5%;20;10;0;100 time=0.2s load1=0.5"
        );
    }
}
