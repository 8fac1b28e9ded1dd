//! A quick throughput check, run by hand:
//! `cargo test --release -p ostler-repo -- --ignored --nocapture throughput`.
//! It prints numbers and asserts only correctness: timed assertions do not
//! belong in tests (DESIGN.md); recorded results go to docs/BENCHMARKS.md
//! with this command.

use std::io::Read;
use std::time::Instant;

use crate::common::{new_repo, sql_like_bytes};

const SIZE: usize = 200 * 1024 * 1024;

/// Peak resident memory so far (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

#[test]
#[ignore = "prints throughput; run by hand with --release"]
fn throughput_of_200_megabytes_of_semi_compressible_data() {
    let (_dir, repo) = new_repo();
    let data = sql_like_bytes(70, SIZE);
    let rss_before = peak_rss_kib();

    let start = Instant::now();
    let (stream, stats) = repo.write_bytes(&data).unwrap();
    let write = start.elapsed().as_secs_f64();
    let pipeline_kib = peak_rss_kib().saturating_sub(rss_before);

    let start = Instant::now();
    let (again, again_stats) = repo.write_bytes(&data).unwrap();
    let rewrite = start.elapsed().as_secs_f64();
    assert_eq!(again, stream);
    assert_eq!(again_stats.new_bytes, 0);

    let start = Instant::now();
    let mut reader = repo.read_stream(&stream);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let read = start.elapsed().as_secs_f64();
    assert_eq!(total, SIZE);

    let start = Instant::now();
    for id in repo.chunk_ids().unwrap() {
        repo.verify_chunk(&id).unwrap();
    }
    let verify = start.elapsed().as_secs_f64();

    println!(
        "200 MiB SQL-like data, {} chunks, stored {:.1} MiB (ratio {:.2}), {} threads available",
        stream.chunks.len(),
        stats.new_bytes as f64 / 1048576.0,
        SIZE as f64 / stats.new_bytes as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "write pipeline peak memory: {:.1} MiB",
        pipeline_kib as f64 / 1024.0
    );
    println!("write (new):    {:7.1} MiB/s", mb_per_s(SIZE, write));
    println!("write (dedup):  {:7.1} MiB/s", mb_per_s(SIZE, rewrite));
    println!("read + verify:  {:7.1} MiB/s", mb_per_s(SIZE, read));
    println!("verify chunks:  {:7.1} MiB/s", mb_per_s(SIZE, verify));
}
