//! Restores put back exactly the bytes that were there, on all three engines: quotes,
//! backslashes, NUL (where the engine's type can hold it), Ctrl-Z, CR LF, tabs, emoji,
//! a value that is literally `\N`, COPY's end marker, SQL that looks like an injection,
//! and invalid UTF-8 in blobs. Every value is written with hex literals through the
//! engine's own client, and compared byte for byte as that client prints its hex after
//! a partial restore (and its dry run's statements, run by the client), a whole
//! restore, and an export loaded back by the engine's own tool.
//!
//! Regression: a partial restore of SQLite text holding a NUL byte failed with "Parse
//! error near line 6" (the SQL went through the `sqlite3` shell).

use crate::backups::{backup_id, native_load};
use crate::databases::{native_sql, Engine, EngineSvc};

/// (label, text bytes). Each row's blob is its text plus `INVALID_UTF8`.
const NASTY: &[(&str, &[u8])] = &[
    ("plain", b"nothing odd"),
    ("quotes", b"it's \"quoted\" ''twice'' `ticked`"),
    (
        "backslashes",
        b"back\\slash \\\\ \\n \\t \\' \\0 \\x41 C:\\dir\\",
    ),
    ("nul", b"before\0after\0"),
    ("ctrl-z", b"z\x1az\x1a"),
    ("crlf-tab", b"line one\r\nline two\tcolumn\r\n\x0b\x0c\x08"),
    ("emoji", "🐴 ostler ✓ 👩‍💻 é".as_bytes()),
    ("backslash-n", b"\\N"),
    ("copy-end", b"\\."),
    ("lines", b"\n\\.\n.\n"),
    ("injection", b"'); DROP TABLE nasty; -- \") `; --"),
    ("empty", b""),
];

const INVALID_UTF8: &[u8] = b"\xff\xfe\x80\xc3(\x00\x1a\\'";

/// A service whose production instance's database holds table `nasty`, its values
/// written with hex literals (so the test does not lean on any quoting).
struct Nasty {
    es: EngineSvc,
}

/// The text a row holds on `engine`: PostgreSQL text cannot hold NUL, so it is left out.
fn text_on(engine: Engine, text: &[u8]) -> Vec<u8> {
    match engine {
        Engine::Postgres => text.iter().copied().filter(|&b| b != 0).collect(),
        _ => text.to_vec(),
    }
}

/// A row of `nasty`: id, label, text, blob.
type NastyRow = (usize, String, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every row written on `engine`.
fn rows(engine: Engine) -> Vec<NastyRow> {
    let mut out: Vec<_> = NASTY
        .iter()
        .enumerate()
        .map(|(i, (label, text))| {
            let mut blob = text.to_vec();
            blob.extend_from_slice(INVALID_UTF8);
            (
                i + 1,
                label.to_string(),
                Some(text_on(engine, text)),
                Some(blob),
            )
        })
        .collect();
    let n = out.len();
    out.push((
        n + 1,
        "every-byte".into(),
        None,
        Some((0..=255u8).collect()),
    ));
    out.push((n + 2, "nulls".into(), None, None));
    out
}

impl Nasty {
    fn new(engine: Engine) -> Nasty {
        let es = EngineSvc::new(engine, 1, "");
        let nasty = Nasty { es };
        let ddl = match engine {
            Engine::Sqlite => {
                "CREATE TABLE nasty (id INTEGER PRIMARY KEY, label TEXT NOT NULL, body TEXT, data BLOB);"
            }
            Engine::Postgres => {
                "CREATE TABLE nasty (id integer PRIMARY KEY, label text NOT NULL, body text, data bytea);"
            }
            Engine::Mysql => {
                "CREATE TABLE nasty (id int PRIMARY KEY, label varchar(40) NOT NULL, \
                 body longtext CHARACTER SET utf8mb4, data longblob) ENGINE=InnoDB;"
            }
        };
        let mut sql = String::from(ddl);
        for (id, label, text, blob) in rows(engine) {
            sql += &format!(
                "\nINSERT INTO nasty VALUES ({id}, '{label}', {}, {});",
                text.map_or("NULL".into(), |t| nasty.text_literal(&t)),
                blob.map_or("NULL".into(), |b| nasty.blob_literal(&b)),
            );
        }
        nasty.sql(&sql);
        nasty
    }

    fn engine(&self) -> Engine {
        self.es.engine
    }

    fn sql(&self, sql: &str) -> String {
        self.es.sql(0, sql)
    }

    fn text_literal(&self, bytes: &[u8]) -> String {
        let h = hex(bytes);
        match self.engine() {
            Engine::Sqlite => format!("CAST(X'{h}' AS TEXT)"),
            Engine::Postgres => format!("convert_from('\\x{h}'::bytea, 'UTF8')"),
            Engine::Mysql => format!("CONVERT(X'{h}' USING utf8mb4)"),
        }
    }

    fn blob_literal(&self, bytes: &[u8]) -> String {
        let h = hex(bytes);
        match self.engine() {
            Engine::Sqlite | Engine::Mysql => format!("X'{h}'"),
            Engine::Postgres => format!("'\\x{h}'::bytea"),
        }
    }

    /// The table as the engine's own client prints it: `id|label|HEX(body)|HEX(data)`,
    /// `NULL` for NULL (and, on SQLite, each value's storage class).
    fn dump_sql(engine: Engine) -> &'static str {
        match engine {
            Engine::Sqlite => {
                "SELECT id, label, CASE WHEN body IS NULL THEN 'NULL' ELSE hex(body) END, \
                 CASE WHEN data IS NULL THEN 'NULL' ELSE hex(data) END, typeof(body), typeof(data) \
                 FROM nasty ORDER BY id;"
            }
            Engine::Postgres => {
                "SELECT id, label, COALESCE(upper(encode(convert_to(body, 'UTF8'), 'hex')), 'NULL'), \
                 COALESCE(upper(encode(data, 'hex')), 'NULL') FROM nasty ORDER BY id;"
            }
            Engine::Mysql => {
                "SELECT id, label, COALESCE(HEX(body), 'NULL'), COALESCE(HEX(data), 'NULL') \
                 FROM nasty ORDER BY id;"
            }
        }
    }

    fn dump_of(engine: Engine, target: &str) -> Vec<String> {
        native_sql(engine, target, Self::dump_sql(engine))
            .lines()
            .map(|l| l.replace('\t', "|"))
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn dump(&self) -> Vec<String> {
        Self::dump_of(self.engine(), &self.es.target(0))
    }

    /// What `dump` must print: the rows as they were written.
    fn expected(&self) -> Vec<String> {
        let h = |v: &Option<Vec<u8>>| v.as_ref().map_or("NULL".into(), |b| hex(b));
        rows(self.engine())
            .into_iter()
            .map(|(id, label, text, blob)| {
                let mut line = format!("{id}|{label}|{}|{}", h(&text), h(&blob));
                if self.engine() == Engine::Sqlite {
                    let class = |v: &Option<Vec<u8>>, c: &str| {
                        if v.is_some() { c } else { "null" }.to_string()
                    };
                    line += &format!("|{}|{}", class(&text, "text"), class(&blob, "blob"));
                }
                line
            })
            .collect()
    }

    fn backup(&self) -> String {
        backup_id(&self.es.svc, &["gb-1"])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Partial restore of every row but the first, then the dry run's statements run by
/// the engine's own client: both put back exactly the bytes.
fn partial(engine: Engine) {
    let n = Nasty::new(engine);
    let svc = &n.es.svc;
    let original = n.dump();
    assert_eq!(original, n.expected(), "the test's own writing went wrong");
    let b = n.backup();
    n.sql("DELETE FROM nasty WHERE id >= 2;");
    assert_eq!(n.dump().len(), 1);
    let restore = [
        "restore",
        "gb-1",
        "--from",
        &b,
        "--table",
        "nasty",
        "--where",
        "id >= 2",
        "--yes-really-production",
    ];
    let out = svc.ok(&restore);
    assert!(
        out.contains(&format!("restored {} rows", original.len() - 1)),
        "{out}"
    );
    assert_eq!(n.dump(), original, "a partial restore changed bytes");

    // The dry run prints statements a user can run with the engine's own client.
    n.sql("DELETE FROM nasty WHERE id >= 2;");
    let mut dry: Vec<&str> = restore.to_vec();
    dry.insert(0, "--json");
    dry.push("--dry-run");
    let v: serde_json::Value = serde_json::from_str(&svc.ok(&dry)).unwrap();
    assert_eq!(n.dump().len(), 1, "a dry run wrote rows");
    let statements: Vec<&str> = v["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    // The transaction's start and end, and one INSERT per row but the live first one.
    assert_eq!(statements.len(), original.len() + 1, "{v}");
    n.sql(&statements.join("\n"));
    assert_eq!(n.dump(), original, "the dry run's statements change bytes");
}

/// A whole restore over changed rows, and an export loaded by the engine's own tool.
fn whole(engine: Engine) {
    let n = Nasty::new(engine);
    let svc = &n.es.svc;
    let original = n.dump();
    assert_eq!(original, n.expected(), "the test's own writing went wrong");
    let b = n.backup();
    n.sql("UPDATE nasty SET body = 'changed', data = NULL; DELETE FROM nasty WHERE id = 3;");
    assert_ne!(n.dump(), original);
    svc.ok(&["restore", "gb-1", "--from", &b, "--yes-really-production"]);
    assert_eq!(n.dump(), original, "a whole restore changed bytes");

    let export = svc.path().join("export");
    svc.ok(&["export", &b, export.to_str().unwrap()]);
    let target = native_load(engine, &export);
    assert_eq!(
        Nasty::dump_of(engine, &target),
        original,
        "the export, loaded by the engine's own tool, changed bytes"
    );
}

#[test]
fn partial_restore_of_text_with_a_nul_byte_keeps_every_byte_on_sqlite() {
    partial(Engine::Sqlite);
}

#[test]
fn partial_restore_keeps_every_byte_on_postgres() {
    partial(Engine::Postgres);
}

#[test]
fn partial_restore_keeps_every_byte_on_mariadb() {
    partial(Engine::Mysql);
}

#[test]
fn whole_restore_and_export_keep_every_byte_on_sqlite() {
    whole(Engine::Sqlite);
}

#[test]
fn whole_restore_and_export_keep_every_byte_on_postgres() {
    whole(Engine::Postgres);
}

#[test]
fn whole_restore_and_export_keep_every_byte_on_mariadb() {
    whole(Engine::Mysql);
}
