//! Writing streams: cut with FastCDC, hash, compress and store in parallel.
//!
//! A stream (one database table dump, one file of a data store) is cut into
//! content-defined chunks, so an insertion near the start of a 10 GB dump
//! changes a chunk or two instead of shifting every fixed-size block after it.
//!
//! The pipeline is bounded so memory stays around ten MiB whatever the stream
//! size: the calling thread reads and cuts (the caller's reader need not be
//! `Send`) and hashes the whole stream; it hands each chunk to a small pool of
//! worker threads through a channel that holds one chunk per worker, and
//! blocks when they fall behind. Workers hash the chunk, skip it if it is
//! already stored, otherwise compress and write it. Results come back out of
//! order and are put back in stream order by index. In flight at most: the
//! chunker's 1 MiB buffer, one chunk per worker and per queue slot, and each
//! worker's zstd context and output buffer (12 MiB peak with 3 workers,
//! measured by the throughput test).
//!
//! Durability: every chunk file is fsynced before its rename, and every shard
//! directory the stream touched (also those of reused chunks, which another
//! writer may not have synced yet) is fsynced before `write_stream` returns.
//! So a [`StreamRef`] that has been returned only names durable chunks, and a
//! manifest written after it can never point at a chunk a power cut lost.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::thread;

use fastcdc::v2020::StreamCDC;
use serde::{Deserialize, Serialize};

use crate::chunk::{chunk_id, Encoder};
use crate::durable;
use crate::error::{RepoError, Result};
use crate::Repository;

/// At most this many worker threads, whatever the core count: beyond it the
/// single cutting thread is the bottleneck.
const MAX_WORKERS: usize = 8;
/// Workers beyond the core count: a worker spends part of each chunk blocked
/// in `fsync`, and another should be compressing meanwhile. (Measured on 2
/// cores: 2 workers ~170 MiB/s, 3 ~185, 4 ~185 with 3 MiB more memory.)
const EXTRA_WORKERS: usize = 1;

/// One chunk of a stream, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's plaintext, 64 lowercase hex digits.
    pub id: String,
    /// Plaintext length in bytes.
    pub len: u32,
}

/// Everything needed to read a stream back: stored in backup manifests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamRef {
    /// Plaintext length in bytes.
    pub size: u64,
    /// BLAKE3 of the whole plaintext, 64 lowercase hex digits.
    pub hash: String,
    /// The chunks whose plaintexts, concatenated, are the stream.
    pub chunks: Vec<ChunkRef>,
}

/// What a write added to the repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStats {
    /// Chunks written by this call.
    pub new_chunks: u64,
    /// Stored (compressed, with header) bytes of the chunks written.
    pub new_bytes: u64,
    /// Chunks that were already stored and were not written again.
    pub reused_chunks: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: WriteStats) {
        self.new_chunks += other.new_chunks;
        self.new_bytes += other.new_bytes;
        self.reused_chunks += other.reused_chunks;
    }
}

/// Retries reads interrupted by a signal: `StreamCDC` treats every read
/// error as fatal, but `Interrupted` only means "try again".
struct RetryInterrupted<R>(R);

impl<R: Read> Read for RetryInterrupted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// A chunk on its way to a worker.
struct Job {
    index: usize,
    data: Vec<u8>,
}

/// A worker's answer for one job.
struct Done {
    index: usize,
    outcome: Result<(ChunkRef, Option<u64>)>,
}

/// What the workers reported, gathered back into stream order.
#[derive(Default)]
struct Results {
    slots: Vec<Option<ChunkRef>>,
    stats: WriteStats,
    /// Shard directories to fsync before the stream is reported complete.
    shards: BTreeSet<String>,
    first_error: Option<RepoError>,
}

impl Results {
    fn record(&mut self, done: Done) {
        match done.outcome {
            Ok((chunk, written)) => {
                match written {
                    Some(bytes) => {
                        self.stats.new_chunks += 1;
                        self.stats.new_bytes += bytes;
                    }
                    None => self.stats.reused_chunks += 1,
                }
                self.shards.insert(chunk.id[..2].to_string());
                if let Some(slot) = self.slots.get_mut(done.index) {
                    *slot = Some(chunk);
                }
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, e: RepoError) {
        self.first_error.get_or_insert(e);
    }
}

impl Repository {
    /// Stores everything `reader` yields as a deduplicated stream.
    ///
    /// `progress` is called on the calling thread with the number of input
    /// bytes consumed so far. Holds the shared lock for the duration of the
    /// call; a backup session should also hold [`Repository::lock_shared`]
    /// until its manifest is written, so garbage collection cannot remove a
    /// reused chunk in between.
    pub fn write_stream(
        &self,
        reader: impl Read,
        progress: &dyn Fn(u64),
    ) -> Result<(StreamRef, WriteStats)> {
        let _session = self.lock_shared()?;
        let params = self.config().chunker;
        let workers = thread::available_parallelism()
            .map(|n| n.get() + EXTRA_WORKERS)
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS);

        let failed = AtomicBool::new(false);
        let mut whole = blake3::Hasher::new();
        let mut offset = 0u64;
        let mut results = Results::default();

        // The channels outlive the scope so the workers can borrow the
        // receiver; the senders are dropped inside it to end the workers.
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(workers);
        let job_rx = Mutex::new(job_rx);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        thread::scope(|scope| {
            // Workers start as chunks arrive, so a one-chunk stream (most
            // manifests and small tables) starts one thread, not all of them.
            let mut spawned = 0;
            let spawn_worker = |spawned: &mut usize, results: &mut Results| -> bool {
                let done_tx = done_tx.clone();
                let (job_rx, failed) = (&job_rx, &failed);
                let spawn = thread::Builder::new()
                    .name("ostler-chunk".into())
                    .spawn_scoped(scope, move || self.chunk_worker(job_rx, done_tx, failed));
                match spawn {
                    Ok(_) => *spawned += 1,
                    // Carry on with the workers we have; with none, give up.
                    Err(e) if *spawned == 0 => {
                        failed.store(true, Ordering::Relaxed);
                        results.fail(RepoError::io("start a worker thread for", self.path(), e));
                        return false;
                    }
                    Err(_) => *spawned = workers,
                }
                true
            };

            let chunker = StreamCDC::new(
                RetryInterrupted(reader),
                params.min_size,
                params.avg_size,
                params.max_size,
            );
            for item in chunker {
                let data = match item {
                    Ok(chunk) => chunk.data,
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        results.fail(RepoError::Input {
                            offset,
                            source: e.into(),
                        });
                        break;
                    }
                };
                if spawned < workers && !spawn_worker(&mut spawned, &mut results) {
                    break;
                }
                whole.update(&data);
                offset += data.len() as u64;
                results.slots.push(None);
                let job = Job {
                    index: results.slots.len() - 1,
                    data,
                };
                if job_tx.send(job).is_err() {
                    break;
                }
                progress(offset);
                while let Ok(done) = done_rx.try_recv() {
                    results.record(done);
                }
                if failed.load(Ordering::Relaxed) {
                    break;
                }
            }
            drop(job_tx);
            drop(done_tx);
            // Ends when every worker has finished and dropped its sender.
            for done in done_rx {
                results.record(done);
            }
        });

        if let Some(e) = results.first_error {
            return Err(e);
        }
        for shard in &results.shards {
            durable::sync_dir(&self.chunks_dir().join(shard))?;
        }
        let total = results.slots.len();
        let chunks: Vec<ChunkRef> = results.slots.into_iter().flatten().collect();
        if chunks.len() != total {
            return Err(RepoError::io(
                "collect chunk results for",
                self.path(),
                std::io::Error::other("a worker thread ended without reporting its chunk"),
            ));
        }
        Ok((
            StreamRef {
                size: offset,
                hash: whole.finalize().to_hex().to_string(),
                chunks,
            },
            results.stats,
        ))
    }

    /// Stores `bytes` as a stream; see [`Repository::write_stream`].
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<(StreamRef, WriteStats)> {
        self.write_stream(bytes, &|_| {})
    }

    /// One pipeline worker: hash, dedup, compress, store, report. After a
    /// failure anywhere it keeps draining jobs without doing them, so the
    /// cutting thread never blocks on a full queue nobody reads.
    fn chunk_worker(&self, jobs: &Mutex<Receiver<Job>>, done: Sender<Done>, failed: &AtomicBool) {
        let mut encoder = Encoder::new();
        loop {
            let job = {
                let rx = jobs.lock().unwrap_or_else(PoisonError::into_inner);
                rx.recv()
            };
            let Ok(job) = job else { return };
            if failed.load(Ordering::Relaxed) {
                continue;
            }
            let outcome = match &mut encoder {
                Ok(encoder) => self.store_job(&job.data, encoder),
                Err(e) => Err(RepoError::io(
                    "create zstd compressor for",
                    self.path(),
                    std::io::Error::new(e.kind(), e.to_string()),
                )),
            };
            if outcome.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            let _ = done.send(Done {
                index: job.index,
                outcome,
            });
        }
    }

    fn store_job(&self, data: &[u8], encoder: &mut Encoder) -> Result<(ChunkRef, Option<u64>)> {
        let id = chunk_id(data);
        let written = self.store_chunk(&id, data, encoder)?;
        let len = u32::try_from(data.len()).map_err(|_| {
            RepoError::io(
                "store chunk in",
                self.path(),
                std::io::Error::other("chunk larger than 4 GiB"),
            )
        })?;
        Ok((ChunkRef { id, len }, written))
    }
}
