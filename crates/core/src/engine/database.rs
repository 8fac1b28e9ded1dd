//! The database an instance uses, as the rest of ostler sees it, whatever its engine:
//! the `Database` value (where it is, how to reach it), its URL and identity, how to
//! name it to the service (`{db}`), how to pass the password (environment, never
//! argv), and the sibling names an all-or-nothing restore uses. What differs per
//! engine (running a statement, dumps, nuking, swapping) is in the engine folders.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Address, DatabaseKind};
use crate::error::{Error, Result};

/// A parsed `postgres://user@host:port/db` or `mysql://...` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbUrl {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl DbUrl {
    pub fn parse(text: &str, kind: DatabaseKind) -> std::result::Result<DbUrl, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("bad database url `{}`: {e}", mask_url(text)))?;
        let Address::Server {
            schemes,
            default_port,
            ..
        } = kind.engine().address()
        else {
            return Err(format!("a {kind} database takes `path`, not `url`"));
        };
        if !schemes.contains(&url.scheme()) {
            return Err(format!(
                "database url `{}` should start with {}://",
                mask_url(text),
                schemes[0]
            ));
        }
        if url.password().is_some() || password_in_query(&url) {
            return Err(
                "the database url holds a password; put it in `password_file` or `password_env` so it never reaches argv, logs or the journal"
                    .into(),
            );
        }
        let database = url.path().trim_start_matches('/').to_string();
        if database.is_empty() {
            return Err(format!(
                "database url `{}` names no database (add /DBNAME)",
                mask_url(text)
            ));
        }
        Ok(DbUrl {
            user: if url.username().is_empty() {
                "root".into()
            } else {
                url.username().to_string()
            },
            host: url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: url.port().unwrap_or(default_port),
            database,
        })
    }
}

/// Which database an instance's `[database]` points at, as a value two instances can be
/// compared by: the SQLite file after resolving relative paths, `..` and symlinks, or a
/// server database by engine, host, port and name. Two instances with the same identity
/// share one database (legitimate in a blue-green upgrade), so whatever one does to it
/// the other sees: the production guard uses this to protect production's database
/// whatever instance names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DatabaseIdentity {
    Sqlite {
        path: PathBuf,
    },
    Server {
        engine: DatabaseKind,
        host: String,
        port: u16,
        database: String,
    },
}

impl DatabaseIdentity {
    /// The identity of a SQLite file: canonical where the file (or a parent) exists,
    /// so `../p/data.db` and a symlink to it name the file they reach.
    pub fn sqlite(path: &Path) -> DatabaseIdentity {
        DatabaseIdentity::Sqlite {
            path: resolve_path(path),
        }
    }

    /// The identity of a database on a server. Loopback names (`localhost`,
    /// `127.0.0.1`, `::1`) are one host; other names are compared as written (no DNS
    /// lookup: a guard must not hang on a resolver).
    pub fn server(engine: DatabaseKind, url: &DbUrl) -> DatabaseIdentity {
        let host = url.host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        DatabaseIdentity::Server {
            engine,
            host: if loopback {
                "localhost".into()
            } else {
                host.to_ascii_lowercase()
            },
            port: url.port,
            database: url.database.clone(),
        }
    }
}

impl std::fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseIdentity::Sqlite { path } => write!(f, "sqlite {}", path.display()),
            DatabaseIdentity::Server {
                engine,
                host,
                port,
                database,
            } => write!(f, "{engine} {host}:{port}/{database}"),
        }
    }
}

/// `path` made absolute with symlinks resolved as far as it exists; the rest (a file
/// not created yet) is appended with `.` and `..` applied by hand.
pub fn resolve_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Whether the URL carries a password as a query parameter (`?password=...`, which
/// libpq and MySQL connectors accept).
fn password_in_query(url: &url::Url) -> bool {
    url.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
}

/// Replaces a URL's password, in its userinfo or in a `password` query parameter, with
/// `***`.
pub fn mask_url(text: &str) -> String {
    let Ok(mut u) = url::Url::parse(text) else {
        return text.to_string();
    };
    if u.password().is_none() && !password_in_query(&u) {
        return text.to_string();
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if password_in_query(&u) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// One instance's database, resolved against its config: where it is and how to reach it.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: DbUrl,
        password: Option<String>,
    },
    Mysql {
        url: DbUrl,
        password: Option<String>,
    },
}

impl Database {
    /// The database of `kind` that a `[database]` section names: a file at `path`
    /// (relative to `dir`) or a database at `url` on a server, with its password.
    /// Says what is missing or wrong, for the caller to put in context.
    pub fn new(
        kind: DatabaseKind,
        dir: &Path,
        path: Option<&Path>,
        url: Option<&str>,
        password: Option<String>,
    ) -> std::result::Result<Database, String> {
        let url = || -> std::result::Result<DbUrl, String> {
            DbUrl::parse(url.ok_or(format!("a {kind} database needs `url`"))?, kind)
        };
        Ok(match kind {
            DatabaseKind::Sqlite => Database::Sqlite {
                path: dir.join(path.ok_or("a sqlite database needs `path`")?),
            },
            DatabaseKind::Postgres => Database::Postgres {
                url: url()?,
                password,
            },
            DatabaseKind::Mysql => Database::Mysql {
                url: url()?,
                password,
            },
        })
    }

    /// The password the engine's tools are given, if any.
    pub fn password(&self) -> Option<&str> {
        match self {
            Database::Sqlite { .. } => None,
            Database::Postgres { password, .. } | Database::Mysql { password, .. } => {
                password.as_deref()
            }
        }
    }

    /// Which database this is, for telling whether two instances share one.
    pub fn identity(&self) -> DatabaseIdentity {
        match self {
            Database::Sqlite { path } => DatabaseIdentity::sqlite(path),
            Database::Postgres { url, .. } => DatabaseIdentity::server(DatabaseKind::Postgres, url),
            Database::Mysql { url, .. } => DatabaseIdentity::server(DatabaseKind::Mysql, url),
        }
    }

    pub fn kind(&self) -> DatabaseKind {
        match self {
            Database::Sqlite { .. } => DatabaseKind::Sqlite,
            Database::Postgres { .. } => DatabaseKind::Postgres,
            Database::Mysql { .. } => DatabaseKind::Mysql,
        }
    }

    /// What `{db}` expands to in commands: the SQLite file's path, or the URL without
    /// a password.
    pub fn locator(&self) -> String {
        match self.url() {
            None => self.name(),
            Some(url) => format!(
                "{}://{}@{}:{}/{}",
                self.kind(),
                url.user,
                url.host,
                url.port,
                url.database
            ),
        }
    }

    /// Environment for children (the service and the native tools): the password in
    /// the variable the engine's own tools read.
    pub fn child_env(&self) -> Vec<(String, String)> {
        match (self.engine().address(), self.password()) {
            (Address::Server { password_env, .. }, Some(p)) => {
                vec![(password_env.to_string(), p.to_string())]
            }
            _ => vec![],
        }
    }

    /// Connection arguments for the native client tools (never the password).
    pub fn client_args(&self) -> Vec<String> {
        self.url()
            .map(|url| self.engine().client_args(url))
            .unwrap_or_default()
    }

    /// Where a server database is; `None` for a file.
    pub fn url(&self) -> Option<&DbUrl> {
        match self {
            Database::Sqlite { .. } => None,
            Database::Postgres { url, .. } | Database::Mysql { url, .. } => Some(url),
        }
    }

    /// The same server, login and password, another database (a SQLite database is
    /// its file: itself).
    pub fn named(&self, database: &str) -> Database {
        let password = self.password().map(str::to_string);
        let Some(url) = self.url() else {
            return self.clone();
        };
        let url = DbUrl {
            database: database.to_string(),
            ..url.clone()
        };
        match self.kind() {
            DatabaseKind::Postgres => Database::Postgres { url, password },
            DatabaseKind::Mysql => Database::Mysql { url, password },
            DatabaseKind::Sqlite => self.clone(),
        }
    }

    /// Name of the database on its server (or the file name for SQLite).
    pub fn name(&self) -> String {
        match self {
            Database::Sqlite { path } => path.display().to_string(),
            Database::Postgres { url, .. } | Database::Mysql { url, .. } => url.database.clone(),
        }
    }
}

// ---- side databases, for all-or-nothing restores ----
//
// A restore loads the backup into a *side* database beside the live one and, only when
// everything is in place, swaps it in, putting the live one *aside* until the restore
// has succeeded (see `backup::recover`). Each engine swaps in its own way: SQLite by
// renaming files, PostgreSQL by `ALTER DATABASE ... RENAME` twice in one transaction,
// MariaDB (which cannot rename a database) by one multi-table `RENAME TABLE`, which the
// server applies all or not at all.

/// Which sibling of a database a restore uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sibling {
    /// Where the backup is loaded, beside the live database.
    Side,
    /// Where the live database waits while the loaded one takes its place.
    Aside,
}

impl Sibling {
    /// The suffix of a sibling file or directory (SQLite files, stores).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Sibling::Side => ".ostler-restore",
            Sibling::Aside => ".ostler-restore-old",
        }
    }

    fn database_suffix(self) -> &'static str {
        match self {
            Sibling::Side => "__ostler_restore",
            Sibling::Aside => "__ostler_old",
        }
    }
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Renames `from` to `to` if `from` exists; syncs the directory so the rename lasts.
pub fn rename_if_exists(from: &Path, to: &Path) -> Result<bool> {
    if std::fs::symlink_metadata(from).is_err() {
        return Ok(false);
    }
    std::fs::rename(from, to).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )
    })?;
    if let Some(dir) = to.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(true)
}

impl Database {
    /// The side or aside sibling of this database: the same file name with a suffix,
    /// or a database of the same server named `<db>__ostler_restore` / `<db>__ostler_old`.
    pub fn sibling(&self, which: Sibling) -> Result<Database> {
        let url = match self {
            Database::Sqlite { path } => {
                return Ok(Database::Sqlite {
                    path: with_suffix(path, which.file_suffix()),
                })
            }
            Database::Postgres { url, .. } | Database::Mysql { url, .. } => url,
        };
        let limit = match self.engine().address() {
            Address::Server { max_name_len, .. } => max_name_len,
            Address::File => usize::MAX,
        };
        let name = format!("{}{}", url.database, which.database_suffix());
        if name.len() > limit {
            return Err(Error::user(format!(
                "database `{}` has too long a name for a restore's side database `{name}` (the server allows {limit} bytes)",
                url.database
            )));
        }
        Ok(self.named(&name))
    }
}

/// Creates `dir` and an empty owner-only file `name` in it, open for writing: for a
/// safety dump (SQLite, pg_dump and mariadb-dump all keep the mode of a file that
/// exists) and for an export's SQL file.
pub(crate) fn private_file(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File)> {
    ostler_repo::private::create_dir_all(dir).map_err(|e| Error::io_at("create", dir, e))?;
    let path = dir.join(name);
    let file =
        ostler_repo::private::create_file(&path).map_err(|e| Error::io_at("create", &path, e))?;
    Ok((path, file))
}

#[cfg(test)]
mod side_tests {
    use super::*;

    #[test]
    fn siblings_sit_beside_the_live_database_and_names_too_long_are_refused() {
        let sqlite = Database::Sqlite {
            path: PathBuf::from("/srv/app/data.db"),
        };
        assert_eq!(
            sqlite.sibling(Sibling::Side).unwrap().name(),
            "/srv/app/data.db.ostler-restore"
        );
        assert_eq!(
            sqlite.sibling(Sibling::Aside).unwrap().name(),
            "/srv/app/data.db.ostler-restore-old"
        );
        let pg = |db: &str| Database::Postgres {
            url: DbUrl::parse(
                &format!("postgres://app@127.0.0.1/{db}"),
                DatabaseKind::Postgres,
            )
            .unwrap(),
            password: Some("secret".into()),
        };
        let side = pg("shop").sibling(Sibling::Side).unwrap();
        assert_eq!(side.name(), "shop__ostler_restore");
        assert_eq!(side.child_env(), pg("shop").child_env());
        assert_eq!(
            pg("shop").sibling(Sibling::Aside).unwrap().name(),
            "shop__ostler_old"
        );
        let long = "x".repeat(50);
        let err = pg(&long).sibling(Sibling::Side).unwrap_err().to_string();
        assert!(err.contains("too long") && err.contains(&long), "{err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_identity_sees_through_dot_dot_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("p");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::create_dir_all(tmp.path().join("q")).unwrap();
        std::fs::write(p.join("data.db"), b"").unwrap();
        std::os::unix::fs::symlink(p.join("data.db"), tmp.path().join("q/link.db")).unwrap();
        let real = DatabaseIdentity::sqlite(&p.join("data.db"));
        assert_eq!(
            DatabaseIdentity::sqlite(&tmp.path().join("q/../p/data.db")),
            real
        );
        assert_eq!(
            DatabaseIdentity::sqlite(&tmp.path().join("q/link.db")),
            real
        );
        assert_ne!(
            DatabaseIdentity::sqlite(&tmp.path().join("q/data.db")),
            real
        );
        // A file not created yet, under a dir not created yet, is still one place.
        assert_eq!(
            DatabaseIdentity::sqlite(&tmp.path().join("q/new/../../p/later.db")),
            DatabaseIdentity::sqlite(&p.join("later.db"))
        );
    }

    #[test]
    fn a_password_in_the_url_query_is_masked_and_refused() {
        let text = "postgres://gb@127.0.0.1/gb?sslmode=disable&password=hunter2";
        let masked = mask_url(text);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(masked.contains("sslmode=disable"), "{masked}");
        let e = DbUrl::parse(text, DatabaseKind::Postgres).unwrap_err();
        assert!(e.contains("holds a password"), "{e}");
        // Nothing to hide: the URL is shown as written.
        assert_eq!(mask_url("mysql://u@h:1/db"), "mysql://u@h:1/db");
    }

    #[test]
    fn server_identity_treats_loopback_names_as_one_host() {
        let id = |text: &str| {
            DatabaseIdentity::server(
                DatabaseKind::Postgres,
                &DbUrl::parse(text, DatabaseKind::Postgres).unwrap(),
            )
        };
        let a = id("postgres://app@127.0.0.1:5432/shop");
        assert_eq!(id("postgres://other@localhost/shop"), a);
        assert_eq!(id("postgres://app@[::1]:5432/shop"), a);
        assert_ne!(id("postgres://app@127.0.0.1:5433/shop"), a);
        assert_ne!(id("postgres://app@127.0.0.1:5432/shop2"), a);
        assert_ne!(id("postgres://app@db.example:5432/shop"), a);
    }
}
