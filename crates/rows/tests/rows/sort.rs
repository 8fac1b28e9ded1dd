//! The external sort and the order check that decides when it is needed.

use ostler_rows::{sort_rows, try_sort_rows, KeyPart, Result, Row, RowsError, SortedCheck, FAN_IN};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::common::{random_table, rows_of, Shape};

fn shuffled(seed: u64, rows: usize, shape: Shape) -> (Vec<Row>, Vec<Row>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let sorted = rows_of(&random_table(&mut rng, rows, shape, 40));
    let mut shuffled = sorted.clone();
    shuffled.shuffle(&mut rng);
    (sorted, shuffled)
}

#[test]
fn tiny_memory_limit_sorts_like_std_through_several_merge_passes() {
    let (sorted, shuffled) = shuffled(20, 10_000, Shape::Composite { space: 100_000 });
    let mut expected = shuffled.clone();
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(expected, sorted);

    let tmp = tempfile::tempdir().unwrap();
    let rows = sort_rows(shuffled, tmp.path(), 2_000).unwrap();
    assert!(
        rows.spill_files() > FAN_IN + 1,
        "only {} spill files; the test means to force a second merge pass",
        rows.spill_files()
    );
    assert_eq!(rows.collect::<Result<Vec<_>>>().unwrap(), expected);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "spill files are anonymous"
    );
}

/// Files this process has open below `dir` (anonymous spill files show there as
/// `dir/#123 (deleted)`): other tests running alongside open their own files, in
/// their own dirs, which a count of every descriptor would mix in.
fn open_files(dir: &std::path::Path) -> usize {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Each run is an open anonymous file until merged; a run per row must not mean a
/// file per row, or a big table runs out of file descriptors.
#[test]
fn a_run_per_row_keeps_few_files_open() {
    let (sorted, shuffled) = shuffled(22, 3_000, Shape::Int { space: 1 << 40 });
    let tmp = tempfile::tempdir().unwrap();
    let peak = std::cell::Cell::new(0);
    let source = shuffled.into_iter().enumerate().map(|(i, row)| {
        if i % 100 == 0 {
            peak.set(peak.get().max(open_files(tmp.path())));
        }
        row
    });
    let rows = sort_rows(source, tmp.path(), 0).unwrap();
    assert!(rows.spill_files() > 3_000);
    // Under FAN_IN per level, two levels here.
    assert!(
        peak.get() > 0,
        "no spill file seen open below {}",
        tmp.path().display()
    );
    assert!(
        peak.get() < 3 * FAN_IN,
        "{} files open while sorting",
        peak.get()
    );
    assert_eq!(rows.collect::<Result<Vec<_>>>().unwrap(), sorted);
}

#[test]
fn property_sorts_of_every_size_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in 0..40u64 {
        let rows = [0, 1, 2, 17, 300, 1_500][seed as usize % 6];
        let limit = [0, 100, 1_000, 10_000, 1 << 30][seed as usize % 5];
        let (sorted, shuffled) = shuffled(100 + seed, rows, Shape::Int { space: 1 << 40 });
        let result: Vec<Row> = sort_rows(shuffled, tmp.path(), limit)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(result, sorted, "seed {seed}, {rows} rows, limit {limit}");
    }
}

#[test]
fn fits_in_memory_without_spilling() {
    let (sorted, shuffled) = shuffled(21, 1_000, Shape::Int { space: 10_000 });
    let rows = sort_rows(shuffled, std::path::Path::new("/nonexistent"), 1 << 30).unwrap();
    assert_eq!(rows.spill_files(), 0);
    assert_eq!(rows.collect::<Result<Vec<_>>>().unwrap(), sorted);
}

fn int_row(k: i64) -> Row {
    Row::new(vec![KeyPart::Int(k)], format!("row {k}"))
}

#[test]
fn duplicate_keys_are_refused_in_memory_within_a_run_and_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = vec![int_row(3), int_row(1), int_row(2), int_row(1)];
    let err = sort_rows(rows.clone(), tmp.path(), 1 << 20)
        .err()
        .expect("in memory");
    assert!(matches!(err, RowsError::DuplicateKey { .. }), "{err:?}");

    // A limit that spills every second row (a row costs under 100 bytes and a pair
    // over it): both copies of 1 in one run.
    let rows_one_run = vec![int_row(1), int_row(1), int_row(2), int_row(3)];
    let err = sort_rows(rows_one_run, tmp.path(), 100)
        .err()
        .expect("one run");
    assert!(matches!(err, RowsError::DuplicateKey { .. }), "{err:?}");

    // Each row its own run: the copies meet in the merge.
    let result: Result<Vec<Row>> = sort_rows(rows, tmp.path(), 1).unwrap().collect();
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "key (1) occurs more than once");
}

#[test]
fn tables_without_a_primary_key_sort_by_payload_and_duplicate_counter() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = ["b", "a", "b", "c", "b"];
    let mut seen = std::collections::HashMap::new();
    let rows: Vec<Row> = lines
        .iter()
        .map(|line| {
            let copy = seen.entry(*line).or_insert(0i64);
            let key = vec![
                KeyPart::Bytes(line.as_bytes().to_vec()),
                KeyPart::Int(*copy),
            ];
            *copy += 1;
            Row::new(key, *line)
        })
        .collect();
    let sorted: Vec<Vec<u8>> = sort_rows(rows, tmp.path(), 1)
        .unwrap()
        .map(|r| r.map(|r| r.payload))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(sorted, [b"a", b"b", b"b", b"b", b"c"]);
}

#[test]
fn spill_errors_name_the_directory() {
    let rows = vec![int_row(2), int_row(1)];
    let err = sort_rows(rows, std::path::Path::new("/nonexistent/ostler-tmp"), 1)
        .err()
        .expect("cannot spill");
    assert_eq!(
        err.to_string(),
        "cannot write a sort spill file in /nonexistent/ostler-tmp"
    );
}

#[test]
fn source_errors_stop_the_sort() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = vec![
        Ok(int_row(1)),
        Err(RowsError::from_source("lost connection")),
    ];
    assert!(matches!(
        try_sort_rows(rows, tmp.path(), 1),
        Err(RowsError::Source(_))
    ));
}

#[test]
fn sorted_check_passes_sorted_rows_and_stops_at_the_first_disorder() {
    let sorted = [1, 2, 5].map(int_row);
    let checked: Vec<Row> = SortedCheck::new(sorted.clone().map(Ok))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(checked, sorted);

    // As from a database whose collation puts lowercase before uppercase.
    let collated = ["apple", "Banana", "cherry"].map(|s| Ok(Row::new(vec![KeyPart::from(s)], s)));
    let mut check = SortedCheck::new(collated);
    assert!(check.next().unwrap().is_ok());
    let err = check.next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "rows are out of order: key ('Banana') follows key ('apple')"
    );
    assert!(check.next().is_none());
}
