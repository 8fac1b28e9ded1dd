//! `ostler serve` running `[[jobs]]` with seconds-level schedules, as a user sees it
//! through `ostler jobs`, `jobs history` and the journal: each second run once, a
//! failing job counted and journaled, a run past its timeout killed with its whole
//! process group, and `jobs run` going through the daemon when it is up.

use std::time::Duration;

use serde_json::Value;

use crate::support::{service_header, wait_for, Daemon, Svc};

fn svc(jobs: &str) -> Svc {
    Svc::new(&format!("{}{jobs}", service_header("timezone = \"UTC\"")))
}

fn history(svc: &Svc, job: &str) -> Vec<Value> {
    let text = svc.ok(&["jobs", "history", job, "--limit", "1000", "--json"]);
    let mut runs: Vec<Value> = serde_json::from_str(&text).unwrap();
    runs.reverse();
    runs
}

fn counts(svc: &Svc, job: &str) -> Value {
    let jobs: Vec<Value> = serde_json::from_str(&svc.ok(&["jobs", "--json"])).unwrap();
    jobs.into_iter()
        .find(|j| j["name"] == job)
        .unwrap_or_else(|| panic!("no job {job}"))["counts"]
        .clone()
}

#[test]
fn serve_runs_a_seconds_job_once_per_second_and_records_each_run() {
    let svc = svc(
        "[[jobs]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"echo $OSTLER_SCHEDULED_FOR >> ticks\"\n",
    );
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "four finished runs", || {
        counts(&svc, "tick")["finished"].as_u64() >= Some(4)
    });
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let runs = history(&svc, "tick");
    let finished: Vec<&Value> = runs.iter().filter(|r| r["state"] == "finished").collect();
    assert!(finished.len() >= 4, "{runs:?}");
    // Each run wrote its own scheduled time once: no time ran twice, none was lost
    // between the first and the last.
    let ticks = std::fs::read_to_string(svc.path().join("ticks")).unwrap();
    let written: Vec<&str> = ticks.lines().collect();
    let scheduled: Vec<&str> = finished
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap())
        .collect();
    assert_eq!(written, scheduled);
    let seconds: Vec<i64> = scheduled
        .iter()
        .map(|t| t.parse::<jiff::Timestamp>().unwrap().as_second())
        .collect();
    // Every second accounted for: each run follows the one before by one second, or
    // by more when the scheduler woke late and the run stands for the seconds between
    // (its `missed`).
    for (pair, run) in seconds.windows(2).zip(&finished[1..]) {
        let stands_for = run["missed"].as_i64().unwrap();
        assert_eq!(pair[1] - pair[0], 1 + stands_for, "{seconds:?} {run}");
    }
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"), "{runs:?}");
}

#[test]
fn a_failing_job_is_counted_journaled_and_shown() {
    let svc = svc(
        "[[jobs]]\nname = \"broken\"\nschedule = \"* * * * * *\"\ncommand = \"echo no disk >&2; exit 2\"\n",
    );
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "two failed runs", || {
        counts(&svc, "broken")["failed"].as_u64() >= Some(2)
    });
    let listed = svc.ok(&["jobs"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("broken"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("failed 20"), "{line}");
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let runs = history(&svc, "broken");
    assert!(
        runs.iter().all(|r| r["state"] == "failed"
            && r["exit_status"] == 2
            && r["detail"] == "exited with status 2"
            && r["output"] == "no disk\n"),
        "{runs:?}"
    );
    let journal = svc.ok(&["journal"]);
    assert!(journal.contains("job-failed"), "{journal}");
    assert!(journal.contains("broken: run"), "{journal}");
    // The daemon's log says so too.
    assert!(err.contains("failed: exited with status 2"), "{err}");
}

#[test]
fn a_job_past_its_timeout_is_killed_with_its_process_group() {
    let svc = svc(
        "[[jobs]]\nname = \"hung\"\nschedule = \"*/5 * * * * *\"\ntimeout = \"1s\"\ncommand = \"sleep 300 & echo $! >> pids; wait\"\n",
    );
    let daemon = Daemon::start_up(&svc);
    wait_for(
        Duration::from_secs(30),
        "a run killed at its timeout",
        || counts(&svc, "hung")["failed"].as_u64() >= Some(1),
    );
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let run = &history(&svc, "hung")[0];
    assert_eq!(
        run["detail"],
        "timed out after 1s; killed with its process group"
    );
    let started: jiff::Timestamp = run["started_at"].as_str().unwrap().parse().unwrap();
    let finished: jiff::Timestamp = run["finished_at"].as_str().unwrap().parse().unwrap();
    assert!(finished.duration_since(started) >= jiff::SignedDuration::from_secs(1));
    let pids = std::fs::read_to_string(svc.path().join("pids")).unwrap();
    for pid in pids.lines() {
        let pid: i32 = pid.trim().parse().unwrap();
        wait_for(Duration::from_secs(5), "the grandchild gone", || {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
        });
    }
}

#[test]
fn jobs_run_goes_through_the_daemon_when_it_is_up_and_runs_here_when_not() {
    let svc = svc(
        "[[jobs]]\nname = \"nightly\"\nschedule = \"0 3 * * *\"\ncommand = \"echo ran by $PPID\"\n\n\
         [[jobs]]\nname = \"bad\"\nschedule = \"0 3 * * *\"\ncommand = \"exit 9\"\n",
    );
    // No daemon: run here, the output shown, the exit status saying how it went.
    let here = svc.run(&["jobs", "run", "nightly"]);
    assert!(here.status.success());
    assert!(String::from_utf8_lossy(&here.stdout).contains("job nightly run 1: finished"));
    assert!(String::from_utf8_lossy(&here.stderr).contains("ran by"));
    let bad = svc.run(&["jobs", "run", "bad"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("failed"),
        "{bad:?}"
    );

    let daemon = Daemon::start_up(&svc);
    let out = svc.ok(&["jobs", "run", "nightly", "--json"]);
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["state"], "finished");
    assert_eq!(run["trigger"], "manual");
    // The daemon ran it: its journal entry is the daemon's.
    let journal: Vec<Value> = serde_json::from_str(&svc.ok(&["journal", "--json"])).unwrap();
    let entry = journal
        .iter()
        .find(|e| {
            e["operation"] == "job" && e["detail"] == format!("nightly: run {} (manual)", run["id"])
        })
        .unwrap_or_else(|| panic!("{journal:?}"));
    assert_eq!(entry["pid"], daemon.pid());
    // An unknown job is refused naming the ones there are, by the CLI and the API.
    let err = svc.fails(&["jobs", "run", "nighty"]);
    assert!(
        err.contains("no job named `nighty`") && err.contains("nightly, bad"),
        "{err}"
    );
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
}

/// A daemon killed with SIGKILL leaves its run going (its own process group); the next
/// daemon fails that run, says so, and kills the group.
#[test]
fn a_run_left_by_a_killed_daemon_is_failed_and_its_group_killed_by_the_next() {
    let svc = svc("[[jobs]]\nname = \"long\"\nschedule = \"0 0 1 1 *\"\ncommand = \"sleep 300\"\n");
    let mut daemon = Daemon::start_up(&svc);
    svc.ok(&["jobs", "run", "long", "--no-wait"]);
    wait_for(Duration::from_secs(30), "a run in flight", || {
        counts(&svc, "long")["running"].as_u64() == Some(1)
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    daemon.0.wait().unwrap();
    let left = history(&svc, "long")
        .into_iter()
        .find(|r| r["state"] == "running")
        .expect("the run left running");
    let pid = left["pid"].as_i64().unwrap() as i32;
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());

    let again = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(10), "the left run failed", || {
        history(&svc, "long")
            .iter()
            .any(|r| r["id"] == left["id"] && r["state"] == "failed")
    });
    let run = history(&svc, "long")
        .into_iter()
        .find(|r| r["id"] == left["id"])
        .unwrap();
    assert_eq!(
        run["detail"],
        format!("the daemon ended while it ran; its process group {pid} was killed")
    );
    wait_for(Duration::from_secs(5), "its process gone", || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
    let (ok, err) = again.terminate();
    assert!(ok, "{err}");
}

/// SIGTERM drains: no new run starts, and a run still going at `--drain`'s bound is
/// killed with its group and recorded as interrupted; the daemon exits 0.
#[test]
fn sigterm_interrupts_a_run_still_going_at_the_drain_bound() {
    let svc = svc("[[jobs]]\nname = \"long\"\nschedule = \"0 0 1 1 *\"\ncommand = \"sleep 300\"\n");
    let daemon = Daemon(
        svc.cmd(&["serve", "--drain", "1s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "the daemon's control API", || {
        svc.run(&["serve", "--status"]).status.code() == Some(0)
    });
    svc.ok(&["jobs", "run", "long", "--no-wait"]);
    wait_for(Duration::from_secs(20), "the run in flight", || {
        counts(&svc, "long")["running"].as_u64() == Some(1)
    });
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let run = &history(&svc, "long")[0];
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(
        run["detail"],
        "interrupted: killed with its process group as the daemon stopped (or on Ctrl-C)"
    );
    let pid = run["pid"].as_i64().unwrap() as i32;
    wait_for(Duration::from_secs(5), "the run's process gone", || {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
    });
}
