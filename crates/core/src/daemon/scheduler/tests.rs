//! The scheduler on a manual clock: real `sh` runs, time moved by hand, never slept
//! for. Each test walks time to the scheduler's next wake-up (the earliest sleep
//! pending on the clock) so every scheduled time is seen on time, as on a live daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast;

use super::Scheduler;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::daemon::bus::Event;
use crate::daemon::host::{self, Component, Drain, Drained, Handle};
use crate::instance::Ostler;
use crate::jobs::launch::Launcher;
use crate::jobs::runs::{self, NewRun, Run, RunState, Trigger};
use crate::report::{Interrupt, Silent};

/// A service in `dir` with these `[[jobs]]` (and a `[service]` zone), on `clock`.
fn service(dir: &Path, clock: &ManualClock, jobs: &str) -> (Ostler, PathBuf) {
    let path = dir.join("ostler.toml");
    std::fs::write(
        &path,
        format!("[service]\nname = \"scheduler-test\"\nstate_dir = \"state\"\ntimezone = \"UTC\"\n{jobs}"),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new()).with_clock(clock.clock());
    (ostler, path)
}

fn job(name: &str, schedule: &str, command: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"{name}\"\nschedule = \"{schedule}\"\ncommand = '''{command}'''\n{extra}\n"
    )
}

struct Daemon {
    handle: Handle,
    host: tokio::task::JoinHandle<Drained>,
    events: broadcast::Receiver<Event>,
}

fn start(ostler: Ostler, path: &Path) -> Daemon {
    let handle = Handle::new(ostler, path);
    let events = handle.bus().subscribe();
    let launcher = Launcher {
        // Only `command` jobs here: the binary for built-in actions is not needed.
        exe: PathBuf::from("/bin/false"),
        config_path: path.to_path_buf(),
    };
    let components: Vec<Arc<dyn Component>> = vec![Arc::new(Scheduler { launcher })];
    let host = tokio::spawn(host::run(handle.clone(), components, Drain::default()));
    Daemon {
        handle,
        host,
        events,
    }
}

impl Daemon {
    async fn stop(self) {
        self.handle.shutdown().cancel();
        let drained = tokio::time::timeout(Duration::from_secs(30), self.host)
            .await
            .expect("the host stops")
            .unwrap();
        assert_eq!(drained, Drained::Finished);
    }

    /// The next job event (started, finished, failed, skipped), up to 20 s real time.
    async fn next(&mut self) -> Event {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("the bus is open");
                if let Event::JobStarted { .. }
                | Event::JobFinished { .. }
                | Event::JobFailed { .. }
                | Event::JobSkipped { .. } = event
                {
                    return event;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("a job event within 20 s")
    }

    /// The next event that ends a run (finished, failed, skipped).
    async fn next_end(&mut self) -> Event {
        loop {
            match self.next().await {
                Event::JobStarted { .. } => {}
                e => return e,
            }
        }
    }

    fn runs(&self, job: &str) -> Vec<Run> {
        let state = self.handle.ostler().state().unwrap();
        let mut runs = runs::history(&state, Some(job), 1000).unwrap();
        runs.reverse();
        runs
    }
}

/// Waits until the scheduler sleeps towards a time still ahead (a sleep whose time
/// came is the scheduler waking, not asleep).
async fn until_asleep(clock: &ManualClock) -> Timestamp {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(at) = clock.earliest_sleeper().filter(|t| *t > clock.now()) {
            return at;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler sleeps within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Moves the clock to the scheduler's next wake-up.
async fn to_next_wake(clock: &ManualClock) -> Timestamp {
    let at = until_asleep(clock).await;
    clock.set(at);
    at
}

/// Walks the clock from wake-up to wake-up (at most a minute apart) until `t`.
async fn walk_until(clock: &ManualClock, t: Timestamp) {
    while clock.now() < t {
        let next = until_asleep(clock).await;
        clock.set(next.min(t));
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_at_its_time_once_and_records_what_it_printed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("tick", "* * * * *", "echo ran at $OSTLER_SCHEDULED_FOR", ""),
    );
    let mut daemon = start(ostler, &path);
    assert_eq!(to_next_wake(&clock).await, at("2026-01-01T00:01:00Z"));
    assert!(matches!(daemon.next().await, Event::JobStarted { .. }));
    assert!(matches!(daemon.next().await, Event::JobFinished { .. }));
    let runs = daemon.runs("tick");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(run.trigger, Trigger::Schedule);
    assert_eq!(run.scheduled_for, Some(at("2026-01-01T00:01:00Z")));
    assert_eq!(run.exit_status, Some(0));
    assert_eq!(run.output.as_deref(), Some("ran at 2026-01-01T00:01:00Z\n"));
    // Journaled as an operation, its command under it.
    let state = daemon.handle.ostler().state().unwrap();
    let journal = state.journal(None, 10).unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.operation == "job" && e.status == "ok"),
        "{journal:?}"
    );
    daemon.stop().await;
}

/// A time is claimed once, in the state: a scheduler started again at the same
/// moment (a daemon restarted) does not run it again, nor can a second claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_never_runs_a_time_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(dir.path(), &clock, &job("tick", "* * * * *", "true", ""));
    let mut daemon = start(ostler.clone(), &path);
    to_next_wake(&clock).await;
    assert!(matches!(daemon.next_end().await, Event::JobFinished { .. }));
    daemon.stop().await;

    let mut again = start(ostler.clone(), &path);
    // Asleep until 00:02 without running 00:01 again.
    assert_eq!(to_next_wake(&clock).await, at("2026-01-01T00:02:00Z"));
    assert!(matches!(again.next_end().await, Event::JobFinished { .. }));
    let times: Vec<_> = again.runs("tick").iter().map(|r| r.scheduled_for).collect();
    assert_eq!(
        times,
        [
            Some(at("2026-01-01T00:01:00Z")),
            Some(at("2026-01-01T00:02:00Z"))
        ]
    );
    let state = ostler.state().unwrap();
    assert_eq!(
        runs::record(
            &state,
            &NewRun::scheduled("tick", at("2026-01-01T00:02:00Z"))
        )
        .unwrap(),
        None
    );
    again.stop().await;
}

/// Three hours down: one run for the 180 missed times, saying so (systemd's
/// `Persistent=`, not Kubernetes' give-up after 100); with `missed = "skip"` none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_missed_while_down_are_coalesced_into_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let jobs = format!(
        "{}{}",
        job("once", "* * * * *", "true", ""),
        job("skipper", "* * * * *", "true", "missed = \"skip\"")
    );
    let (ostler, path) = service(dir.path(), &clock, &jobs);
    let daemon = start(ostler.clone(), &path);
    assert!(clock.until_sleepers(1, Duration::from_secs(20)).await);
    daemon.stop().await;

    clock.advance(Duration::from_secs(3 * 3600 + 30));
    let mut daemon = start(ostler, &path);
    let mut ends = vec![daemon.next_end().await, daemon.next_end().await];
    ends.sort_by_key(|e| format!("{e:?}"));
    assert!(
        matches!(&ends[0], Event::JobFinished { job, .. } if job == "once"),
        "{ends:?}"
    );
    assert!(
        matches!(&ends[1], Event::JobSkipped { job, .. } if job == "skipper"),
        "{ends:?}"
    );
    let once = daemon.runs("once");
    assert_eq!(once.len(), 1);
    assert_eq!(once[0].trigger, Trigger::Missed);
    assert_eq!(once[0].missed, 180);
    assert_eq!(once[0].scheduled_for, Some(at("2026-01-01T03:00:00Z")));
    assert!(once[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("180 scheduled times passed unseen"));
    let skipped = daemon.runs("skipper");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].state, RunState::Skipped);
    assert_eq!(skipped[0].missed, 180);
    // And the next minute runs on time again.
    assert_eq!(to_next_wake(&clock).await, at("2026-01-01T03:01:00Z"));
    daemon.next_end().await;
    daemon.next_end().await;
    assert_eq!(daemon.runs("once")[1].trigger, Trigger::Schedule);
    daemon.stop().await;
}

/// A command that runs until the test creates `go` in the service's directory.
fn until_go() -> &'static str {
    "while [ ! -e go ]; do sleep 0.02; done"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_records_the_skipped_time_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("long", "* * * * *", until_go(), "overlap = \"skip\""),
    );
    let mut daemon = start(ostler, &path);
    to_next_wake(&clock).await;
    let Event::JobStarted { run: first, .. } = daemon.next().await else {
        panic!()
    };
    to_next_wake(&clock).await;
    let Event::JobSkipped { why, .. } = daemon.next().await else {
        panic!("a skip")
    };
    assert_eq!(
        why,
        format!("the previous run ({first}) still runs (overlap = \"skip\")")
    );
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(matches!(daemon.next_end().await, Event::JobFinished { run, .. } if run == first));
    let states: Vec<_> = daemon.runs("long").iter().map(|r| r.state).collect();
    assert_eq!(states, [RunState::Finished, RunState::Skipped]);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_queue_runs_the_next_time_after_the_previous_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("long", "* * * * *", until_go(), "overlap = \"queue\""),
    );
    let mut daemon = start(ostler, &path);
    to_next_wake(&clock).await;
    let Event::JobStarted { run: first, .. } = daemon.next().await else {
        panic!()
    };
    to_next_wake(&clock).await; // 00:02: queued behind the first
    to_next_wake(&clock).await; // 00:03: one waits already, so this one skips
    let Event::JobSkipped { why, .. } = daemon.next().await else {
        panic!("a skip")
    };
    assert!(why.contains("already waits"), "{why}");
    std::fs::write(dir.path().join("go"), "").unwrap();
    assert!(matches!(daemon.next_end().await, Event::JobFinished { run, .. } if run == first));
    assert!(matches!(daemon.next_end().await, Event::JobFinished { run, .. } if run != first));
    let runs = daemon.runs("long");
    let times: Vec<_> = runs
        .iter()
        .map(|r| (r.scheduled_for.unwrap().to_string(), r.state))
        .collect();
    assert_eq!(
        times,
        [
            ("2026-01-01T00:01:00Z".to_string(), RunState::Finished),
            ("2026-01-01T00:02:00Z".to_string(), RunState::Finished),
            ("2026-01-01T00:03:00Z".to_string(), RunState::Skipped),
        ]
    );
    assert!(runs[1].started_at >= runs[0].finished_at);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_kill_previous_kills_the_run_in_flight_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    // The first run leaves a grandchild; killing the group takes it too.
    let command =
        "if [ ! -e first ]; then touch first; sleep 3600 & echo $! > grandchild; wait; fi";
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("hog", "* * * * *", command, "overlap = \"kill-previous\""),
    );
    let mut daemon = start(ostler, &path);
    to_next_wake(&clock).await;
    let Event::JobStarted { run: first, .. } = daemon.next().await else {
        panic!()
    };
    let grandchild = wait_for_pid(&dir.path().join("grandchild")).await;
    to_next_wake(&clock).await;
    let Event::JobFailed {
        run, why, retry_at, ..
    } = daemon.next_end().await
    else {
        panic!("the first fails")
    };
    assert_eq!(run, first);
    assert!(why.contains("a newer run took its place"), "{why}");
    assert_eq!(retry_at, None);
    assert!(matches!(daemon.next_end().await, Event::JobFinished { run, .. } if run != first));
    assert!(
        !alive(grandchild),
        "the grandchild {grandchild} was killed with the group"
    );
    daemon.stop().await;
}

async fn wait_for_pid(file: &Path) -> i32 {
    for _ in 0..1000 {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", file.display());
}

fn alive(pid: i32) -> bool {
    // Reaped by init once its group is killed; allow it a moment to go.
    for _ in 0..200 {
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let command = "sleep 3600 & echo $! > grandchild; wait";
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("slow", "0 * * * *", command, "timeout = \"10m\""),
    );
    let mut daemon = start(ostler, &path);
    walk_until(&clock, at("2026-01-01T01:00:00Z")).await;
    assert!(matches!(daemon.next().await, Event::JobStarted { .. }));
    let grandchild = wait_for_pid(&dir.path().join("grandchild")).await;
    clock.advance(Duration::from_secs(599));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(alive(grandchild));
    clock.advance(Duration::from_secs(1));
    let Event::JobFailed { why, .. } = daemon.next_end().await else {
        panic!("a failure")
    };
    assert_eq!(why, "timed out after 10m; killed with its process group");
    assert!(!alive(grandchild));
    daemon.stop().await;
}

/// A failing run is tried again after its backoff, doubling; the last failure is
/// alerted (journaled as `job-failed`), and every attempt counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_is_retried_with_backoff_then_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job(
            "flaky",
            "0 * * * *",
            "echo broken; exit 3",
            "retries = 2\nretry_backoff = \"10s\"",
        ),
    );
    let mut daemon = start(ostler, &path);
    walk_until(&clock, at("2026-01-01T01:00:00Z")).await;
    let mut retries = Vec::new();
    for _ in 0..3 {
        let Event::JobFailed {
            why,
            retry_at,
            alert,
            ..
        } = daemon.next_end().await
        else {
            panic!()
        };
        assert_eq!(why, "exited with status 3");
        assert_eq!(alert, retry_at.is_none());
        if let Some(at) = retry_at {
            retries.push(at.duration_since(clock.now()).as_secs());
            assert_eq!(to_next_wake(&clock).await, at);
        }
    }
    assert_eq!(retries, [10, 20]);
    let runs = daemon.runs("flaky");
    let attempts: Vec<_> = runs
        .iter()
        .map(|r| (r.attempt, r.trigger, r.state))
        .collect();
    assert_eq!(
        attempts,
        [
            (1, Trigger::Schedule, RunState::Failed),
            (2, Trigger::Retry, RunState::Failed),
            (3, Trigger::Retry, RunState::Failed),
        ]
    );
    assert!(runs.iter().all(|r| r.output.as_deref() == Some("broken\n")));
    let state = daemon.handle.ostler().state().unwrap();
    assert_eq!(runs::counts(&state).unwrap()["flaky"].failed, 3);
    let alerts: Vec<_> = state
        .journal(None, 50)
        .unwrap()
        .into_iter()
        .filter(|e| e.operation == "job-failed")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_queued_through_the_bus_runs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &job("nightly", "0 2 * * *", "echo by hand", ""),
    );
    let mut daemon = start(ostler.clone(), &path);
    assert!(clock.until_sleepers(1, Duration::from_secs(20)).await);
    let state = ostler.state().unwrap();
    let id = runs::record(&state, &NewRun::manual("nightly"))
        .unwrap()
        .unwrap();
    daemon.handle.bus().publish(Event::JobQueued {
        job: "nightly".into(),
        run: id,
    });
    assert!(matches!(daemon.next_end().await, Event::JobFinished { run, .. } if run == id));
    let run = runs::get(&state, id).unwrap().unwrap();
    assert_eq!((run.trigger, run.scheduled_for), (Trigger::Manual, None));
    assert_eq!(
        clock.now(),
        at("2026-01-01T00:00:00Z"),
        "no time had to pass"
    );
    daemon.stop().await;
}

/// Europe/Zurich's spring-forward (29 March 2026: 02:00 → 03:00) and fall-back (25
/// October: 03:00 → 02:00) days: a daily 02:30 job runs exactly once each day, as
/// Debian's cron does (in the gap at 03:00 local time... see docs/SCHEDULES.md; in
/// the repeat once, at the first 02:30).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_0230_job_runs_once_on_both_dst_days_in_zurich() {
    for (from, days) in [
        (
            "2026-03-27T12:00:00Z",
            ["2026-03-28", "2026-03-29", "2026-03-30"],
        ),
        (
            "2026-10-23T12:00:00Z",
            ["2026-10-24", "2026-10-25", "2026-10-26"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(at(from));
        let (ostler, path) = service(
            dir.path(),
            &clock,
            &job(
                "daily",
                "30 2 * * *",
                "true",
                "timezone = \"Europe/Zurich\"",
            ),
        );
        let daemon = start(ostler, &path);
        walk_until(&clock, at(from) + jiff::SignedDuration::from_hours(3 * 24)).await;
        // The last run may still be going.
        while daemon.runs("daily").iter().any(|r| !r.state.is_over()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let zurich = jiff::tz::TimeZone::get("Europe/Zurich").unwrap();
        let local: Vec<String> = daemon
            .runs("daily")
            .iter()
            .map(|r| {
                r.scheduled_for
                    .unwrap()
                    .to_zoned(zurich.clone())
                    .strftime("%F")
                    .to_string()
            })
            .collect();
        assert_eq!(local, days, "one run a day from {from}");
        assert!(daemon
            .runs("daily")
            .iter()
            .all(|r| r.trigger == Trigger::Schedule && r.state == RunState::Finished));
        daemon.stop().await;
    }
}

/// A run an earlier look started is still `waiting` in the state until its task marks
/// it running: a look meanwhile (another run's end woke it) must see it as the run in
/// flight, not skip it or kill it as a second one.
#[test]
fn a_look_leaves_alone_the_run_it_started_before_it_is_marked_running() {
    for overlap in ["skip", "kill-previous", "queue"] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at_new_year();
        let (ostler, _) = service(
            dir.path(),
            &clock,
            &job(
                "j",
                "* * * * *",
                "true",
                &format!("overlap = \"{overlap}\""),
            ),
        );
        let state = ostler.state().unwrap();
        let id = runs::record(&state, &NewRun::scheduled("j", at("2026-01-01T00:00:00Z")))
            .unwrap()
            .unwrap();
        let in_flight = std::collections::BTreeMap::from([("j".to_string(), id)]);
        let look = super::look(&ostler, &in_flight, false).unwrap();
        assert!(look.start.is_empty(), "{overlap}");
        assert!(look.kill.is_empty(), "{overlap}: its own run killed");
        assert!(look.skipped.is_empty(), "{overlap}: its own run skipped");
        assert_eq!(
            runs::get(&state, id).unwrap().unwrap().state,
            RunState::Waiting
        );
        // And a skip never overwrites a run that started meanwhile.
        runs::started(&state, id, 4242).unwrap();
        assert!(!runs::skip_waiting(&state, id, "late").unwrap());
        assert_eq!(
            runs::get(&state, id).unwrap().unwrap().state,
            RunState::Running
        );
        assert!(runs::started(&state, id, 4243).is_err(), "started twice");
    }
}
