//! SQLite row payloads: a row's values in a small typed binary encoding, so integers,
//! reals, text and blobs come back exactly, rowid included. Text is kept as the bytes
//! SQLite holds, even when they are not UTF-8 (SQLite does not check what an
//! application stores as TEXT), so a restore puts back exactly what was there.

use rusqlite::types::ValueRef;

use crate::engine::SqlValue;
use crate::error::{Error, Result};

/// A value as rusqlite would take it (text as its bytes).
#[cfg(test)]
fn value_ref(v: &SqlValue) -> ValueRef<'_> {
    match v {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Int(i) => ValueRef::Integer(*i),
        SqlValue::Real(f) => ValueRef::Real(*f),
        SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
    }
}

/// Encodes values as SQLite gives them: per value a tag byte (0 null, 1 int, 2 real,
/// 3 text, 4 blob) and for int/real 8 little-endian bytes, for text/blob a u32 length
/// and the bytes.
pub(super) fn encode_refs(values: &[ValueRef<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match v {
            ValueRef::Null => out.push(0),
            ValueRef::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            ValueRef::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_le_bytes());
            }
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                out.push(if matches!(v, ValueRef::Text(_)) { 3 } else { 4 });
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// `encode_refs` of engine-neutral values (the codec tests build rows with it).
#[cfg(test)]
pub(super) fn encode_values(values: &[SqlValue]) -> Vec<u8> {
    encode_refs(&values.iter().map(value_ref).collect::<Vec<_>>())
}

/// Decodes `encode_refs` into borrowed values, text as the bytes stored: what a load
/// hands back to SQLite. For tables without a primary key the first value is the rowid.
pub(super) fn decode_refs(mut bytes: &[u8]) -> Result<Vec<ValueRef<'_>>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if bytes.len() < n {
            return Err(bad());
        }
        let (a, b) = bytes.split_at(n);
        *bytes = b;
        Ok(a)
    }
    fn bad() -> Error {
        Error::failed("corrupt SQLite row payload")
    }
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        out.push(match tag {
            0 => ValueRef::Null,
            1 => ValueRef::Integer(i64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().map_err(|_| bad())?,
            )),
            2 => ValueRef::Real(f64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().map_err(|_| bad())?,
            )),
            3 | 4 => {
                let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().map_err(|_| bad())?)
                    as usize;
                let data = take(&mut bytes, len)?;
                if tag == 3 {
                    ValueRef::Text(data)
                } else {
                    ValueRef::Blob(data)
                }
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

/// Decodes `encode_refs` into engine-neutral values (for forensics and checks): text
/// that is not UTF-8 is shown with U+FFFD in place of the bytes that are not.
pub(super) fn decode_values(bytes: &[u8]) -> Result<Vec<SqlValue>> {
    Ok(decode_refs(bytes)?
        .into_iter()
        .map(|v| match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Int(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        })
        .collect())
}

/// The row's column values (without the rowid of rowid tables).
pub(super) fn decode(payload: &[u8]) -> Result<Vec<SqlValue>> {
    decode_values(payload)
}

/// A value as a rusqlite parameter.
pub fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::Integer(*i),
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(t) => Value::Text(t.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    }
}

/// The row codec fuzzed (bounded, so CI stays quick): arbitrary bytes never panic
/// the decoder, and every row of values comes back as it went in.
#[cfg(test)]
mod fuzz {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = SqlValue> {
        prop_oneof![
            Just(SqlValue::Null),
            any::<i64>().prop_map(SqlValue::Int),
            // NaN is not equal to itself; its bits are checked apart.
            any::<f64>()
                .prop_filter("not NaN", |f| !f.is_nan())
                .prop_map(SqlValue::Real),
            vec(any::<char>(), 0..24).prop_map(|c| SqlValue::Text(c.into_iter().collect())),
            vec(any::<u8>(), 0..48).prop_map(SqlValue::Blob),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decode_never_panics(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode_values(&bytes);
        }

        #[test]
        fn encode_then_decode_gives_the_values_back(values in vec(value(), 0..12)) {
            prop_assert_eq!(decode_values(&encode_values(&values)).unwrap(), values);
        }
    }

    #[test]
    fn nan_keeps_its_bits() {
        let nan = f64::from_bits(0x7ff8_0000_0000_1234);
        match decode_values(&encode_values(&[SqlValue::Real(nan)])).unwrap()[..] {
            [SqlValue::Real(f)] => assert_eq!(f.to_bits(), nan.to_bits()),
            ref other => panic!("{other:?}"),
        }
    }
}
