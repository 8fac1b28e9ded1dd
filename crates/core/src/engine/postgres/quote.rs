//! PostgreSQL identifiers and string literals in our SQL.

/// `"name"`, with inner quotes doubled: always valid, whatever the name.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
