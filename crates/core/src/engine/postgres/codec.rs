//! PostgreSQL row payloads: COPY text lines. Their keys, undoing COPY's escapes,
//! checking that a payload is one line, and decoding fields for forensics.

use ostler_rows::KeyPart;

use crate::engine::SqlValue;
use crate::error::{Error, Result};

/// The key of a COPY line: integer columns as `Int`, others as the field's value
/// bytes (escapes undone, so the bytes are what `COLLATE "C"` ordered by).
pub(super) fn key_of_line(
    line: &[u8],
    key_at: &[(usize, bool)],
) -> std::result::Result<Vec<KeyPart>, String> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    let mut key = Vec::with_capacity(key_at.len());
    for &(i, int) in key_at {
        let field = fields
            .get(i)
            .ok_or_else(|| format!("a row has {} fields, expected more than {i}", fields.len()))?;
        if *field == b"\\N" {
            return Err("a primary key column is NULL".into());
        }
        if int {
            let value = std::str::from_utf8(field)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| format!("bad integer key {:?}", String::from_utf8_lossy(field)))?;
            key.push(KeyPart::Int(value));
        } else {
            key.push(KeyPart::Bytes(unescape(field)));
        }
    }
    Ok(key)
}

/// Undoes COPY text escaping (`\t`, `\\`, octal `\123`, hex `\x4f`...), as the
/// server's COPY FROM does.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' || i == field.len() {
            out.push(b);
            continue;
        }
        let c = field[i];
        i += 1;
        match c {
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            other => out.push(other),
        }
    }
    out
}

/// Refuses a payload that is not one COPY line: a newline would smuggle in rows,
/// a lone `\.` would end the data early.
pub(super) fn check_line(payload: &[u8], table: &str) -> Result<()> {
    if payload.contains(&b'\n') || payload.contains(&b'\r') || payload == b"\\." {
        return Err(Error::failed(format!(
            "table {table}: a row is not a single COPY text line; the backup is damaged"
        )));
    }
    Ok(())
}

/// Decodes a COPY text line into its fields: `\N` is NULL, anything else is the
/// field's text with escapes undone. Every value stays `Text` (integers included):
/// COPY text does not say which columns are numbers, and text keeps numerics,
/// timestamps and the like exact. A field that is not UTF-8 (possible through octal
/// escapes in a non-UTF-8 database) comes back as `Blob`.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<SqlValue>> {
    if payload.contains(&b'\n') {
        return Err(Error::failed(
            "corrupt PostgreSQL row payload: more than one line",
        ));
    }
    Ok(payload
        .split(|&b| b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                SqlValue::Null
            } else {
                match String::from_utf8(unescape(field)) {
                    Ok(text) => SqlValue::Text(text),
                    Err(e) => SqlValue::Blob(e.into_bytes()),
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_undoes_copy_escapes() {
        assert_eq!(unescape(b"a\\tb\\\\c\\nd"), b"a\tb\\c\nd");
        assert_eq!(unescape(b"\\101\\x42\\b\\f\\r\\v\\q"), b"AB\x08\x0c\r\x0bq");
        assert_eq!(unescape(b"\\xzz"), b"xzz");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }

    #[test]
    fn decode_splits_fields_and_keeps_null_apart_from_backslash_n() {
        assert_eq!(
            decode(b"1\t\\N\t\\\\N\t").unwrap(),
            vec![
                SqlValue::Text("1".into()),
                SqlValue::Null,
                SqlValue::Text("\\N".into()),
                SqlValue::Text(String::new())
            ]
        );
    }
}

/// The COPY text codec fuzzed (bounded, so CI stays quick): arbitrary bytes never
/// panic the decoder or the key parser, and fields escaped as the server's `COPY TO`
/// escapes them come back as they were.
#[cfg(test)]
mod fuzz {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// A field as `COPY ... TO` writes it in text format.
    fn escape(field: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(field.len());
        for &b in field {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                8 => out.extend_from_slice(b"\\b"),
                12 => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                11 => out.extend_from_slice(b"\\v"),
                b => out.push(b),
            }
        }
        out
    }

    fn line(fields: &[Option<Vec<u8>>]) -> Vec<u8> {
        let fields: Vec<Vec<u8>> = fields
            .iter()
            .map(|f| f.as_deref().map_or(b"\\N".to_vec(), escape))
            .collect();
        fields.join(&b'\t')
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decode_never_panics(bytes in vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = key_of_line(&bytes, &[(0, true), (1, false), (7, false)]);
        }

        #[test]
        fn escape_then_unescape_gives_the_bytes_back(field in vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unescape(&escape(&field)), field);
        }

        #[test]
        fn a_copy_line_decodes_to_its_fields(
            fields in vec(proptest::option::of(vec(any::<u8>(), 0..24)), 1..8)
        ) {
            let want: Vec<SqlValue> = fields
                .iter()
                .map(|f| match f {
                    None => SqlValue::Null,
                    Some(b) => match String::from_utf8(b.clone()) {
                        Ok(t) => SqlValue::Text(t),
                        Err(e) => SqlValue::Blob(e.into_bytes()),
                    },
                })
                .collect();
            prop_assert_eq!(decode(&line(&fields)).unwrap(), want);
        }
    }
}
