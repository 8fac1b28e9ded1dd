//! Every HTTP endpoint, over real HTTP, against a fresh SQLite database.

use serde_json::json;

use crate::support::{count, open_db, Guestbook, Paths};

#[test]
fn health_reports_ok_and_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    let reply = gb.get("/health");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), r#"{"status":"ok","schema":3}"#);
}

#[test]
fn entries_are_created_listed_fetched_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    assert_eq!(gb.get("/entries").json(), json!([]));

    let reply = gb.post(
        "/entries",
        json!({"author": "Ann", "message": "Lovely workshop", "tags": ["SWC", "DC", "SWC"]}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let ann = reply.json();
    assert_eq!(ann["author"], "Ann");
    assert_eq!(ann["message"], "Lovely workshop");
    assert_eq!(ann["email"], serde_json::Value::Null);
    assert_eq!(ann["tags"], json!(["DC", "SWC"]));
    let created_at = ann["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 20,
        "{created_at}"
    );

    let bob = gb
        .post(
            "/entries",
            json!({"author": "Bob", "message": "Thanks!", "email": "bob@example.org"}),
        )
        .json();
    assert_eq!(bob["email"], "bob@example.org");
    assert_eq!(bob["tags"], json!([]));

    let all = gb.get("/entries").json();
    assert_eq!(all, json!([ann, bob]), "ordered by id, each with its tags");

    let id = ann["id"].as_i64().unwrap();
    assert_eq!(gb.get(&format!("/entries/{id}")).json(), ann);
    assert_eq!(gb.delete(&format!("/entries/{id}")).status, 204);
    assert_eq!(gb.get(&format!("/entries/{id}")).status, 404);
    assert_eq!(gb.delete(&format!("/entries/{id}")).status, 404);
    assert_eq!(gb.get("/entries").json(), json!([bob]));
    // The deleted entry's links went with it; its tags stay, now unused.
    let tags = gb.get("/tags").json();
    assert_eq!(tags[0]["name"], "DC");
    assert_eq!(tags[0]["entries"], 0);
}

#[test]
fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    let cases = [
        ("/entries", json!({"author": "Ann"})),
        ("/entries", json!({"author": " ", "message": "x"})),
        (
            "/entries",
            json!({"author": "a", "message": "x", "tags": ["a/b"]}),
        ),
        (
            "/entries",
            json!({"author": "a", "message": "x", "tags": [""]}),
        ),
        (
            "/entries",
            json!({"author": "a", "message": "x", "colour": "red"}),
        ),
        ("/tags", json!({"name": "x".repeat(101)})),
        ("/tags", json!({})),
    ];
    for (path, body) in cases {
        let reply = gb.post(path, body.clone());
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{body}");
    }
    let reply = gb.request("POST", "/entries", Some(b"{not json"), &[]);
    assert_eq!(reply.status, 400);
    assert_eq!(gb.get("/entries/seven").status, 400);
    assert_eq!(gb.get("/entries/7").json()["error"], "no entry 7");
    assert_eq!(gb.get("/no/such/route").status, 404);
    assert_eq!(gb.get("/entries").json(), json!([]), "nothing was stored");
}

#[test]
fn tags_are_created_counted_and_listed_with_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    let reply = gb.post("/tags", json!({"name": "TTT"}));
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["name"], "TTT");
    assert_eq!(reply.json()["entries"], 0);
    assert_eq!(gb.post("/tags", json!({"name": "TTT"})).status, 409);
    // Names are case-sensitive, on every engine.
    assert_eq!(gb.post("/tags", json!({"name": "ttt"})).status, 201);

    let a = gb.post(
        "/entries",
        json!({"author": "a", "message": "1", "tags": ["DC", "TTT"]}),
    );
    let b = gb.post(
        "/entries",
        json!({"author": "b", "message": "2", "tags": ["DC"]}),
    );
    gb.post(
        "/entries",
        json!({"author": "c", "message": "3", "tags": ["SWC"]}),
    );

    let tags = gb.get("/tags").json();
    let counts: Vec<(String, i64)> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["entries"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [("DC", 2), ("SWC", 1), ("TTT", 1), ("ttt", 0)];
    let want: Vec<(String, i64)> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(counts, want);

    let dc = gb.get("/tags/DC/entries");
    assert_eq!(dc.status, 200);
    assert_eq!(dc.json(), json!([a.json(), b.json()]));
    assert_eq!(gb.get("/tags/ttt/entries").json(), json!([]));
    let unknown = gb.get("/tags/nope/entries");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], r#"no tag "nope""#);
    assert_eq!(gb.delete("/tags/nope").status, 404);
}

/// The AMY bug (v1.5.2 postmortem): removing a tag also removed every link from an
/// event to it. guestbook reproduces it on purpose, so ostler can find and restore
/// the lost `entry_tags` rows from a backup.
#[test]
fn deleting_a_tag_deletes_its_links_but_not_the_entries_amy() {
    let dir = tempfile::tempdir().unwrap();
    let gb = Guestbook::start(dir.path());
    for (author, tags) in [
        ("a", vec!["SWC", "DC"]),
        ("b", vec!["DC"]),
        ("c", vec!["TTT"]),
    ] {
        let reply = gb.post(
            "/entries",
            json!({"author": author, "message": "m", "tags": tags}),
        );
        assert_eq!(reply.status, 201);
    }
    let db = open_db(&Paths::in_dir(dir.path()).db);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM entry_tags"), 4);

    assert_eq!(gb.delete("/tags/DC").status, 204);

    assert_eq!(count(&db, "SELECT COUNT(*) FROM entry_tags"), 2);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM tags WHERE name = 'DC'"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM entries"), 3);
    let entries = gb.get("/entries").json();
    let tags: Vec<_> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tags"].clone())
        .collect();
    assert_eq!(tags, [json!(["SWC"]), json!([]), json!(["TTT"])]);
    assert_eq!(gb.get("/tags/DC/entries").status, 404);
    // A new tag with the old name is a different tag: the old links stay lost.
    assert_eq!(gb.post("/tags", json!({"name": "DC"})).status, 201);
    assert_eq!(gb.get("/tags/DC/entries").json(), json!([]));
}

#[test]
fn uploads_are_stored_as_files_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let gb = Guestbook::start(dir.path());
    assert_eq!(gb.get("/uploads").json(), json!([]));

    let reply = gb.put("/uploads/photo.jpg", b"\x00\xffnot really a jpeg");
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json(), json!({"name": "photo.jpg", "size": 19}));
    assert_eq!(
        std::fs::read(paths.store.join("photo.jpg")).unwrap(),
        b"\x00\xffnot really a jpeg"
    );
    let big = vec![b'x'; 3 << 20]; // beyond axum's default 2 MiB body limit
    assert_eq!(gb.put("/uploads/big.bin", &big).status, 201);
    assert_eq!(gb.put("/uploads/photo.jpg", b"replaced").status, 200);

    let got = gb.get("/uploads/photo.jpg");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"replaced");
    assert_eq!(gb.get("/uploads/big.bin").body.len(), 3 << 20);
    assert_eq!(
        gb.get("/uploads").json(),
        json!([{"name": "big.bin", "size": 3 << 20}, {"name": "photo.jpg", "size": 8}])
    );
    assert_eq!(gb.get("/uploads/missing").status, 404);

    for bad in ["..%2Fescaped", "a..b", ".hidden", "sub%2Fdir"] {
        let reply = gb.put(&format!("/uploads/{bad}"), b"x");
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        assert_eq!(gb.get(&format!("/uploads/{bad}")).status, 400, "{bad}");
    }
    assert!(!dir.path().join("escaped").exists());
    let mut names: Vec<_> = std::fs::read_dir(&paths.store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["big.bin", "photo.jpg"],
        "no temporary files left behind"
    );

    assert_eq!(gb.delete("/uploads/big.bin").status, 204);
    assert_eq!(gb.delete("/uploads/big.bin").status, 404);
}

#[test]
fn uploads_are_off_without_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gb.db").display().to_string();
    let args = ["--port", "0", "--db", &db].map(String::from);
    let gb = Guestbook::start_with(&args).unwrap();
    assert_eq!(gb.get("/uploads").status, 501);
    assert_eq!(gb.put("/uploads/a", b"x").status, 501);
}
