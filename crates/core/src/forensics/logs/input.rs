//! Access log files, read as one stream in time order.
//!
//! logrotate leaves `access.log`, `access.log.1`, `access.log.2.gz`...: the newest has
//! the smallest number, some are compressed, and people pass them in whatever order
//! their shell's glob gives. So compression is told by the magic bytes, not the name,
//! and files are read in the order of their first timestamp, not as given.
//!
//! Within a file lines are nearly in time order, not quite: Apache writes a line when
//! the response ends but stamps it with the time the request arrived, so a slow
//! request is logged after quicker, later ones (and may land in the next rotated
//! file). Comparing each request with the previous one of the same URL needs true
//! order, so entries pass through a reorder window ([`WINDOW_SECONDS`], at most
//! [`WINDOW_ENTRIES`] entries held); an entry later than that is still used, where it
//! arrived, and counted as out of order.
//!
//! Bad lines are counted and the first few kept with file and line, never fatal: an
//! investigation wants every good line it can get. Unreadable files are errors.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::parse::{Entry, Parser};
use super::Format;
use crate::error::{Error, Result};
use crate::report::Interrupt;

/// How far back in time an entry may arrive and still be put in its place.
pub const WINDOW_SECONDS: i64 = 120;
/// The most entries held back for reordering.
pub const WINDOW_ENTRIES: usize = 1 << 16;
/// How many malformed lines are kept as examples.
pub const MALFORMED_EXAMPLES: usize = 5;
/// How many lines are tried for a file's first timestamp.
const PROBE_LINES: usize = 1000;

/// What was read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// In the order they were read (time order).
    pub files: Vec<FileSummary>,
    /// Non-blank lines.
    pub lines: u64,
    /// Lines parsed as requests.
    pub requests: u64,
    pub malformed: u64,
    /// The first few malformed lines.
    pub malformed_examples: Vec<Malformed>,
    /// Requests that arrived too late for the reorder window.
    pub out_of_order: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FileSummary {
    pub path: PathBuf,
    /// `gzip`, `zstd` or `plain`.
    pub compression: &'static str,
    pub lines: u64,
    pub malformed: u64,
    /// The earliest and latest request times in the file.
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Malformed {
    pub file: PathBuf,
    pub line: u64,
    pub reason: String,
    /// The start of the line.
    pub text: String,
}

/// Where a request was logged: index into [`Summary::files`] and line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub file: u32,
    pub line: u64,
}

/// What a reader of the stream does with each entry: `keep` takes what it needs from
/// the borrowed line (or nothing); `take` receives the kept items in time order.
pub trait Consumer {
    type Item;
    fn keep(&mut self, entry: &Entry<'_>, at: Place) -> Option<Self::Item>;
    fn take(&mut self, time: Timestamp, item: Self::Item);
}

/// Opens a log, plain or compressed (told by magic bytes). Returns the reader and
/// the compression's name.
pub fn open(path: &Path) -> Result<(Box<dyn BufRead>, &'static str)> {
    let context = || format!("cannot open access log {}", path.display());
    let file = File::open(path).map_err(|e| Error::io(context(), e))?;
    let mut reader = BufReader::with_capacity(1 << 18, file);
    let head = reader.fill_buf().map_err(|e| Error::io(context(), e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(reader);
        return Ok((Box::new(BufReader::with_capacity(1 << 18, gz)), "gzip"));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let zst = zstd::Decoder::with_buffer(reader).map_err(|e| Error::io(context(), e))?;
        return Ok((Box::new(BufReader::with_capacity(1 << 18, zst)), "zstd"));
    }
    let other = if head.starts_with(b"BZh") {
        Some("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else {
        None
    };
    if let Some(kind) = other {
        return Err(
            Error::user(format!("{} is compressed with {kind}", path.display())).with_hint(
                "decompress it first, or pipe it: ostler reads plain, gzip and zstd logs",
            ),
        );
    }
    Ok((Box::new(reader), "plain"))
}

/// Reads `paths` as one time-ordered stream through `consumer`.
pub fn read<C: Consumer>(
    paths: &[PathBuf],
    format: Format,
    interrupt: &Interrupt,
    consumer: &mut C,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut parser = Parser::new(format);
    let mut window = Reorder::new();
    let mut buf = Vec::with_capacity(4096);
    for path in in_time_order(paths, format)? {
        let (mut reader, compression) = open(&path)?;
        let file_index = summary.files.len() as u32;
        let mut file = FileSummary {
            path,
            compression,
            lines: 0,
            malformed: 0,
            first: None,
            last: None,
        };
        let mut number = 0u64;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
                Error::io(
                    format!("reading {} at line {}", file.path.display(), number + 1),
                    e,
                )
            })?;
            if n == 0 {
                break;
            }
            number += 1;
            if number & 0xffff == 0 {
                interrupt.check()?;
            }
            let line = trim_end(&buf);
            if line.is_empty() {
                continue;
            }
            file.lines += 1;
            match parser.parse(line) {
                Ok(entry) => {
                    file.first = Some(file.first.map_or(entry.time, |t| t.min(entry.time)));
                    file.last = Some(file.last.map_or(entry.time, |t| t.max(entry.time)));
                    let at = Place {
                        file: file_index,
                        line: number,
                    };
                    if let Some(item) = consumer.keep(&entry, at) {
                        window.push(entry.time, item, consumer);
                    }
                }
                Err(reason) => {
                    file.malformed += 1;
                    if summary.malformed_examples.len() < MALFORMED_EXAMPLES {
                        let text = &line[..line.len().min(160)];
                        summary.malformed_examples.push(Malformed {
                            file: file.path.clone(),
                            line: number,
                            reason: reason.to_string(),
                            text: String::from_utf8_lossy(text).into_owned(),
                        });
                    }
                }
            }
        }
        summary.lines += file.lines;
        summary.malformed += file.malformed;
        summary.requests += file.lines - file.malformed;
        summary.files.push(file);
    }
    window.finish(consumer);
    summary.out_of_order = window.late;
    Ok(summary)
}

/// The paths sorted by their first parseable timestamp (files with none go last; ties
/// keep the order given).
fn in_time_order(paths: &[PathBuf], format: Format) -> Result<Vec<PathBuf>> {
    let mut parser = Parser::new(format);
    let mut keyed = Vec::with_capacity(paths.len());
    for path in paths {
        let (mut reader, _) = open(path)?;
        let mut first = None;
        let mut buf = Vec::new();
        for number in 1..=PROBE_LINES {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
                Error::io(format!("reading {} at line {number}", path.display()), e)
            })?;
            if n == 0 {
                break;
            }
            if let Ok(entry) = parser.parse(trim_end(&buf)) {
                first = Some(entry.time);
                break;
            }
        }
        keyed.push((first.is_none(), first, path.clone()));
    }
    keyed.sort_by_key(|(none, first, _)| (*none, *first));
    Ok(keyed.into_iter().map(|(_, _, p)| p).collect())
}

fn trim_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

/// The reorder window: a min-heap on (time, arrival).
struct Reorder<T> {
    heap: BinaryHeap<Held<T>>,
    arrivals: u64,
    newest: i64,
    emitted: Option<Timestamp>,
    late: u64,
}

struct Held<T> {
    time: Timestamp,
    arrival: u64,
    item: T,
}

impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.time, other.arrival).cmp(&(self.time, self.arrival))
    }
}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Held<T> {}

impl<T> Reorder<T> {
    fn new() -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            arrivals: 0,
            newest: i64::MIN,
            emitted: None,
            late: 0,
        }
    }

    fn push<C: Consumer<Item = T>>(&mut self, time: Timestamp, item: T, consumer: &mut C) {
        if self.emitted.is_some_and(|e| time < e) {
            self.late += 1;
        }
        self.arrivals += 1;
        self.heap.push(Held {
            time,
            arrival: self.arrivals,
            item,
        });
        self.newest = self.newest.max(time.as_second());
        while let Some(top) = self.heap.peek() {
            let old = self.newest - top.time.as_second() > WINDOW_SECONDS;
            if !old && self.heap.len() <= WINDOW_ENTRIES {
                break;
            }
            self.pop(consumer);
        }
    }

    fn pop<C: Consumer<Item = T>>(&mut self, consumer: &mut C) {
        if let Some(held) = self.heap.pop() {
            self.emitted = Some(self.emitted.map_or(held.time, |e| e.max(held.time)));
            consumer.take(held.time, held.item);
        }
    }

    fn finish<C: Consumer<Item = T>>(&mut self, consumer: &mut C) {
        while !self.heap.is_empty() {
            self.pop(consumer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(i64, u64)>);
    impl Consumer for Collect {
        type Item = u64;
        fn keep(&mut self, _: &Entry<'_>, at: Place) -> Option<u64> {
            Some(at.line)
        }
        fn take(&mut self, time: Timestamp, line: u64) {
            self.0.push((time.as_second(), line));
        }
    }

    #[test]
    fn slight_disorder_is_put_right_and_large_disorder_counted() {
        let mut window = Reorder::new();
        let mut c = Collect(Vec::new());
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        for (s, n) in [(100, 1), (105, 2), (103, 3), (300, 4), (110, 5), (301, 6)] {
            window.push(t(s), n, &mut c);
        }
        window.finish(&mut c);
        assert_eq!(
            c.0,
            [(100, 1), (103, 3), (105, 2), (110, 5), (300, 4), (301, 6)]
        );
        assert_eq!(window.late, 0);

        // 110 arrives after 300 pushed 105 out: still used, counted as late.
        let mut window = Reorder::new();
        let mut c = Collect(Vec::new());
        for (s, n) in [(100, 1), (105, 2), (300, 3), (104, 4)] {
            window.push(t(s), n, &mut c);
        }
        window.finish(&mut c);
        assert_eq!(c.0.iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 4, 3]);
        assert_eq!(window.late, 1);
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("access.log.1");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"line one\n").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let plain = dir.path().join("access.log.2.gz");
        std::fs::write(&plain, "line two\n").unwrap();
        let xz = dir.path().join("access.log.3");
        std::fs::write(&xz, b"\xfd7zXZ\0rest").unwrap();

        let (mut r, kind) = open(&gz).unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert_eq!((kind, text.as_str()), ("gzip", "line one\n"));
        let (mut r, kind) = open(&plain).unwrap();
        text.clear();
        r.read_to_string(&mut text).unwrap();
        assert_eq!((kind, text.as_str()), ("plain", "line two\n"));
        let err = open(&xz).err().unwrap();
        assert!(err.to_string().contains("xz"), "{err}");
        let err = open(&dir.path().join("missing")).err().unwrap();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
