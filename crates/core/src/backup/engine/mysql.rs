//! MySQL and MariaDB as backups see them.
//!
//! A snapshot is one `REPEATABLE READ` transaction started `WITH CONSISTENT SNAPSHOT,
//! READ ONLY` (what `mysqldump --single-transaction` does; consistent for InnoDB
//! tables, not for MyISAM and other non-transactional engines). The schema is the
//! server's own DDL: `SHOW CREATE TABLE` for every base table (AUTO_INCREMENT counters
//! included), then routines and views, in part `schema.sql`; triggers, which must not
//! fire while rows are loaded, in part `post-data.sql`. Definers are left out, as
//! pg_dump's `--no-owner` does, so a restore by another user works.
//!
//! A row's payload is an SQL value tuple, `(1,'it\'s',NULL,X'00FF')`, ready for
//! `INSERT ... VALUES`: numbers as the server prints them, binary strings (blobs,
//! `BINARY`, `BIT`, geometry) as hex literals so any bytes survive, everything else
//! as a string escaped exactly as the server's `QUOTE()` escapes (backslash, quote,
//! NUL and Ctrl-Z), which lets a table without a primary key be ordered by its
//! payload on the server (`whole_row_order`). Strings use backslash escapes, so
//! whatever runs them sets `sql_mode` first (our header does, as mysqldump's does).
//!
//! The session prints TIMESTAMPs in UTC (`time_zone = '+00:00'`, as mysqldump does),
//! so the same data gives the same payload whatever the server's zone.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Value};
use ostler_rows::{KeyPart, Row};

use super::{ForeignKey, SchemaPart, Snapshot, SqlValue, TableRows, TableSpec};
use crate::database::Database;
use crate::error::{Error, Result};

const SCHEMA: &str = "schema.sql";
const POST_DATA: &str = "post-data.sql";

/// Session of a snapshot: UTF-8, UTC timestamps, longer sort keys and the sort
/// buffer they need (see `whole_row_order`), patience with a slow consumer.
const READ_SESSION: &str = "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'; \
     SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; SET SESSION max_sort_length = 16384; \
     SET SESSION sort_buffer_size = 4194304; \
     SET SESSION net_write_timeout = 3600; SET SESSION net_read_timeout = 3600";

/// The mode rows are loaded in: `0` stays `0` in AUTO_INCREMENT columns, backslash
/// escapes on, and a value the table cannot hold is an error, not a silent truncation.
const LOAD_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES";

/// One INSERT statement holds rows up to about this many bytes.
const STATEMENT_BYTES: usize = 1 << 20;

/// How a column's values are written in a payload and used in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Integer types that fit an i64: key part `Int`.
    Int,
    /// `BIGINT UNSIGNED`: key part `Bytes` of the big-endian u64 (same order).
    UnsignedBig,
    /// Decimal and floating point: written as printed, keyed by that text.
    Number,
    /// Byte strings: written as hex literals, keyed by their bytes.
    Binary,
    /// Everything else: quoted strings (text, dates, times, enums, JSON...).
    Text,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    kind: Kind,
    /// The server's native order of the column is the byte order of its key part.
    natural_order: bool,
}

fn column_of(data_type: &str, column_type: &str) -> Column {
    let t = data_type.to_ascii_lowercase();
    let kind = match t.as_str() {
        "bigint" if column_type.to_ascii_lowercase().contains("unsigned") => Kind::UnsignedBig,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => Kind::Int,
        "decimal" | "numeric" | "float" | "double" | "real" | "double precision" => Kind::Number,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Binary,
        _ => Kind::Text,
    };
    let natural_order = matches!(kind, Kind::Int | Kind::UnsignedBig | Kind::Binary)
        || matches!(t.as_str(), "date" | "datetime" | "timestamp");
    Column {
        kind,
        natural_order,
    }
}

pub struct MysqlSnapshot {
    conn: Conn,
    label: String,
    schema: Vec<SchemaPart>,
    tables: Vec<TableSpec>,
    /// Per table name, per column of `columns`.
    columns: HashMap<String, Vec<Column>>,
}

// The capture reads rows from a helper thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<MysqlSnapshot>();
};

fn my_err<'a>(label: &'a str, what: &'a str) -> impl Fn(mysql::Error) -> Error + 'a {
    move |e| {
        let detail = match &e {
            mysql::Error::MySqlError(e) => format!("ERROR {} ({}): {}", e.code, e.state, e.message),
            other => other.to_string(),
        };
        Error::failed(format!("{label}: {what}: {detail}"))
    }
}

/// `` `name` ``, inner backticks doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(crate) fn quote_literal(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    quote_into(&mut out, text.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

fn connect(db: &Database, database: Option<&str>) -> Result<(Conn, String)> {
    let Database::Mysql { url, password } = db else {
        return Err(Error::failed(
            "internal: the MySQL engine was given another kind of database",
        ));
    };
    let dbname = database.unwrap_or(&url.database);
    let label = format!("MySQL database {dbname} on {}:{}", url.host, url.port);
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(url.host.clone()))
        .tcp_port(url.port)
        .user(Some(url.user.clone()))
        .pass(password.clone())
        .db_name(Some(dbname.to_string()))
        // Otherwise the driver switches to the server's socket when it is local.
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(30)));
    let mut conn = Conn::new(opts).map_err(my_err(&label, "connecting"))?;
    conn.query_drop(READ_SESSION)
        .map_err(my_err(&label, "setting up the session"))?;
    Ok((conn, label))
}

/// Runs a query and returns its rows as text (NULL as `None`).
fn query_text(
    conn: &mut Conn,
    label: &str,
    what: &str,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    let e = my_err(label, what);
    let mut result = conn.query_iter(sql).map_err(&e)?;
    let mut out = Vec::new();
    for row in result.by_ref() {
        let row = row.map_err(&e)?;
        out.push(
            row.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Some(Value::NULL) | None => None,
                    Some(other) => Some(other.as_sql(true)),
                })
                .collect(),
        );
    }
    Ok(out)
}

fn cell(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

impl MysqlSnapshot {
    pub fn open(db: &Database, database: Option<&str>) -> Result<MysqlSnapshot> {
        let (mut conn, label) = connect(db, database)?;
        conn.query_drop(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
             START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        )
        .map_err(my_err(&label, "starting the snapshot transaction"))?;
        let Listing {
            tables,
            columns,
            views,
            sequences,
        } = read_tables(&mut conn, &label)?;
        let mut ddl = String::from(SCHEMA_HEADER);
        ddl.push_str(&read_sequences(&mut conn, &label, &sequences)?);
        for t in &tables {
            let what = format!("reading the definition of table {}", t.name);
            let rows = query_text(
                &mut conn,
                &label,
                &what,
                &format!("SHOW CREATE TABLE {}", quote_ident(&t.name)),
            )?;
            let create = rows
                .first()
                .and_then(|r| r.get(1).cloned().flatten())
                .ok_or_else(|| {
                    Error::failed(format!("{label}: {what}: the server returned nothing"))
                })?;
            ddl.push_str(&format!("\n{create};\n"));
        }
        ddl.push_str(&read_routines(&mut conn, &label)?);
        ddl.push_str(&read_views(&mut conn, &label, &views)?);
        let mut post = read_triggers(&mut conn, &label)?;
        // The server names objects of this database with its name now and then
        // (MariaDB: `DEFAULT nextval(`db`.`seq`)`); a restore into another database
        // must find its own.
        let current = query_text(
            &mut conn,
            &label,
            "reading the database name",
            "SELECT DATABASE()",
        )?;
        let current = current.first().map(|r| cell(r, 0)).unwrap_or_default();
        if !current.is_empty() {
            let qualifier = format!("{}.", quote_ident(&current));
            ddl = ddl.replace(&qualifier, "");
            post = post.replace(&qualifier, "");
        }
        Ok(MysqlSnapshot {
            conn,
            label,
            schema: vec![
                SchemaPart {
                    name: SCHEMA.into(),
                    bytes: ddl.into_bytes(),
                },
                SchemaPart {
                    name: POST_DATA.into(),
                    bytes: post.into_bytes(),
                },
            ],
            tables,
            columns,
        })
    }
}

/// What `schema.sql` starts with: the session a restore needs (as mysqldump's own
/// header sets it), so the part runs right in the `mariadb` client as in ostler.
const SCHEMA_HEADER: &str = "-- MySQL/MariaDB schema captured by ostler\n\
     /*!40101 SET NAMES utf8mb4 */;\n\
     SET SESSION time_zone = '+00:00';\n\
     SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES';\n\
     SET FOREIGN_KEY_CHECKS = 0;\n\
     SET UNIQUE_CHECKS = 0;\n";

/// What a database holds besides routines and triggers.
struct Listing {
    tables: Vec<TableSpec>,
    columns: HashMap<String, Vec<Column>>,
    views: Vec<String>,
    /// MariaDB's `CREATE SEQUENCE` objects.
    sequences: Vec<String>,
}

fn read_tables(conn: &mut Conn, label: &str) -> Result<Listing> {
    let what = "listing tables";
    let mut names = Vec::new();
    let mut views = Vec::new();
    let mut sequences = Vec::new();
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )? {
        match cell(&row, 1).as_str() {
            // A system-versioned table (MariaDB) is taken as it is now; its history
            // is not kept (as mysqldump does by default).
            "BASE TABLE" | "SYSTEM VERSIONED" => names.push(cell(&row, 0)),
            "VIEW" => views.push(cell(&row, 0)),
            "SEQUENCE" => sequences.push(cell(&row, 0)),
            other => {
                return Err(Error::failed(format!(
                    "{label}: {what}: {} is a {other}, which ostler cannot back up yet",
                    cell(&row, 0)
                )))
            }
        }
    }
    names.sort();
    views.sort();
    sequences.sort();
    let mut tables: Vec<TableSpec> = names
        .iter()
        .map(|n| TableSpec {
            name: n.clone(),
            columns: Vec::new(),
            key_columns: Vec::new(),
            foreign_keys: Vec::new(),
        })
        .collect();
    let index: HashMap<String, usize> = names
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let mut columns: Vec<Vec<Column>> = vec![Vec::new(); tables.len()];
    // Generated columns are computed on load, and refuse values.
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND COALESCE(GENERATION_EXPRESSION, '') = '' \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )? {
        if let Some(&i) = index.get(&cell(&row, 0)) {
            tables[i].columns.push(cell(&row, 1));
            columns[i].push(column_of(&cell(&row, 2), &cell(&row, 3)));
        }
    }
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX",
    )? {
        if let Some(&i) = index.get(&cell(&row, 0)) {
            tables[i].key_columns.push(cell(&row, 1));
        }
    }
    let mut last: Option<(usize, String)> = None;
    for row in query_text(
        conn,
        label,
        what,
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, \
                REFERENCED_COLUMN_NAME, REFERENCED_TABLE_SCHEMA = DATABASE() \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
    )? {
        let Some(&i) = index.get(&cell(&row, 0)) else { continue };
        let constraint = cell(&row, 1);
        let same = last.as_ref().is_some_and(|(t, c)| *t == i && *c == constraint);
        if !same {
            let ref_table = if cell(&row, 6) == "1" {
                cell(&row, 4)
            } else {
                format!("{}.{}", cell(&row, 3), cell(&row, 4))
            };
            tables[i].foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table,
                ref_columns: Vec::new(),
            });
            last = Some((i, constraint));
        }
        if let Some(fk) = tables[i].foreign_keys.last_mut() {
            fk.columns.push(cell(&row, 2));
            fk.ref_columns.push(cell(&row, 5));
        }
    }
    let columns = names.into_iter().zip(columns).collect();
    Ok(Listing {
        tables,
        columns,
        views,
        sequences,
    })
}

/// MariaDB sequences, before the tables (a column default may call `NEXTVAL`), each
/// set to where it stood in the snapshot (a sequence is an InnoDB table, read
/// consistently with the rows), as mariadb-dump does.
fn read_sequences(conn: &mut Conn, label: &str, names: &[String]) -> Result<String> {
    let mut out = String::new();
    for name in names {
        let shown = show_create(conn, label, "SEQUENCE", name, 1)?;
        let what = format!("reading sequence {name}");
        let next = query_text(
            conn,
            label,
            &what,
            &format!("SELECT next_not_cached_value FROM {}", quote_ident(name)),
        )?;
        let next = next.first().map(|r| cell(r, 0)).unwrap_or_default();
        if next.parse::<i64>().is_err() {
            return Err(Error::failed(format!(
                "{label}: {what}: unexpected value {next:?}"
            )));
        }
        out.push_str(&format!(
            "\n{};\nDO SETVAL({}, {next}, 0);\n",
            cell(&shown, 1),
            quote_ident(name)
        ));
    }
    Ok(out)
}

/// `SHOW CREATE ...` of one object: column `col` of its single row.
fn show_create(
    conn: &mut Conn,
    label: &str,
    kind: &str,
    name: &str,
    col: usize,
) -> Result<Vec<Option<String>>> {
    let what = format!(
        "reading the definition of {} {name}",
        kind.to_ascii_lowercase()
    );
    let rows = query_text(
        conn,
        label,
        &what,
        &format!("SHOW CREATE {kind} {}", quote_ident(name)),
    )?;
    match rows.into_iter().next() {
        Some(row) if row.get(col).is_some_and(Option::is_some) => Ok(row),
        _ => Err(Error::failed(format!(
            "{label}: {what}: the server did not show it (missing privilege?)"
        ))),
    }
}

/// Statements in a `DELIMITER ;;` block, each with the sql_mode it was created in
/// (it decides how its body parses), then the load mode back.
fn delimited_block(statements: &[(String, String)]) -> String {
    if statements.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nDELIMITER ;;\n");
    for (mode, sql) in statements {
        out.push_str(&format!(
            "SET SESSION sql_mode = {}\n;;\n{sql}\n;;\n",
            quote_literal(mode)
        ));
    }
    out.push_str(&format!(
        "DELIMITER ;\nSET SESSION sql_mode = '{LOAD_SQL_MODE}';\n"
    ));
    out
}

fn read_routines(conn: &mut Conn, label: &str) -> Result<String> {
    let list = query_text(
        conn,
        label,
        "listing routines",
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
    )?;
    let mut statements = Vec::new();
    for row in list {
        let kind = cell(&row, 0);
        // MariaDB's Oracle-mode packages are not handled yet.
        if kind != "PROCEDURE" && kind != "FUNCTION" {
            continue;
        }
        let shown = show_create(conn, label, &kind, &cell(&row, 1), 2)?;
        statements.push((cell(&shown, 1), strip_definer(&cell(&shown, 2))));
    }
    Ok(delimited_block(&statements))
}

fn read_triggers(conn: &mut Conn, label: &str) -> Result<String> {
    let list = query_text(
        conn,
        label,
        "listing triggers",
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
         ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
    )?;
    let mut statements = Vec::new();
    for row in list {
        let shown = show_create(conn, label, "TRIGGER", &cell(&row, 0), 2)?;
        statements.push((cell(&shown, 1), strip_definer(&cell(&shown, 2))));
    }
    let mut out =
        String::from("-- MySQL/MariaDB triggers captured by ostler (created after the rows)\n");
    out.push_str(&delimited_block(&statements));
    Ok(out)
}

/// Views, each after the views it names (a view can only be created once those exist).
fn read_views(conn: &mut Conn, label: &str, names: &[String]) -> Result<String> {
    let mut pending = Vec::new();
    for name in names {
        let shown = show_create(conn, label, "VIEW", name, 1)?;
        pending.push((name.clone(), strip_definer(&cell(&shown, 1))));
    }
    let mut out = String::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, sql)| {
                !pending
                    .iter()
                    .any(|(other, other_sql)| other_sql != sql && sql.contains(&quote_ident(other)))
            })
            .unwrap_or(0);
        let (_, sql) = pending.remove(ready);
        out.push_str(&format!("\n{sql};\n"));
    }
    Ok(out)
}

/// Removes the `DEFINER=user@host` clause, so the restoring user becomes the definer
/// (creating objects for another user needs privileges a restore may not have).
/// Leaves the text alone when the clause is not in the expected form.
fn strip_definer(sql: &str) -> String {
    const CLAUSE: &str = "DEFINER=";
    let Some(start) = sql.find(CLAUSE) else {
        return sql.to_string();
    };
    let rest = &sql[start + CLAUSE.len()..];
    let Some(user) = account_part_len(rest) else {
        return sql.to_string();
    };
    let Some(host_text) = rest[user..].strip_prefix('@') else {
        return sql.to_string();
    };
    let Some(host) = account_part_len(host_text) else {
        return sql.to_string();
    };
    let end = start + CLAUSE.len() + user + 1 + host;
    format!("{}{}", &sql[..start], sql[end..].trim_start_matches(' '))
}

/// Length of a quoted (`` ` `` or `'`, doubled to escape) or bare account name part.
fn account_part_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let quote = *bytes.first()?;
    if quote == b'`' || quote == b'\'' {
        let mut i = 1;
        while i < bytes.len() {
            if bytes[i] == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return Some(i + 1);
            }
            i += 1;
        }
        None
    } else {
        let n = s
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
            .count();
        (n > 0).then_some(n)
    }
}

/// The ORDER BY term of a key column: native where its order is the byte order of
/// our key part, else the bytes of its text (what the key part holds). The server
/// cannot use the primary key index for the latter, so a text-keyed table is sorted
/// by the server (as it would otherwise be by the caller).
fn key_order_term(name: &str, column: Column) -> String {
    let c = quote_ident(name);
    if column.natural_order {
        c
    } else {
        format!("CAST(CONVERT({c} USING utf8mb4) AS BINARY)")
    }
}

/// Orders a table without a primary key (whose key is the payload) by its key: the
/// bytes of the row's payload, built on the server as `encode_value` builds it, then
/// a hash of them. The server compares only the first `max_sort_length` bytes of a
/// sort key (16 KB here; longer costs sort buffer), so rows alike that far come out
/// in hash order: identical rows are still next to each other, as the duplicate
/// counter needs, and the caller, finding the order broken, sorts. It does so too
/// where the server prints a value differently from the driver (BIT).
fn whole_row_order(names: &[String], columns: &[Column]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(columns)
        .map(|(name, column)| {
            let c = quote_ident(name);
            match column.kind {
                Kind::Int | Kind::UnsignedBig | Kind::Number => {
                    format!("IFNULL(CAST({c} AS CHAR), 'NULL')")
                }
                Kind::Binary => format!("IFNULL(CONCAT('X''', HEX({c}), ''''), 'NULL')"),
                Kind::Text => format!("CONVERT(QUOTE({c}) USING utf8mb4)"),
            }
        })
        .collect();
    let row = format!(
        "CAST(CONCAT('(', {}, ')') AS BINARY)",
        parts.join(", ',', ")
    );
    format!("{row}, MD5({row})")
}

/// Appends `'text'` escaped as `QUOTE()` does: backslash, quote, NUL and Ctrl-Z.
fn quote_into(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'\'');
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
}

fn is_number(bytes: &[u8]) -> bool {
    bytes.iter().any(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

fn encode_value(out: &mut Vec<u8>, value: &Value, kind: Kind) {
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Bytes(b) => match kind {
            Kind::Int | Kind::UnsignedBig | Kind::Number if is_number(b) => {
                out.extend_from_slice(b)
            }
            Kind::Binary => {
                out.extend_from_slice(b"X'");
                out.extend_from_slice(hex::encode_upper(b).as_bytes());
                out.push(b'\'');
            }
            _ => quote_into(out, b),
        },
        // The text protocol sends only bytes and NULL; the driver's own rendering
        // is right for the typed values of the binary protocol.
        other => out.extend_from_slice(other.as_sql(false).as_bytes()),
    }
}

fn key_part(value: &Value, kind: Kind) -> std::result::Result<KeyPart, String> {
    let Value::Bytes(b) = value else {
        return Err(format!("a primary key column holds {value:?}"));
    };
    let text = || std::str::from_utf8(b).unwrap_or("");
    match kind {
        Kind::Int => text()
            .parse::<i64>()
            .map(KeyPart::Int)
            .map_err(|_| format!("bad integer key {:?}", String::from_utf8_lossy(b))),
        Kind::UnsignedBig => text()
            .parse::<u64>()
            .map(|v| KeyPart::Bytes(v.to_be_bytes().to_vec()))
            .map_err(|_| format!("bad integer key {:?}", String::from_utf8_lossy(b))),
        _ => Ok(KeyPart::Bytes(b.clone())),
    }
}

impl Snapshot for MysqlSnapshot {
    fn schema(&self) -> &[SchemaPart] {
        &self.schema
    }

    fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let label = &self.label;
        let name = &table.name;
        let columns = self
            .columns
            .get(name)
            .filter(|c| c.len() == table.columns.len() && !c.is_empty())
            .ok_or_else(|| {
                Error::failed(format!(
                    "{label}: table {name} is not part of this snapshot"
                ))
            })?;
        let mut key_at = Vec::with_capacity(table.key_columns.len());
        for k in &table.key_columns {
            let i = table.columns.iter().position(|c| c == k).ok_or_else(|| {
                Error::failed(format!(
                    "{label}: table {name}: key column {k} is not a stored column"
                ))
            })?;
            key_at.push(i);
        }
        let order = if key_at.is_empty() {
            whole_row_order(&table.columns, columns)
        } else {
            key_at
                .iter()
                .map(|&i| key_order_term(&table.columns[i], columns[i]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {order}",
            cols.join(", "),
            quote_ident(name)
        );
        let what = format!("reading table {name}");
        let e = my_err(label, &what);
        let bad = |detail: String| Error::failed(format!("{label}: {what}: {detail}"));
        // Streams: the driver reads each row off the socket as it is asked for.
        let mut result = self.conn.query_iter(sql).map_err(&e)?;
        let mut previous: Vec<u8> = Vec::new();
        let mut duplicates: i64 = 0;
        let mut first = true;
        for row in result.by_ref() {
            let values = row.map_err(&e)?.unwrap_raw();
            if values.len() != columns.len() {
                return Err(bad(format!(
                    "a row has {} values, expected {}",
                    values.len(),
                    columns.len()
                )));
            }
            let mut payload = Vec::with_capacity(previous.len().max(64));
            payload.push(b'(');
            for (i, (value, column)) in values.iter().zip(columns).enumerate() {
                if i > 0 {
                    payload.push(b',');
                }
                encode_value(
                    &mut payload,
                    value.as_ref().unwrap_or(&Value::NULL),
                    column.kind,
                );
            }
            payload.push(b')');
            let key = if key_at.is_empty() {
                if !first && payload == previous {
                    duplicates += 1;
                } else {
                    duplicates = 0;
                    previous.clone_from(&payload);
                }
                first = false;
                vec![KeyPart::Bytes(payload.clone()), KeyPart::Int(duplicates)]
            } else {
                let mut key = Vec::with_capacity(key_at.len());
                for &i in &key_at {
                    let value = values[i].as_ref().unwrap_or(&Value::NULL);
                    key.push(key_part(value, columns[i].kind).map_err(&bad)?);
                }
                key
            };
            sink(Row { key, payload })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.conn
            .query_drop("COMMIT")
            .map_err(my_err(&self.label, "ending the snapshot transaction"))
    }
}

/// A literal of a payload tuple, as scanned (strings still escaped).
enum Literal<'a> {
    Null,
    Number(&'a [u8]),
    Hex(&'a [u8]),
    Str(&'a [u8]),
}

/// Scans a payload `(v,v,...)` whose values are literals only (NULL, numbers, hex,
/// quoted strings), and nothing else: a load splices payloads into INSERT
/// statements, so a damaged or hostile payload must never become SQL.
fn scan_tuple<'a>(
    p: &'a [u8],
    mut each: impl FnMut(Literal<'a>),
) -> std::result::Result<(), String> {
    let skip_ws = |i: &mut usize| {
        while p.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    let mut i = 0;
    skip_ws(&mut i);
    if p.get(i) != Some(&b'(') {
        return Err("does not start with `(`".into());
    }
    i += 1;
    loop {
        skip_ws(&mut i);
        let start = i;
        match p.get(i) {
            Some(b'\'') => {
                i += 1;
                loop {
                    match p.get(i) {
                        None => return Err("a string is not closed".into()),
                        Some(b'\\') => i += 2,
                        Some(b'\'') if p.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                each(Literal::Str(&p[start + 1..i - 1]));
            }
            Some(b'X' | b'x') if p.get(i + 1) == Some(&b'\'') => {
                i += 2;
                while p.get(i).is_some_and(u8::is_ascii_hexdigit) {
                    i += 1;
                }
                if p.get(i) != Some(&b'\'') || (i - start - 2) % 2 != 0 {
                    return Err("bad hex literal".into());
                }
                i += 1;
                each(Literal::Hex(&p[start + 2..i - 1]));
            }
            Some(b'0') if matches!(p.get(i + 1), Some(b'x')) => {
                i += 2;
                while p.get(i).is_some_and(u8::is_ascii_hexdigit) {
                    i += 1;
                }
                if i == start + 2 {
                    return Err("bad hex literal".into());
                }
                each(Literal::Hex(&p[start + 2..i]));
            }
            Some(b'N' | b'n') => {
                if !p
                    .get(i..i + 4)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"NULL"))
                {
                    return Err("unexpected word".into());
                }
                i += 4;
                each(Literal::Null);
            }
            Some(_) => {
                while p.get(i).is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')
                }) {
                    i += 1;
                }
                if !is_number(&p[start..i]) {
                    return Err(format!("unexpected character at byte {start}"));
                }
                each(Literal::Number(&p[start..i]));
            }
            None => return Err("ends early".into()),
        }
        skip_ws(&mut i);
        match p.get(i) {
            Some(b',') => i += 1,
            Some(b')') => {
                i += 1;
                skip_ws(&mut i);
                return if i == p.len() {
                    Ok(())
                } else {
                    Err("text after the closing `)`".into())
                };
            }
            _ => return Err(format!("expected `,` or `)` at byte {i}")),
        }
    }
}

/// Undoes MySQL string escapes (`\n`, `\0`, `\'`, `''`...).
fn unescape_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if i + 1 < s.len() => {
                let c = s[i + 1];
                match c {
                    b'0' => out.push(0),
                    b'b' => out.push(8),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'Z' => out.push(0x1a),
                    // The server keeps these two escaped (they matter to LIKE).
                    b'%' | b'_' => out.extend_from_slice(&[b'\\', c]),
                    other => out.push(other),
                }
                i += 2;
            }
            b'\'' if s.get(i + 1) == Some(&b'\'') => {
                out.push(b'\'');
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn check_tuple(payload: &[u8], table: &str) -> Result<()> {
    scan_tuple(payload, |_| {}).map_err(|detail| {
        Error::failed(format!(
            "table {table}: a row is not an SQL value tuple ({detail}); the backup is damaged"
        ))
    })
}

fn part_text<'a>(schema: &'a [SchemaPart], name: &str) -> Result<std::borrow::Cow<'a, str>> {
    let p = schema
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::failed(format!("the MySQL schema has no part {name}")))?;
    Ok(String::from_utf8_lossy(&p.bytes))
}

/// Splits a part into what a driver can run: plain text as one multi-statement
/// chunk, and each statement of a `DELIMITER ;;` block (ended by a `;;` line) alone,
/// as the `mariadb` client would send them.
fn chunks(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_block = false;
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.trim().is_empty() {
            out.push(std::mem::take(current));
        }
        current.clear();
    };
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(delimiter) = trimmed.strip_prefix("DELIMITER ") {
            flush(&mut current, &mut out);
            match delimiter.trim() {
                ";;" => in_block = true,
                ";" => in_block = false,
                other => return Err(format!("unsupported delimiter {other:?}")),
            }
        } else if in_block && trimmed == ";;" {
            flush(&mut current, &mut out);
        } else {
            current.push_str(line);
        }
    }
    if in_block {
        return Err("a DELIMITER ;; block is not closed".into());
    }
    flush(&mut current, &mut out);
    Ok(out)
}

fn run_part(conn: &mut Conn, label: &str, schema: &[SchemaPart], name: &str) -> Result<()> {
    let text = part_text(schema, name)?;
    let what = format!("running {name}");
    let pieces = chunks(&text).map_err(|d| Error::failed(format!("{label}: {what}: {d}")))?;
    for piece in pieces {
        conn.query_drop(piece).map_err(my_err(label, &what))?;
    }
    Ok(())
}

/// Feeds `INSERT INTO t (cols) VALUES` statements of about `limit` bytes to `emit`.
fn insert_statements(
    spec: &TableSpec,
    rows: Box<dyn Iterator<Item = Result<Row>> + '_>,
    limit: usize,
    emit: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let cols: Vec<String> = spec.columns.iter().map(|c| quote_ident(c)).collect();
    let head = format!(
        "INSERT INTO {} ({}) VALUES\n",
        quote_ident(&spec.name),
        cols.join(",")
    );
    let mut statement = String::with_capacity(limit + 4096);
    let mut rows_in = 0usize;
    for row in rows {
        let row = row?;
        check_tuple(&row.payload, &spec.name)?;
        let tuple = std::str::from_utf8(&row.payload).map_err(|_| {
            Error::failed(format!(
                "table {}: a row is not UTF-8; the backup is damaged",
                spec.name
            ))
        })?;
        if rows_in > 0 && statement.len() + tuple.len() > limit {
            emit(&statement)?;
            statement.clear();
            rows_in = 0;
        }
        if rows_in == 0 {
            statement.push_str(&head);
        } else {
            statement.push_str(",\n");
        }
        statement.push_str(tuple);
        rows_in += 1;
    }
    if rows_in > 0 {
        emit(&statement)?;
    }
    Ok(())
}

/// Loads a snapshot into an empty database: schema.sql (tables, routines, views),
/// the rows in one transaction of multi-row INSERTs (InnoDB loads an empty table in
/// bulk that way), then the triggers. DDL commits by itself in MySQL, so a failure
/// leaves the tables created so far; the database must be emptied before a retry.
pub fn load(
    db: &Database,
    database: Option<&str>,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let (mut conn, label) = connect(db, database)?;
    let label = label.as_str();
    let existing = query_text(
        &mut conn,
        label,
        "checking that the database is empty",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    )?;
    let existing = existing.first().map(|r| cell(r, 0)).unwrap_or_default();
    if existing != "0" {
        return Err(Error::failed(format!(
            "{label} is not empty ({existing} tables or views); a load needs an empty database"
        )));
    }
    conn.query_drop(format!(
        "SET SESSION sql_mode = '{LOAD_SQL_MODE}'; SET FOREIGN_KEY_CHECKS = 0; SET UNIQUE_CHECKS = 0"
    ))
    .map_err(my_err(label, "setting up the load session"))?;
    let packet = query_text(
        &mut conn,
        label,
        "reading max_allowed_packet",
        "SELECT @@max_allowed_packet",
    )?;
    let packet: usize = packet
        .first()
        .map(|r| cell(r, 0))
        .unwrap_or_default()
        .parse()
        .unwrap_or(1 << 22);
    let limit = STATEMENT_BYTES.min(packet.saturating_sub(64 << 10).max(64 << 10));
    run_part(&mut conn, label, schema, SCHEMA)?;
    conn.query_drop("START TRANSACTION")
        .map_err(my_err(label, "starting the load transaction"))?;
    for item in tables {
        let (spec, rows) = item?;
        let what = format!("loading table {}", spec.name);
        insert_statements(&spec, rows, limit, &mut |sql| {
            conn.query_drop(sql).map_err(my_err(label, &what))
        })?;
    }
    conn.query_drop("COMMIT")
        .map_err(my_err(label, "committing the rows"))?;
    run_part(&mut conn, label, schema, POST_DATA)?;
    conn.query_drop("SET FOREIGN_KEY_CHECKS = 1; SET UNIQUE_CHECKS = 1")
        .map_err(my_err(label, "ending the load"))?;
    Ok(())
}

/// Writes `dir/database.sql`, which `mariadb DBNAME < database.sql` (or `mysql`)
/// restores into an empty database without ostler.
pub fn export(
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    ostler_repo::private::create_dir_all(dir).map_err(|e| Error::io_at("create", dir, e))?;
    let path = dir.join("database.sql");
    let io = |e: std::io::Error| Error::io_at("write", &path, e);
    let file = ostler_repo::private::create_file(&path).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(
        b"-- MySQL/MariaDB database exported by ostler.\n\
          -- Restore into an empty database with:  mariadb DBNAME < database.sql\n\n",
    )
    .map_err(io)?;
    w.write_all(part_text(schema, SCHEMA)?.as_bytes())
        .map_err(io)?;
    w.write_all(b"\nSTART TRANSACTION;\n").map_err(io)?;
    for item in tables {
        let (spec, rows) = item?;
        write!(w, "\n-- Data for {}\n", quote_ident(&spec.name)).map_err(io)?;
        insert_statements(&spec, rows, STATEMENT_BYTES, &mut |sql| {
            w.write_all(sql.as_bytes()).map_err(io)?;
            w.write_all(b";\n").map_err(io)
        })?;
    }
    w.write_all(b"\nCOMMIT;\n\n").map_err(io)?;
    w.write_all(part_text(schema, POST_DATA)?.as_bytes())
        .map_err(io)?;
    w.write_all(b"\nSET FOREIGN_KEY_CHECKS = 1;\nSET UNIQUE_CHECKS = 1;\n")
        .map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(vec![path])
}

/// Decodes a payload tuple: NULL, integers that fit an i64 as `Int`, other numbers
/// (decimals, floats) as `Text` to keep them exact, hex literals as `Blob`, strings
/// as `Text` (or `Blob` when not UTF-8).
pub fn decode(payload: &[u8]) -> Result<Vec<SqlValue>> {
    let mut values = Vec::new();
    let mut bad_hex = false;
    scan_tuple(payload, |literal| {
        values.push(match literal {
            Literal::Null => SqlValue::Null,
            Literal::Number(n) => {
                let text = String::from_utf8_lossy(n).into_owned();
                match text.parse::<i64>() {
                    Ok(i) => SqlValue::Int(i),
                    Err(_) => SqlValue::Text(text),
                }
            }
            Literal::Hex(h) => match hex::decode(h) {
                Ok(bytes) => SqlValue::Blob(bytes),
                Err(_) => {
                    bad_hex = true;
                    SqlValue::Null
                }
            },
            Literal::Str(s) => match String::from_utf8(unescape_string(s)) {
                Ok(text) => SqlValue::Text(text),
                Err(e) => SqlValue::Blob(e.into_bytes()),
            },
        })
    })
    .map_err(|detail| Error::failed(format!("corrupt MySQL row payload: {detail}")))?;
    if bad_hex {
        return Err(Error::failed("corrupt MySQL row payload: bad hex literal"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_back_every_literal() {
        let values = decode(b"(1,-2.50,NULL,'it\\'s\\\\ a\\0''b',X'00FF',0x0a,'')").unwrap();
        assert_eq!(
            values,
            vec![
                SqlValue::Int(1),
                SqlValue::Text("-2.50".into()),
                SqlValue::Null,
                SqlValue::Text("it's\\ a\0'b".into()),
                SqlValue::Blob(vec![0, 255]),
                SqlValue::Blob(vec![10]),
                SqlValue::Text(String::new()),
            ]
        );
    }

    #[test]
    fn scan_refuses_anything_but_literals() {
        for bad in [
            &b"(1); DROP TABLE t; --"[..],
            b"(1,'open)",
            b"(SLEEP(1))",
            b"(1,NULLX)",
            b"1,2",
            b"(X'0')",
            b"()",
            b"(1,)",
        ] {
            assert!(
                scan_tuple(bad, |_| {}).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encode_quotes_like_the_server() {
        let mut out = Vec::new();
        quote_into(&mut out, b"a'b\\c\0d\x1ae\nf");
        assert_eq!(out, b"'a\\'b\\\\c\\0d\\Ze\nf'");
    }

    #[test]
    fn strip_definer_keeps_the_rest() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`a``b`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER='u'@'localhost' TRIGGER t"),
            "CREATE TRIGGER t"
        );
    }

    #[test]
    fn chunks_split_delimiter_blocks() {
        let text = "SET a = 1;\nCREATE TABLE t (x int);\nDELIMITER ;;\nCREATE TRIGGER x BEGIN SET @a = 1; END\n;;\nDELIMITER ;\nSET b = 2;\n";
        assert_eq!(
            chunks(text).unwrap(),
            vec![
                "SET a = 1;\nCREATE TABLE t (x int);\n".to_string(),
                "CREATE TRIGGER x BEGIN SET @a = 1; END\n".to_string(),
                "SET b = 2;\n".to_string()
            ]
        );
    }
}
