//! One chaos trial's world: a guestbook instance with rows and uploads that change from
//! one generation to the next, the backups taken of it with what each one held (the
//! truth a restore must give back), ostler run as a real child process that can be
//! SIGKILLed at any moment, and tmpfs mounts for full disks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::format;
use crate::databases::{Engine, EngineSvc};

/// What an instance holds: every row of every table, and every store file's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub rows: Vec<Vec<String>>,
    pub files: BTreeMap<String, String>,
}

impl Truth {
    /// How `self` (what is there) differs from `want`, in a line.
    pub fn differences(&self, want: &Truth) -> String {
        let mut out = Vec::new();
        for (i, t) in crate::databases::TABLES.iter().enumerate() {
            if self.rows[i] != want.rows[i] {
                out.push(format!(
                    "table {t}: {} rows, expected {}",
                    self.rows[i].len(),
                    want.rows[i].len()
                ));
            }
        }
        let extra: Vec<&String> = self
            .files
            .keys()
            .filter(|k| !want.files.contains_key(*k))
            .collect();
        let missing: Vec<&String> = want
            .files
            .keys()
            .filter(|k| !self.files.contains_key(*k))
            .collect();
        let changed: Vec<&String> = self
            .files
            .iter()
            .filter(|(k, h)| want.files.get(*k).is_some_and(|w| w != *h))
            .map(|(k, _)| k)
            .collect();
        if !extra.is_empty() {
            out.push(format!("extra files {extra:?}"));
        }
        if !missing.is_empty() {
            out.push(format!("missing files {missing:?}"));
        }
        if !changed.is_empty() {
            out.push(format!("changed files {changed:?}"));
        }
        out.join("; ")
    }

    /// Whether the database part equals `other`'s (to tell a mix from a whole).
    pub fn rows_equal(&self, other: &Truth) -> bool {
        self.rows == other.rows
    }
}

/// A tmpfs mounted for a trial, unmounted when dropped.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs on {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN), found by trying.
    pub fn permitted() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        Tmpfs::mount(dir.path(), 1 << 20).map(drop)
    }

    pub fn resize(&self, bytes: u64) -> Result<(), String> {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "remount {} to {bytes} bytes: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Puts directory `dir`, with what is in it, on a new tmpfs of `bytes`.
    pub fn move_onto(dir: &Path, bytes: u64) -> Result<Tmpfs, String> {
        let files: Vec<(PathBuf, Vec<u8>)> = walk(dir)
            .into_iter()
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let disk = Tmpfs::mount(dir, bytes)?;
        for (p, b) in files {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
        Ok(disk)
    }

    /// Bytes in use (statvfs).
    pub fn used(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.dir).unwrap();
        (s.blocks() - s.blocks_free()) * s.fragment_size()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// How a SIGKILL landed.
#[derive(Debug, Clone)]
pub struct Kill {
    /// The process was still running when killed (else it had finished first).
    pub landed: bool,
    pub after: Duration,
    /// Its output, if it finished before the kill.
    pub output: Option<Output>,
}

pub struct Lab {
    // Declared first so they are unmounted before the service directory is removed.
    pub mounts: Vec<Tmpfs>,
    pub es: EngineSvc,
    pub rng: StdRng,
    /// Backup id -> what the instance held when it was taken.
    pub truths: BTreeMap<String, Truth>,
    /// Seconds the last plain backup took (the scale for kill moments).
    pub backup_secs: f64,
    /// The uploads store's path in the instance's directory.
    store: String,
    generation: u32,
    next_entry: i64,
    entries: Vec<i64>,
    tags: Vec<i64>,
}

pub type Check<T = ()> = Result<T, String>;

impl Lab {
    /// A service with instance gb-1 on `engine`, its config passed through `edit`,
    /// its schema created by the guestbook itself, and a first generation of data.
    pub fn new(engine: Engine, seed: u64, edit: impl FnOnce(String) -> String) -> Check<Lab> {
        let es = EngineSvc::new(engine, 1, "");
        let config = es.svc.path().join("ostler.toml");
        let text = edit(std::fs::read_to_string(&config).unwrap());
        std::fs::write(&config, &text).unwrap();
        let store = text
            .split("name = \"uploads\"\npath = \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string();
        let mut lab = Lab {
            mounts: Vec::new(),
            es,
            rng: StdRng::seed_from_u64(seed),
            truths: BTreeMap::new(),
            backup_secs: 0.5,
            store,
            generation: 0,
            next_entry: 1,
            entries: Vec::new(),
            tags: Vec::new(),
        };
        lab.ok(&["start,stop", "gb-1"])?;
        lab.mutate();
        Ok(lab)
    }

    pub fn path(&self) -> &Path {
        self.es.svc.path()
    }

    pub fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }

    /// The instance's store `uploads` (where the config puts it).
    pub fn uploads(&self) -> PathBuf {
        self.path().join("instances/gb-1").join(&self.store)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.es.svc.run(args)
    }

    /// Runs ostler; Err with its stderr if it failed.
    pub fn ok(&self, args: &[&str]) -> Check<String> {
        let out = self.run(args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`ostler {}` failed ({}): {}",
                args.join(" "),
                out.status,
                last_lines(&out.stderr)
            ))
        }
    }

    /// Takes a backup of gb-1 and records what it holds.
    pub fn backup(&mut self) -> Check<String> {
        let before = self.truth();
        let start = Instant::now();
        let out = self.ok(&["--json", "backup", "gb-1"])?;
        self.backup_secs = start.elapsed().as_secs_f64();
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("backup --json: {e}: {out}"))?;
        let id = v["id"]
            .as_str()
            .ok_or("backup --json has no id")?
            .to_string();
        self.truths.insert(id.clone(), before);
        Ok(id)
    }

    /// Restores `id` over gb-1 (confirmed) and checks the instance then holds its truth.
    pub fn restore_and_check(&self, id: &str) -> Check {
        self.ok(&["restore", "gb-1", "--from", id, "--yes-really-production"])?;
        self.expect(&self.truths[id], &format!("after restoring {id}"))?;
        self.no_restore_temporaries()
    }

    /// The instance holds `want`, or Err saying how it differs.
    pub fn expect(&self, want: &Truth, when: &str) -> Check {
        let live = self.truth();
        if &live == want {
            Ok(())
        } else {
            Err(format!("{when}: {}", live.differences(want)))
        }
    }

    /// Restore leaves nothing of its own behind in the instance's directory.
    /// (Files named `*ostler-restore*` there; on PostgreSQL and MariaDB, databases
    /// whose name starts with the instance's own and goes on.)
    pub fn no_restore_temporaries(&self) -> Check {
        let dir = self.path().join("instances/gb-1");
        let mut left: Vec<String> = walk(&dir)
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(&dir).unwrap().display().to_string();
                rel.contains("ostler-restore").then_some(rel)
            })
            .collect();
        let db = &self.es.dbs[0];
        let others = match self.es.engine {
            Engine::Sqlite => String::new(),
            Engine::Postgres => ostler_testsupport::PgServer::shared()
                .sql(
                    "postgres",
                    &format!("SELECT datname FROM pg_database WHERE starts_with(datname, '{db}') AND datname <> '{db}';"),
                )
                .unwrap(),
            Engine::Mysql => ostler_testsupport::MariaDbServer::shared()
                .sql(
                    "",
                    &format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{db}%' AND schema_name <> '{db}';"),
                )
                .unwrap(),
        };
        left.extend(
            others
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("database {l}")),
        );
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("restore temporaries left behind: {left:?}"))
        }
    }

    /// The catalog: (id, status) in time order.
    pub fn catalog(&self) -> Check<Vec<(String, String)>> {
        let out = self.ok(&["backups", "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        Ok(v.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["id"].as_str().unwrap().to_string(),
                    b["status"].as_str().unwrap().to_string(),
                )
            })
            .collect())
    }

    pub fn good_backups(&self) -> Check<Vec<String>> {
        Ok(self
            .catalog()?
            .into_iter()
            .filter(|(_, s)| s == "good")
            .map(|(id, _)| id)
            .collect())
    }

    /// `ostler verify --all`: Ok(true) when it says ok, Ok(false) when it reports
    /// damage (exit 1), with its output.
    pub fn verify_all(&self) -> (bool, String) {
        let out = self.run(&["verify", "--all"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Whether this build has `ostler recover` (issue 8 item 4 adds it).
    pub fn has_recover(&self) -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| self.run(&["recover", "--help"]).status.success())
    }

    /// After a kill: `ostler recover` where the build has it.
    pub fn recover(&self) -> Check<&'static str> {
        if !self.has_recover() {
            return Ok("no `ostler recover` in this build");
        }
        self.ok(&["recover"])?;
        Ok("recovered")
    }

    /// Runs ostler as a child and SIGKILLs it after `delay` unless it finished first.
    /// Its output goes to files (a pipe nobody reads could block it).
    pub fn kill_after(&self, args: &[&str], delay: Duration) -> Kill {
        let out_path = self.path().join("killed.stdout");
        let err_path = self.path().join("killed.stderr");
        let mut child = self
            .es
            .svc
            .cmd(args)
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Kill {
                    landed: false,
                    after: start.elapsed(),
                    output: Some(Output {
                        status,
                        stdout: std::fs::read(&out_path).unwrap(),
                        stderr: std::fs::read(&err_path).unwrap(),
                    }),
                };
            }
            if start.elapsed() >= delay {
                child.kill().unwrap();
                child.wait().unwrap();
                return Kill {
                    landed: true,
                    after: start.elapsed(),
                    output: None,
                };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A random moment in [0, scale × the last backup's duration).
    pub fn moment(&mut self, scale: f64) -> Duration {
        Duration::from_secs_f64(self.rng.gen_range(0.0..1.0) * scale * self.backup_secs)
    }

    /// What gb-1 holds now.
    pub fn truth(&self) -> Truth {
        let mut files = BTreeMap::new();
        let root = self.uploads();
        if root.exists() {
            for p in walk(&root) {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                let bytes = std::fs::read(&p).unwrap();
                files.insert(rel, blake3::hash(&bytes).to_hex().to_string());
            }
        }
        Truth {
            rows: self.es.all_rows(0),
            files,
        }
    }

    /// One generation of change: the first makes a few thousand entries with tags and
    /// a dozen uploads; later ones insert, update and delete a few percent of rows and
    /// add, rewrite and remove files.
    pub fn mutate(&mut self) {
        self.generation += 1;
        let g = self.generation;
        let first = self.entries.is_empty();
        let rng = &mut self.rng;
        let mut sql = Vec::new();
        let new_tags = if first { 12 } else { rng.gen_range(0..3) };
        let mut values = Vec::new();
        for k in 0..new_tags {
            let id = self.tags.len() as i64 + 1;
            values.push(format!("({id}, 'tag{g}x{k}')"));
            self.tags.push(id);
        }
        if !values.is_empty() {
            sql.push(format!(
                "INSERT INTO tags (id, name) VALUES {};",
                values.join(",")
            ));
        }
        let inserts = if first {
            rng.gen_range(2_000..12_000)
        } else {
            rng.gen_range(10..400)
        };
        let new_ids = self.insert_entries(&mut sql, inserts, 160);
        let rng = &mut self.rng;
        if !first {
            let n = rng.gen_range(0..self.entries.len() / 30 + 1);
            let edited: Vec<String> = self
                .entries
                .choose_multiple(rng, n)
                .map(|i| i.to_string())
                .collect();
            if !edited.is_empty() {
                sql.push(format!(
                    "UPDATE entries SET message = 'edited in generation {g}' WHERE id IN ({});",
                    edited.join(",")
                ));
            }
            let n = rng.gen_range(0..self.entries.len() / 50 + 1);
            let gone: Vec<i64> = self.entries.choose_multiple(rng, n).copied().collect();
            if !gone.is_empty() {
                let list: Vec<String> = gone.iter().map(|i| i.to_string()).collect();
                sql.push(format!(
                    "DELETE FROM entry_tags WHERE entry_id IN ({0}); DELETE FROM entries WHERE id IN ({0});",
                    list.join(",")
                ));
                self.entries.retain(|e| !gone.contains(e));
            }
        }
        self.entries.extend(new_ids);
        self.sql(&sql.join("\n"));

        // Uploads: incompressible bytes, a few large enough for several chunks.
        let root = self.uploads();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        let existing: Vec<PathBuf> = walk(&root);
        let rng = &mut self.rng;
        if !first {
            for p in existing.choose_multiple(rng, existing.len() / 5) {
                std::fs::remove_file(p).unwrap();
            }
            for p in existing.choose_multiple(rng, existing.len() / 5) {
                if p.exists() {
                    std::fs::write(p, random_bytes(rng, 1_000, 40_000)).unwrap();
                }
            }
        }
        let new_files = if first { 12 } else { rng.gen_range(0..4) };
        for k in 0..new_files {
            let name = if rng.gen_bool(0.2) {
                format!("sub/g{g}-{k}.bin")
            } else {
                format!("g{g}-{k}.bin")
            };
            let max = if rng.gen_bool(0.2) { 1_500_000 } else { 60_000 };
            std::fs::write(root.join(name), random_bytes(rng, 100, max)).unwrap();
        }
    }

    /// Statements inserting `n` entries with messages of up to `len` random
    /// characters, and tag links for them; returns the new entries' ids.
    fn insert_entries(&mut self, sql: &mut Vec<String>, n: usize, len: usize) -> Vec<i64> {
        let rng = &mut self.rng;
        let mut new_ids = Vec::new();
        for batch in (0..n).collect::<Vec<_>>().chunks(400) {
            let mut values = Vec::new();
            for _ in batch {
                let id = self.next_entry;
                self.next_entry += 1;
                new_ids.push(id);
                let email = if rng.gen_bool(0.3) {
                    format!("'u{id}@example.org'")
                } else {
                    "NULL".into()
                };
                values.push(format!(
                    "({id}, 'author{}', '{}', '2026-12-{:02}T{:02}:{:02}:00Z', {email})",
                    rng.gen_range(0..500),
                    text(rng, len / 10, len),
                    rng.gen_range(1..29),
                    rng.gen_range(0..24),
                    rng.gen_range(0..60),
                ));
            }
            sql.push(format!(
                "INSERT INTO entries (id, author, message, created_at, email) VALUES {};",
                values.join(",")
            ));
        }
        let mut links = Vec::new();
        for id in &new_ids {
            let k = rng.gen_range(0..3);
            for t in self.tags.choose_multiple(rng, k) {
                links.push(format!("({id}, {t})"));
            }
        }
        for batch in links.chunks(800) {
            sql.push(format!(
                "INSERT INTO entry_tags (entry_id, tag_id) VALUES {};",
                batch.join(",")
            ));
        }
        new_ids
    }

    /// About `bytes` of new rows (long messages), for a full disk.
    pub fn add_rows(&mut self, bytes: usize) {
        let mut sql = Vec::new();
        let ids = self.insert_entries(&mut sql, bytes / 1_000 + 1, 2_000);
        self.entries.extend(ids);
        self.sql(&sql.join("\n"));
    }

    /// Runs SQL (any length) on gb-1's database.
    pub fn sql(&self, sql: &str) {
        match self.es.engine {
            Engine::Sqlite => {
                use std::io::Write;
                let mut child = std::process::Command::new("sqlite3")
                    .arg(self.path().join("instances/gb-1/data.db"))
                    .stdin(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("BEGIN;\n{sql}\nCOMMIT;\n").as_bytes())
                    .unwrap();
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "sqlite3: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            _ => {
                self.es.sql(0, sql);
            }
        }
    }

    /// Loses gb-1's database: the SQLite file (with its -wal and -shm) deleted, or
    /// the server database dropped.
    pub fn lose_database(&self) {
        let db = &self.es.dbs[0];
        match self.es.engine {
            Engine::Sqlite => {
                for suffix in ["", "-wal", "-shm"] {
                    let p = self.path().join(format!("instances/gb-1/data.db{suffix}"));
                    if p.exists() {
                        std::fs::remove_file(p).unwrap();
                    }
                }
            }
            Engine::Postgres => {
                ostler_testsupport::PgServer::shared()
                    .sql("postgres", &format!("DROP DATABASE \"{db}\";"))
                    .unwrap();
            }
            Engine::Mysql => {
                ostler_testsupport::MariaDbServer::shared()
                    .sql("", &format!("DROP DATABASE `{db}`;"))
                    .unwrap();
            }
        }
    }

    /// Every chunk file in the repository.
    pub fn chunk_files(&self) -> Vec<PathBuf> {
        walk(&self.repo().join("chunks"))
    }

    /// The chunks each good backup needs, read from its manifest and store listings.
    pub fn needed_chunks(&self) -> Check<BTreeMap<String, BTreeSet<String>>> {
        let mut out = BTreeMap::new();
        for id in self.good_backups()? {
            let m = format::manifest(&self.repo(), &id)?;
            out.insert(id, format::needed_chunks(&self.repo(), &m)?);
        }
        Ok(out)
    }
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn text(rng: &mut StdRng, min: usize, max: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?";
    let n = rng.gen_range(min..max);
    (0..n)
        .map(|_| *ALPHABET.choose(rng).unwrap() as char)
        .collect()
}

fn random_bytes(rng: &mut StdRng, min: usize, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.gen_range(min..max)];
    rng.fill(&mut v[..]);
    v
}

/// The last few lines of a command's stderr, for a failure reason.
pub fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}
