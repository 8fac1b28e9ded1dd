//! Runs the real `guestbook` binary for the tests: in a temp dir, with a cleared
//! environment, on a port the kernel picks (`--port 0`, read back from the start-up
//! line on stderr), and talks to it over real HTTP with ureq.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous: a debug build on a loaded 2-core CI machine.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guestbook"));
    cmd.env_clear();
    cmd
}

/// Runs `guestbook ARGS...` to completion (for `migrate` and `version`).
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run guestbook")
}

pub struct Guestbook {
    child: Child,
    pub base: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
    agent: ureq::Agent,
}

/// One HTTP exchange's result.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// The files a test's guestbook uses.
pub struct Paths {
    pub db: PathBuf,
    pub store: PathBuf,
    pub access_log: PathBuf,
}

impl Paths {
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            db: dir.join("guestbook.db"),
            store: dir.join("uploads"),
            access_log: dir.join("access.log"),
        }
    }

    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--port".into(),
            "0".into(),
            "--db".into(),
            self.db.display().to_string(),
            "--store".into(),
            self.store.display().to_string(),
            "--access-log".into(),
            self.access_log.display().to_string(),
        ]
    }
}

impl Guestbook {
    /// Starts a guestbook on the files in `dir` and waits until it listens.
    pub fn start(dir: &Path) -> Guestbook {
        Guestbook::start_with(&Paths::in_dir(dir).serve_args())
            .unwrap_or_else(|(status, stderr)| panic!("guestbook exited {status}: {stderr}"))
    }

    /// Starts `guestbook ARGS...`; if it exits instead of listening, returns its exit
    /// status and stderr.
    pub fn start_with(args: &[String]) -> Result<Guestbook, (ExitStatus, String)> {
        let mut child = bin()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn guestbook");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let collected = Arc::clone(&stderr);
        let reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("guestbook listening on ") {
                        let addr = rest.split(' ').next().unwrap().to_string();
                        let agent = ureq::AgentBuilder::new().timeout(PATIENCE).build();
                        return Ok(Guestbook {
                            child,
                            base: format!("http://{addr}"),
                            stderr,
                            reader: Some(reader),
                            agent,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    reader.join().unwrap();
                    let text = stderr.lock().unwrap().clone();
                    return Err((status, text));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("guestbook did not start: {}", stderr.lock().unwrap());
                }
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a request; `headers` are extra (name, value) pairs.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if body.is_some()
            && headers
                .iter()
                .all(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
        {
            req = req.set("Content-Type", "application/json");
        }
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(bytes) => req.send_bytes(bytes),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let mut body = Vec::new();
        response.into_reader().read_to_end(&mut body).unwrap();
        Reply { status, body }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, json: serde_json::Value) -> Reply {
        self.request("POST", path, Some(json.to_string().as_bytes()), &[])
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None, &[])
    }

    pub fn put(&self, path: &str, bytes: &[u8]) -> Reply {
        let octets = [("Content-Type", "application/octet-stream")];
        self.request("PUT", path, Some(bytes), &octets)
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Sends `signal` and waits for the process to exit; returns status and stderr.
    pub fn stop_with(mut self, signal: libc::c_int) -> (ExitStatus, String) {
        self.signal(signal);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The pipe is at EOF now, so the reader thread ends.
                self.reader.take().unwrap().join().unwrap();
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "guestbook ignored signal {signal}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guestbook {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `path` holds at least `n` lines (access-log lines are written as a
/// response body finishes, a moment after the client has read it) and returns them.
pub fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}:\n{text}",
            path.display(),
            lines.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the test's SQLite database directly, as another process (ostler) would.
pub fn open_db(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
