//! Crash safety: leftovers in tmp/ are harmless, a SIGKILLed writer leaves no
//! half chunk, and the sweepers clean up after it.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ostler_repo::{RepoError, Repository};

use crate::common::{new_repo, random_bytes, Rng};

const CHILD_ENV: &str = "OSTLER_REPO_TEST_CHILD";
const SEED_ENV: &str = "OSTLER_REPO_TEST_SEED";

#[test]
fn stray_files_in_tmp_break_nothing_and_clean_tmp_removes_old_ones() {
    let (_dir, repo) = new_repo();
    let tmp = repo.path().join("tmp");
    // What a killed writer leaves: a half-written chunk file under a tmp name.
    let stray = tmp.join("4242-7-deadbeef.tmp");
    fs::write(&stray, b"OSTC\x01 half a zstd frame").unwrap();
    fs::write(tmp.join("not-even-ours"), b"junk").unwrap();

    let data = random_bytes(60, 1_000_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data);
    repo.put_file("backups/a.json", b"{}").unwrap();
    assert_eq!(repo.chunk_ids().unwrap().len(), stream.chunks.len());

    // Fresh files may belong to a live writer: kept.
    assert_eq!(repo.clean_tmp().unwrap(), 0);
    assert!(stray.exists());
    // Older than a minute: removed.
    let old = SystemTime::now() - Duration::from_secs(120);
    for name in ["4242-7-deadbeef.tmp", "not-even-ours"] {
        let file = fs::File::options()
            .write(true)
            .open(tmp.join(name))
            .unwrap();
        file.set_modified(old).unwrap();
    }
    assert_eq!(repo.clean_tmp().unwrap(), 2);
    assert!(fs::read_dir(&tmp).unwrap().next().is_none());
}

/// Endless random input, so the child is always mid-stream when killed.
struct Endless(Rng);

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for chunk in buf.chunks_mut(8) {
            let word = self.0.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(buf.len())
    }
}

/// Not a test on its own: the body of the child process killed below.
#[test]
#[ignore = "helper run as a child process by other tests"]
fn child_write_forever() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seed = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let repo = Repository::open(path.as_ref()).unwrap();
    let _session = repo.lock_shared().unwrap();
    let _ = repo.write_stream(Endless(Rng::new(seed)), &|_| {});
}

/// Kills the child on drop, so a failing assertion cannot leave it running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_killed_mid_stream_leaves_only_whole_chunks_and_tmp_files() {
    let (_dir, repo) = new_repo();
    let repo = repo.with_lock_timeout(Duration::from_millis(300));
    for round in 0..3u64 {
        let before = repo.chunk_ids().unwrap().len();
        let mut child = KillOnDrop(
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "crash::child_write_forever", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, repo.path())
                .env(SEED_ENV, (61 + round).to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn child"),
        );
        // Stop it at a different point each round.
        let want = before + 5 + round as usize * 7;
        let deadline = Instant::now() + Duration::from_secs(120);
        while repo.chunk_ids().unwrap().len() < want {
            assert!(Instant::now() < deadline, "child wrote too few chunks");
            std::thread::sleep(Duration::from_millis(5));
        }

        // While it writes, gc cannot run, and says who is in the way.
        match repo.gc(&HashSet::new()) {
            Err(RepoError::Busy { holders, .. }) => {
                assert!(
                    holders.contains(&format!("pid {} ", child.0.id())),
                    "{holders}"
                );
            }
            other => panic!("{other:?}"),
        }

        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();

        // Every file under chunks/ is a complete, valid chunk.
        for shard in fs::read_dir(repo.path().join("chunks")).unwrap() {
            for entry in fs::read_dir(shard.unwrap().path()).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                repo.verify_chunk(&name)
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        }
    }
    // The kernel dropped the dead writer's lock; the sweepers clean up.
    repo.clean_tmp_older_than(Duration::ZERO).unwrap();
    assert!(fs::read_dir(repo.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
    let stats = repo.gc(&HashSet::new()).unwrap();
    assert!(stats.removed_chunks >= 10);
    assert!(repo.chunk_ids().unwrap().is_empty());
    let data = random_bytes(62, 500_000);
    let (stream, _) = repo.write_bytes(&data).unwrap();
    assert_eq!(repo.read_to_vec(&stream).unwrap(), data);
}

#[test]
fn an_interrupted_init_can_be_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(&path).unwrap();
    // Simulate a crash before config.json was written.
    fs::remove_file(path.join("config.json")).unwrap();
    assert!(matches!(
        Repository::open(&path),
        Err(RepoError::NotARepository { .. })
    ));
    let repo = Repository::init(&path).unwrap();
    repo.write_bytes(b"after recovery").unwrap();
}
