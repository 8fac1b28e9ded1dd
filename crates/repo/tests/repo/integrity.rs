//! Damage is always caught, and the error says which chunk and which file.

use std::fs;
use std::io::Read;

use ostler_repo::{RepoError, Repository, StreamRef};

use crate::common::{new_repo, random_bytes, sql_like_bytes};

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

/// Asserts that reading `stream` fails on chunk `id`, both ways.
fn assert_read_names_chunk(repo: &Repository, stream: &StreamRef, id: &str, missing: bool) {
    let check = |err: &RepoError| match err {
        RepoError::CorruptChunk { id: got, path, .. } if !missing => {
            assert_eq!(got, id);
            assert_eq!(*path, repo.chunk_path(id).unwrap());
            let message = err.to_string();
            assert!(message.contains(id) && message.contains(&path.display().to_string()));
        }
        RepoError::MissingChunk { id: got, .. } if missing => assert_eq!(got, id),
        other => panic!("wrong error for chunk {id}: {other:?}"),
    };
    check(&repo.read_to_vec(stream).expect_err("read_to_vec must fail"));
    let io_err = repo
        .read_stream(stream)
        .read_to_end(&mut Vec::new())
        .expect_err("read_stream must fail");
    check(RepoError::from_io_error(&io_err).expect("a RepoError inside"));
}

#[test]
fn a_flipped_byte_anywhere_in_any_chunk_file_is_caught() {
    let (_dir, repo) = new_repo();
    // Mixed content: some chunks compress well, some not at all.
    let mut data = sql_like_bytes(30, 1_500_000);
    data.extend_from_slice(&random_bytes(31, 1_500_000));
    let (stream, _) = repo.write_bytes(&data).unwrap();
    assert!(stream.chunks.len() >= 4);

    for (n, chunk) in stream.chunks.iter().enumerate() {
        let path = repo.chunk_path(&chunk.id).unwrap();
        let size = fs::metadata(&path).unwrap().len() as usize;
        // Magic, format byte, zstd frame header, somewhere inside, last byte.
        let spots = [0, 4, 5, 9, 5 + n * 7919 % (size - 5), size / 2, size - 1];
        for at in spots {
            flip_byte(&path, at);
            match repo.verify_chunk(&chunk.id) {
                Err(RepoError::CorruptChunk { id, .. }) => assert_eq!(id, chunk.id),
                other => panic!("flip at {at} of {size} in chunk {n}: {other:?}"),
            }
            assert_read_names_chunk(&repo, &stream, &chunk.id, false);
            flip_byte(&path, at);
        }
        repo.verify_chunk(&chunk.id).unwrap();
    }
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data);
}

#[test]
fn a_truncated_chunk_file_is_caught() {
    let (_dir, repo) = new_repo();
    let (stream, _) = repo.write_bytes(&random_bytes(32, 400_000)).unwrap();
    let id = &stream.chunks[0].id;
    let path = repo.chunk_path(id).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        repo.verify_chunk(id),
        Err(RepoError::CorruptChunk { .. })
    ));
    assert_read_names_chunk(&repo, &stream, id, false);
}

#[test]
fn a_missing_chunk_is_reported_by_id() {
    let (_dir, repo) = new_repo();
    let (stream, _) = repo.write_bytes(&random_bytes(33, 2_000_000)).unwrap();
    let id = &stream.chunks[stream.chunks.len() / 2].id;
    fs::remove_file(repo.chunk_path(id).unwrap()).unwrap();
    assert!(!repo.has_chunk(id).unwrap());
    assert!(matches!(
        repo.verify_chunk(id),
        Err(RepoError::MissingChunk { id: ref got, .. }) if got == id
    ));
    assert!(matches!(
        repo.chunk_stored_size(id),
        Err(RepoError::MissingChunk { .. })
    ));
    assert_read_names_chunk(&repo, &stream, id, true);
}

#[test]
fn a_stream_ref_with_swapped_chunks_fails_the_whole_stream_hash() {
    let (_dir, repo) = new_repo();
    let (mut stream, _) = repo.write_bytes(&random_bytes(34, 2_000_000)).unwrap();
    stream.chunks.swap(0, 1);
    match repo.read_to_vec(&stream) {
        Err(RepoError::HashMismatch { what: "hash", .. }) => {}
        other => panic!("{other:?}"),
    }
    stream.chunks.swap(0, 1);
    stream.size += 1;
    match repo.read_to_vec(&stream) {
        Err(RepoError::HashMismatch { what: "length", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chunk_with_the_wrong_length_in_the_stream_ref_is_caught() {
    let (_dir, repo) = new_repo();
    let (mut stream, _) = repo.write_bytes(&random_bytes(35, 500_000)).unwrap();
    stream.chunks[0].len -= 1;
    assert!(matches!(
        repo.read_to_vec(&stream),
        Err(RepoError::CorruptChunk { .. })
    ));
}

#[test]
fn every_written_chunk_verifies_and_is_listed() {
    let (_dir, repo) = new_repo();
    let (stream, stats) = repo.write_bytes(&sql_like_bytes(36, 4_000_000)).unwrap();
    let mut ids: Vec<String> = stream.chunks.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(repo.chunk_ids().unwrap(), ids);
    let mut stored = 0;
    for id in &ids {
        repo.verify_chunk(id).unwrap();
        stored += repo.chunk_stored_size(id).unwrap();
    }
    assert_eq!(stored, stats.new_bytes);
    assert_eq!(repo.stats().unwrap().chunk_bytes, stored);
}

#[test]
fn chunk_ids_that_could_be_paths_are_refused() {
    let (_dir, repo) = new_repo();
    for bad in ["", "../config.json", &"A".repeat(64), &"0".repeat(63)] {
        assert!(matches!(
            repo.chunk_path(bad),
            Err(RepoError::InvalidChunkId { .. })
        ));
        assert!(repo.verify_chunk(bad).is_err());
    }
}

#[test]
fn a_chunk_marked_damaged_is_written_afresh_not_reused() {
    // Regression: a write found the chunk present and reused it, so every later
    // stream of the same content named the damaged copy.
    let (_dir, repo) = new_repo();
    let data = random_bytes(7, 300_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let id = stream.chunks[0].id.clone();
    let path = repo.chunk_path(&id).unwrap();
    let len = fs::read(&path).unwrap().len();
    flip_byte(&path, len / 2);
    let (_, stats) = repo.write_bytes(&data).unwrap();
    assert_eq!(
        stats.new_chunks, 0,
        "unknown damage inside a frame is reused"
    );
    assert!(repo.rewritten_chunks().is_empty());

    repo.mark_damaged([id.as_str()]);
    assert!(repo.is_marked_damaged(&id));
    let (again, stats) = repo.write_bytes(&data).unwrap();
    assert_eq!(again, stream);
    assert_eq!(stats.new_chunks, 1);
    assert_eq!(repo.rewritten_chunks(), vec![id.clone()]);
    assert!(!repo.is_marked_damaged(&id));
    assert!(repo.damaged_chunks().is_empty());
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data, "healed in place");
}

#[test]
fn a_truncated_or_overwritten_chunk_fails_the_write_time_check_and_is_rewritten() {
    let (_dir, repo) = new_repo();
    let data = sql_like_bytes(3, 200_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let path = repo.chunk_path(&stream.chunks[0].id).unwrap();
    let good = fs::read(&path).unwrap();
    let damages: [(&str, Vec<u8>); 4] = [
        ("truncated", good[..good.len() - 1].to_vec()),
        ("extended", [&good[..], b"x"].concat()),
        ("empty", vec![]),
        ("header", [&b"XXXX"[..], &good[4..]].concat()),
    ];
    for (what, bytes) in damages {
        fs::write(&path, bytes).unwrap();
        let (_, stats) = repo.write_bytes(&data).unwrap();
        assert_eq!(stats.new_chunks, 1, "{what}: not rewritten");
        assert_eq!(repo.read_to_vec(&stream).unwrap(), data, "{what}");
    }
    assert_eq!(repo.rewritten_chunks(), vec![stream.chunks[0].id.clone()]);
}
