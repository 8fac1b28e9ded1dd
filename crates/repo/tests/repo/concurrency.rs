//! Concurrent writers in threads and in separate processes.

use std::process::Command;
use std::sync::{Arc, Barrier};

use ostler_repo::{Repository, StreamRef};

use crate::common::{new_repo, random_bytes};

const CHILD_ENV: &str = "OSTLER_REPO_TEST_CHILD";

#[test]
fn two_threads_writing_the_same_data_both_succeed() {
    let (_dir, repo) = new_repo();
    let data = Arc::new(random_bytes(50, 6_000_000));
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (repo, data, barrier) = (repo.clone(), Arc::clone(&data), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                repo.write_bytes(&data)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(results[0].0, results[1].0);
    for id in repo.chunk_ids().unwrap() {
        repo.verify_chunk(&id).unwrap();
    }
    assert_eq!(repo.read_to_vec(&results[0].0).unwrap(), *data);
    assert!(std::fs::read_dir(repo.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

/// Not a test on its own: the body of a child process spawned below.
#[test]
#[ignore = "helper run as a child process by other tests"]
fn child_write_seed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let repo = Repository::open(path.as_ref()).unwrap();
    let (stream, _) = repo.write_bytes(&random_bytes(51, 8_000_000)).unwrap();
    println!("STREAM:{}", serde_json::to_string(&stream).unwrap());
}

#[test]
fn processes_writing_the_same_data_at_once_all_succeed() {
    let (_dir, repo) = new_repo();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "concurrency::child_write_seed", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, repo.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let data = random_bytes(51, 8_000_000);
    let (mine, _) = repo.write_bytes(&data).unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("STREAM:").map(|(_, json)| json))
            .unwrap_or_else(|| panic!("no stream in child output: {stdout}"));
        let theirs: StreamRef = serde_json::from_str(line).unwrap();
        assert_eq!(theirs, mine);
    }
    for id in repo.chunk_ids().unwrap() {
        repo.verify_chunk(&id).unwrap();
    }
    assert_eq!(repo.read_to_vec(&mine).unwrap(), data);
}
