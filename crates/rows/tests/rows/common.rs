//! Tables made from a seeded RNG, and short ways to push them through the streams.

use std::collections::BTreeMap;

use ostler_rows::{
    diff, ChainReader, DeltaReader, DeltaWriter, DiffStats, Key, KeyPart, Result, Row, RowReader,
    RowWriter,
};
use rand::rngs::StdRng;
use rand::Rng;

/// A table as the test knows it: key → payload, hence always sorted and unique.
pub type Table = BTreeMap<Key, Vec<u8>>;

/// Key shapes, so tests cover single integer keys and composite byte keys.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `(id)`, ids in `0..space`.
    Int { space: i64 },
    /// `(tenant text, id)`, as a composite key with text first.
    Composite { space: i64 },
}

pub fn random_key(rng: &mut StdRng, shape: Shape) -> Key {
    match shape {
        Shape::Int { space } => vec![KeyPart::Int(rng.gen_range(-space / 4..space))],
        Shape::Composite { space } => {
            let tenant = format!("tenant-{}", rng.gen_range(0..7));
            vec![
                KeyPart::Bytes(tenant.into_bytes()),
                KeyPart::Int(rng.gen_range(0..space)),
            ]
        }
    }
}

pub fn random_payload(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let mut payload = vec![0; rng.gen_range(0..=max_len)];
    rng.fill(&mut payload[..]);
    payload
}

pub fn random_table(rng: &mut StdRng, rows: usize, shape: Shape, max_payload: usize) -> Table {
    let mut table = Table::new();
    while table.len() < rows {
        let key = random_key(rng, shape);
        table.insert(key, random_payload(rng, max_payload));
    }
    table
}

/// What `mutate` did, to compare with the diff's stats.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

/// Changes, removes and adds about `fraction` of the rows each, at random places.
/// Removed keys may come back later, as they do in real tables.
pub fn mutate(
    rng: &mut StdRng,
    table: &Table,
    fraction: f64,
    shape: Shape,
    max_payload: usize,
) -> (Table, Changes) {
    let mut next = Table::new();
    let mut changes = Changes::default();
    for (key, payload) in table {
        let roll: f64 = rng.gen();
        if roll < fraction {
            changes.removed += 1;
        } else if roll < 2.0 * fraction {
            let mut new = random_payload(rng, max_payload);
            if &new == payload {
                new.push(0);
            }
            next.insert(key.clone(), new);
            changes.changed += 1;
        } else {
            next.insert(key.clone(), payload.clone());
        }
    }
    let adds = (table.len() as f64 * fraction).ceil() as usize;
    let mut added = 0;
    let mut attempts = 0;
    while added < adds && attempts < adds * 100 {
        attempts += 1;
        let key = random_key(rng, shape);
        if table.contains_key(&key) || next.contains_key(&key) {
            continue;
        }
        next.insert(key, random_payload(rng, max_payload));
        added += 1;
    }
    changes.added = added as u64;
    (next, changes)
}

pub fn rows_of(table: &Table) -> Vec<Row> {
    table
        .iter()
        .map(|(k, p)| Row::new(k.clone(), p.clone()))
        .collect()
}

pub fn ok_rows(table: &Table) -> impl Iterator<Item = Result<Row>> + '_ {
    table
        .iter()
        .map(|(k, p)| Ok(Row::new(k.clone(), p.clone())))
}

pub fn write_rows<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<u8> {
    let mut writer = RowWriter::new(Vec::new());
    for row in rows {
        writer.write_row(row).unwrap();
    }
    writer.finish().unwrap()
}

pub fn write_table(table: &Table) -> Vec<u8> {
    write_rows(&rows_of(table))
}

pub fn read_rows(bytes: &[u8]) -> Result<Vec<Row>> {
    RowReader::new(bytes)?.collect()
}

/// The delta from the stored `previous` to `current`, and its stats.
pub fn delta_between(previous: &[u8], current: &Table) -> (DiffStats, Vec<u8>) {
    let mut writer = DeltaWriter::new(Vec::new());
    let stats = diff(
        RowReader::new(previous).unwrap(),
        ok_rows(current),
        &mut writer,
    )
    .unwrap();
    (stats, writer.finish().unwrap())
}

pub fn restore(base: &[u8], deltas: &[Vec<u8>]) -> Result<Vec<Row>> {
    let deltas = deltas
        .iter()
        .map(|d| DeltaReader::new(&d[..]))
        .collect::<Result<Vec<_>>>()?;
    ChainReader::new(RowReader::new(base)?, deltas).collect()
}
