//! Each engine's quoting, tested against the engine itself: `SELECT <literal>` gives
//! back exactly the value, and a quoted name is exactly the name, for values holding
//! quotes, backslashes, NUL (where the type allows it), Ctrl-Z, CR LF, emoji and
//! invalid UTF-8, and names holding quotes, backticks and dots. Literals are also
//! run through the engine's own client (`sqlite3`, `psql`, `mariadb`), as a person
//! running a partial restore's printed statements would.

use ostler_core::engine::quote::{mysql, postgres, sqlite};
use ostler_core::engine::SqlValue;
use ostler_testsupport::{MariaDbServer, PgServer};
use proptest::collection::vec;
use proptest::prelude::*;

/// Texts that have broken quoting somewhere (NUL is added where the engine allows it).
const TEXTS: &[&str] = &[
    "",
    "plain",
    "it's \"quoted\" ''twice'' `ticked`",
    "back\\slash \\\\ \\n \\' \\0 \\x41 ends\\",
    "\\N",
    "\\.",
    "z\u{1a}z",
    "line one\r\nline two\tcol\r\n\u{b}\u{c}\u{8}",
    "\n\\.\n",
    "🐴 ostler ✓ 👩‍💻 é",
    "'); DROP TABLE t; -- \") `; --",
    "$$ $tag$ E'x' U&'\\0041'",
];

const NAMES: &[&str] = &[
    "plain",
    "Mixed Case",
    "with \"double\" quotes",
    "with `backticks`",
    "with.dots.in",
    "it's",
    "🐴",
    "trailing\\",
];

fn blobs() -> Vec<Vec<u8>> {
    vec![
        vec![],
        (0..=255u8).collect(),
        b"\xff\xfe\x80\xc3(\x00\x1a\\'\"\r\n".to_vec(),
        b"\x00".to_vec(),
    ]
}

fn texts(nul: bool) -> Vec<String> {
    let mut out: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
    if nul {
        out.push("before\0after\0".into());
        out.push("\0".into());
    }
    out
}

const INTS: &[i64] = &[0, 1, -1, i64::MAX, i64::MIN];
const REALS: &[f64] = &[
    0.0,
    1.0,
    -1.5,
    0.1,
    1e100,
    -2.5e-300,
    f64::MAX,
    f64::MIN_POSITIVE,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

// ---------------------------------------------------------------- SQLite

#[test]
fn sqlite_literals_read_back_exactly() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let mut values: Vec<SqlValue> = vec![SqlValue::Null];
    values.extend(INTS.iter().map(|&i| SqlValue::Int(i)));
    values.extend(REALS.iter().map(|&f| SqlValue::Real(f)));
    values.push(SqlValue::Real(f64::INFINITY));
    values.push(SqlValue::Real(f64::NEG_INFINITY));
    values.extend(texts(true).into_iter().map(SqlValue::Text));
    values.extend(blobs().into_iter().map(SqlValue::Blob));
    for v in values {
        let lit = sqlite::literal(&v);
        let got = sqlite_select(&conn, &lit).unwrap_or_else(|e| panic!("SELECT {lit}: {e}"));
        assert_eq!(got, v, "SELECT {lit}");
    }
    // NaN: SQLite has no such value and keeps NULL.
    assert_eq!(sqlite::literal(&SqlValue::Real(f64::NAN)), "NULL");
}

#[test]
fn sqlite_literals_survive_the_sqlite3_shell() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    for t in texts(true) {
        let lit = sqlite::literal(&SqlValue::Text(t.clone()));
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(format!("SELECT hex({lit}), typeof({lit});"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lit}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim_end(),
            format!("{}|text", hex(t.as_bytes())),
            "{lit}"
        );
    }
}

#[test]
fn sqlite_names_quote_to_themselves() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for name in NAMES {
        let q = sqlite::ident(name);
        conn.execute_batch(&format!(
            "CREATE TABLE {q} ({q} TEXT); INSERT INTO {q} ({q}) VALUES ('x');"
        ))
        .unwrap_or_else(|e| panic!("{q}: {e}"));
        let (table, column): (String, String) = conn
            .query_row(
                "SELECT (SELECT name FROM sqlite_master WHERE name = ?1), \
                 (SELECT name FROM pragma_table_info(?1))",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((table.as_str(), column.as_str()), (*name, *name));
    }
}

// ---------------------------------------------------------------- PostgreSQL

fn pg_client() -> ::postgres::Client {
    let pg = PgServer::shared();
    let mut config = ::postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(pg.port())
        .user(pg.user())
        .password(pg.password())
        .dbname("postgres");
    config.connect(::postgres::NoTls).unwrap()
}

#[test]
fn postgres_literals_read_back_exactly() {
    let mut c = pg_client();
    for setting in ["on", "off"] {
        // Whatever the session's setting, a literal means the same.
        c.batch_execute(&format!("SET standard_conforming_strings = {setting}"))
            .unwrap();
        for t in texts(false) {
            let lit = postgres::literal(&SqlValue::Text(t.clone()));
            let row = c
                .query_one(&format!("SELECT ({lit})::text"), &[])
                .unwrap_or_else(|e| panic!("{lit} ({setting}): {e}"));
            assert_eq!(row.get::<_, String>(0), t, "{lit} ({setting})");
        }
        for b in blobs() {
            let lit = postgres::literal(&SqlValue::Blob(b.clone()));
            let row = c.query_one(&format!("SELECT {lit}"), &[]).unwrap();
            assert_eq!(row.get::<_, Vec<u8>>(0), b, "{lit} ({setting})");
        }
    }
    for &i in INTS {
        let lit = postgres::literal(&SqlValue::Int(i));
        let row = c.query_one(&format!("SELECT ({lit})::int8"), &[]).unwrap();
        assert_eq!(row.get::<_, i64>(0), i, "{lit}");
    }
    for &f in REALS.iter().chain(&[f64::INFINITY, f64::NEG_INFINITY]) {
        let lit = postgres::literal(&SqlValue::Real(f));
        let row = c.query_one(&format!("SELECT {lit}"), &[]).unwrap();
        assert_eq!(row.get::<_, f64>(0), f, "{lit}");
    }
    let lit = postgres::literal(&SqlValue::Real(f64::NAN));
    assert!(c
        .query_one(&format!("SELECT {lit}"), &[])
        .unwrap()
        .get::<_, f64>(0)
        .is_nan());
    let lit = postgres::literal(&SqlValue::Null);
    assert!(c
        .query_one(&format!("SELECT {lit}::text"), &[])
        .unwrap()
        .get::<_, Option<String>>(0)
        .is_none());
    // Text cannot hold NUL: the server refuses it, naming it, and nothing is cut short.
    let lit = postgres::literal(&SqlValue::Text("a\0b".into()));
    let err = c.query_one(&format!("SELECT {lit}"), &[]).unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("0x00")),
        "{err:?}"
    );
}

#[test]
fn postgres_literals_survive_psql() {
    let pg = PgServer::shared();
    for t in texts(false) {
        let lit = postgres::literal(&SqlValue::Text(t.clone()));
        let out = pg
            .sql(
                "postgres",
                &format!("SELECT encode(convert_to({lit}, 'UTF8'), 'hex');"),
            )
            .unwrap();
        assert_eq!(out.trim_end().to_uppercase(), hex(t.as_bytes()), "{lit}");
    }
}

#[test]
fn postgres_names_quote_to_themselves() {
    let pg = PgServer::shared();
    let db = pg.unique_database("quoting").unwrap();
    let mut config = ::postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(pg.port())
        .user(pg.user())
        .password(pg.password())
        .dbname(&db);
    let mut c = config.connect(::postgres::NoTls).unwrap();
    for (i, name) in NAMES.iter().enumerate() {
        let schema = format!("s{i} {name}");
        let (s, t) = (postgres::ident(&schema), postgres::ident(name));
        c.batch_execute(&format!(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.{t} ({t} text);"
        ))
        .unwrap_or_else(|e| panic!("{s}.{t}: {e}"));
        // The snapshot's own spelling of the table, quoted back by `table`.
        let listed: String = c
            .query_one(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                &[&schema],
            )
            .unwrap()
            .get(0);
        assert_eq!(
            postgres::parts(&listed),
            vec![schema.clone(), name.to_string()]
        );
        let table = postgres::table(&listed);
        assert_eq!(table, format!("{s}.{t}"));
        c.batch_execute(&format!("INSERT INTO {table} ({t}) VALUES ('x')"))
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        let column: String = c
            .query_one(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum = 1",
                &[&table],
            )
            .unwrap()
            .get(0);
        assert_eq!(column, *name);
    }
    assert_eq!(postgres::table("public.entries"), "\"public\".\"entries\"");
}

// ---------------------------------------------------------------- MySQL / MariaDB

fn my_conn() -> ::mysql::Conn {
    let my = MariaDbServer::shared();
    let opts = ::mysql::OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(my.port())
        .user(Some(my.user()))
        .pass(Some(my.password()))
        .prefer_socket(false);
    ::mysql::Conn::new(opts).unwrap()
}

fn my_bytes(conn: &mut ::mysql::Conn, sql: &str) -> Option<Vec<u8>> {
    use ::mysql::prelude::Queryable;
    let v: Option<::mysql::Value> = conn
        .query_first(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match v.unwrap() {
        ::mysql::Value::NULL => None,
        ::mysql::Value::Bytes(b) => Some(b),
        other => Some(other.as_sql(true).into_bytes()),
    }
}

#[test]
fn mysql_literals_read_back_exactly() {
    use ::mysql::prelude::Queryable;
    let db = MariaDbServer::shared().unique_database("quoting").unwrap();
    let mut c = my_conn();
    c.query_drop(format!("SET NAMES utf8mb4; USE {}", mysql::ident(&db)))
        .unwrap();
    for t in texts(true) {
        let lit = mysql::literal(&SqlValue::Text(t.clone()));
        let got = my_bytes(&mut c, &format!("SELECT {lit}"));
        assert_eq!(got.as_deref(), Some(t.as_bytes()), "{lit}");
    }
    for b in blobs() {
        let lit = mysql::literal(&SqlValue::Blob(b.clone()));
        assert_eq!(my_bytes(&mut c, &format!("SELECT {lit}")), Some(b), "{lit}");
    }
    for &i in INTS {
        let lit = mysql::literal(&SqlValue::Int(i));
        assert_eq!(
            my_bytes(&mut c, &format!("SELECT {lit}")),
            Some(i.to_string().into_bytes()),
            "{lit}"
        );
    }
    c.query_drop("CREATE TEMPORARY TABLE reals (r double)")
        .unwrap();
    for &f in REALS {
        let lit = mysql::literal(&SqlValue::Real(f));
        c.query_drop(format!(
            "DELETE FROM reals; INSERT INTO reals VALUES ({lit})"
        ))
        .unwrap_or_else(|e| panic!("{lit}: {e}"));
        let got: Option<f64> = c.query_first("SELECT r FROM reals").unwrap();
        assert_eq!(got, Some(f), "{lit}");
    }
    assert_eq!(my_bytes(&mut c, "SELECT NULL"), None);
    assert_eq!(mysql::literal(&SqlValue::Null), "NULL");
}

#[test]
fn mysql_literals_survive_the_mariadb_client() {
    let my = MariaDbServer::shared();
    for t in texts(true) {
        let lit = mysql::literal(&SqlValue::Text(t.clone()));
        let out = my.sql("", &format!("SELECT HEX({lit});")).unwrap();
        assert_eq!(out.trim_end(), hex(t.as_bytes()), "{lit}");
    }
}

#[test]
fn mysql_stored_tuples_survive_the_mariadb_client() {
    // A payload string is QUOTE()-escaped (raw CR, LF); `client_text` makes it safe.
    let my = MariaDbServer::shared();
    let text = "a\r\nb\rc\nd''e\\'f";
    let mut tuple = Vec::new();
    mysql::quote_into(&mut tuple, text.as_bytes());
    let safe = mysql::client_text(&tuple);
    let out = my
        .sql(
            "",
            &format!("SELECT HEX({});", String::from_utf8_lossy(&safe)),
        )
        .unwrap();
    assert_eq!(out.trim_end(), hex(text.as_bytes()));
}

#[test]
fn mysql_names_quote_to_themselves() {
    use ::mysql::prelude::Queryable;
    let my = MariaDbServer::shared();
    let db = my.unique_database("quoting").unwrap();
    let mut c = my_conn();
    c.query_drop(format!("USE {}", mysql::ident(&db))).unwrap();
    // MariaDB names hold no character beyond the BMP (its identifiers are utf8mb3).
    for name in NAMES
        .iter()
        .filter(|n| n.chars().all(|c| (c as u32) < 0x10000))
    {
        let q = mysql::ident(name);
        c.query_drop(format!(
            "CREATE TABLE {q} ({q} text); INSERT INTO {q} ({q}) VALUES ('x')"
        ))
        .unwrap_or_else(|e| panic!("{q}: {e}"));
        let got: Option<(String, String)> = c
            .exec_first(
                "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (name.to_string(),),
            )
            .unwrap();
        assert_eq!(got, Some((name.to_string(), name.to_string())));
    }
}

// ---------------------------------------------------------------- any value

/// Any value an engine may hand a literal: `nul` says whether text may hold NUL.
fn any_value(nul: bool) -> impl Strategy<Value = SqlValue> {
    let ch = any::<char>().prop_filter("NUL", move |c| nul || *c != '\0');
    prop_oneof![
        Just(SqlValue::Null),
        any::<i64>().prop_map(SqlValue::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(SqlValue::Real),
        vec(ch, 0..24).prop_map(|c| SqlValue::Text(c.into_iter().collect())),
        vec(any::<u8>(), 0..48).prop_map(SqlValue::Blob),
    ]
}

/// `SELECT lit` on SQLite, the value as SQLite gives it back.
fn sqlite_select(conn: &rusqlite::Connection, lit: &str) -> rusqlite::Result<SqlValue> {
    conn.query_row(&format!("SELECT {lit}"), [], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Null => SqlValue::Null,
            rusqlite::types::ValueRef::Integer(i) => SqlValue::Int(i),
            rusqlite::types::ValueRef::Real(f) => SqlValue::Real(f),
            rusqlite::types::ValueRef::Text(t) => {
                SqlValue::Text(String::from_utf8(t.to_vec()).unwrap())
            }
            rusqlite::types::ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sqlite_any_literal_reads_back(v in any_value(true)) {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let lit = sqlite::literal(&v);
        let got = sqlite_select(&conn, &lit)
            .unwrap();
        prop_assert_eq!(got, v);
    }

    #[test]
    fn postgres_qualified_names_split_back(a in vec(any::<char>(), 1..12), b in vec(any::<char>(), 1..12)) {
        let (a, b): (String, String) = (a.into_iter().collect(), b.into_iter().collect());
        let q = format!("{}.{}", postgres::ident(&a), postgres::ident(&b));
        prop_assert_eq!(postgres::parts(&q), vec![a, b]);
    }
}

/// Text without NUL (which PostgreSQL text cannot hold) and bytes.
fn text_and_bytes(nul: bool) -> impl Strategy<Value = (String, Vec<u8>)> {
    (
        vec(
            any::<char>().prop_filter("NUL", move |c| nul || *c != '\0'),
            0..24,
        )
        .prop_map(|c| c.into_iter().collect::<String>()),
        vec(any::<u8>(), 0..48),
    )
}

/// Runs `check` on 256 generated cases with one connection (a new one per case
/// would cost more than the cases).
fn on_server<C>(
    conn: C,
    nul: bool,
    check: impl Fn(&mut C, String, Vec<u8>) -> Result<(), TestCaseError>,
) {
    let conn = std::cell::RefCell::new(conn);
    proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256))
        .run(&text_and_bytes(nul), |(t, b)| {
            check(&mut conn.borrow_mut(), t, b)
        })
        .unwrap();
}

#[test]
fn postgres_any_text_or_bytes_reads_back() {
    on_server(pg_client(), false, |c, t, b| {
        let row = c
            .query_one(
                &format!(
                    "SELECT ({})::text, {}",
                    postgres::literal(&SqlValue::Text(t.clone())),
                    postgres::literal(&SqlValue::Blob(b.clone()))
                ),
                &[],
            )
            .unwrap();
        prop_assert_eq!(row.get::<_, String>(0), t);
        prop_assert_eq!(row.get::<_, Vec<u8>>(1), b);
        Ok(())
    });
}

#[test]
fn mysql_any_text_or_bytes_reads_back() {
    use ::mysql::prelude::Queryable;
    let mut conn = my_conn();
    conn.query_drop("SET NAMES utf8mb4").unwrap();
    on_server(conn, true, |c, t, b| {
        let sql = format!("SELECT {}", mysql::literal(&SqlValue::Text(t.clone())));
        prop_assert_eq!(my_bytes(c, &sql), Some(t.into_bytes()));
        let sql = format!("SELECT {}", mysql::literal(&SqlValue::Blob(b.clone())));
        prop_assert_eq!(my_bytes(c, &sql), Some(b));
        Ok(())
    });
}
