//! `config.json`: what a repository is and how it cuts chunks.
//!
//! The chunker parameters live in the repository, not in the code, because
//! deduplication only works if every writer cuts the same content at the same
//! places: a future ostler with different defaults must keep using the values
//! the repository was created with. The file doubles as the marker that a
//! directory is a repository, so it is written last by `init`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};

/// The value of `config.json`'s `format` field.
pub const FORMAT_NAME: &str = "ostler-repo";
/// The repository format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Default FastCDC minimum chunk size (64 KiB).
pub const DEFAULT_MIN_SIZE: u32 = 64 * 1024;
/// Default FastCDC average chunk size (256 KiB).
pub const DEFAULT_AVG_SIZE: u32 = 256 * 1024;
/// Default FastCDC maximum chunk size (1 MiB).
pub const DEFAULT_MAX_SIZE: u32 = 1024 * 1024;

/// The parsed `config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Format version; see [`FORMAT_VERSION`].
    pub version: u32,
    /// Random identity of this repository (64 hex digits).
    pub id: String,
    /// Creation time, RFC 3339 in UTC.
    pub created: String,
    /// How streams are cut into chunks.
    pub chunker: ChunkerParams,
    /// Chunk id hash: always `"blake3"` in version 1.
    pub hash: String,
    /// Chunk compression: always `"zstd"` in version 1.
    pub compression: String,
}

/// FastCDC (2020 variant, gear table seed 0, normalisation level 1) parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Always `"fastcdc-2020"` in version 1.
    pub algorithm: ChunkerAlgorithm,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

/// The content-defined chunking algorithm; one value today, named so the file says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkerAlgorithm {
    #[serde(rename = "fastcdc-2020")]
    FastCdc2020,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            algorithm: ChunkerAlgorithm::FastCdc2020,
            min_size: DEFAULT_MIN_SIZE,
            avg_size: DEFAULT_AVG_SIZE,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds the `fastcdc` crate asserts on (it would panic), so a
    /// hand-edited config fails with an error instead.
    fn validate(&self) -> std::result::Result<(), String> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let in_range = |name: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("chunker.{name} = {v} is outside {lo}..={hi}"))
            }
        };
        in_range("min_size", self.min_size, MINIMUM_MIN, MINIMUM_MAX)?;
        in_range("avg_size", self.avg_size, AVERAGE_MIN, AVERAGE_MAX)?;
        in_range("max_size", self.max_size, MAXIMUM_MIN, MAXIMUM_MAX)?;
        if !(self.min_size <= self.avg_size && self.avg_size <= self.max_size) {
            return Err("chunker sizes must satisfy min_size <= avg_size <= max_size".into());
        }
        Ok(())
    }
}

impl RepoConfig {
    /// A fresh config for a new repository.
    pub(crate) fn new(seed_path: &Path) -> Self {
        let now = jiff::Timestamp::now();
        // Identity only needs to be unique, not secret: hash what differs
        // between two inits (time to the nanosecond, pid, path, a stack address).
        let mut h = blake3::Hasher::new();
        h.update(now.as_nanosecond().to_le_bytes().as_slice());
        h.update(std::process::id().to_le_bytes().as_slice());
        h.update(seed_path.as_os_str().as_encoded_bytes());
        let marker = 0u8;
        h.update(format!("{:p}", &marker).as_bytes());
        RepoConfig {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            id: h.finalize().to_hex().to_string(),
            created: now.to_string(),
            chunker: ChunkerParams::default(),
            hash: "blake3".to_string(),
            compression: "zstd".to_string(),
        }
    }

    /// Parses and checks `config.json` bytes read from `path`.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        // Look at format and version first, so a newer repository gets
        // "unsupported version" rather than "unknown field".
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            version: Option<u32>,
        }
        let not_repo = |reason: String| RepoError::NotARepository {
            path: path.parent().unwrap_or(path).to_path_buf(),
            reason,
        };
        let header: Header = serde_json::from_slice(bytes)
            .map_err(|e| not_repo(format!("{} is not valid JSON: {e}", path.display())))?;
        if header.format.as_deref() != Some(FORMAT_NAME) {
            return Err(not_repo(format!(
                "{} does not say \"format\": \"{FORMAT_NAME}\"",
                path.display()
            )));
        }
        match header.version {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(RepoError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            None => {
                return Err(RepoError::InvalidConfig {
                    path: path.to_path_buf(),
                    reason: "missing \"version\"".into(),
                })
            }
        }
        let invalid = |reason: String| RepoError::InvalidConfig {
            path: path.to_path_buf(),
            reason,
        };
        let config: RepoConfig =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        config.chunker.validate().map_err(invalid)?;
        if config.hash != "blake3" || config.compression != "zstd" {
            return Err(invalid(format!(
                "hash {:?} / compression {:?} not supported (version 1 uses blake3 / zstd)",
                config.hash, config.compression
            )));
        }
        Ok(config)
    }

    /// Pretty JSON with a trailing newline, as stored on disk at `path`.
    pub(crate) fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| RepoError::InvalidConfig {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
