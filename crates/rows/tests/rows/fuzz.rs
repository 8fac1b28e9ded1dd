//! Property tests (issue 9): no bytes make a reader panic, and whatever rows and keys
//! are written come back exactly.
//!
//! A backup's streams come back from disks, copies and object stores that may have
//! damaged them, so the readers meet arbitrary bytes: a valid header followed by
//! anything, a valid stream with bytes flipped or cut short, a chain whose deltas
//! do not fit its base. Each must end in an error (or a stream that checks out), not
//! a panic. The case counts are modest so the whole file adds seconds to CI.

use std::collections::BTreeMap;

use ostler_rows::{
    content_hash, diff, ChainReader, DeltaOp, DeltaReader, DeltaWriter, Key, KeyPart, Row,
    RowReader, RowWriter,
};
use proptest::prelude::*;

use crate::common::{delta_between, read_rows, restore, rows_of, write_table, Table};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Key parts that reach the corners: extreme integers, empty and binary bytes.
fn key_part() -> impl Strategy<Value = KeyPart> {
    prop_oneof![
        any::<i64>().prop_map(KeyPart::Int),
        prop_oneof![Just(i64::MIN), Just(-1i64), Just(0), Just(i64::MAX)].prop_map(KeyPart::Int),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(KeyPart::Bytes),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    proptest::collection::vec(key_part(), 0..4)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn table() -> impl Strategy<Value = Table> {
    proptest::collection::btree_map(key(), payload(), 0..40)
}

/// A valid header of either kind, then arbitrary bytes.
fn after_header(magic: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200).prop_map(move |tail| {
        let mut bytes = magic.to_vec();
        bytes.push(1);
        bytes.extend(tail);
        bytes
    })
}

fn write_ops(ops: &BTreeMap<Key, Option<Vec<u8>>>) -> Vec<u8> {
    let mut writer = DeltaWriter::new(Vec::new());
    for (key, op) in ops {
        match op {
            Some(payload) => writer.upsert(key, payload).unwrap(),
            None => writer.delete(key).unwrap(),
        }
    }
    writer.finish().unwrap()
}

/// Reads everything a stream yields; a reader yields at most one error, then ends.
fn drain<T>(items: impl Iterator<Item = ostler_rows::Result<T>>) -> usize {
    let mut errors = 0;
    for item in items {
        assert_eq!(errors, 0, "a reader went on after an error");
        if item.is_err() {
            errors += 1;
        }
    }
    errors
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_a_reader(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(reader) = RowReader::new(&bytes[..]) {
            drain(reader);
        }
        if let Ok(reader) = DeltaReader::new(&bytes[..]) {
            drain(reader);
        }
    }

    #[test]
    fn a_valid_header_then_anything_is_an_error_not_a_panic(
        rows in after_header(b"OSTLROWS"),
        delta in after_header(b"OSTLDLTA"),
    ) {
        let reader = RowReader::new(&rows[..]).unwrap();
        // 200 random bytes are never a stream with a matching blake3 trailer.
        prop_assert_eq!(drain(reader), 1);
        let reader = DeltaReader::new(&delta[..]).unwrap();
        prop_assert_eq!(drain(reader), 1);
    }

    #[test]
    fn a_damaged_or_cut_stream_is_an_error(
        table in table(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let good = write_table(&table);
        let mut bad = good.clone();
        for (at, mask) in &flips {
            let i = at.index(bad.len());
            bad[i] ^= mask;
        }
        prop_assume!(bad != good, "two flips of one byte undid each other");
        prop_assert!(read_rows(&bad).is_err(), "flipped bytes read as a table");
        let short = &good[..cut.index(good.len())];
        prop_assert!(read_rows(short).is_err(), "a cut stream read as a table");
    }

    #[test]
    fn rows_written_are_rows_read(table in table()) {
        let stream = write_table(&table);
        prop_assert_eq!(read_rows(&stream).unwrap(), rows_of(&table));
    }

    #[test]
    fn a_writer_given_rows_out_of_order_refuses_instead_of_panicking(
        rows in proptest::collection::vec((key(), payload()), 0..20),
    ) {
        let mut writer = RowWriter::new(Vec::new());
        let mut wrote = Vec::new();
        for (key, payload) in rows {
            if writer.write(&key, &payload).is_err() {
                break;
            }
            wrote.push(Row::new(key, payload));
        }
        // Whatever the writer accepted, it accepted in strictly ascending order.
        prop_assert!(wrote.windows(2).all(|w| w[0].key < w[1].key));
        if let Ok(stream) = writer.finish() {
            prop_assert_eq!(read_rows(&stream).unwrap(), wrote);
        }
    }

    #[test]
    fn deltas_written_are_deltas_read(ops in proptest::collection::btree_map(key(), proptest::option::of(payload()), 0..40)) {
        let stream = write_ops(&ops);
        let read: Vec<DeltaOp> = DeltaReader::new(&stream[..])
            .unwrap()
            .collect::<ostler_rows::Result<_>>()
            .unwrap();
        let want: Vec<DeltaOp> = ops
            .into_iter()
            .map(|(k, op)| match op {
                Some(p) => DeltaOp::Upsert(Row::new(k, p)),
                None => DeltaOp::Delete(k),
            })
            .collect();
        prop_assert_eq!(read, want);
    }

    #[test]
    fn a_diff_then_its_chain_gives_back_the_new_table(before in table(), after in table()) {
        let base = write_table(&before);
        let (stats, delta) = delta_between(&base, &after);
        let restored = restore(&base, &[delta]).unwrap();
        prop_assert_eq!(&restored, &rows_of(&after));
        prop_assert_eq!(
            content_hash(restored.into_iter().map(Ok)).unwrap(),
            (after.len() as u64, stats.content_hash)
        );
    }

    #[test]
    fn a_chain_of_deltas_that_do_not_fit_is_an_error_not_a_panic(
        base in table(),
        deltas in proptest::collection::vec(
            proptest::collection::btree_map(key(), proptest::option::of(payload()), 0..10),
            0..4,
        ),
    ) {
        let base = write_table(&base);
        let deltas: Vec<Vec<u8>> = deltas.iter().map(write_ops).collect();
        let readers = deltas.iter().map(|d| DeltaReader::new(&d[..]).unwrap()).collect();
        drain(ChainReader::new(RowReader::new(&base[..]).unwrap(), readers));
    }

    #[test]
    fn diffing_against_a_damaged_previous_stream_is_an_error_not_a_panic(
        before in table(),
        after in table(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut base = write_table(&before);
        let i = at.index(base.len());
        base[i] ^= 0x5a;
        if let Ok(previous) = RowReader::new(&base[..]) {
            let mut writer = DeltaWriter::new(Vec::new());
            let current = after.iter().map(|(k, p)| Ok(Row::new(k.clone(), p.clone())));
            prop_assert!(diff(previous, current, &mut writer).is_err());
        }
    }
}
