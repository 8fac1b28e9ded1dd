//! Every destructive procedure is a plan first: `--dry-run` prints it (one line per
//! step with its check and undo; `--json` the plan object) and changes nothing, even
//! on production and without asking; the journal records the plan an operation ran.

use crate::backups::{backup_id, backups};
use crate::databases::{Engine, EngineSvc};
use crate::support::*;

/// Every file under the service dir but ostler's state database, with its size and
/// modification time: what a dry run must leave exactly as it was.
fn tree(svc: &Svc) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(svc.path())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            !name.starts_with("state.db") && !name.ends_with(".log")
        })
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.path().display().to_string(),
                m.len(),
                m.modified().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn journal(svc: &Svc) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&svc.ok(&["journal", "--json", "--limit", "1000"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn dry_runs_print_the_plan_and_change_nothing_even_on_production_without_asking() {
    let es = EngineSvc::new(Engine::Sqlite, 2, "[retention]\nkeep-last = 1\n");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "ada", &["x"]);
    let b1 = backup_id(svc, &["gb-1"]);
    es.post_entry(0, "bob", &["x"]);
    let b2 = backup_id(svc, &["gb-1"]);
    es.sql(0, "DELETE FROM entries WHERE author = 'ada';");
    let pid = svc.pid("gb-1");
    let (rows, files, catalog, entries) = (es.all_rows(0), tree(svc), backups(svc), journal(svc));

    let out = svc.ok(&["restore", "production", "--from", &b1, "--dry-run"]);
    for line in [
        "gb-1: stop it  -- check: no process of its group is left; undo: start it\n",
        "gb-1: take a safety backup of what it holds now  -- check: the backup is good in the catalog; undo: none\n",
        &format!("gb-1: load the database of backup {b1} into side database "),
        "gb-1: swap the restored ",
        "(guarded: replaces its database and stores)  -- check: the restore journal reaches `swapped`; undo: put the live data back",
        "gb-1: start it  -- check: http://127.0.0.1:",
        "/health answers 2xx; undo: stop it\n",
        &format!("dry run: restore backup {b1} over gb-1; nothing changed\n"),
    ] {
        assert!(out.contains(line), "{line}\n---\n{out}");
    }
    let plan: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "restore", "gb-1", "--from", &b1, "--dry-run"]))
            .unwrap();
    assert_eq!(plan["procedure"], "restore");
    assert_eq!(plan["backup"], b1.as_str());
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"]["do"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "stop",
            "take-safety-backup",
            "load-side-database",
            "restore-store",
            "swap-in",
            "remove-asides",
            "start"
        ]
    );
    assert_eq!(plan["steps"][4]["effect"], "replaces-data");
    assert_eq!(plan["steps"][4]["undo"]["undo"], "swap-back");

    let out = svc.ok(&["mirror", "production", "gb-2", "--dry-run"]);
    assert!(
        out.contains(&format!(
            "dry run: mirror gb-1's backup {b2} onto gb-2; nothing changed"
        )) && out.contains("gb-2: start it"),
        "{out}"
    );
    let out = svc.ok(&["mirror", "gb-2", "production", "--fresh", "--dry-run"]);
    assert!(
        out.contains("gb-2: take a fresh backup  -- check: the backup is good in the catalog")
            && out.contains("gb-1: load the database of the fresh backup into side database"),
        "{out}"
    );

    let out = svc.ok(&["prune", "--dry-run"]);
    assert!(
        out.contains(&format!(
            "remove backups 1 ({b1})  -- check: gone from the catalog and the repository"
        )) && out.contains("remove the chunks no remaining backup needs")
            && out.contains("dry run: would drop 1 backups; nothing changed"),
        "{out}"
    );

    let out = svc.ok(&["stop,db-nuke", "production", "--dry-run"]);
    assert!(
        out.contains("db-nuke gb-1  (guarded: destroys its database)  -- check: the dump is written, then the database is empty; undo: load the dump from ")
            && out.contains("dry run: stop,db-nuke on gb-1; nothing changed"),
        "{out}"
    );

    let out = svc.ok(&[
        "restore",
        "gb-1",
        "--from",
        &b2,
        "--table",
        "entries",
        "--where",
        "author = 'ada'",
        "--dry-run",
    ]);
    assert!(
        out.contains("INSERT INTO")
            && out.contains("-- gb-1: insert 1 rows into entries  (guarded: writes rows into its database)  -- check: the transaction commits"),
        "{out}"
    );

    // Nothing changed: the same process, rows, files, backups and journal.
    assert_eq!(svc.pid("gb-1"), pid);
    assert_eq!(es.all_rows(0), rows);
    assert_eq!(tree(svc), files);
    assert_eq!(backups(svc), catalog);
    assert_eq!(
        journal(svc).len(),
        entries.len(),
        "a dry run journals nothing"
    );
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn the_journal_records_the_plan_each_destructive_operation_ran() {
    let es = EngineSvc::new(Engine::Sqlite, 2, "");
    let svc = &es.svc;
    svc.ok(&["start,stop", "gb-2"]);
    let b = backup_id(svc, &["gb-2"]);
    svc.ok(&["restore", "gb-2", "--from", &b]);
    svc.ok(&["db-nuke", "gb-2"]);
    svc.ok(&["prune", "--keep-last", "1"]);
    let entries = journal(svc);
    let of = |op: &str| {
        entries
            .iter()
            .rev()
            .find(|e| e["operation"] == op)
            .unwrap_or_else(|| panic!("no {op} in {entries:?}"))
            .clone()
    };
    let restore = of("restore");
    assert_eq!(restore["plan"]["procedure"], "restore");
    assert_eq!(restore["plan"]["backup"], b.as_str());
    assert!(
        restore["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["action"]["do"] == "swap-in"),
        "{restore}"
    );
    let nuke = of("db-nuke");
    assert_eq!(nuke["plan"]["procedure"], "chain");
    assert_eq!(nuke["plan"]["steps"][0]["action"]["do"], "drop-database");
    assert_eq!(of("prune")["plan"]["procedure"], "prune");
    // A chain's --json carries fields, not sentences, and each key once.
    let out = svc.ok(&["--json", "start,stop", "gb-2"]);
    assert_eq!(out.matches("\"instance\"").count(), 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["result"], "started");
    assert!(v[0]["pid"].as_i64().unwrap() > 0, "{out}");
    assert!(v[0]["healthy_after_secs"].as_f64().is_some(), "{out}");
    assert_eq!(v[1]["result"], "stopped");
    assert_eq!(v[1]["how"], "terminated");
    // Shown in text too, one line per step.
    let text = svc.ok(&["journal"]);
    assert!(text.contains("    plan: restore backup "), "{text}");
}
