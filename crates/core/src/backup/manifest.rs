//! What a backup is on disk: its manifest. A manifest is self-contained: for every
//! table it names the full chain of streams (a base of rows sorted by key, then row
//! deltas, oldest first) that rebuild the table at this backup's instant. Chains share
//! streams with earlier backups through the repository's deduplication, but a manifest
//! never refers to another manifest, so removing any backup never breaks another one:
//! prune only has to keep the chunks the remaining manifests name.

use jiff::Timestamp;
use ostler_repo::StreamRef;
use serde::{Deserialize, Serialize};

use crate::engine::DatabaseKind;
use crate::engine::TableSpec;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub service: String,
    pub instance: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    #[serde(default)]
    pub note: Option<String>,
    /// The backup the row deltas were computed against, if any.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub database: Option<DatabaseEntry>,
    #[serde(default)]
    pub stores: Vec<StoreEntry>,
    /// Bytes of data this backup stands for (rows, schema, store files).
    pub logical_bytes: u64,
    /// Bytes this backup added to the repository.
    pub new_bytes: u64,
    /// What this backup had to work around (damage in its parent...), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<CaptureWarning>,
}

/// Something a backup worked around, kept with it so the operator hears of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CaptureWarning {
    /// The parent backup's listing of a store could not be read: every file of the
    /// store was read and stored afresh.
    StoreListingUnreadable {
        store: String,
        parent: String,
        error: String,
    },
    /// The parent backup's chain of a table could not be read: the table was stored
    /// whole (a new base).
    TableChainUnreadable {
        table: String,
        parent: String,
        error: String,
    },
    /// Chunks known to be damaged (or failing the write-time check) were written
    /// afresh from live data; older backups that name them are sound again.
    DamagedChunksRewritten { chunks: Vec<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseEntry {
    pub kind: DatabaseKind,
    pub schema: Vec<SchemaEntry>,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaEntry {
    pub name: String,
    pub stream: StreamRef,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableEntry {
    pub spec: TableSpec,
    pub rows: u64,
    /// Content hash of the rows (keys and payloads in key order): equal hashes, equal tables.
    pub hash: String,
    /// Bytes of the table's rows (payloads).
    pub logical_bytes: u64,
    /// Rows sorted by key, the start of the chain.
    pub base: StreamRef,
    /// Row deltas on top of `base`, oldest first.
    #[serde(default)]
    pub deltas: Vec<StreamRef>,
    /// What changed since the parent backup (added, changed, removed), when known.
    #[serde(default)]
    pub change: Option<[u64; 3]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreEntry {
    pub name: String,
    /// A JSON list of `FileEntry`, stored as a stream.
    pub listing: StreamRef,
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the store's root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mode: u32,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub stream: StreamRef,
}

impl Manifest {
    /// Every stream this backup needs, for verify and prune.
    pub fn streams(&self) -> Vec<(String, &StreamRef)> {
        let mut out = Vec::new();
        if let Some(db) = &self.database {
            for s in &db.schema {
                out.push((format!("schema {}", s.name), &s.stream));
            }
            for t in &db.tables {
                out.push((format!("table {}", t.spec.name), &t.base));
                for d in &t.deltas {
                    out.push((format!("table {}", t.spec.name), d));
                }
            }
        }
        for s in &self.stores {
            out.push((format!("store {}", s.name), &s.listing));
        }
        out
    }

    pub fn repo_file(id: &str) -> String {
        format!("backups/{id}.json")
    }
}
