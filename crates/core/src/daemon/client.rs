//! The CLI's side of the control API ([`super::control`]): a blocking client that
//! speaks HTTP/1.1 over the daemon's Unix socket with hyper, on a current-thread
//! runtime of its own (so it must not be called from async code).
//!
//! No daemon is not an error: [`Client::connect`] says `None` when there is no socket
//! or nobody listens on it (a daemon that died left it), and every command works
//! without one. A daemon that does not answer within [`TIMEOUT`] is an error naming
//! the socket; an error the daemon answered comes back as an [`Error`] of its kind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::control::{socket_path, ApiError, DaemonStatus};
use crate::error::{Error, Result};

/// How long a request may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a running daemon.
pub struct Client {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// The daemon serving `state_dir`, or `None` when none runs.
    pub fn connect(state_dir: &Path) -> Result<Option<Client>> {
        let socket = socket_path(state_dir);
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(unreachable(&socket, e)),
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the control client's runtime", e))?;
        Ok(Some(Client { socket, runtime }))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<DaemonStatus> {
        self.get("/v1/status")
    }

    /// `GET path`, its JSON answer read as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.request(Method::GET, path, Vec::new())
    }

    /// `POST path` with `body` as JSON, its JSON answer read as `T`.
    /// Waits until the proxy's old backend `instance` has no request in flight (a
    /// switch's drain), at most `bound`; how many were still in flight when it gave up
    /// (0: drained).
    pub fn wait_drained(&self, instance: &str, bound: Duration) -> Result<usize> {
        let started = std::time::Instant::now();
        loop {
            let status: super::control::ProxyStatus = self.get("/v1/proxy")?;
            let left = status.in_flight.get(instance).copied().unwrap_or(0);
            if left == 0 || started.elapsed() >= bound {
                return Ok(left);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Other(e.into()))?;
        self.request(Method::POST, path, body)
    }

    fn request<T: DeserializeOwned>(&self, method: Method, path: &str, body: Vec<u8>) -> Result<T> {
        let what = format!("{method} {path}");
        let exchange = exchange(&self.socket, method, path, body);
        let (status, bytes) = self
            .runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, exchange).await })
            .map_err(|_| {
                Error::failed(format!(
                    "the daemon did not answer {what} within {} s ({})",
                    TIMEOUT.as_secs(),
                    self.socket.display()
                ))
            })??;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Error::failed(format!(
                    "the daemon's answer to {what} is not what this ostler reads ({e}); \
                     is it another version?"
                ))
            });
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(answer) => Err(answer.into_error()),
            Err(_) => Err(Error::failed(format!(
                "the daemon answered {what} with {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }
}

/// One request on a connection of its own.
async fn exchange(
    socket: &Path,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<(hyper::StatusCode, Bytes)> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| unreachable(socket, e))?;
    let talk = |e: hyper::Error| {
        Error::io(
            format!("talking to the daemon at {}", socket.display()),
            std::io::Error::other(e),
        )
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(talk)?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "ostler")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Error::Other(e.into()))?;
    let response = sender.send_request(request).await.map_err(talk)?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(talk)?
        .to_bytes();
    Ok((status, bytes))
}

fn unreachable(socket: &Path, e: std::io::Error) -> Error {
    Error::io(
        format!("cannot reach the daemon at {}", socket.display()),
        e,
    )
}
