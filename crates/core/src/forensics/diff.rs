//! `ostler diff A B`: per table, the rows added, removed and changed between two
//! backups, keyed by primary key (tables without one compare as multisets, since their
//! key is the row itself plus a duplicate counter). `B` may be `live`: the instance's
//! database now, read through a consistent snapshot. Tables whose content hashes are
//! equal are not read.

use std::cmp::Ordering;

use ostler_rows::{display_key, Row};
use serde::Serialize;

use super::eval::values;
use crate::backup::catalog;
use crate::backup::manifest::Manifest;
use crate::backup::repository::{Access, OpenRepository};
use crate::engine::{self, DatabaseKind, SqlValue, TableSpec};
use crate::error::{Error, Result};
use crate::instance::Ostler;

#[derive(Debug, Clone, Serialize)]
pub struct RowChange {
    /// added, removed, changed
    pub kind: String,
    pub key: String,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableDiff {
    pub table: String,
    pub columns: Vec<String>,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// True when the content hashes were equal and nothing was read.
    pub same_hash: bool,
    pub details: Vec<RowChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub tables: Vec<TableDiff>,
}

fn show_values(v: &[SqlValue]) -> Vec<String> {
    v.iter()
        .map(|x| match x {
            SqlValue::Null => "NULL".into(),
            SqlValue::Int(i) => i.to_string(),
            SqlValue::Real(f) => f.to_string(),
            SqlValue::Text(t) => t.clone(),
            SqlValue::Blob(b) => format!("x'{}'", hex::encode(b)),
        })
        .collect()
}

/// Rows of `spec` from the live database, sorted by key.
fn live_rows(
    ostler: &Ostler,
    instance: &str,
    spec_name: &str,
) -> Result<(Option<TableSpec>, Vec<Row>)> {
    let inst = ostler.instance(instance)?;
    let db = inst
        .database
        .as_ref()
        .ok_or_else(|| Error::user(format!("instance `{instance}` has no database")))?;
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temp dir", e))?;
    let mut snap = engine::open_snapshot(db, tmp.path(), &ostler.runner())?;
    let spec = snap.tables().iter().find(|t| t.name == spec_name).cloned();
    let mut rows = Vec::new();
    if let Some(spec) = &spec {
        snap.rows(spec, &mut |r| {
            rows.push(r);
            Ok(())
        })?;
    }
    snap.finish()?;
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((spec, rows))
}

pub fn diff(
    ostler: &Ostler,
    a: &str,
    b: &str,
    table: Option<&str>,
    limit: usize,
) -> Result<DiffReport> {
    let state = ostler.state()?;
    let load = |id: &str| -> Result<Manifest> {
        let id = catalog::resolve(&state, id)?;
        catalog::manifest(&state, &id)?
            .ok_or_else(|| Error::user(format!("backup {id} is not a good backup")))
    };
    let ma = load(a)?;
    let mb = if b == "live" { None } else { Some(load(b)?) };
    if let Some(mb) = &mb {
        if mb.instance != ma.instance {
            ostler.reporter.warn(
                "",
                &format!(
                    "comparing backups of two instances: {} and {}",
                    ma.instance, mb.instance
                ),
            );
        }
    }
    let repo = OpenRepository::open(ostler, Access::Shared)?;
    let dba = ma
        .database
        .as_ref()
        .ok_or_else(|| Error::user(format!("backup {} has no database", ma.id)))?;
    let kind = dba.kind;
    let mut names: Vec<String> = dba.tables.iter().map(|t| t.spec.name.clone()).collect();
    if let Some(mb) = &mb {
        for t in mb.database.iter().flat_map(|d| d.tables.iter()) {
            if !names.contains(&t.spec.name) {
                names.push(t.spec.name.clone());
            }
        }
    }
    if let Some(t) = table {
        names.retain(|n| n == t || super::eval::short_name(n) == t);
        if names.is_empty() {
            return Err(Error::user(format!("backup {} has no table `{t}`", ma.id)));
        }
    }
    let mut tables = Vec::new();
    for name in names {
        ostler.interrupt.check()?;
        let ta = dba.tables.iter().find(|t| t.spec.name == name);
        let tb = mb
            .as_ref()
            .and_then(|m| m.database.as_ref())
            .and_then(|d| d.tables.iter().find(|t| t.spec.name == name));
        if let (Some(x), Some(y)) = (ta, tb) {
            if x.hash == y.hash {
                tables.push(TableDiff {
                    table: name,
                    columns: x.spec.columns.clone(),
                    added: 0,
                    removed: 0,
                    changed: 0,
                    same_hash: true,
                    details: vec![],
                });
                continue;
            }
        }
        let rows_a: Box<dyn Iterator<Item = Result<Row>>> = match ta {
            Some(t) => Box::new(repo.chain_rows(&ma.id, t)?.checked()),
            None => Box::new(std::iter::empty()),
        };
        let (spec, rows_b): (TableSpec, Box<dyn Iterator<Item = Result<Row>>>) = match &mb {
            Some(mb) => match tb {
                Some(t) => (
                    t.spec.clone(),
                    Box::new(repo.chain_rows(&mb.id, t)?.checked()),
                ),
                None => (
                    ta.expect("in one of them").spec.clone(),
                    Box::new(std::iter::empty()),
                ),
            },
            None => {
                let (spec, rows) = live_rows(ostler, &ma.instance, &name)?;
                let spec = spec.unwrap_or_else(|| ta.expect("from a").spec.clone());
                (spec, Box::new(rows.into_iter().map(Ok)))
            }
        };
        tables.push(walk(kind, &name, &spec, rows_a, rows_b, limit)?);
    }
    Ok(DiffReport {
        a: ma.id.clone(),
        b: mb.map(|m| m.id).unwrap_or_else(|| "live".into()),
        tables,
    })
}

fn walk(
    kind: DatabaseKind,
    name: &str,
    spec: &TableSpec,
    a: Box<dyn Iterator<Item = Result<Row>> + '_>,
    b: Box<dyn Iterator<Item = Result<Row>> + '_>,
    limit: usize,
) -> Result<TableDiff> {
    let mut d = TableDiff {
        table: name.to_string(),
        columns: spec.columns.clone(),
        added: 0,
        removed: 0,
        changed: 0,
        same_hash: false,
        details: vec![],
    };
    let show = |r: &Row| values(kind, spec, &r.payload).map(|v| show_values(&v)).ok();
    let mut a = a.peekable();
    let mut b = b.peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(a.next().expect("peeked").expect_err("peeked an error"))
            }
            (_, Some(Err(_))) => {
                return Err(b.next().expect("peeked").expect_err("peeked an error"))
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok(x)), Some(Ok(y))) => x.key.cmp(&y.key),
        };
        match order {
            Ordering::Less => {
                let r = a.next().expect("peeked")?;
                d.removed += 1;
                if d.details.len() < limit {
                    d.details.push(RowChange {
                        kind: "removed".into(),
                        key: display_key(&r.key).to_string(),
                        before: show(&r),
                        after: None,
                    });
                }
            }
            Ordering::Greater => {
                let r = b.next().expect("peeked")?;
                d.added += 1;
                if d.details.len() < limit {
                    d.details.push(RowChange {
                        kind: "added".into(),
                        key: display_key(&r.key).to_string(),
                        before: None,
                        after: show(&r),
                    });
                }
            }
            Ordering::Equal => {
                let x = a.next().expect("peeked")?;
                let y = b.next().expect("peeked")?;
                if x.payload != y.payload {
                    d.changed += 1;
                    if d.details.len() < limit {
                        d.details.push(RowChange {
                            kind: "changed".into(),
                            key: display_key(&x.key).to_string(),
                            before: show(&x),
                            after: show(&y),
                        });
                    }
                }
            }
        }
    }
    Ok(d)
}
