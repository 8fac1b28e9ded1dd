//! Plans built from a config in a temp dir, with no server and no process: what each
//! procedure's plan holds, that building one changes nothing, and how the production
//! guard judges plans.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::backup::manifest::Manifest;
use crate::backup::procedures::{plan_mirror, plan_restore, RestoreOptions};
use crate::backup::prune;
use crate::guard::{self, Confirm, Danger, Exposure};
use crate::instance::Ostler;
use crate::report::{Interrupt, Silent};

const CONFIG: &str = r#"
[service]
name = "s"

[repository]
path = "repo"

[roles]
production = "p"

[instances.p]
dir = "p"
start = "x"
port = 1
health = "http://127.0.0.1:{port}/health"
logs = ["access.log"]
database = { kind = "sqlite", path = "data.db" }
stores = [{ name = "uploads", path = "uploads" }, { name = "cache", path = "cache", cache = true }]

[instances.q]
dir = "q"
start = "x"
port = 2
logs = ["../p/access.log"]
database = { kind = "sqlite", path = "../p/data.db" }

[instances.t]
dir = "t"
start = "x"
port = 3
database = { kind = "sqlite", path = "data.db" }
stores = [{ name = "uploads", path = "uploads" }]

[instances.bare]
dir = "bare"
start = "x"
port = 4
"#;

fn ostler(dir: &Path) -> Ostler {
    std::fs::write(dir.join("ostler.toml"), CONFIG).unwrap();
    Ostler::load(&dir.join("ostler.toml"), Arc::new(Silent), Interrupt::new()).unwrap()
}

/// A backup of `instance` holding a SQLite database of `tables` tables and the
/// `uploads` store, as the catalog would hand it to a restore.
fn manifest(instance: &str, tables: usize) -> Manifest {
    manifest_at(instance, tables, "3f2a1c", "2026-01-01T00:00:00Z")
}

fn manifest_at(instance: &str, tables: usize, id: &str, at: &str) -> Manifest {
    let stream = serde_json::json!({"size": 0, "hash": "0".repeat(64), "chunks": []});
    let table = |i: usize| {
        serde_json::json!({
            "spec": {"name": format!("t{i}"), "columns": ["id"], "key_columns": ["id"], "foreign_keys": []},
            "rows": 1, "hash": "h", "logical_bytes": 1, "base": stream,
        })
    };
    serde_json::from_value(serde_json::json!({
        "format": 1, "id": id, "service": "s", "instance": instance,
        "started_at": at, "finished_at": at,
        "database": {"kind": "sqlite", "schema": [], "tables": (0..tables).map(table).collect::<Vec<_>>()},
        "stores": [{"name": "uploads", "listing": stream, "files": 0, "bytes": 0}],
        "logical_bytes": 0, "new_bytes": 0,
    }))
    .unwrap()
}

fn actions(plan: &Plan) -> Vec<&Action> {
    plan.steps.iter().map(|s| &s.action).collect()
}

/// Everything under `dir` but the config and ostler's state dir: what a plan must
/// not have created.
fn created(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "ostler.toml" && n != ".ostler")
        .collect();
    out.sort();
    out
}

struct Record(RefCell<Vec<Danger>>, bool);
impl Confirm for Record {
    fn confirm(&self, danger: &Danger) -> bool {
        self.0.borrow_mut().push(danger.clone());
        self.1
    }
}

#[test]
fn rebuild_is_four_steps_each_with_its_check_and_undo_and_a_first_build_replaces_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let plan = chain::plan(&o, "rebuild", "production").unwrap();
    assert_eq!(
        actions(&plan),
        [
            &Action::Stop,
            &Action::Print,
            &Action::Build { command: None },
            &Action::Start
        ]
    );
    assert!(plan.steps.iter().all(|s| s.from == Some(Verb::Rebuild)));
    assert_eq!(plan.steps[0].undo, Some(Undo::Start));
    assert_eq!(
        plan.steps[3].check,
        Check::Healthy {
            url: Some("http://127.0.0.1:1/health".into())
        }
    );
    assert_eq!(plan.steps[2].effect, Effect::CreatesBuild);
    std::fs::create_dir_all(tmp.path().join("p")).unwrap();
    std::fs::write(tmp.path().join("p/app"), "built").unwrap();
    let plan = chain::plan(&o, "build", "p").unwrap();
    assert_eq!(plan.steps[0].effect, Effect::ReplacesBuild);
}

#[test]
fn db_nuke_plans_its_safety_dump_and_how_to_load_it_back_and_needs_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let plan = chain::plan(&o, "stop,db-nuke", "t").unwrap();
    let dump_dir = o.state_dir().join("safety");
    let nuke = &plan.steps[1];
    assert!(
        matches!(&nuke.action, Action::DropDatabase { database, dump_dir: d }
            if database.ends_with("t/data.db") && d == &dump_dir),
        "{nuke:?}"
    );
    assert_eq!(nuke.effect, Effect::DestroysDatabase);
    assert_eq!(nuke.check, Check::DumpWrittenAndDatabaseEmpty);
    assert_eq!(nuke.undo, Some(Undo::LoadSafetyDump { dump_dir }));
    // Refused when the plan is built, before the chain's stop would run.
    let e = chain::plan(&o, "stop,db-nuke", "bare").unwrap_err();
    assert_eq!(e.to_string(), "instance `bare` has no database");
    assert_eq!(created(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_restore_plan_loads_beside_swaps_in_and_changes_nothing_while_planned() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let m = manifest("p", 3);
    let rp = plan_restore(&o, &m, "p", RestoreOptions::default()).unwrap();
    let a = actions(&rp.plan);
    assert!(matches!(a[0], Action::TakeSafetyBackup), "{a:?}");
    assert!(
        matches!(a[1], Action::LoadSideDatabase { backup: Some(b), side } if b == "3f2a1c" && side.ends_with(".ostler-restore")),
        "{a:?}"
    );
    assert!(
        matches!(a[2], Action::RestoreStore { name, .. } if name == "uploads"),
        "the cache is not restored: {a:?}"
    );
    assert!(matches!(a[3], Action::SwapIn { places } if places.len() == 2));
    assert_eq!(a[4], &Action::RemoveAsides);
    assert_eq!(
        a.len(),
        5,
        "not running: neither stopped nor started: {a:?}"
    );
    assert_eq!(rp.plan.steps[1].check, Check::TablesLoaded { tables: 3 });
    assert_eq!(rp.plan.steps[3].undo, Some(Undo::SwapBack));
    assert_eq!(rp.plan.steps[4].undo, Some(Undo::RestoreSafetyBackup));
    assert!(rp
        .plan
        .steps
        .iter()
        .all(|s| s.instance.as_deref() == Some("p")));
    // Only the guard's business is the swap: loading beside the live data changes nothing live.
    let guarded: Vec<&Action> = rp
        .plan
        .steps
        .iter()
        .filter(|s| s.effect.needs_confirmation())
        .map(|s| &s.action)
        .collect();
    assert_eq!(guarded.len(), 2, "{guarded:?}");
    assert_eq!(created(tmp.path()), Vec::<String>::new());
    assert!(!o.state_dir().join("restores").exists(), "no journal file");
    // Without a safety backup there is nothing to go back to once the asides are gone.
    let rp = plan_restore(
        &o,
        &m,
        "p",
        RestoreOptions {
            no_safety_backup: true,
            scrub: Some("UPDATE t0 SET id = id".into()),
        },
    )
    .unwrap();
    let a = actions(&rp.plan);
    assert!(!a.contains(&&Action::TakeSafetyBackup));
    assert!(matches!(a[1], Action::Scrub { .. }), "{a:?}");
    assert_eq!(rp.plan.steps.last().unwrap().action, Action::Start);
    let asides = rp
        .plan
        .steps
        .iter()
        .find(|s| s.action == Action::RemoveAsides);
    assert_eq!(asides.unwrap().undo, None);
}

#[test]
fn a_restore_into_another_engine_or_a_scrub_without_a_database_is_refused_when_planned() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let mut m = manifest("p", 1);
    m.database.as_mut().unwrap().kind = crate::engine::DatabaseKind::Postgres;
    let e = plan_restore(&o, &m, "t", RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("holds a postgres database"), "{e}");
    let e = plan_restore(
        &o,
        &manifest("p", 1),
        "bare",
        RestoreOptions {
            scrub: Some("x".into()),
            no_safety_backup: false,
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "instance `bare` has no database to scrub");
}

#[test]
fn a_fresh_mirror_takes_the_backup_on_its_source_first_and_always_starts_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let mp = plan_mirror(&o, "production", "t", true, RestoreOptions::default()).unwrap();
    assert!(mp.restore.is_none(), "planned again once the backup exists");
    let first = &mp.plan.steps[0];
    assert_eq!(first.instance.as_deref(), Some("p"));
    assert_eq!(first.action, Action::TakeBackup);
    assert!(matches!(
        &mp.plan.steps[2].action,
        Action::LoadSideDatabase { backup: None, .. }
    ));
    assert_eq!(mp.plan.steps.last().unwrap().action, Action::Start);
    assert_eq!(
        mp.plan.procedure,
        Procedure::Mirror {
            source: "p".into(),
            target: "t".into(),
            backup: None
        }
    );
    let e = plan_mirror(&o, "t", "t", true, RestoreOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "cannot mirror t onto itself");
}

#[test]
fn a_prune_plan_needs_a_rule_and_with_an_empty_catalog_only_collects_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let e = prune::plan(&o, &prune::PruneOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no [retention] section"), "{e}");
    let p = prune::plan(&o, &prune::PruneOptions { keep_last: Some(2) }).unwrap();
    assert_eq!(actions(&p.plan), [&Action::CollectGarbage]);
    assert_eq!(p.plan.steps[0].instance, None);
    assert!(!p.plan.steps[0].effect.needs_confirmation());
    let dry = p.dry_run();
    assert!(dry.dry_run && dry.decisions.is_empty());
}

#[test]
fn a_prune_plan_finishes_what_was_marked_drops_what_no_rule_keeps_and_clears_failures() {
    use crate::backup::catalog;
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let state = o.state().unwrap();
    for (id, at) in [
        ("b1", "2026-01-01T00:00:00Z"),
        ("b2", "2026-01-02T00:00:00Z"),
        ("b3", "2026-01-03T00:00:00Z"),
        ("b4", "2026-01-04T00:00:00Z"),
    ] {
        catalog::record_good(&state, &manifest_at("p", 1, id, at)).unwrap();
    }
    catalog::mark_pruning(&state, &["b1".to_string()]).unwrap();
    let at = "2026-01-05T00:00:00Z".parse().unwrap();
    catalog::begin(&state, "f1", "p", at, None).unwrap();
    catalog::fail(&state, "f1", "disk full").unwrap();
    let p = prune::plan(&o, &prune::PruneOptions { keep_last: Some(1) }).unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        actions(&p.plan),
        [
            &Action::FinishInterruptedPrune { ids: ids(&["b1"]) },
            &Action::RemoveBackups {
                ids: ids(&["b2", "b3"])
            },
            &Action::ClearEntries { ids: ids(&["f1"]) },
            &Action::CollectGarbage
        ]
    );
    // Planning changed nothing in the catalog.
    let listed: Vec<(String, String)> = catalog::list(&state, None)
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.status))
        .collect();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(catalog::pruning(&state).unwrap(), ids(&["b1"]));
}

#[test]
fn a_plan_reads_back_from_its_journal_json() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let rp = plan_restore(&o, &manifest("p", 1), "t", RestoreOptions::default()).unwrap();
    let json = rp.plan.to_json();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rp.plan);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["procedure"], "restore");
    assert_eq!(v["steps"][0]["action"]["do"], "take-safety-backup");
}

#[test]
fn the_guard_asks_once_per_guarded_instance_for_a_chain_and_a_no_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let plan = chain::plan(&o, "stop,log-nuke,db-nuke", "p,q,t").unwrap();
    let yes = Record(RefCell::new(Vec::new()), true);
    guard::check(&o.config, &plan, &yes).unwrap();
    let asked = yes.0.into_inner();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].instance, "p");
    assert_eq!(asked[0].consequences.len(), 2, "stop is not asked about");
    // q shares production's log file and database: asked once, for both.
    assert_eq!(asked[1].instance, "q");
    assert!(matches!(
        asked[1].exposure,
        Exposure::SharesProductionLogs { ref production, .. } if production == "p"
    ));
    assert_eq!(asked[1].consequences.len(), 2);
    let no = Record(RefCell::new(Vec::new()), false);
    let e = guard::check(&o.config, &plan, &no).unwrap_err();
    assert_eq!(
        e.to_string(),
        "refusing to log-nuke, db-nuke p: it is the production instance (this empties its logs; destroys its database)"
    );
    assert_eq!(no.0.into_inner().len(), 1, "stops asking at the first no");
}

#[test]
fn restore_on_production_is_refused_naming_the_restore_not_db_nuke() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ostler(tmp.path());
    let rp = plan_restore(&o, &manifest("p", 1), "p", RestoreOptions::default()).unwrap();
    let no = Record(RefCell::new(Vec::new()), false);
    let e = guard::check(&o.config, &rp.plan, &no).unwrap_err();
    assert_eq!(
        e.to_string(),
        "refusing to restore backup 3f2a1c over p: it is the production instance (this replaces its database and stores)"
    );
    let asked = no.0.into_inner();
    assert_eq!(asked[0].consequences.len(), 1, "{asked:?}");
    // Onto an instance of its own, nothing asks.
    let rp = plan_restore(&o, &manifest("p", 1), "t", RestoreOptions::default()).unwrap();
    guard::check(&o.config, &rp.plan, &Record(RefCell::new(vec![]), false)).unwrap();
    // A mirror names its source and target.
    let mp = plan_mirror(&o, "t", "q", true, RestoreOptions::default()).unwrap();
    let e = guard::check(&o.config, &mp.plan, &Record(RefCell::new(vec![]), false)).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "refusing to mirror a fresh backup of t onto q: its database is the production instance p's"
        ),
        "{e}"
    );
}
