//! MySQL/MariaDB identifiers and string literals, escaped as the server's `QUOTE()`.

/// `` `name` ``, inner backticks doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

pub(crate) fn quote_literal(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    quote_into(&mut out, text.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `'text'` escaped as `QUOTE()` does: backslash, quote, NUL and Ctrl-Z.
pub(super) fn quote_into(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'\'');
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_quotes_like_the_server() {
        let mut out = Vec::new();
        quote_into(&mut out, b"a'b\\c\0d\x1ae\nf");
        assert_eq!(out, b"'a\\'b\\\\c\\0d\\Ze\nf'");
    }
}
