//! The access log, in Apache's combined format.
//!
//! Investigations like AMY's start from the web server's access log: which request,
//! when, and how many bytes it returned (a response that suddenly grows tenfold is
//! the clue). ostler's log tools and tests read this file, so it must be the format
//! every tool already parses:
//!
//! `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`
//!
//! `%b` is the number of body bytes actually sent, or `-` for none, as Apache
//! writes it. To know that number the response body is wrapped and counted as it
//! streams out; the line is written when the body ends or is dropped (a client that
//! hangs up early is logged with the bytes it got). Lines are written whole with
//! one `write` on a file opened for appending, so `copytruncate` rotation works, and
//! SIGHUP reopens the file for rotation by renaming.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

pub struct AccessLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AccessLog {
    pub fn open(path: &Path) -> Result<Arc<AccessLog>> {
        Ok(Arc::new(AccessLog {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        }))
    }

    /// Starts writing to a fresh file at the same path (after a rename by logrotate).
    pub fn reopen(&self) -> Result<()> {
        let file = open_append(&self.path)?;
        *self.lock() = file;
        Ok(())
    }

    fn write_line(&self, line: &str) {
        if let Err(err) = self.lock().write_all(line.as_bytes()) {
            tracing::error!("cannot write access log {}: {err}", self.path.display());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open access log {}", path.display()))
}

/// Everything in the line but the byte count, which is known only at the end.
struct Pending {
    log: Arc<AccessLog>,
    head: String,
    tail: String,
}

impl Pending {
    fn finish(self, bytes: u64) {
        let size = if bytes == 0 {
            "-".to_string()
        } else {
            bytes.to_string()
        };
        self.log
            .write_line(&format!("{} {size} {}\n", self.head, self.tail));
    }
}

/// axum middleware: logs every request that reaches the router.
pub async fn middleware(
    State(log): State<Arc<AccessLog>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let received = jiff::Timestamp::now();
    let request_line = format!("{} {} {:?}", req.method(), req.uri(), req.version());
    let referer = header_field(req.headers(), header::REFERER);
    let user_agent = header_field(req.headers(), header::USER_AGENT);
    let response = next.run(req).await;
    let pending = Pending {
        log,
        head: format!(
            "{} - - [{}] \"{}\" {}",
            peer.ip(),
            clf_time(received),
            escape(request_line.as_bytes()),
            response.status().as_u16()
        ),
        tail: format!("\"{referer}\" \"{user_agent}\""),
    };
    response.map(|inner| {
        Body::new(CountingBody {
            inner,
            bytes: 0,
            pending: Some(pending),
        })
    })
}

/// `[10/Oct/2026:13:55:36 +0000]`'s inside, always in UTC.
pub fn clf_time(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%d/%b/%Y:%H:%M:%S %z")
        .to_string()
}

fn header_field(headers: &HeaderMap, name: HeaderName) -> String {
    match headers.get(name) {
        Some(v) => escape(v.as_bytes()),
        None => "-".to_string(),
    }
}

/// Escapes a logged field the way Apache's `ap_escape_logitem` does, so a quote in a
/// User-Agent cannot end the field early and control bytes cannot forge lines.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The response body, counting what passes through and logging when done.
struct CountingBody {
    inner: Body,
    bytes: u64,
    pending: Option<Pending>,
}

impl CountingBody {
    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(self.bytes);
        }
    }
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountingBody {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_in_common_log_format() {
        let t: jiff::Timestamp = "2026-10-10T13:55:36Z".parse().unwrap();
        assert_eq!(clf_time(t), "10/Oct/2026:13:55:36 +0000");
    }

    #[test]
    fn fields_are_escaped_like_apache() {
        assert_eq!(escape(b"curl/8.0"), "curl/8.0");
        assert_eq!(
            escape(b"a \"quoted\" \\ agent"),
            "a \\\"quoted\\\" \\\\ agent"
        );
        assert_eq!(escape(b"line\nbreak\x01\xff"), "line\\nbreak\\x01\\xff");
    }

    #[test]
    fn lines_are_appended_with_dash_for_empty_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "old line\n").unwrap();
        let log = AccessLog::open(&path).unwrap();
        let pending = |log: &Arc<AccessLog>| Pending {
            log: Arc::clone(log),
            head: "127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200".into(),
            tail: "\"-\" \"curl/8.0\"".into(),
        };
        pending(&log).finish(2326);
        pending(&log).finish(0);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "old line");
        assert_eq!(
            lines[1],
            "127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 2326 \"-\" \"curl/8.0\""
        );
        assert!(lines[2].contains(" 200 - \"-\""), "{}", lines[2]);

        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.reopen().unwrap();
        pending(&log).finish(5);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
