//! The row-level delta between two backups of a table.
//!
//! Both inputs are sorted by key, so one merge walk finds every added, changed and
//! removed row while holding one row from each side: memory is independent of table
//! size, and time is one pass over both. The walk also hashes the current rows, so
//! the catalog gets the table's content hash without a second read.

use std::cmp::Ordering;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hash::ContentHasher;
use crate::key::{check_order, Row};
use crate::stream::DeltaWriter;

/// What a diff found. `rows` counts the current table; `content_hash` is its
/// content hash (see [`crate::content_hash`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffStats {
    pub rows: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub content_hash: String,
}

impl DiffStats {
    /// True when the current table equals the previous one (the delta is empty).
    pub fn is_unchanged(&self) -> bool {
        self.added == 0 && self.changed == 0 && self.removed == 0
    }
}

/// One side of the walk: the row in hand and the rest. Checks each row comes after
/// the one before it, without keeping a copy of any key.
struct Side<I> {
    rows: I,
    head: Option<Row>,
}

impl<I: Iterator<Item = Result<Row>>> Side<I> {
    fn new(mut rows: I) -> Result<Self> {
        let head = rows.next().transpose()?;
        Ok(Side { rows, head })
    }

    /// Gives the row in hand and takes the next one.
    fn take(&mut self) -> Result<Option<Row>> {
        let next = self.rows.next().transpose()?;
        if let (Some(head), Some(next)) = (&self.head, &next) {
            check_order(Some(&head.key), &next.key)?;
        }
        Ok(std::mem::replace(&mut self.head, next))
    }
}

/// Writes to `delta` the operations that turn `previous` into `current` (both in
/// ascending key order) and returns what changed. Neither input may repeat a key or
/// go backwards ([`crate::RowsError::OutOfOrder`]); then `delta` holds a partial
/// stream to be discarded. `delta` is not finished here, so the caller can look at
/// the stats before deciding to keep it.
pub fn diff<P, C, W>(previous: P, current: C, delta: &mut DeltaWriter<W>) -> Result<DiffStats>
where
    P: IntoIterator<Item = Result<Row>>,
    C: IntoIterator<Item = Result<Row>>,
    W: Write,
{
    let mut prev = Side::new(previous.into_iter())?;
    let mut cur = Side::new(current.into_iter())?;
    let mut hasher = ContentHasher::new();
    let mut stats = DiffStats::default();
    loop {
        let order = match (&prev.head, &cur.head) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(c)) => p.key.cmp(&c.key),
        };
        match order {
            Ordering::Less => {
                if let Some(gone) = prev.take()? {
                    delta.delete(&gone.key)?;
                    stats.removed += 1;
                }
            }
            Ordering::Greater => {
                if let Some(new) = cur.take()? {
                    delta.upsert(&new.key, &new.payload)?;
                    hasher.add_row(&new);
                    stats.added += 1;
                }
            }
            Ordering::Equal => {
                let old = prev.take()?;
                if let Some(new) = cur.take()? {
                    if old.is_some_and(|old| old.payload == new.payload) {
                        stats.unchanged += 1;
                    } else {
                        delta.upsert(&new.key, &new.payload)?;
                        stats.changed += 1;
                    }
                    hasher.add_row(&new);
                }
            }
        }
    }
    let (rows, hash) = hasher.finish();
    stats.rows = rows;
    stats.content_hash = hash;
    Ok(stats)
}
