//! The database engines against real servers: a snapshot of awkward data, loaded into
//! a fresh database and exported for the native client, must give back exactly the
//! same rows; a snapshot must not see what others commit after it opened; rows come
//! out in key order.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ostler_core::engine::{
    self, Database, DatabaseKind, DbUrl, SchemaPart, Snapshot, TableRows, TableSpec,
};
use ostler_core::exec::Runner;
use ostler_core::report::{Interrupt, Silent};
use ostler_rows::{KeyPart, Row, SortedCheck};
use ostler_testsupport::{MariaDbServer, PgServer};

/// A runner that echoes and journals nothing, for the engines' own commands (pg_dump).
fn runner() -> Runner {
    Runner::new(std::sync::Arc::new(Silent), Interrupt::new())
}

/// Everything a snapshot gave: its schema parts and every table's rows, in order.
struct Captured {
    schema: Vec<SchemaPart>,
    tables: Vec<(TableSpec, Vec<Row>)>,
}

impl Captured {
    fn table(&self, name: &str) -> &(TableSpec, Vec<Row>) {
        self.tables
            .iter()
            .find(|(spec, _)| spec.name == name)
            .unwrap_or_else(|| panic!("no table {name}"))
    }

    fn part(&self, name: &str) -> String {
        let part = self
            .schema
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no part {name}"));
        String::from_utf8_lossy(&part.bytes).into_owned()
    }

    /// The tables as `engine::load` and `engine::export` take them.
    fn feed(&self) -> impl Iterator<Item = ostler_core::Result<TableRows<'_>>> + '_ {
        self.tables.iter().map(|(spec, rows)| {
            let rows: Box<dyn Iterator<Item = ostler_core::Result<Row>>> =
                Box::new(rows.iter().cloned().map(Ok));
            Ok((spec.clone(), rows))
        })
    }
}

fn read_all(snap: &mut dyn Snapshot, spec: &TableSpec) -> Vec<Row> {
    let mut rows = Vec::new();
    snap.rows(spec, &mut |row| {
        rows.push(row);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", spec.name));
    // In ascending key order, every key distinct, as the engine gave them.
    let checked: Result<Vec<Row>, _> = SortedCheck::new(rows.iter().cloned().map(Ok)).collect();
    if let Err(e) = checked {
        panic!("table {} is not in key order: {e}", spec.name);
    }
    rows
}

fn capture(db: &Database) -> Captured {
    let tmp = tempfile::tempdir().unwrap();
    let mut snap = engine::open_snapshot(db, tmp.path(), &runner())
        .unwrap_or_else(|e| panic!("snapshot: {e}"));
    let schema = snap.schema().to_vec();
    let specs = snap.tables().to_vec();
    let tables = specs
        .into_iter()
        .map(|spec| {
            let rows = read_all(snap.as_mut(), &spec);
            (spec, rows)
        })
        .collect();
    snap.finish().unwrap();
    Captured { schema, tables }
}

fn load(db: &Database, captured: &Captured) {
    engine::load(db, None, &captured.schema, &mut captured.feed())
        .unwrap_or_else(|e| panic!("load: {e}"));
}

fn export(kind: DatabaseKind, captured: &Captured, dir: &Path) -> std::path::PathBuf {
    let files = engine::export(kind, &captured.schema, &mut captured.feed(), dir)
        .unwrap_or_else(|e| panic!("export: {e}"));
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// Same tables (names, columns, keys, foreign keys) with the same rows, keys and
/// payloads byte for byte.
fn assert_same(original: &Captured, copy: &Captured) {
    let names = |c: &Captured| {
        c.tables
            .iter()
            .map(|(s, _)| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(original), names(copy));
    for ((spec, rows), (copy_spec, copy_rows)) in original.tables.iter().zip(&copy.tables) {
        assert_eq!(spec, copy_spec);
        assert_eq!(rows.len(), copy_rows.len(), "row count of {}", spec.name);
        for (a, b) in rows.iter().zip(copy_rows) {
            assert_eq!(
                a,
                b,
                "table {}: {} != {}",
                spec.name,
                String::from_utf8_lossy(&a.payload),
                String::from_utf8_lossy(&b.payload)
            );
        }
    }
}

fn run(cmd: &mut Command, input: Option<&Path>) -> String {
    if let Some(path) = input {
        cmd.stdin(std::fs::File::open(path).unwrap());
    } else {
        cmd.stdin(Stdio::null());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_bytes_hex() -> String {
    (0..=255u8).map(|b| format!("{b:02x}")).collect()
}

/// A consumer that stops mid-table (the capture does when its diff fails) leaves
/// the snapshot usable: the table reads again, whole and the same.
fn read_again_after_a_consumer_stopped(snap: &mut dyn Snapshot, before: &Captured) {
    for (spec, rows) in &before.tables {
        let mut seen = 0;
        let stopped = snap.rows(spec, &mut |_| {
            seen += 1;
            Err(ostler_core::Error::failed("consumer stopped"))
        });
        assert!(stopped.is_err(), "{}", spec.name);
        assert_eq!(seen, 1);
        assert_eq!(rows, &read_all(snap, spec), "{}", spec.name);
    }
}

// ---------------------------------------------------------------------------------
// PostgreSQL

fn pg() -> &'static PgServer {
    PgServer::shared()
}

fn pg_database(prefix: &str) -> (String, Database) {
    let name = pg().unique_database(prefix).unwrap();
    let db = Database::Postgres {
        url: DbUrl::parse(&pg().url(&name), DatabaseKind::Postgres).unwrap(),
        password: Some(pg().password().to_string()),
    };
    (name, db)
}

fn pg_fixture() -> String {
    let all = all_bytes_hex();
    format!(
        r#"
CREATE SCHEMA app;
CREATE TABLE app.authors (
    id serial PRIMARY KEY,
    name text NOT NULL,
    bio text,
    born date,
    created timestamptz,
    score numeric(20, 6),
    big bigint,
    ratio double precision,
    active boolean,
    doc jsonb,
    tags text[],
    span interval
);
INSERT INTO app.authors (name, bio, born, created, score, big, ratio, active, doc, tags, span) VALUES
 ('Ada', E'tab\there\nnew line\\back slash ''quote'' "dq"', '1815-12-10', '2024-02-29 12:34:56.789+01',
  12345678901234.123456, 9223372036854775807, 0.1, true, '{{"k": "v\\n"}}', ARRAY['a b', 'c"d', NULL], '1 day 02:03:04'),
 (E'\u00dcn\u00efc\u00f6d\u00e9 \u65e5\u672c\u8a9e \U0001F389', E'\r\x01\x1f ctrl \\N', NULL, NULL,
  -0.000001, -9223372036854775808, 1e300, false, 'null', '{{}}', NULL),
 ('\N', '', '0001-01-01', 'infinity', NULL, 0, 'NaN', NULL, NULL, NULL, '-1 year');
INSERT INTO app.authors (name) VALUES ('gap');
DELETE FROM app.authors WHERE name = 'gap';

CREATE TABLE app.blobs (id int PRIMARY KEY, b bytea);
INSERT INTO app.blobs VALUES (1, '\x{all}'), (2, ''), (3, NULL), (-5, '\x00');

CREATE TABLE app.books (
    author_id int NOT NULL REFERENCES app.authors (id),
    code text NOT NULL,
    title text,
    PRIMARY KEY (author_id, code)
);
INSERT INTO app.books VALUES (1, 'b', 'x'), (1, 'B', 'y'), (1, 'a b', NULL), (1, E'a\tb', 't'),
    (2, 'z', 'w'), (2, E'\u00c4', 'umlaut');
CREATE INDEX books_title ON app.books (title);
CREATE FUNCTION app.shout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.title := NEW.title || '!'; RETURN NEW; END $$;
CREATE TRIGGER books_shout BEFORE INSERT ON app.books FOR EACH ROW EXECUTE FUNCTION app.shout();

CREATE TABLE public."Words" ("Word" text PRIMARY KEY, n int);
INSERT INTO public."Words" VALUES ('apple', 1), ('Apple', 2), ('APPLE', 3), ('banana', 4), (E'\u00c4rger', 5),
    ('zebra', 6), ('a', 7), ('ab', 8), (E'a\tb', 9), ('a b', 10), (E'a\\b', 11), (E'a\nb', 12), ('', 13);

CREATE TABLE app.prices (p numeric PRIMARY KEY, label varchar(20));
INSERT INTO app.prices VALUES (10, 'ten'), (9, 'nine'), (1.5, 'one and a half'), (-3, 'neg'), (100.25, 'y');

CREATE TABLE app.tokens (id uuid PRIMARY KEY, note text);
INSERT INTO app.tokens VALUES ('ffffffff-0000-0000-0000-000000000000', 'f'),
    ('00000000-0000-0000-0000-000000000001', 'one'), ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a');

CREATE TABLE public.log (msg text, at timestamp, n int);
INSERT INTO public.log VALUES ('same', '2024-01-01 00:00:00', 1), ('same', '2024-01-01 00:00:00', 1),
    ('same', '2024-01-01 00:00:00', 1), (NULL, NULL, NULL), (NULL, NULL, NULL), (E'tab\tx', NULL, 2),
    ('a', NULL, 3), (E'a\x01', NULL, 4), ('\N', NULL, 5), (E'back\\slash', NULL, 6), ('', NULL, NULL);

CREATE TABLE app.gen (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    a int,
    doubled int GENERATED ALWAYS AS (a * 2) STORED
);
INSERT INTO app.gen (a) VALUES (1), (2), (3);

CREATE TABLE app.empty (id int PRIMARY KEY);

CREATE TABLE app.base (id int PRIMARY KEY, v text);
CREATE TABLE app.child (extra int) INHERITS (app.base);
INSERT INTO app.base VALUES (1, 'base');
INSERT INTO app.child VALUES (2, 'child', 3);
CREATE TABLE app.measure (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE app.measure_2023 PARTITION OF app.measure FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE app.measure_2024 PARTITION OF app.measure FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO app.measure VALUES (1, '2023-05-01'), (1, '2024-05-01'), (2, '2024-01-01');

CREATE VIEW app.author_names AS SELECT id, name FROM app.authors;
"#
    )
}

fn psql_file(db: &str, file: &Path) {
    let server = pg();
    run(
        Command::new(server.bin_dir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f"])
            .arg(file)
            .envs(server.client_env()),
        None,
    );
}

#[test]
fn postgres_round_trip_through_load_and_export() {
    let (name, db) = pg_database("eng_pg_src");
    pg().sql(&name, &pg_fixture()).unwrap();
    let original = capture(&db);

    // What the snapshot saw.
    let (words, rows) = original.table("public.\"Words\"");
    assert_eq!(words.key_columns, ["Word"]);
    assert_eq!(rows.len(), 13);
    let (books, _) = original.table("app.books");
    assert_eq!(books.key_columns, ["author_id", "code"]);
    assert_eq!(books.foreign_keys.len(), 1);
    assert_eq!(books.foreign_keys[0].ref_table, "app.authors");
    assert_eq!(books.foreign_keys[0].ref_columns, ["id"]);
    let (generated, _) = original.table("app.gen");
    assert_eq!(
        generated.columns,
        ["id", "a"],
        "generated columns are not stored"
    );
    let (log, log_rows) = original.table("public.log");
    assert!(log.key_columns.is_empty());
    assert_eq!(log_rows.len(), 11);
    let same: Vec<&KeyPart> = log_rows
        .iter()
        .filter(|r| r.payload == b"same\t2024-01-01 00:00:00\t1")
        .map(|r| &r.key[1])
        .collect();
    assert_eq!(same, [&KeyPart::Int(0), &KeyPart::Int(1), &KeyPart::Int(2)]);
    assert_eq!(
        original.table("app.base").1.len(),
        1,
        "a parent's rows are only its own"
    );
    assert_eq!(original.table("app.child").1.len(), 1);
    assert_eq!(original.table("app.measure_2024").1.len(), 2);
    assert!(
        original.tables.iter().all(|(s, _)| s.name != "app.measure"),
        "a partitioned table holds no rows"
    );
    let (_, blobs) = original.table("app.blobs");
    assert_eq!(blobs[0].key, [KeyPart::Int(-5)]);
    let bytes = engine::decode(DatabaseKind::Postgres, &blobs[1].payload).unwrap();
    assert_eq!(
        bytes[1],
        engine::SqlValue::Text(format!("\\x{}", all_bytes_hex()))
    );
    let (_, authors) = original.table("app.authors");
    let ada = engine::decode(DatabaseKind::Postgres, &authors[0].payload).unwrap();
    assert_eq!(ada[1], engine::SqlValue::Text("Ada".into()));
    assert_eq!(
        ada[2],
        engine::SqlValue::Text("tab\there\nnew line\\back slash 'quote' \"dq\"".into())
    );
    let third = engine::decode(DatabaseKind::Postgres, &authors[2].payload).unwrap();
    assert_eq!(
        third[1],
        engine::SqlValue::Text("\\N".into()),
        "the text \\N is not NULL"
    );
    assert_eq!(third[5], engine::SqlValue::Null);
    assert!(original
        .part("sequences.sql")
        .contains("setval('app.authors_id_seq', 4, true)"));
    assert!(original
        .part("post-data.sql")
        .contains("CREATE TRIGGER books_shout"));
    assert!(!original.part("pre-data.sql").contains("\\restrict"));

    // Loaded into an empty database: the same tables, rows and schema.
    let (copy_name, copy_db) = pg_database("eng_pg_copy");
    load(&copy_db, &original);
    let copy = capture(&copy_db);
    assert_same(&original, &copy);
    for part in ["pre-data.sql", "post-data.sql", "sequences.sql"] {
        assert_eq!(original.part(part), copy.part(part), "{part}");
    }

    // A load refuses a database that is not empty.
    let err = engine::load(&copy_db, None, &original.schema, &mut original.feed()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");

    // Exported as plain SQL and restored with psql alone.
    let dir = tempfile::tempdir().unwrap();
    let file = export(DatabaseKind::Postgres, &original, dir.path());
    let (plain_name, plain_db) = pg_database("eng_pg_plain");
    psql_file(&plain_name, &file);
    assert_same(&original, &capture(&plain_db));

    // The sequences came along: new rows get the ids the original would give.
    for db in [&name, &copy_name, &plain_name] {
        let id = pg()
            .sql(
                db,
                "INSERT INTO app.authors (name) VALUES ('after') RETURNING id",
            )
            .unwrap();
        assert_eq!(id.trim(), "5", "in {db}");
        let id = pg()
            .sql(db, "INSERT INTO app.gen (a) VALUES (9) RETURNING id")
            .unwrap();
        assert_eq!(id.trim(), "4", "in {db}");
        let title = pg()
            .sql(
                db,
                "INSERT INTO app.books VALUES (3, 'new', 'loud') RETURNING title",
            )
            .unwrap();
        assert_eq!(title.trim(), "loud!", "the trigger works in {db}");
    }
}

#[test]
fn postgres_snapshot_sees_nothing_committed_after_it_opened() {
    let (name, db) = pg_database("eng_pg_consistent");
    pg().sql(
        &name,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;
         CREATE TABLE bag (v text); INSERT INTO bag VALUES ('x'), ('x'), ('y');
         CREATE SEQUENCE s; SELECT nextval('s');",
    )
    .unwrap();
    let before = capture(&db);
    let tmp = tempfile::tempdir().unwrap();
    let mut snap = engine::open_snapshot(&db, tmp.path(), &runner()).unwrap();
    pg().sql(
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
    assert_eq!(after.table("public.t").1.len(), 100);
    assert_ne!(after.table("public.t").1, before.table("public.t").1);
    assert_eq!(after.table("public.bag").1.len(), 3);
}

#[test]
fn postgres_errors_name_the_database_and_hide_the_password() {
    let (name, _) = pg_database("eng_pg_errors");
    let db = Database::Postgres {
        url: DbUrl::parse(&pg().url(&name), DatabaseKind::Postgres).unwrap(),
        password: Some("wrong-secret-password".into()),
    };
    let tmp = tempfile::tempdir().unwrap();
    let err = engine::open_snapshot(&db, tmp.path(), &runner())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&name), "{err}");
    assert!(!err.contains("wrong-secret-password"), "{err}");

    let bad = vec![
        SchemaPart {
            name: "pre-data.sql".into(),
            bytes: b"CREATE TABLE t (id int);".to_vec(),
        },
        SchemaPart {
            name: "post-data.sql".into(),
            bytes: vec![],
        },
        SchemaPart {
            name: "sequences.sql".into(),
            bytes: vec![],
        },
    ];
    let spec = TableSpec {
        name: "public.t".into(),
        columns: vec!["id".into()],
        key_columns: vec![],
        foreign_keys: vec![],
    };
    let (_, target) = pg_database("eng_pg_bad_rows");
    for payload in [&b"1\n2"[..], b"x"] {
        let rows: Box<dyn Iterator<Item = ostler_core::Result<Row>>> = Box::new(std::iter::once(
            Ok(Row::new(vec![KeyPart::Int(1)], payload)),
        ));
        let err = engine::load(
            &target,
            None,
            &bad,
            &mut std::iter::once(Ok((spec.clone(), rows))),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("public.t"), "{err}");
    }
}

// ---------------------------------------------------------------------------------
// MariaDB

fn maria() -> &'static MariaDbServer {
    MariaDbServer::shared()
}

fn maria_database(prefix: &str) -> (String, Database) {
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

fn mariadb_file(db: &str, file: &Path) {
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

// ---------------------------------------------------------------------------------
// SQLite

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

// ---------------------------------------------------------------------------------
// Throughput, for docs/BENCHMARKS.md: `cargo test -p ostler-core --release --test engines
// -- --ignored --nocapture throughput`.

const BENCH_ROWS: usize = 100_000;

/// Times the snapshot (open: schema; rows) and the load of a 100k-row table, and, as
/// the peer to compare with, the native client restoring our export of it.
fn measure(engine: &str, db: &Database, copy: &Database, native: &dyn Fn(&Path)) {
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut snap = engine::open_snapshot(db, tmp.path(), &runner()).unwrap();
    let opened = start.elapsed();
    let schema = snap.schema().to_vec();
    let mut tables = Vec::new();
    let start = Instant::now();
    for spec in snap.tables().to_vec() {
        let rows = read_all(snap.as_mut(), &spec);
        tables.push((spec, rows));
    }
    let read = start.elapsed();
    snap.finish().unwrap();
    let captured = Captured { schema, tables };
    let rows: usize = captured.tables.iter().map(|(_, r)| r.len()).sum();
    let bytes: usize = captured
        .tables
        .iter()
        .flat_map(|(_, r)| r)
        .map(|r| r.payload.len())
        .sum();
    assert_eq!(rows, BENCH_ROWS);
    let start = Instant::now();
    load(copy, &captured);
    let loaded = start.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let kind = db.kind();
    let file = engine::export(kind, &captured.schema, &mut captured.feed(), dir.path()).unwrap();
    let start = Instant::now();
    native(&file[0]);
    let restored = start.elapsed();
    let per_s = |d: std::time::Duration| rows as f64 / d.as_secs_f64();
    println!(
        "{engine}: {rows} rows, {:.1} MB of payload: open {:.2} s; rows {:.2} s = {:.0} rows/s; \
         open + rows = {:.0} rows/s; load {:.2} s = {:.0} rows/s; \
         native client restoring the export {:.2} s = {:.0} rows/s",
        bytes as f64 / 1e6,
        opened.as_secs_f64(),
        read.as_secs_f64(),
        per_s(read),
        per_s(opened + read),
        loaded.as_secs_f64(),
        per_s(loaded),
        restored.as_secs_f64(),
        per_s(restored)
    );
}

#[test]
#[ignore = "throughput measurement; run with --ignored --nocapture"]
fn throughput_of_snapshot_and_load() {
    let (name, db) = pg_database("eng_pg_bench");
    pg().sql(
        &name,
        &format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2),
                                  created timestamptz, note text);
             INSERT INTO orders SELECT i, 'customer ' || (i % 977), (i * 7 % 100000) / 100.0,
                 timestamptz '2024-01-01' + i * interval '1 minute', repeat('n', 60 + i % 40)
             FROM generate_series(1, {BENCH_ROWS}) i;"
        ),
    )
    .unwrap();
    let (_, copy) = pg_database("eng_pg_bench_copy");
    let (plain, _) = pg_database("eng_pg_bench_plain");
    measure("PostgreSQL", &db, &copy, &|file| psql_file(&plain, file));

    let (name, db) = maria_database("eng_my_bench");
    maria()
        .sql(
            &name,
            &format!(
                "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40) NOT NULL, amount DECIMAL(12, 2),
                                      created DATETIME, note TEXT) ENGINE=InnoDB;
                 INSERT INTO orders SELECT seq, CONCAT('customer ', seq % 977), (seq * 7 % 100000) / 100.0,
                     '2024-01-01' + INTERVAL seq MINUTE, REPEAT('n', 60 + seq % 40) FROM seq_1_to_{BENCH_ROWS};"
            ),
        )
        .unwrap();
    let (_, copy) = maria_database("eng_my_bench_copy");
    let (plain, _) = maria_database("eng_my_bench_plain");
    measure("MariaDB", &db, &copy, &|file| mariadb_file(&plain, file));
}
