//! Reading streams back, verifying as we go.
//!
//! A restore must never hand out bytes it has not checked: each chunk is
//! decompressed and hashed against its id before any of it is returned, and
//! the whole-stream hash and length are checked at the end, so a stream whose
//! `StreamRef` was damaged (chunks reordered, one dropped) fails at EOF
//! instead of restoring quietly wrong data. Errors name the chunk and its
//! file. Memory is one chunk at a time.

use std::io::{self, Read};

use zstd::bulk::Decompressor;

use crate::chunk::new_decompressor;
use crate::error::{RepoError, Result};
use crate::stream::StreamRef;
use crate::Repository;

/// Reads a stream's plaintext; see [`Repository::read_stream`].
///
/// Its `Read` impl wraps [`RepoError`]s in `io::Error`s (recover them with
/// [`RepoError::from_io_error`]); after an error every later read fails too.
pub struct StreamReader {
    repo: Repository,
    stream: StreamRef,
    next_chunk: usize,
    buf: Vec<u8>,
    pos: usize,
    whole: blake3::Hasher,
    bytes_read: u64,
    decompressor: Option<Decompressor<'static>>,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// EOF reached and the whole-stream checks passed.
    Finished,
    /// An error was returned; the stream cannot be trusted further.
    Failed,
}

impl StreamReader {
    fn new(repo: Repository, stream: StreamRef) -> Self {
        StreamReader {
            repo,
            stream,
            next_chunk: 0,
            buf: Vec::new(),
            pos: 0,
            whole: blake3::Hasher::new(),
            bytes_read: 0,
            decompressor: None,
            state: State::Reading,
        }
    }

    /// The stream being read.
    pub fn stream(&self) -> &StreamRef {
        &self.stream
    }

    /// Loads the next chunk into `buf`. Returns `false` at a verified EOF.
    fn fill(&mut self) -> Result<bool> {
        match self.state {
            State::Finished => return Ok(false),
            State::Failed => {
                return Err(RepoError::io(
                    "keep reading stream from",
                    self.repo.path(),
                    io::Error::other("an earlier read of this stream failed"),
                ))
            }
            State::Reading => {}
        }
        let result = self.fill_inner();
        self.state = match &result {
            Ok(true) => State::Reading,
            Ok(false) => State::Finished,
            Err(_) => State::Failed,
        };
        result
    }

    fn fill_inner(&mut self) -> Result<bool> {
        let Some(chunk) = self.stream.chunks.get(self.next_chunk) else {
            return self.finish().map(|()| false);
        };
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            None => self
                .decompressor
                .insert(new_decompressor(&self.repo.chunks_dir())?),
        };
        let data = self
            .repo
            .load_chunk(&chunk.id, Some(chunk.len), decompressor)?;
        self.whole.update(&data);
        self.bytes_read += data.len() as u64;
        self.buf = data;
        self.pos = 0;
        self.next_chunk += 1;
        Ok(true)
    }

    /// The whole-stream checks, at EOF.
    fn finish(&self) -> Result<()> {
        if self.bytes_read != self.stream.size {
            return Err(RepoError::HashMismatch {
                what: "length",
                expected: self.stream.size.to_string(),
                actual: self.bytes_read.to_string(),
            });
        }
        let actual = self.whole.finalize().to_hex().to_string();
        if actual != self.stream.hash {
            return Err(RepoError::HashMismatch {
                what: "hash",
                expected: self.stream.hash.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if !self.fill().map_err(io::Error::other)? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Repository {
    /// A reader of `stream`'s plaintext that verifies every chunk (and the
    /// whole stream at EOF). Nothing is read until the first `read`.
    pub fn read_stream(&self, stream: &StreamRef) -> StreamReader {
        StreamReader::new(self.clone(), stream.clone())
    }

    /// Reads and verifies a whole stream into memory.
    pub fn read_to_vec(&self, stream: &StreamRef) -> Result<Vec<u8>> {
        let mut reader = self.read_stream(stream);
        // Capped: `size` comes from a manifest and may be damaged.
        let mut out = Vec::with_capacity(stream.size.min(1 << 30) as usize);
        while reader.fill()? {
            out.extend_from_slice(&reader.buf);
        }
        Ok(out)
    }
}
