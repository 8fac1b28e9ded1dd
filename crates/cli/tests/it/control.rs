//! The daemon's control API as a user meets it: `ostler status` saying whether the
//! daemon is up (text and `--json`), `ostler serve --status` exiting 0 or 3, the
//! socket owner-only, and another user refused by the socket's mode and, past that,
//! by the peer-uid check.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

const NOBODY: u32 = 65534;

/// An instance that needs no build and is never started.
fn config(dir: &str) -> String {
    format!(
        "{}[instances.idle]\ndir = \"{dir}\"\nstart = \"sleep 1000\"\nport = {}\n",
        service_header(""),
        free_port()
    )
}

#[test]
fn status_says_whether_the_daemon_is_up_and_serve_status_exits_0_or_3() {
    let svc = Svc::new(&config("idle"));
    std::fs::create_dir_all(svc.path().join("idle")).unwrap();
    // No daemon: status still lists the instances, serve --status exits 3.
    let text = svc.ok(&["status"]);
    assert!(text.starts_with("daemon: not running\n"), "{text}");
    assert!(text.contains("idle"), "{text}");
    let down = svc.run(&["serve", "--status"]);
    assert_eq!(down.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&down.stdout),
        "daemon: not running\n"
    );
    assert!(svc.status_all()["daemon"].is_null());

    let daemon = Daemon::start_up(&svc);
    let pid = daemon.pid();
    // Both components report in once they ran their first step.
    wait_for(Duration::from_secs(10), "both components running", || {
        let text = svc.ok(&["status"]);
        text.contains("supervisor running") && text.contains("control running")
    });
    let text = svc.ok(&["status"]);
    assert!(
        text.starts_with(&format!("daemon: up, pid {pid}, up ")),
        "{text}"
    );
    assert!(text.contains("idle"), "{text}");
    let all = svc.status_all();
    assert_eq!(all["daemon"]["pid"], pid);
    assert_eq!(all["daemon"]["draining"], false);
    let state_dir = svc.path().join(".ostler").canonicalize().unwrap();
    assert_eq!(
        std::path::Path::new(all["daemon"]["state_dir"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        state_dir
    );
    let supervisor = all["daemon"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "supervisor")
        .cloned()
        .unwrap();
    assert_eq!(supervisor["state"], "running", "{supervisor}");
    assert_eq!(all["instances"][0]["name"], "idle");
    let up = svc.run(&["serve", "--status"]);
    assert_eq!(up.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&up.stdout).starts_with(&format!("daemon: up, pid {pid}")));

    // Owner-only socket.
    let socket = state_dir.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // SIGTERM: the socket goes with the daemon, and status says so.
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    assert!(!socket.exists());
    assert_eq!(svc.run(&["serve", "--status"]).status.code(), Some(3));
    assert!(svc.ok(&["status"]).starts_with("daemon: not running\n"));
}

#[test]
fn a_socket_left_by_a_dead_daemon_reads_as_no_daemon() {
    let svc = Svc::new(&config("idle"));
    std::fs::create_dir_all(svc.path().join("idle")).unwrap();
    let daemon = Daemon::start_up(&svc);
    // SIGKILL leaves the socket file behind, with nobody listening.
    kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGKILL).unwrap();
    drop(daemon);
    assert!(svc.path().join(".ostler/control.sock").exists());
    assert_eq!(svc.run(&["serve", "--status"]).status.code(), Some(3));
    assert!(svc.ok(&["status"]).starts_with("daemon: not running\n"));
    // The next daemon binds over it.
    let daemon = Daemon::start_up(&svc);
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

#[test]
fn the_control_socket_refuses_another_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root, so the test cannot run a request as nobody");
        return;
    }
    let svc = Svc::new(&config("idle"));
    std::fs::create_dir_all(svc.path().join("idle")).unwrap();
    let daemon = Daemon::start_up(&svc);
    let state_dir = svc.path().join(".ostler");
    // Let nobody reach the socket's directory (but read nothing in it), so that what
    // refuses is the socket itself, not the 0700 directories above it.
    for dir in [svc.path(), state_dir.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    // nobody's own copy of the config, naming the real state dir.
    let theirs = tempfile::Builder::new()
        .prefix("ostler-it-nobody-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(theirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_file = theirs.path().join("ostler.toml");
    std::fs::write(
        &config_file,
        format!(
            "[service]\nname = \"guestbook\"\nstate_dir = \"{}\"\n[instances.idle]\ndir = \"{}\"\nstart = \"sleep 1000\"\nport = {}\n",
            state_dir.display(),
            svc.path().join("idle").display(),
            free_port()
        ),
    )
    .unwrap();
    let as_nobody = || {
        let mut cmd = svc.cmd(&["status", "--config", config_file.to_str().unwrap()]);
        cmd.current_dir(theirs.path())
            .env("HOME", theirs.path())
            .uid(NOBODY)
            .gid(NOBODY);
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Layer 1: the socket's mode (0600) refuses the connection.
    let (code, err) = as_nobody();
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("cannot reach the daemon at") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // Layer 2: with the mode opened up, the peer-uid check still refuses (403).
    let socket = state_dir.join("control.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = as_nobody();
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "the daemon's control socket serves only uid 0 (the daemon's user) and root, not uid {NOBODY}"
        )),
        "{err}"
    );
    // The owner is still served.
    assert!(svc.ok(&["status"]).starts_with("daemon: up"));
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

#[test]
fn the_event_stream_carries_the_supervisors_crashes() {
    let svc = Svc::new(&format!(
        "{}[instances.flaky]\ndir = \"f\"\nstart = \"sh -c 'sleep 0.3; exit 1'\"\nport = {}\nautostart = true\n",
        service_header("[supervise]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\ncrash_limit = 50\ncrash_window = \"1m\"\n"),
        free_port()
    ));
    std::fs::create_dir_all(svc.path().join("f")).unwrap();
    let daemon = Daemon::start_up(&svc);
    // A plain HTTP/1.1 request on the socket, read as the stream comes.
    use std::io::{BufRead, Write};
    let mut stream =
        std::os::unix::net::UnixStream::connect(svc.path().join(".ostler/control.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /v1/events HTTP/1.1\r\nHost: ostler\r\n\r\n")
        .unwrap();
    let mut lines = std::io::BufReader::new(stream).lines();
    let head = lines.next().unwrap().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let crash = lines
        .map(|l| l.unwrap())
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .map(|data| serde_json::from_str::<serde_json::Value>(&data).unwrap())
        .find(|event| event["event"] == "instance-crashed")
        .unwrap();
    assert_eq!(crash["instance"], "flaky", "{crash}");
    assert!(crash["crashes"].as_u64().unwrap() >= 1, "{crash}");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}
