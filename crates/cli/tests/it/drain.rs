//! SIGTERM drains the daemon: no new work starts, the operation in flight (here the
//! supervisor's start of an instance, waiting for its health) finishes, or is
//! interrupted cleanly at `--drain`'s bound, and the instances keep running.

use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// An instance of the sample service that takes `delay` seconds before it listens.
fn slow_instance(port: u16, delay: u32) -> String {
    format!(
        r#"
[instances.slow]
dir = "instances/slow"
build = "cp {gb} ."
start = "sleep {delay}; exec ./guestbook --port {{port}} --db {{db}}"
port = {port}
health = "http://127.0.0.1:{{port}}/health"
health_timeout = "30s"
stop_timeout = "5s"
autostart = true

[instances.slow.database]
kind = "sqlite"
path = "data.db"
"#,
        gb = guestbook_bin().display()
    )
}

fn serve(svc: &Svc, drain: &str) -> Child {
    svc.cmd(&["serve", "--tick", "100ms", "--drain", drain])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERMs the daemon once its start of `slow` is in flight; returns whether it exited
/// 0, and its stderr.
fn terminate_mid_start(svc: &Svc, mut daemon: Child) -> (bool, String) {
    wait_for(
        Duration::from_secs(20),
        "the daemon to be starting slow",
        || svc.instance_status("slow")["lock"]["purpose"] == "supervise-start",
    );
    kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
    let status = daemon.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

/// The journal's entries for `slow`'s supervised starts, newest first: their status.
fn supervised_starts(svc: &Svc) -> Vec<String> {
    let journal: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "journal", "--instance", "slow"])).unwrap();
    journal
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "supervise-start")
        .map(|e| e["status"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn sigterm_waits_for_the_start_in_flight_and_leaves_the_instance_running() {
    let port = free_port();
    let svc = Svc::new(&format!("{}{}", service_header(""), slow_instance(port, 2)));
    svc.ok(&["build", "slow"]);
    let daemon = serve(&svc, "30s");
    let (ok, err) = terminate_mid_start(&svc, daemon);
    assert!(ok, "{err}");
    assert!(!err.contains("interrupted"), "{err}");
    // The start ran to its end: healthy, journaled ok, the lock released.
    assert_eq!(supervised_starts(&svc), ["ok"]);
    let status = svc.instance_status("slow");
    assert_eq!(status["state"], "running", "{status}");
    assert!(status["lock"].is_null(), "{status}");
    assert_eq!(http_get(port, "/health").unwrap().0, 200);
    svc.ok(&["stop", "slow"]);
}

#[test]
fn sigterm_interrupts_a_start_still_running_at_the_drain_bound_cleanly() {
    let port = free_port();
    let svc = Svc::new(&format!("{}{}", service_header(""), slow_instance(port, 4)));
    svc.ok(&["build", "slow"]);
    let daemon = serve(&svc, "300ms");
    let (ok, err) = terminate_mid_start(&svc, daemon);
    assert!(ok, "{err}");
    assert!(err.contains("work in flight was interrupted"), "{err}");
    // Interrupted, said so, and nothing left held: the lock is released and the
    // process the start launched is recorded and left to come up on its own.
    assert_eq!(supervised_starts(&svc), ["interrupted"]);
    let status = svc.instance_status("slow");
    assert!(status["lock"].is_null(), "{status}");
    assert!(status["pid"].as_i64().is_some(), "{status}");
    wait_for(Duration::from_secs(20), "slow to come up by itself", || {
        http_get(port, "/health").is_ok_and(|r| r.0 == 200)
    });
    svc.ok(&["stop", "slow"]);
}
