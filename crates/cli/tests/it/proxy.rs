//! `[proxy]` under `ostler serve`: requests reach the instance behind the role with
//! X-Forwarded-* added, bodies stream both ways (a 20 MiB upload, a 5 MiB download),
//! the proxy writes its own access log, and `ostler maintenance on` (or a backend that
//! does not answer) gives the maintenance page with 503 and Retry-After, kept across a
//! daemon restart. The backend is a real HTTP server run as the instance.

use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, service_header, wait_for, Daemon, Load, Svc, NAMED_BACKEND};

/// An HTTP/1.1 server (keep-alive) that answers what the proxy sent it.
const BACKEND: &str = r#"
import http.server, json, sys, hashlib
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, code, body, kind="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/health":
            return self.answer(200, b"ok", "text/plain")
        if self.path == "/big":
            body = bytes(range(256)) * (5 * 4096)
            return self.answer(200, body, "application/octet-stream")
        seen = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                "peer_port": self.client_address[1]}
        self.answer(200, json.dumps(seen).encode())
    def do_PUT(self):
        left, digest, n = int(self.headers["Content-Length"]), hashlib.sha256(), 0
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            digest.update(chunk); n += len(chunk); left -= len(chunk)
        self.answer(201, json.dumps({"bytes": n, "sha256": digest.hexdigest()}).encode())
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

struct Proxied {
    svc: Svc,
    proxy: u16,
}

fn proxied(extra: &str) -> Proxied {
    let (proxy, port) = (free_port(), free_port());
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"web\"\n\n[instances.web]\ndir = \"web\"\nstart = \"python3 backend.py {{port}}\"\nport = {port}\nhealth = \"http://127.0.0.1:{{port}}/health\"\nautostart = true\n\n[proxy]\nlisten = \"127.0.0.1:{proxy}\"\n{extra}",
        service_header("timezone = \"UTC\""),
    ));
    std::fs::create_dir_all(svc.path().join("web")).unwrap();
    std::fs::write(svc.path().join("web/backend.py"), BACKEND).unwrap();
    Proxied { svc, proxy }
}

fn get(agent: &ureq::Agent, port: u16, path: &str) -> (u16, ureq::Response) {
    match agent.get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

fn serving(p: &Proxied) -> ureq::Agent {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    wait_for(
        Duration::from_secs(30),
        "the backend through the proxy",
        || {
            agent
                .get(&format!("http://127.0.0.1:{}/health", p.proxy))
                .call()
                .is_ok()
        },
    );
    agent
}

#[test]
fn requests_reach_the_role_s_instance_with_forwarded_headers_and_stream_both_ways() {
    let p = proxied("");
    let daemon = Daemon::start_up(&p.svc);
    let agent = serving(&p);
    let (status, r) = get(&agent, p.proxy, "/hello?x=1");
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(seen["path"], "/hello?x=1");
    assert_eq!(seen["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "http");
    assert_eq!(
        seen["headers"]["x-forwarded-host"],
        format!("127.0.0.1:{}", p.proxy)
    );
    // The proxy keeps its connection to the backend: the next request comes from the
    // same port.
    let (_, r) = get(&agent, p.proxy, "/again");
    let again: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(again["peer_port"], seen["peer_port"]);

    let upload: Vec<u8> = (0..20 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = agent
        .put(&format!("http://127.0.0.1:{}/upload", p.proxy))
        .send_bytes(&upload)
        .unwrap();
    assert_eq!(r.status(), 201);
    let stored: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(stored["bytes"], upload.len());

    let (status, r) = get(&agent, p.proxy, "/big");
    assert_eq!(status, 200);
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
    let expected: Vec<u8> = (0..=255u8).cycle().take(5 * 1024 * 1024).collect();
    assert!(body == expected, "the download arrives whole and in order");

    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let log = std::fs::read_to_string(p.svc.path().join(".ostler/logs/proxy-access.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("/hello?x=1"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("\"GET /hello?x=1 HTTP/1.1\" 200 "), "{line}");
    assert!(log.contains("\"PUT /upload HTTP/1.1\" 201"), "{log}");
}

#[test]
fn maintenance_and_a_backend_that_does_not_answer_give_the_page_with_503_and_retry_after() {
    let p = proxied("maintenance_page = \"down.html\"\nretry_after = \"2m\"\n");
    std::fs::write(p.svc.path().join("down.html"), "<p>Back at noon.</p>\n").unwrap();
    let daemon = Daemon::start_up(&p.svc);
    let agent = serving(&p);
    let on = p
        .svc
        .ok(&["maintenance", "on", "--reason", "schema change"]);
    assert!(on.contains("maintenance: on since"), "{on}");
    assert!(on.contains(": schema change"), "{on}");
    wait_for(Duration::from_secs(10), "the maintenance page", || {
        get(&agent, p.proxy, "/").0 == 503
    });
    let (_, r) = get(&agent, p.proxy, "/entries");
    assert_eq!(r.header("retry-after"), Some("120"));
    assert_eq!(r.into_string().unwrap(), "<p>Back at noon.</p>\n");
    assert!(p.svc.ok(&["maintenance"]).contains("maintenance: on"));

    // The routing outlives the daemon: a new one starts in maintenance.
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    let daemon = Daemon::start_up(&p.svc);
    wait_for(Duration::from_secs(20), "the proxy again", || {
        agent
            .get(&format!("http://127.0.0.1:{}/", p.proxy))
            .call()
            .is_err_and(|e| matches!(e, ureq::Error::Status(503, _)))
    });
    let off = p.svc.ok(&["maintenance", "off"]);
    assert!(off.contains("maintenance: off"), "{off}");
    wait_for(Duration::from_secs(10), "service again", || {
        get(&agent, p.proxy, "/health").0 == 200
    });

    // The backend stops: the page, not a connection error.
    p.svc.ok(&["stop", "web"]);
    let (status, r) = get(&agent, p.proxy, "/entries");
    assert_eq!(status, 503);
    assert_eq!(r.header("x-ostler-proxy"), Some("backend down"));
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    assert!(p.svc.ok(&["journal"]).contains("maintenance on by"));
}

#[test]
fn a_proxy_role_that_names_nothing_is_refused_at_its_line() {
    let p = proxied("role = \"nosuch\"\n");
    let err = p.svc.fails(&["config", "check"]);
    assert!(
        err.contains("[proxy] role `nosuch` is no role or instance"),
        "{err}"
    );
    assert!(err.contains("ostler.toml:"), "{err}");
}

#[test]
fn a_switch_under_load_fails_no_request_and_waits_for_the_old_backend_s_last_one() {
    let proxy = free_port();
    let instance = |name: &str| {
        format!(
            "[instances.{name}]\ndir = \"app\"\nstart = \"python3 named.py {{port}} {name}\"\nport = {}\nhealth = \"http://127.0.0.1:{{port}}/\"\nautostart = true\n\n",
            free_port()
        )
    };
    let svc = Svc::new(&format!(
        "{}[roles]\nproduction = \"blue\"\n\n{}{}[proxy]\nlisten = \"127.0.0.1:{proxy}\"\n",
        service_header("timezone = \"UTC\""),
        instance("blue"),
        instance("green"),
    ));
    std::fs::create_dir_all(svc.path().join("app")).unwrap();
    std::fs::write(svc.path().join("app/named.py"), NAMED_BACKEND).unwrap();
    let daemon = Daemon::start_up(&svc);
    wait_for(Duration::from_secs(30), "both instances up", || {
        svc.instance_status("blue")["state"] == "running"
            && svc.instance_status("green")["state"] == "running"
            && ureq::get(&format!("http://127.0.0.1:{proxy}/"))
                .call()
                .is_ok()
    });
    let load = Load::start(proxy);
    // A slow request to blue is in flight when the switch comes.
    let slow = std::thread::spawn(move || {
        ureq::get(&format!("http://127.0.0.1:{proxy}/slow"))
            .call()
            .map(|r| r.into_string().unwrap())
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = svc.run(&["proxy", "switch", "green"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("blue finished its requests in flight"),
        "{said}"
    );
    assert_eq!(
        slow.join().unwrap().unwrap(),
        "blue",
        "the old backend's last answer"
    );
    // Answers read before the drain ended are all counted by now.
    std::thread::sleep(Duration::from_millis(100));
    let switched_at = load.answered();
    svc.ok(&["stop", "blue"]);
    std::thread::sleep(Duration::from_millis(700));
    let (seen, failures) = load.end();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        seen[..switched_at].iter().any(|s| s == "blue"),
        "served by blue first"
    );
    assert!(
        seen[switched_at..].iter().all(|s| s == "green"),
        "only green after the switch"
    );
    assert!(seen.len() > switched_at, "green served");
    let shown = svc.ok(&["proxy"]);
    assert!(shown.contains("backend: green"), "{shown}");
    assert!(svc.ok(&["journal"]).contains("proxy switched to green"));
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    svc.ok(&["stop", "green"]);
}

/// GETs `url` over TLS with Python's client, trusting only `ca`: the body, or the error.
fn https_get(ca: &std::path::Path, url: &str) -> Result<String, String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import ssl, sys, urllib.request\n\
             ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
             print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=10).read().decode(), end='')",
        ])
        .arg(ca)
        .arg(url)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn tls_is_terminated_with_the_certificate_files_and_the_backend_hears_https() {
    let p = proxied("tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n");
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::create_dir_all(p.svc.path().join("tls")).unwrap();
    let ca = p.svc.path().join("tls/cert.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    std::fs::write(p.svc.path().join("tls/key.pem"), key_pair.serialize_pem()).unwrap();
    let daemon = Daemon::start_up(&p.svc);
    let url = format!("https://localhost:{}/hello", p.proxy);
    let mut answer = Err(String::new());
    wait_for(Duration::from_secs(30), "the backend over TLS", || {
        answer = https_get(&ca, &url);
        answer.is_ok()
    });
    let seen: Value = serde_json::from_str(&answer.unwrap()).unwrap();
    assert_eq!(seen["path"], "/hello");
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    // Plain HTTP to the TLS port is not served.
    assert!(ureq::get(&format!("http://127.0.0.1:{}/hello", p.proxy))
        .call()
        .is_err());
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    // A key without its certificate is refused at its line.
    let half = proxied("tls_key = \"key.pem\"\n");
    std::fs::write(half.svc.path().join("key.pem"), "x").unwrap();
    let err = half.svc.fails(&["config", "check"]);
    assert!(err.contains("tls_key needs tls_cert"), "{err}");
}

#[test]
fn a_daemon_restarted_on_a_handed_socket_refuses_no_connection() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let p = proxied("");
    // What systemd's socket unit does: the socket outlives every daemon that serves it.
    let socket = std::net::TcpListener::bind(("127.0.0.1", p.proxy)).unwrap();
    let fd = socket.as_raw_fd();
    let start = || {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" serve --tick 100ms")
            .arg(crate::support::ostler_bin())
            .current_dir(p.svc.path())
            .env_remove("OSTLER_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        // Safety: only dup2 and fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    nix::fcntl::fcntl(
                        3,
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                    )?;
                } else {
                    nix::unistd::dup2(fd, 3)?;
                }
                Ok(())
            });
        }
        let daemon = Daemon(cmd.spawn().unwrap());
        wait_for(Duration::from_secs(20), "the daemon's control API", || {
            p.svc.run(&["serve", "--status"]).status.code() == Some(0)
        });
        daemon
    };
    let daemon = start();
    serving(&p);
    let load = Load::start(p.proxy);
    wait_for(Duration::from_secs(10), "answers", || load.answered() > 50);
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    assert!(err.contains("socket activation"), "{err}");
    let before = load.answered();
    let daemon = start();
    wait_for(
        Duration::from_secs(20),
        "answers from the new daemon",
        || load.answered() > before + 50,
    );
    let (_, failures) = load.end();
    let refused: Vec<&String> = failures.iter().filter(|f| f.contains("refused")).collect();
    assert!(
        refused.is_empty(),
        "refused while the daemon restarted: {refused:?} (all failures: {failures:?})"
    );
    let (ok, err) = daemon.terminate();
    assert!(ok, "{err}");
    p.svc.ok(&["stop", "web"]);
}
