//! Every probe kind against real parts: HTTP servers on loopback (a thread with a
//! `TcpListener`) that answer at once, slowly, wrongly or not at all; TCP ports open
//! and closed; `sh` plugins with each exit code; a small tmpfs filled past its
//! thresholds (or, where mounting is not permitted, the real usage of a real path
//! straddled); a SQLite instance's orphan rows; TLS servers with self-signed
//! certificates close to expiry. Each test asserts what `ostler probe` would show.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ostler_core::config::Config;
use ostler_core::instance::Ostler;
use ostler_core::probes::{self, ProbeResult, Status};
use ostler_core::report::{Interrupt, Silent};

/// An ostler for a service in `dir` with `extra` config (instances, probes).
fn service(dir: &Path, extra: &str) -> Ostler {
    let path = dir.join("ostler.toml");
    let text = format!("[service]\nname = \"probe-test\"\nstate_dir = \"state\"\n{extra}");
    std::fs::write(&path, &text).unwrap();
    let config = Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}: {e:?}"));
    Ostler::new(config, Arc::new(Silent), Interrupt::new())
}

/// Runs the one probe `toml` (its `[[probes]]` body) configures, in a fresh service.
fn probe_once(toml: &str) -> ProbeResult {
    let dir = tempfile::tempdir().unwrap();
    probe_in(dir.path(), "", toml)
}

fn probe_in(dir: &Path, extra: &str, toml: &str) -> ProbeResult {
    let ostler = service(dir, &format!("{extra}\n[[probes]]\nname = \"p\"\n{toml}"));
    let probe = ostler.config.probe("p").unwrap().clone();
    probes::run(&ostler, &probe)
}

/// What a test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body_len: usize,
    headers: Vec<String>,
}

/// An HTTP server on loopback answering every request with `status` and `body`
/// after `delay`.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(status: &'static str, body: &'static str, delay: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || answer(stream, status, body, delay, &log));
            }
        });
        Server { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(stream: TcpStream, status: &str, body: &str, delay: Duration, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let line = line.trim_end().to_string();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(line);
    }
    let mut body_in = vec![0u8; length];
    let _ = reader.read_exact(&mut body_in);
    let mut parts = request_line.split_whitespace();
    log.lock().unwrap().push(Seen {
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("").to_string(),
        body_len: body_in.len(),
        headers,
    });
    std::thread::sleep(delay);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn http(url: &str, extra: &str) -> String {
    format!("kind = \"http\"\nurl = \"{url}\"\n{extra}")
}

#[test]
fn the_issue_put_of_1000_bytes_answered_204_is_ok_with_the_nagios_line() {
    let server = Server::start("204 No Content", "", Duration::ZERO);
    let result = probe_once(&http(
        &server.url("/dav/hub-test/put-test.txt"),
        "method = \"PUT\"\nbody_bytes = 1000\nexpect_status = 204\nwarn = \"3s\"\ncrit = \"10s\"\ntimeout = \"15s\"\ninterval = \"10m\"\nretries = 3\n[probes.headers]\nX-Probe = \"ostler\"",
    ));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path, "/dav/hub-test/put-test.txt");
    assert_eq!(seen[0].body_len, 1000, "the server received the whole body");
    assert!(
        seen[0].headers.iter().any(|h| h == "X-Probe: ostler"),
        "{:?}",
        seen[0].headers
    );
    let line = result.nagios_line("HTTP");
    assert!(
        line.starts_with("HTTP OK - 204 No Content in 0.0"),
        "{line}"
    );
    assert!(line.contains(" | time=0"), "{line}");
    assert!(line.contains("s;3;10;0 size=0B;;;0"), "{line}");
}

#[test]
fn a_slow_answer_is_warning_past_warn_and_critical_past_crit() {
    let thresholds = "warn = \"400ms\"\ncrit = \"1200ms\"\ntimeout = \"5s\"";
    let fast = Server::start("200 OK", "hello", Duration::ZERO);
    assert_eq!(
        probe_once(&http(&fast.url("/"), thresholds)).status,
        Status::Ok
    );
    let slow = Server::start("200 OK", "hello", Duration::from_millis(700));
    let result = probe_once(&http(&slow.url("/"), thresholds));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(result.perfdata[0].value >= 0.7, "{result:?}");
    assert!(
        result.summary.starts_with("200 OK in "),
        "{}",
        result.summary
    );
    let slower = Server::start("200 OK", "hello", Duration::from_millis(1500));
    let result = probe_once(&http(&slower.url("/"), thresholds));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.perfdata[0].warn.as_deref(), Some("0.4"));
    assert_eq!(result.perfdata[0].crit.as_deref(), Some("1.2"));
}

#[test]
fn no_answer_within_the_timeout_is_critical_and_takes_the_timeout_not_longer() {
    let stuck = Server::start("200 OK", "late", Duration::from_secs(5));
    let result = probe_once(&http(&stuck.url("/"), "timeout = \"1s\""));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(
        result.summary.contains("no answer within 1s"),
        "{}",
        result.summary
    );
    assert!(
        result.duration < Duration::from_secs(3),
        "{:?}",
        result.duration
    );
}

#[test]
fn the_wrong_status_and_the_wrong_body_are_critical_saying_what_was_expected() {
    let error = Server::start("500 Internal Server Error", "oops", Duration::ZERO);
    let result = probe_once(&http(&error.url("/"), ""));
    assert_eq!(result.status, Status::Critical);
    assert!(
        result
            .summary
            .starts_with("500 Internal Server Error (expected 2xx or 3xx) in "),
        "{}",
        result.summary
    );
    let ok = Server::start("200 OK", "<h1>Guestbook</h1>", Duration::ZERO);
    let result = probe_once(&http(&ok.url("/"), "expect_status = 201"));
    assert_eq!(result.status, Status::Critical);
    assert!(
        result.summary.contains("(expected 201)"),
        "{}",
        result.summary
    );
    let result = probe_once(&http(&ok.url("/"), "expect_body = \"Guestbook\""));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    let result = probe_once(&http(&ok.url("/"), "expect_body = \"Welcome\""));
    assert_eq!(result.status, Status::Critical);
    assert!(
        result
            .summary
            .ends_with("but the body does not hold `Welcome`"),
        "{}",
        result.summary
    );
}

#[test]
fn a_server_that_is_down_is_critical() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let result = probe_once(&http(&url, ""));
    assert_eq!(result.status, Status::Critical);
    assert!(
        result.summary.starts_with(&format!("GET {url}: ")),
        "{}",
        result.summary
    );
    assert!(
        result
            .nagios_line("HTTP")
            .starts_with("HTTP CRITICAL - GET "),
        "{}",
        result.nagios_line("HTTP")
    );
}

#[test]
fn tcp_is_ok_on_an_open_port_and_critical_on_a_closed_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let result = probe_once(&format!(
        "kind = \"tcp\"\naddress = \"127.0.0.1:{open}\"\nwarn = \"1s\""
    ));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert!(result
        .summary
        .starts_with(&format!("connected to 127.0.0.1:{open} in ")));
    let closed = closed_port();
    let result = probe_once(&format!("kind = \"tcp\"\naddress = \"127.0.0.1:{closed}\""));
    assert_eq!(result.status, Status::Critical);
    assert!(result.summary.contains("refused"), "{}", result.summary);
}

#[test]
fn a_command_plugin_gives_its_exit_code_output_and_perfdata_as_they_are() {
    for (code, status) in [
        (0, Status::Ok),
        (1, Status::Warning),
        (2, Status::Critical),
        (3, Status::Unknown),
        (7, Status::Unknown),
    ] {
        let result = probe_once(&format!(
            "kind = \"command\"\ncommand = '''echo \"LOAD {code} - load is 0.5|load1=0.5;1;2;0 'free mem'=12%\"; exit {code}'''"
        ));
        assert_eq!(result.status, status, "exit {code}: {result:?}");
        assert_eq!(result.summary, format!("LOAD {code} - load is 0.5"));
        assert_eq!(
            result.nagios_line(""),
            format!("LOAD {code} - load is 0.5 | load1=0.5;1;2;0 'free mem'=12%")
        );
    }
}

#[test]
fn a_plugin_runs_in_the_config_directory_and_one_past_its_timeout_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker"), "here").unwrap();
    let result = probe_in(
        dir.path(),
        "",
        "kind = \"command\"\ncommand = \"cat marker\"",
    );
    assert_eq!(result.summary, "here");
    let started = std::time::Instant::now();
    let result = probe_once("kind = \"command\"\ncommand = \"sleep 30\"\ntimeout = \"500ms\"");
    assert_eq!(result.status, Status::Critical);
    assert!(
        result
            .summary
            .contains("did not finish within 500ms; killed"),
        "{}",
        result.summary
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A tmpfs mounted for one test; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},nr_inodes=100"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "cannot mount a tmpfs on {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// What `df` says of `path`: percent of space used.
fn df_percent(path: &Path) -> f64 {
    let out = Command::new("df")
        .arg("--output=pcent")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap()
}

#[test]
fn a_disk_filled_past_its_thresholds_is_warning_then_critical() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let probe =
        "kind = \"disk\"\npath = \"disk\"\nwarn = \"85%\"\ncrit = \"95%\"\ninodes_warn = \"50%\"";
    let Some(_mounted) = Tmpfs::mount(&disk, "1M") else {
        // No mount here: the real usage of the real filesystem, straddled.
        let used = df_percent(dir.path());
        eprintln!(
            "disk probe on {} ({used}% used, as df says) instead",
            dir.path().display()
        );
        let straddled = |warn: f64| {
            probe_in(
                dir.path(),
                "",
                &format!("kind = \"disk\"\npath = \".\"\nwarn = \"{warn}%\""),
            )
        };
        assert_eq!(straddled((used + 2.0).min(100.0)).status, Status::Ok);
        if used >= 2.0 {
            assert_eq!(straddled(used - 2.0).status, Status::Warning);
        }
        return;
    };
    let result = probe_in(dir.path(), "", probe);
    assert_eq!(result.status, Status::Ok, "{result:?}");
    std::fs::write(disk.join("fill"), vec![0u8; 900 * 1024]).unwrap();
    let result = probe_in(dir.path(), "", probe);
    assert_eq!(result.status, Status::Warning, "{result:?}");
    let used = result.perfdata[0].value;
    assert!((85.0..95.0).contains(&used), "{used}");
    assert!(
        (used - df_percent(&disk)).abs() <= 1.0,
        "df agrees: {used} vs {}",
        df_percent(&disk)
    );
    assert!(
        result.nagios_line("DISK").contains("| used=8"),
        "{}",
        result.nagios_line("DISK")
    );
    std::fs::write(disk.join("fill"), vec![0u8; 1000 * 1024]).unwrap();
    assert_eq!(probe_in(dir.path(), "", probe).status, Status::Critical);
    // Inodes: 100 in all, 60 files make 60 % used.
    std::fs::remove_file(disk.join("fill")).unwrap();
    for i in 0..60 {
        std::fs::write(disk.join(format!("f{i}")), "").unwrap();
    }
    let result = probe_in(dir.path(), "", probe);
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(result.summary.contains("inodes 6"), "{}", result.summary);
}

#[test]
fn a_path_that_is_not_there_is_critical_naming_it() {
    let result = probe_once("kind = \"disk\"\npath = \"no/such/dir\"");
    assert_eq!(result.status, Status::Critical);
    assert!(
        result.summary.contains("no/such/dir is not accessible"),
        "{}",
        result.summary
    );
}

#[test]
fn the_issue_orphan_rows_query_is_ok_at_zero_and_warning_then_critical_past_its_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gb.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE item (uid TEXT); CREATE TABLE subscription (collectionuid TEXT);
         INSERT INTO item VALUES ('a'); INSERT INTO subscription VALUES ('a');",
    )
    .unwrap();
    let instance = "[roles]\nproduction = \"gb\"\n[instances.gb]\ndir = \".\"\nstart = \"true\"\nport = 18999\n[instances.gb.database]\nkind = \"sqlite\"\npath = \"gb.db\"";
    let probe = "kind = \"sql\"\ninstance = \"production\"\nquery = \"select count(*) from subscription s where not exists (select 1 from item i where i.uid = s.collectionuid)\"\nwarn = \"0\"\ncrit = \"100\"";
    let result = probe_in(dir.path(), instance, probe);
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(
        result.nagios_line("SQL"),
        "SQL OK - 0 on gb | value=0;0;100"
    );
    for i in 0..5 {
        conn.execute(
            "INSERT INTO subscription VALUES (?1)",
            [format!("gone-{i}")],
        )
        .unwrap();
    }
    let result = probe_in(dir.path(), instance, probe);
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert_eq!(result.summary, "5 on gb");
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO subscription SELECT 'x' || i FROM n;",
    )
    .unwrap();
    assert_eq!(
        probe_in(dir.path(), instance, probe).status,
        Status::Critical
    );
    // A query still running at the timeout is CRITICAL at the timeout.
    let started = std::time::Instant::now();
    let result = probe_in(
        dir.path(),
        instance,
        "kind = \"sql\"\ninstance = \"gb\"\ntimeout = \"300ms\"\nquery = \"with recursive n(i) as (select 1 union all select i + 1 from n where i < 20000000) select count(*) from n\"",
    );
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(
        result.summary,
        "the query on gb did not answer within 300ms"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A query that does not return a number cannot be judged.
    let result = probe_in(
        dir.path(),
        instance,
        "kind = \"sql\"\ninstance = \"gb\"\nquery = \"select 'many'\"",
    );
    assert_eq!(result.status, Status::Unknown);
    assert!(
        result.summary.contains("`many`, not a number"),
        "{}",
        result.summary
    );
}

/// A TLS server on loopback with a self-signed certificate for `localhost` whose
/// notAfter is midnight UTC `days` from now; it does one handshake per connection.
fn tls_server(days: i64) -> u16 {
    use rustls::pki_types::PrivateKeyDer;
    let expiry = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(
        expiry.year().into(),
        expiry.month() as u8,
        expiry.day() as u8,
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut stream).is_err() {
                    break;
                }
            }
            let _ = conn.complete_io(&mut stream);
        }
    });
    port
}

#[test]
fn a_certificate_ten_days_from_expiry_is_warning_and_three_days_critical() {
    let tls = |port: u16| {
        probe_once(&format!(
            "kind = \"tls\"\naddress = \"127.0.0.1:{port}\"\nserver_name = \"localhost\"\nwarn = \"30:\"\ncrit = \"7:\""
        ))
    };
    let result = tls(tls_server(10));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(
        result.summary.starts_with("the certificate of localhost (")
            && result.summary.contains("expires in 9 days"),
        "{}",
        result.summary
    );
    assert_eq!(result.perfdata[0].to_string(), "days=9;30:;7:");
    let result = tls(tls_server(3));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(
        result.summary.contains("expires in 2 days"),
        "{}",
        result.summary
    );
    assert_eq!(tls(tls_server(90)).status, Status::Ok);
    // Nothing listening: no certificate to read.
    let result = tls(closed_port());
    assert_eq!(result.status, Status::Critical);
    assert!(result.summary.contains("refused"), "{}", result.summary);
}

#[test]
fn a_tls_probe_on_a_plain_tcp_server_is_critical_not_a_hang() {
    let server = Server::start("200 OK", "", Duration::ZERO);
    let result = probe_once(&format!(
        "kind = \"tls\"\naddress = \"127.0.0.1:{}\"\nserver_name = \"localhost\"\ntimeout = \"2s\"",
        server.port
    ));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(
        result.summary.contains("TLS handshake with"),
        "{}",
        result.summary
    );
}

/// The problems `ostler.toml` text has, as (line, message).
fn config_problems(text: &str) -> Vec<(usize, String)> {
    let text = format!("[service]\nname = \"t\"\n{text}");
    match Config::parse(&text, Path::new("/srv/ostler.toml")) {
        Ok(_) => Vec::new(),
        Err(ostler_core::Error::Config { diagnostics }) => diagnostics
            .into_iter()
            .map(|d| (d.line, d.message))
            .collect(),
        Err(e) => panic!("not a config error: {e}"),
    }
}

const INSTANCE: &str = "[roles]\nproduction = \"blue\"\n[instances.blue]\ndir = \".\"\nstart = \"true\"\nport = 18998\n[instances.blue.database]\nkind = \"sqlite\"\npath = \"b.db\"\n";

#[test]
fn the_issue_probes_are_accepted_with_nagios_defaults() {
    let text = format!(
        "[service]\nname = \"t\"\n{INSTANCE}{}",
        r#"
[[probes]]
name = "dav-put"
kind = "http"
method = "PUT"
url = "http://127.0.0.1:8000/dav/hub-test/put-test.txt"
body_bytes = 1000
expect_status = 204
warn = "3s"
crit = "10s"
timeout = "15s"
interval = "10m"
retries = 3

[[probes]]
name = "orphan-subscriptions"
kind = "sql"
instance = "production"
query = "select count(*) from subscription s where not exists (select 1 from item i where i.uid = s.collectionuid)"
warn = "0"                          # Nagios range: alert outside 0..0
crit = "100"

[[probes]]
name = "up"
kind = "process"
instance = "blue"
"#
    );
    let config = Config::parse(&text, Path::new("/srv/ostler.toml")).unwrap();
    let put = config.probe("dav-put").unwrap();
    assert_eq!(put.interval.0, Duration::from_secs(600));
    assert_eq!(
        put.next_wait(true),
        Duration::from_secs(600),
        "retry_interval defaults to interval"
    );
    assert_eq!(put.thresholds().warn.unwrap().end, 3.0);
    let sql = config.probe("orphan-subscriptions").unwrap();
    assert_eq!(sql.instance_in(&config).as_deref(), Some("blue"));
    let up = config.probe("up").unwrap();
    assert_eq!(
        (up.interval.0, up.timeout.0, up.retries()),
        (Duration::from_secs(60), Duration::from_secs(10), 3)
    );
    assert_eq!(up.flap(), (25.0, 50.0));
}

#[test]
fn a_key_of_another_kind_is_refused_at_its_line() {
    let problems = config_problems(
        "[[probes]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\nquery = \"select 1\"\ncommand = \"true\"\n",
    );
    assert_eq!(
        problems,
        vec![
            (
                7,
                "probe `web`: `query` is only for kind \"sql\", not \"http\"".to_string()
            ),
            (
                8,
                "probe `web`: `command` is only for kind \"command\", not \"http\"".to_string()
            ),
        ]
    );
}

#[test]
fn an_unknown_key_a_bad_range_and_a_bad_duration_point_at_their_lines() {
    let unknown = config_problems(
        "[[probes]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\nexpect_code = 200\n",
    );
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].0, 7);
    assert!(
        unknown[0].1.contains("unknown field `expect_code`"),
        "{}",
        unknown[0].1
    );
    let range = config_problems(
        "[[probes]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\nwarn = \"3%\"\n",
    );
    assert_eq!(range.len(), 1, "{range:?}");
    assert_eq!(range[0].0, 7);
    assert!(
        range[0]
            .1
            .starts_with("probe `web`: `warn`: threshold `3%` is not a Nagios range"),
        "{}",
        range[0].1
    );
    let duration = config_problems(
        "[[probes]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\ninterval = \"often\"\n",
    );
    assert_eq!(duration.len(), 1);
    assert_eq!(duration[0].0, 7);
    assert!(
        duration[0].1.contains("invalid duration `often`"),
        "{}",
        duration[0].1
    );
}

#[test]
fn cross_config_problems_are_found_all_at_once_each_at_its_line() {
    let problems = config_problems(&format!(
        "{INSTANCE}[[probes]]\nname = \"db\"\nkind = \"sql\"\ninstance = \"green\"\nquery = \"select 1\"\n[[probes]]\nname = \"db\"\nkind = \"process\"\n[[probes]]\nname = \"web\"\nkind = \"http\"\nretries = 0\n"
    ));
    let lines: Vec<usize> = problems.iter().map(|p| p.0).collect();
    let texts: Vec<&str> = problems.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(
        texts
            .contains(&"probe `db` names instance `green`, which is not defined (instances: blue)"),
        "{texts:?}"
    );
    assert!(texts.contains(&"two probes are named `db`"), "{texts:?}");
    assert!(
        texts.contains(&"probe `db`: kind \"process\" needs `instance` (an instance or a role)"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"probe `web`: kind \"http\" needs `url`"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("probe `web`: `retries` is at least 1")),
        "{texts:?}"
    );
    // Each at its own line: instance at 15, the second name at 18, its kind at 19,
    // the third kind at 22, retries at 23.
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(sorted, vec![15, 18, 19, 22, 23], "{problems:#?}");
}

#[test]
fn the_examples_in_docs_probes_md_parse() {
    let doc = include_str!("../../../docs/PROBES.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let text = format!("[service]\nname = \"t\"\n{INSTANCE}{}", blocks.join("\n"));
    let config = Config::parse(&text, Path::new("/srv/ostler.toml"))
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
    assert!(config.probe("dav-put").is_some());
    assert!(config.probe("hub-cert").is_some());
}
