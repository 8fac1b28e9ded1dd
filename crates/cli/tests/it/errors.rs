//! How the important repository errors read, as the real binary prints them: what was
//! being done and where, then each cause once (`caused by:`), then the hint. The texts
//! are snapshots: change them on purpose only. Paths, backup ids, chunk ids,
//! repository ids and times differ per run and are replaced by `<svc>`, `<backup>`,
//! `<xx>/<chunk>`, `<repo-id>` and `<time>` before comparing.

use crate::backups::backup_id;
use crate::databases::{Engine, EngineSvc};
use crate::support::*;

/// A SQLite instance with one entry and one backup of it.
fn one_backup() -> (EngineSvc, String) {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    es.svc.ok(&["start", "gb-1"]);
    es.post_entry(0, "ann", &["x"]);
    let id = backup_id(&es.svc, &["gb-1"]);
    es.svc.ok(&["stop", "gb-1"]);
    (es, id)
}

/// The manifest of backup `id`, from the repository.
fn manifest(svc: &Svc, id: &str) -> serde_json::Value {
    let path = svc.path().join(format!("repo/files/backups/{id}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The first chunk of table `entries` in backup `id` (its path under `chunks/`), and
/// its file.
fn entries_chunk(svc: &Svc, id: &str) -> (String, std::path::PathBuf) {
    let m = manifest(svc, id);
    let table = m["database"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["spec"]["name"] == "entries")
        .unwrap_or_else(|| panic!("no table entries in {m}"));
    let chunk = table["base"]["chunks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let chunk = format!("{}/{chunk}", &chunk[..2]);
    let file = svc.path().join("repo/chunks").join(&chunk);
    (chunk, file)
}

/// The id in a repository's `config.json`.
fn repo_id(repo: &std::path::Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("config.json")).unwrap()).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Stderr and exit status of a failing command, with what varies per run replaced.
fn printed(out: std::process::Output, svc: &Svc, vary: &[(&str, &str)]) -> String {
    let mut text = format!(
        "exit {}\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr)
    );
    text = text.replace(&svc.path().display().to_string(), "<svc>");
    for (from, to) in vary {
        text = text.replace(from, to);
    }
    text
}

#[test]
fn a_missing_repository() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let old = repo_id(&svc.path().join("repo"));
    std::fs::rename(svc.path().join("repo"), svc.path().join("repo.away")).unwrap();
    let out = svc.run(&["verify", "--all"]);
    let text = printed(out, svc, &[(&id, "<backup>"), (&old[..12], "<repo-id>")]);
    insta::assert_snapshot!(text);
}

#[test]
fn a_repository_with_another_id() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let repo = svc.path().join("repo");
    let old = repo_id(&repo);
    std::fs::rename(&repo, svc.path().join("repo.old")).unwrap();
    let other = Svc::new(&format!(
        "{}[repository]\npath = \"{}\"\n",
        service_header(""),
        repo.display()
    ));
    other.ok(&["init"]);
    let new = repo_id(&repo);
    let out = svc.run(&["backup", "gb-1"]);
    let mut text = printed(
        out,
        svc,
        &[
            (&old[..12], "<old-repo-id>"),
            (&new[..12], "<new-repo-id>"),
            (&id, "<backup>"),
        ],
    );
    // "first seen at <path> on <time>": the time differs per run.
    if let Some(at) = text.find(" on 20") {
        let end = text[at..].find(')').map_or(text.len(), |e| at + e);
        text.replace_range(at..end, " on <time>");
    }
    insta::assert_snapshot!(text);
}

#[test]
fn an_unreadable_chunk_a_flipped_byte() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let (chunk, file) = entries_chunk(svc, &id);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let out = svc.run(&["export", &id, "export"]);
    let text = printed(
        out,
        svc,
        &[
            (&id, "<backup>"),
            (&chunk, "<xx>/<chunk>"),
            (&chunk[3..], "<chunk>"),
        ],
    );
    insta::assert_snapshot!(text);
    assert!(
        !svc.path().join("export").exists(),
        "half an export was left"
    );
}

/// Regression: the operating system's words were printed twice, once inside the
/// repository's message and again as its cause.
#[test]
fn permission_denied_on_a_chunk_prints_the_os_error_once() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let (chunk, file) = entries_chunk(svc, &id);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file: run ostler without the capabilities that allow it.
    let mut cmd = svc.cmd(&["export", &id, "export"]);
    if unsafe { libc::geteuid() } == 0 {
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .arg("--bounding-set=-dac_override,-dac_read_search")
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir(svc.path())
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        cmd = wrapped;
    }
    let out = cmd.output().unwrap();
    let text = printed(
        out,
        svc,
        &[
            (&id, "<backup>"),
            (&chunk, "<xx>/<chunk>"),
            (&chunk[3..], "<chunk>"),
        ],
    );
    assert_eq!(
        text.matches("Permission denied").count(),
        1,
        "the OS error once:\n{text}"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn an_unreadable_manifest() {
    let (es, id) = one_backup();
    let svc = &es.svc;
    let file = svc.path().join(format!("repo/files/backups/{id}.json"));
    std::fs::write(&file, b"{\"id\": \"cut off").unwrap();
    let text = printed(svc.run(&["verify", "--all"]), svc, &[(&id, "<backup>")]);
    insta::assert_snapshot!(text);
}
