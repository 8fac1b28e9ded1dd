//! PostgreSQL as backups see it.
//!
//! A snapshot is one `REPEATABLE READ READ ONLY` transaction whose snapshot is
//! exported (`pg_export_snapshot()`), so that `pg_dump --snapshot` writes the schema
//! (pre-data: types, tables, functions...; post-data: indexes, constraints, triggers)
//! as of exactly the instant the rows are read in. Rows are read table by table with
//! `COPY (SELECT ... ORDER BY key) TO STDOUT`: a row's payload is its COPY text line,
//! which `COPY ... FROM STDIN` (or `psql` reading our export) takes back unchanged, so
//! nothing is lost in translation, whatever the column types.
//!
//! Sequences are not transactional and `pg_dump --schema-only` leaves their state
//! out, so the snapshot adds a part `sequences.sql` of `setval` calls (read like
//! pg_dump reads them: possibly a little ahead of the rows, never behind).
//!
//! Session settings (`SESSION_SETTINGS`) pin how values print (time zone, date and
//! interval style, float digits), so unchanged data gives byte-identical payloads from
//! one backup to the next whatever the server's defaults.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::Command;

use ostler_rows::{KeyPart, Row};
use postgres::Client;

use super::codec::key_of_line;
use super::connect::{connect, describe_io, pg_err};
use super::quote;
use crate::engine::{Database, ForeignKey, SchemaPart, Snapshot, TableSpec};
use crate::error::{Error, Result};
use crate::exec::Runner;

pub(super) const PRE_DATA: &str = "pre-data.sql";
pub(super) const POST_DATA: &str = "post-data.sql";
pub(super) const SEQUENCES: &str = "sequences.sql";

// Type oids (stable across versions, see pg_type.dat).
const BYTEA: u32 = 17;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const UUID: u32 = 2950;

/// The ordinary tables that are the user's: not in system schemas, not temporary,
/// not members of an extension (pg_dump leaves those to `CREATE EXTENSION`).
const USER_TABLES: &str = "SELECT c.oid FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
           WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

pub struct PgSnapshot {
    client: Client,
    label: String,
    schema: Vec<SchemaPart>,
    tables: Vec<TableSpec>,
    /// Per table name: the base type oid of each of its columns, in `columns` order.
    column_types: HashMap<String, Vec<u32>>,
}

impl PgSnapshot {
    /// Opens the snapshot: starts the transaction, lists the tables and locks them
    /// (a `TRUNCATE` is not MVCC-safe and would otherwise empty a table under us),
    /// reads the sequences, and runs pg_dump (through `runner`) on the same snapshot
    /// for the schema.
    pub fn open(db: &Database, database: Option<&str>, runner: &Runner) -> Result<PgSnapshot> {
        let (mut client, label) = connect(db, database)?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(pg_err(&label, "starting the snapshot transaction"))?;
        let snapshot_id: String = client
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
            .map_err(pg_err(&label, "exporting the snapshot"))?
            .get(0);
        let (tables, column_types) = read_tables(&mut client, &label)?;
        lock_tables(&mut client, &label, &tables)?;
        let sequences = read_sequences(&mut client, &label)?;
        let dbname = match db {
            Database::Postgres { url, .. } => database.unwrap_or(&url.database).to_string(),
            _ => String::new(),
        };
        // The two sections at once: each pg_dump spends most of its time starting up
        // and reading the catalogs.
        let (pre, post) = std::thread::scope(|scope| {
            let pre =
                scope.spawn(|| pg_dump(runner, db, &dbname, &snapshot_id, "pre-data", &label));
            let post = pg_dump(runner, db, &dbname, &snapshot_id, "post-data", &label);
            (pre.join(), post)
        });
        let pre =
            pre.map_err(|_| Error::failed(format!("{label}: the pg_dump thread panicked")))??;
        let post = post?;
        Ok(PgSnapshot {
            client,
            label,
            schema: vec![
                SchemaPart {
                    name: PRE_DATA.into(),
                    bytes: pre,
                },
                SchemaPart {
                    name: POST_DATA.into(),
                    bytes: post,
                },
                SchemaPart {
                    name: SEQUENCES.into(),
                    bytes: sequences.into_bytes(),
                },
            ],
            tables,
            column_types,
        })
    }
}

type TableList = (Vec<TableSpec>, HashMap<String, Vec<u32>>);

fn read_tables(client: &mut Client, label: &str) -> Result<TableList> {
    let e = pg_err(label, "listing tables");
    let mut by_oid: HashMap<u32, usize> = HashMap::new();
    let mut tables = Vec::new();
    let mut types: Vec<Vec<u32>> = Vec::new();
    let rows = client
        .query(
            &format!(
                "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.oid IN ({USER_TABLES}) ORDER BY n.nspname, c.relname"
            ),
            &[],
        )
        .map_err(&e)?;
    for row in rows {
        by_oid.insert(row.get(0), tables.len());
        tables.push(TableSpec {
            name: row.get(1),
            columns: Vec::new(),
            key_columns: Vec::new(),
            foreign_keys: Vec::new(),
        });
        types.push(Vec::new());
    }
    // Generated columns are computed on load, and COPY FROM refuses them.
    let columns = client
        .query(
            &format!(
                "SELECT a.attrelid, a.attname::text, \
                        CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid IN ({USER_TABLES}) AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' \
                 ORDER BY a.attrelid, a.attnum"
            ),
            &[],
        )
        .map_err(&e)?;
    for row in columns {
        if let Some(&i) = by_oid.get(&row.get::<_, u32>(0)) {
            tables[i].columns.push(row.get(1));
            types[i].push(row.get(2));
        }
    }
    let keys = client
        .query(
            &format!(
                "SELECT i.indrelid, a.attname::text FROM pg_catalog.pg_index i \
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indisprimary AND i.indrelid IN ({USER_TABLES}) \
                 ORDER BY i.indrelid, k.ord"
            ),
            &[],
        )
        .map_err(&e)?;
    for row in keys {
        if let Some(&i) = by_oid.get(&row.get::<_, u32>(0)) {
            tables[i].key_columns.push(row.get(1));
        }
    }
    let fks = client
        .query(
            &format!(
                "SELECT con.conrelid, format('%I.%I', rn.nspname, rc.relname), \
                   ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                         ORDER BY k.o), \
                   ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                         ORDER BY k.o) \
                 FROM pg_catalog.pg_constraint con \
                 JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid \
                 JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
                 WHERE con.contype = 'f' AND con.conrelid IN ({USER_TABLES}) \
                 ORDER BY con.conrelid, con.conname"
            ),
            &[],
        )
        .map_err(&e)?;
    for row in fks {
        if let Some(&i) = by_oid.get(&row.get::<_, u32>(0)) {
            tables[i].foreign_keys.push(ForeignKey {
                ref_table: row.get(1),
                columns: row.get(2),
                ref_columns: row.get(3),
            });
        }
    }
    let column_types = tables.iter().map(|t| t.name.clone()).zip(types).collect();
    Ok((tables, column_types))
}

fn lock_tables(client: &mut Client, label: &str, tables: &[TableSpec]) -> Result<()> {
    for chunk in tables.chunks(200) {
        let names: Vec<&str> = chunk.iter().map(|t| t.name.as_str()).collect();
        client
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                names.join(", ")
            ))
            .map_err(pg_err(
                label,
                "locking the tables against TRUNCATE and DROP",
            ))?;
    }
    Ok(())
}

/// `SELECT pg_catalog.setval(...)` for every sequence of the user's schemas.
fn read_sequences(client: &mut Client, label: &str) -> Result<String> {
    let names: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND c.relpersistence <> 't' \
               AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                   WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY n.nspname, c.relname",
            &[],
        )
        .map_err(pg_err(label, "listing sequences"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = String::new();
    for name in names {
        let what = format!("reading sequence {name}");
        let row = client
            .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
            .map_err(pg_err(label, &what))?;
        let last: i64 = row.get(0);
        let called: bool = row.get(1);
        out.push_str(&format!(
            "SELECT pg_catalog.setval({}, {last}, {called});\n",
            quote::string(&name)
        ));
    }
    Ok(out)
}

/// Runs `pg_dump --section=SECTION` on the exported snapshot, the password in its
/// environment, and returns its SQL without psql's `\restrict` lines (see `strip_restrict`).
fn pg_dump(
    runner: &Runner,
    db: &Database,
    dbname: &str,
    snapshot: &str,
    section: &str,
    label: &str,
) -> Result<Vec<u8>> {
    let mut cmd = Command::new("pg_dump");
    cmd.args(db.client_args())
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--section={section}"))
        // Owners, grants, tablespaces and subscriptions name things of the source
        // server; a restore into another database or server must not need them.
        .args([
            "--format=plain",
            "--no-owner",
            "--no-privileges",
            "--no-tablespaces",
            "--no-subscriptions",
        ])
        // The database name in the environment: as an argument, a name holding `=`
        // would be read as a connection string.
        .env("PGDATABASE", dbname)
        .env_remove("PGOPTIONS")
        .envs(db.child_env());
    let sql = runner.run_bytes(&mut cmd).map_err(|e| match e {
        Error::Failed { message, hint } => Error::Failed {
            message: format!("{label}: {message}"),
            hint,
        },
        e => e,
    })?;
    Ok(strip_restrict(&sql))
}

/// Removes the `\restrict KEY` / `\unrestrict KEY` lines that pg_dump (15.14, 16.10,
/// 17.6 and later) wraps its output in: they are psql commands, not SQL, so the
/// parts could not be run through a driver, and their random key would make every
/// backup's schema look changed. The export adds nothing in their place; its only
/// psql-specific content is the COPY data, which psql never reads as commands.
fn strip_restrict(sql: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len());
    for line in sql.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"\\restrict ") || line.starts_with(b"\\unrestrict ") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

fn is_int_type(oid: u32) -> bool {
    matches!(oid, INT2 | INT4 | INT8 | OID)
}

/// The ORDER BY term for one key column, chosen so that the server's order is the
/// order of our `KeyPart`s: integers numerically; text by bytes (`COLLATE "C"`);
/// bytea and uuid natively (their text is hex, whose byte order is theirs); dates
/// and timestamps natively too (same order as their ISO text for years 1000-9999,
/// and it keeps the index usable); anything else by its output text in byte order.
/// Where this still misses (`char(n)` padding, years past 9999, BC dates) the caller
/// sees the order broken and sorts.
fn key_order_term(column: &str, oid: u32) -> String {
    let c = quote::ident(column);
    match oid {
        INT2 | INT4 | INT8 | OID | BYTEA | UUID | DATE | TIMESTAMP | TIMESTAMPTZ => c,
        TEXT | VARCHAR | NAME => format!("{c} COLLATE \"C\""),
        _ => format!("pg_catalog.format('%s', {c}) COLLATE \"C\""),
    }
}

/// An expression giving exactly the COPY text of a row (fields escaped as COPY does,
/// `\N` for NULL, tabs between), so that tables without a primary key, whose key is
/// the whole line, come out in the key's byte order and with identical rows next to
/// each other (which the duplicate counter relies on).
fn copy_line_expr(columns: &[String]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|col| {
            let c = quote::ident(col);
            let mut e = format!("pg_catalog.format('%s', {c})");
            e = format!("pg_catalog.replace({e}, '\\', '\\\\')");
            for (code, letter) in [
                (8, 'b'),
                (12, 'f'),
                (10, 'n'),
                (13, 'r'),
                (9, 't'),
                (11, 'v'),
            ] {
                e = format!("pg_catalog.replace({e}, pg_catalog.chr({code}), '\\{letter}')");
            }
            format!("(CASE WHEN {c} IS NULL THEN '\\N' ELSE {e} END)")
        })
        .collect();
    format!(
        "({}) COLLATE \"C\"",
        fields.join(" || pg_catalog.chr(9) || ")
    )
}

impl Snapshot for PgSnapshot {
    fn schema(&self) -> &[SchemaPart] {
        &self.schema
    }

    fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let label = &self.label;
        let name = &table.name;
        let types = self
            .column_types
            .get(name)
            .filter(|t| t.len() == table.columns.len())
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
            key_at.push((i, is_int_type(types[i])));
        }
        let cols: Vec<String> = table.columns.iter().map(|c| quote::ident(c)).collect();
        let query = if cols.is_empty() {
            format!("COPY (SELECT FROM ONLY {name}) TO STDOUT")
        } else {
            let order = if key_at.is_empty() {
                copy_line_expr(&table.columns)
            } else {
                key_at
                    .iter()
                    .map(|&(i, _)| key_order_term(&table.columns[i], types[i]))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "COPY (SELECT {} FROM ONLY {name} ORDER BY {order}) TO STDOUT",
                cols.join(", ")
            )
        };
        let what = format!("reading table {name}");
        let mut reader = self.client.copy_out(&query).map_err(pg_err(label, &what))?;
        let bad = |detail: String| Error::failed(format!("{label}: {what}: {detail}"));
        let mut previous: Vec<u8> = Vec::new();
        let mut duplicates: i64 = 0;
        let mut first = true;
        loop {
            let mut line = Vec::with_capacity(previous.len().max(64));
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| bad(describe_io(&e)))?;
            if n == 0 {
                break;
            }
            if line.pop() != Some(b'\n') {
                return Err(bad("COPY output ended in the middle of a row".into()));
            }
            let key = if key_at.is_empty() {
                // No primary key: the whole line, and a counter for identical lines.
                if !first && line == previous {
                    duplicates += 1;
                } else {
                    duplicates = 0;
                    previous.clone_from(&line);
                }
                first = false;
                vec![KeyPart::Bytes(line.clone()), KeyPart::Int(duplicates)]
            } else {
                key_of_line(&line, &key_at).map_err(bad)?
            };
            sink(Row { key, payload: line })?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .map_err(pg_err(&self.label, "ending the snapshot transaction"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_restrict_drops_only_the_psql_lines() {
        let sql = b"\\restrict abc\nSET x = 1;\n\\unrestrict abc\n";
        assert_eq!(strip_restrict(sql), b"SET x = 1;\n");
    }
}
