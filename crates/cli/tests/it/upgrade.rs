//! `ostler upgrade` and `ostler rollback` through the daemon's proxy, with real
//! instances (a small HTTP server that says its name) under four looping clients: a
//! code-only upgrade and its rollback fail no request; a NEW that never gets healthy is
//! stopped and OLD serves throughout; a NEW with an offline migration is migrated
//! after a backup, the proxy in maintenance for exactly that.

use std::time::Duration;

use crate::support::{free_port, service_header, wait_for, Daemon, Load, Svc, NAMED_BACKEND};

struct Site {
    svc: Svc,
    proxy: u16,
}

/// blue serves as production; green and the others wait to take over.
fn site(extra: &str) -> Site {
    let proxy = free_port();
    let instance = |name: &str, start: &str, autostart: bool| {
        format!(
            "[instances.{name}]\ndir = \"app\"\nstart = \"{start}\"\nport = {}\nhealth = \"http://127.0.0.1:{{port}}/\"\nhealth_timeout = \"3s\"\nautostart = {autostart}\n\n",
            free_port()
        )
    };
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"blue\"\n\n{}{}{}{extra}[proxy]\nlisten = \"127.0.0.1:{proxy}\"\n",
        service_header("timezone = \"UTC\""),
        instance("blue", "python3 named.py {port} blue", true),
        instance("green", "python3 named.py {port} green", false),
        instance("broken", "sleep 1000", false),
    ));
    std::fs::create_dir_all(svc.path().join("app")).unwrap();
    std::fs::write(svc.path().join("app/named.py"), NAMED_BACKEND).unwrap();
    Site { svc, proxy }
}

fn serving(s: &Site) -> Daemon {
    let daemon = Daemon::start_up(&s.svc);
    wait_for(Duration::from_secs(30), "blue through the proxy", || {
        ureq::get(&format!("http://127.0.0.1:{}/", s.proxy))
            .call()
            .is_ok_and(|r| r.into_string().unwrap() == "blue")
    });
    daemon
}

#[test]
fn a_code_only_upgrade_and_its_rollback_fail_no_request() {
    let s = site("");
    let daemon = serving(&s);
    let load = Load::start(s.proxy);
    std::thread::sleep(Duration::from_millis(300));
    let out = s.svc.run(&["upgrade", "--to", "green"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("upgraded: production is now green (was blue)"),
        "{said}"
    );
    let steps = String::from_utf8_lossy(&out.stderr);
    for step in ["build", "start", "switch", "drain", "stop-old", "roles"] {
        assert!(steps.contains(step), "{step}: {steps}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let (seen, failures) = load.end();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(seen.first().map(String::as_str), Some("blue"));
    assert_eq!(seen.last().map(String::as_str), Some("green"));
    assert_eq!(s.svc.instance_status("blue")["state"], "stopped");
    let roles = s.svc.ok(&["role"]);
    assert!(
        roles.contains("production") && roles.contains("green"),
        "{roles}"
    );
    assert!(roles.contains("old") && roles.contains("blue"), "{roles}");

    // And back, the same way.
    let load = Load::start(s.proxy);
    std::thread::sleep(Duration::from_millis(300));
    let out = s.svc.run(&["rollback"]);
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(300));
    let (seen, failures) = load.end();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(seen.last().map(String::as_str), Some("blue"));
    assert_eq!(s.svc.instance_status("green")["state"], "stopped");
    let journal = s.svc.ok(&["journal"]);
    assert!(
        journal.contains("upgrade of production from blue to green: done"),
        "{journal}"
    );
    assert!(
        journal.contains("rolled back from green to blue"),
        "{journal}"
    );
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    s.svc.ok(&["stop", "blue"]);
}

#[test]
fn a_new_instance_that_never_gets_healthy_is_stopped_and_old_serves_throughout() {
    let s = site("");
    let daemon = serving(&s);
    let load = Load::start(s.proxy);
    let err = s.svc.fails(&["upgrade", "--to", "broken"]);
    assert!(err.contains("failed at step start"), "{err}");
    assert!(err.contains("blue serves as before"), "{err}");
    let (seen, failures) = load.end();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(seen.iter().all(|s| s == "blue"), "only blue answered");
    assert_eq!(s.svc.instance_status("broken")["state"], "stopped");
    assert_eq!(s.svc.instance_status("blue")["state"], "running");
    assert!(!s.svc.ok(&["role"]).contains("old"));
    let (ok, out) = daemon.terminate();
    assert!(ok, "{out}");
    s.svc.ok(&["stop", "blue"]);
}

#[test]
fn an_offline_migration_is_backed_up_first_and_runs_in_exactly_its_maintenance_window() {
    let s = site("[repository]\npath = \"repo\"\n\n[instances.green.migrations]\ndir = \"migrations\"\n\n[instances.green.database]\nkind = \"sqlite\"\npath = \"data.db\"\n\n[instances.blue.database]\nkind = \"sqlite\"\npath = \"data.db\"\n\n");
    s.svc.ok(&["init"]);
    std::fs::write(s.svc.path().join("app/data.db"), "").unwrap();
    let dir = s.svc.path().join("app/migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("V1__drop_and_rebuild.sql"),
        "-- ostler: offline\nCREATE TABLE entries (id INTEGER PRIMARY KEY);\n",
    )
    .unwrap();
    let daemon = serving(&s);
    let out = s.svc.run(&["upgrade", "--to", "green"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("in maintenance"), "{said}");
    let steps = String::from_utf8_lossy(&out.stderr);
    assert!(
        steps.contains("backup") && steps.contains("migrate"),
        "{steps}"
    );
    let applied: serde_json::Value =
        serde_json::from_str(&s.svc.ok(&["--json", "migrations", "green"])).unwrap();
    assert_eq!(applied["applied"].as_array().unwrap().len(), 1);
    assert!(s.svc.ok(&["maintenance"]).contains("maintenance: off"));
    let backups: serde_json::Value =
        serde_json::from_str(&s.svc.ok(&["backups", "--json"])).unwrap();
    let taken = backups.as_array().unwrap();
    assert_eq!(taken.len(), 1, "one copy of the shared database: {backups}");
    assert_eq!(taken[0]["instance"], "blue");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    s.svc.ok(&["stop", "green"]);
}
