//! Full disks and private files, on real small tmpfs mounts: a disk that fills up
//! during a backup, a copy or a restore (the repository's, the state dir's, a copy
//! target's, a restore target's, TMPDIR's) gives exit 1 and a message naming the path
//! and the space, leaves nothing partial, and the next run on a larger disk works. And
//! everything ostler writes that holds data is owner-only.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it each test says why it did
//! nothing and passes, as the engine tests do without PostgreSQL.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::databases::{Engine, EngineSvc};
use crate::support::*;

/// A tmpfs mounted for one test; unmounted on drop. Declare it after the `Svc` whose
/// directory holds it, so it is unmounted before that directory is removed.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`) on `dir`, created if missing; None,
    /// with the reason printed, where mounting is not permitted.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipping: cannot mount a tmpfs on {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount: {e}");
                None
            }
        }
    }

    /// The same disk, made larger (or smaller) in place.
    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remounting {} with size={size}", self.dir.display());
    }

    /// Fills the disk with `dir/filler` until at most `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        #[allow(clippy::useless_conversion)] // u32 on 32-bit targets
        let free = || {
            let s = nix::sys::statvfs::statvfs(&self.dir).unwrap();
            u64::from(s.blocks_available()) * u64::from(s.fragment_size())
        };
        let block = vec![0x5au8; 4096];
        while free() > leave {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        f.sync_all().ok();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Every file and directory under `dir` (not `dir` itself).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

fn backups(svc: &Svc) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&svc.ok(&["backups", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Exit status, stderr.
fn run_status(cmd: &mut Command) -> (Option<i32>, Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A SQLite guestbook with `rows` rows of incompressible text (about 100 bytes each).
fn sqlite_with_rows(rows: usize, header_extra: &str) -> EngineSvc {
    let es = EngineSvc::new(Engine::Sqlite, 1, header_extra);
    es.svc.ok(&["start,stop", "gb-1"]); // let guestbook create its schema
    es.sql(
        0,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO entries (author, message, created_at) SELECT 'author ' || i, hex(randomblob(40)), '2026-01-01T00:00:00Z' FROM n;"
        ),
    );
    es
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_not_death_by_sigpipe() {
    let svc = Svc::new(&format!(
        "{}{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), "")
    ));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (code, signal, stderr) = run_status(
        svc.cmd(&["config", "show"])
            .stdout(writer)
            .stderr(Stdio::piped()),
    );
    assert_eq!(signal, None, "killed by a signal: {stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "", "a closed stdout is quiet");
}

#[test]
fn a_full_repository_disk_fails_the_backup_with_the_path_not_sigpipe() {
    // Far more than fits, so the disk fills while rows are still being piped in.
    let es = sqlite_with_rows(150_000, "");
    let svc = &es.svc;
    let repo = svc.path().join("repo");
    let Some(disk) = Tmpfs::mount(&repo, "1m") else {
        return;
    };
    let (code, signal, stderr) = run_status(&mut svc.cmd(&["backup", "gb-1"]));
    assert_eq!(signal, None, "killed by a signal (SIGPIPE?): {stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains(&repo.display().to_string()), "{stderr}");
    assert!(stderr.contains("bytes to write"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let list = backups(svc);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "failed");
    let error = list[0]["error"].as_str().unwrap();
    assert!(error.contains("no space left on device"), "{error}");
    assert!(error.contains(&repo.display().to_string()), "{error}");
    assert_eq!(tree(&repo.join("tmp")), Vec::<PathBuf>::new());
    assert_eq!(tree(&repo.join("files")), Vec::<PathBuf>::new());

    disk.resize("64m");
    svc.ok(&["backup", "gb-1"]);
    let out = svc.ok(&["verify", "--all"]);
    assert!(out.contains(": ok"), "{out}");
    assert_eq!(backups(svc).last().unwrap()["status"], "good");
}

/// A full state dir exits 1 (a full disk is no internal error) naming the state
/// database, whether the disk is full before the backup (the state database cannot be
/// opened) or fills during it (the catalog's writes meet it: chaos finding F9, which
/// said only "backup catalog: database or disk is full"). Each room left fails at
/// another write, or not at all; nothing of a failed attempt looks good, and the next
/// run on a disk with room works.
#[test]
fn a_full_state_dir_exits_1_naming_the_state_database() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    let state = svc.path().join(".ostler");
    let Some(disk) = Tmpfs::mount(&state, "2m") else {
        return;
    };
    svc.ok(&["start,stop", "gb-1"]);
    for leave in [0u64, 8, 24, 40, 56, 72, 96].map(|k| k * 1024) {
        let goods = good_backups(svc);
        let filler = disk.fill(leave);
        let (code, signal, stderr) = run_status(&mut svc.cmd(&["backup", "gb-1"]));
        assert_eq!(signal, None, "{leave} B left: {stderr}");
        if leave == 0 || code != Some(0) {
            assert_eq!(code, Some(1), "{leave} B left: {stderr}");
            assert!(
                stderr.contains("no space left on device")
                    && stderr.contains(&state.join("state.db").display().to_string()),
                "{leave} B left: {stderr}"
            );
        }
        std::fs::remove_file(filler).unwrap();
        if code != Some(0) {
            assert_eq!(good_backups(svc), goods, "{leave} B left");
        }
        svc.ok(&["backup", "gb-1"]);
        assert_eq!(backups(svc).last().unwrap()["status"], "good");
    }
}

fn good_backups(svc: &Svc) -> usize {
    backups(svc)
        .iter()
        .filter(|b| b["status"] == "good")
        .count()
}

#[test]
fn a_full_copy_target_fails_the_copy_with_the_path_and_leaves_no_partial_file() {
    let es = sqlite_with_rows(40_000, "");
    let svc = &es.svc;
    let config = svc.path().join("ostler.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[repository]\npath = \"repo\"\n",
        "[repository]\npath = \"repo\"\n\n[[repository.copies]]\nname = \"offsite\"\nkind = \"dir\"\npath = \"offsite\"\n",
    );
    std::fs::write(&config, text).unwrap();
    svc.ok(&["backup", "gb-1"]);
    let offsite = svc.path().join("offsite");
    let Some(disk) = Tmpfs::mount(&offsite, "512k") else {
        return;
    };
    let (code, signal, stderr) = run_status(&mut svc.cmd(&["copy"]));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains(&offsite.display().to_string()), "{stderr}");
    assert!(stderr.contains("bytes to write"), "{stderr}");
    let partial: Vec<_> = tree(&offsite)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".ostler-tmp-"))
        .collect();
    assert_eq!(partial, Vec::<PathBuf>::new());
    assert!(
        !offsite.join("files/backups").exists(),
        "no manifest without its chunks"
    );

    disk.resize("64m");
    let out = svc.ok(&["copy"]);
    assert!(out.contains("offsite: sent"), "{out}");
    let listing = svc.ok(&["backups", "--where", "offsite"]);
    assert!(listing.contains(" yes"), "{listing}");
}

/// A guestbook whose database and uploads store live on a tmpfs of `size` at
/// `<svc>/small`, started once so it has its schema.
fn on_a_small_disk(size: &str) -> Option<(Svc, Tmpfs)> {
    let svc = Svc::new("");
    let small = svc.path().join("small");
    let text = format!(
        "{}[repository]\npath = \"repo\"\n{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), "")
            .replace(
                "path = \"data.db\"",
                &format!("path = \"{}/data.db\"", small.display())
            )
            .replace(
                "path = \"uploads\"",
                &format!("path = \"{}/uploads\"", small.display())
            )
            .replace(
                "--store uploads",
                &format!("--store {}/uploads", small.display())
            )
    );
    std::fs::write(svc.path().join("ostler.toml"), text).unwrap();
    let disk = Tmpfs::mount(&small, size)?;
    svc.ok(&["build,start,stop", "gb-1"]);
    std::fs::create_dir_all(small.join("uploads")).unwrap();
    Some((svc, disk))
}

fn backup_id(svc: &Svc) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&svc.ok(&["--json", "backup", "gb-1"])).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Paths under `dir` that are restore temporaries.
fn restore_temporaries(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("ostler-restore"))
        .collect()
}

#[test]
fn a_full_restore_target_fails_the_store_restore_naming_the_path_and_leaves_no_temporaries() {
    let Some((svc, disk)) = on_a_small_disk("2m") else {
        return;
    };
    let small = disk.dir.clone();
    let uploads = small.join("uploads");
    let original: Vec<u8> = (0..400_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(uploads.join("big.bin"), &original).unwrap();
    let id = backup_id(&svc);
    std::fs::write(uploads.join("big.bin"), b"changed since").unwrap();
    let filler = disk.fill(100 * 1024);

    let (code, signal, stderr) = run_status(&mut svc.cmd(&["restore", "gb-1", "--from", &id]));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    // The restore writes the store beside the live one (all or nothing), so the path
    // named is the side directory's.
    assert!(
        stderr.contains(
            &small
                .join("uploads.ostler-restore/big.bin")
                .display()
                .to_string()
        ),
        "{stderr}"
    );
    assert!(stderr.contains("400000 bytes to write"), "{stderr}");
    assert_eq!(restore_temporaries(&small), Vec::<PathBuf>::new());
    assert!(
        std::fs::read(uploads.join("big.bin")).unwrap() == b"changed since",
        "a failed restore leaves the store file as it was"
    );

    std::fs::remove_file(filler).unwrap();
    svc.ok(&["restore", "gb-1", "--from", &id]);
    assert!(
        std::fs::read(uploads.join("big.bin")).unwrap() == original,
        "the restore on a disk with room puts the backup back"
    );
}

#[test]
fn a_full_restore_target_fails_the_database_restore_and_removes_the_half_built_file() {
    let Some((svc, disk)) = on_a_small_disk("16m") else {
        return;
    };
    let small = disk.dir.clone();
    let db = small.join("data.db");
    let sql = |sql: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
         INSERT INTO entries (author, message, created_at) SELECT 'author ' || i, hex(randomblob(40)), '2026-01-01T00:00:00Z' FROM n;");
    let full = sql("SELECT count(*) FROM entries");
    let id = backup_id(&svc);
    sql("DELETE FROM entries WHERE id % 2 = 0; VACUUM;");
    let left = sql("SELECT count(*) FROM entries");
    let filler = disk.fill(1 << 20);

    let (code, signal, stderr) = run_status(&mut svc.cmd(&["restore", "gb-1", "--from", &id]));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains(&small.display().to_string()), "{stderr}");
    assert_eq!(restore_temporaries(&small), Vec::<PathBuf>::new());
    assert_eq!(
        sql("SELECT count(*) FROM entries"),
        left,
        "the database is as it was"
    );

    std::fs::remove_file(filler).unwrap();
    svc.ok(&["restore", "gb-1", "--from", &id]);
    assert_eq!(sql("SELECT count(*) FROM entries"), full);
}

#[test]
fn an_export_onto_a_full_disk_fails_naming_the_path_and_leaves_nothing() {
    let es = sqlite_with_rows(40_000, "");
    let svc = &es.svc;
    let id = backup_id(svc);
    let export = svc.path().join("export");
    let Some(disk) = Tmpfs::mount(&export, "1m") else {
        return;
    };
    let (code, signal, stderr) = run_status(&mut svc.cmd(&["export", &id, "export"]));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    // The path as the operator gave it.
    assert!(stderr.contains("export/database.sqlite"), "{stderr}");
    assert_eq!(tree(&export), Vec::<PathBuf>::new(), "no half export");

    disk.resize("64m");
    svc.ok(&["export", &id, "export"]);
    assert!(export.join("database.sqlite").is_file());
    assert!(export.join("README.txt").is_file());
}

#[test]
fn a_full_tmpdir_fails_the_sqlite_snapshot_naming_the_copy() {
    let es = sqlite_with_rows(40_000, "");
    let svc = &es.svc;
    let tmp = svc.path().join("tmp");
    let Some(disk) = Tmpfs::mount(&tmp, "1m") else {
        return;
    };
    let (code, signal, stderr) = run_status(svc.cmd(&["backup", "gb-1"]).env("TMPDIR", &tmp));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert!(stderr.contains(&tmp.display().to_string()), "{stderr}");
    assert_eq!(
        tree(&tmp),
        Vec::<PathBuf>::new(),
        "the snapshot copy is removed"
    );
    let list = backups(svc);
    assert_eq!(list.last().unwrap()["status"], "failed");

    disk.resize("64m");
    let out = svc
        .cmd(&["backup", "gb-1"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(backups(svc).last().unwrap()["status"], "good");
}

#[test]
fn copies_exports_safety_dumps_and_the_state_are_owner_only() {
    let svc = Svc::new(&format!(
        "{}[repository]\npath = \"repo\"\n\n[[repository.copies]]\nname = \"offsite\"\nkind = \"dir\"\npath = \"offsite\"\n{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), "")
    ));
    // As an operator's shell would have it: files readable by everyone unless said otherwise.
    let run = |args: &[&str]| {
        let mut cmd = svc.cmd(args);
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "ostler {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["build,start,stop", "gb-1"]);
    // As an older ostler left it: the next run narrows it.
    let state_db = svc.path().join(".ostler/state.db");
    std::fs::set_permissions(&state_db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let uploads = svc.path().join("instances/gb-1/uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.txt"), "a").unwrap();
    std::fs::set_permissions(
        uploads.join("a.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let id: serde_json::Value = serde_json::from_str(&run(&["--json", "backup", "gb-1"])).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    run(&["copy"]);
    run(&["export", &id, "export"]);
    run(&["restore", "gb-1", "--from", &id]);
    run(&["db-nuke", "gb-1"]);

    let state = svc.path().join(".ostler");
    let mut private = vec![state.clone(), state.join("restores")];
    for dir in ["offsite", "export", "repo"] {
        private.push(svc.path().join(dir));
        private.extend(tree(&svc.path().join(dir)));
    }
    let safety = state.join("safety");
    private.push(safety.clone());
    let dumps = tree(&safety);
    assert_eq!(dumps.len(), 1, "one safety dump: {dumps:?}");
    private.extend(dumps);
    private.push(state.join("state.db"));
    for p in &private {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        // Store trees in an export keep the modes the backup recorded (so `rsync -a`
        // puts them back as they were); the export's own directories keep others out.
        let stores = svc.path().join("export/stores");
        if p.starts_with(&stores) && p != &stores {
            continue;
        }
        assert_eq!(mode(p), want, "{} is {:o}", p.display(), mode(p));
    }
    // The instance's own files are the service's business.
    assert_eq!(mode(&uploads.join("a.txt")), 0o644);
    let exported = svc.path().join("export/stores/uploads/a.txt");
    assert_eq!(mode(&exported), 0o644, "as recorded in the backup");
}

#[test]
fn a_restore_keeps_the_mode_of_the_instances_database_file() {
    let svc = Svc::new(&format!(
        "{}[repository]\npath = \"repo\"\n{}",
        service_header(""),
        guestbook_instance("gb-1", free_port(), "")
    ));
    svc.ok(&["build,start,stop", "gb-1"]);
    let db = svc.path().join("instances/gb-1/data.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let id = backup_id(&svc);
    let mut cmd = svc.cmd(&["restore", "gb-1", "--from", &id]);
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&db), 0o640, "the instance's file keeps its mode");
}

/// Chaos finding F7: with the store directory itself a mount point, every restore
/// built the whole side directory and then failed "Device or resource busy" renaming
/// the mount. It refuses up front now, saying why and what to do, and changes nothing.
#[test]
fn a_store_that_is_a_mount_point_is_refused_up_front_with_a_hint() {
    let es = EngineSvc::new(Engine::Sqlite, 1, "");
    let svc = &es.svc;
    svc.ok(&["start,stop", "gb-1"]);
    let uploads = svc.path().join("instances/gb-1/uploads");
    let Some(_disk) = Tmpfs::mount(&uploads, "4m") else {
        return;
    };
    std::fs::write(uploads.join("a.txt"), b"in the backup").unwrap();
    let id = backup_id(svc);
    std::fs::write(uploads.join("a.txt"), b"live").unwrap();
    let (code, signal, stderr) =
        run_status(&mut svc.cmd(&["restore", "gb-1", "--from", &id, "--yes-really-production"]));
    assert_eq!(signal, None, "{stderr}");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is a mount point", uploads.display()))
            && stderr.contains("hint: mount the volume one level up"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(uploads.join("a.txt")).unwrap(), b"live");
    assert_eq!(restore_temporaries(svc.path()), Vec::<PathBuf>::new());
}
