//! What goes in comes back out, bit for bit, with a correct `StreamRef`.

use std::cell::Cell;
use std::io::Read;

use ostler_repo::{Repository, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE};

use crate::common::{hash_hex, new_repo, random_bytes, sql_like_bytes};

fn round_trip(repo: &Repository, data: &[u8]) {
    let (stream, stats) = repo.write_bytes(data).expect("write");
    assert_eq!(stream.size, data.len() as u64);
    assert_eq!(stream.hash, hash_hex(data));
    let lens: u64 = stream.chunks.iter().map(|c| u64::from(c.len)).sum();
    assert_eq!(lens, data.len() as u64);
    if let Some((last, rest)) = stream.chunks.split_last() {
        assert!(last.len <= DEFAULT_MAX_SIZE);
        for chunk in rest {
            assert!(
                (DEFAULT_MIN_SIZE..=DEFAULT_MAX_SIZE).contains(&chunk.len),
                "{chunk:?}"
            );
        }
    }
    assert_eq!(
        stats.new_chunks + stats.reused_chunks,
        stream.chunks.len() as u64
    );

    assert_eq!(repo.read_to_vec(&stream).expect("read_to_vec"), data);
    let mut via_read = Vec::new();
    repo.read_stream(&stream)
        .read_to_end(&mut via_read)
        .expect("read_stream");
    assert_eq!(via_read, data);
}

#[test]
fn empty_stream_round_trips_with_no_chunks() {
    let (_dir, repo) = new_repo();
    round_trip(&repo, &[]);
    let (stream, _) = repo.write_bytes(&[]).unwrap();
    assert!(stream.chunks.is_empty());
}

#[test]
fn one_byte_round_trips() {
    let (_dir, repo) = new_repo();
    round_trip(&repo, b"x");
}

#[test]
fn five_megabytes_of_random_data_round_trip() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(1, 5_000_000);
    round_trip(&repo, &data);
}

#[test]
fn sizes_around_chunk_boundaries_round_trip() {
    let (_dir, repo) = new_repo();
    for (seed, len) in [
        (2, DEFAULT_MIN_SIZE as usize - 1),
        (3, DEFAULT_MIN_SIZE as usize),
        (4, DEFAULT_MAX_SIZE as usize),
        (5, DEFAULT_MAX_SIZE as usize + 1),
    ] {
        round_trip(&repo, &random_bytes(seed, len));
    }
    round_trip(&repo, &sql_like_bytes(6, 3_000_000));
}

#[test]
fn a_reopened_repository_reads_what_was_written() {
    let (dir, repo) = new_repo();
    let data = sql_like_bytes(7, 2_000_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    drop(repo);
    let reopened = Repository::open(&dir.path().join("repo")).unwrap();
    assert_eq!(reopened.read_to_vec(&stream).unwrap(), data);
}

#[test]
fn stream_ref_survives_json() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(8, 700_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let json = serde_json::to_string(&stream).unwrap();
    let back: ostler_repo::StreamRef = serde_json::from_str(&json).unwrap();
    assert_eq!(back, stream);
    assert_eq!(repo.read_to_vec(&back).unwrap(), data);
}

#[test]
fn progress_reports_growing_byte_counts_ending_at_the_size() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(9, 3_000_000);
    let last = Cell::new(0u64);
    let calls = Cell::new(0u32);
    let (stream, _) = repo
        .write_stream(&data[..], &|n| {
            assert!(n >= last.get());
            last.set(n);
            calls.set(calls.get() + 1);
        })
        .unwrap();
    assert_eq!(last.get(), stream.size);
    assert!(calls.get() >= 2);
}

#[test]
fn small_reads_see_the_same_bytes() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(10, 1_500_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    let mut reader = repo.read_stream(&stream);
    let mut out = Vec::new();
    let mut buf = [0u8; 4093];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, data);
    // EOF is sticky.
    assert_eq!(reader.read(&mut buf).unwrap(), 0);
}

/// Yields `data`, failing once with `kind` after `fail_at` bytes.
struct Flaky<'a> {
    data: &'a [u8],
    pos: usize,
    fail_at: usize,
    kind: Option<std::io::ErrorKind>,
}

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.fail_at {
            if let Some(kind) = self.kind.take() {
                return Err(std::io::Error::new(kind, "flaky input"));
            }
        }
        let end = if self.kind.is_some() {
            self.fail_at
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_failing_input_is_reported_as_input_and_leaves_the_repository_clean() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(11, 3_000_000);
    let flaky = Flaky {
        data: &data,
        pos: 0,
        fail_at: 2_000_000,
        kind: Some(std::io::ErrorKind::BrokenPipe),
    };
    match repo.write_stream(flaky, &|_| {}) {
        Err(err @ ostler_repo::RepoError::Input { .. }) => {
            assert!(
                err.to_string()
                    .starts_with("reading the input stream failed"),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(std::fs::read_dir(repo.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
    for id in repo.chunk_ids().unwrap() {
        repo.verify_chunk(&id).unwrap();
    }
}

#[test]
fn an_interrupted_read_is_retried() {
    let (_dir, repo) = new_repo();
    let data = random_bytes(12, 2_000_000);
    let flaky = Flaky {
        data: &data,
        pos: 0,
        fail_at: 1_000_000,
        kind: Some(std::io::ErrorKind::Interrupted),
    };
    let (stream, _) = repo.write_stream(flaky, &|_| {}).unwrap();
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data);
}
