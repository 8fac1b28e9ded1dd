//! The data model: primary keys, rows and delta operations.
//!
//! A key is a list of parts compared part by part, so a composite primary key
//! `(tenant_id, email)` is `[Int(tenant_id), Bytes(email)]`. The order is ours, not
//! the database's: integers numerically, bytes lexicographically (like `memcmp`),
//! every `Int` before every `Bytes`, and a key before any longer key it is a prefix of.
//! Collations differ between engines and versions, so ostler never trusts a database
//! to have produced this order; readers and [`crate::SortedCheck`] verify it.
//!
//! Tables without a primary key: the caller uses the whole payload as a `Bytes` part
//! followed by an `Int` duplicate counter (0 for the first copy of a row, 1 for the
//! second identical copy, ...). Such keys are as large as the rows; nothing here
//! limits key size, only memory use per row grows.

use std::cmp::Ordering;
use std::fmt;

use crate::error::{Result, RowsError};

/// One column of a primary key.
///
/// The derived order is the one every stream uses, so the declaration order of the
/// variants matters: `Int` sorts before `Bytes`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPart {
    /// An integer column, compared numerically.
    Int(i64),
    /// Any other column, as bytes compared lexicographically. Text keys are their
    /// UTF-8 bytes; other types use an encoding whose byte order is the wanted order.
    Bytes(Vec<u8>),
}

// Written by hand so that `clone_from` reuses the byte buffer: readers and writers
// keep a copy of the previous key for every row, and this avoids an allocation per
// row for text keys.
impl Clone for KeyPart {
    fn clone(&self) -> Self {
        match self {
            KeyPart::Int(i) => KeyPart::Int(*i),
            KeyPart::Bytes(b) => KeyPart::Bytes(b.clone()),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        if let (KeyPart::Bytes(mine), KeyPart::Bytes(theirs)) = (&mut *self, source) {
            mine.clone_from(theirs);
        } else {
            *self = source.clone();
        }
    }
}

impl From<i64> for KeyPart {
    fn from(value: i64) -> Self {
        KeyPart::Int(value)
    }
}

impl From<Vec<u8>> for KeyPart {
    fn from(value: Vec<u8>) -> Self {
        KeyPart::Bytes(value)
    }
}

impl From<&[u8]> for KeyPart {
    fn from(value: &[u8]) -> Self {
        KeyPart::Bytes(value.to_vec())
    }
}

impl From<&str> for KeyPart {
    fn from(value: &str) -> Self {
        KeyPart::Bytes(value.as_bytes().to_vec())
    }
}

/// Bytes parts longer than this are cut short when shown in messages.
const SHOWN_BYTES: usize = 48;

impl fmt::Display for KeyPart {
    /// Integers as numbers, printable ASCII as `'text'`, anything else as `x'hex'`;
    /// long values are cut and their length given, so keys of tables without a
    /// primary key (whole rows) keep error messages readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Bytes(b) => {
                let shown = &b[..b.len().min(SHOWN_BYTES)];
                if shown.iter().all(|c| (0x20..0x7f).contains(c)) {
                    f.write_str("'")?;
                    for &c in shown {
                        if c == b'\'' {
                            f.write_str("''")?;
                        } else {
                            write!(f, "{}", c as char)?;
                        }
                    }
                    f.write_str("'")?;
                } else {
                    f.write_str("x'")?;
                    for c in shown {
                        write!(f, "{c:02x}")?;
                    }
                    f.write_str("'")?;
                }
                if b.len() > SHOWN_BYTES {
                    write!(f, "… ({} bytes)", b.len())?;
                }
                Ok(())
            }
        }
    }
}

/// A primary key: parts compared in order (see the module comment).
pub type Key = Vec<KeyPart>;

/// Shows a key as `(1, 'abc')` in messages.
pub fn display_key(key: &[KeyPart]) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a [KeyPart]);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("(")?;
            for (i, part) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{part}")?;
            }
            f.write_str(")")
        }
    }
    Shown(key)
}

/// One table row: its primary key and an opaque payload (the engine-native row text:
/// a PostgreSQL COPY line, a MySQL VALUES tuple, an encoded SQLite row).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Row {
    pub key: Key,
    pub payload: Vec<u8>,
}

impl Row {
    pub fn new(key: Key, payload: impl Into<Vec<u8>>) -> Self {
        Row {
            key,
            payload: payload.into(),
        }
    }
}

/// One record of a delta: what changed for one key between two backups.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeltaOp {
    /// The row was added or its payload changed; this is its new content.
    Upsert(Row),
    /// The row with this key was removed.
    Delete(Key),
}

impl DeltaOp {
    pub fn key(&self) -> &Key {
        match self {
            DeltaOp::Upsert(row) => &row.key,
            DeltaOp::Delete(key) => key,
        }
    }
}

/// Checks that `next` comes strictly after `previous`: an equal key is a
/// [`RowsError::DuplicateKey`], a smaller one [`RowsError::OutOfOrder`].
pub(crate) fn check_order(previous: Option<&[KeyPart]>, next: &[KeyPart]) -> Result<()> {
    match previous.map(|p| p.cmp(next)) {
        None | Some(Ordering::Less) => Ok(()),
        Some(Ordering::Equal) => Err(RowsError::DuplicateKey { key: next.to_vec() }),
        Some(Ordering::Greater) => Err(RowsError::OutOfOrder {
            previous: previous.unwrap_or_default().to_vec(),
            next: next.to_vec(),
        }),
    }
}

/// Remembers the last key seen, reusing its buffers.
#[derive(Debug, Default)]
pub(crate) struct LastKey {
    key: Key,
    seen: bool,
}

impl LastKey {
    /// Checks `next` against the remembered key, then remembers `next`.
    pub(crate) fn advance(&mut self, next: &[KeyPart]) -> Result<()> {
        check_order(self.seen.then_some(&self.key[..]), next)?;
        // Truncates, then `KeyPart::clone_from`s the shared parts, then appends.
        next.clone_into(&mut self.key);
        self.seen = true;
        Ok(())
    }
}
