//! Chains base → delta → …: the walk gives back every backup exactly.

use ostler_rows::{
    content_hash, ChainReader, DeltaOp, DeltaReader, KeyPart, Result, Row, RowReader, RowsError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{delta_between, mutate, random_table, restore, rows_of, write_table, Shape};

#[test]
fn chain_of_thirty_deltas_equals_the_final_table() {
    let mut rng = StdRng::seed_from_u64(10);
    let shape = Shape::Int { space: 8_000 };
    let mut table = random_table(&mut rng, 3_000, shape, 60);
    let base = write_table(&table);
    let mut stored = base.clone();
    let mut deltas = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..30 {
        let (next, _) = mutate(&mut rng, &table, 0.02, shape, 60);
        let (stats, delta) = delta_between(&stored, &next);
        deltas.push(delta);
        hashes.push(stats.content_hash);
        stored = write_table(&next);
        table = next;
    }
    assert_eq!(restore(&base, &deltas).unwrap(), rows_of(&table));
    // Every backup along the way restores to the hash recorded when it was taken.
    for (upto, hash) in hashes.iter().enumerate() {
        let readers = deltas[..=upto]
            .iter()
            .map(|d| DeltaReader::new(&d[..]))
            .collect::<Result<Vec<_>>>()
            .unwrap();
        let chain = ChainReader::new(RowReader::new(&base[..]).unwrap(), readers);
        assert_eq!(&content_hash(chain).unwrap().1, hash, "backup {upto}");
    }
}

#[test]
fn property_random_chains_restore_every_step() {
    for seed in 0..60 {
        let mut rng = StdRng::seed_from_u64(1_000 + seed);
        let shape = if seed % 2 == 0 {
            Shape::Int { space: 200 }
        } else {
            Shape::Composite { space: 60 }
        };
        let rows = rng.gen_range(0..120);
        let mut table = random_table(&mut rng, rows, shape, 12);
        let base = write_table(&table);
        let mut stored = base.clone();
        let mut deltas = Vec::new();
        for step in 0..rng.gen_range(1..8) {
            let fraction = [0.0, 0.05, 0.3, 0.5][rng.gen_range(0..4)];
            let (next, changes) = mutate(&mut rng, &table, fraction, shape, 12);
            let (stats, delta) = delta_between(&stored, &next);
            assert_eq!(
                (stats.added, stats.changed, stats.removed),
                (changes.added, changes.changed, changes.removed),
                "seed {seed} step {step}"
            );
            deltas.push(delta);
            assert_eq!(
                restore(&base, &deltas).unwrap(),
                rows_of(&next),
                "seed {seed} step {step}"
            );
            stored = write_table(&next);
            table = next;
        }
    }
}

fn int_row(k: i64, payload: &str) -> Row {
    Row::new(vec![KeyPart::Int(k)], payload)
}

#[test]
fn newest_operation_wins_and_deleted_rows_can_return() {
    let base = vec![int_row(1, "one"), int_row(2, "two"), int_row(3, "three")];
    let deltas = vec![
        vec![
            DeltaOp::Delete(vec![KeyPart::Int(1)]),
            DeltaOp::Upsert(int_row(2, "two v2")),
        ],
        vec![
            DeltaOp::Upsert(int_row(1, "one is back")),
            DeltaOp::Upsert(int_row(2, "two v3")),
            DeltaOp::Delete(vec![KeyPart::Int(3)]),
            DeltaOp::Upsert(int_row(4, "four")),
        ],
    ];
    let chain = ChainReader::new(
        base.into_iter().map(Ok),
        deltas
            .into_iter()
            .map(|ops| ops.into_iter().map(Ok))
            .collect(),
    );
    let rows: Vec<Row> = chain.collect::<Result<_>>().unwrap();
    assert_eq!(
        rows,
        vec![
            int_row(1, "one is back"),
            int_row(2, "two v3"),
            int_row(4, "four")
        ]
    );
}

#[test]
fn a_delta_on_the_wrong_base_is_caught_when_it_deletes_a_missing_row() {
    let base = vec![int_row(1, "one")];
    let delta = vec![DeltaOp::Delete(vec![KeyPart::Int(2)])];
    let mut chain = ChainReader::new(base.into_iter().map(Ok), vec![delta.into_iter().map(Ok)]);
    assert_eq!(chain.next().unwrap().unwrap(), int_row(1, "one"));
    let err = chain.next().unwrap().unwrap_err();
    assert!(
        matches!(err, RowsError::DeleteOfAbsentRow { delta: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "delta 0 of the chain (0 is the oldest) deletes key (2), which is not there; \
         the deltas do not belong to this base or are out of sequence"
    );
    assert!(chain.next().is_none(), "the chain ends after an error");
}

#[test]
fn chain_checks_the_order_of_every_stream() {
    let base = vec![int_row(1, "a"), int_row(5, "b")];
    let delta = vec![
        DeltaOp::Upsert(int_row(4, "x")),
        DeltaOp::Upsert(int_row(2, "y")),
    ];
    let result: Result<Vec<Row>> =
        ChainReader::new(base.into_iter().map(Ok), vec![delta.into_iter().map(Ok)]).collect();
    assert!(
        matches!(result, Err(RowsError::OutOfOrder { .. })),
        "{result:?}"
    );
}

#[test]
fn chain_without_deltas_is_the_base() {
    let mut rng = StdRng::seed_from_u64(11);
    let table = random_table(&mut rng, 500, Shape::Composite { space: 1_000 }, 30);
    assert_eq!(restore(&write_table(&table), &[]).unwrap(), rows_of(&table));
}

#[test]
fn a_damaged_delta_fails_the_restore() {
    let mut rng = StdRng::seed_from_u64(12);
    let shape = Shape::Int { space: 5_000 };
    let table = random_table(&mut rng, 1_000, shape, 30);
    let (next, _) = mutate(&mut rng, &table, 0.05, shape, 30);
    let base = write_table(&table);
    let (_, delta) = delta_between(&base, &next);
    let cut = delta[..delta.len() - 10].to_vec();
    let err = restore(&base, &[cut]).unwrap_err();
    assert!(
        matches!(
            err,
            RowsError::Truncated {
                kind: ostler_rows::StreamKind::Delta,
                ..
            }
        ),
        "{err:?}"
    );
}
