//! guestbook's schema, as numbered forward-only migrations for each engine.
//!
//! ostler's upgrade, restore and "which backup still has these rows" procedures
//! need a service whose schema changes over time the way real ones do: a table,
//! then a many-to-many relation with cascading foreign keys (the shape behind the
//! AMY tag loss), then a new nullable column. The applied versions are recorded in
//! `schema_migrations(version)`, which is what ostler reads to know a database's
//! schema. Migrations only go forward: going back is a restore, not a migration.
//!
//! The three engines get the same logical schema. MySQL/MariaDB tables are InnoDB
//! in utf8mb4 with the binary collation, so that tag names compare exactly as they
//! do in SQLite and PostgreSQL ("DC" and "dc" are two tags everywhere). MySQL
//! commits DDL implicitly, so there a migration that fails halfway is not rolled
//! back; on SQLite and PostgreSQL each migration and its version row commit together.

use anyhow::{bail, Context, Result};

use crate::db::{Db, TxMode};
use crate::dburl::Engine;

/// The newest schema this build knows.
pub const LATEST: u32 = 3;

struct Migration {
    version: u32,
    what: &'static str,
    sqlite: &'static [&'static str],
    postgres: &'static [&'static str],
    mysql: &'static [&'static str],
}

impl Migration {
    fn statements(&self, engine: Engine) -> &'static [&'static str] {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
            Engine::Mysql => self.mysql,
        }
    }
}

/// Table options for every MySQL table (also spelled out in each CREATE below).
const MYSQL_TABLE: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "entries",
        sqlite: &["CREATE TABLE entries (\
            id INTEGER PRIMARY KEY AUTOINCREMENT, \
            author TEXT NOT NULL, \
            message TEXT NOT NULL, \
            created_at TEXT NOT NULL)"],
        postgres: &["CREATE TABLE entries (\
            id SERIAL PRIMARY KEY, \
            author TEXT NOT NULL, \
            message TEXT NOT NULL, \
            created_at TEXT NOT NULL)"],
        mysql: &["CREATE TABLE entries (\
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
            author TEXT NOT NULL, \
            message TEXT NOT NULL, \
            created_at TEXT NOT NULL\
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"],
    },
    Migration {
        version: 2,
        what: "tags and entry_tags",
        sqlite: &[
            "CREATE TABLE tags (\
             id INTEGER PRIMARY KEY AUTOINCREMENT, \
             name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE entry_tags (\
             entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE, \
             tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE, \
             PRIMARY KEY (entry_id, tag_id))",
            "CREATE INDEX entry_tags_tag_id ON entry_tags (tag_id)",
        ],
        postgres: &[
            "CREATE TABLE tags (\
             id SERIAL PRIMARY KEY, \
             name TEXT NOT NULL UNIQUE)",
            "CREATE TABLE entry_tags (\
             entry_id INTEGER NOT NULL REFERENCES entries (id) ON DELETE CASCADE, \
             tag_id INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE, \
             PRIMARY KEY (entry_id, tag_id))",
            "CREATE INDEX entry_tags_tag_id ON entry_tags (tag_id)",
        ],
        mysql: &[
            "CREATE TABLE tags (\
             id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, \
             UNIQUE KEY tags_name (name)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            "CREATE TABLE entry_tags (\
             entry_id INT NOT NULL, \
             tag_id INT NOT NULL, \
             PRIMARY KEY (entry_id, tag_id), \
             KEY entry_tags_tag_id (tag_id), \
             CONSTRAINT entry_tags_entry_id FOREIGN KEY (entry_id) \
             REFERENCES entries (id) ON DELETE CASCADE, \
             CONSTRAINT entry_tags_tag_id FOREIGN KEY (tag_id) \
             REFERENCES tags (id) ON DELETE CASCADE\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ],
    },
    Migration {
        version: 3,
        what: "entries.email",
        sqlite: &["ALTER TABLE entries ADD COLUMN email TEXT"],
        postgres: &["ALTER TABLE entries ADD COLUMN email TEXT"],
        mysql: &["ALTER TABLE entries ADD COLUMN email TEXT NULL"],
    },
];

/// What `migrate` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
}

/// The schema version recorded in the database; 0 for a database guestbook never
/// touched.
pub fn current_version(db: &mut Db) -> Result<u32> {
    let exists_sql = match db.engine() {
        Engine::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
        Engine::Mysql => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
        }
    };
    if single_int(db, exists_sql)? == 0 {
        return Ok(0);
    }
    let v = single_int(
        db,
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    )?;
    u32::try_from(v).with_context(|| format!("schema_migrations holds version {v}"))
}

fn single_int(db: &mut Db, sql: &str) -> Result<i64> {
    db.query(sql, &[])?
        .first()
        .and_then(|row| row.first())
        .with_context(|| format!("no row from {sql}"))?
        .int()
}

/// Brings the schema forward to `target` (at most `LATEST`); refuses to go back.
pub fn migrate(db: &mut Db, target: u32) -> Result<Migrated> {
    if target == 0 || target > LATEST {
        bail!("there is no schema version {target}: this guestbook knows versions 1 to {LATEST}");
    }
    let create = match db.engine() {
        Engine::Sqlite | Engine::Postgres => "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            .to_string(),
        Engine::Mysql => format!(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version INT NOT NULL PRIMARY KEY, applied_at VARCHAR(40) NOT NULL) {MYSQL_TABLE}"
        ),
    };
    db.execute_raw(&create)
        .context("cannot create schema_migrations")?;
    let from = current_version(db)?;
    if from > LATEST {
        bail!(
            "the database is at schema {from}, newer than this guestbook knows ({LATEST}); \
             run a newer guestbook"
        );
    }
    if target < from {
        bail!(
            "refusing to migrate backward from schema {from} to {target}: migrations only go \
             forward (to go back, restore a backup taken at schema {target})"
        );
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > from && m.version <= target)
    {
        apply(db, m).with_context(|| format!("migration {} ({}) failed", m.version, m.what))?;
        tracing::info!(version = m.version, what = m.what, "applied migration");
    }
    Ok(Migrated { from, to: target })
}

fn apply(db: &mut Db, m: &Migration) -> Result<()> {
    let engine = db.engine();
    let run = |db: &mut Db| -> Result<()> {
        if engine == Engine::Postgres {
            // Two guestbooks starting at once: the second waits, then sees the row.
            db.execute_raw("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")?;
        }
        if already_applied(db, m.version)? {
            return Ok(());
        }
        for sql in m.statements(engine) {
            db.execute_raw(sql)?;
        }
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            &[
                i64::from(m.version).into(),
                crate::now_rfc3339().as_str().into(),
            ],
        )?;
        Ok(())
    };
    match engine {
        // DDL commits implicitly in MySQL: a transaction would only pretend.
        Engine::Mysql => run(db),
        Engine::Sqlite | Engine::Postgres => db.transaction(TxMode::Write, run),
    }
}

/// Whether `version` was applied meanwhile by someone else.
fn already_applied(db: &mut Db, version: u32) -> Result<bool> {
    let rows = db.query(
        "SELECT version FROM schema_migrations WHERE version = ?",
        &[i64::from(version).into()],
    )?;
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dburl::DbTarget;

    fn sqlite() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbTarget::Sqlite(dir.path().join("gb.db"))).unwrap();
        (dir, db)
    }

    fn columns(db: &mut Db, table: &str) -> Vec<String> {
        db.query(
            &format!("SELECT name FROM pragma_table_info('{table}')"),
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|mut r| r.remove(0).text().unwrap())
        .collect()
    }

    #[test]
    fn versions_are_consecutive_and_end_at_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, LATEST);
    }

    #[test]
    fn a_new_database_is_at_zero_and_migrates_step_by_step() {
        let (_dir, mut db) = sqlite();
        assert_eq!(current_version(&mut db).unwrap(), 0);
        assert_eq!(migrate(&mut db, 1).unwrap(), Migrated { from: 0, to: 1 });
        assert_eq!(
            columns(&mut db, "entries"),
            ["id", "author", "message", "created_at"]
        );
        assert!(columns(&mut db, "tags").is_empty());
        assert_eq!(
            migrate(&mut db, LATEST).unwrap(),
            Migrated { from: 1, to: 3 }
        );
        assert_eq!(
            columns(&mut db, "entries"),
            ["id", "author", "message", "created_at", "email"]
        );
        assert_eq!(columns(&mut db, "entry_tags"), ["entry_id", "tag_id"]);
        let versions = db
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .unwrap();
        assert_eq!(versions.len(), 3);
        // Migrating to where we are is a no-op, not an error.
        assert_eq!(migrate(&mut db, 3).unwrap(), Migrated { from: 3, to: 3 });
    }

    #[test]
    fn refuses_to_go_backward() {
        let (_dir, mut db) = sqlite();
        migrate(&mut db, 3).unwrap();
        let err = migrate(&mut db, 1).unwrap_err().to_string();
        assert!(
            err.contains("refusing to migrate backward from schema 3 to 1"),
            "{err}"
        );
        assert_eq!(current_version(&mut db).unwrap(), 3);
    }

    #[test]
    fn refuses_unknown_versions() {
        let (_dir, mut db) = sqlite();
        assert!(migrate(&mut db, 0).is_err());
        let err = migrate(&mut db, 4).unwrap_err().to_string();
        assert!(err.contains("knows versions 1 to 3"), "{err}");
        migrate(&mut db, 3).unwrap();
        db.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (9, 'later')",
            &[],
        )
        .unwrap();
        let err = migrate(&mut db, 3).unwrap_err().to_string();
        assert!(err.contains("newer than this guestbook"), "{err}");
    }
}
