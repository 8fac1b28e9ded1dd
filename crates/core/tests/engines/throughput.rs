//! Throughput, for docs/BENCHMARKS.md: `cargo test -p ostler-core --release --test
//! engines -- --ignored --nocapture throughput`.

use std::time::Instant;

use super::mariadb::{maria, maria_database, mariadb_file};
use super::postgres::{pg, pg_database, psql_file};

use super::*;

const BENCH_ROWS: usize = 100_000;

/// Times the snapshot (open: schema; rows) and the load of a 100k-row table, and, as
/// the peer to compare with, the native client restoring our export of it.
fn measure(engine: &str, db: &Database, copy: &Database, native: &dyn Fn(&Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut snap = engine::open_snapshot(db, tmp.path(), &runner()).unwrap();
    let opened = start.elapsed();
    let schema = snap.schema().to_vec();
    let mut tables = Vec::new();
    let start = Instant::now();
    for spec in snap.tables().to_vec() {
        let rows = read_all(snap.as_mut(), &spec);
        tables.push((spec, rows));
    }
    let read = start.elapsed();
    snap.finish().unwrap();
    let captured = Captured { schema, tables };
    let rows: usize = captured.tables.iter().map(|(_, r)| r.len()).sum();
    let bytes: usize = captured
        .tables
        .iter()
        .flat_map(|(_, r)| r)
        .map(|r| r.payload.len())
        .sum();
    assert_eq!(rows, BENCH_ROWS);
    let start = Instant::now();
    load(copy, &captured);
    let loaded = start.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let kind = db.kind();
    let file = engine::export(kind, &captured.schema, &mut captured.feed(), dir.path()).unwrap();
    let start = Instant::now();
    native(&file[0]);
    let restored = start.elapsed();
    let per_s = |d: std::time::Duration| rows as f64 / d.as_secs_f64();
    println!(
        "{engine}: {rows} rows, {:.1} MB of payload: open {:.2} s; rows {:.2} s = {:.0} rows/s; \
         open + rows = {:.0} rows/s; load {:.2} s = {:.0} rows/s; \
         native client restoring the export {:.2} s = {:.0} rows/s",
        bytes as f64 / 1e6,
        opened.as_secs_f64(),
        read.as_secs_f64(),
        per_s(read),
        per_s(opened + read),
        loaded.as_secs_f64(),
        per_s(loaded),
        restored.as_secs_f64(),
        per_s(restored)
    );
}

#[test]
#[ignore = "throughput measurement; run with --ignored --nocapture"]
fn throughput_of_snapshot_and_load() {
    let (name, db) = pg_database("eng_pg_bench");
    pg().sql(
        &name,
        &format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2),
                                  created timestamptz, note text);
             INSERT INTO orders SELECT i, 'customer ' || (i % 977), (i * 7 % 100000) / 100.0,
                 timestamptz '2024-01-01' + i * interval '1 minute', repeat('n', 60 + i % 40)
             FROM generate_series(1, {BENCH_ROWS}) i;"
        ),
    )
    .unwrap();
    let (_, copy) = pg_database("eng_pg_bench_copy");
    let (plain, _) = pg_database("eng_pg_bench_plain");
    measure("PostgreSQL", &db, &copy, &|file| psql_file(&plain, file));

    let (name, db) = maria_database("eng_my_bench");
    maria()
        .sql(
            &name,
            &format!(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40) NOT NULL, amount DECIMAL(12, 2),
                                      created DATETIME, note TEXT) ENGINE=InnoDB;
                 INSERT INTO orders SELECT seq, CONCAT('customer ', seq % 977), (seq * 7 % 100000) / 100.0,
                     '2024-01-01' + INTERVAL seq MINUTE, REPEAT('n', 60 + seq % 40) FROM seq_1_to_{BENCH_ROWS};"
            ),
        )
        .unwrap();
    let (_, copy) = maria_database("eng_my_bench_copy");
    let (plain, _) = maria_database("eng_my_bench_plain");
    measure("MariaDB", &db, &copy, &|file| mariadb_file(&plain, file));
}
