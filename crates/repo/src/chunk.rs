//! Chunk files: encoding, decoding, and the chunk store under `chunks/`.
//!
//! A chunk is at most a few MiB of plaintext, stored once, named by the
//! BLAKE3 hash of that plaintext. Naming by the plaintext (not the stored
//! bytes) is what makes deduplication independent of the compressor: a later
//! zstd that compresses differently still finds the chunks an older one wrote.
//! It also means every read is a full integrity check: decompress, hash,
//! compare with the file name. Nothing about a chunk is trusted until then.
//!
//! File layout (see FORMAT.md): `"OSTC"`, one format byte (`1` = the rest is
//! one zstd frame whose header records the content size), then the frame.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use zstd::bulk::{Compressor, Decompressor};

use crate::durable::{self, Existing};
use crate::error::{IoContext, RepoError, Result};
use crate::Repository;

/// First four bytes of every chunk file.
pub const CHUNK_MAGIC: [u8; 4] = *b"OSTC";
/// Format byte: the rest of the file is a single zstd frame with content size.
pub const CHUNK_FORMAT_ZSTD: u8 = 1;
/// zstd level chunks are written with.
pub const ZSTD_LEVEL: i32 = 3;
/// Length of the magic plus the format byte.
pub(crate) const HEADER_LEN: usize = 5;
/// Largest plaintext a chunk may decode to: FastCDC's largest possible maximum
/// size, so a corrupt frame header cannot make us allocate gigabytes.
const MAX_PLAINTEXT: u64 = fastcdc::v2020::MAXIMUM_MAX as u64;

/// Chunks a handle (and its clones) knows to be damaged, and those it rewrote.
#[derive(Debug, Default)]
pub(crate) struct DamageBook {
    /// Told by the caller (a verify found them bad): never reused, always rewritten.
    known: BTreeSet<String>,
    /// Rewritten by this handle because they were known bad or failed the write-time check.
    rewritten: BTreeSet<String>,
}

pub(crate) type Damage = Arc<Mutex<DamageBook>>;

/// Checks that `id` is 64 lowercase hex digits, so it can be used as a path.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(RepoError::InvalidChunkId { id: id.to_string() })
    }
}

/// A chunk id is the hex BLAKE3 hash of the plaintext.
pub(crate) fn chunk_id(plaintext: &[u8]) -> String {
    blake3::hash(plaintext).to_hex().to_string()
}

/// Per-thread compression state, reused across chunks.
pub(crate) struct Encoder {
    compressor: Compressor<'static>,
    buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Encoder {
            compressor: Compressor::new(ZSTD_LEVEL)?,
            buf: Vec::new(),
        })
    }

    /// The full chunk file content for `plaintext`.
    pub(crate) fn encode(&mut self, plaintext: &[u8]) -> io::Result<&[u8]> {
        let bound = zstd::zstd_safe::compress_bound(plaintext.len());
        self.buf.clear();
        self.buf.resize(HEADER_LEN + bound, 0);
        self.buf[..4].copy_from_slice(&CHUNK_MAGIC);
        self.buf[4] = CHUNK_FORMAT_ZSTD;
        let written = self
            .compressor
            .compress_to_buffer(plaintext, &mut self.buf[HEADER_LEN..])?;
        self.buf.truncate(HEADER_LEN + written);
        Ok(&self.buf)
    }
}

/// Decodes and verifies one chunk file's bytes. `expected_len` is the
/// plaintext length a stream recorded for it, when known.
pub(crate) fn decode(
    id: &str,
    path: &Path,
    file: &[u8],
    expected_len: Option<u32>,
    decompressor: &mut Decompressor<'static>,
) -> Result<Vec<u8>> {
    let corrupt = |reason: String| RepoError::CorruptChunk {
        id: id.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    if file.len() < HEADER_LEN || file[..4] != CHUNK_MAGIC {
        return Err(corrupt("bad header (not an ostler chunk file)".into()));
    }
    if file[4] != CHUNK_FORMAT_ZSTD {
        return Err(corrupt(format!("unknown chunk format byte {}", file[4])));
    }
    let frame = &file[HEADER_LEN..];
    let plaintext = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => {
            if let Some(expected) = expected_len {
                if size != u64::from(expected) {
                    return Err(corrupt(format!(
                        "frame holds {size} bytes, the stream expects {expected}"
                    )));
                }
            }
            if size > MAX_PLAINTEXT {
                return Err(corrupt(format!("frame claims {size} bytes, too large")));
            }
            // Bounded by MAX_PLAINTEXT above, so the cast cannot truncate.
            let mut out = vec![0u8; size as usize];
            let written = decompressor
                .decompress_to_buffer(frame, &mut out[..])
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            if written != out.len() {
                return Err(corrupt(format!(
                    "frame decoded to {written} bytes, header says {size}"
                )));
            }
            out
        }
        // Frames without a recorded size are valid zstd (a hand-made chunk,
        // say): decode them as a stream, bounded.
        Ok(None) => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::with_buffer(frame)
                .and_then(|d| d.take(MAX_PLAINTEXT + 1).read_to_end(&mut out))
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            if out.len() as u64 > MAX_PLAINTEXT {
                return Err(corrupt("frame decodes to more than 16 MiB".into()));
            }
            out
        }
        Err(_) => return Err(corrupt("not a zstd frame after the header".into())),
    };
    if let Some(expected) = expected_len {
        if plaintext.len() as u64 != u64::from(expected) {
            return Err(corrupt(format!(
                "decoded {} bytes, the stream expects {expected}",
                plaintext.len()
            )));
        }
    }
    let actual = chunk_id(&plaintext);
    if actual != id {
        return Err(corrupt(format!("content hashes to {actual}")));
    }
    Ok(plaintext)
}

/// A fresh decompressor; creation only fails when zstd cannot allocate.
pub(crate) fn new_decompressor(path: &Path) -> Result<Decompressor<'static>> {
    Decompressor::new().at("create zstd decompressor for", path)
}

impl Repository {
    /// Where chunk `id` is (or would be) stored: `chunks/<first 2 hex>/<id>`.
    pub fn chunk_path(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.chunks_dir().join(&id[..2]).join(id))
    }

    /// Whether chunk `id` is stored (present, not verified).
    pub fn has_chunk(&self, id: &str) -> Result<bool> {
        let path = self.chunk_path(id)?;
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RepoError::io("stat chunk", &path, e)),
        }
    }

    /// Size in bytes of chunk `id`'s file (header plus compressed frame).
    pub fn chunk_stored_size(&self, id: &str) -> Result<u64> {
        let path = self.chunk_path(id)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RepoError::MissingChunk {
                id: id.to_string(),
                path,
            }),
            Err(e) => Err(RepoError::io("stat chunk", &path, e)),
        }
    }

    /// Reads, decompresses and verifies chunk `id`; returns its plaintext.
    pub fn read_chunk(&self, id: &str) -> Result<Vec<u8>> {
        let path = self.chunk_path(id)?;
        let mut decompressor = new_decompressor(&path)?;
        self.load_chunk(id, None, &mut decompressor)
    }

    /// Re-reads chunk `id`, decompresses it and checks that its content
    /// hashes to `id`.
    pub fn verify_chunk(&self, id: &str) -> Result<()> {
        self.read_chunk(id).map(drop)
    }

    /// Every chunk id stored, sorted. Files under `chunks/` that are not
    /// named like a chunk in the right shard are not chunks and are skipped.
    pub fn chunk_ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        self.for_each_chunk(|id, _| {
            ids.push(id.to_string());
            Ok(())
        })?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// Calls `f(id, stored_size)` for every chunk, in no particular order.
    pub(crate) fn for_each_chunk(&self, mut f: impl FnMut(&str, u64) -> Result<()>) -> Result<()> {
        let root = self.chunks_dir();
        for shard in fs::read_dir(&root).at("list", &root)? {
            let shard = shard.at("list", &root)?;
            let shard_name = shard.file_name();
            let Some(shard_name) = shard_name.to_str() else {
                continue;
            };
            let is_shard = shard_name.len() == 2
                && shard_name
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !is_shard || !shard.file_type().at("stat", shard.path())?.is_dir() {
                continue;
            }
            let shard_path = shard.path();
            for entry in fs::read_dir(&shard_path).at("list", &shard_path)? {
                let entry = entry.at("list", &shard_path)?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if validate_id(name).is_err() || !name.starts_with(shard_name) {
                    continue;
                }
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    // Removed under us (gc in another handle): not a chunk any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(RepoError::io("stat chunk", entry.path(), e)),
                };
                if meta.is_file() {
                    f(name, meta.len())?;
                }
            }
        }
        Ok(())
    }

    /// Reads and verifies chunk `id` with a caller-owned decompressor.
    pub(crate) fn load_chunk(
        &self,
        id: &str,
        expected_len: Option<u32>,
        decompressor: &mut Decompressor<'static>,
    ) -> Result<Vec<u8>> {
        let path = self.chunk_path(id)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RepoError::MissingChunk {
                    id: id.to_string(),
                    path,
                })
            }
            Err(e) => return Err(RepoError::io("read chunk", &path, e)),
        };
        decode(id, &path, &bytes, expected_len, decompressor)
    }

    /// Tells this handle (and its clones) that these chunks are damaged: a write
    /// of the same content replaces them instead of reusing them, which heals
    /// every backup that names them.
    pub fn mark_damaged<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut book = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        book.known.extend(ids.into_iter().map(str::to_string));
    }

    /// Whether chunk `id` is known damaged and has not been rewritten since.
    pub fn is_marked_damaged(&self, id: &str) -> bool {
        let book = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        book.known.contains(id) && !book.rewritten.contains(id)
    }

    /// Chunks known damaged and not rewritten since, sorted.
    pub fn damaged_chunks(&self) -> Vec<String> {
        let book = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        book.known.difference(&book.rewritten).cloned().collect()
    }

    /// Chunks this handle rewrote over a damaged copy (known, or caught by the
    /// write-time check), sorted.
    pub fn rewritten_chunks(&self) -> Vec<String> {
        let book = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        book.rewritten.iter().cloned().collect()
    }

    /// The cheap check of a chunk that is already stored, done before reusing it:
    /// the header, the content size its zstd frame records, and that the frame's
    /// blocks end exactly at the end of the file. It reads the stored bytes but
    /// neither decompresses nor hashes them, and catches truncated, emptied,
    /// overwritten and extended files; a flipped bit inside a block needs the full
    /// check (`verify`), after which [`Repository::mark_damaged`] applies.
    fn looks_sound(&self, path: &Path, plaintext_len: usize) -> Result<bool> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(RepoError::io("read chunk", path, e)),
        };
        if bytes.len() < HEADER_LEN || bytes[..4] != CHUNK_MAGIC || bytes[4] != CHUNK_FORMAT_ZSTD {
            return Ok(false);
        }
        let frame = &bytes[HEADER_LEN..];
        let content_size = zstd::zstd_safe::get_frame_content_size(frame);
        if !matches!(content_size, Ok(Some(n)) if n == plaintext_len as u64) {
            return Ok(false);
        }
        Ok(zstd::zstd_safe::find_frame_compressed_size(frame) == Ok(frame.len()))
    }

    /// Stores `plaintext` as chunk `id` unless a sound copy is already present.
    /// Returns the stored size when it wrote the chunk, `None` when it reused
    /// one. A present copy known damaged, or failing the cheap check, is
    /// replaced. The shard directory is *not* synced: the caller does that once
    /// per shard (see `durable`).
    pub(crate) fn store_chunk(
        &self,
        id: &str,
        plaintext: &[u8],
        encoder: &mut Encoder,
    ) -> Result<Option<u64>> {
        let path = self.chunk_path(id)?;
        let mut rewrite = false;
        if self.has_chunk(id)? {
            if !self.is_marked_damaged(id) && self.looks_sound(&path, plaintext.len())? {
                return Ok(None);
            }
            rewrite = true;
        }
        let encoded = encoder.encode(plaintext).at("compress chunk for", &path)?;
        let stored = encoded.len() as u64;
        let shard = self.chunks_dir().join(&id[..2]);
        if !shard.is_dir() {
            // Shards are made by init; one deleted by hand comes back here.
            if durable::ensure_dir(&shard)? {
                durable::sync_dir(&self.chunks_dir())?;
            }
        }
        durable::write_atomic(&self.tmp_dir(), &path, &[encoded], Existing::Replace)?;
        if rewrite {
            let mut book = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
            book.rewritten.insert(id.to_string());
        }
        Ok(Some(stored))
    }
}
