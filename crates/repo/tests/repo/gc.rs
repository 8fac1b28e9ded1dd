//! Garbage collection removes exactly what is not live, and respects writers.

use std::collections::HashSet;
use std::time::Duration;

use ostler_repo::{RepoError, StreamRef};

use crate::common::{new_repo, random_bytes};

fn ids(stream: &StreamRef) -> HashSet<String> {
    stream.chunks.iter().map(|c| c.id.clone()).collect()
}

#[test]
fn gc_removes_exactly_the_unreferenced_chunks() {
    let (_dir, repo) = new_repo();
    let a = random_bytes(40, 3_000_000);
    let b = random_bytes(41, 2_000_000);
    // c shares its first half with a.
    let mut c = a[..1_500_000].to_vec();
    c.extend_from_slice(&random_bytes(42, 1_000_000));
    let (sa, _) = repo.write_bytes(&a).unwrap();
    let (sb, _) = repo.write_bytes(&b).unwrap();
    let (sc, _) = repo.write_bytes(&c).unwrap();

    let live: HashSet<String> = ids(&sa).union(&ids(&sc)).cloned().collect();
    let all: HashSet<String> = repo.chunk_ids().unwrap().into_iter().collect();
    let dead: HashSet<String> = all.difference(&live).cloned().collect();
    assert_eq!(dead, ids(&sb), "b shares nothing with a or c");
    let dead_bytes: u64 = dead
        .iter()
        .map(|id| repo.chunk_stored_size(id).unwrap())
        .sum();

    let planned = repo.gc_dry_run(&live).unwrap();
    assert_eq!(planned.removed_chunks, dead.len() as u64);
    assert_eq!(planned.freed_bytes, dead_bytes);
    assert_eq!(
        repo.chunk_ids().unwrap().len(),
        all.len(),
        "dry run removes nothing"
    );

    let done = repo.gc(&live).unwrap();
    assert_eq!(done, planned);
    let left: HashSet<String> = repo.chunk_ids().unwrap().into_iter().collect();
    assert_eq!(left, live);
    assert_eq!(repo.read_to_vec(&sa).unwrap(), a);
    assert_eq!(repo.read_to_vec(&sc).unwrap(), c);
    assert!(matches!(
        repo.read_to_vec(&sb),
        Err(RepoError::MissingChunk { .. })
    ));

    let again = repo.gc(&live).unwrap();
    assert_eq!(again.removed_chunks, 0);
}

#[test]
fn gc_waits_for_writers_and_reports_them_when_it_gives_up() {
    let (_dir, repo) = new_repo();
    let repo = repo.with_lock_timeout(Duration::from_millis(300));
    let writer = repo.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let session = std::thread::spawn(move || {
        let _lock = writer.lock_shared().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    match repo.gc(&HashSet::new()) {
        Err(err @ RepoError::Busy { .. }) => {
            let message = err.to_string();
            assert!(message.starts_with("repository busy"), "{message}");
            assert!(
                message.contains(&format!("pid {} (", std::process::id())),
                "{message}"
            );
            assert!(message.contains("shared"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    release_tx.send(()).unwrap();
    session.join().unwrap();
    repo.gc(&HashSet::new()).unwrap();
}

#[test]
fn writers_wait_for_gc_and_fail_busy_when_it_takes_too_long() {
    let (_dir, repo) = new_repo();
    let repo = repo.with_lock_timeout(Duration::from_millis(200));
    let collector = repo.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let gc_thread = std::thread::spawn(move || {
        let _lock = collector.lock_exclusive().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    match repo.write_bytes(b"hello") {
        Err(RepoError::Busy {
            wanted, holders, ..
        }) => {
            assert_eq!(wanted, "shared");
            assert!(holders.contains("exclusive"), "{holders}");
        }
        other => panic!("{other:?}"),
    }
    release_tx.send(()).unwrap();
    gc_thread.join().unwrap();
    repo.write_bytes(b"hello").unwrap();
}

#[test]
fn the_thread_holding_the_exclusive_lock_can_compute_live_then_collect_and_write() {
    let (_dir, repo) = new_repo();
    let repo = repo.with_lock_timeout(Duration::from_millis(200));
    let (keep, _) = repo.write_bytes(&random_bytes(43, 600_000)).unwrap();
    let (_drop, _) = repo.write_bytes(&random_bytes(44, 600_000)).unwrap();
    let lock = repo.lock_exclusive().unwrap();
    let stats = repo.gc(&ids(&keep)).unwrap();
    assert!(stats.removed_chunks >= 1);
    // Still under the same lock: writing passes too.
    repo.write_bytes(b"under the exclusive lock").unwrap();
    drop(lock);
    // And after release, others can lock again.
    let other = repo.clone();
    std::thread::spawn(move || other.lock_exclusive().map(drop))
        .join()
        .unwrap()
        .unwrap();
}
