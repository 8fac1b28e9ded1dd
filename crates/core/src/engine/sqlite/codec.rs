//! SQLite row payloads: a row's values in a small typed binary encoding, so integers,
//! reals, text and blobs come back exactly, rowid included.

use rusqlite::types::ValueRef;

use crate::engine::SqlValue;
use crate::error::{Error, Result};

pub(super) fn value_of(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}

/// Encodes values: per value a tag byte (0 null, 1 int, 2 real, 3 text, 4 blob) and
/// for int/real 8 little-endian bytes, for text/blob a u32 length and the bytes.
pub(super) fn encode_values(values: &[SqlValue]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match v {
            SqlValue::Null => out.push(0),
            SqlValue::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            SqlValue::Real(f) => {
                out.push(2);
                out.extend_from_slice(&f.to_le_bytes());
            }
            SqlValue::Text(t) => {
                out.push(3);
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            SqlValue::Blob(b) => {
                out.push(4);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    out
}

/// Decodes `encode_values`. For tables without a primary key the first value is the rowid.
pub(super) fn decode_values(mut bytes: &[u8]) -> Result<Vec<SqlValue>> {
    let bad = || Error::failed("corrupt SQLite row payload");
    let mut out = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        let take = |bytes: &mut &[u8], n: usize| -> Result<Vec<u8>> {
            if bytes.len() < n {
                return Err(bad());
            }
            let (a, b) = bytes.split_at(n);
            *bytes = b;
            Ok(a.to_vec())
        };
        out.push(match tag {
            0 => SqlValue::Null,
            1 => SqlValue::Int(i64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().map_err(|_| bad())?,
            )),
            2 => SqlValue::Real(f64::from_le_bytes(
                take(&mut bytes, 8)?.try_into().map_err(|_| bad())?,
            )),
            3 | 4 => {
                let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().map_err(|_| bad())?)
                    as usize;
                let data = take(&mut bytes, len)?;
                if tag == 3 {
                    SqlValue::Text(String::from_utf8(data).map_err(|_| bad())?)
                } else {
                    SqlValue::Blob(data)
                }
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
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
