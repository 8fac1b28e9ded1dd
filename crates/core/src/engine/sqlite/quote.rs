//! SQLite's quoting: the one place ostler writes a SQLite name or value into SQL text
//! (snapshot queries, the loader's INSERT, the forensics table, a partial restore's
//! printed statements). Values that ostler writes itself go through rusqlite's
//! parameters instead; a literal is for SQL a person reads or runs with `sqlite3`.
//!
//! A text holding NUL is written as `CAST(X'..' AS TEXT)`: in a quoted string the
//! `sqlite3` shell (and any C caller) would end the statement at the NUL.

use crate::engine::{SqlValue, TableSpec};

/// `"name"`, inner double quotes doubled: valid whatever the name holds.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A literal that SQLite reads back as exactly `value`, storage class included.
/// NaN has no SQLite value (SQLite stores it as NULL) and is written `NULL`.
pub fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Real(f) if f.is_nan() => "NULL".into(),
        // Out of range on purpose: SQLite reads these as the infinities.
        SqlValue::Real(f) if f.is_infinite() => if *f > 0.0 { "9e999" } else { "-9e999" }.into(),
        SqlValue::Real(f) => real(*f),
        SqlValue::Text(t) if t.contains('\0') => format!("CAST(X'{}' AS TEXT)", hex::encode(t)),
        SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
        SqlValue::Blob(b) => format!("X'{}'", hex::encode(b)),
    }
}

/// The shortest decimal that reads back as `f`, always with a `.` or an exponent so
/// that SQLite takes it as a REAL (`1.0`, not the integer `1`).
pub(crate) fn real(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The statement that puts one row back: `INSERT INTO "t" ("a", "b") VALUES (...);`,
/// with the rowid first when `values` carries one (a table without a primary key
/// keeps its rowid, as a load keeps it).
pub fn insert(spec: &TableSpec, values: &[SqlValue]) -> String {
    let mut columns: Vec<String> = spec.columns.iter().map(|c| ident(c)).collect();
    if values.len() == columns.len() + 1 {
        columns.insert(0, "rowid".into());
    }
    crate::engine::insert_sql(&ident(&spec.name), &columns, values.iter().map(literal))
}
