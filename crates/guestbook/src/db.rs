//! One connection to SQLite, PostgreSQL or MySQL/MariaDB behind one small API.
//!
//! guestbook exists to give ostler a realistic service on all three engines, and its
//! queries should be written once. So `Db` offers only what those queries need —
//! parameterised statements over a three-variant `Value`, generated ids, raw DDL and
//! transactions — and translates for each client crate: `?` becomes `$n` for
//! PostgreSQL, `INTEGER`/`BIGINT` columns are read by their declared type, `RETURNING`
//! and `last_insert_id` stand in for each other. The clients are the synchronous ones
//! (rusqlite, postgres, mysql); async callers go through `pool::Pool`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use postgres::types::{ToSql, Type};

use crate::dburl::{DbTarget, Engine};

/// SQLite waits this long for a lock held by another connection (or by ostler taking
/// a backup) before it reports "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A column value or a statement parameter. Guestbook stores only integers and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

pub type Row = Vec<Value>;

impl Value {
    pub fn int(&self) -> Result<i64> {
        match self {
            Value::Int(i) => Ok(*i),
            other => bail!("expected an integer column, got {other:?}"),
        }
    }

    pub fn text(self) -> Result<String> {
        match self {
            Value::Text(s) => Ok(s),
            other => bail!("expected a text column, got {other:?}"),
        }
    }

    pub fn opt_text(self) -> Result<Option<String>> {
        match self {
            Value::Null => Ok(None),
            other => other.text().map(Some),
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Value {
        s.map_or(Value::Null, Value::from)
    }
}

/// What a transaction will do; SQLite takes its write lock up front for `Write` so
/// two writers never deadlock on a lock upgrade, PostgreSQL and MySQL get a single
/// snapshot for `Read` so the entries and their tags agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    Read,
    Write,
}

/// One open connection.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
    Mysql(mysql::Conn),
}

impl Db {
    pub fn connect(target: &DbTarget) -> Result<Db> {
        match target {
            DbTarget::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)
                    .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
                conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
                let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
                if !mode.eq_ignore_ascii_case("wal") {
                    bail!(
                        "SQLite database {} refused WAL mode (got {mode})",
                        path.display()
                    );
                }
                conn.execute_batch("PRAGMA foreign_keys = ON")?;
                Ok(Db::Sqlite(conn))
            }
            DbTarget::Postgres(r) => {
                let mut config = postgres::Config::new();
                config
                    .host(&r.host)
                    .port(r.port)
                    .user(&r.user)
                    .dbname(&r.database)
                    .application_name("guestbook")
                    .connect_timeout(CONNECT_TIMEOUT);
                if let Some(pw) = &r.password {
                    config.password(pw);
                }
                let client = config
                    .connect(postgres::NoTls)
                    .with_context(|| format!("cannot connect to {target}"))?;
                Ok(Db::Postgres(client))
            }
            DbTarget::Mysql(r) => {
                let opts = mysql::OptsBuilder::new()
                    .ip_or_hostname(Some(r.host.clone()))
                    .tcp_port(r.port)
                    .user(Some(r.user.clone()))
                    .pass(r.password.clone())
                    .db_name(Some(r.database.clone()))
                    .prefer_socket(false)
                    .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
                    .init(vec!["SET NAMES utf8mb4 COLLATE utf8mb4_bin"]);
                let conn = mysql::Conn::new(opts)
                    .with_context(|| format!("cannot connect to {target}"))?;
                Ok(Db::Mysql(conn))
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
            Db::Mysql(_) => Engine::Mysql,
        }
    }

    /// Runs a statement that returns no rows; returns the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let changed = match self {
            Db::Sqlite(c) => c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params))? as u64,
            Db::Postgres(c) => {
                let stmt = c.prepare(&pg_placeholders(sql))?;
                let args = pg_args(stmt.params(), params)?;
                c.execute(&stmt, &pg_refs(&args))?
            }
            Db::Mysql(c) => {
                c.exec_drop(sql, mysql_params(params))?;
                c.affected_rows()
            }
        };
        Ok(changed)
    }

    /// Runs an `INSERT` into a table whose key column is `id`; returns the new id.
    pub fn insert(&mut self, sql: &str, params: &[Value]) -> Result<i64> {
        match self {
            Db::Sqlite(c) => {
                c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(params))?;
                Ok(c.last_insert_rowid())
            }
            Db::Postgres(_) => {
                let rows = self.query(&format!("{sql} RETURNING id"), params)?;
                rows.first()
                    .and_then(|r| r.first())
                    .context("INSERT ... RETURNING id gave no row")?
                    .int()
            }
            Db::Mysql(c) => {
                c.exec_drop(sql, mysql_params(params))?;
                i64::try_from(c.last_insert_id()).context("generated id out of range")
            }
        }
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
                    (0..n).map(|i| row.get_ref(i).map(sqlite_value)).collect()
                })?;
                rows.map(|r| r.map_err(Into::into)).collect()
            }
            Db::Postgres(c) => {
                let stmt = c.prepare(&pg_placeholders(sql))?;
                let args = pg_args(stmt.params(), params)?;
                c.query(&stmt, &pg_refs(&args))?
                    .iter()
                    .map(pg_row)
                    .collect()
            }
            Db::Mysql(c) => {
                let rows: Vec<mysql::Row> = c.exec(sql, mysql_params(params))?;
                rows.into_iter()
                    .map(|r| r.unwrap().into_iter().map(mysql_value).collect())
                    .collect()
            }
        }
    }

    /// Runs one statement with no parameters through the plain-text protocol: DDL,
    /// `BEGIN`, `COMMIT`, `LOCK TABLE`...
    pub fn execute_raw(&mut self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql)?,
            Db::Postgres(c) => c.batch_execute(sql)?,
            Db::Mysql(c) => c.query_drop(sql)?,
        }
        Ok(())
    }

    /// Runs `f` in a transaction: committed if it returns `Ok`, rolled back if not.
    pub fn transaction<T>(
        &mut self,
        mode: TxMode,
        f: impl FnOnce(&mut Db) -> Result<T>,
    ) -> Result<T> {
        let begin = match (self.engine(), mode) {
            (Engine::Sqlite, TxMode::Read) => "BEGIN DEFERRED",
            (Engine::Sqlite, TxMode::Write) => "BEGIN IMMEDIATE",
            (Engine::Postgres, TxMode::Read) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            (Engine::Postgres, TxMode::Write) => "BEGIN",
            (Engine::Mysql, TxMode::Read) => {
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
            }
            (Engine::Mysql, TxMode::Write) => "START TRANSACTION",
        };
        self.execute_raw(begin)?;
        match f(self) {
            Ok(value) => {
                self.execute_raw("COMMIT")?;
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = self.execute_raw("ROLLBACK") {
                    tracing::warn!("rollback failed after {err:#}: {rollback:#}");
                }
                Err(err)
            }
        }
    }

    /// Cheapest round trip that proves the connection still works.
    pub fn ping(&mut self) -> Result<()> {
        self.query("SELECT 1", &[]).map(drop)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::from(*i),
            Value::Text(s) => ToSqlOutput::from(s.as_str()),
        })
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Text(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

/// Rewrites `?` placeholders as `$1, $2...`. Guestbook's SQL has no `?` inside
/// string literals, so a plain scan is enough.
fn pg_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

type PgArg = Box<dyn ToSql + Sync>;

/// PostgreSQL checks parameter types strictly: an `i64` will not bind to an
/// `integer` column. So each value is converted to the type the server expects.
fn pg_args(types: &[Type], params: &[Value]) -> Result<Vec<PgArg>> {
    if types.len() != params.len() {
        bail!(
            "statement takes {} parameters, got {}",
            types.len(),
            params.len()
        );
    }
    types
        .iter()
        .zip(params)
        .map(|(ty, v)| -> Result<PgArg> {
            Ok(match (v, ty) {
                (Value::Null, &Type::INT4) => Box::new(None::<i32>),
                (Value::Null, &Type::INT8) => Box::new(None::<i64>),
                (Value::Null, _) => Box::new(None::<String>),
                (Value::Int(i), &Type::INT4) => Box::new(i32::try_from(*i)?),
                (Value::Int(i), &Type::INT8) => Box::new(*i),
                (Value::Int(i), _) => Box::new(i.to_string()),
                (Value::Text(s), _) => Box::new(s.clone()),
            })
        })
        .collect()
}

fn pg_refs(args: &[PgArg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let v = match *col.type_() {
                Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(i64::from),
                Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(i64::from),
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?,
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    return Ok(row
                        .try_get::<_, Option<String>>(i)?
                        .map_or(Value::Null, Value::Text))
                }
                ref other => bail!("column {} has unsupported type {other}", col.name()),
            };
            Ok(v.map_or(Value::Null, Value::Int))
        })
        .collect()
}

fn mysql_params(params: &[Value]) -> mysql::Params {
    if params.is_empty() {
        return mysql::Params::Empty;
    }
    mysql::Params::Positional(
        params
            .iter()
            .map(|v| match v {
                Value::Null => mysql::Value::NULL,
                Value::Int(i) => mysql::Value::Int(*i),
                Value::Text(s) => mysql::Value::Bytes(s.clone().into_bytes()),
            })
            .collect(),
    )
}

fn mysql_value(v: mysql::Value) -> Result<Value> {
    Ok(match v {
        mysql::Value::NULL => Value::Null,
        mysql::Value::Int(i) => Value::Int(i),
        mysql::Value::UInt(u) => Value::Int(i64::try_from(u)?),
        mysql::Value::Bytes(b) => {
            Value::Text(String::from_utf8(b).map_err(|e| anyhow!("column is not UTF-8: {e}"))?)
        }
        other => bail!("unsupported MySQL value {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            pg_placeholders("INSERT INTO t (a, b) VALUES (?, ?)"),
            "INSERT INTO t (a, b) VALUES ($1, $2)"
        );
        assert_eq!(pg_placeholders("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn sqlite_connection_uses_wal_foreign_keys_and_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::connect(&DbTarget::Sqlite(dir.path().join("t.db"))).unwrap();
        let rows = db.query("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(rows, vec![vec![Value::Text("wal".into())]]);
        let rows = db.query("PRAGMA foreign_keys", &[]).unwrap();
        assert_eq!(rows, vec![vec![Value::Int(1)]]);
        let rows = db.query("PRAGMA busy_timeout", &[]).unwrap();
        assert_eq!(rows, vec![vec![Value::Int(5000)]]);
    }

    #[test]
    fn failed_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::connect(&DbTarget::Sqlite(dir.path().join("t.db"))).unwrap();
        db.execute_raw("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
            .unwrap();
        let err = db
            .transaction(TxMode::Write, |db| -> Result<()> {
                db.insert("INSERT INTO t (v) VALUES (?)", &["x".into()])?;
                bail!("changed my mind")
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "changed my mind");
        let id = db
            .transaction(TxMode::Write, |db| {
                db.insert("INSERT INTO t (v) VALUES (?)", &[Value::Null])
            })
            .unwrap();
        // The rolled-back insert left no trace, not even in sqlite_sequence.
        assert_eq!(id, 1);
        let rows = db.query("SELECT id, v FROM t", &[]).unwrap();
        assert_eq!(rows, vec![vec![Value::Int(1), Value::Null]]);
    }
}
