//! The prober on a manual clock: real `sh` plugins, time moved by hand to each wake-up
//! the prober is expected to sleep towards (so the test asserts the schedule as it
//! walks it), never slept for; and one test on the system clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast;

use super::{first_offset, Prober};
use crate::clock::{later, Clock, ManualClock};
use crate::config::Config;
use crate::daemon::bus::Event;
use crate::daemon::host::{self, Component, Drain, Drained, Handle};
use crate::instance::Ostler;
use crate::probes::{history, Status};
use crate::report::{Interrupt, Silent};

/// A service in `dir` with these `[[probes]]`, on `clock`.
fn service(dir: &Path, clock: Clock, probes: &str) -> (Ostler, PathBuf) {
    let path = dir.join("ostler.toml");
    std::fs::write(
        &path,
        format!("[service]\nname = \"prober-test\"\nstate_dir = \"state\"\n{probes}"),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let ostler = Ostler::new(config, Arc::new(Silent), Interrupt::new()).with_clock(clock);
    (ostler, path)
}

fn probe(name: &str, command: &str, extra: &str) -> String {
    format!(
        "[[probes]]\nname = \"{name}\"\nkind = \"command\"\ncommand = '''{command}'''\n{extra}\n"
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
    let components: Vec<Arc<dyn Component>> = vec![Arc::new(Prober)];
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

    /// The next probe event, up to 20 s real time.
    async fn next(&mut self) -> Event {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("the bus is open");
                if let Event::ProbeChanged { .. } | Event::ProbeFlapping { .. } = event {
                    return event;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("a probe event within 20 s")
    }

    /// No probe event is waiting.
    fn quiet(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            assert!(
                !matches!(
                    event,
                    Event::ProbeChanged { .. } | Event::ProbeFlapping { .. }
                ),
                "unexpected {event:?}"
            );
        }
    }

    /// Every recorded result of `probe`, oldest first.
    fn results(&self, probe: &str) -> Vec<history::Recorded> {
        let state = self.handle.ostler().state().unwrap();
        let mut all = history::recent(&state, Some(probe), 1000).unwrap();
        all.reverse();
        all
    }

    /// Waits (real time) until `probe` has `n` results.
    async fn until_results(&self, probe: &str, n: usize) -> Vec<history::Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let results = self.results(probe);
            if results.len() >= n {
                return results;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{probe} has {} results, not {n}, after 20 s",
                results.len()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Walks the clock through the prober's wake-ups (at most [`super::MAX_SLEEP`] apart)
/// to `t`, failing if it sleeps past `t`, which it must sleep towards.
async fn wake_at(clock: &ManualClock, t: Timestamp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let asleep = clock.earliest_sleeper().filter(|s| *s > clock.now());
        match asleep {
            Some(s) if s == t => break,
            Some(s) if s < t => clock.set(s),
            // Past `t`: a sleep the prober is about to leave (a reload heard), or the
            // wrong schedule, which the deadline tells.
            asleep => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the prober sleeps towards {asleep:?}, not {t}, after 20 s"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    clock.set(t);
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_results_retry_at_their_interval_until_hard_then_the_interval_and_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("code"), "2").unwrap();
    let clock = ManualClock::at_new_year();
    let t0 = clock.now();
    let (ostler, path) = service(
        dir.path(),
        clock.clock(),
        &probe(
            "web",
            "echo \"WEB CRITICAL - code $(cat code) | x=$(cat code);1;2\"; exit $(cat code)",
            "interval = \"5m\"\nretry_interval = \"30s\"\nretries = 3",
        ),
    );
    let mut daemon = start(ostler, &path);
    let first = later(t0, first_offset("web", secs(300)));
    wake_at(&clock, first).await;
    daemon.until_results("web", 1).await;
    wake_at(&clock, later(first, secs(30))).await;
    daemon.until_results("web", 2).await;
    daemon.quiet();
    wake_at(&clock, later(first, secs(60))).await;
    assert_eq!(
        daemon.next().await,
        Event::ProbeChanged {
            probe: "web".into(),
            instance: None,
            from: Status::Ok,
            to: Status::Critical,
            summary: "WEB CRITICAL - code 2".into(),
        }
    );
    let results = daemon.until_results("web", 3).await;
    let seen: Vec<(Timestamp, bool, u32)> =
        results.iter().map(|r| (r.at, r.hard, r.attempt)).collect();
    assert_eq!(
        seen,
        vec![
            (first, false, 1),
            (later(first, secs(30)), false, 2),
            (later(first, secs(60)), true, 3),
        ]
    );
    assert_eq!(results[2].perfdata[0].to_string(), "x=2;1;2");
    // Hard: back to the interval.
    std::fs::write(dir.path().join("code"), "0").unwrap();
    wake_at(&clock, later(first, secs(60 + 300))).await;
    match daemon.next().await {
        Event::ProbeChanged { from, to, .. } => {
            assert_eq!((from, to), (Status::Critical, Status::Ok))
        }
        e => panic!("{e:?}"),
    }
    wake_at(&clock, later(first, secs(60 + 600))).await;
    daemon.until_results("web", 5).await;
    daemon.quiet();
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_prober_resumes_the_soft_count_and_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let config = probe(
        "db",
        "exit 1",
        "interval = \"2m\"\nretry_interval = \"20s\"\nretries = 3",
    );
    let (ostler, path) = service(dir.path(), clock.clock(), &config);
    let daemon = start(ostler, &path);
    let first = later(clock.now(), first_offset("db", secs(120)));
    wake_at(&clock, first).await;
    daemon.until_results("db", 1).await;
    wake_at(&clock, later(first, secs(20))).await;
    daemon.until_results("db", 2).await;
    daemon.stop().await;
    // A new daemon: the third result is due 20 s after the second, and is the third
    // of three.
    let (ostler, path) = service(dir.path(), clock.clock(), &config);
    let mut daemon = start(ostler, &path);
    wake_at(&clock, later(first, secs(40))).await;
    match daemon.next().await {
        Event::ProbeChanged {
            probe, from, to, ..
        } => {
            assert_eq!(
                (probe.as_str(), from, to),
                ("db", Status::Ok, Status::Warning)
            )
        }
        e => panic!("{e:?}"),
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_keep_changing_flap_and_the_flapping_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    // OK, CRITICAL, OK, CRITICAL... (a counter in a file).
    let alternate = "n=$(cat n 2>/dev/null || echo 0); echo $((n + 1)) > n; exit $((n % 2 * 2))";
    let (ostler, path) = service(
        dir.path(),
        clock.clock(),
        &probe("flappy", alternate, "interval = \"10s\"\nretries = 1"),
    );
    let mut daemon = start(ostler, &path);
    let first = later(clock.now(), first_offset("flappy", secs(10)));
    let mut flapped = None;
    for i in 0..21u64 {
        wake_at(&clock, later(first, secs(10 * i))).await;
        daemon.until_results("flappy", i as usize + 1).await;
        // Result 0 is OK (no change); each later one is a hard change, and the
        // flapping starts once among them.
        let changes = if i == 0 { 0 } else { 1 };
        for _ in 0..changes {
            match daemon.next().await {
                Event::ProbeChanged { .. } => {}
                e => panic!("{e:?}"),
            }
        }
        if flapped.is_none() {
            if let Ok(Event::ProbeFlapping {
                flapping, percent, ..
            }) = daemon.events.try_recv()
            {
                assert!(flapping);
                assert!(percent > 50.0, "{percent}");
                flapped = Some(i);
            }
        }
    }
    let at = flapped.expect("the probe started flapping");
    assert!((5..15).contains(&at), "started flapping at result {at}");
    daemon.stop().await;
}

#[test]
fn first_checks_of_a_hundred_probes_spread_over_their_interval() {
    let interval = secs(10);
    let offsets: Vec<Duration> = (0..100)
        .map(|i| first_offset(&format!("http-{i}"), interval))
        .collect();
    assert!(offsets.iter().all(|o| *o < interval));
    let mut per_second = [0usize; 10];
    for o in &offsets {
        per_second[o.as_secs() as usize] += 1;
    }
    assert!(
        per_second.iter().all(|n| (2..=25).contains(n)),
        "{per_second:?}"
    );
    // Stable: the same name, the same offset.
    assert_eq!(first_offset("http-7", interval), offsets[7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_system_clock_a_failing_probe_is_alerted_within_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (ostler, path) = service(
        dir.path(),
        Clock::system(),
        &probe(
            "now",
            "echo 'NOW WARNING - slow'; exit 1",
            "interval = \"1s\"\nretries = 2",
        ),
    );
    let mut daemon = start(ostler, &path);
    let started = std::time::Instant::now();
    match daemon.next().await {
        Event::ProbeChanged { to, summary, .. } => {
            assert_eq!(to, Status::Warning);
            assert_eq!(summary, "NOW WARNING - slow");
        }
        e => panic!("{e:?}"),
    }
    // The first check within 1 s, the second (hard) 1 s later.
    assert!(started.elapsed() < secs(4), "{:?}", started.elapsed());
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_probes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    let t0 = clock.now();
    let (ostler, path) = service(
        dir.path(),
        clock.clock(),
        &probe("old", "true", "interval = \"2m\""),
    );
    let daemon = start(ostler, &path);
    let old_first = later(t0, first_offset("old", secs(120)));
    wake_at(&clock, old_first).await;
    daemon.until_results("old", 1).await;
    // The edited config: `old` gone, `new` there.
    let (ostler, _) = service(
        dir.path(),
        clock.clock(),
        &probe("new", "true", "interval = \"2m\""),
    );
    daemon.handle.replace_ostler(ostler);
    daemon.handle.bus().publish(Event::ConfigReloaded {
        added: vec![],
        removed: vec![],
        changed: vec![],
    });
    let new_first = later(old_first, first_offset("new", secs(120)));
    wake_at(&clock, new_first).await;
    daemon.until_results("new", 1).await;
    // Walked past the time `old` would have run again (it is removed: it did not) to
    // the next check of `new`.
    wake_at(&clock, later(new_first, secs(120))).await;
    daemon.until_results("new", 2).await;
    assert_eq!(daemon.results("old").len(), 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_probes_due_at_once_run_sixteen_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_new_year();
    // Each plugin counts the plugins running with it, as it starts.
    let count = "mkdir -p running; touch running/$OSTLER_PROBE; ls running | wc -l >> counts; sleep 0.3; rm running/$OSTLER_PROBE";
    let probes: String = (0..20)
        .map(|i| probe(&format!("p{i}"), count, "interval = \"1h\""))
        .collect();
    let (ostler, path) = service(dir.path(), clock.clock(), &probes);
    let daemon = start(ostler, &path);
    // Asleep towards the first of them: an hour on, every one is due.
    while clock.earliest_sleeper().is_none_or(|s| s <= clock.now()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    clock.set(later(clock.now(), secs(3600)));
    for i in 0..20 {
        daemon.until_results(&format!("p{i}"), 1).await;
    }
    let counts: Vec<usize> = std::fs::read_to_string(dir.path().join("counts"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 20);
    let most = *counts.iter().max().unwrap();
    assert!(most <= super::MAX_RUNNING, "{most} ran at once");
    assert!(most >= 4, "checks run in parallel: at most {most} at once");
    daemon.stop().await;
}
