//! Test data and repository helpers shared by the test modules.

use std::path::Path;

use ostler_repo::Repository;
use tempfile::TempDir;

/// A fresh repository in its own temporary directory (kept alive by the guard).
pub fn new_repo() -> (TempDir, Repository) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let repo = Repository::init(&dir.path().join("repo")).expect("init repository");
    (dir, repo)
}

/// SplitMix64: tiny, fast, good enough to make incompressible test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `len` random (incompressible) bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// About `len` bytes that look like a SQL dump: repetitive structure, random
/// values, compressing roughly 3-4x with zstd -3 (like real dumps).
pub fn sql_like_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 200);
    let mut id = 0u64;
    while out.len() < len {
        id += 1;
        let line = format!(
            "INSERT INTO guestbook_entry VALUES ({id}, '{} {}', {}, '{:016x}', {}.{:02});\n",
            WORDS[rng.below(16) as usize],
            WORDS[rng.below(16) as usize],
            rng.below(1_000_000),
            rng.next_u64(),
            rng.below(10_000),
            rng.below(100),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

/// Hex BLAKE3 of `data`, as a stream's `hash` should be.
pub fn hash_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Replaces `dir` in `text` by `<dir>`, so messages can be compared.
pub fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "<dir>")
}
