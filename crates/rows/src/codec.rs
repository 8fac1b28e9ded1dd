//! The byte level shared by both stream formats (see `FORMAT.md`): varints, keys,
//! and a buffered input and output that keep a running blake3 of every byte so the
//! trailer can prove the stream arrived whole.
//!
//! We buffer ourselves rather than take a `BufRead` so that the checksum is computed
//! over large slices (blake3 is much faster fed 64 KiB at a time than a few bytes per
//! call) and so that a corrupt length prefix can never make us allocate more than the
//! bytes that actually arrived.

use std::io::{self, Read, Write};

use crate::error::{Result, RowsError, StreamKind};
use crate::key::KeyPart;

pub(crate) const ROWS_MAGIC: &[u8; 8] = b"OSTLROWS";
pub(crate) const DELTA_MAGIC: &[u8; 8] = b"OSTLDLTA";
pub(crate) const VERSION: u8 = 1;

/// Record tags. `END` closes every stream; the others depend on the stream kind.
pub(crate) const TAG_END: u8 = 0x00;
pub(crate) const TAG_ROW: u8 = 0x01;
pub(crate) const TAG_UPSERT: u8 = 0x01;
pub(crate) const TAG_DELETE: u8 = 0x02;

/// Key part tags.
const PART_INT: u8 = 0x01;
const PART_BYTES: u8 = 0x02;

pub(crate) const DEFAULT_BUFFER: usize = 64 * 1024;

fn magic(kind: StreamKind) -> &'static [u8; 8] {
    match kind {
        StreamKind::Rows => ROWS_MAGIC,
        StreamKind::Delta => DELTA_MAGIC,
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends the LEB128 encoding of `v`.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a stream, hashing every byte on its way out.
pub(crate) struct Output<W> {
    inner: W,
    buf: Vec<u8>,
    hasher: blake3::Hasher,
    flushed: u64,
}

impl<W: Write> Output<W> {
    /// Starts a stream of `kind`: writes its header.
    pub(crate) fn new(inner: W, kind: StreamKind) -> Self {
        let mut buf = Vec::with_capacity(DEFAULT_BUFFER);
        buf.extend_from_slice(magic(kind));
        buf.push(VERSION);
        Output {
            inner,
            buf,
            hasher: blake3::Hasher::new(),
            flushed: 0,
        }
    }

    /// Bytes of the stream so far, including buffered ones.
    pub(crate) fn position(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.hasher.update(&self.buf);
        self.inner.write_all(&self.buf)?;
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub(crate) fn put_u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub(crate) fn put_varint(&mut self, v: u64) {
        put_varint(&mut self.buf, v);
    }

    /// A length-prefixed byte string. Large ones bypass the buffer.
    pub(crate) fn put_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.put_varint(bytes.len() as u64);
        if bytes.len() >= DEFAULT_BUFFER {
            self.flush_buf()?;
            self.hasher.update(bytes);
            self.inner.write_all(bytes)?;
            self.flushed += bytes.len() as u64;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    pub(crate) fn put_key(&mut self, key: &[KeyPart]) -> io::Result<()> {
        self.put_varint(key.len() as u64);
        for part in key {
            match part {
                KeyPart::Int(i) => {
                    self.put_u8(PART_INT);
                    self.put_varint(zigzag(*i));
                }
                KeyPart::Bytes(b) => {
                    self.put_u8(PART_BYTES);
                    self.put_bytes(b)?;
                }
            }
        }
        Ok(())
    }

    /// Call after each record: hands full buffers to the writer.
    pub(crate) fn end_record(&mut self) -> io::Result<()> {
        if self.buf.len() >= DEFAULT_BUFFER {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes the trailer (end tag, record count, checksum), flushes, and returns
    /// the writer.
    pub(crate) fn finish(mut self, records: u64) -> io::Result<W> {
        self.put_u8(TAG_END);
        self.put_varint(records);
        self.flush_buf()?;
        let checksum = self.hasher.finalize();
        self.inner.write_all(checksum.as_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Reads a stream, hashing every byte it consumes.
pub(crate) struct Input<R> {
    inner: R,
    kind: StreamKind,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// `buf[..hashed]` has been fed to the hasher; `hashed <= pos`.
    hashed: usize,
    hasher: blake3::Hasher,
    /// Stream offset of `buf[0]`.
    base: u64,
}

impl<R: Read> Input<R> {
    /// Reads and checks the header of a `kind` stream.
    pub(crate) fn new(inner: R, kind: StreamKind, buffer: usize) -> Result<Self> {
        let mut input = Input {
            inner,
            kind,
            buf: vec![0; buffer.max(64)].into_boxed_slice(),
            pos: 0,
            end: 0,
            hashed: 0,
            hasher: blake3::Hasher::new(),
            base: 0,
        };
        let mut found = Vec::with_capacity(8);
        for _ in 0..8 {
            match input.next_byte()? {
                Some(b) => found.push(b),
                None => break,
            }
        }
        if found.len() < 8 && magic(kind).starts_with(&found) {
            return Err(input.truncated("the header"));
        }
        if found != magic(kind) {
            return Err(RowsError::BadMagic {
                expected: kind,
                found,
            });
        }
        let version = input.byte("the header")?;
        if version != VERSION {
            return Err(RowsError::UnsupportedVersion { kind, version });
        }
        Ok(input)
    }

    pub(crate) fn kind(&self) -> StreamKind {
        self.kind
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn truncated(&self, during: &'static str) -> RowsError {
        RowsError::Truncated {
            kind: self.kind,
            offset: self.offset(),
            during,
        }
    }

    pub(crate) fn corrupt_at(&self, offset: u64, detail: impl Into<String>) -> RowsError {
        RowsError::Corrupt {
            kind: self.kind,
            offset,
            detail: detail.into(),
        }
    }

    /// Refills an exhausted buffer; false at the end of the input.
    fn fill(&mut self) -> Result<bool> {
        debug_assert_eq!(self.pos, self.end);
        self.hasher.update(&self.buf[self.hashed..self.pos]);
        self.base += self.end as u64;
        self.pos = 0;
        self.end = 0;
        self.hashed = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.end = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RowsError::Io(e)),
            }
        }
    }

    fn next_byte(&mut self) -> Result<Option<u8>> {
        if self.pos == self.end && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    /// One byte; running out is truncation `during` the named part.
    pub(crate) fn byte(&mut self, during: &'static str) -> Result<u8> {
        self.next_byte()?.ok_or_else(|| self.truncated(during))
    }

    /// A LEB128 varint, rejecting overlong and overflowing encodings so every value
    /// has exactly one encoding.
    pub(crate) fn varint(&mut self, during: &'static str) -> Result<u64> {
        let start = self.offset();
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte(during)?;
            if shift == 63 && b > 1 {
                return Err(self.corrupt_at(start, format!("varint in {during} overflows")));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(self.corrupt_at(start, format!("overlong varint in {during}")));
                }
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A length-prefixed byte string into `out` (cleared first). Memory grows only
    /// with bytes that arrive, whatever the length prefix claims.
    pub(crate) fn bytes_into(&mut self, out: &mut Vec<u8>, during: &'static str) -> Result<()> {
        let len = self.varint(during)?;
        out.clear();
        out.reserve(len.min(DEFAULT_BUFFER as u64) as usize);
        let mut remaining = len;
        while remaining > 0 {
            if self.pos == self.end && !self.fill()? {
                return Err(self.truncated(during));
            }
            let take = remaining.min((self.end - self.pos) as u64) as usize;
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            remaining -= take as u64;
        }
        Ok(())
    }

    pub(crate) fn key(&mut self) -> Result<Vec<KeyPart>> {
        let parts = self.varint("a key")?;
        let mut key = Vec::with_capacity(parts.min(16) as usize);
        for _ in 0..parts {
            let at = self.offset();
            match self.byte("a key")? {
                PART_INT => key.push(KeyPart::Int(unzigzag(self.varint("a key")?))),
                PART_BYTES => {
                    let mut bytes = Vec::new();
                    self.bytes_into(&mut bytes, "a key")?;
                    key.push(KeyPart::Bytes(bytes));
                }
                other => {
                    return Err(self.corrupt_at(at, format!("unknown key part tag {other:#04x}")))
                }
            }
        }
        Ok(key)
    }

    pub(crate) fn payload(&mut self) -> Result<Vec<u8>> {
        let mut payload = Vec::new();
        self.bytes_into(&mut payload, "a payload")?;
        Ok(payload)
    }

    /// Reads the rest of the trailer after its end tag and checks it: the record
    /// count, the checksum of everything before the checksum, and that nothing
    /// follows.
    pub(crate) fn finish(&mut self, records: u64) -> Result<()> {
        let at = self.offset();
        let claimed = self.varint("the trailer")?;
        if claimed != records {
            return Err(self.corrupt_at(
                at,
                format!("trailer says {claimed} records, the stream has {records}"),
            ));
        }
        self.hasher.update(&self.buf[self.hashed..self.pos]);
        self.hashed = self.pos;
        let computed = self.hasher.finalize();
        let at = self.offset();
        let mut stored = [0u8; 32];
        for b in stored.iter_mut() {
            *b = self.byte("the trailer checksum")?;
        }
        if computed != blake3::Hash::from(stored) {
            return Err(self.corrupt_at(
                at,
                format!(
                    "checksum mismatch: trailer says {}, content hashes to {}",
                    blake3::Hash::from(stored).to_hex(),
                    computed.to_hex()
                ),
            ));
        }
        let at = self.offset();
        if self.next_byte()?.is_some() {
            return Err(self.corrupt_at(at, "unexpected bytes after the end of the stream"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for i in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(i)), i);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    fn read_varint(bytes: &[u8]) -> Result<u64> {
        let mut stream = ROWS_MAGIC.to_vec();
        stream.push(VERSION);
        stream.extend_from_slice(bytes);
        Input::new(&stream[..], StreamKind::Rows, 64)?.varint("a test")
    }

    #[test]
    fn varints_round_trip_and_reject_non_canonical() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(read_varint(&out).unwrap(), v);
        }
        assert!(matches!(
            read_varint(&[0x80, 0x00]),
            Err(RowsError::Corrupt { .. })
        ));
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert!(matches!(
            read_varint(&too_big),
            Err(RowsError::Corrupt { .. })
        ));
        assert!(matches!(
            read_varint(&[0x80]),
            Err(RowsError::Truncated { .. })
        ));
    }
}
