//! Schema migrations of an instance's database (`[instances.X.migrations]`): either a
//! folder of versioned SQL files (`V001__create.sql`, `V1_2__add_tags.sql`), applied in
//! order and recorded with their checksums in a table in the instance's own database,
//! as Flyway and refinery do; or the application's own command (`python manage.py
//! migrate`, `rails db:migrate`, `alembic upgrade head`).
//!
//! Before anything is applied the folder is checked against what was recorded: a file
//! applied and changed since, an applied one that is gone, or a new one older than the
//! newest applied, refuses the migration (the schema would no longer be what the files
//! say). Each file runs in one transaction with its record (on PostgreSQL and SQLite
//! both or neither; MySQL commits each DDL statement by itself, as it always does).
//! A file whose first lines say `-- ostler: offline` cannot run while the old code
//! serves: an upgrade puts the proxy into maintenance for it.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::instance::{Instance, Ostler};

/// The table the history is kept in, in the instance's database.
pub const HISTORY_TABLE: &str = "ostler_schema_history";

/// `[instances.X.migrations]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsConfig {
    /// The folder of `V<version>__<description>.sql` files, relative to the instance's
    /// dir (where its code is built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Or the framework's command, run in the instance's dir with its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// With `command`: exits 0 when nothing is pending (`python manage.py migrate
    /// --check`), anything else when something is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// A version: its numbers (`V1_2` is `[1, 2]`), compared number by number (`V1` is
/// `V1_0`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version(pub Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix(['V', 'v']).unwrap_or(text);
        let parts: Option<Vec<u64>> = text
            .split(['_', '.'])
            .map(|p| p.parse::<u64>().ok())
            .collect();
        parts.filter(|p| !p.is_empty()).map(Version)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let n = self.0.len().max(other.0.len());
        let at = |v: &Version, i: usize| v.0.get(i).copied().unwrap_or(0);
        (0..n)
            .map(|i| at(self, i).cmp(&at(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub version: Version,
    pub description: String,
    pub file: PathBuf,
    /// blake3 of its text (line ends as LF).
    pub checksum: String,
    /// It says `-- ostler: offline`: the old code cannot serve while it runs.
    pub offline: bool,
}

/// A migration as recorded in the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub version: Version,
    pub description: String,
    pub checksum: String,
    pub applied_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
}

/// The folder's migrations against the database's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub applied: Vec<Applied>,
    pub pending: Vec<Migration>,
    /// Applied, and the file differs from what was applied.
    pub changed: Vec<Migration>,
    /// Applied, and its file is gone.
    pub missing: Vec<Applied>,
    /// Not applied, yet older than the newest applied one.
    pub out_of_order: Vec<Migration>,
}

impl Status {
    /// Whether the migrations may go on (nothing changed, missing or out of order).
    pub fn is_consistent(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.out_of_order.is_empty()
    }
}

/// The migration files in `dir`, by version. A `.sql` file starting with `V` that is
/// not named `V<version>__<description>.sql`, or two files of one version, are errors.
pub fn scan(dir: &Path) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io_at("read", dir, e))?;
    let mut found: Vec<Migration> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io_at("read", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") || !name.starts_with(['V', 'v']) {
            continue;
        }
        let stem = &name[..name.len() - 4];
        let parsed = stem
            .split_once("__")
            .and_then(|(v, d)| Version::parse(v).map(|v| (v, d.replace('_', " "))));
        let Some((version, description)) = parsed else {
            return Err(Error::user(format!(
                "{}: a migration is named V<version>__<description>.sql (V001__create_entries.sql)",
                entry.path().display()
            )));
        };
        let path = entry.path();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io_at("read", &path, e))?;
        let text = text.replace("\r\n", "\n");
        if let Some(other) = found.iter().find(|m| m.version == version) {
            return Err(Error::user(format!(
                "{} and {} are both version {version}",
                other.file.display(),
                path.display()
            )));
        }
        let offline = text
            .lines()
            .take_while(|l| l.trim_start().starts_with("--") || l.trim().is_empty())
            .any(|l| l.trim_start_matches(['-', ' ']).trim() == "ostler: offline");
        found.push(Migration {
            version,
            description,
            checksum: blake3::hash(text.as_bytes()).to_hex().to_string(),
            file: path,
            offline,
        });
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(found)
}

/// Compares the files with the history.
pub fn compare(files: &[Migration], applied: &[Applied]) -> Status {
    let newest = applied.iter().map(|a| &a.version).max();
    let mut status = Status {
        applied: applied.to_vec(),
        ..Status::default()
    };
    for file in files {
        match applied.iter().find(|a| a.version == file.version) {
            Some(a) if a.checksum != file.checksum => status.changed.push(file.clone()),
            Some(_) => {}
            None if newest.is_some_and(|n| *n > file.version) => {
                status.out_of_order.push(file.clone())
            }
            None => status.pending.push(file.clone()),
        }
    }
    for a in applied {
        if !files.iter().any(|f| f.version == a.version) {
            status.missing.push(a.clone());
        }
    }
    status
}

/// What the instance's migrations are.
fn config_of(inst: &Instance) -> Result<&MigrationsConfig> {
    inst.config.migrations.as_ref().ok_or_else(|| {
        Error::user(format!(
            "instance `{}` has no [instances.{}.migrations] in the config",
            inst.name, inst.name
        ))
    })
}

/// The folder of `inst`'s migration files, or None when it migrates with a command.
pub fn dir_of(inst: &Instance) -> Result<Option<PathBuf>> {
    Ok(config_of(inst)?.dir.as_ref().map(|d| inst.dir.join(d)))
}

/// The history recorded in `inst`'s database (empty before the first migration).
pub fn history(inst: &Instance, runner: &Runner) -> Result<Vec<Applied>> {
    let db = inst.database.as_ref().ok_or_else(|| {
        Error::user(format!(
            "instance `{}` has no database to migrate",
            inst.name
        ))
    })?;
    let engine = db.engine();
    if !engine.has_table(db, runner, HISTORY_TABLE)? {
        return Ok(Vec::new());
    }
    let rows = engine.query(
        db,
        runner,
        &format!(
            "SELECT version, description, checksum, applied_at, duration_ms FROM {HISTORY_TABLE}"
        ),
    )?;
    let mut applied: Vec<Applied> = rows
        .into_iter()
        .filter_map(|row| {
            let cell = |i: usize| row.get(i).cloned().flatten();
            Some(Applied {
                version: Version::parse(&cell(0)?)?,
                description: cell(1).unwrap_or_default(),
                checksum: cell(2).unwrap_or_default(),
                applied_at: cell(3).and_then(|t| t.parse().ok()),
                duration_ms: cell(4).and_then(|d| d.parse().ok()),
            })
        })
        .collect();
    applied.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(applied)
}

/// The files of `inst` against its database's history.
pub fn status(inst: &Instance, runner: &Runner) -> Result<Status> {
    let Some(dir) = dir_of(inst)? else {
        return Err(Error::user(format!(
            "instance `{}` migrates with a command: ostler keeps no history of it",
            inst.name
        )));
    };
    Ok(compare(&scan(&dir)?, &history(inst, runner)?))
}

/// How `ostler migrate` was asked.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Up to and including this version (default: all pending).
    pub to: Option<Version>,
    /// Confirms migrating the production instance.
    pub yes_really_production: bool,
    /// A copy of this very database was just taken (an upgrade backs up the old
    /// instance's database, which the new one shares): none again.
    pub copied_already: bool,
}

/// What a migration did, and the safety copy taken before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The backup id (or the dump's path) taken before anything was applied.
    pub safety: Option<String>,
    pub migrated: Migrated,
}

/// What was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Migrated {
    /// These files were applied (none: nothing was pending), in order, with how long
    /// each took.
    Files(Vec<(Migration, Duration)>),
    /// The framework's command ran.
    Command { command: String, took: Duration },
}

/// Applies `inst`'s pending migrations (up to and including `options.to`) under its
/// lock, after a safety copy of its database (a backup when there is a repository,
/// else a dump under `<state_dir>/safety`). Refused on production without
/// `yes_really_production`, and when the history and the files disagree.
pub fn migrate(ostler: &Ostler, inst: &Instance, options: &MigrateOptions) -> Result<Outcome> {
    let config = config_of(inst)?.clone();
    if ostler.config.is_production(&inst.name) && !options.yes_really_production {
        return Err(Error::user(format!(
            "instance `{}` is production: migrating changes its schema under the running code",
            inst.name
        ))
        .with_hint("rehearse it on a copy first; then add --yes-really-production"));
    }
    ostler.operate(inst, "migrate", Duration::from_secs(3600), |runner| {
        if let Some(command) = &config.command {
            let safety = match options.copied_already {
                true => None,
                false => Some(safety_copy(ostler, inst, runner)?),
            };
            let started = Instant::now();
            runner.shell(&inst.expand(command), &inst.dir, &inst.env())?;
            return Ok(Outcome {
                safety,
                migrated: Migrated::Command {
                    command: command.clone(),
                    took: started.elapsed(),
                },
            });
        }
        let status = status(inst, runner)?;
        refuse_inconsistent(inst, &status)?;
        let db = inst
            .database
            .as_ref()
            .ok_or_else(|| Error::user(format!("instance `{}` has no database", inst.name)))?;
        let engine = db.engine();
        let to = options.to.as_ref();
        let pending: Vec<&Migration> = status
            .pending
            .iter()
            .filter(|m| to.is_none_or(|to| m.version <= *to))
            .collect();
        let safety = match pending.is_empty() || options.copied_already {
            true => None,
            false => Some(safety_copy(ostler, inst, runner)?),
        };
        let mut done = Vec::new();
        for m in pending {
            runner.interrupt().check()?;
            if done.is_empty() {
                engine.execute(db, runner, &create_history())?;
            }
            let text = std::fs::read_to_string(&m.file)
                .map_err(|e| Error::io_at("read", &m.file, e))?
                .replace("\r\n", "\n");
            if blake3::hash(text.as_bytes()).to_hex().as_str() != m.checksum {
                return Err(Error::user(format!(
                    "{} changed while the migration ran; nothing more is applied",
                    m.file.display()
                )));
            }
            let started = Instant::now();
            let sql = text.trim_end();
            let end = if sql.ends_with(';') { "" } else { ";" };
            let record = format!(
                "INSERT INTO {HISTORY_TABLE} (version, description, checksum, applied_at, duration_ms) \
                 VALUES ({}, {}, {}, {}, 0)",
                literal(&m.version.to_string()),
                literal(&m.description),
                literal(&m.checksum),
                literal(&ostler.clock.now().to_string()),
            );
            engine
                .execute(db, runner, &format!("{sql}{end}\n{record}"))
                .map_err(|e| {
                    Error::failed(format!(
                        "migration {} ({}) failed: {}",
                        m.version,
                        m.file.display(),
                        crate::error::chain(&e)
                    ))
                })?;
            let took = started.elapsed();
            engine.execute(
                db,
                runner,
                &format!(
                    "UPDATE {HISTORY_TABLE} SET duration_ms = {} WHERE version = {}",
                    took.as_millis(),
                    literal(&m.version.to_string())
                ),
            )?;
            ostler.reporter.info(
                &inst.name,
                &format!("migration {} ({}) applied", m.version, m.description),
            );
            done.push((m.clone(), took));
        }
        Ok(Outcome {
            safety,
            migrated: Migrated::Files(done),
        })
    })
}

/// A copy of `inst`'s database to go back to: a backup when there is a repository
/// (its id), else a dump under `<state_dir>/safety` (its path).
pub fn safety_copy(ostler: &Ostler, inst: &Instance, runner: &Runner) -> Result<String> {
    if ostler.config.repository.is_some() {
        let m = crate::backup::capture::backup(ostler, inst, Some("before migrate"), runner)?;
        ostler
            .reporter
            .info(&inst.name, &format!("safety backup {} taken", m.id));
        return Ok(m.id);
    }
    let db = inst
        .database
        .as_ref()
        .ok_or_else(|| Error::user(format!("instance `{}` has no database", inst.name)))?;
    let dir = ostler.state_dir().join("safety");
    let stem = format!(
        "{}-before-migrate-{}",
        inst.name,
        ostler.clock.now().strftime("%Y%m%dT%H%M%SZ")
    );
    let path = db.safety_dump(runner, &dir, &stem)?;
    ostler.reporter.info(
        &inst.name,
        &format!("safety dump {} written", path.display()),
    );
    Ok(path.display().to_string())
}

/// Refuses a migration whose history and files disagree, naming each disagreement.
pub fn refuse_inconsistent(inst: &Instance, status: &Status) -> Result<()> {
    if status.is_consistent() {
        return Ok(());
    }
    let mut why = Vec::new();
    for m in &status.changed {
        why.push(format!(
            "{} was changed after it was applied",
            m.file.display()
        ));
    }
    for a in &status.missing {
        why.push(format!(
            "version {} ({}) was applied but its file is gone",
            a.version, a.description
        ));
    }
    for m in &status.out_of_order {
        why.push(format!(
            "{} is older than the newest applied migration and was never applied",
            m.file.display()
        ));
    }
    Err(Error::user(format!(
        "instance `{}`: the migrations no longer match the database: {}",
        inst.name,
        why.join("; ")
    ))
    .with_hint("put the applied files back as they were; a new change is a new version"))
}

fn create_history() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
            version VARCHAR(100) PRIMARY KEY,
            description VARCHAR(400) NOT NULL,
            checksum VARCHAR(64) NOT NULL,
            applied_at VARCHAR(40) NOT NULL,
            duration_ms BIGINT NOT NULL
        )"
    )
}

/// A string literal every engine reads the same (no backslash escapes in what ostler
/// writes: versions, descriptions from file names, hex, timestamps).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''").replace('\\', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn versions_compare_number_by_number() {
        let v = |t| Version::parse(t).unwrap();
        assert!(v("V1_2") < v("V1_10"));
        assert!(v("V002") < v("V10"));
        assert_eq!(v("V1"), v("V1_0"));
        assert_eq!(v("V1_2").to_string(), "1.2");
        assert!(Version::parse("Vx").is_none());
    }

    #[test]
    fn files_are_read_in_version_order_and_a_bad_name_or_a_twice_used_version_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V10__later.sql", "SELECT 1;");
        write(
            dir.path(),
            "V2__add_tags.sql",
            "-- ostler: offline\nALTER TABLE t DROP c;",
        );
        write(dir.path(), "README.md", "not a migration");
        let found = scan(dir.path()).unwrap();
        let names: Vec<String> = found.iter().map(|m| m.description.clone()).collect();
        assert_eq!(names, vec!["add tags", "later"]);
        assert!(found[0].offline && !found[1].offline);
        write(dir.path(), "V002__again.sql", "SELECT 2;");
        let twice = scan(dir.path()).unwrap_err().to_string();
        assert!(twice.contains("are both version 2"), "{twice}");
        std::fs::remove_file(dir.path().join("V002__again.sql")).unwrap();
        write(dir.path(), "V3-broken.sql", "");
        let bad = scan(dir.path()).unwrap_err().to_string();
        assert!(bad.contains("V3-broken.sql: a migration is named"), "{bad}");
    }

    #[test]
    fn a_changed_a_missing_and_an_out_of_order_file_are_each_found() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "V1__create.sql", "CREATE TABLE a (x INT);");
        write(dir.path(), "V2__more.sql", "CREATE TABLE b (x INT);");
        write(dir.path(), "V4__new.sql", "CREATE TABLE d (x INT);");
        let files = scan(dir.path()).unwrap();
        let applied = |m: &Migration| Applied {
            version: m.version.clone(),
            description: m.description.clone(),
            checksum: m.checksum.clone(),
            applied_at: None,
            duration_ms: None,
        };
        let mut history = vec![applied(&files[0]), applied(&files[1])];
        let s = compare(&files, &history);
        assert!(s.is_consistent());
        assert_eq!(s.pending.len(), 1);
        history[1].checksum = "something else".into();
        history.push(Applied {
            version: Version(vec![3]),
            description: "gone".into(),
            checksum: "x".into(),
            applied_at: None,
            duration_ms: None,
        });
        history.push(Applied {
            version: Version(vec![5]),
            description: "newest".into(),
            checksum: "x".into(),
            applied_at: None,
            duration_ms: None,
        });
        let s = compare(&files, &history);
        assert_eq!(s.changed.len(), 1);
        assert_eq!(s.missing.len(), 2, "3 and 5 have no file");
        assert_eq!(s.out_of_order.len(), 1, "4 is older than 5");
        assert!(s.pending.is_empty());
    }
}
