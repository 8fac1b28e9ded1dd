//! What the daemon logs: every line in `--log-format json` a JSON object, a crash there
//! with its instance and the component (and operation) it happened in, the same lines
//! in its own log file, and that file rotated by size.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// A service whose one autostart instance exits at once, again and again.
fn crashing_service(crash_limit: u32) -> Svc {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.flaky]\ndir = \"f\"\nstart = \"sh -c 'exit 1'\"\nport = {port}\nautostart = true\n",
        service_header(&format!(
            "[supervise]\nbackoff_initial = \"10ms\"\nbackoff_max = \"10ms\"\ncrash_limit = {crash_limit}\ncrash_window = \"1h\"\n"
        ))
    ));
    std::fs::create_dir_all(svc.path().join("f")).unwrap();
    svc
}

fn serve(svc: &Svc, args: &[&str]) -> Child {
    let mut all = vec!["-v", "serve", "--tick", "50ms"];
    all.extend_from_slice(args);
    svc.cmd(&all)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERMs the daemon; returns its stderr once it exited 0.
fn terminate(daemon: Child) -> String {
    kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
    let out = daemon.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// Each line of `text` as JSON, failing on any line that is not a JSON object.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\nin:\n{text}"));
            assert!(v["fields"]["message"].is_string(), "no fields.message: {l}");
            v
        })
        .collect()
}

/// The spans a JSON line was logged in, by name.
fn span<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == name)
}

#[test]
fn json_logs_carry_the_crash_with_its_instance_component_and_operation() {
    let svc = crashing_service(2);
    let daemon = serve(&svc, &["--log-format", "json"]);
    wait_for(Duration::from_secs(20), "crash-loop", || {
        svc.instance_status("flaky")["state"] == "crash-loop"
    });
    let err = terminate(daemon);
    let lines = json_lines(&err);
    let crash = lines
        .iter()
        .find(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("exited"))
        })
        .unwrap_or_else(|| panic!("no crash logged:\n{err}"));
    assert_eq!(crash["fields"]["instance"], "flaky", "{crash}");
    assert_eq!(
        span(crash, "component").unwrap()["component"],
        "supervisor",
        "{crash}"
    );
    // The supervisor's start of the instance runs as an operation, and says so.
    let started = lines
        .iter()
        .find(|l| {
            l["fields"]["command"]
                .as_str()
                .is_some_and(|c| c.contains("exit 1"))
        })
        .unwrap_or_else(|| panic!("no command logged:\n{err}"));
    let operation = span(started, "operation").unwrap();
    assert_eq!(operation["operation"], "supervise-start", "{started}");
    assert_eq!(operation["instance"], "flaky", "{started}");

    // The log file has the same lines, and only the owner may read it.
    let file = svc.path().join(".ostler/serve.log");
    let logged = std::fs::read_to_string(&file).unwrap();
    assert_eq!(json_lines(&logged).len(), lines.len(), "{logged}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn first_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next().map(str::to_string)
}

#[test]
fn the_log_file_rotates_by_size_and_keeps_log_keep_files() {
    let svc = crashing_service(100_000);
    let daemon = serve(&svc, &["--log-max-size", "2k", "--log-keep", "2"]);
    let dir = svc.path().join(".ostler");
    wait_for(Duration::from_secs(60), "serve.log.2", || {
        dir.join("serve.log.2").exists()
    });
    // One rotation more, which pushes the oldest out: serve.log.2 is another file.
    let oldest = first_line(&dir.join("serve.log.2"));
    wait_for(Duration::from_secs(60), "another rotation", || {
        first_line(&dir.join("serve.log.2")).is_some_and(|l| Some(l) != oldest)
    });
    terminate(daemon);
    assert!(dir.join("serve.log.1").exists());
    assert!(!dir.join("serve.log.3").exists());
    let size = std::fs::metadata(dir.join("serve.log.1")).unwrap().len();
    // Cut after the line that passed 2 KiB: one line more at most.
    assert!((2048..4096).contains(&size), "serve.log.1 is {size} bytes");
}
