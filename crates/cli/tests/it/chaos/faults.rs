//! The faults, one function each: set the instance up with backups, inject the fault,
//! then check what issue 8 says must hold — the instance's data is what it was or what
//! was restored (row for row, file for file), `verify` reports damage if and only if a
//! chunk some good backup needs was damaged, and the next backup and restore succeed.
//! Each returns Err with the first thing that did not hold; `note` collects what the
//! trial did, for the record and for replaying it.

use rand::seq::SliceRandom;
use rand::Rng;

use super::format::{self, manifest};
use super::lab::{last_lines, walk, Check, Lab, Tmpfs, Truth};

/// What a trial did, and the checks that failed without stopping it.
#[derive(Debug, Default)]
pub struct Log {
    pub notes: Vec<String>,
    pub failures: Vec<String>,
}

impl Log {
    fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// A check whose failure leaves the trial able to go on: recorded, not returned,
    /// so one trial can find more than one defect.
    fn soft(&mut self, check: Check) {
        if let Err(e) = check {
            self.failures.push(e);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    KillBackup,
    KillRestore,
    KillPrune,
    KillCopy,
    DamageChunk,
    DamageManifest,
    DamageConfig,
    FullRepoDisk,
    FullRestoreDisk,
    FullStateDisk,
    LoseDatabase,
}

pub const ALL: [Kind; 11] = [
    Kind::KillBackup,
    Kind::KillRestore,
    Kind::KillPrune,
    Kind::KillCopy,
    Kind::DamageChunk,
    Kind::DamageManifest,
    Kind::DamageConfig,
    Kind::FullRepoDisk,
    Kind::FullRestoreDisk,
    Kind::FullStateDisk,
    Kind::LoseDatabase,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillBackup => "kill-backup",
            Kind::KillRestore => "kill-restore",
            Kind::KillPrune => "kill-prune",
            Kind::KillCopy => "kill-copy",
            Kind::DamageChunk => "damage-chunk",
            Kind::DamageManifest => "damage-manifest",
            Kind::DamageConfig => "damage-config",
            Kind::FullRepoDisk => "full-repo-disk",
            Kind::FullRestoreDisk => "full-restore-disk",
            Kind::FullStateDisk => "full-state-disk",
            Kind::LoseDatabase => "lose-database",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == s)
    }

    /// The config a trial of this kind needs beyond the plain service.
    pub fn edit_config(self, rng_keep_last: u32) -> impl FnOnce(String) -> String {
        move |text: String| {
            match self {
            Kind::KillPrune => format!("{text}\n[retention]\nkeep_last = {rng_keep_last}\n"),
            Kind::KillCopy => text.replace(
                "[repository]\npath = \"repo\"\n",
                "[repository]\npath = \"repo\"\n\n[[repository.copies]]\nname = \"offsite\"\nkind = \"dir\"\npath = \"offsite\"\n",
            ),
            // The store one level down, so that its tmpfs holds its restore siblings
            // too (a store that is itself a mount point cannot be renamed: finding F7).
            Kind::FullRestoreDisk => text.replace(
                "name = \"uploads\"\npath = \"uploads\"",
                "name = \"uploads\"\npath = \"vol/uploads\"",
            ),
            _ => text,
        }
        }
    }

    pub fn run(self, lab: &mut Lab, log: &mut Log) -> Check {
        match self {
            Kind::KillBackup => kill_backup(lab, log),
            Kind::KillRestore => kill_restore(lab, log),
            Kind::KillPrune => kill_prune(lab, log),
            Kind::KillCopy => kill_copy(lab, log),
            Kind::DamageChunk => damage_chunk(lab, log),
            Kind::DamageManifest => damage_manifest(lab, log),
            Kind::DamageConfig => damage_config(lab, log),
            Kind::FullRepoDisk => full_repo_disk(lab, log),
            Kind::FullRestoreDisk => full_restore_disk(lab, log),
            Kind::FullStateDisk => full_state_disk(lab, log),
            Kind::LoseDatabase => lose_database(lab, log),
        }
    }
}

/// `n` backups with a generation of change before each but the first.
fn backups(lab: &mut Lab, n: usize) -> Check<Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..n {
        if i > 0 {
            lab.mutate();
        }
        ids.push(lab.backup()?);
    }
    Ok(ids)
}

fn kill_note(what: &str, k: &super::lab::Kill, scale_secs: f64) -> String {
    if k.landed {
        format!(
            "SIGKILL {what} after {:.3}s (a plain backup took {scale_secs:.3}s)",
            k.after.as_secs_f64()
        )
    } else {
        format!(
            "{what} finished in {:.3}s before the kill",
            k.after.as_secs_f64()
        )
    }
}

/// A killed run that finished first must have succeeded.
fn finished_ok(what: &str, k: &super::lab::Kill) -> Check {
    match &k.output {
        Some(out) if !out.status.success() => Err(format!(
            "{what} (not killed) failed ({}): {}",
            out.status,
            last_lines(&out.stderr)
        )),
        _ => Ok(()),
    }
}

fn verify_ok(lab: &Lab, when: &str) -> Check {
    let (ok, out) = lab.verify_all();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "verify reports damage that is not there {when}: {}",
            last_lines(out.as_bytes())
        ))
    }
}

/// Good backups the test has no truth for got one: the killed run finished.
fn adopt_new_good(lab: &mut Lab, truth: &Truth) -> Check<Vec<String>> {
    let mut adopted = Vec::new();
    for id in lab.good_backups()? {
        if !lab.truths.contains_key(&id) {
            lab.truths.insert(id.clone(), truth.clone());
            adopted.push(id);
        }
    }
    Ok(adopted)
}

fn kill_backup(lab: &mut Lab, log: &mut Log) -> Check {
    let n = lab.rng.gen_range(1..3);
    let first = backups(lab, n)?;
    lab.mutate();
    let now = lab.truth();
    let delay = lab.moment(1.3);
    let k = lab.kill_after(&["backup", "gb-1"], delay);
    log.note(kill_note("backup", &k, lab.backup_secs));
    finished_ok("backup", &k)?;
    log.note(lab.recover()?);
    lab.expect(&now, "after the killed backup")?;
    let adopted = adopt_new_good(lab, &now)?;
    if k.landed && !adopted.is_empty() {
        log.note(format!("the killed backup {} is good", adopted[0]));
    }
    log.soft(verify_ok(lab, "after a killed backup"));
    let next = lab.backup()?;
    let old = first.choose(&mut lab.rng).unwrap().clone();
    lab.restore_and_check(&old)?;
    lab.restore_and_check(&next)
}

fn kill_restore(lab: &mut Lab, log: &mut Log) -> Check {
    // Big files in the backup that are gone live, so the store phase is long enough
    // for kills to land in it too.
    let extra = lab.rng.gen_range(1..8) * MB as usize;
    big_files(lab, "big", extra);
    let ids = backups(lab, 2)?;
    remove_big_files(lab);
    lab.mutate();
    let before = lab.truth();
    let from = ids[0].clone();
    let restored = lab.truths[&from].clone();
    if lab.rng.gen_bool(0.3) {
        lab.ok(&["start", "gb-1"])?;
        log.note("instance running");
    }
    let delay = lab.moment(3.0);
    let k = lab.kill_after(
        &[
            "restore",
            "gb-1",
            "--from",
            &from,
            "--yes-really-production",
        ],
        delay,
    );
    log.note(kill_note(
        &format!("restore from {from}"),
        &k,
        lab.backup_secs,
    ));
    finished_ok("restore", &k)?;
    log.note(lab.recover()?);
    let live = lab.truth();
    if live == before {
        log.note("left as before");
    } else if live == restored {
        log.note("left restored");
    } else {
        let db = if live.rows_equal(&before) {
            "the database as before"
        } else if live.rows_equal(&restored) {
            "the database restored"
        } else {
            "a database that is neither"
        };
        log.soft(Err(format!(
            "a killed restore left a mix: {db}; against before: {}; against the backup: {}",
            live.differences(&before),
            live.differences(&restored)
        )));
    }
    if lab.has_recover() {
        log.soft(lab.no_restore_temporaries());
    }
    log.soft(verify_ok(lab, "after a killed restore"));
    lab.restore_and_check(&ids[1])?;
    let next = lab.backup()?;
    lab.restore_and_check(&next)
}

/// Every backup the catalog calls good is whole in the repository.
fn good_backups_whole(lab: &Lab) -> Check {
    for id in lab.good_backups()? {
        let whole = manifest(&lab.repo(), &id).and_then(|m| {
            for c in format::needed_chunks(&lab.repo(), &m)? {
                format::read_chunk(&lab.repo(), &c)?;
            }
            Ok(())
        });
        whole.map_err(|e| format!("the catalog says {id} is good, but: {e}"))?;
    }
    Ok(())
}

fn kill_prune(lab: &mut Lab, log: &mut Log) -> Check {
    let n = lab.rng.gen_range(3..6);
    backups(lab, n)?;
    let now = lab.truth();
    let delay = lab.moment(0.4);
    let k = lab.kill_after(&["prune"], delay);
    log.note(format!(
        "{n} backups; {}",
        kill_note("prune", &k, lab.backup_secs)
    ));
    finished_ok("prune", &k)?;
    log.note(lab.recover()?);
    log.soft(good_backups_whole(lab));
    log.soft(verify_ok(lab, "after a killed prune"));
    lab.expect(&now, "after a killed prune")?;
    lab.ok(&["prune"])?;
    good_backups_whole(lab)?;
    log.soft(verify_ok(lab, "after the next prune"));
    let good = lab.good_backups()?;
    let oldest = good
        .first()
        .ok_or("no good backup left after prune")?
        .clone();
    lab.restore_and_check(&oldest)?;
    let next = lab.backup()?;
    lab.restore_and_check(&next)
}

fn kill_copy(lab: &mut Lab, log: &mut Log) -> Check {
    lab.backup()?;
    if lab.rng.gen_bool(0.5) {
        lab.ok(&["copy"])?;
        log.note("one whole copy first");
    }
    lab.mutate();
    lab.backup()?;
    lab.mutate();
    lab.backup()?;
    let offsite = lab.path().join("offsite");
    let delay = lab.moment(0.4);
    let k = lab.kill_after(&["copy"], delay);
    log.note(kill_note("copy", &k, lab.backup_secs));
    finished_ok("copy", &k)?;
    log.note(lab.recover()?);
    match format::consistent(&offsite) {
        Ok(n) => log.note(format!("{n} backups at the copy after the kill")),
        Err(e) => log.soft(Err(format!(
            "the interrupted copy holds a broken backup: {e}"
        ))),
    }
    lab.ok(&["copy"])?;
    let n = format::consistent(&offsite)
        .map_err(|e| format!("after the next copy, the copy holds a broken backup: {e}"))?;
    let good = lab.good_backups()?;
    if n != good.len() {
        return Err(format!(
            "after the next copy the copy holds {n} backups, the repository {}",
            good.len()
        ));
    }
    let listing = lab.ok(&["backups", "--where", "offsite"])?;
    for id in &good {
        let line = listing.lines().find(|l| l.starts_with(id.as_str()));
        if !line.is_some_and(|l| l.contains(" yes")) {
            return Err(format!(
                "`backups --where offsite` does not show {id} at the copy: {listing}"
            ));
        }
    }
    log.soft(verify_ok(lab, "after a killed copy"));
    let next = lab.backup()?;
    lab.restore_and_check(&next)
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

/// Damages a file one of three ways; returns what was done.
fn damage(lab: &mut Lab, path: &std::path::Path) -> String {
    let mode = *[Damage::Flip, Damage::Truncate, Damage::Delete]
        .choose(&mut lab.rng)
        .unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    match mode {
        Damage::Flip => {
            let at = lab.rng.gen_range(0..bytes.len());
            let bit = 1u8 << lab.rng.gen_range(0..8);
            bytes[at] ^= bit;
            std::fs::write(path, &bytes).unwrap();
            format!("flipped bit {bit:#04x} at byte {at} of {}", bytes.len())
        }
        Damage::Truncate => {
            let to = lab.rng.gen_range(0..bytes.len());
            std::fs::write(path, &bytes[..to]).unwrap();
            format!("truncated from {} to {to} bytes", bytes.len())
        }
        Damage::Delete => {
            std::fs::remove_file(path).unwrap();
            "deleted".into()
        }
    }
}

/// Restores damaged backup `b`: it must give `b`'s truth or fail changing nothing.
/// Then puts the instance back as it was (`before`, the truth of backup `back`).
fn restore_damaged(lab: &mut Lab, log: &mut Log, b: &str, before: &Truth, back: &str) -> Check {
    let out = lab.run(&["restore", "gb-1", "--from", b, "--yes-really-production"]);
    if out.status.success() {
        lab.expect(&lab.truths[b], &format!("after restoring the damaged {b}"))?;
        log.note(format!("restoring the damaged {b} worked"));
    } else {
        log.note(format!("restoring the damaged {b} refused"));
        log.soft(lab.expect(
            before,
            &format!("after a failed restore of the damaged {b}"),
        ));
        log.soft(lab.no_restore_temporaries());
    }
    lab.restore_and_check(back)
}

/// The new backup `id` needs no damaged chunk, and restores.
fn new_backup_sound(lab: &Lab, id: &str) -> Check {
    let m = manifest(&lab.repo(), id)?;
    for c in format::needed_chunks(&lab.repo(), &m)
        .map_err(|e| format!("the new backup {id} needs damage: {e}"))?
    {
        format::read_chunk(&lab.repo(), &c)
            .map_err(|e| format!("the new backup {id} needs damage: {e}"))?;
    }
    lab.restore_and_check(id)
}

fn damage_chunk(lab: &mut Lab, log: &mut Log) -> Check {
    let n = lab.rng.gen_range(2..5);
    backups(lab, n)?;
    if lab.rng.gen_bool(0.3) {
        // Leave chunks no good backup needs: a backup killed half way.
        lab.mutate();
        let delay = lab.moment(0.8);
        let k = lab.kill_after(&["backup", "gb-1"], delay);
        log.note(kill_note(
            "a backup (for orphan chunks)",
            &k,
            lab.backup_secs,
        ));
        finished_ok("backup", &k)?;
        let now = lab.truth();
        adopt_new_good(lab, &now)?;
    }
    let needed = lab.needed_chunks()?;
    let before = lab.truth();
    let victim = lab.chunk_files().choose(&mut lab.rng).unwrap().clone();
    let id = victim.file_name().unwrap().to_string_lossy().to_string();
    let how = damage(lab, &victim);
    let affected: Vec<String> = needed
        .iter()
        .filter(|(_, set)| set.contains(&id))
        .map(|(b, _)| b.clone())
        .collect();
    log.note(format!(
        "chunk {} {how}; needed by {affected:?} of {} good backups",
        &id[..12],
        needed.len()
    ));
    let (ok, out) = lab.verify_all();
    log.soft(match (affected.is_empty(), ok) {
        (false, true) => Err(format!(
            "verify says ok, but chunk {id} ({how}) is needed by {affected:?}"
        )),
        (false, false) if !out.contains(&id) => Err(format!(
            "verify does not name the damaged chunk {id}: {}",
            last_lines(out.as_bytes())
        )),
        (true, false) => Err(format!(
            "verify reports damage, but the damaged chunk {id} is needed by no good backup: {}",
            last_lines(out.as_bytes())
        )),
        _ => Ok(()),
    });
    lab.expect(&before, "after verify")?;
    // The next backup works and needs nothing damaged (issue 8 items 2 and 3).
    let next = lab.backup()?;
    new_backup_sound(lab, &next)?;
    // verify still agrees: ok once the chunk is sound again (healed by the backup
    // writing it afresh), damage while a good backup still needs it broken.
    let healed = format::read_chunk(&lab.repo(), &id).is_ok();
    log.note(if healed { "healed" } else { "not healed" });
    let (ok, out) = lab.verify_all();
    log.soft(match (affected.is_empty() || healed, ok) {
        (true, false) => Err(format!(
            "verify reports damage after the next backup, though chunk {id} is sound again: {}",
            last_lines(out.as_bytes())
        )),
        (false, true) => Err(format!(
            "verify says ok after the next backup, though chunk {id} is still {how} and needed by {affected:?}"
        )),
        _ => Ok(()),
    });
    if let Some(b) = affected.choose(&mut lab.rng).cloned() {
        restore_damaged(lab, log, &b, &before, &next)?;
    }
    let sound: Vec<&String> = needed.keys().filter(|b| !affected.contains(b)).collect();
    if let Some(b) = sound.choose(&mut lab.rng) {
        let b = (*b).clone();
        lab.restore_and_check(&b)?;
    }
    Ok(())
}

fn damage_manifest(lab: &mut Lab, log: &mut Log) -> Check {
    let n = lab.rng.gen_range(2..5);
    let ids = backups(lab, n)?;
    let before = lab.truth();
    let victim = ids.choose(&mut lab.rng).unwrap().clone();
    let how = damage(
        lab,
        &lab.repo().join(format!("files/backups/{victim}.json")),
    );
    log.note(format!("manifest of {victim} (of {n}) {how}"));
    let (ok, out) = lab.verify_all();
    log.soft(if ok {
        Err(format!(
            "verify says ok after the manifest of {victim} was {how}"
        ))
    } else if !out.contains(&victim) {
        Err(format!(
            "verify does not name the backup {victim} whose manifest was {how}: {}",
            last_lines(out.as_bytes())
        ))
    } else {
        Ok(())
    });
    let next = lab.backup()?;
    new_backup_sound(lab, &next)?;
    let others: Vec<&String> = ids.iter().filter(|b| **b != victim).collect();
    if let Some(b) = others.choose(&mut lab.rng) {
        let b = (*b).clone();
        lab.restore_and_check(&b)?;
    }
    lab.restore_and_check(&next)?;
    restore_damaged(lab, log, &victim, &before, &next)
}

fn damage_config(lab: &mut Lab, log: &mut Log) -> Check {
    let first = lab.backup()?;
    lab.mutate();
    let path = lab.repo().join("config.json");
    let original = std::fs::read(&path).unwrap();
    let how = damage(lab, &path);
    let damaged = std::fs::read(&path).ok();
    log.note(format!("config.json {how}"));
    let unreadable = damaged
        .as_ref()
        .is_none_or(|b| serde_json::from_slice::<serde_json::Value>(b).is_err());
    let same = |lab: &Lab, when: &str| -> Check {
        if std::fs::read(lab.repo().join("config.json")).ok() == damaged {
            Ok(())
        } else {
            Err(format!(
                "{when} rewrote the damaged config.json ({how}): a new repository over the old one"
            ))
        }
    };
    let (ok, out) = lab.verify_all();
    log.soft(same(lab, "verify"));
    let backup = lab.run(&["backup", "gb-1"]);
    log.soft(same(lab, "backup"));
    if unreadable {
        if ok {
            log.soft(Err(format!("verify says ok with config.json {how}")));
        } else if !out.contains("config.json") {
            log.soft(Err(format!(
                "verify does not say config.json is broken: {}",
                last_lines(out.as_bytes())
            )));
        }
        if backup.status.success() {
            log.soft(Err(format!("backup went ahead with config.json {how}")));
        }
    } else {
        log.note(format!(
            "still JSON: verify {}, backup {}",
            if ok { "ok" } else { "refused" },
            if backup.status.success() {
                "ok"
            } else {
                "refused"
            }
        ));
    }
    std::fs::write(&path, &original).unwrap();
    log.note("config.json put back");
    let now = lab.truth();
    adopt_new_good(lab, &now)?;
    let next = lab.backup()?;
    lab.restore_and_check(&first)?;
    lab.restore_and_check(&next)?;
    verify_ok(lab, "with config.json put back")
}

/// Files of `bytes` in total, incompressible, in the instance's uploads.
fn big_files(lab: &mut Lab, prefix: &str, bytes: usize) {
    let n = lab.rng.gen_range(1..4);
    for k in 0..n {
        let mut v = vec![0u8; bytes / n];
        lab.rng.fill(&mut v[..]);
        std::fs::write(lab.uploads().join(format!("{prefix}-{k}.bin")), v).unwrap();
    }
}

fn remove_big_files(lab: &Lab) {
    for p in walk(&lab.uploads()) {
        if p.file_name().unwrap().to_string_lossy().starts_with("big-") {
            std::fs::remove_file(p).unwrap();
        }
    }
}

/// A clear error about space: exit status 1 (not a signal, not "internal"), and the
/// message says so and names the place.
fn clean_enospc(out: &std::process::Output, path: &std::path::Path, what: &str) -> Check {
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) {
        return Err(format!(
            "{what} on a full disk exited {} (want 1): {}",
            out.status,
            last_lines(&out.stderr)
        ));
    }
    if !err.to_lowercase().contains("space") || !err.contains(&path.display().to_string()) {
        return Err(format!(
            "{what} on a full disk does not say it is out of space at {}: {}",
            path.display(),
            last_lines(&out.stderr)
        ));
    }
    Ok(())
}

const MB: u64 = 1 << 20;

fn full_repo_disk(lab: &mut Lab, log: &mut Log) -> Check {
    lab.mounts.push(Tmpfs::mount(&lab.repo(), 128 * MB)?);
    let first = lab.backup()?;
    let used = lab.mounts[0].used();
    lab.mutate();
    let extra = lab.rng.gen_range(1..6) as usize * MB as usize;
    // The new data in the database (written through a pipe) or in the uploads.
    let in_rows = lab.rng.gen_bool(0.5);
    if in_rows {
        lab.add_rows(extra);
    } else {
        big_files(lab, "big", extra);
    }
    let now = lab.truth();
    let size = (used + (lab.rng.gen_range(0.05..1.2) * extra as f64) as u64).div_ceil(4096) * 4096;
    lab.mounts[0].resize(size)?;
    log.note(format!(
        "repository on a {size} B tmpfs, {used} B used, backing up {extra} B more {}",
        if in_rows { "rows" } else { "file bytes" }
    ));
    let out = lab.run(&["--json", "backup", "gb-1"]);
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        lab.truths.insert(id, now.clone());
        log.note("it fit");
    } else {
        log.note(format!("refused: {}", last_lines(&out.stderr)));
        log.soft(clean_enospc(&out, &lab.repo(), "backup"));
        let catalog = lab.catalog()?;
        let last = &catalog.last().unwrap().1;
        if last != "failed" {
            log.soft(Err(format!(
                "the backup that ran out of space is `{last}` in the catalog, not `failed`"
            )));
        }
        let left = walk(&lab.repo().join("tmp"));
        if !left.is_empty() {
            log.soft(Err(format!(
                "partial files left in the repository: {left:?}"
            )));
        }
    }
    lab.expect(&now, "after the backup onto a full disk")?;
    log.soft(verify_ok(lab, "after a backup onto a full disk"));
    lab.mounts[0].resize(256 * MB)?;
    let next = lab.backup()?;
    lab.restore_and_check(&first)?;
    lab.restore_and_check(&next)
}

fn full_restore_disk(lab: &mut Lab, log: &mut Log) -> Check {
    // The uploads on a tmpfs of their own, with room for their restore siblings.
    let uploads = lab.uploads();
    lab.mounts
        .push(Tmpfs::move_onto(uploads.parent().unwrap(), 128 * MB)?);
    let extra = lab.rng.gen_range(1..6) as usize * MB as usize;
    big_files(lab, "big", extra);
    let first = lab.backup()?;
    remove_big_files(lab);
    lab.mutate();
    let second = lab.backup()?;
    let before = lab.truth();
    let used = lab.mounts[0].used();
    let size = (used + (lab.rng.gen_range(0.05..1.5) * extra as f64) as u64).div_ceil(4096) * 4096;
    lab.mounts[0].resize(size)?;
    let running = lab.rng.gen_bool(0.3);
    if running {
        lab.ok(&["start", "gb-1"])?;
    }
    log.note(format!(
        "uploads on a {size} B tmpfs, {used} B used, restoring {first} with {extra} B more{}",
        if running { "; instance running" } else { "" }
    ));
    let out = lab.run(&[
        "restore",
        "gb-1",
        "--from",
        &first,
        "--yes-really-production",
    ]);
    if out.status.success() {
        lab.expect(&lab.truths[&first], "after a restore that fit")?;
        log.note("it fit");
    } else {
        log.note(format!("refused: {}", last_lines(&out.stderr)));
        log.soft(clean_enospc(&out, uploads.parent().unwrap(), "restore"));
        log.soft(lab.expect(&before, "after a restore that ran out of space"));
        log.soft(lab.no_restore_temporaries());
        if running {
            let state = lab.es.svc.instance_status("gb-1")["state"].clone();
            if state != "running" {
                log.soft(Err(format!(
                    "the instance was running before the failed restore and is {state} after it"
                )));
            }
        }
    }
    lab.mounts[0].resize(256 * MB)?;
    lab.restore_and_check(&second)?;
    lab.restore_and_check(&first)
}

fn full_state_disk(lab: &mut Lab, log: &mut Log) -> Check {
    let first = lab.backup()?;
    lab.mutate();
    let now = lab.truth();
    let state = lab.path().join(".ostler");
    lab.mounts.push(Tmpfs::move_onto(&state, 64 * MB)?);
    let used = lab.mounts[0].used();
    let room = lab.rng.gen_range(0..64) * 4096;
    lab.mounts[0].resize(used + room)?;
    log.note(format!("state dir on a tmpfs with {room} B free"));
    let out = lab.run(&["--json", "backup", "gb-1"]);
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        lab.truths
            .insert(v["id"].as_str().unwrap().to_string(), now.clone());
        log.note("it fit");
    } else {
        log.note(format!("refused: {}", last_lines(&out.stderr)));
        log.soft(clean_enospc(&out, &state, "backup"));
    }
    lab.expect(&now, "after a backup with a full state dir")?;
    lab.mounts[0].resize(256 * MB)?;
    log.soft(good_backups_whole(lab));
    log.soft(verify_ok(lab, "after a backup with a full state dir"));
    let next = lab.backup()?;
    lab.restore_and_check(&first)?;
    lab.restore_and_check(&next)
}

fn lose_database(lab: &mut Lab, log: &mut Log) -> Check {
    let n = lab.rng.gen_range(1..3);
    let ids = backups(lab, n)?;
    lab.mutate();
    lab.lose_database();
    let stores_too = lab.rng.gen_bool(0.3);
    if stores_too {
        std::fs::remove_dir_all(lab.uploads()).unwrap();
    }
    log.note(format!(
        "database lost{} after {n} backups",
        if stores_too { " with the uploads" } else { "" }
    ));
    lab.ok(&["restore", "gb-1", "--yes-really-production"])?;
    let last = ids.last().unwrap();
    lab.expect(&lab.truths[last], "after restoring the lost database")?;
    lab.no_restore_temporaries()?;
    let next = lab.backup()?;
    lab.restore_and_check(&ids[0])?;
    lab.restore_and_check(&next)
}
