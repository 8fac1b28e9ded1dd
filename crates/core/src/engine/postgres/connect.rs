//! Reaching a PostgreSQL database through the driver: the session every connection
//! starts with, and errors that carry the server's detail, hint and context.

use std::time::Duration;

use postgres::{Client, NoTls};

use crate::engine::{Database, DbUrl};
use crate::error::{Error, Result};

/// Fixes how values print and keeps the server from ending a long backup session.
const SESSION_SETTINGS: &str =
    "SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; \
     SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET statement_timeout = 0; \
     SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0";

/// Says what failed: the server's message with its detail and hint, or the error
/// and its causes. Never holds the password (the driver does not echo it).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" (DETAIL: {detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" (HINT: {hint})"));
        }
        if let Some(context) = db.where_() {
            s.push_str(&format!(" (CONTEXT: {context})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// Like `describe`, for the I/O errors the driver's COPY reader and writer wrap
/// its errors in.
pub(super) fn describe_io(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<postgres::Error>())
    {
        Some(pg) => describe(pg),
        None => e.to_string(),
    }
}

pub(super) fn pg_err<'a>(label: &'a str, what: &'a str) -> impl Fn(postgres::Error) -> Error + 'a {
    move |e| Error::failed(format!("{label}: {what}: {}", describe(&e)))
}

/// Connects to `database` (or the URL's own) and applies `SESSION_SETTINGS`.
/// Returns the client and a label naming the database for messages.
pub(super) fn connect(db: &Database, database: Option<&str>) -> Result<(Client, String)> {
    let url = url(db)?;
    let dbname = database.unwrap_or(&url.database);
    let label = format!("PostgreSQL database {dbname} on {}:{}", url.host, url.port);
    let mut config = postgres::Config::new();
    config
        .host(&url.host)
        .port(url.port)
        .user(&url.user)
        .dbname(dbname)
        .application_name("ostler")
        .connect_timeout(Duration::from_secs(30));
    if let Some(password) = db.password() {
        config.password(password);
    }
    let mut client = config
        .connect(NoTls)
        .map_err(pg_err(&label, "connecting"))?;
    client
        .batch_execute(SESSION_SETTINGS)
        .map_err(pg_err(&label, "setting up the session"))?;
    Ok((client, label))
}

/// The URL of a PostgreSQL `Database`.
pub(super) fn url(db: &Database) -> Result<&DbUrl> {
    match db {
        Database::Postgres { url, .. } => Ok(url),
        _ => Err(Error::failed(
            "internal: the PostgreSQL engine was given another kind of database",
        )),
    }
}
