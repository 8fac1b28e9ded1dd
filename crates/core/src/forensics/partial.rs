//! Partial restore: put exactly the lost rows back into the live database, in one
//! transaction, never overwriting a live row. With `--with-references` it also brings
//! back, from the same backup, the rows of other tables that reference the restored
//! rows by foreign key and are missing live (the join-table rows in AMY's case), and
//! the rows those need in turn (their other parents), parents inserted first. It is
//! planned first ([`plan`]: the rows, the statements and the steps, nothing written),
//! then applied ([`apply`]). Writing into production, or into a database that is
//! production's, asks first (`guard`, judging the plan).

use std::collections::{BTreeMap, HashMap, HashSet};

use ostler_rows::{display_key, Key, Row};
use serde::Serialize;

use super::eval::{canonical, short_name, values, Matched, Matcher};
use super::find::table_of;
use crate::backup::manifest::Manifest;
use crate::backup::repository::{Access, OpenRepository};
use crate::engine::{self, Database, DatabaseKind, SqlValue, TableRows, TableSpec};
use crate::error::{Error, Result};
use crate::guard::{self, Confirm};
use crate::instance::Ostler;
use crate::plan::{Action, Check, Effect, Plan, Procedure, Undo};

#[derive(Debug, Clone, Serialize)]
pub struct PlannedRow {
    pub table: String,
    pub key: String,
    /// Why it is brought back: `matches`, or `references TABLE` / `needed by TABLE`.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartialOutcome {
    pub backup: String,
    pub instance: String,
    pub rows: Vec<PlannedRow>,
    /// Rows that exist live with the same key (never overwritten).
    pub conflicts: Vec<PlannedRow>,
    /// Rows that match but are already live with the same content: nothing to do.
    pub already_live: u64,
    pub statements: Vec<String>,
    /// The steps: a safety backup, then the rows of each table (parents first) in one
    /// transaction. Empty when there is nothing to write.
    pub plan: Plan,
    pub written: bool,
    pub safety_backup: Option<String>,
}

/// A partial restore planned: what it will write (the rows as stored, per table,
/// parents first), and the statements that would write it.
#[derive(Debug, Clone)]
pub struct RowsPlan {
    pub outcome: PartialOutcome,
    table: String,
    writes: Vec<(TableSpec, Vec<Row>)>,
}

/// A table read from a backup: its spec and every row (key, payload, values).
type BackupTable = (TableSpec, Vec<(Key, Vec<u8>, Vec<SqlValue>)>);

struct Selected {
    spec: TableSpec,
    rows: BTreeMap<Key, Chosen>,
}

/// A row chosen to come back: its payload as stored (what is written back), its
/// decoded values (to follow foreign keys), and why.
struct Chosen {
    payload: Vec<u8>,
    values: Vec<SqlValue>,
    reason: String,
}

/// Everything of one table: backup rows by key, with values.
fn backup_table(
    repo: &OpenRepository,
    kind: DatabaseKind,
    m: &Manifest,
    table: &str,
) -> Result<BackupTable> {
    let (t, _) = table_of(m, table)
        .ok_or_else(|| Error::user(format!("backup {} has no table `{table}`", m.id)))?;
    let mut out = Vec::new();
    for r in repo.chain_rows(&m.id, t)?.checked() {
        let r = r?;
        let v = values(kind, &t.spec, &r.payload)?;
        out.push((r.key, r.payload, v));
    }
    Ok((t.spec.clone(), out))
}

/// Live rows of the given tables: key -> payload.
fn live_tables(
    db: &Database,
    names: &[String],
    runner: &crate::exec::Runner,
) -> Result<HashMap<String, HashMap<Key, Vec<u8>>>> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temp dir", e))?;
    let mut snap = engine::open_snapshot(db, tmp.path(), runner)?;
    let mut out = HashMap::new();
    let specs: Vec<TableSpec> = snap.tables().to_vec();
    for name in names {
        let mut rows = HashMap::new();
        if let Some(spec) = specs.iter().find(|s| &s.name == name) {
            snap.rows(spec, &mut |r| {
                rows.insert(r.key, r.payload);
                Ok(())
            })?;
        }
        out.insert(name.clone(), rows);
    }
    snap.finish()?;
    Ok(out)
}

fn col_values(spec: &TableSpec, vals: &[SqlValue], cols: &[String]) -> Option<Vec<String>> {
    cols.iter()
        .map(|c| {
            spec.columns
                .iter()
                .position(|x| x == c)
                .map(|i| canonical(&vals[i]))
        })
        .collect()
}

fn same_table(a: &str, b: &str) -> bool {
    a == b || short_name(a) == short_name(b)
}

/// Plans a partial restore: the rows of `table` matching `predicate` (and with
/// references, the rows tied to them) that the live database lacks. Writes nothing;
/// refuses when live rows with the same keys differ, unless `skip_conflicts`.
pub fn plan(
    ostler: &Ostler,
    m: &Manifest,
    instance: &str,
    table: &str,
    predicate: &str,
    with_references: bool,
    skip_conflicts: bool,
) -> Result<RowsPlan> {
    let inst = ostler.instance(instance)?;
    let db = inst
        .database
        .clone()
        .ok_or_else(|| Error::user(format!("instance `{}` has no database", inst.name)))?;
    let dbe = m
        .database
        .as_ref()
        .ok_or_else(|| Error::user(format!("backup {} has no database", m.id)))?;
    if dbe.kind != db.kind() {
        return Err(Error::user(format!(
            "backup {} is {}, instance `{}` is {}",
            m.id,
            dbe.kind,
            inst.name,
            db.kind()
        )));
    }
    let kind = dbe.kind;
    let repo = OpenRepository::open(ostler, Access::Shared)?;
    let (seed_spec, _) = table_of(m, table).ok_or_else(|| {
        Error::user(format!("backup {} has no table `{table}`", m.id)).with_hint(format!(
            "tables: {}",
            dbe.tables
                .iter()
                .map(|t| t.spec.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let seed_spec = seed_spec.spec.clone();
    // 1. The rows that match, from the backup.
    let mut matcher = Matcher::new(kind, &seed_spec, predicate)?;
    let mut matched = Vec::new();
    for r in repo
        .chain_rows(&m.id, table_of(m, table).expect("checked").0)?
        .checked()
    {
        matched.extend(matcher.push(r?)?);
    }
    matched.extend(matcher.flush()?);
    let all_names: Vec<String> = dbe.tables.iter().map(|t| t.spec.name.clone()).collect();
    let live = live_tables(&db, &all_names, &ostler.runner())?;
    let mut selected: BTreeMap<String, Selected> = BTreeMap::new();
    let add = |selected: &mut BTreeMap<String, Selected>,
               spec: &TableSpec,
               row: Matched,
               reason: String|
     -> bool {
        let s = selected
            .entry(spec.name.clone())
            .or_insert_with(|| Selected {
                spec: spec.clone(),
                rows: BTreeMap::new(),
            });
        if s.rows.contains_key(&row.key) {
            return false;
        }
        let chosen = Chosen {
            payload: row.payload,
            values: row.values,
            reason,
        };
        s.rows.insert(row.key, chosen);
        true
    };
    for row in matched {
        add(&mut selected, &seed_spec, row, "matches".into());
    }
    if with_references {
        // Children: rows of other tables referencing the seed rows, missing live.
        let mut cache: HashMap<String, BackupTable> = HashMap::new();
        let mut load = |name: &str| -> Result<BackupTable> {
            if !cache.contains_key(name) {
                cache.insert(name.to_string(), backup_table(&repo, kind, m, name)?);
            }
            Ok(cache[name].clone())
        };
        let seeds: Vec<Vec<SqlValue>> = selected
            .get(&seed_spec.name)
            .map(|s| s.rows.values().map(|c| c.values.clone()).collect())
            .unwrap_or_default();
        for child in &dbe.tables {
            for fk in child
                .spec
                .foreign_keys
                .iter()
                .filter(|fk| same_table(&fk.ref_table, &seed_spec.name))
            {
                let wanted: HashSet<Vec<String>> = seeds
                    .iter()
                    .filter_map(|v| col_values(&seed_spec, v, &fk.ref_columns))
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let (cspec, rows) = load(&child.spec.name)?;
                for (key, payload, values) in rows {
                    if col_values(&cspec, &values, &fk.columns)
                        .is_some_and(|cv| wanted.contains(&cv))
                        && !live[&cspec.name].contains_key(&key)
                    {
                        add(
                            &mut selected,
                            &cspec,
                            Matched {
                                key,
                                payload,
                                values,
                            },
                            format!("references {}", short_name(&seed_spec.name)),
                        );
                    }
                }
            }
        }
        // Parents the selected rows need that are missing live, in turn.
        loop {
            let mut added = false;
            let snapshot: Vec<(TableSpec, Vec<Vec<SqlValue>>)> = selected
                .values()
                .map(|s| {
                    (
                        s.spec.clone(),
                        s.rows.values().map(|c| c.values.clone()).collect(),
                    )
                })
                .collect();
            for (spec, rows) in snapshot {
                for fk in &spec.foreign_keys {
                    let Some(parent) = dbe
                        .tables
                        .iter()
                        .find(|t| same_table(&t.spec.name, &fk.ref_table))
                    else {
                        continue;
                    };
                    let (pspec, prow) = load(&parent.spec.name)?;
                    let live_vals: HashSet<Vec<String>> = live[&pspec.name]
                        .values()
                        .filter_map(|p| values(kind, &pspec, p).ok())
                        .filter_map(|v| col_values(&pspec, &v, &fk.ref_columns))
                        .collect();
                    for v in &rows {
                        let Some(need) = col_values(&spec, v, &fk.columns) else {
                            continue;
                        };
                        if need.iter().any(|x| x == "\u{0}NULL") || live_vals.contains(&need) {
                            continue;
                        }
                        if let Some((key, payload, values)) = prow.iter().find(|(_, _, pv)| {
                            col_values(&pspec, pv, &fk.ref_columns).as_ref() == Some(&need)
                        }) {
                            if add(
                                &mut selected,
                                &pspec,
                                Matched {
                                    key: key.clone(),
                                    payload: payload.clone(),
                                    values: values.clone(),
                                },
                                format!("needed by {}", short_name(&spec.name)),
                            ) {
                                added = true;
                            }
                        }
                    }
                }
            }
            if !added {
                break;
            }
        }
    }
    // Conflicts: same key live. Identical content is not a conflict, just nothing to do.
    let mut rows = Vec::new();
    let mut conflicts = Vec::new();
    let mut already_live = 0u64;
    let mut to_write: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for s in selected.values() {
        let live_rows = &live[&s.spec.name];
        for (k, c) in &s.rows {
            let planned = PlannedRow {
                table: s.spec.name.clone(),
                key: display_key(k).to_string(),
                reason: c.reason.clone(),
            };
            match live_rows.get(k) {
                Some(p) if values(kind, &s.spec, p).ok().as_ref() == Some(&c.values) => {
                    already_live += 1
                }
                Some(_) => conflicts.push(planned),
                None => {
                    rows.push(planned);
                    to_write
                        .entry(s.spec.name.clone())
                        .or_default()
                        .push(Row::new(k.clone(), c.payload.clone()));
                }
            }
        }
    }
    let order = parents_first(
        &selected
            .values()
            .map(|s| s.spec.clone())
            .collect::<Vec<_>>(),
    );
    // What will be written, parents first, as the statements a person could run.
    let writes: Vec<(TableSpec, Vec<Row>)> = order
        .into_iter()
        .filter_map(|spec| to_write.remove(&spec.name).map(|rows| (spec, rows)))
        .collect();
    let mut statements = vec![kind.engine().begin().to_string()];
    for (spec, rows) in &writes {
        for row in rows {
            let values = engine::decode(kind, &row.payload)?;
            statements.push(kind.engine().insert_statement(spec, &values));
        }
    }
    statements.push("COMMIT;".into());
    let mut steps = Plan::new(Procedure::RestoreRows {
        backup: m.id.clone(),
        instance: inst.name.clone(),
        table: table.to_string(),
    });
    if !rows.is_empty() {
        let name = Some(inst.name.as_str());
        steps.push(
            name,
            Action::TakeSafetyBackup,
            Effect::Reads,
            Check::BackupGood,
            None,
        );
        for (spec, rows) in &writes {
            steps.push(
                name,
                Action::InsertRows {
                    table: spec.name.clone(),
                    rows: rows.len(),
                },
                Effect::WritesDatabase,
                Check::TransactionCommits,
                Some(Undo::RestoreSafetyBackup),
            );
        }
    }
    let outcome = PartialOutcome {
        backup: m.id.clone(),
        instance: inst.name.clone(),
        rows,
        conflicts,
        already_live,
        statements,
        plan: steps,
        written: false,
        safety_backup: None,
    };
    if !outcome.conflicts.is_empty() && !skip_conflicts {
        return Err(Error::user(format!(
            "{} rows exist live with the same key and would be overwritten: {}; nothing written",
            outcome.conflicts.len(),
            outcome
                .conflicts
                .iter()
                .take(10)
                .map(|c| format!("{} {}", c.table, c.key))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("pass --skip-conflicts to restore the other rows and leave these as they are"));
    }
    Ok(RowsPlan {
        outcome,
        table: table.to_string(),
        writes,
    })
}

/// Runs a partial restore's plan: a safety backup, then every row in one transaction.
/// The guard judges the plan first; a plan with nothing to write asks nothing and
/// writes nothing.
pub fn apply(ostler: &Ostler, rp: RowsPlan, confirm: &dyn Confirm) -> Result<PartialOutcome> {
    let RowsPlan {
        mut outcome,
        table,
        writes,
    } = rp;
    if outcome.rows.is_empty() {
        return Ok(outcome);
    }
    guard::check(&ostler.config, &outcome.plan, confirm)?;
    let inst = ostler.instance(&outcome.instance)?;
    let db = inst
        .database
        .clone()
        .ok_or_else(|| Error::user(format!("instance `{}` has no database", inst.name)))?;
    let backup = outcome.backup.clone();
    let safety = ostler.operate_planned(
        &inst,
        "restore-rows",
        std::time::Duration::from_secs(3600),
        Some(&outcome.plan),
        |runner| {
            let safety = crate::backup::capture::backup(
                ostler,
                &inst,
                Some(&format!(
                    "safety copy before restoring rows of {table} from {backup}"
                )),
                runner,
            )?;
            // Through the engine's client, the rows as stored: one transaction.
            let mut tables = writes.into_iter().map(|(spec, rows)| {
                let rows: Box<dyn Iterator<Item = Result<Row>>> =
                    Box::new(rows.into_iter().map(Ok));
                Ok::<TableRows<'_>, Error>((spec, rows))
            });
            engine::insert_rows(&db, &mut tables)?;
            Ok(safety.id)
        },
    )?;
    outcome.written = true;
    outcome.safety_backup = Some(safety);
    Ok(outcome)
}

fn parents_first(specs: &[TableSpec]) -> Vec<TableSpec> {
    let mut out: Vec<TableSpec> = Vec::new();
    let mut left: Vec<TableSpec> = specs.to_vec();
    while !left.is_empty() {
        let before = left.len();
        let mut i = 0;
        while i < left.len() {
            let ready = left[i].foreign_keys.iter().all(|fk| {
                same_table(&fk.ref_table, &left[i].name)
                    || !left.iter().any(|o| same_table(&o.name, &fk.ref_table))
            });
            if ready {
                out.push(left.remove(i));
            } else {
                i += 1;
            }
        }
        if left.len() == before {
            out.append(&mut left); // a cycle: keep the order we have
        }
    }
    out
}
