//! Owner-only by default: the one place that decides the mode of what ostler writes.
//!
//! Everything ostler writes that holds data (the repository, its copies, exports,
//! safety dumps, the state database with its journal) can hold a whole database,
//! so it is created readable by its owner only: directories 0700, files 0600.
//! The umask can only make that stricter. The instance's own files (its database,
//! its stores, its logs) are the service's business and are never created here:
//! a restore gives store files back the mode recorded in the backup.
//!
//! Modes apply when ostler creates a file or directory; a file ostler replaces
//! through [`create_file`] is also narrowed to 0600, because it holds new data.
//! Existing directories are left as the operator made them.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode for files ostler creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode for directories ostler creates.
pub const DIR_MODE: u32 = 0o700;

/// `mkdir -p` whose new directories are owner-only.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// `mkdir` (one level) of an owner-only directory.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)
}

/// Narrows an existing file ostler wrote through another program (SQLite, pg_dump)
/// to owner-only.
pub fn narrow(path: &Path) -> io::Result<()> {
    let mode = if path.is_dir() { DIR_MODE } else { FILE_MODE };
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Creates or truncates `path` for writing, owner-only (also if it existed).
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates `path`, which must not exist, for writing, owner-only.
pub fn create_new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Writes `bytes` to `path` (created or truncated) owner-only, like `fs::write`.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    create_file(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn files_and_directories_are_owner_only_even_over_a_wide_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        create_dir_all(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(dir.path().join("a")).unwrap().mode() & 0o777,
            0o700
        );
        let f = sub.join("f");
        std::fs::write(&f, b"old").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        write_file(&f, b"new").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
    }
}
