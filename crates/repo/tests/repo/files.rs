//! Named files: atomic put, get, list, remove, and names that cannot escape.

use ostler_repo::RepoError;

use crate::common::new_repo;

#[test]
fn put_get_list_remove() {
    let (_dir, repo) = new_repo();
    assert!(repo.list_files("backups").unwrap().is_empty());
    repo.put_file("backups/b.json", b"{\"b\":1}").unwrap();
    repo.put_file("backups/a.json", b"{\"a\":1}").unwrap();
    repo.put_file("backups/2025/c.json", b"c").unwrap();
    repo.put_file("catalog.json", b"[]").unwrap();

    assert_eq!(repo.get_file("backups/a.json").unwrap(), b"{\"a\":1}");
    assert_eq!(
        repo.list_files("backups").unwrap(),
        ["backups/2025/c.json", "backups/a.json", "backups/b.json"]
    );
    assert_eq!(repo.list_files("backups/").unwrap().len(), 3);
    assert_eq!(repo.list_files("").unwrap().len(), 4);

    repo.put_file("backups/a.json", b"replaced").unwrap();
    assert_eq!(repo.get_file("backups/a.json").unwrap(), b"replaced");

    assert!(repo.remove_file("backups/a.json").unwrap());
    assert!(!repo.remove_file("backups/a.json").unwrap());
    assert!(!repo.has_file("backups/a.json").unwrap());
    assert!(matches!(
        repo.get_file("backups/a.json"),
        Err(RepoError::FileNotFound { .. })
    ));
    assert!(std::fs::read_dir(repo.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(repo.stats().unwrap().files, 3);
}

#[test]
fn names_that_could_escape_or_hide_are_refused() {
    let (_dir, repo) = new_repo();
    for bad in [
        "",
        "/etc/passwd",
        "../config.json",
        "backups/../../x",
        "a//b",
        "a/",
        ".hidden",
        "backups/.tmp",
        "sp ace",
        "new\nline",
        "ünï",
    ] {
        match repo.put_file(bad, b"x") {
            Err(RepoError::InvalidFileName { .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
        assert!(repo.get_file(bad).is_err());
    }
    assert!(!repo.path().join("config.json.x").exists());
}
