//! Starting and stopping real processes: detach, health, port conflicts, SIGTERM then
//! SIGKILL, stale pids, process trees, logs.

use std::time::Duration;

use crate::support::*;

#[test]
fn start_detaches_logs_and_waits_for_health_then_stop_uses_sigterm() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", port, "")
    ));
    let out = svc.ok(&["build,start", "gb-1"]);
    assert_eq!(out, "");
    let (code, body) = http_get(port, "/health").unwrap();
    assert_eq!(code, 200, "{body}");
    let pid = svc.pid("gb-1").unwrap();
    // Its own process group and session.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[2], pid.to_string(), "pgid is the pid");
    let log = std::fs::read_to_string(svc.path().join(".ostler/logs/gb-1.log")).unwrap();
    assert!(log.contains("listening"), "log: {log}");
    let procs = svc.ok(&["processes", "gb-1"]);
    assert!(
        procs.contains(&pid.to_string()) && procs.contains("guestbook"),
        "{procs}"
    );
    let out = svc.run(&["stop", "gb-1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("stopped with SIGTERM"),
        "{err}"
    );
    assert!(!pid_alive(pid));
    assert_eq!(svc.instance_status("gb-1")["state"], "stopped");
}

#[test]
fn stop_falls_back_to_sigkill_after_the_timeout() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.stubborn]\ndir = \"s\"\nstart = \"sh -c 'trap \\\"\\\" TERM; while true; do sleep 0.1; done'\"\nport = {port}\nstop_timeout = \"1s\"\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("s")).unwrap();
    svc.ok(&["start", "stubborn"]);
    let pid = svc.pid("stubborn").unwrap();
    let err = String::from_utf8_lossy(&svc.run(&["stop", "stubborn"]).stderr).into_owned();
    assert!(
        err.contains("did not stop within 1s of SIGTERM; killed with SIGKILL"),
        "{err}"
    );
    assert!(!pid_alive(pid));
}

#[test]
fn start_refuses_a_taken_port_naming_the_holder() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", port, "")
    ));
    svc.ok(&["build", "gb-1"]);
    let out = svc.run(&["start", "gb-1"]);
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "port {port} is already in use: pid {}",
            std::process::id()
        )),
        "{err}"
    );
    assert_eq!(svc.instance_status("gb-1")["state"], "stopped");
}

#[test]
fn health_timeout_reports_the_logs_last_lines_and_leaves_nothing_running() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.mute]\ndir = \"m\"\nstart = \"sh -c 'echo warming up the flux capacitor; exec sleep 60'\"\nport = {port}\nhealth = \"http://127.0.0.1:{{port}}/health\"\nhealth_timeout = \"1s\"\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("m")).unwrap();
    let err = svc.fails(&["start", "mute"]);
    assert!(err.contains("did not become healthy within 1s"), "{err}");
    assert!(err.contains("warming up the flux capacitor"), "{err}");
    assert_eq!(svc.instance_status("mute")["state"], "stopped");
}

#[test]
fn a_service_that_exits_at_once_is_reported_with_its_log() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.bad]\ndir = \"b\"\nstart = \"sh -c 'echo cannot open config file >&2; exit 3'\"\nport = {port}\nhealth = \"http://127.0.0.1:{{port}}/\"\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("b")).unwrap();
    let err = svc.fails(&["start", "bad"]);
    assert!(
        err.contains("exited right after start") && err.contains("cannot open config file"),
        "{err}"
    );
}

#[test]
fn a_stale_pid_reused_by_another_program_is_not_killed() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", port, "")
    ));
    svc.ok(&["build,start", "gb-1"]);
    let pid = svc.pid("gb-1").unwrap();
    // Kill the instance behind ostler's back, then point its record at an unrelated
    // process of ours, as if the pid had been reused.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(Duration::from_secs(5), "the instance to die", || {
        !pid_alive(pid)
    });
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let db = svc.path().join(".ostler/state.db");
    let sql = format!(
        "UPDATE runtime SET pid = {}, pid_start_ticks = 1 WHERE instance = 'gb-1'",
        bystander.id()
    );
    assert!(std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(sql)
        .status()
        .unwrap()
        .success());
    let err = svc.fails(&["stop", "gb-1"]);
    assert!(err.contains("now belongs to another program"), "{err}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert_eq!(svc.instance_status("gb-1")["state"], "stopped");
}

#[test]
fn log_nuke_empties_the_logs() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", port, "logs = [\"access.log\"]")
    ));
    svc.ok(&["build,start", "gb-1"]);
    http_get(port, "/entries").unwrap();
    let access = svc.path().join("instances/gb-1/access.log");
    wait_for(Duration::from_secs(5), "an access log line", || {
        std::fs::metadata(&access)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
    svc.ok(&["stop,log-nuke", "gb-1"]);
    assert_eq!(std::fs::metadata(&access).unwrap().len(), 0);
    assert_eq!(
        std::fs::metadata(svc.path().join(".ostler/logs/gb-1.log"))
            .unwrap()
            .len(),
        0
    );
}
