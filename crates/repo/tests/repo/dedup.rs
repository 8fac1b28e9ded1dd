//! Deduplication: unchanged data costs nothing, small edits cost a chunk or two.

use crate::common::{new_repo, random_bytes};

const TEN_MB: usize = 10 * 1024 * 1024;

#[test]
fn writing_the_same_ten_megabytes_twice_stores_nothing_new() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(20, TEN_MB);
    let (first, first_stats) = repo.write_bytes(&data).unwrap();
    assert_eq!(first_stats.reused_chunks, 0);
    assert!(
        first_stats.new_bytes > TEN_MB as u64 * 99 / 100,
        "{first_stats:?}"
    );
    let before = repo.stats().unwrap();

    let (second, second_stats) = repo.write_bytes(&data).unwrap();
    assert_eq!(second, first);
    assert_eq!(second_stats.new_chunks, 0);
    assert_eq!(second_stats.new_bytes, 0);
    assert_eq!(second_stats.reused_chunks, first.chunks.len() as u64);
    assert_eq!(repo.stats().unwrap(), before);
}

#[test]
fn inserting_100_bytes_in_the_middle_stores_only_a_few_new_chunks() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(21, TEN_MB);
    let (original, _) = repo.write_bytes(&data).unwrap();

    let mut edited = data[..TEN_MB / 2].to_vec();
    edited.extend_from_slice(&random_bytes(22, 100));
    edited.extend_from_slice(&data[TEN_MB / 2..]);
    let (changed, stats) = repo.write_bytes(&edited).unwrap();

    assert!(
        (1..=3).contains(&stats.new_chunks),
        "{stats:?} for {} chunks",
        changed.chunks.len()
    );
    assert!(stats.new_bytes <= 3 * 1024 * 1024, "{stats:?}");
    assert!(
        stats.reused_chunks + 3 >= original.chunks.len() as u64,
        "{stats:?}"
    );
    assert_eq!(repo.read_to_vec(&changed).unwrap(), edited);
}

#[test]
fn repeated_content_within_one_stream_is_stored_once() {
    let (_dir, repo) = new_repo();
    let block = random_bytes(23, 3 * 1024 * 1024);
    let mut data = block.clone();
    data.extend_from_slice(&block);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let stats = repo.stats().unwrap();
    assert!(stats.chunks < stream.chunks.len() as u64, "{stats:?}");
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data);
}
