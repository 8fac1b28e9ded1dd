//! Named files under `files/`: small metadata such as backup manifests.
//!
//! Manifests are what make chunks mean something, so they get the same
//! all-or-nothing writes as chunks, but they are named by the caller and may
//! be replaced. Names are relative paths of plain components; anything that
//! could escape `files/` (`..`, absolute paths) or be confused with our own
//! temporaries (leading dots) is refused rather than cleaned up, because a
//! silently rewritten name is a manifest nobody finds again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable::{self, Existing};
use crate::error::{IoContext, RepoError, Result};
use crate::Repository;

/// Longest accepted name, in bytes.
const MAX_NAME_LEN: usize = 1024;

/// Checks a name like `backups/20250101T000000Z-hub-03.json`; returns it as a
/// relative path.
fn validate_name(name: &str) -> Result<PathBuf> {
    let invalid = |reason| RepoError::InvalidFileName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 1024 bytes"));
    }
    for component in name.split('/') {
        validate_component(component).map_err(invalid)?;
    }
    Ok(PathBuf::from(name))
}

fn validate_component(component: &str) -> std::result::Result<(), &'static str> {
    if component.is_empty() {
        return Err("empty path component (leading, trailing or double '/')");
    }
    if component.starts_with('.') {
        return Err("a path component starts with '.'");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.+=@:,".contains(c);
    if !component.chars().all(allowed) {
        return Err("only ASCII letters, digits and - _ . + = @ : , are allowed");
    }
    Ok(())
}

impl Repository {
    /// Atomically creates or replaces the named file with `bytes`.
    pub fn put_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let rel = validate_name(name)?;
        let files = self.files_dir();
        let dest = files.join(&rel);
        let parent = dest.parent().unwrap_or(&files).to_path_buf();
        if let Some(rel_parent) = rel.parent() {
            durable::ensure_dirs_under(&files, rel_parent)?;
        }
        durable::write_atomic(&self.tmp_dir(), &dest, &[bytes], Existing::Replace)?;
        durable::sync_dir(&parent)
    }

    /// The named file's content.
    pub fn get_file(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.files_dir().join(validate_name(name)?);
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if is_not_found(&e) => Err(RepoError::FileNotFound {
                name: name.to_string(),
                path,
            }),
            Err(e) => Err(RepoError::io("read", &path, e)),
        }
    }

    /// Whether the named file exists.
    pub fn has_file(&self, name: &str) -> Result<bool> {
        let path = self.files_dir().join(validate_name(name)?);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(RepoError::io("stat", &path, e)),
        }
    }

    /// Names of all files under directory `prefix` (`""` for all), recursively,
    /// sorted, as full names usable with [`Repository::get_file`]
    /// (`list_files("backups")` gives `["backups/a.json", ...]`). A missing
    /// directory lists as empty.
    pub fn list_files(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_end_matches('/');
        let start = if prefix.is_empty() {
            self.files_dir()
        } else {
            self.files_dir().join(validate_name(prefix)?)
        };
        let mut names = Vec::new();
        walk(&start, prefix, &mut names)?;
        names.sort_unstable();
        Ok(names)
    }

    /// Removes the named file; returns whether it existed. Empty directories stay.
    pub fn remove_file(&self, name: &str) -> Result<bool> {
        let path = self.files_dir().join(validate_name(name)?);
        match fs::remove_file(&path) {
            Ok(()) => {
                let parent = path.parent().unwrap_or(&path);
                durable::sync_dir(parent)?;
                Ok(true)
            }
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(RepoError::io("remove", &path, e)),
        }
    }
}

fn is_not_found(e: &io::Error) -> bool {
    // ENOTDIR: a parent component is a file, so the name cannot exist either.
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Appends `prefix/name` for every valid file name below `dir`.
fn walk(dir: &Path, prefix: &str, names: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(RepoError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.at("list", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if validate_component(name).is_err() {
            continue;
        }
        let full = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry.file_type().at("stat", entry.path())?;
        if file_type.is_dir() {
            walk(&entry.path(), &full, names)?;
        } else if file_type.is_file() {
            names.push(full);
        }
    }
    Ok(())
}
