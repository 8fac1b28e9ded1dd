//! Measurements, not assertions: run with
//! `cargo test -p ostler-rows --release --test rows -- --ignored --nocapture throughput`.

use std::time::Instant;

use ostler_rows::{
    content_hash, diff, sort_rows, ChainReader, DeltaReader, DeltaWriter, KeyPart, Result, Row,
    RowReader, RowWriter,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const ROWS: i64 = 1_000_000;

/// A row like a COPY line of a typical table: id, a few short columns.
fn payload(rng: &mut StdRng, id: i64) -> Vec<u8> {
    let name: String = (0..rng.gen_range(8..24))
        .map(|_| rng.gen_range(b'a'..=b'z') as char)
        .collect();
    format!(
        "{id}\t{name}\t{name}@example.org\t{}\t2024-05-{:02} 12:{:02}:00+00\tt",
        rng.gen_range(0..1_000_000),
        rng.gen_range(1..29),
        rng.gen_range(0..60)
    )
    .into_bytes()
}

fn report(what: &str, rows: u64, bytes: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<44} {rows:>9} rows in {secs:>6.3} s = {:>10.0} rows/s, {:>7.1} MB/s",
        rows as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn throughput_one_million_rows() {
    let mut rng = StdRng::seed_from_u64(99);
    let previous: Vec<Row> = (0..ROWS)
        .map(|id| Row::new(vec![KeyPart::Int(id * 3)], payload(&mut rng, id)))
        .collect();
    // 1 % scattered changes: a third updated, a third deleted, a third inserted.
    let mut current = Vec::with_capacity(previous.len());
    for row in &previous {
        let roll: f64 = rng.gen();
        if roll < 0.0033 {
            continue;
        }
        if roll < 0.0066 {
            let KeyPart::Int(id) = row.key[0] else {
                unreachable!()
            };
            current.push(Row::new(row.key.clone(), payload(&mut rng, id)));
        } else {
            current.push(row.clone());
        }
        if roll > 0.9966 {
            let KeyPart::Int(id) = row.key[0] else {
                unreachable!()
            };
            current.push(Row::new(
                vec![KeyPart::Int(id + 1)],
                payload(&mut rng, id + 1),
            ));
        }
    }

    let started = Instant::now();
    let mut writer = RowWriter::new(Vec::new());
    for row in &previous {
        writer.write_row(row).unwrap();
    }
    let base = writer.finish().unwrap();
    report("write rows stream", ROWS as u64, base.len(), started);
    let mut writer = RowWriter::new(Vec::new());
    for row in &current {
        writer.write_row(row).unwrap();
    }
    let stored_current = writer.finish().unwrap();

    let started = Instant::now();
    let reference = blake3::hash(&base);
    report(
        "(reference: blake3 of the stream's bytes)",
        ROWS as u64,
        base.len(),
        started,
    );
    assert_ne!(reference.as_bytes(), &[0; 32]);

    let started = Instant::now();
    let read = RowReader::new(&base[..]).unwrap().count();
    report("read rows stream", read as u64, base.len(), started);

    let started = Instant::now();
    let (n, _) = content_hash(RowReader::new(&base[..]).unwrap()).unwrap();
    report("read + content hash", n, base.len(), started);

    let started = Instant::now();
    let mut delta = DeltaWriter::new(Vec::new());
    let stats = diff(
        RowReader::new(&base[..]).unwrap(),
        RowReader::new(&stored_current[..]).unwrap(),
        &mut delta,
    )
    .unwrap();
    let delta = delta.finish().unwrap();
    report(
        "diff (two streams read, delta written)",
        stats.rows,
        base.len() + stored_current.len(),
        started,
    );
    println!(
        "  base {} B, delta {} B = {:.2} % of base; {stats:?}",
        base.len(),
        delta.len(),
        100.0 * delta.len() as f64 / base.len() as f64
    );

    let started = Instant::now();
    let mut delta_from_memory = DeltaWriter::new(Vec::new());
    diff(
        RowReader::new(&base[..]).unwrap(),
        current.iter().cloned().map(Ok),
        &mut delta_from_memory,
    )
    .unwrap();
    report(
        "diff (current from memory, as from a DB)",
        stats.rows,
        base.len(),
        started,
    );

    let started = Instant::now();
    let deltas = vec![DeltaReader::new(&delta[..]).unwrap()];
    let (n, hash) =
        content_hash(ChainReader::new(RowReader::new(&base[..]).unwrap(), deltas)).unwrap();
    report(
        "chain base + 1 delta + content hash",
        n,
        base.len(),
        started,
    );
    assert_eq!(hash, stats.content_hash);

    // Thirty hourly deltas of 1 % scattered updates each. Updates only, so one delta
    // can stand for all thirty (a delete would not apply twice).
    let mut updates = DeltaWriter::new(Vec::new());
    for row in &previous {
        if rng.gen_bool(0.01) {
            let KeyPart::Int(id) = row.key[0] else {
                unreachable!()
            };
            updates.upsert(&row.key, &payload(&mut rng, id)).unwrap();
        }
    }
    let updates = updates.finish().unwrap();
    let deltas: Vec<DeltaReader<&[u8]>> = (0..30)
        .map(|_| DeltaReader::new(&updates[..]).unwrap())
        .collect();
    let started = Instant::now();
    let n = ChainReader::new(RowReader::new(&base[..]).unwrap(), deltas)
        .map(|r| r.map(drop))
        .collect::<Result<Vec<()>>>()
        .unwrap()
        .len();
    report(
        "chain base + 30 deltas (1 % updates each)",
        n as u64,
        base.len(),
        started,
    );
    assert_eq!(n as i64, ROWS);

    let mut shuffled = current.clone();
    shuffled.shuffle(&mut rng);
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let sorted = sort_rows(shuffled, tmp.path(), 16 << 20).unwrap();
    let spills = sorted.spill_files();
    let n = sorted
        .map(|r| r.map(|_| ()))
        .collect::<Result<Vec<()>>>()
        .unwrap()
        .len();
    report(
        &format!("external sort, 16 MiB limit, {spills} spill files"),
        n as u64,
        stored_current.len(),
        started,
    );
}
