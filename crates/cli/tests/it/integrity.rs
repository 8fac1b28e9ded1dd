//! Repository integrity as a user meets it: a damaged chunk never blocks new backups
//! and never ends up in one, the catalog and the repository agree after deletions
//! and killed prunes, a missing repository is reported instead of replaced, and
//! neither backup ids nor prune do anything the user did not ask for.

use crate::backups::{backup_id, backups, put_upload};
use crate::databases::{Engine, EngineSvc};
use crate::support::*;

/// A started-and-stopped SQLite instance (schema made) with one backup.
fn one_backup() -> (EngineSvc, String) {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    es.svc.ok(&["start,stop", "gb-1"]);
    let id = backup_id(&es.svc, &["gb-1"]);
    (es, id)
}

/// The manifest of backup `id`, from the repository.
fn manifest(svc: &Svc, id: &str) -> serde_json::Value {
    let path = svc.path().join(format!("repo/files/backups/{id}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Where chunk `id` lives in the service's repository.
fn chunk_file(svc: &Svc, id: &str) -> std::path::PathBuf {
    svc.path().join(format!("repo/chunks/{}/{id}", &id[..2]))
}

/// Flips one bit in the middle of a file.
fn flip_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// The first chunk of store `uploads`' listing in backup `id`.
fn listing_chunk(svc: &Svc, id: &str) -> String {
    manifest(svc, id)["stores"][0]["listing"]["chunks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_damaged_store_listing_never_blocks_later_backups_or_restores() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "ann", &["x"]);
    put_upload(es.ports[0], "a.txt", "kept a");
    let a = backup_id(svc, &["gb-1"]);
    flip_byte(&chunk_file(svc, &listing_chunk(svc, &a)));
    // Regression: the next backup read the parent's listing with `?` and failed, and
    // so did every restore (its safety backup reads the same listing).
    let out = svc.run(&["--json", "backup", "gb-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: store uploads: the listing of backup {a} is unreadable"
        )) && stderr.contains("every file was stored afresh"),
        "{stderr}"
    );
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(b["warnings"][0]["kind"], "store-listing-unreadable", "{b}");
    let b = b["id"].as_str().unwrap().to_string();
    put_upload(es.ports[0], "a.txt", "changed a");
    svc.ok(&["restore", "gb-1", "--from", &b, "--yes-really-production"]);
    let uploads = svc.path().join("instances/gb-1/uploads");
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        "kept a"
    );
    // The backup after it builds on the sound one and has nothing to warn about.
    let out = svc.run(&["backup", "gb-1"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn backup_id_prefixes_treat_percent_and_underscore_as_themselves() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    // Regression: `LIKE ?1 || '%'` made `%` and `_` wildcards, so `%` named every backup.
    for pattern in [
        "%",
        "_",
        &format!("{}_", &id[..2]),
        &format!("{}%", &id[..1]),
    ] {
        let err = svc.fails(&["verify", pattern]);
        assert!(
            err.contains(&format!("no backup with id `{pattern}`")),
            "{pattern}: {err}"
        );
    }
    svc.ok(&["verify", &id[..3]]);
}

#[test]
fn prune_without_a_retention_section_refuses_and_keep_last_prunes() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start,stop", "gb-1"]);
    let ids: Vec<String> = (0..3).map(|_| backup_id(svc, &["gb-1"])).collect();
    // Regression: with no [retention], prune kept only the newest backup, unasked.
    for args in [&["prune"][..], &["prune", "--dry-run"][..]] {
        let out = svc.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no [retention] section"), "{err}");
        assert!(err.contains("--keep-last N"), "{err}");
    }
    assert_eq!(backups(svc).len(), 3, "a refused prune changes nothing");
    let out = svc.ok(&["prune", "--keep-last", "2"]);
    assert!(out.contains("dropped 1 backups"), "{out}");
    let left: Vec<String> = backups(svc)
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ids[1..].to_vec());
    svc.ok(&["verify", "--all"]);
}

#[test]
fn a_missing_repository_is_an_error_not_a_new_one() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let repo = svc.path().join("repo");
    // An unmounted disk: the directory is gone (or empty).
    std::fs::rename(&repo, svc.path().join("repo.away")).unwrap();
    for args in [
        &["verify", "--all"][..],
        &["verify", &id][..],
        &["backup", "gb-1"][..],
    ] {
        let err = svc.fails(args);
        assert!(
            err.contains(&format!(
                "the backup repository {} is missing",
                repo.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("ostler init"), "{err}");
        assert!(!repo.exists(), "{args:?} created a repository");
    }
    // `ostler init` will not paper over it either: the state knows the old repository.
    let err = svc.fails(&["init"]);
    assert!(err.contains("which is missing"), "{err}");
    assert!(!repo.exists());
    std::fs::rename(svc.path().join("repo.away"), &repo).unwrap();
    svc.ok(&["verify", "--all"]);

    // A deleted config.json: refused, never a new id.
    std::fs::remove_file(repo.join("config.json")).unwrap();
    let err = svc.fails(&["backup", "gb-1"]);
    assert!(err.contains("it has no config.json"), "{err}");
    assert!(!repo.join("config.json").exists());
    let err = svc.fails(&["init", "--adopt"]);
    assert!(err.contains("is not an empty directory"), "{err}");
}

#[test]
fn a_replaced_repository_is_reported_until_adopted() {
    let (es, _) = one_backup();
    let svc = &es.svc;
    let repo = svc.path().join("repo");
    std::fs::rename(&repo, svc.path().join("repo.old")).unwrap();
    // Someone makes a new repository at the same path by other means.
    let other = Svc::new(&format!(
        "{}[repository]\npath = \"{}\"\n",
        service_header(""),
        repo.display()
    ));
    let out = other.ok(&["init"]);
    assert!(out.contains("created repository"), "{out}");
    let err = svc.fails(&["backup", "gb-1"]);
    assert!(err.contains("is not the one this service uses"), "{err}");
    assert!(err.contains("ostler init --adopt"), "{err}");
    let out = svc.ok(&["init", "--adopt"]);
    assert!(out.contains("is this service's repository"), "{out}");
    svc.ok(&["backup", "gb-1"]);
}

#[test]
fn the_first_backup_creates_the_repository_and_init_makes_one_explicitly() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    let repo = svc.path().join("repo");
    // Nothing to verify before there is a repository: an error, and none is made.
    svc.fails(&["verify", "--all"]);
    assert!(!repo.exists());
    svc.ok(&["start,stop", "gb-1"]);
    svc.ok(&["backup", "gb-1"]);
    assert!(repo.join("config.json").exists());
    let out = svc.ok(&["init"]);
    assert!(out.contains("is this service's repository"), "{out}");

    let fresh = EngineSvc::new(Engine::Sqlite, 1, "");
    let out = fresh.svc.ok(&["init"]);
    assert!(out.contains("created repository"), "{out}");
    fresh.svc.ok(&["verify", "--all"]);
}

/// The chunk holding `content`, a store file small enough (< 64 KiB) to be one chunk.
fn file_chunk(content: &str) -> String {
    blake3::hash(content.as_bytes()).to_hex().to_string()
}

#[test]
fn a_backup_never_reuses_a_chunk_verify_found_damaged_and_verify_says_what_healed() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    let content = "the upload whose only copy gets damaged\n".repeat(50);
    put_upload(es.ports[0], "a.txt", &content);
    let a = backup_id(svc, &["gb-1"]);
    flip_byte(&chunk_file(svc, &file_chunk(&content)));
    let out = svc.run(&["verify", "--all"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("still damaged: {a}")), "{text}");
    // Regression: the file is unchanged (size and mtime), so the next backup reused its
    // stream, named the damaged chunk, and was "good" but unrestorable.
    let out = svc.run(&["backup", "gb-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 damaged chunks were written afresh from live data"),
        "{stderr}"
    );
    let text = svc.ok(&["verify", "--all"]);
    assert!(text.contains(&format!("healed: {a}")), "{text}");
    assert!(!text.contains("still damaged"), "{text}");
    put_upload(es.ports[0], "a.txt", "changed");
    svc.ok(&["restore", "gb-1", "--from", &a, "--yes-really-production"]);
    let uploads = svc.path().join("instances/gb-1/uploads");
    assert_eq!(
        std::fs::read_to_string(uploads.join("a.txt")).unwrap(),
        content
    );
    svc.ok(&["stop", "gb-1"]);
}

#[test]
fn a_chunk_with_a_damaged_header_is_written_afresh_by_the_next_backup() {
    let (es, a) = one_backup();
    let svc = &es.svc;
    // The schema is written again by every backup: the write-time check sees its chunk.
    let schema = manifest(svc, &a)["database"]["schema"][0]["stream"]["chunks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = chunk_file(svc, &schema);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..4].copy_from_slice(b"XXXX");
    std::fs::write(&path, bytes).unwrap();
    // No verify in between: the cheap check at write time is what catches it.
    let out = svc.run(&["backup", "gb-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("written afresh"), "{stderr}");
    let text = svc.ok(&["verify", "--all"]);
    assert!(text.contains(": ok"), "{text}");
}

#[test]
fn a_table_chain_whose_chunk_is_damaged_is_rebased_from_live_data() {
    let es = crate::backups::big_sqlite(2_000);
    let svc = &es.svc;
    let a = backup_id(svc, &["gb-1"]);
    let base = |id: &str| {
        let m = manifest(svc, id);
        m["database"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["spec"]["name"] == "entries")
            .unwrap()
            .clone()
    };
    let a_base = base(&a);
    flip_byte(&chunk_file(
        svc,
        a_base["base"]["chunks"][0]["id"].as_str().unwrap(),
    ));
    // Every row changes, so no chunk of the new base has the damaged one's content.
    es.sql(0, "UPDATE entries SET message = message || ' edited';");
    let out = svc.run(&["--json", "backup", "gb-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "table entries: the chain of backup {a} is unreadable"
        )),
        "{stderr}"
    );
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = b["id"].as_str().unwrap().to_string();
    let b_base = base(&b);
    assert_eq!(b_base["deltas"].as_array().unwrap().len(), 0, "{b_base}");
    assert_ne!(b_base["base"], a_base["base"]);
    svc.ok(&["verify", &b]);
    let out = svc.run(&["verify", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("still damaged: {a}\n")), "{text}");
}

#[test]
fn verify_all_reports_a_good_backup_whose_manifest_was_deleted() {
    let (es, a) = one_backup();
    let svc = &es.svc;
    let b = backup_id(svc, &["gb-1"]);
    let file = svc.path().join(format!("repo/files/backups/{a}.json"));
    std::fs::remove_file(&file).unwrap();
    // Regression: verify --all read only the repository's manifests and said "ok".
    verify_reports_damaged_manifest(
        svc,
        &a,
        &format!(
            "the catalog says backup {a} is good, but its manifest {} is missing",
            file.display()
        ),
    );
    // Prune keeps the chunks the catalog's backup needs (it used to free them).
    svc.ok(&["prune", "--keep-last", "5"]);
    let text = String::from_utf8_lossy(&svc.run(&["verify", "--all"]).stdout).into_owned();
    assert!(text.contains("1 problems"), "{text}");
    svc.ok(&["verify", &b]);
}

/// `verify --all` and `verify ID` both fail, say `problem` and call backup `id` damaged.
fn verify_reports_damaged_manifest(svc: &Svc, id: &str, problem: &str) {
    for args in [&["verify", "--all"][..], &["verify", id][..]] {
        let out = svc.run(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains(problem), "{args:?}: {text}");
        assert!(text.contains(&format!("still damaged: {id}\n")), "{text}");
    }
}

/// Chaos finding F8: a flipped bit that turned `"deltas"` into `"dgltas"` left a
/// manifest that still parses (the field defaults to empty), and verify called it sound.
#[test]
fn verify_reports_a_manifest_whose_damage_still_parses() {
    let (es, a) = one_backup();
    let svc = &es.svc;
    let file = svc.path().join(format!("repo/files/backups/{a}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"deltas\""), "{text}");
    std::fs::write(&file, text.replacen("\"deltas\"", "\"dgltas\"", 1)).unwrap();
    verify_reports_damaged_manifest(
        svc,
        &a,
        &format!(
            "the manifest {} of backup {a} differs from the catalog's copy",
            file.display()
        ),
    );
    // Restores read the catalog's copy, so the backup still restores whole.
    svc.ok(&["restore", "gb-1", "--from", &a, "--yes-really-production"]);
}

/// Catalog statuses, in id order.
fn statuses(svc: &Svc) -> Vec<String> {
    backups(svc)
        .iter()
        .map(|b| b["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_prune_killed_after_marking_is_finished_by_the_next_prune_verify_or_backup() {
    for finisher in [
        &["verify", "--all"][..],
        &["prune", "--keep-last", "1"][..],
        &["backup", "gb-1"][..],
    ] {
        let (es, _) = one_backup();
        let svc = &es.svc;
        let ids: Vec<String> = (0..3).map(|_| backup_id(svc, &["gb-1"])).collect();
        let mut child = svc
            .cmd(&["prune", "--keep-last", "1"])
            .env("OSTLER_PAUSE_AT", "prune-marked")
            .spawn()
            .unwrap();
        wait_for(std::time::Duration::from_secs(30), "prune to mark", || {
            statuses(svc).iter().filter(|s| *s == "pruning").count() == 3
        });
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        // Nothing marked is ever used: restore picks the one good backup.
        assert_eq!(statuses(svc).iter().filter(|s| *s == "good").count(), 1);
        let out = svc.ok(finisher);
        if finisher[0] != "backup" {
            assert!(out.contains("finished removing"), "{finisher:?}: {out}");
        }
        let left = backups(svc);
        assert!(
            left.iter().all(|b| b["status"] == "good"),
            "{finisher:?}: {left:?}"
        );
        let names: Vec<String> = std::fs::read_dir(svc.path().join("repo/files/backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), left.len(), "{names:?} vs {left:?}");
        assert!(names.contains(&format!("{}.json", ids[2])));
        svc.ok(&["verify", "--all"]);
    }
}

#[test]
fn verify_beside_prune_never_reports_damage_that_is_not_there() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start", "gb-1"]);
    for round in 0..3 {
        for i in 0..5 {
            es.post_entry(0, &format!("r{round}i{i}"), &["t"]);
            put_upload(
                es.ports[0],
                &format!("f{round}-{i}.bin"),
                &format!("{round} {i} ").repeat(20_000),
            );
            backup_id(svc, &["gb-1"]);
        }
        let piped = |args: &[&str]| {
            svc.cmd(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let verify = piped(&["verify", "--all"]);
        let prune = piped(&["prune", "--keep-last", "1"]);
        let verify = verify.wait_with_output().unwrap();
        let prune = prune.wait_with_output().unwrap();
        assert!(prune.status.success(), "round {round}: prune failed");
        assert!(
            verify.status.success(),
            "round {round}: verify beside prune found problems:\n{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    svc.ok(&["stop", "gb-1"]);
}
