//! MariaDB: round trips of awkward data, snapshot isolation, errors that name the
//! database and hide the password, payloads that are not value tuples refused.

use std::path::Path;

use ostler_core::engine::{DbUrl, Sibling};
use ostler_rows::KeyPart;
use ostler_testsupport::MariaDbServer;

use super::*;

pub(crate) fn maria() -> &'static MariaDbServer {
    MariaDbServer::shared()
}

pub(crate) fn maria_database(prefix: &str) -> (String, Database) {
    let name = maria().unique_database(prefix).unwrap();
    let db = Database::Mysql {
        url: DbUrl::parse(&maria().url(&name), DatabaseKind::Mysql).unwrap(),
        password: Some(maria().password().to_string()),
    };
    (name, db)
}

fn maria_fixture() -> String {
    let all = all_bytes_hex();
    format!(
        r#"
CREATE TABLE authors (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    bio TEXT,
    born DATE,
    created DATETIME(6),
    ts TIMESTAMP NULL DEFAULT NULL,
    score DECIMAL(20, 6),
    big BIGINT,
    ubig BIGINT UNSIGNED,
    ratio DOUBLE,
    f FLOAT,
    flags BIT(8),
    doc JSON,
    e ENUM('a', 'b c'),
    t TIME(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT INTO authors (name, bio, born, created, ts, score, big, ubig, ratio, f, flags, doc, e, t) VALUES
 ('Ada', 'tab\there\nnew line\\back slash ''quote'' "dq"', '1815-12-10', '2024-02-29 12:34:56.789012',
  '2024-02-29 12:34:56', 12345678901234.123456, 9223372036854775807, 18446744073709551615, 0.1, 0.1,
  b'10100101', '{{"k": "v\\n"}}', 'b c', '-838:59:59.000'),
 (CONVERT(X'C39C6EC3AF63C3B664C3A920E697A5E69CACE8AA9E20F09F8E89' USING utf8mb4),
  CONCAT(CHAR(13), CHAR(1), CHAR(26), CHAR(0), ' ctrl \\N'), NULL, NULL, NULL, -0.000001,
  -9223372036854775808, 0, 1e300, -1.5, b'0', NULL, 'a', '00:00:00'),
 ('NULL', '', '0000-00-00', '1000-01-01 00:00:00', '1970-01-01 00:00:01', NULL, 0, NULL, NULL, NULL, NULL, '[]', NULL, NULL);
SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
INSERT INTO authors (id, name) VALUES (0, 'zero');
INSERT INTO authors (name) VALUES ('gap');
DELETE FROM authors WHERE name = 'gap';

CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, vb VARBINARY(300)) ENGINE=InnoDB;
INSERT INTO blobs VALUES (1, X'{all}', X'{all}'), (2, '', ''), (3, NULL, NULL), (-5, X'00', 'text');

CREATE TABLE books (
    author_id INT NOT NULL,
    code VARCHAR(20) NOT NULL,
    title TEXT,
    PRIMARY KEY (author_id, code),
    CONSTRAINT fk_author FOREIGN KEY (author_id) REFERENCES authors (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO books VALUES (1, 'b', 'x'), (1, 'B', 'y'), (1, 'a b', NULL), (1, 'a\tb', 't'), (2, 'z', 'w'),
    (2, CONVERT(X'C384' USING utf8mb4), 'umlaut');
CREATE TRIGGER books_shout BEFORE INSERT ON books FOR EACH ROW SET NEW.title = CONCAT(NEW.title, '!');

CREATE TABLE Words (Word VARCHAR(50) PRIMARY KEY, n INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO Words VALUES ('apple', 1), ('Apple', 2), ('APPLE', 3), ('banana', 4),
    (CONVERT(X'C3847267657220' USING utf8mb4), 5), ('zebra', 6), ('a', 7), ('ab', 8), ('a\tb', 9), ('a b', 10),
    ('a\\b', 11), ('a\nb', 12), ('', 13);

CREATE TABLE words_ci (w VARCHAR(50) PRIMARY KEY) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO words_ci VALUES ('banana'), ('Cherry'), ('apple'), (CONVERT(X'C38963C3A9' USING utf8mb4)), ('zebra');

CREATE TABLE prices (p DECIMAL(10, 2) PRIMARY KEY, label VARCHAR(20)) ENGINE=InnoDB;
INSERT INTO prices VALUES (10, 'ten'), (9, 'nine'), (1.5, 'one and a half'), (-3, 'neg'), (100.25, 'y');

CREATE TABLE log (msg TEXT, at DATETIME, n INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO log VALUES ('same', '2024-01-01 00:00:00', 1), ('same', '2024-01-01 00:00:00', 1),
    ('same', '2024-01-01 00:00:00', 1), (NULL, NULL, NULL), (NULL, NULL, NULL), ('tab\tx', NULL, 2),
    ('a', NULL, 3), (CONCAT('a', CHAR(1)), NULL, 4), ('it''s', NULL, 5), ('back\\slash', NULL, 6), ('', NULL, NULL);

CREATE TABLE gen (id BIGINT UNSIGNED PRIMARY KEY, a INT, doubled INT AS (a * 2) STORED) ENGINE=InnoDB;
INSERT INTO gen (id, a) VALUES (1, 1), (18446744073709551615, 2), (9223372036854775808, 3);

CREATE TABLE empty (id INT PRIMARY KEY) ENGINE=InnoDB;

CREATE SEQUENCE order_numbers START WITH 100 CACHE 0;
CREATE TABLE orders (id INT PRIMARY KEY DEFAULT NEXTVAL(order_numbers), v TEXT) ENGINE=InnoDB;
INSERT INTO orders (v) VALUES ('first'), ('second');

CREATE TABLE versioned (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB WITH SYSTEM VERSIONING;
INSERT INTO versioned VALUES (1, 'old'), (2, 'two');
UPDATE versioned SET v = 'new' WHERE id = 1;

CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
DELIMITER ;;
CREATE PROCEDURE touch() BEGIN SELECT 1; SELECT 2; END;;
DELIMITER ;
CREATE VIEW names_view AS SELECT id, name, twice(id) AS d FROM authors;
CREATE VIEW a_view_on_view AS SELECT id, d FROM names_view;
"#
    )
}

pub(crate) fn mariadb_file(db: &str, file: &Path) {
    let server = maria();
    run(
        Command::new(server.client_path())
            .args(["--no-defaults", "--protocol=TCP", "-h", server.host(), "-P"])
            .arg(server.port().to_string())
            .args(["-u", server.user()])
            .arg(db)
            .envs(server.client_env()),
        Some(file),
    );
}

#[test]
fn mariadb_round_trip_through_load_and_export() {
    let (name, db) = maria_database("eng_my_src");
    maria().sql(&name, &maria_fixture()).unwrap();
    let original = capture(&db);

    let (words, rows) = original.table("Words");
    assert_eq!(words.key_columns, ["Word"]);
    assert_eq!(rows.len(), 13);
    assert_eq!(
        original.table("words_ci").1[0].key,
        [KeyPart::Bytes(b"Cherry".to_vec())]
    );
    let (books, _) = original.table("books");
    assert_eq!(books.key_columns, ["author_id", "code"]);
    assert_eq!(books.foreign_keys.len(), 1);
    assert_eq!(books.foreign_keys[0].ref_table, "authors");
    assert_eq!(books.foreign_keys[0].columns, ["author_id"]);
    let (generated, gen_rows) = original.table("gen");
    assert_eq!(
        generated.columns,
        ["id", "a"],
        "generated columns are not stored"
    );
    assert_eq!(
        gen_rows
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect::<Vec<_>>(),
        [
            "(1,1)",
            "(9223372036854775808,3)",
            "(18446744073709551615,2)"
        ]
    );
    let (log, log_rows) = original.table("log");
    assert!(log.key_columns.is_empty());
    assert_eq!(log_rows.len(), 11);
    let same: Vec<&KeyPart> = log_rows
        .iter()
        .filter(|r| r.payload == b"('same','2024-01-01 00:00:00',1)")
        .map(|r| &r.key[1])
        .collect();
    assert_eq!(same, [&KeyPart::Int(0), &KeyPart::Int(1), &KeyPart::Int(2)]);
    let (_, blobs) = original.table("blobs");
    assert_eq!(blobs[0].key, [KeyPart::Int(-5)]);
    let values = engine::decode(DatabaseKind::Mysql, &blobs[1].payload).unwrap();
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(
        values,
        [
            engine::SqlValue::Int(1),
            engine::SqlValue::Blob(all.clone()),
            engine::SqlValue::Blob(all)
        ]
    );
    let (_, authors) = original.table("authors");
    assert_eq!(authors[0].key, [KeyPart::Int(0)]);
    let ada = engine::decode(DatabaseKind::Mysql, &authors[1].payload).unwrap();
    assert_eq!(
        ada[2],
        engine::SqlValue::Text("tab\there\nnew line\\back slash 'quote' \"dq\"".into())
    );
    assert_eq!(ada[5], engine::SqlValue::Text("2024-02-29 12:34:56".into()));
    let schema = original.part("schema.sql");
    assert!(schema.contains("AUTO_INCREMENT=5"), "{schema}");
    assert!(!schema.contains("DEFINER="), "{schema}");
    assert!(
        !schema.contains(&name),
        "no names of the source database: {schema}"
    );
    assert!(
        schema.find("CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `names_view`")
            < schema.find("VIEW `a_view_on_view`"),
        "{schema}"
    );
    assert!(original.part("post-data.sql").contains("books_shout"));
    assert!(
        schema.contains("DO SETVAL(`order_numbers`, 102, 0);"),
        "{schema}"
    );
    let (_, versioned) = original.table("versioned");
    assert_eq!(
        versioned
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect::<Vec<_>>(),
        ["(1,'new')", "(2,'two')"],
        "a system-versioned table as it is now"
    );

    let (copy_name, copy_db) = maria_database("eng_my_copy");
    load(&copy_db, &original);
    let copy = capture(&copy_db);
    assert_same(&original, &copy);
    assert_eq!(original.part("schema.sql"), copy.part("schema.sql"));
    assert_eq!(original.part("post-data.sql"), copy.part("post-data.sql"));

    let err = engine::load(&copy_db, None, &original.schema, &mut original.feed()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = export(DatabaseKind::Mysql, &original, dir.path());
    let (plain_name, plain_db) = maria_database("eng_my_plain");
    mariadb_file(&plain_name, &file);
    assert_same(&original, &capture(&plain_db));

    for db in [&name, &copy_name, &plain_name] {
        let out = maria()
            .sql(
                db,
                "INSERT INTO authors (name) VALUES ('after'); SELECT LAST_INSERT_ID();
                 INSERT INTO books VALUES (3, 'new', 'loud'); SELECT title FROM books WHERE code = 'new';
                 SELECT COUNT(*) FROM a_view_on_view; INSERT INTO orders (v) VALUES ('third');
                 SELECT MAX(id) FROM orders; CALL touch();",
            )
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..4], ["5", "loud!", "5", "102"], "in {db}: {out}");
    }
}

#[test]
fn mariadb_snapshot_sees_nothing_committed_after_it_opened() {
    let (name, db) = maria_database("eng_my_consistent");
    maria()
        .sql(
            &name,
            "CREATE TABLE t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB;
             INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_100;
             CREATE TABLE bag (v TEXT) ENGINE=InnoDB; INSERT INTO bag VALUES ('x'), ('x'), ('y');",
        )
        .unwrap();
    let before = capture(&db);
    let tmp = tempfile::tempdir().unwrap();
    let mut snap = engine::open_snapshot(&db, tmp.path(), &runner()).unwrap();
    maria()
        .sql(
            &name,
            "INSERT INTO t VALUES (1000, 'new'); UPDATE t SET v = 'changed' WHERE id = 1; DELETE FROM t WHERE id = 2;
             INSERT INTO bag VALUES ('x'); DELETE FROM bag WHERE v = 'y';",
        )
        .unwrap();
    let specs = snap.tables().to_vec();
    for ((spec, rows), seen) in before.tables.iter().zip(&specs) {
        assert_eq!(spec, seen);
        assert_eq!(rows, &read_all(snap.as_mut(), seen), "{}", spec.name);
    }
    read_again_after_a_consumer_stopped(snap.as_mut(), &before);
    snap.finish().unwrap();
    let after = capture(&db);
    assert_ne!(after.table("t").1, before.table("t").1);
    assert_eq!(after.table("bag").1.len(), 3);
}

#[test]
fn mariadb_errors_name_the_database_and_hide_the_password() {
    let (name, _) = maria_database("eng_my_errors");
    let db = Database::Mysql {
        url: DbUrl::parse(&maria().url(&name), DatabaseKind::Mysql).unwrap(),
        password: Some("wrong-secret-password".into()),
    };
    let tmp = tempfile::tempdir().unwrap();
    let err = engine::open_snapshot(&db, tmp.path(), &runner())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&name) && err.contains("connecting"), "{err}");
    assert!(!err.contains("wrong-secret-password"), "{err}");
}

#[test]
fn mariadb_load_refuses_payloads_that_are_not_value_tuples() {
    let (name, db) = maria_database("eng_my_bad_rows");
    let schema = vec![
        SchemaPart {
            name: "schema.sql".into(),
            bytes: b"CREATE TABLE t (id INT);".to_vec(),
        },
        SchemaPart {
            name: "post-data.sql".into(),
            bytes: vec![],
        },
    ];
    let spec = TableSpec {
        name: "t".into(),
        columns: vec!["id".into()],
        key_columns: vec![],
        foreign_keys: vec![],
    };
    let rows: Box<dyn Iterator<Item = ostler_core::Result<Row>>> = Box::new(std::iter::once(Ok(
        Row::new(vec![KeyPart::Int(1)], "(1); DROP TABLE t; --"),
    )));
    let err = engine::load(&db, None, &schema, &mut std::iter::once(Ok((spec, rows))))
        .unwrap_err()
        .to_string();
    assert!(err.contains("table t") && err.contains("damaged"), "{err}");
    assert_eq!(maria().sql(&name, "SHOW TABLES").unwrap().trim(), "t");
}

#[test]
fn mariadb_admin_swaps_a_side_database_in_and_back_nukes_and_removes() {
    let (name, live) = maria_database("eng_my_admin");
    maria()
        .sql(
            &name,
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
        )
        .unwrap();
    let r = runner();
    let side = live.sibling(Sibling::Side).unwrap();
    let aside = live.sibling(Sibling::Aside).unwrap();
    let id = |db: &Database| db.run_sql(&r, None, "SELECT id FROM t").unwrap();
    assert!(live.exists(&r).unwrap() && !side.exists(&r).unwrap());
    // Nuking a database that is not there creates it, empty; with no table in it, a
    // swap would bring nothing in.
    side.nuke(&r).unwrap();
    assert!(side.exists(&r).unwrap() && !side.holds_data(&r).unwrap());
    side.run_sql(
        &r,
        None,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (2);",
    )
    .unwrap();
    assert!(side.holds_data(&r).unwrap());

    live.swap_in(&side, &aside, &r).unwrap();
    assert_eq!((id(&live).trim(), id(&aside).trim()), ("2", "1"));
    assert!(!side.exists(&r).unwrap());
    // Swapping back is the undo.
    live.swap_in(&aside, &side, &r).unwrap();
    assert_eq!((id(&live).trim(), id(&side).trim()), ("1", "2"));
    assert!(!aside.holds_data(&r).unwrap());

    side.remove(&r).unwrap();
    assert!(!side.exists(&r).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let dump = live
        .safety_dump(&r, &dir.path().join("safety"), "before")
        .unwrap();
    assert!(String::from_utf8_lossy(&std::fs::read(&dump).unwrap()).contains("CREATE TABLE `t`"));
    live.nuke(&r).unwrap();
    assert_eq!(live.run_sql(&r, None, "SHOW TABLES").unwrap().trim(), "");
}
