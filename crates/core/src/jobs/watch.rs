//! The `watch` job action's memory: a command's last output, kept per job, compared
//! with the next one. This is the runbooks' diffmon (mail when `cat /proc/mdstat` or a
//! reprocessing monitor prints something else than last time): the daemon runs the
//! command, hands its output here, and on a change runs `on_change` or raises an alert
//! carrying [`Observation::diff`].
//!
//! The last output lives in `<state_dir>/jobs/<job>/watched`, owner-only (an output can
//! hold anything the command saw), replaced atomically (a temp file in the same
//! directory, synced, renamed over), so a daemon killed mid-write leaves the previous
//! output or the new one, never half of one, and a restarted daemon compares with what
//! the last run saw. The first observation of a job has nothing to compare with and is
//! not a change.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::check_name;
use crate::error::{Error, Result};

/// What one run of a watched command showed, against the run before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// Nothing was kept for this job yet (not a change).
    pub first: bool,
    /// The output differs from the one kept.
    pub changed: bool,
    /// The output kept from the run before, when there was one.
    pub previous: Option<String>,
    /// When changed: a unified diff from the previous output to this one, lines
    /// `-` gone and `+` new, for the alert.
    pub diff: Option<String>,
}

/// Compares `output` with the last output kept for `job` under `state_dir`, and keeps
/// `output` as the last one.
pub fn observe(state_dir: &Path, job: &str, output: &str) -> Result<Observation> {
    let path = watched_path(state_dir, job)?;
    let previous = match std::fs::read(&path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io_at("reading", &path, e)),
    };
    let changed = previous.as_deref().is_some_and(|p| p != output);
    if previous.as_deref() != Some(output) {
        store(&path, output)?;
    }
    let diff = match &previous {
        Some(previous) if changed => Some(
            similar::TextDiff::from_lines(previous.as_str(), output)
                .unified_diff()
                .context_radius(3)
                .header("previous", "current")
                .to_string(),
        ),
        _ => None,
    };
    Ok(Observation {
        first: previous.is_none(),
        changed,
        previous,
        diff,
    })
}

/// `<state_dir>/jobs/<job>/watched`, for a job whose name cannot leave that directory.
pub fn watched_path(state_dir: &Path, job: &str) -> Result<PathBuf> {
    // The config already refuses such names; a name becomes a path here, so again.
    check_name(job).map_err(|why| {
        Error::user(format!("job `{job}` cannot keep a watched output: {why}")).with_hint(
            "job names are letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        )
    })?;
    Ok(state_dir.join("jobs").join(job).join("watched"))
}

/// Replaces `path` with `output`: an owner-only temp file beside it, synced, renamed.
fn store(path: &Path, output: &str) -> Result<()> {
    let dir = path.parent().expect("watched_path has a parent");
    ostler_repo::private::create_dir_all(dir)
        .map_err(|e| Error::io_at("creating directory", dir, e))?;
    // tempfile creates its files 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".watched.")
        .tempfile_in(dir)
        .map_err(|e| Error::io_at("creating a file in", dir, e))?;
    tmp.write_all(output.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io_at("writing", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io_at("replacing", path, e.error))?;
    Ok(())
}
