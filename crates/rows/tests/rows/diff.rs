//! diff and the content hash: stats that match what changed, deltas that cost what
//! changed, hashes that depend only on content.

use ostler_rows::{
    content_hash, diff, DeltaReader, DeltaWriter, KeyPart, Row, RowReader, RowsError,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{
    delta_between, mutate, ok_rows, random_table, restore, rows_of, write_table, Shape, Table,
};

#[test]
fn random_table_diff_restores_exactly_with_matching_stats() {
    let mut rng = StdRng::seed_from_u64(1);
    let shape = Shape::Int { space: 40_000 };
    let previous = random_table(&mut rng, 10_000, shape, 120);
    let (current, changes) = mutate(&mut rng, &previous, 0.03, shape, 120);
    let base = write_table(&previous);
    let (stats, delta) = delta_between(&base, &current);

    assert_eq!(
        (stats.added, stats.changed, stats.removed),
        (changes.added, changes.changed, changes.removed)
    );
    assert_eq!(stats.rows, current.len() as u64);
    assert_eq!(stats.unchanged + stats.changed + stats.added, stats.rows);
    assert_eq!(restore(&base, &[delta]).unwrap(), rows_of(&current));
    assert_eq!(
        content_hash(ok_rows(&current)).unwrap(),
        (stats.rows, stats.content_hash.clone())
    );
}

#[test]
fn delta_of_one_percent_scattered_changes_is_about_one_percent() {
    let mut rng = StdRng::seed_from_u64(2);
    let shape = Shape::Int { space: 400_000 };
    let previous = random_table(&mut rng, 100_000, shape, 200);
    // A third each: changed, removed, added; 1 % of rows in all.
    let (current, _) = mutate(&mut rng, &previous, 0.01 / 3.0, shape, 200);
    let base = write_table(&previous);
    let (stats, delta) = delta_between(&base, &current);
    let ratio = delta.len() as f64 / base.len() as f64;
    println!(
        "base {} bytes, delta {} bytes ({:.2} %), {stats:?}",
        base.len(),
        delta.len(),
        ratio * 100.0
    );
    assert!(ratio < 0.05, "delta is {:.2} % of the base", ratio * 100.0);
    assert!(ratio > 0.002, "suspiciously small delta: {ratio}");
}

#[test]
fn identical_tables_give_an_empty_delta_and_equal_hashes() {
    let mut rng = StdRng::seed_from_u64(3);
    let table = random_table(&mut rng, 5_000, Shape::Composite { space: 10_000 }, 50);
    let base = write_table(&table);
    let (stats, delta) = delta_between(&base, &table);
    assert!(stats.is_unchanged());
    assert_eq!(stats.unchanged, 5_000);
    assert_eq!(DeltaReader::new(&delta[..]).unwrap().count(), 0);
    let stored = content_hash(RowReader::new(&base[..]).unwrap()).unwrap();
    assert_eq!(stored, (5_000, stats.content_hash));
}

#[test]
fn empty_tables() {
    let mut rng = StdRng::seed_from_u64(4);
    let empty = Table::new();
    let full = random_table(&mut rng, 100, Shape::Int { space: 1_000 }, 20);

    let (stats, delta) = delta_between(&write_table(&empty), &empty);
    assert_eq!((stats.rows, stats.added, stats.removed), (0, 0, 0));
    assert_eq!(restore(&write_table(&empty), &[delta]).unwrap(), vec![]);
    assert_eq!(stats.content_hash, content_hash(ok_rows(&empty)).unwrap().1);
    assert_ne!(stats.content_hash, content_hash(ok_rows(&full)).unwrap().1);

    let (stats, delta) = delta_between(&write_table(&empty), &full);
    assert_eq!((stats.added, stats.rows), (100, 100));
    assert_eq!(
        restore(&write_table(&empty), &[delta]).unwrap(),
        rows_of(&full)
    );

    let (stats, delta) = delta_between(&write_table(&full), &empty);
    assert_eq!((stats.removed, stats.rows), (100, 0));
    assert_eq!(restore(&write_table(&full), &[delta]).unwrap(), vec![]);
}

#[test]
fn diff_refuses_an_unsorted_source() {
    let previous = [Row::new(vec![KeyPart::Int(1)], "a")];
    let current = [2, 3, 1, 4].map(|k| Row::new(vec![KeyPart::Int(k)], "b"));
    let mut delta = DeltaWriter::new(Vec::new());
    let err = diff(
        previous.into_iter().map(Ok),
        current.into_iter().map(Ok),
        &mut delta,
    )
    .unwrap_err();
    assert!(matches!(err, RowsError::OutOfOrder { .. }), "{err:?}");

    let mut delta = DeltaWriter::new(Vec::new());
    let repeated = [1, 1].map(|k| Row::new(vec![KeyPart::Int(k)], "b"));
    let err = diff(std::iter::empty(), repeated.into_iter().map(Ok), &mut delta).unwrap_err();
    assert!(matches!(err, RowsError::DuplicateKey { .. }), "{err:?}");
}

#[test]
fn diff_passes_on_source_errors() {
    let current = vec![
        Ok(Row::new(vec![KeyPart::Int(1)], "a")),
        Err(RowsError::from_source("connection reset")),
    ];
    let mut delta = DeltaWriter::new(Vec::new());
    let err = diff(std::iter::empty(), current, &mut delta).unwrap_err();
    assert_eq!(err.to_string(), "reading the source rows failed");
    let cause = std::error::Error::source(&err).unwrap();
    assert_eq!(cause.to_string(), "connection reset");
}

#[test]
fn content_hash_separates_key_from_payload_and_parts_from_each_other() {
    let hash = |rows: Vec<Row>| content_hash(rows.into_iter().map(Ok)).unwrap().1;
    let b = |s: &str| KeyPart::Bytes(s.as_bytes().to_vec());
    let one = hash(vec![Row::new(vec![b("ab")], "c")]);
    assert_ne!(one, hash(vec![Row::new(vec![b("a")], "bc")]));
    assert_ne!(one, hash(vec![Row::new(vec![b("a"), b("b")], "c")]));
    assert_ne!(
        hash(vec![Row::new(vec![KeyPart::Int(1)], "")]),
        hash(vec![Row::new(vec![b("\0\0\0\0\0\0\0\x01")], "")])
    );
    assert_eq!(one, hash(vec![Row::new(vec![b("ab")], "c")]));
    assert_eq!(one.len(), 64);
}

#[test]
fn content_hash_refuses_unsorted_rows() {
    let rows = [2, 1].map(|k| Ok(Row::new(vec![KeyPart::Int(k)], "")));
    assert!(matches!(
        content_hash(rows),
        Err(RowsError::OutOfOrder { .. })
    ));
}
