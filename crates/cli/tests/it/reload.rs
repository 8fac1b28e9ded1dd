//! Live reload under `ostler serve`: an invalid config is refused and the daemon keeps
//! supervising with the old one; a valid one starts what it adds, lets go of what it
//! removes (left running) and restarts nothing, a changed instance taking its new
//! settings at its next restart.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

const FAST: &str = "[supervise]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\ncrash_limit = 4\ncrash_window = \"1m\"\n";

/// The service with gb-1 and gb-2 both autostart, on their ports.
fn two_instances(ports: [u16; 2]) -> String {
    format!(
        "{}{}{}",
        service_header(FAST),
        guestbook_instance("gb-1", ports[0], "autostart = true"),
        guestbook_instance("gb-2", ports[1], "autostart = true"),
    )
}

/// Everything reads the service through `config` (a file in its dir), which stays
/// valid while `ostler.toml` is broken on purpose.
fn status_of(svc: &Svc, config: &str, name: &str) -> serde_json::Value {
    let out = svc.ok(&["--config", config, "status", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    all["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {all}"))
}

/// Running, its health wait over (no lock held), with a pid.
fn running_pid(svc: &Svc, config: &str, name: &str) -> Option<i32> {
    let s = status_of(svc, config, name);
    (s["state"] == "running" && s["lock"].is_null())
        .then(|| s["pid"].as_i64().map(|p| p as i32))
        .flatten()
}

fn wait_running(svc: &Svc, config: &str, name: &str) -> i32 {
    let mut pid = None;
    wait_for(Duration::from_secs(30), &format!("{name} running"), || {
        pid = running_pid(svc, config, name);
        pid.is_some()
    });
    pid.unwrap()
}

/// The journal's entries of `operation` (and `instance`), oldest first.
fn journaled(
    svc: &Svc,
    config: &str,
    operation: &str,
    instance: Option<&str>,
) -> Vec<serde_json::Value> {
    let out = svc.ok(&["--config", config, "--json", "journal", "--limit", "1000"]);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let mut picked: Vec<_> = all
        .into_iter()
        .filter(|e| e["operation"] == operation && e["instance"].as_str() == instance)
        .collect();
    picked.sort_by_key(|e| e["id"].as_i64());
    picked
}

/// Asks the running daemon to reload by `how`; returns the journal's `reload` entry it
/// wrote (and, for the CLI, its exit status and output).
fn ask_reload(svc: &Svc, daemon: &Daemon, how: How) -> (serde_json::Value, Option<Asked>) {
    // The copy of the config that was valid before this reload.
    let before = journaled(svc, "before.toml", "reload", None).len();
    let asked = match how {
        How::Signal => {
            kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGHUP).unwrap();
            None
        }
        How::Cli => {
            let out = svc.run(&["reload"]);
            Some(Asked {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    };
    let mut entries = Vec::new();
    wait_for(
        Duration::from_secs(10),
        "the reload's journal entry",
        || {
            entries = journaled(svc, "before.toml", "reload", None);
            entries.len() > before
        },
    );
    (entries.pop().unwrap(), asked)
}

#[derive(Clone, Copy)]
enum How {
    Signal,
    Cli,
}

struct Asked {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The environment the process `pid` was started with.
fn environ(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

/// The whole story, asked for by `how`.
fn invalid_then_valid(how: How) {
    let ports = [free_port(), free_port(), free_port()];
    let config = two_instances([ports[0], ports[1]]);
    let svc = Svc::new(&config);
    let write = |name: &str, text: &str| std::fs::write(svc.path().join(name), text).unwrap();
    write("before.toml", &config);
    svc.ok(&["build", "gb-1"]);
    svc.ok(&["build", "gb-2"]);
    let daemon = Daemon::start(&svc);
    let gb1 = wait_running(&svc, "before.toml", "gb-1");
    let mut gb2 = wait_running(&svc, "before.toml", "gb-2");

    // Invalid: a typo'd key, then a role naming no instance. Refused, located.
    let typo = config.replacen("autostart = true", "autostrat = true", 1);
    let no_such = format!("{config}\n[roles]\nproduction = \"gb-9\"\n");
    for (bad, says) in [
        (typo, "unknown field `autostrat`"),
        (no_such, "role `production` names instance `gb-9`"),
    ] {
        write("ostler.toml", &bad);
        let (entry, asked) = ask_reload(&svc, &daemon, how);
        assert_eq!(entry["status"], "failed", "{entry}");
        let detail = entry["detail"].as_str().unwrap();
        assert!(
            detail.contains("ostler.toml:") && detail.contains(says),
            "{detail}"
        );
        if let Some(asked) = asked {
            assert_eq!(asked.code, Some(78), "{}", asked.stderr);
            assert!(asked.stderr.contains(says), "{}", asked.stderr);
            assert!(
                asked.stderr.contains("the daemon keeps its current config"),
                "{}",
                asked.stderr
            );
        }
        // Nothing restarted; the old config still in force: a killed gb-2 comes back.
        assert_eq!(running_pid(&svc, "before.toml", "gb-1"), Some(gb1));
        assert_eq!(running_pid(&svc, "before.toml", "gb-2"), Some(gb2));
        kill(Pid::from_raw(gb2), Signal::SIGKILL).unwrap();
        wait_for(Duration::from_secs(30), "gb-2 restarted", || {
            running_pid(&svc, "before.toml", "gb-2").is_some_and(|p| p != gb2)
        });
        gb2 = running_pid(&svc, "before.toml", "gb-2").unwrap();
    }

    // Valid: gb-3 added, gb-2 removed, gb-1 started with one more variable.
    let after = format!(
        "{}{}{}",
        service_header(FAST),
        guestbook_instance(
            "gb-1",
            ports[0],
            "autostart = true\nenv = { RELOADED = \"yes\" }"
        ),
        guestbook_instance("gb-3", ports[2], "autostart = true"),
    );
    write("after.toml", &after);
    svc.ok(&["--config", "after.toml", "build", "gb-3"]);
    write("ostler.toml", &after);
    let starts_of_gb2 = journaled(&svc, "before.toml", "supervise-start", Some("gb-2")).len();
    let (entry, asked) = ask_reload(&svc, &daemon, how);
    let said = "added gb-3; removed gb-2 (no longer supervised, left running); \
                changed gb-1 (env) — applies at its next restart";
    assert_eq!(
        (&entry["status"], &entry["detail"]),
        (&"ok".into(), &said.into())
    );
    if let Some(asked) = asked {
        assert_eq!(asked.code, Some(0), "{}", asked.stderr);
        assert_eq!(asked.stdout.trim(), format!("reloaded: {said}"));
    }
    let gb3 = wait_running(&svc, "after.toml", "gb-3");
    assert_eq!(http_get(ports[2], "/health").unwrap().0, 200);
    assert!(gb3 != gb1 && gb3 != gb2);
    // Nothing that was running restarted: gb-1 keeps its pid (and its old
    // environment), gb-2 keeps running, unsupervised.
    assert_eq!(running_pid(&svc, "after.toml", "gb-1"), Some(gb1));
    assert!(!environ(gb1).contains("RELOADED=yes"));
    assert!(pid_alive(gb2));
    assert_eq!(http_get(ports[1], "/health").unwrap().0, 200);

    // Kill both: gb-1 comes back with its new setting; gb-2 does not come back.
    kill(Pid::from_raw(gb2), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(gb1), Signal::SIGKILL).unwrap();
    let mut restarted = None;
    wait_for(Duration::from_secs(30), "gb-1 restarted", || {
        restarted = running_pid(&svc, "after.toml", "gb-1").filter(|p| *p != gb1);
        restarted.is_some()
    });
    assert!(environ(restarted.unwrap()).contains("RELOADED=yes"));
    // gb-1's restart shows the daemon looked after the kills; gb-2 was not started.
    assert!(http_get(ports[1], "/health").is_err());
    assert_eq!(
        journaled(&svc, "before.toml", "supervise-start", Some("gb-2")).len(),
        starts_of_gb2
    );
    let reloads = journaled(&svc, "after.toml", "reload", None);
    assert_eq!(
        reloads
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["failed", "failed", "ok"]
    );
}

#[test]
fn sighup_refuses_an_invalid_config_and_applies_a_valid_one_restarting_nothing() {
    invalid_then_valid(How::Signal);
}

#[test]
fn ostler_reload_refuses_an_invalid_config_and_applies_a_valid_one_restarting_nothing() {
    invalid_then_valid(How::Cli);
}

#[test]
fn ostler_reload_without_a_daemon_checks_the_config_and_exits_3() {
    let config = two_instances([free_port(), free_port()]);
    let svc = Svc::new(&config);
    let out = svc.run(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no daemon runs for this service"),
        "{stderr}"
    );
    std::fs::write(
        svc.path().join("ostler.toml"),
        config.replacen("autostart = true", "autostrat = true", 1),
    )
    .unwrap();
    let out = svc.run(&["reload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("unknown field `autostrat`"), "{stderr}");
}
