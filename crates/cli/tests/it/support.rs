//! Shared helpers: a service directory with a config, the ostler binary run in it, the
//! guestbook binary, HTTP on loopback, and waiting without sleeping longer than needed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use ostler_testsupport::free_port;

pub fn ostler_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ostler"))
}

/// The guestbook binary, built next to ostler (`cargo test --workspace` builds it; a
/// lone `cargo test -p ostler` builds it here once).
pub fn guestbook_bin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = ostler_bin().parent().unwrap().to_path_buf();
        let path = dir.join("guestbook");
        if !path.exists() {
            let release = dir.ends_with("release");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "guestbook"]);
            if release {
                cmd.arg("--release");
            }
            assert!(cmd.status().unwrap().success(), "building guestbook failed");
        }
        path
    })
    .clone()
}

/// A service directory with an `ostler.toml`.
pub struct Svc {
    pub dir: tempfile::TempDir,
}

impl Svc {
    pub fn new(config: &str) -> Svc {
        let dir = tempfile::Builder::new()
            .prefix("ostler-it-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("ostler.toml"), config).unwrap();
        Svc { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ostler_bin());
        c.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("TZ", "UTC");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs ostler and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ostler {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs ostler and asserts it failed; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "ostler {args:?} should have failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `ostler status --json`: `{"daemon": ..., "instances": [...]}`.
    pub fn status_all(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// The instances of `ostler status --json`.
    pub fn status_json(&self) -> serde_json::Value {
        self.status_all()["instances"].take()
    }

    pub fn instance_status(&self, name: &str) -> serde_json::Value {
        self.status_json()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    }

    pub fn pid(&self, name: &str) -> Option<i32> {
        self.instance_status(name)["pid"].as_i64().map(|p| p as i32)
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        // Leave no service running behind a test, pass or fail.
        let _ = self.cmd(&["status", "--json"]).output().map(|o| {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                for s in v["instances"].as_array().into_iter().flatten() {
                    if let Some(pid) = s["pid"].as_i64() {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        });
    }
}

/// One guestbook instance's config section on SQLite.
pub fn guestbook_instance(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[instances.{name}]
dir = "instances/{name}"
build = "cp {gb} ."
start = "./guestbook --port {{port}} --db {{db}} --store uploads --access-log access.log"
port = {port}
health = "http://127.0.0.1:{{port}}/health"
health_timeout = "20s"
stop_timeout = "5s"
{extra}

[instances.{name}.database]
kind = "sqlite"
path = "data.db"

[[instances.{name}.stores]]
name = "uploads"
path = "uploads"
"#,
        gb = guestbook_bin().display()
    )
}

pub fn service_header(extra: &str) -> String {
    format!("[service]\nname = \"guestbook\"\nstate_dir = \".ostler\"\n{extra}\n")
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    match ureq::get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

pub fn http_post(port: u16, path: &str, json: &str) -> (u16, String) {
    match ureq::post(&format!("http://127.0.0.1:{port}{path}"))
        .set("Content-Type", "application/json")
        .send_string(json)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

pub fn pid_alive(pid: i32) -> bool {
    ostler_core_alive(pid)
}

fn ostler_core_alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // state is the field after the parenthesised command
    match stat.rsplit_once(") ") {
        Some((_, rest)) => !rest.starts_with('Z') && !rest.starts_with('X'),
        None => false,
    }
}

/// `ostler serve --tick 100ms` running in a service dir; killed when dropped, so no
/// daemon outlives its test.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    pub fn start(svc: &Svc) -> Daemon {
        Daemon::start_ticking(svc, "100ms")
    }

    /// With the supervisor's look every `tick` (and sooner when a child exits).
    pub fn start_ticking(svc: &Svc, tick: &str) -> Daemon {
        let child = svc
            .cmd(&["serve", "--tick", tick])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Daemon(child)
    }

    /// Starts it and waits until its control API answers (`serve --status` exits 0).
    pub fn start_up(svc: &Svc) -> Daemon {
        let daemon = Daemon::start(svc);
        wait_for(Duration::from_secs(20), "the daemon's control API", || {
            svc.run(&["serve", "--status"]).status.code() == Some(0)
        });
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then waits: whether it exited 0, and its stderr.
    pub fn terminate(mut self) -> (bool, String) {
        use nix::sys::signal::{kill, Signal};
        kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            Signal::SIGTERM,
        )
        .unwrap();
        let out = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Four clients looping on GET / until stopped: what answered, and what failed.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(port: u16) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients = (0..4)
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .build();
                    let mut failures = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        match agent.get(&format!("http://127.0.0.1:{port}/")).call() {
                            Ok(r) => seen.lock().unwrap().push(r.into_string().unwrap()),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                    failures
                })
            })
            .collect();
        Load {
            stop,
            seen,
            clients,
        }
    }

    /// How many answers came so far.
    pub fn answered(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Stops it: (answers in order, failures).
    pub fn end(self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let failures = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        let seen = self.seen.lock().unwrap().clone();
        (seen, failures)
    }
}

/// An HTTP/1.1 server (`python3 named.py PORT NAME`) that says its name, as an
/// instance the proxy routes to; `/slow` answers after a second.
pub const NAMED_BACKEND: &str = r#"
import http.server, sys, time
name = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
