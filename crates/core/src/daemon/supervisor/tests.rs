//! The supervisor on a manual clock: its decisions in milliseconds without processes,
//! then the component itself with real short processes, time driven by hand.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::broadcast;

use super::decide::{backoff, crash, decide, AfterCrash, Decision};
use super::Supervisor;
use crate::clock::{later, ManualClock};
use crate::config::{Config, HumanDuration, SuperviseConfig};
use crate::daemon::bus::Event;
use crate::daemon::host::{self, Component, Drain, Drained, Handle};
use crate::instance::Ostler;
use crate::process::PidState;
use crate::report::{Interrupt, Silent};
use crate::state::Runtime;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy(initial: u64, max: u64, limit: u32, window: u64) -> SuperviseConfig {
    SuperviseConfig {
        backoff_initial: HumanDuration(ms(initial)),
        backoff_max: HumanDuration(ms(max)),
        crash_limit: limit,
        crash_window: HumanDuration(ms(window)),
    }
}

fn new_year() -> Timestamp {
    ManualClock::at_new_year().now()
}

/// An instance wanted running whose process (pid 4242) was running.
fn running() -> Runtime {
    Runtime {
        pid: Some(4242),
        desired: "running".into(),
        supervision: "ok".into(),
        ..Runtime::default()
    }
}

/// Its process is found gone at `now`: the crash is decided and recorded, and the
/// instance started again (as the component would, once its backoff allows).
fn crash_and_restart(rt: &mut Runtime, now: Timestamp, policy: &SuperviseConfig) -> AfterCrash {
    let Decision::Crashed(crash) = decide(rt, PidState::Gone, now, policy) else {
        panic!("a gone process wanted running is a crash");
    };
    crash.apply(rt);
    if let AfterCrash::Restart { at, .. } = crash.then {
        assert_eq!(decide(rt, PidState::Gone, at, policy), Decision::Start);
        rt.pid = Some(4243);
        rt.next_restart_at = None;
        rt.supervision = "ok".into();
    }
    crash.then
}

#[test]
fn backoff_doubles_from_its_initial_delay_and_stops_at_its_cap() {
    let p = policy(100, 400, 100, 60_000);
    let delays: Vec<u64> = (1..=6).map(|n| backoff(n, &p).as_millis() as u64).collect();
    assert_eq!(delays, [100, 200, 400, 400, 400, 400]);
    // The same through crashes 10 ms apart.
    let mut rt = running();
    let mut now = new_year();
    let mut seen = Vec::new();
    for _ in 0..5 {
        match crash_and_restart(&mut rt, now, &p) {
            AfterCrash::Restart { delay, at } => {
                assert_eq!(at, later(now, delay));
                seen.push(delay.as_millis() as u64);
            }
            AfterCrash::CrashLoop => panic!("no crash loop under a limit of 100"),
        }
        now = later(now, ms(10));
    }
    assert_eq!(seen, [100, 200, 400, 400, 400]);
    // A huge doubling saturates at the cap instead of overflowing.
    assert_eq!(backoff(40, &policy(u64::MAX / 2, 400, 100, 1)), ms(400));
}

#[test]
fn a_restart_comes_not_before_the_backoff_ends_and_at_its_end() {
    let p = policy(250, 1_000, 5, 60_000);
    let mut rt = running();
    let now = new_year();
    let Decision::Crashed(crash) = decide(&rt, PidState::Gone, now, &p) else {
        panic!("a crash");
    };
    crash.apply(&mut rt);
    let at = later(now, ms(250));
    assert_eq!(rt.next_restart_at, Some(at));
    assert_eq!(rt.supervision, "backoff");
    assert_eq!(rt.pid, None);
    assert_eq!(
        decide(&rt, PidState::Gone, later(now, ms(249)), &p),
        Decision::StartAt(at)
    );
    assert_eq!(decide(&rt, PidState::Gone, at, &p), Decision::Start);
    assert_eq!(
        decide(&rt, PidState::Gone, later(now, ms(5_000)), &p),
        Decision::Start
    );
}

#[test]
fn zero_initial_backoff_restarts_at_once_after_the_first_crash() {
    let p = policy(0, 1_000, 5, 60_000);
    let mut rt = running();
    let now = new_year();
    let Decision::Crashed(crash) = decide(&rt, PidState::Gone, now, &p) else {
        panic!("a crash");
    };
    assert_eq!(
        crash.then,
        AfterCrash::Restart {
            at: now,
            delay: Duration::ZERO
        }
    );
    crash.apply(&mut rt);
    assert_eq!(decide(&rt, PidState::Gone, now, &p), Decision::Start);
}

#[test]
fn crash_limit_crashes_within_the_window_are_a_crash_loop_and_nothing_starts_after() {
    let p = policy(100, 400, 3, 60_000);
    let mut rt = running();
    let mut now = new_year();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(crash_and_restart(&mut rt, now, &p));
        now = later(now, ms(1_000));
    }
    assert!(matches!(outcomes[0], AfterCrash::Restart { .. }));
    assert!(matches!(outcomes[1], AfterCrash::Restart { .. }));
    assert_eq!(outcomes[2], AfterCrash::CrashLoop);
    assert_eq!(rt.supervision, "crash-loop");
    assert_eq!(rt.crashes.len(), 3);
    assert_eq!(rt.next_restart_at, None);
    // However long one waits, a crash-looping instance is left alone.
    let much_later = later(now, Duration::from_secs(86_400));
    assert_eq!(decide(&rt, PidState::Gone, much_later, &p), Decision::Leave);
}

#[test]
fn crashes_spread_wider_than_the_window_never_crash_loop() {
    let p = policy(100, 400, 3, 60_000);
    let mut rt = running();
    let mut now = new_year();
    for _ in 0..20 {
        let then = crash_and_restart(&mut rt, now, &p);
        // Each crash is the only one within the window: first-crash backoff.
        assert_eq!(
            then,
            AfterCrash::Restart {
                at: later(now, ms(100)),
                delay: ms(100)
            }
        );
        assert_eq!(rt.crashes, [now]);
        now = later(now, ms(60_001));
    }
}

#[test]
fn a_crash_after_the_window_forgets_the_older_crashes() {
    let p = policy(100, 10_000, 3, 60_000);
    let start = new_year();
    let mut rt = running();
    crash_and_restart(&mut rt, start, &p);
    crash_and_restart(&mut rt, later(start, ms(1_000)), &p);
    assert_eq!(rt.crashes.len(), 2);
    // The first crash is just outside the window, the second just inside it.
    let third = later(start, ms(60_001));
    let then = crash_and_restart(&mut rt, third, &p);
    assert_eq!(rt.crashes, [later(start, ms(1_000)), third]);
    assert_eq!(
        then,
        AfterCrash::Restart {
            at: later(third, ms(200)),
            delay: ms(200)
        }
    );
    // Exactly at the window's edge a crash still counts.
    let edge = crash(&[start], later(start, ms(60_000)), &p);
    assert_eq!(edge.count(), 2);
}

#[test]
fn only_a_process_gone_while_wanted_running_is_a_crash() {
    let p = policy(100, 400, 3, 60_000);
    let now = new_year();
    let rt = running();
    assert_eq!(decide(&rt, PidState::Ours, now, &p), Decision::Leave);
    assert!(matches!(
        decide(&rt, PidState::Reused, now, &p),
        Decision::Crashed(_)
    ));
    let stopped = Runtime {
        desired: "stopped".into(),
        ..running()
    };
    assert_eq!(decide(&stopped, PidState::Gone, now, &p), Decision::Leave);
    let never_started = Runtime {
        pid: None,
        ..running()
    };
    assert_eq!(
        decide(&never_started, PidState::Gone, now, &p),
        Decision::Start
    );
}

// The component, with real processes.

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An autostart instance whose process is `sleep 3600`, with `extra` lines.
fn sleeper(name: &str, extra: &str) -> String {
    format!(
        "[instances.{name}]\ndir = \".\"\nstart = \"sleep 3600\"\nport = {}\nautostart = true\n{extra}\n",
        free_port()
    )
}

fn service(dir: &Path, clock: &ManualClock, instances: &str) -> (Ostler, std::path::PathBuf) {
    let path = dir.join("ostler.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\nname = \"supervisor-test\"\nstate_dir = \"state\"\n\
             [supervise]\nbackoff_initial = \"1s\"\nbackoff_max = \"4s\"\ncrash_limit = 2\ncrash_window = \"1m\"\n\
             {instances}"
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new()).with_clock(clock.clock());
    (ostler, path)
}

/// The next event about `instance`, waiting up to 20 s of real time.
async fn next_event(events: &mut broadcast::Receiver<Event>, instance: &str) -> Event {
    let wait = async {
        loop {
            let event = events.recv().await.expect("the bus is open");
            let about = match &event {
                Event::InstanceStarted { instance: i, .. }
                | Event::InstanceCrashed { instance: i, .. }
                | Event::CrashLoop { instance: i, .. } => i == instance,
                _ => false,
            };
            if about {
                return event;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no event about {instance} within 20 s"))
}

fn started_pid(event: Event) -> i32 {
    match event {
        Event::InstanceStarted { pid, .. } => pid,
        other => panic!("expected a start, got {other:?}"),
    }
}

fn kill(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
}

/// Kills what the instances run and reaps it.
fn stop_all(handle: &Handle) {
    let ostler = handle.ostler();
    let state = ostler.state().unwrap();
    for inst in ostler.instances().unwrap() {
        if let Some(pid) = state.runtime(&inst.name).unwrap().pid {
            kill(pid);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}

fn supervise(handle: &Handle, drain: Drain) -> tokio::task::JoinHandle<Drained> {
    let components: Vec<Arc<dyn Component>> = vec![Arc::new(Supervisor {
        // Longer than any test: every look here is woken by something else.
        tick: Duration::from_secs(3_600),
    })];
    tokio::spawn(host::run(handle.clone(), components, drain))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_restarted_when_the_clock_reaches_its_backoff_then_crash_loops() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let (ostler, path) = service(dir.path(), &clock, &sleeper("app", ""));
    let handle = Handle::new(ostler, &path);
    let mut events = handle.bus().subscribe();
    let host = supervise(&handle, Drain::default());

    let first = started_pid(next_event(&mut events, "app").await);
    kill(first);
    // Seen at once (SIGCHLD), not at the hour's tick.
    let crashed = next_event(&mut events, "app").await;
    let crash_time = clock.now();
    assert_eq!(
        crashed,
        Event::InstanceCrashed {
            instance: "app".into(),
            why: "exited".into(),
            crashes: 1,
            restart_at: Some(crash_time + SignedDuration::from_secs(1)),
        }
    );
    assert_eq!(
        handle.ostler().state().unwrap().runtime("app").unwrap().pid,
        None
    );

    // Asleep until the backoff ends; a millisecond before it nothing starts.
    assert!(clock.until_sleepers(1, Duration::from_secs(10)).await);
    clock.advance(ms(999));
    tokio::time::sleep(ms(200)).await;
    assert!(
        events.try_recv().is_err(),
        "started before its backoff ended"
    );
    clock.advance(ms(1));
    let second = started_pid(next_event(&mut events, "app").await);
    assert_ne!(second, first);

    // A second crash within the minute: crash_limit 2, a crash loop, no more starts.
    kill(second);
    let looped = next_event(&mut events, "app").await;
    assert!(
        matches!(looped, Event::CrashLoop { crashes: 2, .. }),
        "{looped:?}"
    );
    assert!(clock.until_sleepers(1, Duration::from_secs(10)).await);
    clock.advance(Duration::from_secs(3_600 * 2));
    tokio::time::sleep(ms(200)).await;
    assert!(events.try_recv().is_err(), "restarted in crash-loop");
    let rt = handle.ostler().state().unwrap().runtime("app").unwrap();
    assert_eq!((rt.supervision.as_str(), rt.pid), ("crash-loop", None));

    handle.shutdown().cancel();
    assert_eq!(host.await.unwrap(), Drained::Finished);
    stop_all(&handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_waiting_for_health_does_not_hold_another_instances_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    // Nothing ever answers `slow`'s health URL: its start waits the health timeout.
    let slow = sleeper(
        "slow",
        &format!(
            "health = \"http://127.0.0.1:{}/health\"\nhealth_timeout = \"40s\"",
            free_port()
        ),
    );
    let (ostler, path) = service(
        dir.path(),
        &clock,
        &format!("{slow}{}", sleeper("quick", "")),
    );
    let handle = Handle::new(ostler, &path);
    let mut events = handle.bus().subscribe();
    let host = supervise(
        &handle,
        Drain {
            bound: ms(100),
            grace: Duration::from_secs(10),
        },
    );

    let quick = started_pid(next_event(&mut events, "quick").await);
    kill(quick);
    assert!(matches!(
        next_event(&mut events, "quick").await,
        Event::InstanceCrashed { .. }
    ));
    assert!(clock.until_sleepers(1, Duration::from_secs(10)).await);
    clock.advance(Duration::from_secs(1));
    started_pid(next_event(&mut events, "quick").await);
    // All the while, slow's start was in flight.
    let state = handle.ostler().state().unwrap();
    let locks = state.locks().unwrap();
    assert!(
        locks
            .iter()
            .any(|l| l.instance == "slow" && l.purpose == "supervise-start"),
        "{locks:?}"
    );

    // The drain interrupts it at its bound; an interrupted start is not a crash.
    handle.shutdown().cancel();
    assert_eq!(host.await.unwrap(), Drained::Interrupted);
    assert_eq!(state.runtime("slow").unwrap().crashes, []);
    stop_all(&handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autostart_instance_a_reload_adds_is_started_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let old = sleeper("old", "");
    let (ostler, path) = service(dir.path(), &clock, &old);
    let handle = Handle::new(ostler, &path);
    let mut events = handle.bus().subscribe();
    let host = supervise(&handle, Drain::default());
    started_pid(next_event(&mut events, "old").await);
    assert!(clock.until_sleepers(1, Duration::from_secs(10)).await);

    let (reloaded, _) = service(dir.path(), &clock, &format!("{old}{}", sleeper("new", "")));
    handle.replace_ostler(reloaded);
    handle.bus().publish(Event::ConfigReloaded {
        added: vec!["new".into()],
        removed: vec![],
        changed: vec![],
    });
    started_pid(next_event(&mut events, "new").await);
    let rt = handle.ostler().state().unwrap().runtime("new").unwrap();
    assert_eq!(rt.desired, "running");

    handle.shutdown().cancel();
    assert_eq!(host.await.unwrap(), Drained::Finished);
    stop_all(&handle);
}
