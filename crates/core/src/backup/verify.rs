//! Verify: re-read and re-hash everything a backup needs. Each chunk is read once
//! however many backups share it; a bad chunk is reported with every backup and table
//! that needs it. Then, for backups whose chunks are sound, each table's chain is
//! replayed and its row count and content hash compared with the catalog, which
//! catches a wrong chain as well as a wrong byte.
//!
//! [`check`] is the whole procedure as `ostler verify` runs it: through a shared
//! repository handle, which holds the shared lock (so a prune cannot remove what is being read, which used to show as
//! damage that was not there), after finishing an interrupted prune, with every good
//! backup of the catalog whose manifest is gone from the repository reported, and with
//! what it found recorded in the state: damaged chunks for backups to avoid (see
//! `damage`), and chunks recorded earlier that now read sound forgotten — the backups
//! that needed them are reported as healed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ostler_repo::StreamRef;
use serde::Serialize;

use super::manifest::Manifest;
use super::repository::OpenRepository;
use super::{catalog, damage, prune};
use crate::error::{Error, Result};
use crate::instance::Ostler;
use crate::report::{Reporter, Unit};
use crate::state::State;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The chunk (or stream) that is bad, when the problem is in one.
    pub chunk: Option<String>,
    pub message: String,
    /// (backup id, what in it: `table entries`, `store uploads`...) affected.
    pub affects: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub backups: Vec<String>,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub tables_checked: u64,
    pub problems: Vec<Problem>,
    /// Chunks recorded as damaged earlier that read back sound now (a later backup
    /// wrote them afresh).
    pub healed_chunks: Vec<String>,
    /// Backups that needed one of those chunks and have no problem now.
    pub healed: Vec<String>,
    /// Backups with a problem.
    pub damaged: Vec<String>,
    /// Backups an interrupted prune had marked, whose removal this verify finished.
    pub finished_prune: Vec<String>,
    /// Every chunk read, with the backups that need it.
    #[serde(skip)]
    pub users: HashMap<String, BTreeSet<String>>,
}

/// Which backups to verify.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every backup: the repository's manifests and the catalog's good backups.
    All,
    /// One backup, by id or unique prefix.
    One(String),
}

/// Verifies the selected backups and records what was found; see the module comment.
pub fn check(ostler: &Ostler, repo: &OpenRepository, which: &Selection) -> Result<VerifyReport> {
    let state = ostler.state()?;
    let finished_prune = prune::finish_interrupted(repo, &state)?;
    let mut bad_copies = Vec::new();
    let manifests = match which {
        Selection::All => {
            let mut found: BTreeMap<String, Manifest> = repo
                .manifests()?
                .into_iter()
                .map(|m| (m.id.clone(), m))
                .collect();
            for b in catalog::list(&state, None)? {
                if b.status != "good" {
                    continue;
                }
                if let Some(fault) = against_catalog(repo, &state, &b.id)? {
                    bad_copies.push((b.id.clone(), fault));
                }
                // What restore reads is the catalog's copy; check the chunks it names.
                if let Some(m) = catalog::manifest(&state, &b.id)? {
                    found.insert(b.id.clone(), m);
                }
            }
            found.into_values().collect()
        }
        Selection::One(prefix) => {
            let id = catalog::resolve(&state, prefix)?;
            let m = catalog::manifest(&state, &id)?
                .ok_or_else(|| Error::user(format!("backup {id} is not a good backup")))?;
            if let Some(fault) = against_catalog(repo, &state, &id)? {
                bad_copies.push((id, fault));
            }
            vec![m]
        }
    };
    let known = damage::recorded(&state)?;
    let mut report = verify(repo, &manifests, ostler.reporter.as_ref())?;
    for (id, fault) in bad_copies {
        let file = repo.path().join("files").join(Manifest::repo_file(&id));
        let message = match fault {
            ManifestFault::Missing => format!(
                "the catalog says backup {id} is good, but its manifest {} is missing from the repository",
                file.display()
            ),
            ManifestFault::Differs => format!(
                "the manifest {} of backup {id} differs from the catalog's copy: the repository's file is damaged (restores read the catalog's copy)",
                file.display()
            ),
        };
        report.problems.push(Problem {
            chunk: None,
            message,
            affects: vec![(id, "manifest".into())],
        });
    }
    let bad: Vec<(String, String)> = report
        .problems
        .iter()
        .filter_map(|p| Some((p.chunk.clone()?, p.message.clone())))
        .collect();
    damage::record(&state, &bad)?;
    let bad_ids: BTreeSet<&str> = bad.iter().map(|(id, _)| id.as_str()).collect();
    report.healed_chunks = known
        .keys()
        .filter(|id| report.users.contains_key(id.as_str()) && !bad_ids.contains(id.as_str()))
        .cloned()
        .collect();
    damage::clear(&state, &report.healed_chunks)?;
    let damaged: BTreeSet<String> = report
        .problems
        .iter()
        .flat_map(|p| p.affects.iter().map(|(b, _)| b.clone()))
        .collect();
    // Healed: backups taken before the damage was found that need a healed chunk (the
    // backup that wrote it afresh, and later ones, were never damaged).
    let started: HashMap<&str, jiff::Timestamp> = manifests
        .iter()
        .map(|m| (m.id.as_str(), m.started_at))
        .collect();
    let healed: BTreeSet<String> = report
        .healed_chunks
        .iter()
        .flat_map(|c| report.users[c].iter().map(move |b| (c, b)))
        .filter(|(c, b)| !damaged.contains(*b) && started.get(b.as_str()) < Some(&known[*c]))
        .map(|(_, b)| b.clone())
        .collect();
    report.healed = healed.into_iter().collect();
    report.damaged = damaged.into_iter().collect();
    report.finished_prune = finished_prune;
    Ok(report)
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every stream a backup needs, with what it is for (store file streams included).
fn needed_streams(
    repo: &OpenRepository,
    m: &Manifest,
    problems: &mut Vec<Problem>,
) -> Vec<(String, StreamRef)> {
    let mut out: Vec<(String, StreamRef)> = m
        .streams()
        .into_iter()
        .map(|(w, s)| (w, s.clone()))
        .collect();
    for s in &m.stores {
        match repo.listing(&s.name, &s.listing) {
            Ok(files) => {
                for f in files {
                    out.push((format!("store {} file {}", s.name, f.path), f.stream));
                }
            }
            Err(e) => problems.push(Problem {
                chunk: None,
                message: crate::error::chain(&e).to_string(),
                affects: vec![(m.id.clone(), format!("store {}", s.name))],
            }),
        }
    }
    out
}

pub fn verify(
    repo: &OpenRepository,
    manifests: &[Manifest],
    reporter: &dyn Reporter,
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        backups: manifests.iter().map(|m| m.id.clone()).collect(),
        ..Default::default()
    };
    // chunk id -> (backup, what) that need it
    let mut users: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    let mut sizes: HashMap<String, u32> = HashMap::new();
    for m in manifests {
        let mut problems = Vec::new();
        for (what, stream) in needed_streams(repo, m, &mut problems) {
            for c in &stream.chunks {
                users
                    .entry(c.id.clone())
                    .or_default()
                    .insert((m.id.clone(), what.clone()));
                sizes.insert(c.id.clone(), c.len);
            }
        }
        report.problems.extend(problems);
    }
    let total: u64 = sizes.values().map(|s| *s as u64).sum();
    let progress = reporter.progress("verify chunks", Unit::Bytes, Some(total));
    let mut ids: Vec<&String> = users.keys().collect();
    ids.sort();
    let mut bad_backups: BTreeSet<String> = BTreeSet::new();
    for id in ids {
        if let Err(e) = repo.verify_chunk(id) {
            let affects: Vec<(String, String)> = users[id].iter().cloned().collect();
            for (b, _) in &affects {
                bad_backups.insert(b.clone());
            }
            report.problems.push(Problem {
                chunk: Some(id.clone()),
                message: crate::error::chain(&e).to_string(),
                affects,
            });
        }
        report.chunks_checked += 1;
        report.bytes_checked += sizes[id] as u64;
        progress.inc(sizes[id] as u64);
    }
    drop(progress);
    report.users = users
        .into_iter()
        .map(|(id, needs)| (id, needs.into_iter().map(|(b, _)| b).collect()))
        .collect();
    for m in manifests {
        if bad_backups.contains(&m.id) {
            continue;
        }
        let Some(db) = &m.database else { continue };
        for t in &db.tables {
            let result = repo.chain_rows(&m.id, t).and_then(|rows| {
                let what = rows.what().to_string();
                ostler_rows::content_hash(rows).map_err(|e| Error::rows(what, e))
            });
            report.tables_checked += 1;
            match result {
                Ok((n, hash)) if n == t.rows && hash == t.hash => {}
                Ok((n, hash)) => report.problems.push(Problem {
                    chunk: None,
                    message: format!(
                        "table {} replays to {n} rows (hash {}), the catalog says {} rows (hash {})",
                        t.spec.name,
                        &hash[..12.min(hash.len())],
                        t.rows,
                        &t.hash[..12.min(t.hash.len())]
                    ),
                    affects: vec![(m.id.clone(), format!("table {}", t.spec.name))],
                }),
                Err(e) => report.problems.push(Problem {
                    chunk: None,
                    message: crate::error::chain(&e).to_string(),
                    affects: vec![(m.id.clone(), format!("table {}", t.spec.name))],
                }),
            }
        }
    }
    Ok(report)
}

/// Groups affected items by backup, for printing.
pub fn by_backup(problem: &Problem) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (b, what) in &problem.affects {
        let what = what.split(" file ").next().unwrap_or(what).to_string();
        let list = out.entry(b.clone()).or_default();
        if !list.contains(&what) {
            list.push(what);
        }
    }
    out
}

/// What is wrong with the repository's manifest of a good backup, against the
/// catalog's copy.
enum ManifestFault {
    Missing,
    /// Not the same JSON (a flipped byte that still parses, a renamed key, a lost
    /// field), or not JSON at all.
    Differs,
}

/// `None` when the repository's manifest is the catalog's, or the catalog holds none.
fn against_catalog(
    repo: &OpenRepository,
    state: &State,
    id: &str,
) -> Result<Option<ManifestFault>> {
    let Some(ours) = catalog::manifest_json(state, id)? else {
        return Ok(None);
    };
    let Some(bytes) = repo.manifest_bytes(id)? else {
        return Ok(Some(ManifestFault::Missing));
    };
    let theirs: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    Ok((theirs.as_ref() != Some(&ours)).then_some(ManifestFault::Differs))
}
