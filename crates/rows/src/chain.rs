//! Walking a chain base → delta → delta …: the table as of the newest delta.
//!
//! Restore, verify and prune all need a backup's full table, and only its chain is
//! stored. Applying deltas one at a time would need the whole intermediate table in
//! memory or on disk; instead every stream is sorted by key, so one k-way merge over
//! the base and all deltas yields the final rows in key order directly, holding one
//! record per stream (memory O(number of deltas), not O(rows)). For each key the
//! newest stream that mentions it decides: an upsert gives the row, a delete drops it.
//!
//! A delete of a key that the older streams do not have is an error: `diff` never
//! writes one, so it means the deltas are applied to the wrong base or in the wrong
//! order. (The converse mistake, an upsert onto the wrong base, cannot be seen here;
//! comparing the result's content hash with the catalog catches it.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Result, RowsError};
use crate::key::{check_order, DeltaOp, Key, Row};

/// The head record of one delta; `delta` indexes the chain's deltas, oldest first.
struct Head {
    key: Key,
    /// `None` for a delete.
    payload: Option<Vec<u8>>,
    delta: usize,
}

// `BinaryHeap` is a max-heap: the "greatest" head is the smallest key and, among
// equal keys, the newest delta, so it is the one that decides that key.
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .cmp(&self.key)
            .then_with(|| self.delta.cmp(&other.delta))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// Yields the rows of a base after applying every delta (oldest first), in
/// ascending key order. Checks each stream's order as it goes. Yields `Err` at most
/// once, then ends.
///
/// The base is kept out of the heap: most rows of a long chain come from the base
/// untouched, and each of those then costs one key comparison with the smallest
/// delta key instead of a trip through a heap of every delta.
pub struct ChainReader<B, D> {
    base: B,
    base_head: Option<Row>,
    deltas: Vec<D>,
    heap: BinaryHeap<Head>,
    started: bool,
    done: bool,
}

impl<B, D> ChainReader<B, D>
where
    B: Iterator<Item = Result<Row>>,
    D: Iterator<Item = Result<DeltaOp>>,
{
    /// `deltas` oldest first. Streams of different types can be mixed by boxing them
    /// (`Box<dyn Iterator<Item = Result<DeltaOp>>>`).
    pub fn new(base: B, deltas: Vec<D>) -> Self {
        let heap = BinaryHeap::with_capacity(deltas.len());
        ChainReader {
            base,
            base_head: None,
            deltas,
            heap,
            started: false,
            done: false,
        }
    }

    /// Takes the next base row, checking that it comes after `previous`, the one
    /// just taken out.
    fn refill_base(&mut self, previous: Option<&Key>) -> Result<()> {
        self.base_head = self.base.next().transpose()?;
        if let Some(head) = &self.base_head {
            check_order(previous.map(|k| &k[..]), &head.key)?;
        }
        Ok(())
    }

    /// Takes the next record of `delta` into the heap, checking likewise.
    fn refill(&mut self, delta: usize, previous: Option<&Key>) -> Result<()> {
        let head = self.deltas[delta].next().transpose()?.map(|op| match op {
            DeltaOp::Upsert(row) => Head {
                key: row.key,
                payload: Some(row.payload),
                delta,
            },
            DeltaOp::Delete(key) => Head {
                key,
                payload: None,
                delta,
            },
        });
        if let Some(head) = head {
            check_order(previous.map(|k| &k[..]), &head.key)?;
            self.heap.push(head);
        }
        Ok(())
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        if !self.started {
            self.started = true;
            self.refill_base(None)?;
            for delta in 0..self.deltas.len() {
                self.refill(delta, None)?;
            }
        }
        loop {
            let base_first = match (&self.base_head, self.heap.peek()) {
                (None, None) => return Ok(None),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(row), Some(head)) => row.key < head.key,
            };
            if base_first {
                if let Some(row) = self.base_head.take() {
                    self.refill_base(Some(&row.key))?;
                    return Ok(Some(row));
                }
            }
            let Some(newest) = self.heap.pop() else {
                return Ok(None);
            };
            self.refill(newest.delta, Some(&newest.key))?;
            // Older streams mentioning the same key: the first, newest to oldest, says
            // whether the row existed before `newest` was applied.
            let mut existed = None;
            while self.heap.peek().is_some_and(|h| h.key == newest.key) {
                if let Some(older) = self.heap.pop() {
                    existed.get_or_insert(older.payload.is_some());
                    self.refill(older.delta, Some(&older.key))?;
                }
            }
            if let Some(row) = self.base_head.take_if(|row| row.key == newest.key) {
                existed.get_or_insert(true);
                self.refill_base(Some(&row.key))?;
            }
            match newest.payload {
                Some(payload) => {
                    return Ok(Some(Row {
                        key: newest.key,
                        payload,
                    }))
                }
                None if existed == Some(true) => {}
                None => {
                    return Err(RowsError::DeleteOfAbsentRow {
                        delta: newest.delta,
                        key: newest.key,
                    })
                }
            }
        }
    }
}

impl<B, D> Iterator for ChainReader<B, D>
where
    B: Iterator<Item = Result<Row>>,
    D: Iterator<Item = Result<DeltaOp>>,
{
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_row() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
