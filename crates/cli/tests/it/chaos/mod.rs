//! The chaos test (issue 8, item 11): random trials on the bundled guestbook, each one
//! fault — a SIGKILL at a random moment of backup, restore, prune or copy; a flipped
//! bit, a truncation or a deletion of a chunk, a manifest or `config.json`; a full disk
//! under the repository or under a restore — followed by the checks that must hold
//! whatever happened (see `faults`). It is how we know the reliability fixes held, and
//! keep holding.
//!
//! `cargo test` runs a short version (`DEFAULT_TRIALS` trials of every kind, taken in turn).
//! The long run and a replay are the same test with the environment set:
//!
//! ```text
//! OSTLER_CHAOS_TRIALS=200       how many trials (kinds and engines taken in turn)
//! OSTLER_CHAOS_SEED=N           the run's seed (printed by every run); trial i of a
//!                               run uses its own seed, printed with it, and a trial
//!                               replays alone with that seed, its kind and TRIALS=1
//! OSTLER_CHAOS_KINDS=all        or a comma list: kill-backup,damage-chunk,...
//! OSTLER_CHAOS_ENGINES=sqlite   or a comma list of sqlite,postgres,mysql
//! OSTLER_CHAOS_REPORT=FILE      also write the per-kind table and every trial there
//! OSTLER_CHAOS_JOBS=1           trials run side by side (kill moments get noisier)
//! ```
//!
//! `scripts/chaos.sh` runs the long version on a release build. A kill moment is a
//! fraction (from the seed) of the trial's own plain backup time, so a replay kills at
//! the same point of the work only as far as the machine's speed repeats.

mod faults;
mod format;
mod lab;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use faults::Kind;

use crate::databases::Engine;

const DEFAULT_TRIALS: usize = 6;

struct Settings {
    trials: usize,
    jobs: usize,
    seed: u64,
    kinds: Vec<Kind>,
    engines: Vec<Engine>,
    report: Option<std::path::PathBuf>,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let trials = var("OSTLER_CHAOS_TRIALS")
            .map(|v| v.parse().expect("OSTLER_CHAOS_TRIALS: a number"))
            .unwrap_or(DEFAULT_TRIALS);
        let seed = var("OSTLER_CHAOS_SEED")
            .map(|v| v.parse().expect("OSTLER_CHAOS_SEED: a number"))
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                mix(t.as_nanos() as u64 ^ u64::from(std::process::id()))
            });
        let kinds = match var("OSTLER_CHAOS_KINDS").as_deref() {
            None | Some("all") => faults::ALL.to_vec(),
            Some(list) => list
                .split(',')
                .map(|k| {
                    Kind::parse(k.trim()).unwrap_or_else(|| {
                        panic!(
                            "OSTLER_CHAOS_KINDS: no kind `{k}`; kinds: all, {}",
                            faults::ALL.map(Kind::name).join(", ")
                        )
                    })
                })
                .collect(),
        };
        let mut kinds = kinds;
        if let Err(why) = lab::Tmpfs::permitted() {
            let full = [
                Kind::FullRepoDisk,
                Kind::FullRestoreDisk,
                Kind::FullStateDisk,
            ];
            if kinds.iter().any(|k| full.contains(k)) {
                eprintln!("chaos: full-disk trials skipped: {why}");
                kinds.retain(|k| !full.contains(k));
            }
        }
        let engines = var("OSTLER_CHAOS_ENGINES")
            .unwrap_or_else(|| "sqlite".into())
            .split(',')
            .map(|e| match e.trim() {
                "sqlite" => Engine::Sqlite,
                "postgres" => Engine::Postgres,
                "mysql" | "mariadb" => Engine::Mysql,
                other => panic!("OSTLER_CHAOS_ENGINES: no engine `{other}`"),
            })
            .collect();
        let jobs = var("OSTLER_CHAOS_JOBS")
            .map(|v| v.parse().expect("OSTLER_CHAOS_JOBS: a number"))
            .unwrap_or(1);
        Settings {
            trials,
            jobs,
            seed,
            kinds,
            engines,
            report: var("OSTLER_CHAOS_REPORT").map(Into::into),
        }
    }
}

/// splitmix64: the seed of trial i > 0 from the run's seed (trial 0 uses the run's
/// seed itself, which is what makes a single trial replayable on its own).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Record {
    trial: usize,
    kind: Kind,
    engine: Engine,
    seed: u64,
    secs: f64,
    note: String,
    failure: Option<String>,
}

fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
    }
}

fn run_trial(kind: Kind, engine: Engine, seed: u64) -> (String, Option<String>) {
    let mut log = faults::Log::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let keep_last = 1 + (seed % 2) as u32;
        let mut lab = lab::Lab::new(engine, seed, kind.edit_config(keep_last))?;
        kind.run(&mut lab, &mut log)
    }));
    let last = match result {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    log.failures.extend(last);
    let failure = (!log.failures.is_empty()).then(|| log.failures.join(" AND "));
    (log.notes.join("; "), failure)
}

fn table(records: &[Record]) -> String {
    let mut by_kind: BTreeMap<(Kind, &str), (usize, usize)> = BTreeMap::new();
    for r in records {
        let e = by_kind.entry((r.kind, engine_name(r.engine))).or_default();
        e.0 += 1;
        if r.failure.is_some() {
            e.1 += 1;
        }
    }
    let mut out = String::from("| fault | engine | trials | failures |\n|---|---|---:|---:|\n");
    for ((kind, engine), (n, f)) in &by_kind {
        writeln!(out, "| {} | {engine} | {n} | {f} |", kind.name()).unwrap();
    }
    let failed = records.iter().filter(|r| r.failure.is_some()).count();
    writeln!(out, "| all | | {} | {failed} |", records.len()).unwrap();
    out
}

fn replay(r: &Record) -> String {
    format!(
        "OSTLER_CHAOS_SEED={} OSTLER_CHAOS_KINDS={} OSTLER_CHAOS_ENGINES={} OSTLER_CHAOS_TRIALS=1",
        r.seed,
        r.kind.name(),
        engine_name(r.engine)
    )
}

/// Trial `i` of the run: its kind and engine in turn, its seed from the run's.
fn trial(s: &Settings, i: usize) -> Record {
    // In turn, from a place the run's seed picks (so a short run covers other kinds
    // each time).
    let kind = s.kinds[(i + s.seed as usize) % s.kinds.len()];
    let engine = s.engines[(i / s.kinds.len()) % s.engines.len()];
    let seed = if i == 0 {
        s.seed
    } else {
        mix(s.seed ^ i as u64)
    };
    let start = Instant::now();
    let (note, failure) = run_trial(kind, engine, seed);
    Record {
        trial: i,
        kind,
        engine,
        seed,
        secs: start.elapsed().as_secs_f64(),
        note,
        failure,
    }
}

#[test]
fn chaos_trials_keep_data_safe() {
    let s = Settings::from_env();
    eprintln!(
        "chaos: {} trials, seed {} (replay the run: OSTLER_CHAOS_SEED={}), kinds {}",
        s.trials,
        s.seed,
        s.seed,
        s.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    // Trials are independent (each its own temp dir, ports and mounts), so with
    // OSTLER_CHAOS_JOBS > 1 they run side by side; the record stays in trial order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..s.jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= s.trials {
                    return;
                }
                let r = trial(&s, i);
                eprintln!(
                    "chaos trial {:>3} {:<17} {:<8} seed {:<20} {:>5.1}s {}: {}{}",
                    r.trial,
                    r.kind.name(),
                    engine_name(r.engine),
                    r.seed,
                    r.secs,
                    if r.failure.is_some() { "FAIL" } else { "ok" },
                    r.note,
                    r.failure
                        .as_ref()
                        .map(|f| format!("\n    FAILURE: {f}\n    replay: {}", replay(&r)))
                        .unwrap_or_default()
                );
                done.lock().unwrap().push(r);
            });
        }
    });
    let mut records = done.into_inner().unwrap();
    records.sort_by_key(|r| r.trial);
    let summary = table(&records);
    eprintln!("\n{summary}");
    if let Some(path) = &s.report {
        let mut text = format!("seed {}, {} trials\n\n{summary}\n", s.seed, s.trials);
        text += "| trial | fault | engine | seed | seconds | outcome | what happened |\n|---:|---|---|---|---:|---|---|\n";
        for r in &records {
            writeln!(
                text,
                "| {} | {} | {} | {} | {:.1} | {} | {} |",
                r.trial,
                r.kind.name(),
                engine_name(r.engine),
                r.seed,
                r.secs,
                match &r.failure {
                    Some(f) => format!("FAIL: {}", f.replace('|', "/")),
                    None => "ok".into(),
                },
                r.note.replace('|', "/")
            )
            .unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
    let failures: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.failure.as_ref().map(|f| {
                format!(
                    "trial {} {}: {f}\n  replay: {}",
                    r.trial,
                    r.kind.name(),
                    replay(r)
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} chaos trials failed:\n{}",
        failures.len(),
        records.len(),
        failures.join("\n")
    );
}
