//! A whole service on a manual clock: backups taken (for real, of a SQLite database)
//! at the times the test sets are catalogued and journaled at those times, and prune's
//! retention buckets them by those times. Nothing sleeps; the system's clock, which
//! reads the day the test runs, would put every backup in one hour.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use ostler_core::backup::catalog;
use ostler_core::backup::procedures;
use ostler_core::backup::prune::{self, PruneOptions};
use ostler_core::clock::ManualClock;
use ostler_core::config::Config;
use ostler_core::report::{Interrupt, Silent};
use ostler_core::Ostler;

const CONFIG: &str = r#"
[service]
name = "gb"

[repository]
path = "repo"

[retention]
keep_hourly = 2
keep_daily = 2
timezone = "UTC"

[instances.gb-1]
dir = "gb-1"
start = "true"
port = 1
database = { kind = "sqlite", path = "data.db" }
"#;

/// A service in `dir` whose one instance has a small SQLite database, on `manual`.
fn service(dir: &Path, manual: &ManualClock) -> Ostler {
    std::fs::create_dir_all(dir.join("gb-1")).unwrap();
    let db = rusqlite::Connection::open(dir.join("gb-1/data.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes (body) VALUES ('one'), ('two'), ('three');",
    )
    .unwrap();
    let config = Config::parse(CONFIG, &dir.join("ostler.toml")).unwrap();
    Ostler::new(config, Arc::new(Silent), Interrupt::new()).with_clock(manual.clock())
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The start times of the backups prune's plan drops, oldest first.
fn dropped(ostler: &Ostler) -> Vec<Timestamp> {
    prune::plan(ostler, &PruneOptions::default())
        .unwrap()
        .decisions
        .iter()
        .filter(|d| !d.keep)
        .map(|d| d.started_at)
        .collect()
}

#[test]
fn backups_are_catalogued_journaled_and_retained_by_the_services_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let manual = ManualClock::at_new_year();
    let ostler = service(tmp.path(), &manual);
    let times = [
        at("2026-01-01T09:00:00Z"),
        at("2026-01-01T10:00:00Z"),
        at("2026-01-01T11:00:00Z"),
        at("2026-01-02T09:00:00Z"),
    ];
    for t in times {
        manual.set(t);
        let m = procedures::take(&ostler, "gb-1", None).unwrap();
        assert_eq!((m.started_at, m.finished_at), (t, t));
    }

    let state = ostler.state().unwrap();
    let catalogued: Vec<_> = catalog::list(&state, Some("gb-1"))
        .unwrap()
        .into_iter()
        .map(|b| (b.status, b.started_at, b.finished_at))
        .collect();
    let expected: Vec<(String, _, _)> =
        times.iter().map(|&t| ("good".into(), t, Some(t))).collect();
    assert_eq!(catalogued, expected);
    let journaled: Vec<_> = state
        .journal(Some("gb-1"), 10)
        .unwrap()
        .into_iter()
        .filter(|e| e.operation == "backup")
        .map(|e| (e.started_at, e.finished_at))
        .collect();
    let expected: Vec<_> = times.iter().map(|&t| (t, Some(t))).collect();
    assert_eq!(journaled, expected);

    // Two hours (01-02 09h, 01-01 11h) and two days keep the newest and 11:00.
    assert_eq!(dropped(&ostler), times[..2]);
    // A month without backups drops nothing more: the rules count back from the
    // newest backup, not from now.
    manual.advance(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(dropped(&ostler), times[..2]);
    // A backup a month later moves both windows past the first day.
    procedures::take(&ostler, "gb-1", None).unwrap();
    assert_eq!(dropped(&ostler), times[..3]);
}
