//! The bin/manage surface: chains, abbreviations, roles, the production guard, the
//! journal and the per-instance lock.

use std::time::Duration;

use crate::support::*;

fn two_instances() -> Svc {
    let (p1, p2) = (free_port(), free_port());
    Svc::new(&format!(
        "{}[roles]\nproduction = \"gb-1\"\n{}{}",
        service_header(""),
        guestbook_instance("gb-1", p1, ""),
        guestbook_instance("gb-2", p2, "")
    ))
}

#[test]
fn chain_with_abbreviations_on_a_role_runs_in_order() {
    let svc = two_instances();
    let out = svc.run(&["-v", "bu,sta", "production"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let build = err
        .find("!!! CMD: sh -c 'cp ")
        .expect("build command echoed");
    let start = err
        .find("!!! CMD: sh -c 'exec ./guestbook")
        .expect("start command echoed");
    assert!(build < start, "{err}");
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    assert_eq!(svc.instance_status("gb-2")["state"], "stopped");
    // `sto,pri` = stop then print.
    let out = svc.ok(&["sto,pri", "production"]);
    assert!(
        out.contains("instance gb-1") && out.contains("status:   stopped"),
        "{out}"
    );
}

#[test]
fn ambiguous_and_unknown_commands_list_candidates() {
    let svc = two_instances();
    let err = svc.fails(&["s", "gb-1"]);
    assert!(
        err.contains("`s` is ambiguous: it could be start, stop"),
        "{err}"
    );
    let err = svc.fails(&["frobnicate", "gb-1"]);
    assert!(
        err.contains("unknown command `frobnicate`") && err.contains("log-nuke"),
        "{err}"
    );
    let err = svc.fails(&["start", "gb-9"]);
    assert!(err.contains("no instance or role named `gb-9`"), "{err}");
}

#[test]
fn echo_prints_only_the_instance_name() {
    let svc = two_instances();
    assert_eq!(svc.ok(&["echo", "production"]), "gb-1\n");
    assert_eq!(svc.ok(&["ec", "gb-2,production"]), "gb-2\ngb-1\n");
}

#[test]
fn restart_of_a_stopped_instance_works_and_a_failed_start_stops_the_chain() {
    let svc = two_instances();
    svc.ok(&["build", "gb-1,gb-2"]);
    let out = svc.run(&["restart", "gb-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("gb-1 is not running"));
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    // A start that fails stops the chain: the echo after it never runs.
    let out = svc.run(&["start,echo", "gb-1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn production_guard_refuses_db_nuke_and_rebuild_without_confirmation() {
    let svc = two_instances();
    svc.ok(&["build,start", "gb-1"]);
    let (code, _) = http_post(
        svc.instance_status("gb-1")["port"].as_u64().unwrap() as u16,
        "/entries",
        r#"{"author":"a","message":"keep me","tags":[]}"#,
    );
    assert_eq!(code, 201);
    let err = svc.fails(&["stop,db-nuke", "production"]);
    assert!(
        err.contains("refusing to db-nuke gb-1: it is the production instance"),
        "{err}"
    );
    // Refused before anything ran: still running, data still there.
    assert_eq!(svc.instance_status("gb-1")["state"], "running");
    let err = svc.fails(&["rebuild", "gb-1"]);
    assert!(err.contains("refusing to rebuild gb-1"), "{err}");
    // With the flag: a safety dump first, then the database is gone.
    let out = svc.run(&["stop,db-nuke", "production", "--yes-really-production"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("safety dump:"), "{err}");
    assert!(!svc.path().join("instances/gb-1/data.db").exists());
    let dumps: Vec<_> = std::fs::read_dir(svc.path().join(".ostler/safety"))
        .unwrap()
        .collect();
    assert_eq!(dumps.len(), 1);
    let dump = dumps[0].as_ref().unwrap().path();
    let conn = rusqlite_count(&dump);
    assert_eq!(conn, 1, "the safety dump holds the entry");
    // Not production: no confirmation needed.
    svc.ok(&["build,db-nuke", "gb-2"]);
}

fn rusqlite_count(path: &std::path::Path) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(path)
        .arg("SELECT count(*) FROM entries")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn journal_records_operations_and_their_commands() {
    let svc = two_instances();
    svc.ok(&["build,start,stop", "gb-2"]);
    let v: serde_json::Value =
        serde_json::from_str(&svc.ok(&["journal", "--json", "--instance", "gb-2"])).unwrap();
    let ops: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["build", "start", "stop"]);
    let build = &v[0];
    assert_eq!(build["status"], "ok");
    assert!(build["who"].as_str().unwrap().contains('@'));
    let cmd = &build["commands"][0];
    assert!(cmd["command"].as_str().unwrap().starts_with("sh -c 'cp "));
    assert_eq!(cmd["exit_status"], 0);
    assert!(cmd["duration_ms"].is_number());
    let text = svc.ok(&["journal"]);
    assert!(
        text.contains("build gb-2") && text.contains("!!! CMD:"),
        "{text}"
    );
}

#[test]
fn a_second_operation_on_a_busy_instance_refuses_naming_the_holder() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.slow]\ndir = \"slow\"\nbuild = \"sleep 3\"\nstart = \"sleep 60\"\nport = {port}\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("slow")).unwrap();
    let mut first = svc.cmd(&["build", "slow"]).spawn().unwrap();
    wait_for(
        Duration::from_secs(10),
        "the build to take the lock",
        || svc.status_json()[0]["lock"].is_object(),
    );
    let err = svc.fails(&["start", "slow"]);
    assert!(
        err.contains("instance `slow` is busy") && err.contains("holds its lock for `build`"),
        "{err}"
    );
    let out = svc.run(&["start", "slow"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(first.wait().unwrap().success());
    // Released: now it works.
    svc.ok(&["start,stop", "slow"]);
}

#[test]
fn a_lock_left_by_a_dead_process_is_reclaimed_and_journaled() {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.x]\ndir = \"x\"\nbuild = \"sleep 30\"\nstart = \"sleep 60\"\nport = {port}\n",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("x")).unwrap();
    let mut first = svc.cmd(&["build", "x"]).spawn().unwrap();
    wait_for(
        Duration::from_secs(10),
        "the build to take the lock",
        || svc.status_json()[0]["lock"].is_object(),
    );
    first.kill().unwrap();
    first.wait().unwrap();
    svc.ok(&["echo,start,stop", "x"]);
    let journal = svc.ok(&["journal"]);
    assert!(
        journal.contains("lock-reclaim x") && journal.contains("its holder is gone"),
        "{journal}"
    );
}
