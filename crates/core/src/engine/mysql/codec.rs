//! MySQL/MariaDB row payloads: SQL value tuples `(1,'a',NULL,X'00')`. How each column
//! kind is written and keyed, the scanner that admits only literals, and decoding for
//! forensics.

use mysql::Value;
use ostler_rows::KeyPart;

use super::quote;
use crate::engine::SqlValue;
use crate::error::{Error, Result};

/// How a column's values are written in a payload and used in a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Integer types that fit an i64: key part `Int`.
    Int,
    /// `BIGINT UNSIGNED`: key part `Bytes` of the big-endian u64 (same order).
    UnsignedBig,
    /// Decimal and floating point: written as printed, keyed by that text.
    Number,
    /// Byte strings: written as hex literals, keyed by their bytes.
    Binary,
    /// Everything else: quoted strings (text, dates, times, enums, JSON...).
    Text,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Column {
    pub(super) kind: Kind,
    /// The server's native order of the column is the byte order of its key part.
    pub(super) natural_order: bool,
}

pub(super) fn column_of(data_type: &str, column_type: &str) -> Column {
    let t = data_type.to_ascii_lowercase();
    let kind = match t.as_str() {
        "bigint" if column_type.to_ascii_lowercase().contains("unsigned") => Kind::UnsignedBig,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => Kind::Int,
        "decimal" | "numeric" | "float" | "double" | "real" | "double precision" => Kind::Number,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Binary,
        _ => Kind::Text,
    };
    let natural_order = matches!(kind, Kind::Int | Kind::UnsignedBig | Kind::Binary)
        || matches!(t.as_str(), "date" | "datetime" | "timestamp");
    Column {
        kind,
        natural_order,
    }
}

fn is_number(bytes: &[u8]) -> bool {
    bytes.iter().any(u8::is_ascii_digit)
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
}

pub(super) fn encode_value(out: &mut Vec<u8>, value: &Value, kind: Kind) {
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Bytes(b) => match kind {
            Kind::Int | Kind::UnsignedBig | Kind::Number if is_number(b) => {
                out.extend_from_slice(b)
            }
            Kind::Binary => {
                out.extend_from_slice(b"X'");
                out.extend_from_slice(hex::encode_upper(b).as_bytes());
                out.push(b'\'');
            }
            _ => quote::quote_into(out, b),
        },
        // The text protocol sends only bytes and NULL; the driver's own rendering
        // is right for the typed values of the binary protocol.
        other => out.extend_from_slice(other.as_sql(false).as_bytes()),
    }
}

pub(super) fn key_part(value: &Value, kind: Kind) -> std::result::Result<KeyPart, String> {
    let Value::Bytes(b) = value else {
        return Err(format!("a primary key column holds {value:?}"));
    };
    let text = || std::str::from_utf8(b).unwrap_or("");
    match kind {
        Kind::Int => text()
            .parse::<i64>()
            .map(KeyPart::Int)
            .map_err(|_| format!("bad integer key {:?}", String::from_utf8_lossy(b))),
        Kind::UnsignedBig => text()
            .parse::<u64>()
            .map(|v| KeyPart::Bytes(v.to_be_bytes().to_vec()))
            .map_err(|_| format!("bad integer key {:?}", String::from_utf8_lossy(b))),
        _ => Ok(KeyPart::Bytes(b.clone())),
    }
}

/// A literal of a payload tuple, as scanned (strings still escaped).
enum Literal<'a> {
    Null,
    Number(&'a [u8]),
    Hex(&'a [u8]),
    Str(&'a [u8]),
}

/// Scans a payload `(v,v,...)` whose values are literals only (NULL, numbers, hex,
/// quoted strings), and nothing else: a load splices payloads into INSERT
/// statements, so a damaged or hostile payload must never become SQL.
fn scan_tuple<'a>(
    p: &'a [u8],
    mut each: impl FnMut(Literal<'a>),
) -> std::result::Result<(), String> {
    let skip_ws = |i: &mut usize| {
        while p.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
            *i += 1;
        }
    };
    let mut i = 0;
    skip_ws(&mut i);
    if p.get(i) != Some(&b'(') {
        return Err("does not start with `(`".into());
    }
    i += 1;
    loop {
        skip_ws(&mut i);
        let start = i;
        match p.get(i) {
            Some(b'\'') => {
                i += 1;
                loop {
                    match p.get(i) {
                        None => return Err("a string is not closed".into()),
                        Some(b'\\') => i += 2,
                        Some(b'\'') if p.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                each(Literal::Str(&p[start + 1..i - 1]));
            }
            Some(b'X' | b'x') if p.get(i + 1) == Some(&b'\'') => {
                i += 2;
                while p.get(i).is_some_and(u8::is_ascii_hexdigit) {
                    i += 1;
                }
                if p.get(i) != Some(&b'\'') || (i - start - 2) % 2 != 0 {
                    return Err("bad hex literal".into());
                }
                i += 1;
                each(Literal::Hex(&p[start + 2..i - 1]));
            }
            Some(b'0') if matches!(p.get(i + 1), Some(b'x')) => {
                i += 2;
                while p.get(i).is_some_and(u8::is_ascii_hexdigit) {
                    i += 1;
                }
                if i == start + 2 {
                    return Err("bad hex literal".into());
                }
                each(Literal::Hex(&p[start + 2..i]));
            }
            Some(b'N' | b'n') => {
                if !p
                    .get(i..i + 4)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"NULL"))
                {
                    return Err("unexpected word".into());
                }
                i += 4;
                each(Literal::Null);
            }
            Some(_) => {
                while p.get(i).is_some_and(|b| {
                    b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')
                }) {
                    i += 1;
                }
                if !is_number(&p[start..i]) {
                    return Err(format!("unexpected character at byte {start}"));
                }
                each(Literal::Number(&p[start..i]));
            }
            None => return Err("ends early".into()),
        }
        skip_ws(&mut i);
        match p.get(i) {
            Some(b',') => i += 1,
            Some(b')') => {
                i += 1;
                skip_ws(&mut i);
                return if i == p.len() {
                    Ok(())
                } else {
                    Err("text after the closing `)`".into())
                };
            }
            _ => return Err(format!("expected `,` or `)` at byte {i}")),
        }
    }
}

/// Undoes MySQL string escapes (`\n`, `\0`, `\'`, `''`...).
fn unescape_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if i + 1 < s.len() => {
                let c = s[i + 1];
                match c {
                    b'0' => out.push(0),
                    b'b' => out.push(8),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'Z' => out.push(0x1a),
                    // The server keeps these two escaped (they matter to LIKE).
                    b'%' | b'_' => out.extend_from_slice(&[b'\\', c]),
                    other => out.push(other),
                }
                i += 2;
            }
            b'\'' if s.get(i + 1) == Some(&b'\'') => {
                out.push(b'\'');
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

pub(super) fn check_tuple(payload: &[u8], table: &str) -> Result<()> {
    scan_tuple(payload, |_| {}).map_err(|detail| {
        Error::failed(format!(
            "table {table}: a row is not an SQL value tuple ({detail}); the backup is damaged"
        ))
    })
}

/// Decodes a payload tuple: NULL, integers that fit an i64 as `Int`, other numbers
/// (decimals, floats) as `Text` to keep them exact, hex literals as `Blob`, strings
/// as `Text` (or `Blob` when not UTF-8).
pub(super) fn decode(payload: &[u8]) -> Result<Vec<SqlValue>> {
    let mut values = Vec::new();
    let mut bad_hex = false;
    scan_tuple(payload, |literal| {
        values.push(match literal {
            Literal::Null => SqlValue::Null,
            Literal::Number(n) => {
                let text = String::from_utf8_lossy(n).into_owned();
                match text.parse::<i64>() {
                    Ok(i) => SqlValue::Int(i),
                    Err(_) => SqlValue::Text(text),
                }
            }
            Literal::Hex(h) => match hex::decode(h) {
                Ok(bytes) => SqlValue::Blob(bytes),
                Err(_) => {
                    bad_hex = true;
                    SqlValue::Null
                }
            },
            Literal::Str(s) => match String::from_utf8(unescape_string(s)) {
                Ok(text) => SqlValue::Text(text),
                Err(e) => SqlValue::Blob(e.into_bytes()),
            },
        })
    })
    .map_err(|detail| Error::failed(format!("corrupt MySQL row payload: {detail}")))?;
    if bad_hex {
        return Err(Error::failed("corrupt MySQL row payload: bad hex literal"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_back_every_literal() {
        let values = decode(b"(1,-2.50,NULL,'it\\'s\\\\ a\\0''b',X'00FF',0x0a,'')").unwrap();
        assert_eq!(
            values,
            vec![
                SqlValue::Int(1),
                SqlValue::Text("-2.50".into()),
                SqlValue::Null,
                SqlValue::Text("it's\\ a\0'b".into()),
                SqlValue::Blob(vec![0, 255]),
                SqlValue::Blob(vec![10]),
                SqlValue::Text(String::new()),
            ]
        );
    }

    #[test]
    fn scan_refuses_anything_but_literals() {
        for bad in [
            &b"(1); DROP TABLE t; --"[..],
            b"(1,'open)",
            b"(SLEEP(1))",
            b"(1,NULLX)",
            b"1,2",
            b"(X'0')",
            b"()",
            b"(1,)",
        ] {
            assert!(
                scan_tuple(bad, |_| {}).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

/// The value tuple codec fuzzed (bounded, so CI stays quick): arbitrary bytes never
/// panic the scanner or the decoder, and a row encoded as a snapshot encodes it
/// (and made safe for the `mariadb` client) decodes to its values.
#[cfg(test)]
mod fuzz {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// A column value as the server sends it (text protocol: bytes or NULL).
    fn column() -> impl Strategy<Value = (Kind, Option<Vec<u8>>)> {
        let bytes = || proptest::option::of(vec(any::<u8>(), 0..32));
        prop_oneof![
            proptest::option::of(any::<i64>())
                .prop_map(|i| (Kind::Int, i.map(|i| i.to_string().into_bytes()))),
            bytes().prop_map(|b| (Kind::Binary, b)),
            bytes().prop_map(|b| (Kind::Text, b)),
        ]
    }

    fn encode(row: &[(Kind, Option<Vec<u8>>)]) -> Vec<u8> {
        let mut payload = vec![b'('];
        for (i, (kind, v)) in row.iter().enumerate() {
            if i > 0 {
                payload.push(b',');
            }
            let v = v.clone().map_or(Value::NULL, Value::Bytes);
            encode_value(&mut payload, &v, *kind);
        }
        payload.push(b')');
        payload
    }

    fn expected(row: &[(Kind, Option<Vec<u8>>)]) -> Vec<SqlValue> {
        row.iter()
            .map(|(kind, v)| match (kind, v) {
                (_, None) => SqlValue::Null,
                (Kind::Int, Some(b)) => {
                    SqlValue::Int(std::str::from_utf8(b).unwrap().parse().unwrap())
                }
                (Kind::Binary, Some(b)) => SqlValue::Blob(b.clone()),
                (_, Some(b)) => match String::from_utf8(b.clone()) {
                    Ok(t) => SqlValue::Text(t),
                    Err(e) => SqlValue::Blob(e.into_bytes()),
                },
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decode_never_panics(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = scan_tuple(&bytes, |_| {});
            let _ = quote::client_text(&bytes);
        }

        #[test]
        fn encode_then_decode_gives_the_values_back(row in vec(column(), 1..8)) {
            let payload = encode(&row);
            prop_assert_eq!(decode(&payload).unwrap(), expected(&row));
            // As an export writes it for the client: the same values.
            prop_assert_eq!(decode(&quote::client_text(&payload)).unwrap(), expected(&row));
        }
    }
}
