//! Where the database is, parsed from the `--db` argument.
//!
//! This module exists so that the password rule lives in one place: a password comes
//! from the URL or from the variable the engine's own tools read (`PGPASSWORD`,
//! `MYSQL_PWD`), never from anywhere else, and it never leaves this module in text
//! form: `Display` and `Debug` print `***` instead. The environment is passed in as
//! a function so tests can feed one without touching the process's own.

use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// Which database engine a target (or a connection) speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

/// A database server reached over the network (PostgreSQL or MySQL/MariaDB).
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    pub user: String,
    /// `None` means "connect without one" (trust auth, empty root password...).
    pub password: Option<String>,
    /// A host name, an IP address, or (PostgreSQL) a Unix socket directory.
    pub host: String,
    pub port: u16,
    pub database: String,
}

/// The parsed `--db` argument.
#[derive(Clone, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(PathBuf),
    Postgres(Remote),
    Mysql(Remote),
}

impl DbTarget {
    /// Parses `PATH`, `sqlite:PATH`, `postgres://user[:pw]@host[:port]/db` or
    /// `mysql://user[:pw]@host[:port]/db`. `env` looks up environment variables.
    pub fn parse(arg: &str, env: impl Fn(&str) -> Option<String>) -> Result<DbTarget> {
        if arg.is_empty() {
            bail!("the database argument is empty");
        }
        if let Some(rest) = arg.strip_prefix("sqlite://") {
            return sqlite_path(rest);
        }
        if let Some(rest) = arg.strip_prefix("sqlite:") {
            return sqlite_path(rest);
        }
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = arg.strip_prefix(scheme) {
                let mut remote = parse_remote(rest, 5432)
                    .with_context(|| format!("bad PostgreSQL URL {}", redact(arg)))?;
                if remote.password.is_none() {
                    remote.password = env("PGPASSWORD");
                }
                if remote.user.is_empty() {
                    remote.user = env("PGUSER")
                        .or_else(|| env("USER"))
                        .unwrap_or_else(|| "postgres".into());
                }
                return Ok(DbTarget::Postgres(remote));
            }
        }
        for scheme in ["mysql://", "mariadb://"] {
            if let Some(rest) = arg.strip_prefix(scheme) {
                let mut remote = parse_remote(rest, 3306)
                    .with_context(|| format!("bad MySQL URL {}", redact(arg)))?;
                if remote.password.is_none() {
                    remote.password = env("MYSQL_PWD");
                }
                if remote.user.is_empty() {
                    remote.user = env("USER").unwrap_or_else(|| "root".into());
                }
                return Ok(DbTarget::Mysql(remote));
            }
        }
        if let Some((scheme, _)) = arg.split_once("://") {
            bail!("unsupported database scheme {scheme:?}: use a SQLite path, sqlite:PATH, postgres://... or mysql://...");
        }
        sqlite_path(arg)
    }

    pub fn engine(&self) -> Engine {
        match self {
            DbTarget::Sqlite(_) => Engine::Sqlite,
            DbTarget::Postgres(_) => Engine::Postgres,
            DbTarget::Mysql(_) => Engine::Mysql,
        }
    }
}

fn sqlite_path(path: &str) -> Result<DbTarget> {
    if path.is_empty() {
        bail!("the SQLite path is empty");
    }
    Ok(DbTarget::Sqlite(PathBuf::from(path)))
}

/// Parses `[user[:password]@]host[:port]/database` (the part after `scheme://`).
fn parse_remote(rest: &str, default_port: u16) -> Result<Remote> {
    if rest.contains('?') || rest.contains('#') {
        bail!("URL parameters are not supported; give only user, host, port and database");
    }
    let (authority, database) = rest
        .split_once('/')
        .context("no database name: expected scheme://user@host:port/database")?;
    let database = percent_decode(database)?;
    if database.is_empty() || database.contains('/') {
        bail!("expected exactly one database name after the host");
    }
    // The password may contain '@' when not percent-encoded: split at the last one.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (String::new(), None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (percent_decode(user)?, Some(percent_decode(pw)?)),
            None => (percent_decode(u)?, None),
        },
    };
    let (host, port) = split_host_port(hostport, default_port)?;
    Ok(Remote {
        user,
        password,
        host,
        port,
        database,
    })
}

fn split_host_port(hostport: &str, default_port: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').context("unclosed '[' in host")?;
        match after.strip_prefix(':') {
            Some(port) => (host.to_string(), Some(port)),
            None if after.is_empty() => (host.to_string(), None),
            None => bail!("unexpected {after:?} after the IPv6 address"),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (percent_decode(h)?, Some(p)),
            None => (percent_decode(hostport)?, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("bad port {p:?}"))?,
    };
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    Ok((host, port))
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .context("bad percent-encoding in URL")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("percent-encoding in URL is not UTF-8")
}

/// Hides the password of a raw URL argument, for error messages about it.
fn redact(arg: &str) -> String {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return arg.to_string();
    };
    let Some((userinfo, after)) = rest.rsplit_once('@') else {
        return arg.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{after}"),
        None => arg.to_string(),
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, r) = match self {
            DbTarget::Sqlite(path) => return write!(f, "sqlite:{}", path.display()),
            DbTarget::Postgres(r) => ("postgres", r),
            DbTarget::Mysql(r) => ("mysql", r),
        };
        let pw = if r.password.is_some() { ":***" } else { "" };
        let host = if r.host.contains(':') {
            format!("[{}]", r.host)
        } else {
            r.host.clone()
        };
        write!(
            f,
            "{scheme}://{}{pw}@{host}:{}/{}",
            r.user, r.port, r.database
        )
    }
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbTarget({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn remote(t: &DbTarget) -> &Remote {
        match t {
            DbTarget::Postgres(r) | DbTarget::Mysql(r) => r,
            DbTarget::Sqlite(_) => panic!("expected a remote target, got {t}"),
        }
    }

    #[test]
    fn sqlite_forms() {
        let want = DbTarget::Sqlite("/tmp/gb.db".into());
        assert_eq!(DbTarget::parse("/tmp/gb.db", no_env).unwrap(), want);
        assert_eq!(DbTarget::parse("sqlite:/tmp/gb.db", no_env).unwrap(), want);
        assert_eq!(
            DbTarget::parse("sqlite:///tmp/gb.db", no_env).unwrap(),
            want
        );
        assert_eq!(
            DbTarget::parse("gb.db", no_env).unwrap(),
            DbTarget::Sqlite("gb.db".into())
        );
        assert!(DbTarget::parse("sqlite:", no_env).is_err());
    }

    #[test]
    fn postgres_takes_password_from_pgpassword_only_when_url_has_none() {
        let env = |k: &str| (k == "PGPASSWORD").then(|| "s3cret".to_string());
        let t = DbTarget::parse("postgres://app@db.example:6543/guest", env).unwrap();
        assert_eq!(t.engine(), Engine::Postgres);
        let r = remote(&t);
        assert_eq!(
            (
                r.user.as_str(),
                r.host.as_str(),
                r.port,
                r.database.as_str()
            ),
            ("app", "db.example", 6543, "guest")
        );
        assert_eq!(r.password.as_deref(), Some("s3cret"));

        let t = DbTarget::parse("postgresql://app:in%40url@h/guest", env).unwrap();
        assert_eq!(remote(&t).password.as_deref(), Some("in@url"));
        assert_eq!(remote(&t).port, 5432);
    }

    #[test]
    fn mysql_takes_password_from_mysql_pwd() {
        let env = |k: &str| (k == "MYSQL_PWD").then(|| "pw".to_string());
        let t = DbTarget::parse("mysql://root@127.0.0.1/test", env).unwrap();
        assert_eq!(t.engine(), Engine::Mysql);
        assert_eq!(remote(&t).password.as_deref(), Some("pw"));
        assert_eq!(remote(&t).port, 3306);
        // An explicit empty password in the URL wins over the environment.
        let t = DbTarget::parse("mysql://root:@127.0.0.1:3307/test", env).unwrap();
        assert_eq!(remote(&t).password.as_deref(), Some(""));
        assert_eq!(remote(&t).port, 3307);
    }

    #[test]
    fn ipv6_hosts_and_default_user() {
        let env = |k: &str| (k == "USER").then(|| "alice".to_string());
        let t = DbTarget::parse("postgres://[::1]:5433/db", env).unwrap();
        assert_eq!(remote(&t).host, "::1");
        assert_eq!(remote(&t).user, "alice");
        assert_eq!(t.to_string(), "postgres://alice@[::1]:5433/db");
    }

    #[test]
    fn display_and_debug_never_show_the_password() {
        let env = |_: &str| Some("hunter2".to_string());
        for url in ["postgres://u@h/db", "mysql://u:hunter2@h/db"] {
            let t = DbTarget::parse(url, env).unwrap();
            assert!(!t.to_string().contains("hunter2"), "{t}");
            assert!(!format!("{t:?}").contains("hunter2"));
            assert!(t.to_string().contains(":***@"), "{t}");
        }
        let err = DbTarget::parse("postgres://u:hunter2@h:99999/db", no_env).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "postgres://u@h",
            "postgres://u@h/",
            "postgres://u@h:0/db",
            "postgres://u@h:x/db",
            "mysql://u@h/db?ssl=true",
            "mongodb://h/db",
            "",
        ] {
            assert!(DbTarget::parse(bad, no_env).is_err(), "{bad} parsed");
        }
    }
}
