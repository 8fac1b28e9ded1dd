//! Loading a snapshot into an empty PostgreSQL database (COPY through the driver, one
//! transaction), putting rows back into a live one (a partial restore, the same COPY),
//! and the native export (one plain SQL file for psql).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ostler_rows::Row;
use postgres::Client;

use super::codec::check_line;
use super::connect::{connect, describe_io, pg_err};
use super::quote;
use super::snapshot::{POST_DATA, PRE_DATA, SEQUENCES};
use crate::engine::database::private_file;
use crate::engine::{Database, SchemaPart, TableRows, TableSpec};
use crate::error::{Error, Result};

fn part<'a>(schema: &'a [SchemaPart], name: &str) -> Option<&'a SchemaPart> {
    schema.iter().find(|p| p.name == name)
}

fn part_text<'a>(schema: &'a [SchemaPart], name: &str) -> Result<std::borrow::Cow<'a, str>> {
    let p = part(schema, name)
        .ok_or_else(|| Error::failed(format!("the PostgreSQL schema has no part {name}")))?;
    Ok(String::from_utf8_lossy(&p.bytes))
}

fn copy_from_stdin(spec: &TableSpec) -> String {
    if spec.columns.is_empty() {
        format!("COPY {} FROM stdin", spec.name)
    } else {
        let cols: Vec<String> = spec.columns.iter().map(|c| quote::ident(c)).collect();
        format!("COPY {} ({}) FROM stdin", spec.name, cols.join(", "))
    }
}

/// Writes one table's rows with `COPY t (columns) FROM STDIN`: each payload is the
/// COPY text line the snapshot read, handed back unchanged.
fn copy_table(
    client: &mut Client,
    label: &str,
    spec: &TableSpec,
    rows: Box<dyn Iterator<Item = Result<Row>> + '_>,
) -> Result<()> {
    let what = format!("writing rows of table {}", spec.name);
    let writer = client
        .copy_in(&copy_from_stdin(spec))
        .map_err(pg_err(label, &what))?;
    let mut w = BufWriter::with_capacity(1 << 20, writer);
    let io = |e: std::io::Error| Error::failed(format!("{label}: {what}: {}", describe_io(&e)));
    for row in rows {
        let row = row?;
        check_line(&row.payload, &spec.name)?;
        w.write_all(&row.payload).map_err(io)?;
        w.write_all(b"\n").map_err(io)?;
    }
    let writer = w.into_inner().map_err(|e| io(e.into_error()))?;
    writer.finish().map_err(pg_err(label, &what))?;
    Ok(())
}

/// Inserts rows into existing tables of the live database, tables in the order
/// given, in one transaction: all of them or none (a failure ends the session, which
/// rolls it back). Constraints are checked as for any insert.
pub fn insert_rows(
    db: &Database,
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let (mut client, label) = connect(db, None)?;
    let label = label.as_str();
    client
        .batch_execute("BEGIN")
        .map_err(pg_err(label, "starting the transaction"))?;
    for item in tables {
        let (spec, rows) = item?;
        copy_table(&mut client, label, &spec, rows)?;
    }
    client
        .batch_execute("COMMIT")
        .map_err(pg_err(label, "committing the rows"))?;
    Ok(())
}

/// Loads a snapshot into an empty database, in one transaction: pre-data, every
/// table's rows through COPY, post-data (indexes, constraints, triggers: built once,
/// after the data), then the sequences. A failure leaves the database as it was.
pub(super) fn load(
    db: &Database,
    database: Option<&str>,
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
) -> Result<()> {
    let pre = part_text(schema, PRE_DATA)?;
    let post = part_text(schema, POST_DATA)?;
    let sequences = part_text(schema, SEQUENCES)?;
    let (mut client, label) = connect(db, database)?;
    let label = label.as_str();
    let existing: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't' \
               AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
            &[],
        )
        .map_err(pg_err(label, "checking that the database is empty"))?
        .get(0);
    if existing > 0 {
        return Err(Error::failed(format!(
            "{label} is not empty ({existing} tables, views or sequences); a load needs an empty database"
        )));
    }
    client
        .batch_execute("BEGIN")
        .map_err(pg_err(label, "starting the load transaction"))?;
    client.batch_execute(&pre).map_err(pg_err(
        label,
        "running pre-data.sql (tables, types, functions)",
    ))?;
    for item in tables {
        let (spec, rows) = item?;
        copy_table(&mut client, label, &spec, rows)?;
    }
    client.batch_execute(&post).map_err(pg_err(
        label,
        "running post-data.sql (indexes, constraints, triggers)",
    ))?;
    client
        .batch_execute(&sequences)
        .map_err(pg_err(label, "running sequences.sql"))?;
    client
        .batch_execute("COMMIT")
        .map_err(pg_err(label, "committing the load"))?;
    Ok(())
}

/// Writes `dir/database.sql`: a plain SQL file (pre-data, `COPY ... FROM stdin` blocks,
/// sequences, post-data), as pg_dump's plain format would be, that
/// `psql -v ON_ERROR_STOP=1 -d EMPTYDB -f database.sql` restores without ostler.
pub(super) fn export(
    schema: &[SchemaPart],
    tables: &mut dyn Iterator<Item = Result<TableRows<'_>>>,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let (path, file) = private_file(dir, "database.sql")?;
    let io = |e: std::io::Error| Error::io_at("write", &path, e);
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(
        b"--\n-- PostgreSQL database exported by ostler.\n\
          -- Restore into an empty database with:\n\
          --   psql -v ON_ERROR_STOP=1 --single-transaction -d DBNAME -f database.sql\n--\n\n",
    )
    .map_err(io)?;
    w.write_all(part_text(schema, PRE_DATA)?.as_bytes())
        .map_err(io)?;
    for item in tables {
        let (spec, rows) = item?;
        write!(
            w,
            "\n--\n-- Data for {}\n--\n\n{};\n",
            spec.name,
            copy_from_stdin(&spec)
        )
        .map_err(io)?;
        for row in rows {
            let row = row?;
            check_line(&row.payload, &spec.name)?;
            w.write_all(&row.payload).map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        w.write_all(b"\\.\n").map_err(io)?;
    }
    w.write_all(b"\n--\n-- Sequences\n--\n\n").map_err(io)?;
    w.write_all(part_text(schema, SEQUENCES)?.as_bytes())
        .map_err(io)?;
    w.write_all(b"\n").map_err(io)?;
    w.write_all(part_text(schema, POST_DATA)?.as_bytes())
        .map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(vec![path])
}
