//! Reaching a MySQL/MariaDB database through the driver: the session a snapshot reads
//! in, errors with the server's code and state, and queries read back as text.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Value};

use crate::engine::{Database, DbUrl};
use crate::error::{Error, Result};

/// Session of a snapshot: UTF-8, UTC timestamps, longer sort keys and the sort
/// buffer they need (see `whole_row_order`), patience with a slow consumer.
const READ_SESSION: &str = "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'; \
     SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; SET SESSION max_sort_length = 16384; \
     SET SESSION sort_buffer_size = 4194304; \
     SET SESSION net_write_timeout = 3600; SET SESSION net_read_timeout = 3600";

pub(super) fn my_err<'a>(label: &'a str, what: &'a str) -> impl Fn(mysql::Error) -> Error + 'a {
    move |e| {
        let detail = match &e {
            mysql::Error::MySqlError(e) => format!("ERROR {} ({}): {}", e.code, e.state, e.message),
            other => other.to_string(),
        };
        Error::failed(format!("{label}: {what}: {detail}"))
    }
}

pub(super) fn connect(db: &Database, database: Option<&str>) -> Result<(Conn, String)> {
    let url = url(db)?;
    let dbname = database.unwrap_or(&url.database);
    let label = format!("MySQL database {dbname} on {}:{}", url.host, url.port);
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(url.host.clone()))
        .tcp_port(url.port)
        .user(Some(url.user.clone()))
        .pass(db.password().map(str::to_string))
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
pub(super) fn query_text(
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

pub(super) fn cell(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

/// The URL of a MySQL/MariaDB `Database`.
pub(super) fn url(db: &Database) -> Result<&DbUrl> {
    match db {
        Database::Mysql { url, .. } => Ok(url),
        _ => Err(Error::failed(
            "internal: the MySQL engine was given another kind of database",
        )),
    }
}
