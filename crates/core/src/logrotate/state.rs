//! When each log file was last rotated: `<state_dir>/logrotate.json`, ostler's
//! `/var/lib/logrotate/status`. A small JSON file rather than a table in state.db:
//! it is read and written whole by one run at a time (under `logrotate.lock`), and a
//! user can read it, or edit it, as logrotate's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "logrotate.json";
const LOCK: &str = "logrotate.lock";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// The log's path (as the config names it, made absolute) and its last rotation.
    files: BTreeMap<PathBuf, Timestamp>,
}

/// The state of one run: read at its start, saved at its end.
pub struct Status {
    path: PathBuf,
    stored: Stored,
}

impl Status {
    pub fn load(state_dir: &Path) -> Result<Status> {
        let path = state_dir.join(FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::failed(format!(
                    "{} is not a rotation state file: {e}",
                    path.display()
                ))
                .with_hint("remove it to start afresh (files are then first seen now)")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(Error::io_at("reading", &path, e)),
        };
        Ok(Status { path, stored })
    }

    /// When `file` was last rotated; a file never seen is recorded as rotated `now`
    /// (logrotate's `newState`), so that a daily log is first rotated tomorrow.
    pub fn last_rotated(&mut self, file: &Path, now: Timestamp) -> Timestamp {
        *self.stored.files.entry(file.to_path_buf()).or_insert(now)
    }

    pub fn rotated(&mut self, file: &Path, now: Timestamp) {
        self.stored.files.insert(file.to_path_buf(), now);
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.stored)
            .map_err(|e| Error::failed(format!("cannot encode the rotation state: {e}")))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        ostler_repo::private::create_dir_all(dir).map_err(|e| Error::io_at("creating", dir, e))?;
        let tmp = self.path.with_extension("json.tmp");
        ostler_repo::private::write_file(&tmp, &text)
            .map_err(|e| Error::io_at("writing", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io_at("replacing", &self.path, e))
    }
}

/// Holds `<state_dir>/logrotate.lock` for one run; a second run meanwhile is busy.
pub fn lock(state_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    ostler_repo::private::create_dir_all(state_dir)
        .map_err(|e| Error::io_at("creating", state_dir, e))?;
    let path = state_dir.join(LOCK);
    let file =
        ostler_repo::private::create_file(&path).map_err(|e| Error::io_at("opening", &path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        Error::busy(format!(
            "another log rotation is running ({} is locked)",
            path.display()
        ))
    })
}
