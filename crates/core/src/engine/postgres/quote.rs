//! PostgreSQL's quoting: the one place ostler writes a PostgreSQL name or value into
//! SQL text (catalog queries, COPY statements, admin statements on databases, a
//! partial restore's printed statements).
//!
//! Literals do not depend on `standard_conforming_strings`: a text holding a
//! backslash is written as an escape string (`E'a\\b'`), a byte string as
//! `E'\\x..'::bytea`. PostgreSQL text cannot hold NUL; a NUL is written as the escape
//! `\000`, which the server refuses with an error naming the byte, rather than
//! letting the C client cut the statement short at it.

use crate::engine::{SqlValue, TableSpec};

/// `"name"`, inner double quotes doubled: one identifier, whatever the name holds
/// (dots included).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table's schema-qualified name as the snapshot lists it (`format('%I.%I')`:
/// `public.entries`, `public."Odd.Name"`), each part quoted: `"public"."entries"`.
/// A part already in double quotes is taken as the name it quotes.
pub fn table(name: &str) -> String {
    parts(name)
        .iter()
        .map(|p| ident(p))
        .collect::<Vec<_>>()
        .join(".")
}

/// The names in a dotted, possibly quoted name: dots inside double quotes belong to
/// the name, `""` inside quotes is one `"`.
pub fn parts(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut part = String::new();
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    out.push(part);
    out
}

/// A string literal that reads back as exactly `text` (see the module comment for NUL).
pub fn string(text: &str) -> String {
    if text.contains(['\\', '\0']) {
        let mut out = String::with_capacity(text.len() + 4);
        out.push_str("E'");
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("''"),
                '\0' => out.push_str("\\000"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// A literal PostgreSQL reads back as exactly `value`. Values decoded from COPY text
/// are `Text` (numbers and bytea's `\x..` text included): the column's type reads them.
pub fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(f) if f.is_nan() => "'NaN'::float8".into(),
        SqlValue::Real(f) if f.is_infinite() => if *f > 0.0 {
            "'Infinity'::float8"
        } else {
            "'-Infinity'::float8"
        }
        .into(),
        SqlValue::Real(f) => format!("{f:?}::float8"),
        SqlValue::Text(t) => string(t),
        SqlValue::Blob(b) => format!("E'\\\\x{}'::bytea", hex::encode(b)),
    }
}

/// The statement that puts one row back: `INSERT INTO t (a, b) VALUES (...);`.
pub fn insert(spec: &TableSpec, values: &[SqlValue]) -> String {
    let columns: Vec<String> = spec.columns.iter().map(|c| ident(c)).collect();
    crate::engine::insert_sql(&table(&spec.name), &columns, values.iter().map(literal))
}
