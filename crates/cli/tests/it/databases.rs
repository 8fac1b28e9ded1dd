//! The three engines as tests use them: a guestbook instance on SQLite, or on a
//! database of the shared throwaway PostgreSQL / MariaDB server, and a way to read
//! every row of the service's tables straight from the engine for comparisons.

use ostler_testsupport::{MariaDbServer, PgServer};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

pub const TABLES: [&str; 3] = ["entries", "tags", "entry_tags"];

/// A service with one or more guestbook instances on `engine`, each with its own database.
pub struct EngineSvc {
    pub svc: Svc,
    pub engine: Engine,
    pub dbs: Vec<String>,
    pub ports: Vec<u16>,
}

pub fn database_section(svc_dir: &std::path::Path, engine: Engine, name: &str) -> (String, String) {
    match engine {
        Engine::Sqlite => (
            format!("[instances.{name}.database]\nkind = \"sqlite\"\npath = \"data.db\"\n"),
            "data.db".into(),
        ),
        Engine::Postgres => {
            let pg = PgServer::shared();
            let db = pg.unique_database("gb").unwrap();
            std::fs::write(svc_dir.join("pg.pw"), pg.password()).unwrap();
            (
                format!(
                    "[instances.{name}.database]\nkind = \"postgres\"\nurl = \"{}\"\npassword_file = \"pg.pw\"\n",
                    pg.url(&db)
                ),
                db,
            )
        }
        Engine::Mysql => {
            let my = MariaDbServer::shared();
            let db = my.unique_database("gb").unwrap();
            std::fs::write(svc_dir.join("my.pw"), my.password()).unwrap();
            (
                format!(
                    "[instances.{name}.database]\nkind = \"mysql\"\nurl = \"{}\"\npassword_file = \"my.pw\"\n",
                    my.url(&db)
                ),
                db,
            )
        }
    }
}

fn instance(name: &str, port: u16, db_section: &str, extra: &str) -> String {
    format!(
        r#"
[instances.{name}]
dir = "instances/{name}"
build = "cp {gb} ."
start = "./guestbook --port {{port}} --db {{db}} --store uploads --access-log access.log"
port = {port}
health = "http://127.0.0.1:{{port}}/health"
health_timeout = "30s"
stop_timeout = "5s"
{extra}

{db_section}
[[instances.{name}.stores]]
name = "uploads"
path = "uploads"
"#,
        gb = guestbook_bin().display()
    )
}

impl EngineSvc {
    /// Instances gb-1 (role production) .. gb-N, built, not started.
    pub fn new(engine: Engine, n: usize, header_extra: &str) -> EngineSvc {
        let svc = Svc::new("");
        let mut text = format!(
            "{}[repository]\npath = \"repo\"\n\n[roles]\nproduction = \"gb-1\"\n",
            service_header(header_extra)
        );
        let mut dbs = Vec::new();
        let mut ports = Vec::new();
        for i in 1..=n {
            let name = format!("gb-{i}");
            let port = free_port();
            let (section, db) = database_section(svc.path(), engine, &name);
            text += &instance(&name, port, &section, "");
            dbs.push(db);
            ports.push(port);
        }
        std::fs::write(svc.path().join("ostler.toml"), text).unwrap();
        let names: Vec<String> = (1..=n).map(|i| format!("gb-{i}")).collect();
        svc.ok(&["build", &names.join(",")]);
        EngineSvc {
            svc,
            engine,
            dbs,
            ports,
        }
    }

    /// Every row of `table` of instance `i` (0-based), as text lines, in key order.
    pub fn rows(&self, i: usize, table: &str) -> Vec<String> {
        let order = if table == "entry_tags" {
            "entry_id, tag_id"
        } else {
            "id"
        };
        let cols = match table {
            "entries" => "id, author, message, created_at, email",
            "tags" => "id, name",
            _ => "entry_id, tag_id",
        };
        let sql = format!("SELECT {cols} FROM {table} ORDER BY {order}");
        let out = native_sql(self.engine, &self.target(i), &format!("{sql};"));
        out.lines()
            .map(|l| l.replace('|', "\t").replace("NULL", ""))
            .filter(|l| !l.is_empty())
            .collect()
    }

    pub fn all_rows(&self, i: usize) -> Vec<Vec<String>> {
        TABLES.iter().map(|t| self.rows(i, t)).collect()
    }

    /// Where the engine's own client finds instance `i`'s database (see `native_sql`).
    pub fn target(&self, i: usize) -> String {
        match self.engine {
            Engine::Sqlite => self
                .svc
                .path()
                .join(format!("instances/gb-{}/data.db", i + 1))
                .display()
                .to_string(),
            _ => self.dbs[i].clone(),
        }
    }

    /// Runs SQL on instance `i`'s database.
    pub fn sql(&self, i: usize, sql: &str) -> String {
        native_sql(self.engine, &self.target(i), sql)
    }

    pub fn post_entry(&self, i: usize, author: &str, tags: &[&str]) {
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        let (code, body) = http_post(
            self.ports[i],
            "/entries",
            &format!(
                r#"{{"author":"{author}","message":"message from {author}","tags":[{}]}}"#,
                tags.join(",")
            ),
        );
        assert_eq!(code, 201, "{body}");
    }
}

/// Runs SQL with the engine's own client (`sqlite3`, `psql`, `mariadb`) and returns what
/// it printed. `target` is the SQLite file, or the database's name on the shared server.
pub fn native_sql(engine: Engine, target: &str, sql: &str) -> String {
    match engine {
        Engine::Sqlite => {
            let out = std::process::Command::new("sqlite3")
                .arg(target)
                .arg(sql)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
        Engine::Postgres => PgServer::shared().sql(target, sql).unwrap(),
        Engine::Mysql => MariaDbServer::shared().sql(target, sql).unwrap(),
    }
}
