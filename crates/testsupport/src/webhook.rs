//! A real HTTP/1.1 server on loopback that records every request it gets (method,
//! path, headers, body) and answers with the statuses a test chose: 200 always, a
//! script of statuses first (500 twice, then 200, to test retries), or never (to test
//! timeouts). One request per connection (it answers `Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::loopback::{Loopback, Seen};

/// One request as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target (`/hook?x=1`).
    pub path: String,
    /// Names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the sink answered (none when it held the request unanswered).
    pub answered: Option<u16>,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A loopback webhook receiver for one test; stops when dropped.
pub struct WebhookSink {
    server: Loopback<Request>,
}

/// What the sink answers a request with.
enum Answer {
    Status(u16),
    Never,
}

impl WebhookSink {
    /// Answers every request 200.
    pub fn start() -> WebhookSink {
        WebhookSink::answering(&[])
    }

    /// Answers the first requests with `statuses`, in order, and every later one 200.
    pub fn answering(statuses: &[u16]) -> WebhookSink {
        let script = Arc::new(Mutex::new(statuses.to_vec()));
        WebhookSink::with(move || {
            let mut script = script.lock().unwrap_or_else(|e| e.into_inner());
            Answer::Status(if script.is_empty() {
                200
            } else {
                script.remove(0)
            })
        })
    }

    /// Reads each request and never answers it (the connection stays open until the
    /// sink is dropped).
    pub fn hanging() -> WebhookSink {
        WebhookSink::with(|| Answer::Never)
    }

    fn with(answer: impl Fn() -> Answer + Send + Sync + 'static) -> WebhookSink {
        let server = Loopback::start(move |stream, seen| {
            let _ = converse(stream, seen, &answer);
        });
        WebhookSink { server }
    }

    /// `http://127.0.0.1:PORT` followed by `path` (`/hook`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.server.items()
    }

    /// Waits up to `timeout` until `n` requests have come; the requests by then.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        self.server.wait_for(n, timeout)
    }
}

fn converse(
    stream: TcpStream,
    seen: &Seen<Request>,
    answer: &(dyn Fn() -> Answer + Send + Sync),
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut request = Request {
        method,
        path,
        headers,
        body,
        answered: None,
    };
    match answer() {
        Answer::Never => {
            seen.record(request);
            seen.hold(out);
        }
        Answer::Status(status) => {
            request.answered = Some(status);
            seen.record(request);
            let text = format!("the sink answers {status}\n");
            write!(
                out,
                "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                reason(status),
                text.len()
            )?;
            out.flush()?;
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
