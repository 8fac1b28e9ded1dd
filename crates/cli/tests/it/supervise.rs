//! `ostler serve`: restarts after SIGKILL, crash loops, one daemon per state, clean
//! SIGTERM, and no fights with the CLI.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// Running, and no operation (such as the daemon's start with its health wait) holds
/// the instance any more.
fn settled_running(svc: &Svc, name: &str) -> bool {
    let s = svc.instance_status(name);
    s["state"] == "running" && s["lock"].is_null()
}

const FAST: &str = "[supervise]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\ncrash_limit = 4\ncrash_window = \"1m\"\n";

/// The tick is an hour: the kill is seen when the daemon's child exits (SIGCHLD) and
/// the restart comes when the backoff ends, not at a tick.
#[test]
fn serve_starts_autostart_instances_and_restarts_one_killed_with_sigkill() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(FAST),
        guestbook_instance("gb-1", port, "autostart = true")
    ));
    svc.ok(&["build", "gb-1"]);
    let daemon = Daemon::start_ticking(&svc, "1h");
    wait_for(Duration::from_secs(20), "serve to start gb-1", || {
        settled_running(&svc, "gb-1")
    });
    let first = svc.pid("gb-1").unwrap();
    assert_eq!(http_get(port, "/health").unwrap().0, 200);
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    wait_for(Duration::from_secs(20), "serve to restart gb-1", || {
        settled_running(&svc, "gb-1")
            && svc.pid("gb-1") != Some(first)
            && http_get(port, "/health").is_ok_and(|r| r.0 == 200)
    });
    let journal = svc.ok(&["journal", "--instance", "gb-1"]);
    assert!(
        journal.contains("crash gb-1") && journal.contains("supervise-start gb-1"),
        "{journal}"
    );
    // SIGTERM: the daemon exits cleanly and leaves the instance running.
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn repeated_crashes_mark_crash_loop_and_stop_retrying() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.flaky]\ndir = \"f\"\nstart = \"sh -c 'echo boom; sleep 0.5; exit 1'\"\nport = {port}\nautostart = true\n",
        service_header(FAST)
    ));
    std::fs::create_dir_all(svc.path().join("f")).unwrap();
    let _daemon = Daemon::start(&svc);
    wait_for(Duration::from_secs(30), "crash-loop", || {
        svc.instance_status("flaky")["state"] == "crash-loop"
    });
    let status = svc.ok(&["status"]);
    assert!(status.contains("crash-loop (4)"), "{status}");
    let journal = svc.ok(&["journal", "--instance", "flaky"]);
    assert!(
        journal.contains("marked crash-loop, not restarting"),
        "{journal}"
    );
    // No more attempts once in crash-loop.
    let starts = journal.matches("supervise-start flaky").count();
    std::thread::sleep(Duration::from_millis(1500));
    let later = svc
        .ok(&["journal", "--instance", "flaky"])
        .matches("supervise-start flaky")
        .count();
    assert_eq!(starts, later);
}

#[test]
fn a_second_serve_refuses() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(FAST),
        guestbook_instance("gb-1", port, "")
    ));
    let _daemon = Daemon::start(&svc);
    wait_for(Duration::from_secs(10), "the daemon lock", || {
        svc.path().join(".ostler/serve.lock").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = svc.run(&["serve"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already supervises this service"));
}

#[test]
fn the_daemon_respects_an_operators_stop_and_start() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(FAST),
        guestbook_instance("gb-1", port, "autostart = true")
    ));
    svc.ok(&["build", "gb-1"]);
    let _daemon = Daemon::start(&svc);
    wait_for(Duration::from_secs(20), "serve to start gb-1", || {
        settled_running(&svc, "gb-1")
    });
    svc.ok(&["stop", "gb-1"]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        svc.instance_status("gb-1")["state"],
        "stopped",
        "the daemon restarted a stopped instance"
    );
    svc.ok(&["start", "gb-1"]);
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    svc.ok(&["stop", "gb-1"]);
}
