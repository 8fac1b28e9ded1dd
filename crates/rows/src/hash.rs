//! A table's content hash: blake3 over its rows in key order, each key part and the
//! payload length-prefixed (exact encoding in `FORMAT.md`).
//!
//! It depends only on the rows, not on how they were stored: a base, a base plus
//! thirty deltas, or a fresh read of the database give the same hash for the same
//! content. That is what lets the catalog answer "did this table change?" and lets
//! verify prove a chain restores exactly what was captured. The encoding is fixed
//! width and independent of the stream format, so the stream format can change
//! without changing any recorded hash.

use crate::error::Result;
use crate::key::{KeyPart, LastKey, Row};

/// Domain separation: these hashes are of tables, not of files.
const PREFIX: &[u8] = b"ostler-rows content v1\n";

const PART_INT: u8 = 0x01;
const PART_BYTES: u8 = 0x02;

const BATCH: usize = 64 * 1024;

/// Feeds rows, in ascending key order, into a content hash. For callers that hash
/// while doing something else with the rows (writing a base, say); it does not
/// check the order, [`content_hash`] does.
#[derive(Debug, Clone)]
pub struct ContentHasher {
    hasher: blake3::Hasher,
    batch: Vec<u8>,
    rows: u64,
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHasher {
    pub fn new() -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(PREFIX);
        ContentHasher {
            hasher,
            batch: Vec::with_capacity(BATCH),
            rows: 0,
        }
    }

    pub fn add_row(&mut self, row: &Row) {
        self.add(&row.key, &row.payload);
    }

    pub fn add(&mut self, key: &[KeyPart], payload: &[u8]) {
        let b = &mut self.batch;
        b.extend_from_slice(&(key.len() as u64).to_le_bytes());
        for part in key {
            match part {
                KeyPart::Int(i) => {
                    b.push(PART_INT);
                    b.extend_from_slice(&i.to_le_bytes());
                }
                KeyPart::Bytes(bytes) => {
                    b.push(PART_BYTES);
                    b.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    b.extend_from_slice(bytes);
                }
            }
        }
        b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        if payload.len() >= BATCH {
            self.hasher.update(&self.batch);
            self.batch.clear();
            self.hasher.update(payload);
        } else {
            self.batch.extend_from_slice(payload);
        }
        if self.batch.len() >= BATCH {
            self.hasher.update(&self.batch);
            self.batch.clear();
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The row count and the hash as 64 lowercase hex digits.
    pub fn finish(mut self) -> (u64, String) {
        self.hasher.update(&self.batch);
        (self.rows, self.hasher.finalize().to_hex().to_string())
    }
}

/// The row count and content hash of a table given in ascending key order; a key
/// out of order is an error, since the hash would then depend on the order.
pub fn content_hash<I>(rows: I) -> Result<(u64, String)>
where
    I: IntoIterator<Item = Result<Row>>,
{
    let mut hasher = ContentHasher::new();
    let mut last = LastKey::default();
    for row in rows {
        let row = row?;
        last.advance(&row.key)?;
        hasher.add_row(&row);
    }
    Ok(hasher.finish())
}
