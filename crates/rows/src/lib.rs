//! Row-level backups of a table: its rows sorted by primary key, and each later backup
//! as the delta against the one before.
//!
//! Why: an hourly backup of a database where 1 % of the rows change, scattered, must
//! cost about what changed. Chunk-level deduplication cannot do that, because scattered
//! changes touch every chunk. Rows sorted by key can: one merge walk of the previous
//! and the current table ([`diff`]) writes only the rows added or changed (upserts)
//! and the keys removed (deletes). A backup is then a chain base → delta → delta …,
//! and [`ChainReader`] walks a chain back to the full table, again as one streaming
//! merge, for restore, verify and prune.
//!
//! This crate knows no database. A caller turns each row into a [`Row`]: a [`Key`]
//! (the primary key as [`KeyPart`]s, see `key.rs` for tables without one) and an opaque
//! payload in the engine's own text (a COPY line, a VALUES tuple...), so a restore can
//! hand the rows straight back to the engine's tools.
//!
//! Everything streams: memory does not grow with the table, except in [`sort_rows`],
//! which is bounded by the limit it is given. Streams on disk ([`RowWriter`],
//! [`DeltaWriter`], format in `FORMAT.md`) carry a trailer with a record count and a
//! blake3 checksum, and their readers check key order, so truncation, corruption and
//! a source that was not sorted are errors, never a silently different table.
//!
//! Each table's content hash ([`content_hash`], also in [`DiffStats`]) depends only on
//! its rows, so the catalog can compare tables across backups without reading them,
//! and verify can check that a chain gives back exactly what was captured.
//!
//! ```
//! use ostler_rows::{content_hash, diff, ChainReader, DeltaReader, DeltaWriter, KeyPart, Row,
//!     RowReader, RowWriter};
//!
//! let monday = vec![Row::new(vec![KeyPart::Int(1)], "alice"), Row::new(vec![KeyPart::Int(2)], "bob")];
//! let tuesday = vec![Row::new(vec![KeyPart::Int(1)], "alice"), Row::new(vec![KeyPart::Int(3)], "carol")];
//!
//! let mut base = RowWriter::new(Vec::new());
//! for row in &monday {
//!     base.write_row(row)?;
//! }
//! let base = base.finish()?;
//!
//! let mut delta = DeltaWriter::new(Vec::new());
//! let stats = diff(RowReader::new(&base[..])?, tuesday.iter().cloned().map(Ok), &mut delta)?;
//! let delta = delta.finish()?;
//! assert_eq!((stats.added, stats.changed, stats.removed, stats.unchanged), (1, 0, 1, 1));
//!
//! let restored = ChainReader::new(RowReader::new(&base[..])?, vec![DeltaReader::new(&delta[..])?]);
//! assert_eq!(content_hash(restored)?, (2, stats.content_hash));
//! # Ok::<(), ostler_rows::RowsError>(())
//! ```

mod chain;
mod codec;
mod diff;
mod error;
mod hash;
mod key;
mod sort;
mod stream;

pub use chain::ChainReader;
pub use diff::{diff, DiffStats};
pub use error::{Result, RowsError, StreamKind};
pub use hash::{content_hash, ContentHasher};
pub use key::{display_key, DeltaOp, Key, KeyPart, Row};
pub use sort::{sort_rows, try_sort_rows, SortedCheck, SortedRows, FAN_IN};
pub use stream::{DeltaReader, DeltaWriter, RowReader, RowWriter};
