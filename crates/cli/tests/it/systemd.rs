//! `ostler serve` under systemd's `Type=notify`, with a real notify socket: the test
//! binds the datagram socket systemd would and reads what the daemon tells it.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// The notify socket, and every message read from it so far.
struct NotifySocket {
    socket: UnixDatagram,
    messages: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &std::path::Path) -> NotifySocket {
        NotifySocket {
            socket: UnixDatagram::bind(path).unwrap(),
            messages: Vec::new(),
        }
    }

    /// Reads messages until `done` holds for those read (or fails after `limit`).
    fn until(&mut self, limit: Duration, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while !done(&self.messages) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} within {limit:?}; got {:?}",
                self.messages
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

/// Whether one of `messages` has the line `line`.
fn has(messages: &[String], line: &str) -> bool {
    messages.iter().any(|m| m.lines().any(|l| l == line))
}

/// How many messages after the first one with the line `line` have the line `other`.
fn after(messages: &[String], line: &str, other: &str) -> Option<usize> {
    let i = messages.iter().position(|m| m.lines().any(|l| l == line))?;
    Some(
        messages[i + 1..]
            .iter()
            .filter(|m| m.lines().any(|l| l == other))
            .count(),
    )
}

#[test]
fn serve_says_ready_pings_the_watchdog_and_says_stopping_on_sigterm() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.idle]\ndir = \"idle\"\nstart = \"sleep 3600\"\nport = {port}\nautostart = true\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("idle")).unwrap();
    let socket_path = svc.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&socket_path);
    // As systemd with WatchdogSec=200ms, but without WATCHDOG_PID: the daemon's pid is
    // not known before it is spawned (and the variable is optional).
    let daemon = svc
        .cmd(&["serve", "--tick", "100ms"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    notify.until(Duration::from_secs(20), "READY=1", |m| has(m, "READY=1"));
    let ready = notify
        .messages
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap()
        .clone();
    // Ready after the supervisor's first look: the autostart instance was started.
    assert!(
        ready.contains("STATUS=supervising 1 instance: 1 running"),
        "{ready:?}"
    );
    assert_eq!(svc.instance_status("idle")["state"], "running");
    notify.until(Duration::from_secs(20), "two WATCHDOG=1 after READY", |m| {
        after(m, "READY=1", "WATCHDOG=1").is_some_and(|n| n >= 2)
    });

    kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
    notify.until(Duration::from_secs(20), "STOPPING=1", |m| {
        has(m, "STOPPING=1")
    });
    let out = daemon.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stopping the daemon leaves the instance running.
    assert_eq!(svc.instance_status("idle")["state"], "running");
    svc.ok(&["stop", "idle"]);
}
