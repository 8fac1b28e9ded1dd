//! Pruning a copy: after retention removed backups from the local repository (and its
//! gc their chunks), the copy still holds them. `prune_copy` makes the copy follow:
//! it removes the manifests the local repository no longer has, then the chunks no
//! local manifest needs, then leftovers of interrupted uploads.
//!
//! Safety comes from three choices. Manifests go before chunks, so a prune interrupted
//! at any point leaves only complete backups. What is needed is computed from the
//! *local* manifests (a superset of those kept at the destination), read as plain
//! JSON: every `chunks[].id` anywhere in a manifest counts, and every `listing` stream
//! (a store's file list) is read from the local repository and searched the same way,
//! so a field added to manifests later cannot make a needed chunk look unneeded. And
//! any doubt stops the prune before it removes anything: an unreadable manifest or
//! listing, or a destination whose `config.json` is missing or names another
//! repository. Files it does not recognise are left alone.

use std::collections::HashSet;

use ostler_repo::StreamRef;
use serde_json::Value;

use super::{check_same_repository, is_temp_path, Backend, CHUNKS_DIR, CONFIG_FILE};
use crate::backup::repository::OpenRepository;
use crate::error::{Error, Result};

/// What [`prune_copy`] would remove, as paths at the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrunePlan {
    /// Manifests (and other named files) the local repository no longer has.
    pub files: Vec<String>,
    /// Chunks no local manifest needs.
    pub chunks: Vec<String>,
    /// Leftovers of uploads that never finished.
    pub temporaries: Vec<String>,
}

/// What [`prune_copy`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneStats {
    pub files_removed: u64,
    pub chunks_removed: u64,
    pub temporaries_removed: u64,
}

/// What pruning the copy would remove, without removing anything (`--dry-run`).
pub fn plan_prune_copy(repo: &OpenRepository, backend: &dyn Backend) -> Result<PrunePlan> {
    plan(repo, backend)
}

/// Removes at the destination the manifests the local repository no longer has, then
/// the chunks no local manifest needs, then stale temporaries. Must not run while a
/// copy to the same destination is running. The handle's shared lock keeps the local
/// gc out, so the needed set stays true until we are done.
pub fn prune_copy(repo: &OpenRepository, backend: &dyn Backend) -> Result<PruneStats> {
    let plan = plan(repo, backend)?;
    let mut stats = PruneStats::default();
    for path in &plan.files {
        backend.remove(path)?;
        stats.files_removed += 1;
    }
    for path in &plan.chunks {
        backend.remove(path)?;
        stats.chunks_removed += 1;
    }
    for path in &plan.temporaries {
        backend.remove(path)?;
        stats.temporaries_removed += 1;
    }
    tracing::info!(
        destination = %backend.describe(),
        files_removed = stats.files_removed,
        chunks_removed = stats.chunks_removed,
        temporaries_removed = stats.temporaries_removed,
        "prune copy"
    );
    Ok(stats)
}

fn plan(repo: &OpenRepository, backend: &dyn Backend) -> Result<PrunePlan> {
    let local_files: HashSet<String> = repo.named_files()?.into_iter().collect();
    let present = backend.list("")?;
    if present.is_empty() {
        return Ok(PrunePlan::default());
    }
    let present_set: HashSet<String> = present.iter().cloned().collect();
    if !present_set.contains(CONFIG_FILE) {
        return Err(Error::user(format!(
            "{} has files but no {CONFIG_FILE}: not a copy made by `ostler copy`; not pruning it",
            backend.describe()
        )));
    }
    check_same_repository(repo.path(), backend, &present_set)?;
    let needed = needed_chunks(repo, &local_files)?;

    let mut plan = PrunePlan::default();
    for path in present {
        if is_temp_path(&path) {
            plan.temporaries.push(path);
        } else if let Some(name) = path.strip_prefix("files/") {
            if !local_files.contains(name) {
                plan.files.push(path);
            }
        } else if let Some(id) = chunk_id(&path) {
            if !needed.contains(id) {
                plan.chunks.push(path);
            }
        }
    }
    Ok(plan)
}

/// The id in `chunks/XX/<id>`, if `path` is a well-formed chunk path.
fn chunk_id(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(CHUNKS_DIR)?.strip_prefix('/')?;
    let (shard, id) = rest.split_once('/')?;
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (id.len() == 64 && hex(id) && shard.len() == 2 && id.starts_with(shard)).then_some(id)
}

/// Every chunk the local repository's named files need: the ids under any
/// `chunks` key in them, and in the listing streams they name.
fn needed_chunks(repo: &OpenRepository, names: &HashSet<String>) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut listings = Vec::new();
    for name in names {
        let bytes = repo.named_file(name)?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => collect(&value, &mut ids, &mut listings),
            Err(e) if name.ends_with(".json") => {
                return Err(Error::failed(format!(
                    "manifest {name} is not readable JSON ({e}); not pruning the copy"
                )))
            }
            // Not JSON and not a manifest: it names no chunks.
            Err(_) => {}
        }
    }
    let mut seen = HashSet::new();
    while let Some(listing) = listings.pop() {
        if !seen.insert(listing.hash.clone()) {
            continue;
        }
        let bytes = repo.read_to_vec(&listing, "a store listing (not pruning the copy)")?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "a store listing is not JSON ({e}); not pruning the copy"
            ))
        })?;
        collect(&value, &mut ids, &mut listings);
    }
    Ok(ids)
}

fn collect(value: &Value, ids: &mut HashSet<String>, listings: &mut Vec<StreamRef>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "chunks" {
                    for chunk in v.as_array().into_iter().flatten() {
                        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
                            ids.insert(id.to_string());
                        }
                    }
                }
                if key == "listing" {
                    if let Ok(stream) = serde_json::from_value::<StreamRef>(v.clone()) {
                        listings.push(stream);
                    }
                }
                collect(v, ids, listings);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, ids, listings)),
        _ => {}
    }
}
