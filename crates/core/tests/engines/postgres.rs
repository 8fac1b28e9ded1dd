//! PostgreSQL: round trips of awkward data, snapshot isolation, errors that name the
//! database and hide the password.

use std::path::Path;

use ostler_core::engine::{DbUrl, Sibling};
use ostler_rows::KeyPart;
use ostler_testsupport::PgServer;

use super::*;

pub(crate) fn pg() -> &'static PgServer {
    PgServer::shared()
}

pub(crate) fn pg_database(prefix: &str) -> (String, Database) {
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

pub(crate) fn psql_file(db: &str, file: &Path) {
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

#[test]
fn postgres_admin_swaps_a_side_database_in_and_back_nukes_and_removes() {
    let (name, live) = pg_database("eng_pg_admin");
    pg().sql(
        &name,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    )
    .unwrap();
    let r = runner();
    let side = live.sibling(Sibling::Side).unwrap();
    let aside = live.sibling(Sibling::Aside).unwrap();
    let id = |db: &Database| db.run_sql(&r, None, "SELECT id FROM t").unwrap();
    assert!(live.exists(&r).unwrap() && !side.exists(&r).unwrap());
    // Nuking a database that is not there creates it, empty.
    side.nuke(&r).unwrap();
    assert!(side.holds_data(&r).unwrap());
    side.run_sql(
        &r,
        None,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (2);",
    )
    .unwrap();

    live.swap_in(&side, &aside, &r).unwrap();
    assert_eq!((id(&live).trim(), id(&aside).trim()), ("2", "1"));
    assert!(!side.exists(&r).unwrap());
    // Swapping back is the undo.
    live.swap_in(&aside, &side, &r).unwrap();
    assert_eq!((id(&live).trim(), id(&side).trim()), ("1", "2"));
    assert!(!aside.exists(&r).unwrap());

    side.remove(&r).unwrap();
    assert!(!side.exists(&r).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let dump = live
        .safety_dump(&r, &dir.path().join("safety"), "before")
        .unwrap();
    assert!(std::fs::metadata(&dump).unwrap().len() > 0);
    live.nuke(&r).unwrap();
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(live.run_sql(&r, None, tables).unwrap().trim(), "0");
}
