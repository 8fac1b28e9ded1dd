//! Opening and creating repositories, and how the errors read.

use std::fs;

use ostler_repo::{RepoError, Repository, FORMAT_VERSION};

use crate::common::redact;

#[test]
fn open_of_a_directory_that_is_not_a_repository_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let err = Repository::open(dir.path()).unwrap_err();
    assert!(matches!(err, RepoError::NotARepository { .. }), "{err:?}");
    assert_eq!(
        redact(&err.to_string(), dir.path()),
        "<dir> is not an ostler repository: it has no config.json"
    );

    let missing = dir.path().join("nope");
    let err = Repository::open(&missing).unwrap_err();
    assert_eq!(
        redact(&err.to_string(), dir.path()),
        "<dir>/nope is not an ostler repository: the directory does not exist"
    );

    let err = Repository::open(&dir.path().join("notes.txt")).unwrap_err();
    assert!(matches!(err, RepoError::NotARepository { .. }), "{err:?}");
}

#[test]
fn open_of_a_foreign_config_json_is_not_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), br#"{"name": "webpack"}"#).unwrap();
    let err = Repository::open(dir.path()).unwrap_err();
    assert!(matches!(err, RepoError::NotARepository { .. }), "{err:?}");
}

#[test]
fn open_of_a_newer_format_fails_with_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(&path).unwrap();
    let config = fs::read_to_string(path.join("config.json")).unwrap();
    let newer = config.replace(&format!("\"version\": {FORMAT_VERSION}"), "\"version\": 99");
    assert_ne!(config, newer);
    fs::write(path.join("config.json"), newer).unwrap();
    let err = Repository::open(&path).unwrap_err();
    assert!(matches!(
        err,
        RepoError::UnsupportedVersion {
            found: 99,
            supported: FORMAT_VERSION,
            ..
        }
    ));
    assert_eq!(
        redact(&err.to_string(), dir.path()),
        "repository <dir>/repo/config.json has format version 99; this ostler understands version 1"
    );
}

#[test]
fn a_config_with_chunker_values_fastcdc_would_panic_on_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::init(&path).unwrap();
    let config = fs::read_to_string(path.join("config.json")).unwrap();
    fs::write(
        path.join("config.json"),
        config.replace("\"min_size\": 65536", "\"min_size\": 1"),
    )
    .unwrap();
    let err = Repository::open(&path).unwrap_err();
    assert!(matches!(err, RepoError::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("chunker.min_size = 1"), "{err}");
}

#[test]
fn init_refuses_non_empty_directories_and_existing_repositories() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("data.db"), b"precious").unwrap();
    let err = Repository::init(dir.path()).unwrap_err();
    assert!(matches!(err, RepoError::NotEmpty { .. }), "{err:?}");
    assert!(dir.path().join("data.db").exists());
    assert!(!dir.path().join("chunks").exists());

    let path = dir.path().join("repo");
    Repository::init(&path).unwrap();
    let err = Repository::init(&path).unwrap_err();
    assert!(
        matches!(err, RepoError::AlreadyARepository { .. }),
        "{err:?}"
    );

    let empty = tempfile::tempdir().unwrap();
    Repository::init(empty.path()).unwrap();
}

#[test]
fn init_refuses_a_repository_whose_config_json_was_deleted() {
    // Regression: init accepted the directories an interrupted init leaves, whatever
    // they held, so a repository that lost its config.json got a new id silently.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = Repository::init(&path).unwrap();
    let (stream, _) = repo.write_bytes(b"rows").unwrap();
    fs::remove_file(path.join("config.json")).unwrap();
    let err = Repository::init(&path).unwrap_err();
    let shard = format!("<dir>/repo/chunks/{}", &stream.chunks[0].id[..2]);
    assert!(matches!(err, RepoError::NotEmpty { .. }), "{err:?}");
    assert_eq!(
        redact(&err.to_string(), dir.path()),
        format!(
            "refusing to create a repository at {shard}: it exists and is not an empty directory"
        )
    );
    // A manifest alone is refused the same way.
    let other = dir.path().join("other");
    let repo = Repository::init(&other).unwrap();
    repo.put_file("backups/a.json", b"{}").unwrap();
    fs::remove_file(other.join("config.json")).unwrap();
    assert!(matches!(
        Repository::init(&other).unwrap_err(),
        RepoError::NotEmpty { .. }
    ));
}

#[test]
fn open_or_init_creates_once_then_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/repo");
    let first = Repository::open_or_init(&path).unwrap();
    let second = Repository::open_or_init(&path).unwrap();
    assert_eq!(first.config(), second.config());
    assert_eq!(first.config().id.len(), 64);
    let (stream, _) = first.write_bytes(b"hello").unwrap();
    assert_eq!(second.read_to_vec(&stream).unwrap(), b"hello");
}

#[test]
fn the_repository_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = Repository::init(&path).unwrap();
    let (stream, _) = repo.write_bytes(b"secret rows").unwrap();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&path.join("config.json")), 0o600);
    assert_eq!(mode(&repo.chunk_path(&stream.chunks[0].id).unwrap()), 0o600);
}
