//! MySQL and MariaDB quoting: the one place ostler writes a name or value into their
//! SQL text (catalog queries, the row codec's payload strings, admin statements, a
//! partial restore's printed statements, the export).
//!
//! Strings are escaped as the server's `QUOTE()` escapes them (backslash, quote, NUL,
//! Ctrl-Z), which the row codec relies on (a table without a key is ordered on the
//! server by `QUOTE()` of its values). That needs backslash escapes on, that is no
//! `NO_BACKSLASH_ESCAPES` in `sql_mode`; whatever runs them sets the mode first.
//! SQL text meant for the `mariadb` client (an export, printed statements) must also
//! escape line breaks: the client reads its input by lines and drops the CR of a
//! CR LF, even inside a string (`client_text`).

use std::borrow::Cow;

use crate::engine::{SqlValue, TableSpec};

/// `` `name` ``, inner backticks doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// How a byte is written inside a quoted string; `None` when as it is.
fn escape(b: u8, line_breaks: bool) -> Option<&'static [u8]> {
    match b {
        b'\\' => Some(b"\\\\"),
        b'\'' => Some(b"\\'"),
        0 => Some(b"\\0"),
        0x1a => Some(b"\\Z"),
        b'\r' if line_breaks => Some(b"\\r"),
        b'\n' if line_breaks => Some(b"\\n"),
        _ => None,
    }
}

fn string_into(out: &mut Vec<u8>, bytes: &[u8], line_breaks: bool) {
    out.push(b'\'');
    for &b in bytes {
        match escape(b, line_breaks) {
            Some(e) => out.extend_from_slice(e),
            None => out.push(b),
        }
    }
    out.push(b'\'');
}

/// Appends `'bytes'` escaped exactly as the server's `QUOTE()` escapes them.
pub fn quote_into(out: &mut Vec<u8>, bytes: &[u8]) {
    string_into(out, bytes, false);
}

/// A string literal for SQL text, line breaks escaped too (safe for the client).
pub fn string(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    string_into(&mut out, text.as_bytes(), true);
    // Escapes are ASCII and replace ASCII bytes: the text stays UTF-8.
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

/// A literal the server reads back as exactly `value`. A float that is not finite
/// has no MySQL value: it is written as a string the server refuses in strict mode.
pub fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(f) if !f.is_finite() => format!("'{f}'"),
        SqlValue::Real(f) => format!("{f:?}"),
        SqlValue::Text(t) => string(t),
        SqlValue::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
    }
}

/// A stored value tuple (`QUOTE()`-escaped strings) made safe for the `mariadb`
/// client: CR and LF inside its strings escaped. Nothing else changes, so the server
/// reads the same values.
pub fn client_text(tuple: &[u8]) -> Cow<'_, [u8]> {
    if !tuple.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Cow::Borrowed(tuple);
    }
    let mut out = Vec::with_capacity(tuple.len() + 8);
    let mut in_string = false;
    let mut i = 0;
    while i < tuple.len() {
        let b = tuple[i];
        if in_string {
            match b {
                b'\\' if i + 1 < tuple.len() => {
                    out.extend_from_slice(&tuple[i..i + 2]);
                    i += 2;
                    continue;
                }
                b'\'' if tuple.get(i + 1) == Some(&b'\'') => {
                    out.extend_from_slice(b"''");
                    i += 2;
                    continue;
                }
                b'\'' => in_string = false,
                b'\r' => {
                    out.extend_from_slice(b"\\r");
                    i += 1;
                    continue;
                }
                b'\n' => {
                    out.extend_from_slice(b"\\n");
                    i += 1;
                    continue;
                }
                _ => {}
            }
        } else if b == b'\'' {
            in_string = true;
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// The statement that puts one row back: `INSERT INTO t (a, b) VALUES (...);`.
pub fn insert(spec: &TableSpec, values: &[SqlValue]) -> String {
    let columns: Vec<String> = spec.columns.iter().map(|c| ident(c)).collect();
    crate::engine::insert_sql(&ident(&spec.name), &columns, values.iter().map(literal))
}
