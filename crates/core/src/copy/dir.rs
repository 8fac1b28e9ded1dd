//! A copy in another directory: a second disk, a USB drive, an NFS or SMB mount.
//!
//! Written the way the repository itself writes (temporary file in the same
//! directory, fsync, rename, fsync the directory), so a copy survives a crash of
//! this host as well as the repository does, and opens as a repository.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{check_path, temp_path, Backend};
use crate::error::{Error, NoSpace, Result};

pub struct DirBackend {
    root: PathBuf,
}

impl DirBackend {
    /// A copy rooted at `root`, created on the first `put` if missing.
    pub fn new(root: &Path) -> DirBackend {
        DirBackend {
            root: root.to_path_buf(),
        }
    }

    fn full(&self, path: &str) -> Result<PathBuf> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    fn io(&self, what: &'static str, path: &Path, e: io::Error) -> Error {
        if let Some(full) = NoSpace::from_io(what, path, &e) {
            return Error::NoSpace(full);
        }
        Error::io(
            format!("copy to {}: {what} {}", self.describe(), path.display()),
            e,
        )
    }

    /// Creates `dir` and its missing parents, making each new entry durable.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent)?;
        }
        match ostler_repo::private::create_dir(dir) {
            Ok(()) => sync_dir(dir.parent().unwrap_or(Path::new("/")))
                .map_err(|e| self.io("fsync", dir, e)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) => Err(self.io("create directory", dir, e)),
        }
    }
}

impl Backend for DirBackend {
    fn list(&self, prefix_dir: &str) -> Result<Vec<String>> {
        let start = if prefix_dir.is_empty() {
            self.root.clone()
        } else {
            self.full(prefix_dir.trim_end_matches('/'))?
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io("list", &dir, e))?;
                let kind = entry
                    .file_type()
                    .map_err(|e| self.io("stat", &entry.path(), e))?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    let path = entry.path();
                    let rel = path.strip_prefix(&self.root).unwrap_or(&path);
                    // Names we cannot represent cannot be ours: leave them alone.
                    if let Some(rel) = rel.to_str() {
                        out.push(rel.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &str) -> Result<bool> {
        let full = self.full(path)?;
        match fs::symlink_metadata(&full) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io("stat", &full, e)),
        }
    }

    fn put(&self, path: &str, local_file: &Path) -> Result<()> {
        let dest = self.full(path)?;
        let tmp = self.root.join(temp_path(path));
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir)?;
        let write = || -> io::Result<()> {
            let mut src = fs::File::open(local_file)?;
            let mut out = ostler_repo::private::create_new_file(&tmp)?;
            io::copy(&mut src, &mut out)?;
            out.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            if let Some(full) = NoSpace::from_io("write", &dest, &e) {
                let size = fs::metadata(local_file).map_or(0, |m| m.len());
                return Err(Error::NoSpace(full.needing(size)));
            }
            return Err(Error::io(
                format!(
                    "copy to {}: write {} from {}",
                    self.describe(),
                    dest.display(),
                    local_file.display()
                ),
                e,
            ));
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("rename into", &dest, e));
        }
        sync_dir(&dir).map_err(|e| self.io("fsync", &dir, e))
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let full = self.full(path)?;
        fs::read(&full).map_err(|e| self.io("read", &full, e))
    }

    fn remove(&self, path: &str) -> Result<()> {
        let full = self.full(path)?;
        match fs::remove_file(&full) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("remove", &full, e)),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
