//! Alert channels over real connections: mails to a loopback SMTP sink, webhooks to a
//! loopback HTTP receiver, commands run by `sh`; failures that name the channel and
//! say whether a retry may help; routing; and `[alerts]` config as `config check`
//! reports it (the messages are snapshots: change them on purpose only).

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use ostler_core::alerts::channel::{deliver, email, Cause, Delivered, DeliveryError};
use ostler_core::alerts::config::ChannelConfig;
use ostler_core::alerts::escalation::Tier;
use ostler_core::alerts::message::{Message, Reason};
use ostler_core::alerts::store::{Alert, Severity};
use ostler_core::config::Config;
use ostler_core::Error;
use ostler_testsupport::{SmtpSink, WebhookSink};

const BASE: &str = r#"
[service]
name = "guestbook"

[roles]
production = "gb-1"

[instances.gb-1]
dir = "instances/gb-1"
start = "./guestbook --port {port}"
port = 18081

[instances.gb-2]
dir = "instances/gb-2"
start = "./guestbook --port {port}"
port = 18082
"#;

/// The `[alerts]` part of issue 12's example, as written there.
const ISSUE_EXAMPLE: &str = r#"
[[alerts.channels]]
name = "oncall"
kind = "webhook"                   # or "email" (to, smtp), "command"
url = "http://127.0.0.1:9000/hook"

[[alerts.channels]]
name = "second-tier"
kind = "email"
to = ["ops-lead@example.org"]
smtp = "127.0.0.1:2525"

[[alerts.tiers]]
channels = ["oncall"]

[[alerts.tiers]]
after = "20m"                      # when tier 1 has not acknowledged
channels = ["second-tier"]
"#;

const WAIT: Duration = Duration::from_secs(10);

fn parse(alerts: &str) -> Result<Config, String> {
    let text = format!("{BASE}{alerts}");
    match Config::parse(&text, Path::new("ostler.toml")) {
        Ok(c) => Ok(c),
        Err(Error::Config { diagnostics }) => Err(diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")),
        Err(e) => Err(format!("unexpected error kind: {e}")),
    }
}

fn config(alerts: &str) -> Config {
    parse(alerts).unwrap_or_else(|e| panic!("{e}"))
}

/// The one channel `alerts` defines.
fn channel(alerts: &str) -> ChannelConfig {
    config(alerts).alerts.channels[0].clone()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn alert(id: i64, name: &str, instance: Option<&str>, severity: Severity) -> Alert {
    Alert {
        id,
        key: format!("probe:{name}"),
        source: "probe".into(),
        name: name.into(),
        instance: instance.map(str::to_string),
        severity,
        summary: "HTTP CRITICAL - HTTP/1.1 500 Internal Server Error - 0.012 second response time"
            .into(),
        opened_at: at("2026-01-01T09:00:00Z"),
        last_seen_at: at("2026-01-01T09:20:00Z"),
        occurrences: 3,
        acked_at: None,
        acked_by: None,
        ack_note: None,
        resolved_at: None,
        told: vec![],
        last_told_at: None,
        resolution_told: false,
    }
}

fn firing() -> Message {
    Message::new(
        "guestbook",
        Reason::Firing,
        0,
        vec![alert(12, "dav-put", Some("gb-1"), Severity::Critical)],
        at("2026-01-01T09:00:30Z"),
    )
}

fn email_channel(smtp: &str, extra: &str) -> String {
    format!(
        r#"
[[alerts.channels]]
name = "second-tier"
kind = "email"
to = ["ops-lead@example.org", "oncall@example.org"]
from = "ostler@gb.example.org"
smtp = "{smtp}"
{extra}
"#
    )
}

fn webhook_channel(url: &str, extra: &str) -> String {
    format!(
        r#"
[[alerts.channels]]
name = "oncall"
kind = "webhook"
url = "{url}"
{extra}
"#
    )
}

fn failed(result: Result<Delivered, DeliveryError>) -> DeliveryError {
    match result {
        Ok(d) => panic!("delivered: {d}"),
        Err(e) => e,
    }
}

#[test]
fn a_mail_reaches_the_smtp_server_with_the_subject_and_the_body() {
    let sink = SmtpSink::start();
    let channel = channel(&email_channel(&sink.addr(), ""));
    let message = firing();
    let delivered = deliver(&channel, &message, Path::new(".")).unwrap();
    let Delivered::Mailed { to, reply } = &delivered else {
        panic!("{delivered:?}")
    };
    assert_eq!(to, &["ops-lead@example.org", "oncall@example.org"]);
    assert_eq!(reply, "250 2.0.0 queued as sink-1");

    let mails = sink.wait_for(1, WAIT);
    let [mail] = mails.as_slice() else {
        panic!("{mails:?}")
    };
    assert_eq!(mail.from, "ostler@gb.example.org");
    assert_eq!(mail.to, ["ops-lead@example.org", "oncall@example.org"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[ostler guestbook] CRITICAL: probe dav-put (gb-1)")
    );
    assert_eq!(
        mail.header("Date").as_deref(),
        Some("Thu, 01 Jan 2026 09:00:30 +0000")
    );
    // Lines past 76 characters make lettre send it quoted-printable.
    assert_eq!(
        mail.header("Content-Transfer-Encoding").as_deref(),
        Some("quoted-printable")
    );
    assert_eq!(mail.text().trim_end(), email::body(&message).trim_end());
    assert!(mail.login.is_none());
}

#[test]
fn a_mail_body_lists_each_alert_of_a_group_and_the_tier() {
    let mut acked = alert(13, "dav-get", Some("gb-1"), Severity::Warning);
    acked.acked_at = Some(at("2026-01-01T09:10:00Z"));
    acked.acked_by = Some("alice".into());
    acked.ack_note = Some("restarting the DAV backend".into());
    acked.summary = "HTTP WARNING - HTTP/1.1 200 OK - 3.204 second response time".into();
    let mut job = alert(14, "nightly-backup", None, Severity::Critical);
    job.source = "job".into();
    job.summary = "exit 2: pg_dump: connection refused".into();
    job.occurrences = 1;
    let message = Message::new(
        "guestbook",
        Reason::Renotify,
        1,
        vec![
            alert(12, "dav-put", Some("gb-1"), Severity::Critical),
            acked,
            job,
        ],
        at("2026-01-01T10:20:00Z"),
    );
    insta::assert_snapshot!(email::body(&message));

    let mut resolved = alert(12, "dav-put", Some("gb-1"), Severity::Critical);
    resolved.resolved_at = Some(at("2026-01-01T09:41:00Z"));
    let message = Message::new(
        "guestbook",
        Reason::Resolved,
        0,
        vec![resolved],
        at("2026-01-01T09:41:05Z"),
    );
    insta::assert_snapshot!("resolved", email::body(&message));
}

#[test]
fn a_mail_channel_logs_in_with_the_first_line_of_its_password_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smtp.pass"), "s3cret\nignored\n").unwrap();
    let sink = SmtpSink::start();
    let channel = channel(&email_channel(
        &sink.addr(),
        "username = \"alerts\"\npassword_file = \"smtp.pass\"",
    ));
    deliver(&channel, &firing(), dir.path()).unwrap();
    let mails = sink.wait_for(1, WAIT);
    assert_eq!(
        mails[0].login,
        Some(("alerts".to_string(), "s3cret".to_string()))
    );

    // An unreadable password file is said, with its path, and is not retried.
    let e = failed(deliver(&channel, &firing(), Path::new("/nonexistent")));
    assert!(!e.is_transient());
    assert!(
        e.to_string().starts_with(
            "channel `second-tier`: cannot read password_file /nonexistent/smtp.pass:"
        ),
        "{e}"
    );
}

#[test]
fn a_webhook_posts_the_message_as_json_with_its_headers() {
    let sink = WebhookSink::start();
    let url = sink.url("/hook");
    let channel = channel(&webhook_channel(
        &url,
        "headers = { Authorization = \"Bearer t0ken\" }",
    ));
    let message = firing();
    let delivered = deliver(&channel, &message, Path::new(".")).unwrap();
    assert_eq!(delivered, Delivered::Posted { url, status: 200 });

    let requests = sink.wait_for(1, WAIT);
    let [request] = requests.as_slice() else {
        panic!("{requests:?}")
    };
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
    let got: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(got, serde_json::to_value(&message).unwrap());
    assert_eq!(got["reason"], "firing");
    assert_eq!(got["alerts"][0]["name"], "dav-put");
}

#[test]
fn a_command_gets_the_json_on_stdin_and_the_alert_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let channel = channel(
        r#"
[[alerts.channels]]
name = "pager"
kind = "command"
command = "cat > got.json; env | grep ^OSTLER_ALERT_ | sort > env.txt; echo paged"
"#,
    );
    let message = firing();
    let delivered = deliver(&channel, &message, dir.path()).unwrap();
    assert_eq!(
        delivered,
        Delivered::Ran {
            stdout_tail: "paged".into()
        }
    );
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("got.json")).unwrap())
            .unwrap();
    assert_eq!(got, serde_json::to_value(&message).unwrap());
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert_eq!(
        env,
        "OSTLER_ALERT_CHANNEL=pager
OSTLER_ALERT_COUNT=1
OSTLER_ALERT_ID=12
OSTLER_ALERT_IDS=12
OSTLER_ALERT_INSTANCE=gb-1
OSTLER_ALERT_KEY=probe:dav-put
OSTLER_ALERT_NAME=dav-put
OSTLER_ALERT_REASON=firing
OSTLER_ALERT_SERVICE=guestbook
OSTLER_ALERT_SEVERITY=critical
OSTLER_ALERT_SOURCE=probe
OSTLER_ALERT_SUBJECT=[ostler guestbook] CRITICAL: probe dav-put (gb-1)
OSTLER_ALERT_SUMMARY=HTTP CRITICAL - HTTP/1.1 500 Internal Server Error - 0.012 second response time
OSTLER_ALERT_TIER=1
"
    );
}

#[test]
fn a_refused_connection_is_worth_retrying_and_names_the_channel_and_the_address() {
    let down = SmtpSink::down();
    let e = failed(deliver(
        &channel(&email_channel(&down.addr(), "")),
        &firing(),
        Path::new("."),
    ));
    assert!(e.is_transient());
    assert_eq!(e.channel, "second-tier");
    assert_eq!(
        e.to_string(),
        format!(
            "channel `second-tier`: connection refused by {}",
            down.addr()
        )
    );

    let e = failed(deliver(
        &channel(&webhook_channel(
            &format!("http://{}/hook", down.addr()),
            "",
        )),
        &firing(),
        Path::new("."),
    ));
    assert!(e.is_transient());
    assert_eq!(
        e.to_string(),
        format!("channel `oncall`: connection refused by {}", down.addr())
    );
}

#[test]
fn http_500_408_and_429_are_worth_retrying_and_400_is_not() {
    let sink = WebhookSink::answering(&[500, 408, 429, 400, 301]);
    let url = sink.url("/hook");
    let channel = channel(&webhook_channel(&url, ""));
    let mut got = Vec::new();
    for _ in 0..5 {
        let e = failed(deliver(&channel, &firing(), Path::new(".")));
        let Cause::Status { status, .. } = e.cause else {
            panic!("{e}")
        };
        got.push((status, e.transient));
        if status == 500 {
            assert_eq!(
                e.to_string(),
                format!("channel `oncall`: HTTP 500 from {url}: the sink answers 500")
            );
        }
    }
    // A redirect is not followed: a webhook set up wrong, not worth retrying.
    assert_eq!(
        got,
        [
            (500, true),
            (408, true),
            (429, true),
            (400, false),
            (301, false)
        ]
    );
    // The retry after them gets through.
    deliver(&channel, &firing(), Path::new(".")).unwrap();
    assert_eq!(sink.requests().len(), 6);
}

#[test]
fn a_webhook_that_never_answers_fails_at_the_timeout_and_is_worth_retrying() {
    let sink = WebhookSink::hanging();
    let channel = channel(&webhook_channel(&sink.url("/hook"), "timeout = \"300ms\""));
    let started = Instant::now();
    let e = failed(deliver(&channel, &firing(), Path::new(".")));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.is_transient());
    assert!(matches!(e.cause, Cause::TimedOut { .. }), "{e}");
    // As the alerter would keep it (JSON), the cause says its kind and the wait.
    let kept = serde_json::to_value(&e).unwrap();
    assert_eq!(
        (
            &kept["channel"],
            &kept["cause"]["kind"],
            &kept["cause"]["after"],
            &kept["transient"]
        ),
        (
            &"oncall".into(),
            &"timed-out".into(),
            &"300ms".into(),
            &true.into()
        )
    );
    assert!(
        e.to_string()
            .starts_with("channel `oncall`: no answer from 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn an_smtp_server_that_never_greets_fails_at_the_timeout() {
    let sink = SmtpSink::silent();
    let channel = channel(&email_channel(&sink.addr(), "timeout = \"300ms\""));
    let started = Instant::now();
    let e = failed(deliver(&channel, &firing(), Path::new(".")));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.is_transient());
    assert_eq!(
        e.to_string(),
        format!(
            "channel `second-tier`: no answer from {} within 300ms",
            sink.addr()
        )
    );
}

#[test]
fn a_slow_smtp_conversation_is_cut_off_at_the_timeout_though_each_answer_is_in_time() {
    // Eight answers 250 ms apart (2 s): each within 500 ms, the whole not.
    let sink = SmtpSink::slow(Duration::from_millis(250));
    let channel = channel(&email_channel(&sink.addr(), "timeout = \"500ms\""));
    let started = Instant::now();
    let e = failed(deliver(&channel, &firing(), Path::new(".")));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(matches!(e.cause, Cause::TimedOut { .. }), "{e}");
    assert!(e.is_transient());
}

#[test]
fn an_smtp_4xx_is_worth_retrying_and_a_5xx_is_not() {
    for (code, transient) in [(451, true), (550, false)] {
        let sink = SmtpSink::refusing(code);
        let e = failed(deliver(
            &channel(&email_channel(&sink.addr(), "")),
            &firing(),
            Path::new("."),
        ));
        assert_eq!(e.is_transient(), transient, "{code}: {e}");
        assert_eq!(
            e.to_string(),
            format!(
                "channel `second-tier`: the SMTP server at {} answered {code}: {}.7.1 the sink refuses this mail",
                sink.addr(),
                code / 100
            )
        );
        assert!(sink.mails().is_empty());
    }
}

#[test]
fn a_failing_command_says_its_exit_and_the_end_of_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let run = |command: &str| {
        let channel = channel(&format!(
            "[[alerts.channels]]\nname = \"pager\"\nkind = \"command\"\ncommand = \"\"\"{command}\"\"\"\n"
        ));
        failed(deliver(&channel, &firing(), dir.path()))
    };
    let e = run("echo starting; echo 'no route to pager' >&2; exit 3");
    assert!(e.is_transient());
    assert_eq!(
        e.to_string(),
        "channel `pager`: the command exited 3; stderr: no route to pager"
    );
    // Nothing to run: a retry will not find it either.
    let e = run("no-such-pager-program");
    assert!(!e.is_transient(), "{e}");
    assert!(
        matches!(
            e.cause,
            Cause::Exited {
                code: Some(127),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_command_past_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let channel = channel(
        r#"
[[alerts.channels]]
name = "pager"
kind = "command"
command = "sleep 60 & echo $! > bg.pid; sleep 60"
timeout = "500ms"
"#,
    );
    let started = Instant::now();
    let e = failed(deliver(&channel, &firing(), dir.path()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(e.is_transient());
    assert_eq!(
        e.to_string(),
        "channel `pager`: the command was still running after 500ms; killed with its process group"
    );
    let pid: i32 = std::fs::read_to_string(dir.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while ostler_core::process::pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !ostler_core::process::pid_alive(pid),
        "the background sleep {pid} survived"
    );
}

#[test]
fn routing_takes_alerts_by_severity_and_instance_a_role_standing_for_its_instance() {
    let config = config(
        r#"
[[alerts.channels]]
name = "prod-pager"
kind = "command"
command = "true"
severities = ["critical"]
instances = ["production"]
send_resolved = false

[[alerts.channels]]
name = "everything"
kind = "command"
command = "true"
"#,
    );
    let [pager, everything] = config.alerts.channels.as_slice() else {
        panic!()
    };
    let cases = [
        (Some("gb-1"), Severity::Critical, true),
        (Some("gb-1"), Severity::Warning, false),
        (Some("gb-2"), Severity::Critical, false),
        (None, Severity::Critical, false),
    ];
    for (instance, severity, taken) in cases {
        let a = alert(1, "dav-put", instance, severity);
        assert_eq!(
            pager.accepts(&config, &a),
            taken,
            "{instance:?} {severity:?}"
        );
        assert!(everything.accepts(&config, &a), "{instance:?} {severity:?}");
    }
    // The role follows the instance it points at: after a switch, gb-2's alerts page.
    let mut switched = config.clone();
    switched
        .roles
        .insert("production".into(), toml::Spanned::new(0..0, "gb-2".into()));
    assert!(pager.accepts(
        &switched,
        &alert(1, "dav-put", Some("gb-2"), Severity::Critical)
    ));
    assert!(!pager.accepts(
        &switched,
        &alert(1, "dav-put", Some("gb-1"), Severity::Critical)
    ));

    // An alert filed under the role's name is the instance behind it too.
    assert!(pager.accepts(
        &config,
        &alert(1, "dav-put", Some("production"), Severity::Critical)
    ));

    assert!(pager.wants(Reason::Firing) && pager.wants(Reason::Renotify));
    assert!(!pager.wants(Reason::Resolved), "send_resolved = false");
    assert!(everything.wants(Reason::Resolved));
}

#[test]
fn the_issues_example_parses_into_two_tiers_twenty_minutes_apart() {
    let config = config(ISSUE_EXAMPLE);
    let alerts = &config.alerts;
    assert_eq!(
        alerts.tiers(),
        [
            Tier {
                after: Duration::ZERO,
                channels: vec!["oncall".into()]
            },
            Tier {
                after: Duration::from_secs(20 * 60),
                channels: vec!["second-tier".into()]
            },
        ]
    );
    assert_eq!(alerts.renotify(), Some(Duration::from_secs(3600)));
    assert_eq!(alerts.group_wait.0, Duration::from_secs(30));
    assert_eq!(alerts.delivery_retries, 5);
    assert_eq!(alerts.retry_delay(1), Duration::from_secs(30));
    assert_eq!(alerts.retry_delay(3), Duration::from_secs(120));
    let email = alerts.channel("second-tier").unwrap();
    assert_eq!(email.smtp_address(), Some(("127.0.0.1".into(), 2525)));
    assert!(email.from().starts_with("ostler@"), "{}", email.from());
    assert_eq!(email.timeout.0, Duration::from_secs(10));
    assert!(email.send_resolved);
}

#[test]
fn without_tiers_every_channel_is_told_at_once_and_each_later_tier_waits_20_minutes() {
    let two = config(&format!(
        "{}{}",
        webhook_channel("http://127.0.0.1:9000/hook", ""),
        email_channel("127.0.0.1:2525", "")
    ));
    assert_eq!(
        two.alerts.tiers(),
        [Tier {
            after: Duration::ZERO,
            channels: vec!["oncall".into(), "second-tier".into()]
        }]
    );
    let three = config(&format!(
        "{}{}[[alerts.tiers]]\nchannels = [\"oncall\"]\n[[alerts.tiers]]\nchannels = [\"second-tier\"]\n[[alerts.tiers]]\nafter = \"1h\"\nchannels = [\"oncall\", \"second-tier\"]\n",
        webhook_channel("http://127.0.0.1:9000/hook", ""),
        email_channel("127.0.0.1:2525", "")
    ));
    let afters: Vec<u64> = three
        .alerts
        .tiers()
        .iter()
        .map(|t| t.after.as_secs())
        .collect();
    assert_eq!(afters, [0, 1200, 3600]);
    assert!(Config::parse(BASE, Path::new("ostler.toml"))
        .unwrap()
        .alerts
        .tiers()
        .is_empty());
}

#[test]
fn renotify_is_also_read_as_repeat_interval_and_never_or_0s_turn_it_off() {
    for (line, every) in [
        ("renotify = \"15m\"", Some(Duration::from_secs(900))),
        (
            "repeat_interval = \"4h\"",
            Some(Duration::from_secs(4 * 3600)),
        ),
        ("renotify = \"never\"", None),
        ("repeat_interval = \"0s\"", None),
    ] {
        let config = config(&format!("[alerts]\n{line}\n"));
        assert_eq!(config.alerts.renotify(), every, "{line}");
    }
}

#[test]
fn config_show_never_shows_the_smtp_password_or_a_webhook_header() {
    let config = config(&format!(
        "{}{}",
        email_channel(
            "127.0.0.1:2525",
            "username = \"alerts\"\npassword = \"hunter2\"",
        ),
        webhook_channel(
            "http://127.0.0.1:9000/hook",
            "headers = { Authorization = \"Bearer t0ken\" }"
        )
    ));
    let shown = config.show();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("t0ken"), "{shown}");
    assert!(shown.contains("password = \"********\""), "{shown}");
    assert!(shown.contains("Authorization = \"********\""), "{shown}");
    // What is shown parses back.
    Config::parse(&shown, Path::new("shown.toml")).unwrap();
}

#[test]
fn values_wrong_on_their_own_point_at_their_line() {
    let cases = [
        webhook_channel("http://127.0.0.1:9000/hook", "kind = \"pager\"")
            .replace("kind = \"webhook\"\n", ""),
        webhook_channel("http://127.0.0.1:9000/hook", "colour = \"red\""),
        webhook_channel("http://127.0.0.1:9000/hook", "severities = [\"crit\"]"),
        webhook_channel("http://127.0.0.1:9000/hook", "timeout = \"soon\""),
        "[alerts]\nrenotify = \"hourly\"\n".to_string(),
        "[[alerts.tiers]]\nafter = \"20m\"\n".to_string(),
    ];
    let out: Vec<String> = cases
        .iter()
        .map(|c| parse(c).err().unwrap_or_else(|| "ok".into()))
        .collect();
    insta::assert_snapshot!(out.join("\n\n"));
}

#[test]
fn keys_of_another_kind_point_at_their_own_line() {
    let text = r#"
[[alerts.channels]]
name = "oncall"
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
smtp = "127.0.0.1:2525"
to = ["ops-lead@example.org"]

[[alerts.channels]]
name = "second-tier"
kind = "email"
to = ["ops-lead@example.org"]
smtp = "127.0.0.1:2525"
url = "http://127.0.0.1:9000/hook"
command = "notify-send alert"
"#;
    insta::assert_snapshot!(parse(text).unwrap_err());
}

#[test]
fn problems_across_channels_and_tiers_are_found_all_at_once() {
    let text = r#"
[alerts]
renotify = "1h"
repeat_interval = "2h"

[[alerts.channels]]
name = "oncall"
kind = "webhook"
url = "ftp://127.0.0.1/hook"
instances = ["gb-1", "gb-9"]
severities = []

[[alerts.channels]]
name = "oncall"
kind = "email"
to = ["not an address"]
smtp = "mail.example.org"

[[alerts.channels]]
name = "remote"
kind = "email"
to = ["ops@example.org"]
smtp = "mail.example.org:25"
username = "alerts"
password = "hunter2"
password_file = "smtp.pass"

[[alerts.channels]]
name = "../pager"
kind = "command"

[[alerts.tiers]]
channels = ["oncall", "oncall"]

[[alerts.tiers]]
channels = []

[[alerts.tiers]]
channels = ["third-tier"]
"#;
    insta::assert_snapshot!(parse(text).unwrap_err());
}

#[test]
fn starttls_against_a_server_without_it_sends_nothing_in_clear() {
    let sink = SmtpSink::start();
    let channel = channel(&email_channel(
        &sink.addr(),
        "starttls = true\nusername = \"alerts\"\npassword = \"hunter2\"",
    ));
    let e = failed(deliver(&channel, &firing(), Path::new(".")));
    assert!(!e.is_transient(), "the server must change first: {e}");
    assert_eq!(
        e.to_string(),
        format!(
            "channel `second-tier`: SMTP with {} failed: internal client error: STARTTLS is not supported on this server",
            sink.addr()
        )
    );
    assert!(sink.mails().is_empty());
}
