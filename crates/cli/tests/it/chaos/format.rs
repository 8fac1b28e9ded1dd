//! The repository format read independently of ostler's code, from
//! `crates/repo/FORMAT.md` and the manifest types: which chunks a backup needs and
//! whether they are sound. The chaos test judges ostler with this, so that a bug in
//! ostler's own reader cannot make a check pass.

use std::collections::BTreeSet;
use std::path::Path;

use super::lab::Check;

/// Backup `id`'s manifest (`files/backups/<id>.json`) as JSON.
pub fn manifest(repo: &Path, id: &str) -> Check<serde_json::Value> {
    let path = repo.join(format!("files/backups/{id}.json"));
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A chunk's plaintext, checked: magic, format byte, zstd frame, BLAKE3 = name.
pub fn read_chunk(repo: &Path, id: &str) -> Check<Vec<u8>> {
    let path = repo.join("chunks").join(&id[..2]).join(id);
    let bytes = std::fs::read(&path).map_err(|e| format!("chunk {id}: {e}"))?;
    if bytes.len() < 5 || &bytes[..4] != b"OSTC" || bytes[4] != 1 {
        return Err(format!("chunk {id}: bad header"));
    }
    let plain = zstd::decode_all(&bytes[5..]).map_err(|e| format!("chunk {id}: {e}"))?;
    if blake3::hash(&plain).to_hex().as_str() != id {
        return Err(format!("chunk {id}: hash differs"));
    }
    Ok(plain)
}

fn chunk_ids(stream: &serde_json::Value) -> impl Iterator<Item = String> + '_ {
    stream["chunks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["id"].as_str().unwrap().to_string())
}

fn read_stream(repo: &Path, stream: &serde_json::Value) -> Check<Vec<u8>> {
    let mut out = Vec::new();
    for id in chunk_ids(stream) {
        out.extend(read_chunk(repo, &id)?);
    }
    Ok(out)
}

/// Every chunk a manifest needs: its tables' and schema's streams, its store
/// listings, and the streams of the files those listings name.
pub fn needed_chunks(repo: &Path, m: &serde_json::Value) -> Check<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    if let Some(db) = m.get("database").filter(|d| !d.is_null()) {
        for s in db["schema"].as_array().into_iter().flatten() {
            out.extend(chunk_ids(&s["stream"]));
        }
        for t in db["tables"].as_array().into_iter().flatten() {
            out.extend(chunk_ids(&t["base"]));
            for d in t["deltas"].as_array().into_iter().flatten() {
                out.extend(chunk_ids(d));
            }
        }
    }
    for s in m["stores"].as_array().into_iter().flatten() {
        out.extend(chunk_ids(&s["listing"]));
        let listing = read_stream(repo, &s["listing"])?;
        let files: serde_json::Value =
            serde_json::from_slice(&listing).map_err(|e| format!("store listing: {e}"))?;
        for f in files.as_array().into_iter().flatten() {
            out.extend(chunk_ids(&f["stream"]));
        }
    }
    Ok(out)
}

/// Every manifest in the repository has every chunk it needs, sound. Returns how
/// many manifests there are.
pub fn consistent(repo: &Path) -> Check<usize> {
    let dir = repo.join("files/backups");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let m = manifest(repo, id)?;
        for c in needed_chunks(repo, &m).map_err(|e| format!("backup {id}: {e}"))? {
            read_chunk(repo, &c).map_err(|e| format!("backup {id}: {e}"))?;
        }
        n += 1;
    }
    Ok(n)
}
