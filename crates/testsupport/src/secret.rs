//! Random passwords and unique names.
//!
//! Read straight from the kernel's random source rather than pulling in a random
//! number crate: a test harness needs a handful of unguessable strings, nothing more.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// `bytes` random bytes as lowercase hex (so `2 * bytes` characters, safe to embed
/// in SQL string literals and identifiers without quoting trouble).
pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("could not read random bytes from /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A database name that starts with a cleaned-up `prefix` and is unique across
/// servers, processes and runs: `{prefix}_{pid}_{counter}_{random}`, at most
/// `max_len` characters of `[a-z0-9_]`, starting with a letter.
pub(crate) fn unique_name(prefix: &str, max_len: usize) -> anyhow::Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("_{}_{}_{}", std::process::id(), n, random_hex(3)?);
    let mut clean: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
        clean.insert(0, 'd');
    }
    clean.truncate(max_len.saturating_sub(suffix.len()).max(1));
    Ok(clean + &suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_clean_short_and_distinct() {
        let a = unique_name("My-Test DB", 63).unwrap();
        let b = unique_name("My-Test DB", 63).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("my_test_db_"), "{a}");
        let long = unique_name(&"x".repeat(200), 63).unwrap();
        assert!(long.len() <= 63, "{long}");
        assert!(unique_name("1abc", 63).unwrap().starts_with("d1abc_"));
        assert!(unique_name("", 63).unwrap().starts_with("d_"));
    }

    #[test]
    fn random_hex_has_the_asked_length() {
        let p = random_hex(16).unwrap();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
