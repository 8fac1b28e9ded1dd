//! Verify: re-read and re-hash everything a backup needs. Each chunk is read once
//! however many backups share it; a bad chunk is reported with every backup and table
//! that needs it. Then, for backups whose chunks are sound, each table's chain is
//! replayed and its row count and content hash compared with the catalog, which
//! catches a wrong chain as well as a wrong byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ostler_repo::{Repository, StreamRef};
use serde::Serialize;

use super::manifest::Manifest;
use super::repository::{chain_rows, read_listing, rows_err};
use crate::error::Result;
use crate::report::Reporter;

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
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every stream a backup needs, with what it is for (store file streams included).
fn needed_streams(
    repo: &Repository,
    m: &Manifest,
    problems: &mut Vec<Problem>,
) -> Vec<(String, StreamRef)> {
    let mut out: Vec<(String, StreamRef)> = m
        .streams()
        .into_iter()
        .map(|(w, s)| (w, s.clone()))
        .collect();
    for s in &m.stores {
        match read_listing(repo, &s.listing) {
            Ok(files) => {
                for f in files {
                    out.push((format!("store {} file {}", s.name, f.path), f.stream));
                }
            }
            Err(e) => problems.push(Problem {
                chunk: None,
                message: format!("store {} listing: {e}", s.name),
                affects: vec![(m.id.clone(), format!("store {}", s.name))],
            }),
        }
    }
    out
}

pub fn verify(
    repo: &Repository,
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
    let progress = reporter.progress("verify chunks", Some(total));
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
                message: e.to_string(),
                affects,
            });
        }
        report.chunks_checked += 1;
        report.bytes_checked += sizes[id] as u64;
        progress.inc(sizes[id] as u64);
    }
    drop(progress);
    for m in manifests {
        if bad_backups.contains(&m.id) {
            continue;
        }
        let Some(db) = &m.database else { continue };
        for t in &db.tables {
            let result = chain_rows(repo, &t.base, &t.deltas)
                .and_then(|rows| ostler_rows::content_hash(rows).map_err(rows_err));
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
                    message: format!("table {}: {e}", t.spec.name),
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
