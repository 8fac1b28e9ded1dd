//! Writers and readers of the two stream formats (`FORMAT.md`): a table's rows, and a
//! delta against the previous backup of that table.
//!
//! In short: an 8-byte magic (`OSTLROWS` or `OSTLDLTA`) and a version byte; records
//! each led by a tag (rows: `01` row; delta: `01` upsert, `02` delete), a key (varint
//! part count, each part `01` + zigzag varint or `02` + varint length + bytes) and,
//! except for deletes, a varint-length payload; then `00`, a varint record count and
//! the blake3 of every byte before it.
//!
//! Both sides check that keys are strictly ascending. The writer checks so that a
//! broken source is caught while the database is still there to be asked again; the
//! reader checks because every consumer (diff, the chain walk) relies on it and a
//! stream may be damaged or written by something else. Remembering the previous key
//! is the only state, so memory does not grow with the table.
//!
//! A stream is complete only once its writer's `finish` has written the trailer; a
//! writer dropped early (a crash, an error) leaves a stream that every reader
//! reports as truncated rather than as a shorter table. After an I/O error a writer
//! is in an unknown state and should be dropped; after an order error nothing was
//! written and it can go on.

use std::io::{Read, Write};

use crate::codec::{Input, Output, DEFAULT_BUFFER, TAG_DELETE, TAG_END, TAG_ROW, TAG_UPSERT};
use crate::error::{Result, RowsError, StreamKind};
use crate::key::{DeltaOp, KeyPart, LastKey, Row};

/// Writes a rows stream. Rows must come in strictly ascending key order.
pub struct RowWriter<W: Write> {
    out: Output<W>,
    last: LastKey,
    rows: u64,
}

impl<W: Write> RowWriter<W> {
    /// Starts a rows stream on `inner`. The writer buffers; `inner` need not.
    pub fn new(inner: W) -> Self {
        RowWriter {
            out: Output::new(inner, StreamKind::Rows),
            last: LastKey::default(),
            rows: 0,
        }
    }

    pub fn write_row(&mut self, row: &Row) -> Result<()> {
        self.write(&row.key, &row.payload)
    }

    /// Appends one row. A key not above the previous one is refused with
    /// [`RowsError::OutOfOrder`] or [`RowsError::DuplicateKey`] and nothing is
    /// written, so the caller may still decide what to do.
    pub fn write(&mut self, key: &[KeyPart], payload: &[u8]) -> Result<()> {
        self.last.advance(key)?;
        self.out.put_u8(TAG_ROW);
        self.out.put_key(key)?;
        self.out.put_bytes(payload)?;
        self.out.end_record()?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Size of the stream so far, trailer excluded.
    pub fn bytes_written(&self) -> u64 {
        self.out.position()
    }

    /// Writes the trailer, flushes and gives back the writer. Without this call the
    /// stream reads as truncated.
    pub fn finish(self) -> Result<W> {
        Ok(self.out.finish(self.rows)?)
    }
}

/// Writes a delta stream. Operations must come in strictly ascending key order,
/// upserts and deletes mixed.
pub struct DeltaWriter<W: Write> {
    out: Output<W>,
    last: LastKey,
    upserts: u64,
    deletes: u64,
}

impl<W: Write> DeltaWriter<W> {
    pub fn new(inner: W) -> Self {
        DeltaWriter {
            out: Output::new(inner, StreamKind::Delta),
            last: LastKey::default(),
            upserts: 0,
            deletes: 0,
        }
    }

    /// Records that the row with `key` was added or now has `payload`.
    pub fn upsert(&mut self, key: &[KeyPart], payload: &[u8]) -> Result<()> {
        self.last.advance(key)?;
        self.out.put_u8(TAG_UPSERT);
        self.out.put_key(key)?;
        self.out.put_bytes(payload)?;
        self.out.end_record()?;
        self.upserts += 1;
        Ok(())
    }

    /// Records that the row with `key` was removed.
    pub fn delete(&mut self, key: &[KeyPart]) -> Result<()> {
        self.last.advance(key)?;
        self.out.put_u8(TAG_DELETE);
        self.out.put_key(key)?;
        self.out.end_record()?;
        self.deletes += 1;
        Ok(())
    }

    pub fn write_op(&mut self, op: &DeltaOp) -> Result<()> {
        match op {
            DeltaOp::Upsert(row) => self.upsert(&row.key, &row.payload),
            DeltaOp::Delete(key) => self.delete(key),
        }
    }

    pub fn upserts_written(&self) -> u64 {
        self.upserts
    }

    pub fn deletes_written(&self) -> u64 {
        self.deletes
    }

    /// Size of the stream so far, trailer excluded.
    pub fn bytes_written(&self) -> u64 {
        self.out.position()
    }

    /// Writes the trailer, flushes and gives back the writer. Without this call the
    /// stream reads as truncated.
    pub fn finish(self) -> Result<W> {
        Ok(self.out.finish(self.upserts + self.deletes)?)
    }
}

/// What both readers share: the input, the order check, and fusing after the end
/// or an error.
struct Records<R> {
    input: Input<R>,
    last: LastKey,
    records: u64,
    done: bool,
}

impl<R: Read> Records<R> {
    fn new(inner: R, kind: StreamKind, buffer: usize) -> Result<Self> {
        Ok(Records {
            input: Input::new(inner, kind, buffer)?,
            last: LastKey::default(),
            records: 0,
            done: false,
        })
    }

    /// Reads the next record's tag; `None` once the trailer has been read and
    /// checked.
    fn tag(&mut self) -> Result<Option<(u8, u64)>> {
        let at = self.input.offset();
        let tag = self.input.byte("the next record or the trailer")?;
        if tag == TAG_END {
            self.input.finish(self.records)?;
            return Ok(None);
        }
        Ok(Some((tag, at)))
    }

    fn accept(&mut self, key: &[KeyPart]) -> Result<()> {
        self.last.advance(key)?;
        self.records += 1;
        Ok(())
    }

    fn unknown_tag(&self, tag: u8, at: u64) -> RowsError {
        self.input.corrupt_at(
            at,
            format!("unknown {} record tag {tag:#04x}", self.input.kind()),
        )
    }

    /// Turns a read into an iterator item, fusing after the end or an error.
    fn item<T>(&mut self, read: Result<Option<T>>) -> Option<Result<T>> {
        match read {
            Ok(Some(item)) => Some(Ok(item)),
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

/// Reads a rows stream, checking order, completeness and the checksum. Yields
/// `Err` at most once, then ends.
pub struct RowReader<R: Read> {
    records: Records<R>,
}

impl<R: Read> RowReader<R> {
    /// Reads the header. The reader buffers; `inner` need not.
    pub fn new(inner: R) -> Result<Self> {
        Self::with_buffer(inner, DEFAULT_BUFFER)
    }

    pub(crate) fn with_buffer(inner: R, buffer: usize) -> Result<Self> {
        Ok(RowReader {
            records: Records::new(inner, StreamKind::Rows, buffer)?,
        })
    }

    pub fn rows_read(&self) -> u64 {
        self.records.records
    }

    fn read_row(&mut self) -> Result<Option<Row>> {
        let Some((tag, at)) = self.records.tag()? else {
            return Ok(None);
        };
        if tag != TAG_ROW {
            return Err(self.records.unknown_tag(tag, at));
        }
        let key = self.records.input.key()?;
        let payload = self.records.input.payload()?;
        self.records.accept(&key)?;
        Ok(Some(Row { key, payload }))
    }
}

impl<R: Read> Iterator for RowReader<R> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.records.done {
            return None;
        }
        let read = self.read_row();
        self.records.item(read)
    }
}

/// Reads a delta stream, checking order, completeness and the checksum. Yields
/// `Err` at most once, then ends.
pub struct DeltaReader<R: Read> {
    records: Records<R>,
}

impl<R: Read> DeltaReader<R> {
    /// Reads the header. The reader buffers; `inner` need not.
    pub fn new(inner: R) -> Result<Self> {
        Ok(DeltaReader {
            records: Records::new(inner, StreamKind::Delta, DEFAULT_BUFFER)?,
        })
    }

    pub fn ops_read(&self) -> u64 {
        self.records.records
    }

    fn read_op(&mut self) -> Result<Option<DeltaOp>> {
        let Some((tag, at)) = self.records.tag()? else {
            return Ok(None);
        };
        let op = match tag {
            TAG_UPSERT => {
                let key = self.records.input.key()?;
                let payload = self.records.input.payload()?;
                DeltaOp::Upsert(Row { key, payload })
            }
            TAG_DELETE => DeltaOp::Delete(self.records.input.key()?),
            _ => return Err(self.records.unknown_tag(tag, at)),
        };
        self.records.accept(op.key())?;
        Ok(Some(op))
    }
}

impl<R: Read> Iterator for DeltaReader<R> {
    type Item = Result<DeltaOp>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.records.done {
            return None;
        }
        let read = self.read_op();
        self.records.item(read)
    }
}
