//! The AMY postmortem, replayed on the sample service: backups taken while it serves,
//! a tag deleted through its API (and with it, by cascade, every link to its entries),
//! `find` reporting the window, `diff` showing the lost rows, and a partial restore
//! with references putting the tag and its links back, on all three engines.

use crate::databases::{Engine, EngineSvc};
use crate::support::*;

fn backup_id(svc: &Svc) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "backup", "gb-1"])).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn amy(engine: Engine) {
    let es = EngineSvc::new(engine, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    for i in 0..6 {
        let tags: &[&str] = if i % 2 == 0 {
            &["DC", "python"]
        } else {
            &["python"]
        };
        es.post_entry(0, &format!("author{i}"), tags);
    }
    let (_, before) = http_get(es.ports[0], "/tags/DC/entries").unwrap();
    let b1 = backup_id(svc);
    es.post_entry(0, "later", &["rust"]);
    let b2 = backup_id(svc);
    // The merge that went wrong: the tag goes, and every link to it with it.
    let r = ureq::delete(&format!("http://127.0.0.1:{}/tags/DC", es.ports[0])).call();
    assert!(r.is_ok());
    assert_eq!(http_get(es.ports[0], "/tags/DC/entries").unwrap().0, 404);
    es.post_entry(0, "after the loss", &["python"]);
    let b3 = backup_id(svc);
    let b4 = backup_id(svc);

    // find: the window, reading as little as it can.
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&[
        "--json",
        "find",
        "gb-1",
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
    ]))
    .unwrap();
    let counts: Vec<u64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 0, 0], "{v}");
    let t = &v["transitions"][0];
    assert_eq!(t["kind"], "vanished");
    assert_eq!(t["before_backup"], b2.as_str());
    assert_eq!(t["after_backup"], b3.as_str());
    assert!(
        v["skipped_unchanged"].as_u64().unwrap() >= 1,
        "an unchanged table must not be read: {v}"
    );
    let text = svc.ok(&[
        "--tz",
        "America/New_York",
        "find",
        "gb-1",
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
    ]);
    assert!(
        text.contains(&format!("VANISHED between backup {b2}"))
            && text.contains(&format!("and backup {b3}")),
        "{text}"
    );
    assert!(
        text.contains("-05:00") || text.contains("-04:00"),
        "times carry their offset: {text}"
    );
    // The links too.
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&[
        "--json",
        "find",
        "gb-1",
        "--table",
        "entry_tags",
        "--where",
        "tag_id = 1",
    ]))
    .unwrap();
    let counts: Vec<u64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 3, 0, 0], "{v}");

    // diff: the lost rows, by key.
    let v: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "diff", &b2, &b3])).unwrap();
    let table = |name: &str| {
        v["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                let n = t["table"].as_str().unwrap();
                n == name || n.ends_with(&format!(".{name}"))
            })
            .unwrap()
            .clone()
    };
    assert_eq!(table("tags")["removed"], 1);
    assert_eq!(table("entry_tags")["removed"], 3);
    assert_eq!(table("entries")["added"], 1, "{v}");
    let live: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "diff", &b4, "live"])).unwrap();
    assert!(
        live["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["added"] == 0 && t["removed"] == 0 && t["changed"] == 0),
        "{live}"
    );

    // Dry run: statements printed, nothing written.
    let out = svc.ok(&[
        "restore",
        "gb-1",
        "--from",
        &b2,
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
        "--with-references",
        "--dry-run",
    ]);
    assert!(out.contains("INSERT INTO") && out.contains("'DC'"), "{out}");
    assert_eq!(http_get(es.ports[0], "/tags/DC/entries").unwrap().0, 404);
    // Without references only the tag comes back.
    // With references: the tag and its three links, in one transaction, nothing else touched.
    let entries_before = es.rows(0, "entries");
    let out = svc.run(&[
        "restore",
        "gb-1",
        "--from",
        &b2,
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
        "--with-references",
        "--yes-really-production",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("restored ").count(), 4, "{err}");
    let (code, after) = http_get(es.ports[0], "/tags/DC/entries").unwrap();
    assert_eq!(code, 200);
    assert_eq!(after, before, "the tag lists its entries again");
    assert_eq!(
        es.rows(0, "entries"),
        entries_before,
        "entries were not touched"
    );
    // Running it again finds nothing to do and never overwrites.
    let out = svc.ok(&[
        "restore",
        "gb-1",
        "--from",
        &b2,
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
        "--with-references",
    ]);
    assert!(out.contains("nothing to restore"), "{out}");
    // A live row with the same key but other content is a conflict: refused.
    es.sql(0, "UPDATE tags SET name = 'dc-renamed' WHERE name = 'DC';");
    let err = svc.fails(&[
        "restore",
        "gb-1",
        "--from",
        &b2,
        "--table",
        "tags",
        "--where",
        "name = 'DC'",
    ]);
    assert!(
        err.contains("exist live with the same key") && err.contains("nothing written"),
        "{err}"
    );
    let journal = svc.ok(&["journal", "--instance", "gb-1"]);
    assert!(journal.contains("restore-rows gb-1"), "{journal}");
    let _ = b1;
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn amy_on_sqlite() {
    amy(Engine::Sqlite);
}

#[test]
fn amy_on_postgres() {
    amy(Engine::Postgres);
}

#[test]
fn amy_on_mariadb() {
    amy(Engine::Mysql);
}
