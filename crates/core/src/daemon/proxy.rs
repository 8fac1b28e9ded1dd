//! The proxy component: HTTP/1.1 from `[proxy] listen` to the instance behind its role
//! ([`Routing::backend`]), with keep-alive on both sides and bodies streamed (a large
//! upload is never held in memory). It adds X-Forwarded-For/-Proto/-Host, writes its
//! own access log in the combined format, and answers 503 with the maintenance page and
//! Retry-After while in maintenance or when the backend does not answer.
//!
//! The routing is read from `<state_dir>/proxy.json` at start into the handle's
//! [`Traffic`], which the control API then switches (maintenance, another backend) in
//! one swap of an `Arc`: requests in flight finish where they began. The backend a role
//! names is looked up in the config in force at each request, so a reload needs nothing.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::host::{BoxFuture, Component, Handle};
use crate::error::{Error, Result};
use crate::proxy::routing::Backend;
use crate::proxy::{ProxyConfig, Routing};

type Body = BoxBody<Bytes, hyper::Error>;

/// What the proxy routes by and what it has in flight, shared with the control API
/// (which switches the routing at once: the next request goes to the new backend).
#[derive(Default)]
pub struct Traffic {
    routing: RwLock<Arc<Routing>>,
    in_flight: Mutex<BTreeMap<String, Arc<AtomicUsize>>>,
}

impl Traffic {
    pub fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `routing` in force for every request from now on.
    pub fn set_routing(&self, routing: Routing) {
        *self.routing.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routing);
    }

    /// Requests each backend is answering now (their responses included, until the
    /// last byte is sent).
    pub fn in_flight(&self) -> BTreeMap<String, usize> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::SeqCst)))
            .collect()
    }

    /// Counts a request to `instance` until the guard is dropped.
    fn enter(&self, instance: &str) -> InFlight {
        let counter = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(instance.to_string())
            .or_default()
            .clone();
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

/// One request in flight to a backend.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a connection's requests in flight may take to finish once the daemon
/// shuts down.
const DRAIN: Duration = Duration::from_secs(10);

/// How long the proxy keeps answering (with `Connection: close`) after shutdown is
/// asked, before it closes the connections left.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

pub struct Proxy;

impl Component for Proxy {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        Box::pin(async move {
            let Some(config) = handle.ostler().config.proxy.clone() else {
                // No [proxy]: nothing to serve (a reload that adds one takes a restart).
                handle.set_ready("proxy");
                shutdown.cancelled().await;
                return Ok(());
            };
            let listener = match inherited()? {
                Some(socket) => {
                    tracing::info!(listen = ?socket.local_addr().ok(), "proxy listening on the socket it was handed (socket activation)");
                    TcpListener::from_std(socket)
                        .map_err(|e| Error::io("[proxy] taking the handed socket", e))?
                }
                None => {
                    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
                        Error::io(format!("[proxy] listening on {}", config.listen), e)
                    })?;
                    tracing::info!(listen = %config.listen, "proxy listening");
                    listener
                }
            };
            // Files are read (certificates, the page, the routing) off the async threads.
            let (tls, shared) = {
                let (h, proxy) = (handle.clone(), config.clone());
                handle
                    .blocking(move |o| {
                        let tls = match proxy.tls_in(&o.config) {
                            Some((cert, key)) => Some(tls_acceptor(&cert, &key)?),
                            None => None,
                        };
                        let shared = Shared::new(&h, &proxy, tls.is_some())?;
                        Ok((tls, Arc::new(shared)))
                    })
                    .await?
            };
            handle.set_ready("proxy");
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            // Once shutdown is asked, the proxy still serves for CLOSE_GRACE, each answer
            // saying `Connection: close`: a client busy on a kept-alive connection moves
            // to a new one (the next daemon's, on a handed socket) instead of finding it
            // closed under its next request.
            let closer = shared.clone();
            let mut closing = Box::pin(async move {
                shutdown.cancelled().await;
                closer.closing.store(true, Ordering::SeqCst);
                tokio::time::sleep(CLOSE_GRACE).await;
            });
            loop {
                let (stream, peer) = tokio::select! {
                    _ = &mut closing => break,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!(error = %e, "proxy: accept failed");
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(shared.forward(req, peer).await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match &tls {
                    None => {
                        let conn =
                            graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, %peer, "proxy connection ended");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs on the connection's own task, not the
                        // accept loop's.
                        let (acceptor, watcher) = (acceptor.clone(), graceful.watcher());
                        tokio::spawn(async move {
                            let stream = match acceptor.accept(stream).await {
                                Ok(stream) => stream,
                                Err(e) => {
                                    tracing::debug!(error = %e, %peer, "proxy: TLS handshake failed");
                                    return;
                                }
                            };
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(error = %e, %peer, "proxy connection ended");
                            }
                        });
                    }
                }
            }
            drop((listener, closing));
            if tokio::time::timeout(DRAIN, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::warn!("proxy: requests still in flight after {DRAIN:?}; left");
            }
            // The last lines reach the access log before the daemon exits (unless a
            // connection left behind still holds the proxy): the connections' tasks
            // let go of it just after the drain.
            for _ in 0..100 {
                if Arc::strong_count(&shared) == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Ok(shared) = Arc::try_unwrap(shared) {
                let writer = shared.writer;
                drop(shared.access_log);
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::task::spawn_blocking(move || writer.join()),
                )
                .await;
            }
            Ok(())
        })
    }
}

/// What every request reads.
struct Shared {
    handle: Handle,
    client: Client<HttpConnector, Incoming>,
    /// Lines for the access log's writer thread (file writes stay off the async
    /// threads); it ends when the proxy does.
    access_log: std::sync::mpsc::Sender<String>,
    writer: std::thread::JoinHandle<()>,
    maintenance_page: Bytes,
    retry_after: String,
    timeout: Duration,
    /// What X-Forwarded-Proto says.
    proto: &'static str,
    /// The daemon shuts down: every answer closes its connection.
    closing: AtomicBool,
}

/// The page served with 503 when none is configured.
const DEFAULT_PAGE: &str = "<!doctype html>\n<title>Down for maintenance</title>\n<h1>Down for maintenance</h1>\n<p>The service is being worked on and will be back shortly.</p>\n";

impl Shared {
    fn new(handle: &Handle, proxy: &ProxyConfig, tls: bool) -> Result<Shared> {
        let ostler = handle.ostler();
        let config = &ostler.config;
        let (access_log, writer) = access_log_writer(proxy.access_log_in(config))?;
        let maintenance_page = match proxy.maintenance_page_in(config) {
            Some(path) => {
                Bytes::from(std::fs::read(&path).map_err(|e| Error::io_at("read", &path, e))?)
            }
            None => Bytes::from_static(DEFAULT_PAGE.as_bytes()),
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        handle
            .traffic()
            .set_routing(Routing::load(&ostler.state_dir())?);
        Ok(Shared {
            handle: handle.clone(),
            client,
            access_log,
            writer,
            maintenance_page,
            retry_after: proxy.retry_after.0.as_secs().to_string(),
            timeout: proxy.timeout.0,
            proto: if tls { "https" } else { "http" },
            closing: AtomicBool::new(false),
        })
    }

    async fn forward(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let line = RequestLine::of(&req, peer);
        let routing = self.handle.traffic().routing();
        let ostler = self.handle.ostler();
        let mut response = match (&routing.maintenance, routing.backend(&ostler.config)) {
            (Some(_), _) => self.unavailable("maintenance"),
            (None, None) => self.unavailable("no backend"),
            (None, Some(backend)) => self.to_backend(req, peer, &backend).await,
        };
        if self.closing.load(Ordering::SeqCst) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.log(&line, &response, started);
        response
    }

    async fn to_backend(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        backend: &Backend,
    ) -> Response<Body> {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri: Uri = match format!("http://127.0.0.1:{}{path}", backend.port).parse() {
            Ok(uri) => uri,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target\n"),
        };
        let in_flight = self.handle.traffic().enter(&backend.instance);
        let host = req.headers().get(header::HOST).cloned();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        forwarded_for(headers, peer, host, self.proto);
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                // Counted in flight until its body is sent (or dropped).
                response.map(|b| {
                    b.map_frame(move |frame| {
                        let _counted = &in_flight;
                        frame
                    })
                    .boxed()
                })
            }
            Ok(Err(e)) if e.is_connect() => {
                tracing::warn!(instance = %backend.instance, port = backend.port, error = %e, "proxy: backend does not answer");
                self.unavailable("backend down")
            }
            Ok(Err(e)) => {
                tracing::warn!(instance = %backend.instance, error = %e, "proxy: backend failed");
                plain(StatusCode::BAD_GATEWAY, "the backend failed to answer\n")
            }
            Err(_) => {
                tracing::warn!(instance = %backend.instance, timeout = ?self.timeout, "proxy: backend too slow");
                plain(StatusCode::GATEWAY_TIMEOUT, "the backend took too long\n")
            }
        }
    }

    /// 503 with the maintenance page and Retry-After.
    fn unavailable(&self, why: &'static str) -> Response<Body> {
        let mut response = Response::new(
            Full::new(self.maintenance_page.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.retry_after) {
            headers.insert(header::RETRY_AFTER, v);
        }
        headers.insert(
            HeaderName::from_static("x-ostler-proxy"),
            HeaderValue::from_static(why),
        );
        response
    }

    fn log(&self, line: &RequestLine, response: &Response<Body>, started: Instant) {
        let ostler = self.handle.ostler();
        let when = jiff::Zoned::new(self.handle.clock().now(), ostler.config.timezone())
            .strftime("%d/%b/%Y:%H:%M:%S %z")
            .to_string();
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // Combined format, and the time taken in microseconds (Apache's %D).
        let text = format!(
            "{} - - [{when}] \"{}\" {} {bytes} \"{}\" \"{}\" {}\n",
            line.client,
            line.request,
            response.status().as_u16(),
            line.referer,
            line.agent,
            started.elapsed().as_micros()
        );
        // The writer only goes away with the proxy.
        let _ = self.access_log.send(text);
    }
}

/// The listening socket systemd (or whoever starts the daemon the same way) handed
/// over as fd 3 (`LISTEN_FDS`, `LISTEN_PID`): connections wait in its backlog while
/// the daemon restarts, instead of being refused. Taken once per process; a proxy
/// restarted by the host gets a clone of it.
fn inherited() -> Result<Option<std::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    static HANDED: std::sync::OnceLock<Option<std::net::TcpListener>> = std::sync::OnceLock::new();
    let handed = HANDED.get_or_init(|| {
        let fd = sd_notify::listen_fds().ok()?.next()?;
        // Safety: systemd's protocol hands this fd to this process, to own.
        Some(unsafe { std::net::TcpListener::from_raw_fd(fd) })
    });
    match handed {
        None => Ok(None),
        Some(socket) => {
            let socket = socket
                .try_clone()
                .map_err(|e| Error::io("[proxy] the handed socket", e))?;
            socket
                .set_nonblocking(true)
                .map_err(|e| Error::io("[proxy] the handed socket", e))?;
            Ok(Some(socket))
        }
    }
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, what: &str, e: String| {
        Error::user(format!("[proxy] {}: {what}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, "reading the certificate chain", e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, "reading the certificate chain", e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            cert,
            "reading the certificate chain",
            "no certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, "reading the private key", e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failed(format!("[proxy] TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            bad(
                cert,
                "the certificate and key do not go together",
                e.to_string(),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Opens the access log for appending and starts the thread that writes it.
fn access_log_writer(
    path: PathBuf,
) -> Result<(std::sync::mpsc::Sender<String>, std::thread::JoinHandle<()>)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io_at("create", dir, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io_at("open", &path, e))?;
    let (lines, written) = std::sync::mpsc::channel::<String>();
    let writer = std::thread::Builder::new()
        .name("ostler-proxy-log".into())
        .spawn(move || {
            for line in written {
                if let Err(e) = file.write_all(line.as_bytes()) {
                    tracing::warn!(error = %e, path = %path.display(), "proxy: access log not written");
                }
            }
        })
        .map_err(|e| Error::io("starting the access log's writer", e))?;
    Ok((lines, writer))
}

/// What the access log says of a request, taken before it is forwarded.
struct RequestLine {
    client: String,
    request: String,
    referer: String,
    agent: String,
}

impl RequestLine {
    fn of(req: &Request<Incoming>, peer: SocketAddr) -> RequestLine {
        let header = |name: HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .replace('"', "\\\"")
        };
        RequestLine {
            client: peer.ip().to_string(),
            request: format!(
                "{} {} {:?}",
                req.method(),
                req.uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .replace('"', "%22"),
                req.version()
            ),
            referer: header(header::REFERER),
            agent: header(header::USER_AGENT),
        }
    }
}

/// Headers that belong to one connection, not to the message (RFC 9110 7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .filter_map(|s| HeaderName::from_bytes(s.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// X-Forwarded-For (the client appended to what came), -Proto and -Host.
fn forwarded_for(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    host: Option<HeaderValue>,
    proto: &'static str,
) {
    let client = peer.ip().to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) => format!("{before}, {client}"),
        None => client,
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}
