//! The stream formats: round trips, and every way a stream can be wrong being
//! reported as such.

use ostler_rows::{
    DeltaOp, DeltaReader, DeltaWriter, KeyPart, Row, RowReader, RowWriter, RowsError, StreamKind,
};

use crate::common::{read_rows, write_rows};

fn int(i: i64) -> KeyPart {
    KeyPart::Int(i)
}

fn bytes(b: &[u8]) -> KeyPart {
    KeyPart::Bytes(b.to_vec())
}

/// Keys in ascending order, including the corners of the order.
fn awkward_rows() -> Vec<Row> {
    vec![
        Row::new(vec![], "the empty key sorts first"),
        Row::new(vec![int(i64::MIN)], ""),
        Row::new(vec![int(-1)], "minus one"),
        Row::new(vec![int(-1), int(5)], "a longer key after its prefix"),
        Row::new(vec![int(0)], vec![0u8; 200_000]),
        Row::new(vec![int(i64::MAX)], "max"),
        Row::new(vec![bytes(b"")], "ints before bytes; empty bytes first"),
        Row::new(
            vec![bytes(b"A")],
            "uppercase before lowercase: bytes, not a collation",
        ),
        Row::new(vec![bytes(b"a")], "\n\0\t binary payload \u{ff}"),
        Row::new(vec![bytes(b"a"), int(1)], "composite"),
        Row::new(vec![bytes(b"a\0")], "NUL"),
        Row::new(
            vec![bytes(&[0xff; 70_000])],
            "a key part bigger than the buffer",
        ),
    ]
}

#[test]
fn key_order_is_ints_then_bytes_then_lexicographic() {
    let rows = awkward_rows();
    for pair in rows.windows(2) {
        assert!(
            pair[0].key < pair[1].key,
            "{:?} !< {:?}",
            pair[0].key,
            pair[1].key
        );
    }
}

#[test]
fn rows_round_trip() {
    let rows = awkward_rows();
    let stream = write_rows(&rows);
    assert_eq!(read_rows(&stream).unwrap(), rows);
    let mut reader = RowReader::new(&stream[..]).unwrap();
    assert_eq!(reader.by_ref().count(), rows.len());
    assert_eq!(reader.rows_read(), rows.len() as u64);
    assert!(reader.next().is_none(), "a finished reader stays finished");
}

#[test]
fn deltas_round_trip() {
    let ops: Vec<DeltaOp> = awkward_rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            if i % 3 == 1 {
                DeltaOp::Delete(row.key)
            } else {
                DeltaOp::Upsert(row)
            }
        })
        .collect();
    let mut writer = DeltaWriter::new(Vec::new());
    for op in &ops {
        writer.write_op(op).unwrap();
    }
    assert_eq!(
        writer.upserts_written() + writer.deletes_written(),
        ops.len() as u64
    );
    let stream = writer.finish().unwrap();
    let read: Vec<DeltaOp> = DeltaReader::new(&stream[..])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, ops);
}

#[test]
fn empty_streams_round_trip() {
    let rows = RowWriter::new(Vec::new()).finish().unwrap();
    assert_eq!(read_rows(&rows).unwrap(), vec![]);
    let delta = DeltaWriter::new(Vec::new()).finish().unwrap();
    assert_eq!(DeltaReader::new(&delta[..]).unwrap().count(), 0);
    // Header, end tag, count, checksum.
    assert_eq!(rows.len(), 9 + 1 + 1 + 32);
}

#[test]
fn writers_refuse_keys_out_of_order_and_keep_going() {
    let mut writer = RowWriter::new(Vec::new());
    writer.write(&[int(2)], b"two").unwrap();
    let err = writer.write(&[int(1)], b"one").unwrap_err();
    assert!(matches!(err, RowsError::OutOfOrder { .. }), "{err:?}");
    let err = writer.write(&[int(2)], b"two again").unwrap_err();
    assert!(matches!(err, RowsError::DuplicateKey { .. }), "{err:?}");
    writer.write(&[int(3)], b"three").unwrap();
    let stream = writer.finish().unwrap();
    assert_eq!(read_rows(&stream).unwrap().len(), 2);

    let mut delta = DeltaWriter::new(Vec::new());
    delta.delete(&[int(5)]).unwrap();
    let err = delta.upsert(&[int(5)], b"five").unwrap_err();
    assert!(matches!(err, RowsError::DuplicateKey { .. }), "{err:?}");
}

/// A rows stream built by hand, with a valid trailer, so readers can be shown
/// streams no writer would produce.
fn hand_made(int_keys: &[i64]) -> Vec<u8> {
    let mut s = b"OSTLROWS\x01".to_vec();
    for &k in int_keys {
        assert!((0..64).contains(&k), "keep the zigzag varint one byte");
        s.extend_from_slice(&[0x01, 0x01, 0x01, (k as u8) << 1, 0x01, b'x']);
    }
    s.extend_from_slice(&[0x00, int_keys.len() as u8]);
    let checksum = blake3::hash(&s);
    s.extend_from_slice(checksum.as_bytes());
    s
}

#[test]
fn hand_made_stream_matches_the_writer() {
    let rows: Vec<Row> = [1, 2, 3].map(|k| Row::new(vec![int(k)], "x")).to_vec();
    assert_eq!(hand_made(&[1, 2, 3]), write_rows(&rows));
}

#[test]
fn reader_reports_out_of_order_and_duplicates() {
    let err = read_rows(&hand_made(&[1, 3, 2])).unwrap_err();
    match &err {
        RowsError::OutOfOrder { previous, next } => {
            assert_eq!((previous, next), (&vec![int(3)], &vec![int(2)]));
        }
        other => panic!("expected OutOfOrder, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "rows are out of order: key (2) follows key (3)"
    );
    let err = read_rows(&hand_made(&[1, 1])).unwrap_err();
    assert_eq!(err.to_string(), "key (1) occurs more than once");
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let rows: Vec<Row> = (0..20)
        .map(|i| Row::new(vec![int(i), bytes(b"k")], format!("payload {i}")))
        .collect();
    let stream = write_rows(&rows);
    for len in 0..stream.len() {
        let result = read_rows(&stream[..len]);
        assert!(
            matches!(result, Err(RowsError::Truncated { .. })),
            "cut at {len} of {}: {result:?}",
            stream.len()
        );
    }
}

#[test]
fn truncation_across_buffer_boundaries_is_reported() {
    let rows: Vec<Row> = (0..20_000)
        .map(|i| Row::new(vec![int(i)], format!("row number {i} with some text")))
        .collect();
    let stream = write_rows(&rows);
    for len in [
        65_535,
        65_536,
        65_537,
        131_072,
        stream.len() - 33,
        stream.len() - 1,
    ] {
        let result = read_rows(&stream[..len]);
        assert!(
            matches!(result, Err(RowsError::Truncated { .. })),
            "cut at {len}: {result:?}"
        );
    }
    assert_eq!(read_rows(&stream).unwrap(), rows);
}

#[test]
fn unfinished_writer_leaves_a_truncated_stream() {
    let mut out = Vec::new();
    {
        let mut writer = RowWriter::new(&mut out);
        for i in 0..100_000 {
            writer.write(&[int(i)], b"some payload").unwrap();
        }
        // Dropped without finish, as a crash would.
    }
    assert!(!out.is_empty());
    let err = read_rows(&out).unwrap_err();
    assert!(
        matches!(
            err,
            RowsError::Truncated {
                kind: StreamKind::Rows,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("rows stream is truncated: it ends at byte "),
        "{err}"
    );
}

#[test]
fn every_flipped_byte_is_detected() {
    let rows: Vec<Row> = (0..10)
        .map(|i| Row::new(vec![int(i * 1000)], format!("payload {i}")))
        .collect();
    let stream = write_rows(&rows);
    for at in 0..stream.len() {
        for flip in [0x01, 0x80] {
            let mut damaged = stream.clone();
            damaged[at] ^= flip;
            let result = read_rows(&damaged);
            assert!(result.is_err(), "flip {flip:#x} at {at} went unnoticed");
        }
    }
}

#[test]
fn payload_damage_is_a_checksum_mismatch() {
    let rows = vec![Row::new(vec![int(1)], "hello world")];
    let mut stream = write_rows(&rows);
    let at = stream.windows(5).position(|w| w == b"hello").unwrap();
    stream[at] = b'j';
    let err = read_rows(&stream).unwrap_err();
    assert!(matches!(err, RowsError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn trailing_bytes_are_corruption() {
    let mut stream = write_rows(&[Row::new(vec![int(1)], "x")]);
    stream.push(0);
    let err = read_rows(&stream).unwrap_err();
    assert!(
        err.to_string().contains("after the end of the stream"),
        "{err}"
    );
}

#[test]
fn wrong_kind_and_version_are_named() {
    let delta = DeltaWriter::new(Vec::new()).finish().unwrap();
    let err = read_rows(&delta).unwrap_err();
    assert!(
        matches!(
            err,
            RowsError::BadMagic {
                expected: StreamKind::Rows,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("not an ostler rows stream"),
        "{err}"
    );

    let rows = RowWriter::new(Vec::new()).finish().unwrap();
    assert!(matches!(
        DeltaReader::new(&rows[..]),
        Err(RowsError::BadMagic {
            expected: StreamKind::Delta,
            ..
        })
    ));

    let mut future = rows.clone();
    future[8] = 2;
    let err = read_rows(&future).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rows stream has format version 2; this build reads version 1 only"
    );
}

#[test]
fn a_huge_length_prefix_does_not_allocate_it() {
    // One row whose payload claims 2^62 bytes, then the stream ends.
    let mut s = b"OSTLROWS\x01\x01\x01\x01\x02".to_vec();
    s.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    s.extend_from_slice(b"only a few bytes");
    let err = read_rows(&s).unwrap_err();
    assert!(matches!(err, RowsError::Truncated { .. }), "{err:?}");
}

#[test]
fn long_keys_are_shortened_in_messages() {
    let key = vec![bytes(&[b'a'; 100]), int(7)];
    let err = RowsError::DuplicateKey { key };
    assert_eq!(
        err.to_string(),
        format!(
            "key ('{}'… (100 bytes), 7) occurs more than once",
            "a".repeat(48)
        )
    );
    let err = RowsError::DuplicateKey {
        key: vec![bytes(b"it's"), bytes(&[0, 1, 0xfe])],
    };
    assert_eq!(
        err.to_string(),
        "key ('it''s', x'0001fe') occurs more than once"
    );
}
