//! The access log must parse as Apache's combined format, with the true body sizes,
//! because that is what ostler (and every log tool) reads it as.

use serde_json::json;

use crate::support::{wait_for_lines, Guestbook, Paths};

/// One combined-format line, split into its fields.
#[derive(Debug)]
struct Combined {
    host: String,
    ident: String,
    user: String,
    time: String,
    request: String,
    status: u16,
    bytes: Option<u64>,
    referer: String,
    agent: String,
}

/// A strict parser for `%h %l %u [%t] "%r" %>s %b "%{Referer}i" "%{User-agent}i"`.
fn parse(line: &str) -> Combined {
    let fail = |why: &str| -> ! { panic!("not combined format ({why}): {line}") };
    let (host, rest) = line.split_once(' ').unwrap_or_else(|| fail("host"));
    let (ident, rest) = rest.split_once(' ').unwrap_or_else(|| fail("ident"));
    let (user, rest) = rest.split_once(' ').unwrap_or_else(|| fail("user"));
    let rest = rest.strip_prefix('[').unwrap_or_else(|| fail("["));
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| fail("]"));
    let (request, rest) = quoted(rest).unwrap_or_else(|| fail("request"));
    let rest = rest.strip_prefix(' ').unwrap_or_else(|| fail("space"));
    let (status, rest) = rest.split_once(' ').unwrap_or_else(|| fail("status"));
    let (bytes, rest) = rest.split_once(' ').unwrap_or_else(|| fail("bytes"));
    let (referer, rest) = quoted(rest).unwrap_or_else(|| fail("referer"));
    let rest = rest.strip_prefix(' ').unwrap_or_else(|| fail("space"));
    let (agent, rest) = quoted(rest).unwrap_or_else(|| fail("agent"));
    if !rest.is_empty() {
        fail("trailing text");
    }
    Combined {
        host: host.into(),
        ident: ident.into(),
        user: user.into(),
        time: time.into(),
        request,
        status: status.parse().unwrap_or_else(|_| fail("status number")),
        bytes: match bytes {
            "-" => None,
            n => Some(n.parse().unwrap_or_else(|_| fail("byte count"))),
        },
        referer,
        agent,
    }
}

/// Splits a leading `"..."` (with `\"` and `\\` escapes) off `s`.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

#[test]
fn every_request_is_logged_in_combined_format_with_its_body_size() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let gb = Guestbook::start(dir.path());
    let before = jiff::Timestamp::now();

    let agent = r#"ostler-test/1.0 (says "hi")"#;
    let referer = "http://example.org/from?page=1";
    let headers = [("User-Agent", agent), ("Referer", referer)];
    let entry = json!({"author": "Ann", "message": "hello", "tags": ["DC"]}).to_string();
    let requests: Vec<(&str, &str, Option<&[u8]>)> = vec![
        ("GET", "/health", None),
        ("POST", "/entries", Some(entry.as_bytes())),
        ("GET", "/entries", None),
        ("GET", "/entries?sort=id&x=%22q%22", None),
        ("GET", "/tags", None),
        ("GET", "/tags/DC/entries", None),
        ("GET", "/tags/nope/entries", None),
        ("DELETE", "/tags/DC", None),
        ("HEAD", "/entries", None),
        ("GET", "/uploads", None),
    ];
    let mut replies = Vec::new();
    for (method, path, body) in &requests {
        replies.push(gb.request(method, path, *body, &headers));
    }

    let lines = wait_for_lines(&paths.access_log, requests.len());
    assert_eq!(lines.len(), requests.len(), "{lines:#?}");
    for ((line, (method, path, _)), reply) in lines.iter().zip(&requests).zip(&replies) {
        let c = parse(line);
        assert_eq!(c.host, "127.0.0.1", "{line}");
        assert_eq!((c.ident.as_str(), c.user.as_str()), ("-", "-"), "{line}");
        let t = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", &c.time)
            .and_then(|t| t.to_timestamp())
            .unwrap_or_else(|e| panic!("bad time in {line}: {e}"));
        assert!(c.time.ends_with(" +0000"), "{line}");
        let slack = jiff::SignedDuration::from_secs(120);
        assert!(
            t >= before - slack && t <= jiff::Timestamp::now() + slack,
            "{line}"
        );
        assert_eq!(c.request, format!("{method} {path} HTTP/1.1"), "{line}");
        assert_eq!(c.status, reply.status, "{line}");
        let sent = reply.body.len() as u64;
        assert_eq!(c.bytes, (sent > 0).then_some(sent), "{line}");
        assert_eq!(c.referer, referer, "{line}");
        assert_eq!(c.agent, agent, "{line}");
    }
    // Spot checks that the test exercised what it meant to.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 200, 200, 200, 200, 404, 204, 200, 200]);
    assert!(
        lines[7].contains("\" 204 - \""),
        "a bodiless reply logs '-': {}",
        lines[7]
    );
    assert!(
        lines[0].contains(r#""ostler-test/1.0 (says \"hi\")""#),
        "{}",
        lines[0]
    );
}

#[test]
fn lines_without_referer_or_agent_use_dashes_and_uploads_log_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let gb = Guestbook::start(dir.path());
    let data = vec![7u8; 200_000];
    gb.put("/uploads/blob", &data);
    let reply = gb.get("/uploads/blob");
    assert_eq!(reply.body.len(), data.len());
    let lines = wait_for_lines(&paths.access_log, 2);
    let get = parse(&lines[1]);
    assert_eq!(get.request, "GET /uploads/blob HTTP/1.1");
    assert_eq!(get.bytes, Some(200_000));
    assert_eq!(get.referer, "-");
    // ureq sends its own User-Agent; a request with none is still well-formed.
    assert!(get.agent.starts_with("ureq/"), "{}", lines[1]);
}

#[test]
fn sighup_reopens_the_log_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::in_dir(dir.path());
    let gb = Guestbook::start(dir.path());
    gb.get("/health");
    wait_for_lines(&paths.access_log, 1);
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&paths.access_log, &rotated).unwrap();
    gb.signal(libc::SIGHUP);
    // The server reopens on its own time: wait until the fresh file exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !paths.access_log.exists() {
        assert!(std::time::Instant::now() < deadline, "log never reopened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    gb.get("/entries");
    let lines = wait_for_lines(&paths.access_log, 1);
    assert!(lines[0].contains("GET /entries HTTP/1.1"), "{}", lines[0]);
    assert!(wait_for_lines(&rotated, 1)[0].contains("GET /health"));
}
