//! Taking a backup: snapshot the database, then for every table walk its rows (in key
//! order) against the same table in the instance's previous good backup and store only
//! the row delta; a table seen for the first time, or whose chain has grown long, is
//! stored whole (a new base). Stores are walked file by file, and a file whose size and
//! mtime did not change reuses its stream without being read.
//!
//! Failure leaves nothing that looks good: the catalog row says `running` until the
//! manifest is in the repository, chunks are written atomically, and an interrupted
//! backup's orphan chunks are removed by the next prune.

use std::io::{BufReader, BufWriter, Seek, Write};
use std::path::Path;
use std::sync::mpsc::sync_channel;

use jiff::Timestamp;
use ostler_repo::WriteStats;
use ostler_rows::{diff, ContentHasher, DeltaWriter, Row, RowWriter, RowsError, SortedCheck};

use super::catalog;
use super::damage;
use super::manifest::{
    CaptureWarning, DatabaseEntry, FileEntry, Manifest, SchemaEntry, StoreEntry, TableEntry, FORMAT,
};
use super::repository::OpenRepository;
use crate::engine::{self, SchemaPart, Snapshot, TableSpec};
use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::instance::{Instance, Ostler};
use crate::report::{Progress, Unit};

/// A table's chain is rebased (stored whole again) after this many deltas...
pub const MAX_CHAIN: usize = 96;
/// ...or when its deltas together hold more rows than this fraction of the table.
pub const REBASE_FRACTION: f64 = 0.5;

fn new_id(instance: &str, at: Timestamp) -> String {
    let h = blake3::hash(format!("{instance}/{at}/{}", std::process::id()).as_bytes());
    hex::encode(&h.as_bytes()[..4])
}

/// Takes a backup of `inst`. The caller holds the instance's lock.
/// Its commands (pg_dump) run through `runner`.
pub fn backup(
    ostler: &Ostler,
    inst: &Instance,
    note: Option<&str>,
    runner: &Runner,
) -> Result<Manifest> {
    // Shared for the whole backup: holds off garbage collection while it reuses chunks.
    let repo = OpenRepository::for_backup(ostler)?;
    let state = ostler.state()?;
    let started_at = ostler.clock.now();
    let id = new_id(&inst.name, started_at);
    catalog::begin(&state, &id, &inst.name, started_at, note)?;
    let result = (|| -> Result<Manifest> {
        super::prune::finish_interrupted(&repo, &state)?;
        // Never reuse a chunk known bad: writing its content again heals it.
        let known = damage::known(&state)?;
        repo.mark_damaged(known.iter().map(String::as_str));
        let parent = catalog::latest_good(&state, &inst.name)?;
        let tmp = tempfile::Builder::new()
            .prefix("ostler-backup-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| Error::io_at("create a temp dir in", &std::env::temp_dir(), e))?;
        let mut new_bytes = 0u64;
        let mut logical = 0u64;
        let mut warnings = Vec::new();
        let database = match &inst.database {
            Some(db) => {
                let entry = capture_database(
                    runner,
                    &repo,
                    db,
                    parent.as_ref(),
                    tmp.path(),
                    &mut new_bytes,
                    &mut warnings,
                )?;
                logical += entry.tables.iter().map(|t| t.logical_bytes).sum::<u64>();
                logical += entry.schema.iter().map(|s| s.stream.size).sum::<u64>();
                Some(entry)
            }
            None => None,
        };
        let mut stores = Vec::new();
        for (name, path, cache) in inst.stores() {
            if cache {
                continue;
            }
            let prev = parent.as_ref().and_then(|p| {
                p.stores
                    .iter()
                    .find(|s| s.name == name)
                    .map(|s| (p.id.as_str(), s))
            });
            let entry = capture_store(
                ostler,
                &repo,
                &name,
                &path,
                prev,
                &mut new_bytes,
                &mut warnings,
            )?;
            logical += entry.bytes;
            stores.push(entry);
        }
        let rewritten = repo.rewritten_chunks();
        if !rewritten.is_empty() {
            warnings.push(CaptureWarning::DamagedChunksRewritten {
                chunks: rewritten.clone(),
            });
        }
        let mut manifest = Manifest {
            format: FORMAT,
            id: id.clone(),
            service: ostler.config.service.name.clone(),
            instance: inst.name.clone(),
            started_at,
            finished_at: ostler.clock.now(),
            note: note.map(str::to_string),
            parent: parent.as_ref().map(|p| p.id.clone()),
            database,
            stores,
            logical_bytes: logical,
            new_bytes,
            warnings,
        };
        let found: Vec<(String, String)> = repo
            .damaged_chunks()
            .into_iter()
            .filter(|c| !known.contains(c))
            .map(|c| (c, format!("unreadable when backup {id} read its parent")))
            .collect();
        damage::record(&state, &found)?;
        let stale = refuse_damage(&repo, &manifest)?;
        damage::healed_by(&state, &id, rewritten.iter().chain(&stale))?;
        manifest.finished_at = ostler.clock.now();
        repo.put_manifest(&manifest)?;
        catalog::record_good(&state, &manifest)?;
        Ok(manifest)
    })();
    if let Err(e) = &result {
        let _ = catalog::fail(&state, &id, &crate::error::chain(e).to_string());
    }
    result
}

fn capture_database(
    runner: &Runner,
    repo: &OpenRepository,
    db: &crate::engine::Database,
    parent: Option<&Manifest>,
    tmp: &Path,
    new_bytes: &mut u64,
    warnings: &mut Vec<CaptureWarning>,
) -> Result<DatabaseEntry> {
    let mut snap = engine::open_snapshot(db, tmp, runner)?;
    let mut schema = Vec::new();
    for part in snap.schema() {
        let what = format!("the schema part {}", part.name);
        let (stream, stats) = repo.write_bytes(&part.bytes, &what)?;
        *new_bytes += stats.new_bytes;
        schema.push(SchemaEntry {
            name: part.name.clone(),
            stream,
        });
    }
    let prev_db = parent
        .and_then(|p| p.database.as_ref().map(|d| (p.id.as_str(), d)))
        .filter(|(_, d)| d.kind == db.kind());
    let specs: Vec<TableSpec> = snap.tables().to_vec();
    let progress = runner
        .reporter()
        .progress("backup", Unit::Tables, Some(specs.len() as u64));
    let mut tables = Vec::new();
    for spec in &specs {
        runner.interrupt().check()?;
        progress.message(&spec.name);
        let prev =
            prev_db.and_then(|(id, d)| d.tables.iter().find(|t| t.spec == *spec).map(|t| (id, t)));
        let rows = runner.reporter().progress(
            &format!("backup {}", spec.name),
            Unit::Rows,
            prev.map(|(_, t)| t.rows),
        );
        let mut counted = Counted {
            snap: snap.as_mut(),
            rows: rows.as_ref(),
        };
        let entry = capture_table(repo, &mut counted, spec, prev, tmp, new_bytes, warnings)?;
        drop(rows);
        tables.push(entry);
        progress.inc(1);
    }
    snap.finish()?;
    Ok(DatabaseEntry {
        kind: db.kind(),
        schema,
        tables,
    })
}

/// The snapshot as one table's capture reads it: each row read counted on `rows` (a
/// table read again, to sort it, is counted again from zero). Only borrowed: the
/// owner of the snapshot finishes it.
struct Counted<'a> {
    snap: &'a mut dyn Snapshot,
    rows: &'a dyn Progress,
}

impl Snapshot for Counted<'_> {
    fn schema(&self) -> &[SchemaPart] {
        self.snap.schema()
    }
    fn tables(&self) -> &[TableSpec] {
        self.snap.tables()
    }
    fn rows(&mut self, table: &TableSpec, sink: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
        let mut n = 0;
        self.rows.set(0);
        let rows = self.rows;
        self.snap.rows(table, &mut |row| {
            n += 1;
            rows.set(n);
            sink(row)
        })
    }
    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Runs `f` over the table's rows as a pulled iterator while the snapshot pushes them
/// from a helper thread (the engines push; diff pulls).
fn with_rows<T>(
    snap: &mut dyn Snapshot,
    spec: &TableSpec,
    f: impl FnOnce(&mut dyn Iterator<Item = ostler_rows::Result<Row>>) -> Result<T>,
) -> Result<T> {
    let (tx, rx) = sync_channel::<std::result::Result<Vec<Row>, String>>(8);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut batch = Vec::with_capacity(512);
            let r = snap.rows(spec, &mut |row| {
                batch.push(row);
                if batch.len() == 512 {
                    tx.send(Ok(std::mem::take(&mut batch)))
                        .map_err(|_| Error::failed("row consumer stopped"))?;
                }
                Ok(())
            });
            match r {
                Ok(()) => {
                    let _ = tx.send(Ok(batch));
                    Ok(())
                }
                Err(e) => {
                    let _ = tx.send(Err(crate::error::chain(&e).to_string()));
                    Err(e)
                }
            }
        });
        let mut iter = rx
            .into_iter()
            .flat_map(|batch| -> Vec<ostler_rows::Result<Row>> {
                match batch {
                    Ok(rows) => rows.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(RowsError::from_source(e))],
                }
            });
        let result = f(&mut iter);
        drop(iter);
        let produced = producer
            .join()
            .map_err(|_| Error::failed("row reader thread panicked"))?;
        match (result, produced) {
            (Ok(v), Ok(())) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    })
}

fn is_order_error(e: &RowsError) -> bool {
    matches!(
        e,
        RowsError::OutOfOrder { .. } | RowsError::DuplicateKey { .. }
    )
}

fn capture_table(
    repo: &OpenRepository,
    snap: &mut dyn Snapshot,
    spec: &TableSpec,
    prev: Option<(&str, &TableEntry)>,
    tmp: &Path,
    new_bytes: &mut u64,
    warnings: &mut Vec<CaptureWarning>,
) -> Result<TableEntry> {
    if let Some((parent, prev)) = prev.filter(|(_, p)| p.deltas.len() < MAX_CHAIN) {
        let attempt = match delta_against(repo, snap, spec, (parent, prev), tmp, false) {
            Err(TableError::Order) => delta_against(repo, snap, spec, (parent, prev), tmp, true),
            other => other,
        };
        match attempt {
            Ok(r) => return finish_delta(repo, spec, prev, r, new_bytes, snap, tmp),
            // The previous backup's chain could not be read (a damaged chunk...): a
            // bad old backup must never stop new ones, so store this table whole.
            Err(e) => {
                let error = crate::error::chain(&e.into_error()).to_string();
                tracing::warn!(table = %spec.name, %error, "storing the table whole");
                let chain = std::iter::once(&prev.base).chain(&prev.deltas);
                mark_bad(repo, damage::find_bad(repo, chain));
                warnings.push(CaptureWarning::TableChainUnreadable {
                    table: spec.name.clone(),
                    parent: parent.to_string(),
                    error,
                });
            }
        }
    }
    full_table(repo, snap, spec, tmp, new_bytes)
}

enum TableError {
    Order,
    Other(Error),
}

impl TableError {
    fn into_error(self) -> Error {
        match self {
            TableError::Order => Error::failed("rows out of order even after sorting"),
            TableError::Other(e) => e,
        }
    }
}

struct DeltaResult {
    stats: ostler_rows::DiffStats,
    file: std::fs::File,
    logical: u64,
}

fn delta_against(
    repo: &OpenRepository,
    snap: &mut dyn Snapshot,
    spec: &TableSpec,
    (parent, prev): (&str, &TableEntry),
    tmp: &Path,
    sort: bool,
) -> std::result::Result<DeltaResult, TableError> {
    let file = tempfile::tempfile_in(tmp)
        .map_err(|e| TableError::Other(Error::io("creating a temp file", e)))?;
    let mut writer = DeltaWriter::new(BufWriter::new(file));
    let mut logical = 0u64;
    let result = with_rows(snap, spec, |rows| {
        let counted = rows.inspect(|r| {
            if let Ok(r) = r {
                logical += r.payload.len() as u64;
            }
        });
        let previous = repo.chain_rows(parent, prev)?;
        let stats = if sort {
            let sorted = ostler_rows::try_sort_rows(counted, tmp, 64 << 20).map_err(|e| {
                Error::rows(format!("sorting the rows of table `{}`", spec.name), e)
            })?;
            diff(previous, sorted, &mut writer)
        } else {
            diff(previous, SortedCheck::new(counted), &mut writer)
        };
        match stats {
            Ok(s) => Ok(Ok(s)),
            Err(e) if is_order_error(&e) => Ok(Err(())),
            Err(e) => Err(Error::rows(
                format!(
                    "comparing table `{}` with its chain in backup {parent}",
                    spec.name
                ),
                e,
            )),
        }
    })
    .map_err(TableError::Other)?;
    let stats = result.map_err(|_| TableError::Order)?;
    let mut file = writer
        .finish()
        .map_err(|e| {
            TableError::Other(Error::rows(
                format!("writing the delta of table `{}`", spec.name),
                e,
            ))
        })?
        .into_inner()
        .map_err(|e| TableError::Other(Error::io("flushing a delta", e.into_error())))?;
    file.rewind()
        .map_err(|e| TableError::Other(Error::io("rewinding a delta", e)))?;
    Ok(DeltaResult {
        stats,
        file,
        logical,
    })
}

fn finish_delta(
    repo: &OpenRepository,
    spec: &TableSpec,
    prev: &TableEntry,
    r: DeltaResult,
    new_bytes: &mut u64,
    snap: &mut dyn Snapshot,
    tmp: &Path,
) -> Result<TableEntry> {
    let change = Some([r.stats.added, r.stats.changed, r.stats.removed]);
    if r.stats.is_unchanged() {
        return Ok(TableEntry {
            spec: spec.clone(),
            rows: r.stats.rows,
            hash: r.stats.content_hash,
            logical_bytes: r.logical,
            base: prev.base.clone(),
            deltas: prev.deltas.clone(),
            change,
        });
    }
    // Rows carried by the chain so far plus this delta: past the threshold, a new base
    // is cheaper to keep than a long chain to replay.
    let chain_bytes: u64 = prev.deltas.iter().map(|d| d.size).sum::<u64>();
    if (chain_bytes + r.file.metadata().map(|m| m.len()).unwrap_or(0)) as f64
        > REBASE_FRACTION * prev.base.size.max(1) as f64
        && r.stats.rows > 0
    {
        let mut e = full_table(repo, snap, spec, tmp, new_bytes)?;
        e.change = change;
        return Ok(e);
    }
    let (stream, stats) = repo.write_stream(
        BufReader::new(r.file),
        &format!("the delta of table `{}`", spec.name),
    )?;
    *new_bytes += stats.new_bytes;
    let mut deltas = prev.deltas.clone();
    deltas.push(stream);
    Ok(TableEntry {
        spec: spec.clone(),
        rows: r.stats.rows,
        hash: r.stats.content_hash,
        logical_bytes: r.logical,
        base: prev.base.clone(),
        deltas,
        change,
    })
}

/// Stores the table whole: rows sorted by key, written through a pipe into the
/// repository while they are read.
fn full_table(
    repo: &OpenRepository,
    snap: &mut dyn Snapshot,
    spec: &TableSpec,
    tmp: &Path,
    new_bytes: &mut u64,
) -> Result<TableEntry> {
    match full_table_once(repo, snap, spec, tmp, false) {
        Ok((e, stats)) => {
            *new_bytes += stats.new_bytes;
            Ok(e)
        }
        Err(TableError::Order) => {
            let (e, stats) =
                full_table_once(repo, snap, spec, tmp, true).map_err(TableError::into_error)?;
            *new_bytes += stats.new_bytes;
            Ok(e)
        }
        Err(e) => Err(e.into_error()),
    }
}

fn full_table_once(
    repo: &OpenRepository,
    snap: &mut dyn Snapshot,
    spec: &TableSpec,
    tmp: &Path,
    sort: bool,
) -> std::result::Result<(TableEntry, WriteStats), TableError> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| TableError::Other(Error::io("creating a pipe", e)))?;
    std::thread::scope(|scope| {
        let what = format!("the rows of table `{}`", spec.name);
        let store = scope
            .spawn(move || repo.write_stream(BufReader::with_capacity(1 << 20, reader), &what));
        let result = with_rows(snap, spec, |rows| {
            let mut w = RowWriter::new(BufWriter::with_capacity(1 << 20, writer));
            let mut hasher = ContentHasher::new();
            let mut logical = 0u64;
            let mut write_all = |it: &mut dyn Iterator<Item = ostler_rows::Result<Row>>| -> std::result::Result<(), RowsError> {
                for row in it {
                    let row = row?;
                    hasher.add_row(&row);
                    logical += row.payload.len() as u64;
                    w.write_row(&row)?;
                }
                Ok(())
            };
            let r = if sort {
                match ostler_rows::try_sort_rows(rows, tmp, 64 << 20) {
                    Ok(mut sorted) => write_all(&mut sorted),
                    Err(e) => Err(e),
                }
            } else {
                write_all(&mut SortedCheck::new(rows))
            };
            match r {
                Ok(()) => {
                    let inner = w.finish().map_err(|e| {
                        Error::rows(format!("writing the rows of table `{}`", spec.name), e)
                    })?;
                    let mut inner = inner;
                    inner.flush().map_err(|e| Error::io("writing a table", e))?;
                    drop(inner);
                    let (n, hash) = hasher.finish();
                    Ok(Ok((n, hash, logical)))
                }
                Err(e) if is_order_error(&e) => Ok(Err(())),
                Err(e) => Err(Error::rows(
                    format!("storing the rows of table `{}`", spec.name),
                    e,
                )),
            }
        });
        // The writer is dropped by now (on every path), so the store thread sees EOF.
        let stored = store
            .join()
            .map_err(|_| TableError::Other(Error::failed("store thread panicked")))?;
        // When the store side failed (a full repository disk), the row side only saw
        // its pipe close (EPIPE): the store's error is the cause, so it wins.
        let (stream, stats) = stored.map_err(TableError::Other)?;
        let (rows, hash, logical) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(())) => return Err(TableError::Order),
            Err(e) => return Err(TableError::Other(e)),
        };
        Ok((
            TableEntry {
                spec: spec.clone(),
                rows,
                hash,
                logical_bytes: logical,
                base: stream,
                deltas: vec![],
                change: None,
            },
            stats,
        ))
    })
}

fn capture_store(
    ostler: &Ostler,
    repo: &OpenRepository,
    name: &str,
    root: &Path,
    prev: Option<(&str, &StoreEntry)>,
    new_bytes: &mut u64,
    warnings: &mut Vec<CaptureWarning>,
) -> Result<StoreEntry> {
    use std::os::unix::fs::MetadataExt;
    // An unreadable parent listing (a damaged chunk...) is treated as absent: every
    // file is read and stored afresh, as tables are when their chain is unreadable.
    let previous: std::collections::HashMap<String, FileEntry> = match prev {
        Some((parent, p)) => match repo.listing(name, &p.listing) {
            Ok(files) => files.into_iter().map(|f| (f.path.clone(), f)).collect(),
            Err(e) => {
                let error = crate::error::chain(&e).to_string();
                tracing::warn!(store = name, %error, "storing every file afresh");
                mark_bad(repo, damage::find_bad(repo, [&p.listing]));
                warnings.push(CaptureWarning::StoreListingUnreadable {
                    store: name.to_string(),
                    parent: parent.to_string(),
                    error,
                });
                Default::default()
            }
        },
        None => Default::default(),
    };
    let mut files = Vec::new();
    let mut total = 0u64;
    if root.exists() {
        let progress = ostler
            .reporter
            .progress(&format!("backup store {name}"), Unit::Bytes, None);
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.map_err(|e| {
                Error::failed(format!("store {name}: reading {}: {e}", root.display()))
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .replace('\\', "/");
            let meta = entry
                .metadata()
                .map_err(|e| Error::failed(format!("store {name}: {rel}: {e}")))?;
            let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
            // An unchanged file reuses its stream unless a chunk of it is known bad:
            // then it is read again, which writes that chunk afresh.
            let reuse = previous.get(&rel).filter(|p| {
                p.size == meta.len()
                    && p.mtime_ns == mtime_ns
                    && !p
                        .stream
                        .chunks
                        .iter()
                        .any(|c| repo.is_marked_damaged(&c.id))
            });
            let stream = match reuse {
                Some(p) => p.stream.clone(),
                None => {
                    let f = std::fs::File::open(entry.path())
                        .map_err(|e| Error::io(format!("store {name}: opening {rel}"), e))?;
                    let (stream, stats) =
                        repo.write_stream(BufReader::new(f), &format!("store {name} file {rel}"))?;
                    *new_bytes += stats.new_bytes;
                    stream
                }
            };
            total += stream.size;
            progress.message(&format!("{} files", files.len() + 1));
            progress.inc(stream.size);
            files.push(FileEntry {
                path: rel,
                size: stream.size,
                mode: meta.mode(),
                mtime_ns,
                stream,
            });
        }
    }
    let listing = serde_json::to_vec(&files).map_err(|e| Error::Other(e.into()))?;
    let (listing, stats) = repo.write_bytes(&listing, &format!("the listing of store {name}"))?;
    *new_bytes += stats.new_bytes;
    Ok(StoreEntry {
        name: name.to_string(),
        listing,
        files: files.len() as u64,
        bytes: total,
    })
}

fn mark_bad(repo: &OpenRepository, bad: Vec<(String, String)>) {
    repo.mark_damaged(bad.iter().map(|(id, _)| id.as_str()));
}

/// The last check before a backup may be good: it must not reference a chunk known
/// bad. A marked chunk it still names (one it reused rather than wrote) is read again;
/// sound, it was marked wrongly or healed by another writer and is returned, to be
/// forgotten; still bad, the backup fails.
fn refuse_damage(repo: &OpenRepository, m: &Manifest) -> Result<Vec<String>> {
    let marked: std::collections::HashSet<String> = repo.damaged_chunks().into_iter().collect();
    if marked.is_empty() {
        return Ok(vec![]);
    }
    let mut named: Vec<(String, String)> = m
        .streams()
        .into_iter()
        .flat_map(|(what, s)| s.chunks.iter().map(move |c| (c.id.clone(), what.clone())))
        .collect();
    for s in &m.stores {
        for f in repo.listing(&s.name, &s.listing)? {
            let what = format!("store {} file {}", s.name, f.path);
            named.extend(f.stream.chunks.iter().map(|c| (c.id.clone(), what.clone())));
        }
    }
    let mut stale = Vec::new();
    for (id, what) in named {
        if !marked.contains(&id) || stale.contains(&id) {
            continue;
        }
        match repo.verify_chunk(&id) {
            Ok(()) => stale.push(id),
            Err(e) => {
                return Err(Error::failed(format!(
                    "backup {} would reference the damaged chunk {id} ({what}): {}",
                    m.id,
                    crate::error::chain(&e)
                ))
                .with_hint("`ostler verify --all` shows what else needs it"))
            }
        }
    }
    Ok(stale)
}
