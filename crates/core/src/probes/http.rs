//! The `http` probe, as Nagios' check_http does it: one request (any method, a body or
//! a generated one of N bytes, headers), redirects not followed, the status expected
//! (default any 2xx or 3xx), text expected in the body, warn/crit on the time from
//! sending to the last byte of the answer. No answer within `timeout` (connection
//! refused, reset, timed out) is CRITICAL.

use std::io::Read;
use std::time::Instant;

use super::config::ProbeConfig;
use super::run::{perf_secs, secs, timeout_of, Perf, ProbeResult};
use super::Status;

/// At most this much of an answer's body is read (and searched for `expect_body`).
const BODY_LIMIT: u64 = 4 << 20;

/// The body sent for `body_bytes = N`: N bytes of printable text, so a server that
/// stores it stores a readable file.
pub fn generated_body(n: u64) -> Vec<u8> {
    const LINE: &[u8] = b"ostler probe: generated request body.........................\n";
    LINE.iter().copied().cycle().take(n as usize).collect()
}

pub(super) fn check(probe: &ProbeConfig) -> ProbeResult {
    let Some(url) = probe.url.as_ref().map(|u| u.get_ref().as_str()) else {
        return ProbeResult::new(Status::Unknown, "no `url` to ask");
    };
    let method = probe
        .method
        .as_ref()
        .map_or("GET".to_string(), |m| m.get_ref().to_ascii_uppercase());
    let timeout = timeout_of(probe);
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("ostler-probe/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut request = agent.request(&method, url);
    if let Some(headers) = &probe.headers {
        for (name, value) in headers.get_ref() {
            request = request.set(name, value);
        }
    }
    let body: Option<Vec<u8>> = match (&probe.body, &probe.body_bytes) {
        (Some(text), _) => Some(text.get_ref().as_bytes().to_vec()),
        (None, Some(n)) => Some(generated_body(*n.get_ref())),
        (None, None) => None,
    };
    let thresholds = probe.thresholds();
    let started = Instant::now();
    let answered = match &body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    let response = match answered {
        Ok(r) => r,
        // 4xx and 5xx are answers too: judged against `expect_status` below.
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            let elapsed = started.elapsed();
            let why = if elapsed >= timeout {
                format!("no answer within {}", humantime::format_duration(timeout))
            } else {
                t.to_string()
            };
            return ProbeResult::new(Status::Critical, format!("{method} {url}: {why}"))
                .with_perf(time_perf(elapsed, &thresholds));
        }
    };
    let code = response.status();
    let status_line = format!("{code} {}", response.status_text());
    let mut text = Vec::new();
    let read = response
        .into_reader()
        .take(BODY_LIMIT)
        .read_to_end(&mut text);
    let elapsed = started.elapsed();
    let perfs = |r: ProbeResult| {
        r.with_perf(time_perf(elapsed, &thresholds))
            .with_perf(Perf::new("size", text.len() as f64, "B").bounded(Some(0.0), None))
    };
    if let Err(e) = read {
        let why = if elapsed >= timeout {
            format!(
                "no whole answer within {}",
                humantime::format_duration(timeout)
            )
        } else {
            e.to_string()
        };
        return perfs(ProbeResult::new(
            Status::Critical,
            format!("{status_line}, then the body broke off: {why}"),
        ));
    }
    let expected = match &probe.expect_status {
        Some(want) => code == *want.get_ref(),
        None => (200..400).contains(&code),
    };
    if !expected {
        let want = probe
            .expect_status
            .as_ref()
            .map_or("2xx or 3xx".to_string(), |w| w.get_ref().to_string());
        return perfs(ProbeResult::new(
            Status::Critical,
            format!("{status_line} (expected {want}) in {}", secs(elapsed)),
        ));
    }
    if let Some(want) = &probe.expect_body {
        let want = want.get_ref();
        if !String::from_utf8_lossy(&text).contains(want.as_str()) {
            return perfs(ProbeResult::new(
                Status::Critical,
                format!(
                    "{status_line} in {}, but the body does not hold `{want}`",
                    secs(elapsed)
                ),
            ));
        }
    }
    let status = thresholds.status(elapsed.as_secs_f64());
    perfs(ProbeResult::new(
        status,
        format!("{status_line} in {}", secs(elapsed)),
    ))
}

fn time_perf(elapsed: std::time::Duration, thresholds: &super::config::Thresholds) -> Perf {
    Perf::new("time", perf_secs(elapsed), "s")
        .judged(thresholds)
        .bounded(Some(0.0), None)
}
