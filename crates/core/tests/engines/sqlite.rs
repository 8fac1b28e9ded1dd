//! SQLite: a round trip of awkward data through load and export.

use super::*;

#[test]
fn sqlite_round_trip_through_load_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, bio TEXT, score REAL, data BLOB);
         CREATE TABLE books (author_id INTEGER REFERENCES authors(id), code TEXT, title TEXT,
                             PRIMARY KEY (author_id, code)) WITHOUT ROWID;
         CREATE TABLE log (msg TEXT, n INTEGER);
         CREATE INDEX books_title ON books (title);
         CREATE VIEW names AS SELECT name FROM authors;",
    )
    .unwrap();
    let all: Vec<u8> = (0..=255).collect();
    conn.execute(
        "INSERT INTO authors (name, bio, score, data) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params!["Ünïcödé 🎉", "tab\there\nnew\\line 'q'", 0.1f64, all],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO authors (id, name, bio) VALUES (9223372036854775807, 'big', NULL);
         INSERT INTO books VALUES (1, 'b', 'x'), (1, 'B', 'y'), (9223372036854775807, 'a', NULL);
         INSERT INTO log VALUES ('same', 1), ('same', 1), (NULL, NULL);",
    )
    .unwrap();
    drop(conn);
    let db = Database::Sqlite { path: path.clone() };
    let original = capture(&db);
    assert_eq!(original.table("books").0.key_columns, ["author_id", "code"]);
    assert_eq!(original.table("log").1.len(), 3);

    let copy_path = dir.path().join("copy.sqlite");
    load(
        &Database::Sqlite {
            path: copy_path.clone(),
        },
        &original,
    );
    assert_same(&original, &capture(&Database::Sqlite { path: copy_path }));

    let out = dir.path().join("export");
    std::fs::create_dir(&out).unwrap();
    let file = export(DatabaseKind::Sqlite, &original, &out);
    assert_same(&original, &capture(&Database::Sqlite { path: file }));
}
