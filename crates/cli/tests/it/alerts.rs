//! Alerts under `ostler serve`, as an operator meets them: a job that fails raises one
//! alert, told to tier 1 at once and to tier 2 when nobody acknowledges it in time;
//! `ostler alerts ack` stops the escalation; the job's next success resolves it and
//! every tier told hears so; `ostler silence` holds notices back; a channel that cannot
//! take the notice is tried again, then shown and journaled, never dropped silently.
//! Channels here are `command` channels appending the message JSON to a file.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{service_header, wait_for, Daemon, Svc};

/// Every message a command channel wrote to `file` (one JSON per line).
fn messages(dir: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn channel(name: &str, file: &str) -> String {
    format!(
        "[[alerts.channels]]\nname = \"{name}\"\nkind = \"command\"\ncommand = \"(cat; echo) >> {file}\"\n"
    )
}

/// A job failing every 2 s while the file `failing` exists.
const FLAKY_JOB: &str =
    "[[jobs]]\nname = \"nightly\"\nschedule = \"*/2 * * * * *\"\ncommand = \"test ! -e failing\"\n";

fn alerts(svc: &Svc) -> Value {
    serde_json::from_str(&svc.ok(&["alerts", "--all", "--json"])).unwrap()
}

#[test]
fn a_failing_job_is_told_to_tier_one_then_tier_two_and_its_success_resolves_it_for_both() {
    let svc = Svc::new(&format!(
        "{}{FLAKY_JOB}[alerts]\ngroup_wait = \"0s\"\nrenotify = \"0s\"\n{}{}\
         [[alerts.tiers]]\nchannels = [\"oncall\"]\n[[alerts.tiers]]\nafter = \"3s\"\nchannels = [\"lead\"]\n",
        service_header("timezone = \"UTC\""),
        channel("oncall", "oncall.jsonl"),
        channel("lead", "lead.jsonl"),
    ));
    std::fs::write(svc.path().join("failing"), "").unwrap();
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "tier 1 told", || {
        !messages(svc.path(), "oncall.jsonl").is_empty()
    });
    let first = &messages(svc.path(), "oncall.jsonl")[0];
    assert_eq!(first["reason"], "firing");
    assert_eq!(first["tier"], 0);
    assert_eq!(first["alerts"][0]["key"], "job:nightly");
    assert!(
        messages(svc.path(), "lead.jsonl").is_empty(),
        "tier 2 waits its 3 s"
    );
    wait_for(Duration::from_secs(30), "tier 2 told", || {
        !messages(svc.path(), "lead.jsonl").is_empty()
    });
    // One alert however many times the job failed: the repeats are counted on it.
    wait_for(Duration::from_secs(30), "a repeat counted", || {
        alerts(&svc)["alerts"][0]["occurrences"].as_u64() >= Some(2)
    });
    let listed = alerts(&svc);
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1, "{listed}");
    // The job works again: the alert resolves and both tiers hear it once.
    std::fs::remove_file(svc.path().join("failing")).unwrap();
    wait_for(
        Duration::from_secs(30),
        "both tiers told of the resolution",
        || {
            let resolved = |file| {
                messages(svc.path(), file)
                    .iter()
                    .filter(|m| m["reason"] == "resolved")
                    .count()
            };
            resolved("oncall.jsonl") == 1 && resolved("lead.jsonl") == 1
        },
    );
    let listed = alerts(&svc);
    assert!(listed["alerts"][0]["resolved_at"].is_string(), "{listed}");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let journal = svc.ok(&["journal"]);
    assert!(journal.contains("alert-resolved"), "{journal}");
}

#[test]
fn an_acknowledged_alert_goes_no_further_and_a_silence_holds_notices_back() {
    let svc = Svc::new(&format!(
        "{}{FLAKY_JOB}[alerts]\ngroup_wait = \"0s\"\n{}{}\
         [[alerts.tiers]]\nchannels = [\"oncall\"]\n[[alerts.tiers]]\nafter = \"5s\"\nchannels = [\"lead\"]\n",
        service_header("timezone = \"UTC\""),
        channel("oncall", "oncall.jsonl"),
        channel("lead", "lead.jsonl"),
    ));
    // Silenced before anything fails: nothing is told while it lasts.
    let silenced = svc.ok(&["silence", "nightly", "6s", "--reason", "planned"]);
    assert!(silenced.contains("nightly until"), "{silenced}");
    std::fs::write(svc.path().join("failing"), "").unwrap();
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "an open alert", || {
        !alerts(&svc)["alerts"].as_array().unwrap().is_empty()
    });
    let shown = svc.ok(&["alerts"]);
    assert!(shown.contains("silenced: nightly until"), "{shown}");
    assert!(
        messages(svc.path(), "oncall.jsonl").is_empty(),
        "held by the silence"
    );
    wait_for(
        Duration::from_secs(30),
        "tier 1 told once the silence ended",
        || !messages(svc.path(), "oncall.jsonl").is_empty(),
    );
    let id = alerts(&svc)["alerts"][0]["id"].as_i64().unwrap();
    let acked = svc.ok(&["alerts", "ack", &id.to_string(), "--note", "on it"]);
    assert!(acked.contains("acknowledged by"), "{acked}");
    let twice = svc.fails(&["alerts", "ack", &id.to_string()]);
    assert!(twice.contains("was acknowledged by"), "{twice}");
    // Past tier 2's 5 s: nobody more is paged.
    std::thread::sleep(Duration::from_secs(6));
    assert!(messages(svc.path(), "lead.jsonl").is_empty());
    let listed = alerts(&svc);
    assert_eq!(listed["alerts"][0]["ack_note"], "on it", "{listed}");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let nothing = svc.fails(&["silence", "nosuch", "1h"]);
    assert!(nothing.contains("nothing called nosuch"), "{nothing}");
    let bad = svc.fails(&["silence", "nightly", "soon"]);
    assert!(bad.contains("DURATION"), "{bad}");
}

#[test]
fn a_notice_a_channel_refuses_is_tried_again_then_shown_and_journaled() {
    let svc = Svc::new(&format!(
        "{}{FLAKY_JOB}[alerts]\ngroup_wait = \"0s\"\ndelivery_retries = 2\ndelivery_backoff = \"1s\"\n\
         [[alerts.channels]]\nname = \"broken\"\nkind = \"command\"\ncommand = \"echo relay down >&2; echo x >> tries; exit 1\"\n",
        service_header("timezone = \"UTC\""),
    ));
    std::fs::write(svc.path().join("failing"), "").unwrap();
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "the notice given up on", || {
        alerts(&svc)["undelivered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["gave_up_at"].is_string())
    });
    let tries = std::fs::read_to_string(svc.path().join("tries")).unwrap();
    assert_eq!(tries.lines().count(), 3, "the first try and two retries");
    let shown = svc.ok(&["alerts"]);
    assert!(shown.contains("notices not delivered"), "{shown}");
    let status = svc.ok(&["status"]);
    assert!(
        status.contains("alerts: 1 open (0 acknowledged), 1 notices not delivered"),
        "{status}"
    );
    assert!(shown.contains("to broken"), "{shown}");
    assert!(shown.contains("relay down"), "{shown}");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    assert!(svc.ok(&["journal"]).contains("alert-undelivered"));
}

#[test]
fn the_issue_s_tiers_page_the_webhook_at_once_then_mail_the_second_tier_when_nobody_acknowledges() {
    use ostler_testsupport::{SmtpSink, WebhookSink};
    // The webhook refuses the first try (500): the notice is tried again, not lost.
    let hook = WebhookSink::answering(&[500]);
    let smtp = SmtpSink::start();
    let svc = Svc::new(&format!(
        "{}{FLAKY_JOB}[alerts]\ngroup_wait = \"0s\"\ndelivery_backoff = \"1s\"\n\
         [[alerts.channels]]\nname = \"oncall\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[alerts.channels]]\nname = \"second-tier\"\nkind = \"email\"\nto = [\"ops-lead@example.org\"]\nsmtp = \"{}\"\n\
         [[alerts.tiers]]\nchannels = [\"oncall\"]\n[[alerts.tiers]]\nafter = \"3s\"\nchannels = [\"second-tier\"]\n",
        service_header("timezone = \"UTC\""),
        hook.url("/hook"),
        smtp.addr(),
    ));
    std::fs::write(svc.path().join("failing"), "").unwrap();
    let daemon = Daemon::start_up(&svc);
    let posts = hook.wait_for(2, Duration::from_secs(30));
    let body: Value = serde_json::from_str(&posts[1].body_text()).unwrap();
    assert_eq!(body["reason"], "firing");
    assert_eq!(body["service"], "guestbook");
    assert_eq!(body["alerts"][0]["key"], "job:nightly");
    let mails = smtp.wait_for(1, Duration::from_secs(30));
    let subject = mails[0].header("Subject").unwrap();
    assert_eq!(subject, "[ostler guestbook] CRITICAL: job nightly");
    assert!(
        mails[0]
            .to
            .iter()
            .any(|t| t.contains("ops-lead@example.org")),
        "{:?}",
        mails[0].to
    );
    assert!(mails[0].text().contains("nightly"), "{}", mails[0].text());
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

/// A loopback HTTP server answering 200 while `up`, 503 while not.
fn switchable_backend() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = std::sync::Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let answer = if flag.load(Ordering::SeqCst) {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown"
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, up)
}

#[test]
fn a_probe_that_fails_its_retries_pages_once_and_its_recovery_is_told() {
    use ostler_testsupport::WebhookSink;
    use std::sync::atomic::Ordering;
    let (port, up) = switchable_backend();
    let hook = WebhookSink::start();
    let svc = Svc::new(&format!(
        "{}[[probes]]\nname = \"front\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\ninterval = \"1s\"\nretries = 2\n\n\
         [alerts]\ngroup_wait = \"0s\"\n[[alerts.channels]]\nname = \"oncall\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        service_header("timezone = \"UTC\""),
        hook.url("/hook"),
    ));
    let daemon = Daemon::start_up(&svc);
    std::thread::sleep(Duration::from_secs(2));
    assert!(hook.requests().is_empty(), "nothing while it is up");
    up.store(false, Ordering::SeqCst);
    let firing = hook.wait_for(1, Duration::from_secs(30));
    let body: Value = serde_json::from_str(&firing[0].body_text()).unwrap();
    assert_eq!(body["reason"], "firing");
    assert_eq!(body["alerts"][0]["key"], "probe:front");
    assert_eq!(body["severity"], "critical");
    up.store(true, Ordering::SeqCst);
    let both = hook.wait_for(2, Duration::from_secs(30));
    let body: Value = serde_json::from_str(&both[1].body_text()).unwrap();
    assert_eq!(body["reason"], "resolved");
    assert_eq!(hook.requests().len(), 2, "one page, one recovery");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

#[test]
fn an_instance_that_is_down_is_paged_for_itself_not_for_its_http_probe() {
    use ostler_testsupport::WebhookSink;
    let hook = WebhookSink::start();
    let port = crate::support::free_port();
    let svc = Svc::new(&format!(
        "{}[instances.web]\ndir = \"web\"\nstart = \"sleep 1000\"\nport = {port}\n\n\
         [[probes]]\nname = \"web-up\"\nkind = \"process\"\ninstance = \"web\"\ninterval = \"1s\"\nretries = 1\n\n\
         [[probes]]\nname = \"web-front\"\nkind = \"http\"\ninstance = \"web\"\nurl = \"http://127.0.0.1:{port}/\"\ninterval = \"1s\"\nretries = 1\n\n\
         [alerts]\ngroup_wait = \"3s\"\n[[alerts.channels]]\nname = \"oncall\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        service_header("timezone = \"UTC\""),
        hook.url("/hook"),
    ));
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "both alerts open", || {
        alerts(&svc)["alerts"].as_array().unwrap().len() == 2
    });
    let posts = hook.wait_for(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let told: Vec<String> = hook
        .requests()
        .iter()
        .flat_map(|r| {
            let body: Value = serde_json::from_str(&r.body_text()).unwrap();
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["key"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!posts.is_empty());
    assert_eq!(
        told,
        vec!["probe:web-up".to_string()],
        "the HTTP probe is inhibited"
    );
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

#[test]
fn a_crash_loop_raises_an_alert_that_the_instance_s_next_start_resolves() {
    let port = crate::support::free_port();
    let svc = Svc::new(&format!(
        "{}[supervise]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\ncrash_limit = 3\ncrash_window = \"1m\"\n\n\
         [instances.flaky]\ndir = \"f\"\nstart = \"sh -c 'test -e ../fixed && exec sleep 1000; echo boom; exit 1'\"\nport = {port}\nautostart = true\n\n\
         [alerts]\ngroup_wait = \"0s\"\n{}",
        service_header("timezone = \"UTC\""),
        channel("oncall", "oncall.jsonl"),
    ));
    std::fs::create_dir_all(svc.path().join("f")).unwrap();
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "the crash loop told", || {
        !messages(svc.path(), "oncall.jsonl").is_empty()
    });
    let first = &messages(svc.path(), "oncall.jsonl")[0];
    assert_eq!(first["alerts"][0]["key"], "instance:flaky:crash-loop");
    assert_eq!(first["alerts"][0]["instance"], "flaky");
    assert!(
        first["alerts"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("3 crashes"),
        "{first}"
    );
    // Fixed, and started again by hand: the alert resolves.
    std::fs::write(svc.path().join("fixed"), "").unwrap();
    svc.ok(&["start", "flaky"]);
    wait_for(Duration::from_secs(30), "the resolution told", || {
        messages(svc.path(), "oncall.jsonl")
            .iter()
            .any(|m| m["reason"] == "resolved")
    });
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    svc.ok(&["stop", "flaky"]);
}

#[test]
fn a_restore_silences_its_instance_while_it_runs_and_no_longer() {
    use crate::databases::{Engine, EngineSvc};
    let es = EngineSvc::new(Engine::Sqlite, 2, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-2"]);
    es.post_entry(1, "alice", &["alpha"]);
    let backup = crate::backups::backup_id(svc, &["gb-2"]);
    svc.ok(&["restore", "gb-2", "--from", &backup]);
    let silences = std::process::Command::new("sqlite3")
        .arg(svc.path().join(".ostler/state.db"))
        .arg("SELECT target, created_by, ends_at > starts_at FROM silences")
        .output()
        .unwrap();
    let rows = String::from_utf8(silences.stdout).unwrap();
    assert!(rows.contains("gb-2|plan:restore|1"), "{rows}");
    // Ended when the restore did: none in force now.
    let now: Value = serde_json::from_str(&svc.ok(&["alerts", "--json"])).unwrap();
    assert!(now["silences"].as_array().unwrap().is_empty(), "{now}");
    svc.ok(&["stop", "gb-2"]);
}
