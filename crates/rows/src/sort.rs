//! Getting rows into key order when the source cannot be trusted to give it.
//!
//! ostler asks each database for `ORDER BY` the primary key, but the database sorts
//! by its collation and we sort by bytes (see `key.rs`), so the two can disagree on
//! text keys. [`SortedCheck`] finds out while streaming, at the cost of one key copy
//! per row; when it reports [`RowsError::OutOfOrder`] ostler throws away the partial
//! output, reads the table again unordered and puts it through [`sort_rows`].
//!
//! [`sort_rows`] is an external merge sort: rows are gathered up to a memory limit,
//! sorted, and spilled to anonymous temporary files in the rows stream format (so
//! spills are checksummed like backups); the runs are then merged, at most
//! [`FAN_IN`] at a time, level by level, so a tiny limit on a huge table never needs
//! thousands of open files. Memory is the limit plus, while merging, one read buffer
//! (at most 64 KiB) and one row per merged run.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Result, RowsError};
use crate::key::{KeyPart, LastKey, Row};
use crate::stream::{RowReader, RowWriter};

/// How many runs are merged at once.
pub const FAN_IN: usize = 64;

/// Passes rows through unchanged, and fails with [`RowsError::OutOfOrder`] (or
/// [`RowsError::DuplicateKey`]) at the first row whose key is not above the one
/// before it. Yields `Err` at most once, then ends.
pub struct SortedCheck<I> {
    rows: I,
    last: LastKey,
    done: bool,
}

impl<I: Iterator<Item = Result<Row>>> SortedCheck<I> {
    pub fn new(rows: impl IntoIterator<IntoIter = I>) -> Self {
        SortedCheck {
            rows: rows.into_iter(),
            last: LastKey::default(),
            done: false,
        }
    }
}

impl<I: Iterator<Item = Result<Row>>> Iterator for SortedCheck<I> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.rows.next();
        let checked = match item {
            Some(Ok(row)) => self.last.advance(&row.key).map(|()| row),
            Some(Err(e)) => Err(e),
            None => {
                self.done = true;
                return None;
            }
        };
        self.done = checked.is_err();
        Some(checked)
    }
}

/// Sorts rows by key within roughly `mem_limit_bytes` of memory, spilling to
/// temporary files in `tmp_dir`. Keys must be unique: a repeated key is a
/// [`RowsError::DuplicateKey`], from this call or from the returned iterator
/// (when the copies meet only in the final merge). A table without a primary key
/// gets unique keys from its duplicate counter (see `key.rs`).
///
/// The limit counts rows (keys, payloads and their bookkeeping), not the merge
/// buffers; a limit of 0 still works, one row per run, but slowly.
pub fn sort_rows<I>(rows: I, tmp_dir: &Path, mem_limit_bytes: usize) -> Result<SortedRows>
where
    I: IntoIterator<Item = Row>,
{
    try_sort_rows(rows.into_iter().map(Ok), tmp_dir, mem_limit_bytes)
}

/// [`sort_rows`] for a source that can fail; its first error is returned.
pub fn try_sort_rows<I>(rows: I, tmp_dir: &Path, mem_limit_bytes: usize) -> Result<SortedRows>
where
    I: IntoIterator<Item = Result<Row>>,
{
    let spill_dir = SpillDir {
        dir: tmp_dir.to_path_buf(),
        buffer: (mem_limit_bytes / FAN_IN).clamp(4096, 64 * 1024),
        files: 0,
    };
    let mut sorter = Sorter {
        spill: spill_dir,
        batch: Vec::new(),
        used: 0,
        runs: Vec::new(),
    };
    for row in rows {
        let row = row?;
        sorter.used += row_cost(&row);
        sorter.batch.push(row);
        if sorter.used > mem_limit_bytes {
            sorter.spill_batch()?;
        }
    }
    sorter.finish()
}

/// Approximate heap and inline size of a row while it waits to be sorted.
fn row_cost(row: &Row) -> usize {
    let parts: usize = row
        .key
        .iter()
        .map(|p| match p {
            KeyPart::Int(_) => 0,
            KeyPart::Bytes(b) => b.len(),
        })
        .sum();
    std::mem::size_of::<Row>()
        + row.key.len() * std::mem::size_of::<KeyPart>()
        + parts
        + row.payload.len()
}

fn sort_batch(batch: &mut [Row]) {
    batch.sort_unstable_by(|a, b| a.key.cmp(&b.key));
}

struct SpillDir {
    dir: PathBuf,
    /// Read buffer per run while merging.
    buffer: usize,
    files: usize,
}

impl SpillDir {
    /// Writes already sorted rows to a new run file, ready to be read back.
    fn write(&mut self, rows: impl Iterator<Item = Result<Row>>) -> Result<File> {
        let with_dir = |e: RowsError| match e {
            RowsError::Io(source) => RowsError::Spill {
                dir: self.dir.clone(),
                source,
            },
            other => other,
        };
        let file = tempfile::tempfile_in(&self.dir)
            .map_err(RowsError::Io)
            .map_err(with_dir)?;
        let mut writer = RowWriter::new(file);
        for row in rows {
            writer.write_row(&row?).map_err(with_dir)?;
        }
        let mut file = writer.finish().map_err(with_dir)?;
        file.seek(SeekFrom::Start(0))
            .map_err(RowsError::Io)
            .map_err(with_dir)?;
        self.files += 1;
        Ok(file)
    }

    fn merge(&self, files: Vec<File>) -> Result<Merger> {
        let mut runs = Vec::with_capacity(files.len());
        for file in files {
            runs.push(RowReader::with_buffer(file, self.buffer)?);
        }
        Merger::new(runs)
    }
}

/// A spilled run; `level` counts the merges behind it (0: written from memory).
struct Run {
    level: u32,
    file: File,
}

struct Sorter {
    spill: SpillDir,
    batch: Vec<Row>,
    used: usize,
    /// Levels never increase along the list: older runs are bigger.
    runs: Vec<Run>,
}

impl Sorter {
    fn spill_batch(&mut self) -> Result<()> {
        sort_batch(&mut self.batch);
        let file = self.spill.write(self.batch.drain(..).map(Ok))?;
        self.runs.push(Run { level: 0, file });
        self.used = 0;
        self.compact()
    }

    /// Spill files are anonymous, so each run holds an open file until it is merged.
    /// Merging every [`FAN_IN`] runs of one level into one run of the next level keeps
    /// that under `FAN_IN` per level (a few hundred files for any table), while each
    /// row is still rewritten only once per level.
    fn compact(&mut self) -> Result<()> {
        while self.runs.len() >= FAN_IN {
            let tail = self.runs.len() - FAN_IN;
            let level = self.runs[tail].level;
            if self.runs[tail..].iter().any(|r| r.level != level) {
                break;
            }
            self.merge_tail(tail, level + 1)?;
        }
        Ok(())
    }

    /// Replaces the runs from `from` on by one run holding all their rows.
    fn merge_tail(&mut self, from: usize, level: u32) -> Result<()> {
        let group: Vec<File> = self.runs.drain(from..).map(|r| r.file).collect();
        let merged = self.spill.merge(group)?;
        let file = self.spill.write(merged)?;
        self.runs.push(Run { level, file });
        Ok(())
    }

    fn finish(mut self) -> Result<SortedRows> {
        if self.runs.is_empty() {
            sort_batch(&mut self.batch);
            if let Some(pair) = self.batch.windows(2).find(|w| w[0].key == w[1].key) {
                return Err(RowsError::DuplicateKey {
                    key: pair[0].key.clone(),
                });
            }
            return Ok(SortedRows {
                inner: Inner::Memory(std::mem::take(&mut self.batch).into_iter()),
                spill_files: 0,
                done: false,
            });
        }
        if !self.batch.is_empty() {
            self.spill_batch()?;
        }
        // Merge the smallest runs until few enough remain for one last merge.
        while self.runs.len() > FAN_IN {
            let tail = self.runs.len() - FAN_IN;
            let level = self.runs[tail].level + 1;
            self.merge_tail(tail, level)?;
        }
        let files = self.runs.drain(..).map(|r| r.file).collect();
        let merger = self.spill.merge(files)?;
        Ok(SortedRows {
            inner: Inner::Merge(merger),
            spill_files: self.spill.files,
            done: false,
        })
    }
}

/// The head row of one run. Max-heap order: the smallest key is the greatest.
struct RunHead {
    row: Row,
    run: usize,
}

impl Ord for RunHead {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .row
            .key
            .cmp(&self.row.key)
            .then_with(|| other.run.cmp(&self.run))
    }
}

impl PartialOrd for RunHead {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RunHead {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for RunHead {}

/// k-way merge of sorted runs, failing on a key found in two runs (a key twice in
/// one run was already refused when the run was written).
struct Merger {
    runs: Vec<RowReader<File>>,
    heap: BinaryHeap<RunHead>,
}

impl Merger {
    fn new(mut runs: Vec<RowReader<File>>) -> Result<Self> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (run, reader) in runs.iter_mut().enumerate() {
            if let Some(row) = reader.next().transpose()? {
                heap.push(RunHead { row, run });
            }
        }
        Ok(Merger { runs, heap })
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        let Some(top) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(row) = self.runs[top.run].next().transpose()? {
            self.heap.push(RunHead { row, run: top.run });
        }
        // Every run's rows below `top` are gone, so a duplicate in another run is
        // that run's head now.
        if self.heap.peek().is_some_and(|h| h.row.key == top.row.key) {
            return Err(RowsError::DuplicateKey { key: top.row.key });
        }
        Ok(Some(top.row))
    }
}

impl Iterator for Merger {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

enum Inner {
    Memory(std::vec::IntoIter<Row>),
    Merge(Merger),
}

/// The rows given to [`sort_rows`], in ascending key order. Yields `Err` at most
/// once, then ends. Its temporary files are anonymous and vanish when it is
/// dropped (or the process dies).
pub struct SortedRows {
    inner: Inner,
    spill_files: usize,
    done: bool,
}

impl SortedRows {
    /// How many temporary run files the sort wrote (0 if it fit in memory).
    pub fn spill_files(&self) -> usize {
        self.spill_files
    }
}

impl Iterator for SortedRows {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Memory(rows) => rows.next().map(Ok),
            Inner::Merge(merger) => merger.next(),
        };
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}
