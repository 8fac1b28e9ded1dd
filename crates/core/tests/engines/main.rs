//! The database engines against real servers: a snapshot of awkward data, loaded into
//! a fresh database and exported for the native client, must give back exactly the
//! same rows; a snapshot must not see what others commit after it opened; rows come
//! out in key order.
//!
//! One file per engine (`postgres.rs`, `mariadb.rs`, `sqlite.rs`), the throughput
//! measurement in `throughput.rs`; here the harness they share.

mod mariadb;
mod postgres;
mod sqlite;
mod throughput;

use std::path::Path;
use std::process::{Command, Stdio};

use ostler_core::engine::{
    self, Database, DatabaseKind, SchemaPart, Snapshot, TableRows, TableSpec,
};
use ostler_core::exec::Runner;
use ostler_core::report::{Interrupt, Silent};
use ostler_rows::{Row, SortedCheck};

/// A runner that echoes and journals nothing, for the engines' own commands (pg_dump).
fn runner() -> Runner {
    Runner::new(std::sync::Arc::new(Silent), Interrupt::new())
}

/// Everything a snapshot gave: its schema parts and every table's rows, in order.
struct Captured {
    schema: Vec<SchemaPart>,
    tables: Vec<(TableSpec, Vec<Row>)>,
}

impl Captured {
    fn table(&self, name: &str) -> &(TableSpec, Vec<Row>) {
        self.tables
            .iter()
            .find(|(spec, _)| spec.name == name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }

    fn part(&self, name: &str) -> String {
        let part = self
            .schema
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no part {name}"));
        String::from_utf8_lossy(&part.bytes).into_owned()
    }

    /// The tables as `engine::load` and `engine::export` take them.
    fn feed(&self) -> impl Iterator<Item = ostler_core::Result<TableRows<'_>>> + '_ {
        self.tables.iter().map(|(spec, rows)| {
            let rows: Box<dyn Iterator<Item = ostler_core::Result<Row>>> =
                Box::new(rows.iter().cloned().map(Ok));
            Ok((spec.clone(), rows))
        })
    }
}

fn read_all(snap: &mut dyn Snapshot, spec: &TableSpec) -> Vec<Row> {
    let mut rows = Vec::new();
    snap.rows(spec, &mut |row| {
        rows.push(row);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", spec.name));
    // In ascending key order, every key distinct, as the engine gave them.
    let checked: Result<Vec<Row>, _> = SortedCheck::new(rows.iter().cloned().map(Ok)).collect();
    if let Err(e) = checked {
        panic!("table {} is not in key order: {e}", spec.name);
    }
    rows
}

fn capture(db: &Database) -> Captured {
    let tmp = tempfile::tempdir().unwrap();
    let mut snap = engine::open_snapshot(db, tmp.path(), &runner())
        .unwrap_or_else(|e| panic!("snapshot: {e}"));
    let schema = snap.schema().to_vec();
    let specs = snap.tables().to_vec();
    let tables = specs
        .into_iter()
        .map(|spec| {
            let rows = read_all(snap.as_mut(), &spec);
            (spec, rows)
        })
        .collect();
    snap.finish().unwrap();
    Captured { schema, tables }
}

fn load(db: &Database, captured: &Captured) {
    engine::load(db, None, &captured.schema, &mut captured.feed())
        .unwrap_or_else(|e| panic!("load: {e}"));
}

fn export(kind: DatabaseKind, captured: &Captured, dir: &Path) -> std::path::PathBuf {
    let files = engine::export(kind, &captured.schema, &mut captured.feed(), dir)
        .unwrap_or_else(|e| panic!("export: {e}"));
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// Same tables (names, columns, keys, foreign keys) with the same rows, keys and
/// payloads byte for byte.
fn assert_same(original: &Captured, copy: &Captured) {
    let names = |c: &Captured| {
        c.tables
            .iter()
            .map(|(s, _)| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(original), names(copy));
    for ((spec, rows), (copy_spec, copy_rows)) in original.tables.iter().zip(&copy.tables) {
        assert_eq!(spec, copy_spec);
        assert_eq!(rows.len(), copy_rows.len(), "row count of {}", spec.name);
        for (a, b) in rows.iter().zip(copy_rows) {
            assert_eq!(
                a,
                b,
                "table {}: {} != {}",
                spec.name,
                String::from_utf8_lossy(&a.payload),
                String::from_utf8_lossy(&b.payload)
            );
        }
    }
}

fn run(cmd: &mut Command, input: Option<&Path>) -> String {
    if let Some(path) = input {
        cmd.stdin(std::fs::File::open(path).unwrap());
    } else {
        cmd.stdin(Stdio::null());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_bytes_hex() -> String {
    (0..=255u8).map(|b| format!("{b:02x}")).collect()
}

/// A consumer that stops mid-table (the capture does when its diff fails) leaves
/// the snapshot usable: the table reads again, whole and the same.
fn read_again_after_a_consumer_stopped(snap: &mut dyn Snapshot, before: &Captured) {
    for (spec, rows) in &before.tables {
        let mut seen = 0;
        let stopped = snap.rows(spec, &mut |_| {
            seen += 1;
            Err(ostler_core::Error::failed("consumer stopped"))
        });
        assert!(stopped.is_err(), "{}", spec.name);
        assert_eq!(seen, 1);
        assert_eq!(rows, &read_all(snap, spec), "{}", spec.name);
    }
}
