//! The daemon's control API: HTTP/1.1 and JSON on a Unix socket in the state dir
//! (`control.sock`), so that the CLI, and later the dashboard, ask the daemon instead
//! of racing it. Routes are versioned (`/v1/...`) and described in
//! `docs/CONTROL-API.md`; [`super::client`] is the CLI's side.
//!
//! Two layers keep other users out: the socket file is made 0600 right after it is
//! bound (inside the 0700 state dir), and every connection's peer uid (SO_PEERCRED) must
//! be the daemon's own, or root's; any other gets 403 to every request.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::net::UnixListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::bus::Event;
use super::host::{BoxFuture, Component, ComponentHealth, Handle};
use crate::error::{Diagnostic, Error, ErrorKind, Result};
use crate::ops::{self, InstanceStatus};

/// The socket's name in the state dir.
pub const SOCKET: &str = "control.sock";

/// Where the daemon of the service whose state dir is `state_dir` listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// How long open connections (a client mid-request) get to finish once the daemon
/// shuts down; the event streams end at once.
const CONNECTIONS_GRACE: Duration = Duration::from_secs(1);

/// `GET /v1/status`: the daemon itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    /// ostler's version.
    pub version: String,
    pub started_at: Timestamp,
    pub uptime_seconds: u64,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    /// True once shutdown was asked for: no new work starts.
    pub draining: bool,
    pub components: Vec<ComponentHealth>,
}

impl DaemonStatus {
    fn of(handle: &Handle) -> DaemonStatus {
        let uptime = handle.clock().now().duration_since(handle.started_at());
        DaemonStatus {
            pid: handle.pid(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: handle.started_at(),
            uptime_seconds: uptime.as_secs().max(0) as u64,
            config_path: handle.config_path().to_path_buf(),
            state_dir: handle.ostler().state_dir(),
            draining: handle.draining(),
            components: handle.health(),
        }
    }
}

/// The body of every error the API answers (with a 4xx or 5xx status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error and its causes, on one line (a config's errors one per line).
    pub error: String,
    pub kind: ErrorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A refused config's located errors, as `config check` gives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

impl ApiError {
    pub fn from_error(e: &Error) -> ApiError {
        ApiError {
            error: crate::error::chain(e).to_string(),
            kind: e.kind(),
            hint: e.hint().map(str::to_string),
            diagnostics: match e {
                Error::Config { diagnostics } => diagnostics.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// The error back on the client's side, of the kind it had in the daemon.
    pub fn into_error(self) -> Error {
        let (message, hint) = (self.error, self.hint);
        match self.kind {
            ErrorKind::User => Error::User { message, hint },
            ErrorKind::Busy => Error::Busy { message, hint },
            ErrorKind::Failed => Error::Failed { message, hint },
            ErrorKind::Interrupted => Error::Interrupted,
            ErrorKind::Config if !self.diagnostics.is_empty() => Error::Config {
                diagnostics: self.diagnostics,
            },
            kind => Error::Remote {
                kind,
                message,
                hint,
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::User => StatusCode::BAD_REQUEST,
            ErrorKind::Config => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Busy => StatusCode::CONFLICT,
            ErrorKind::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Failed | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A handler's failure, answered as an [`ApiError`].
pub struct Reply(StatusCode, ApiError);

impl From<Error> for Reply {
    fn from(e: Error) -> Reply {
        let body = ApiError::from_error(&e);
        Reply(body.status(), body)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

/// The control API as a component of the daemon.
pub struct Control;

impl Component for Control {
    fn name(&self) -> &'static str {
        "control"
    }

    fn run(&self, handle: Handle, shutdown: CancellationToken) -> BoxFuture<Result<()>> {
        Box::pin(async move {
            let path = socket_path(&handle.ostler().state_dir());
            let listener = bind(&path)?;
            tracing::info!(socket = %path.display(), "control API listening");
            handle.set_ready("control");
            let served = serve(handle, listener, shutdown).await;
            let _ = std::fs::remove_file(&path);
            served
        })
    }
}

/// Binds the socket, owner-only. A file left at `path` is stale: the daemon lock we
/// hold says no other daemon serves this state dir.
fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io_at("remove the stale socket", path, e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| Error::io_at("bind", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io_at("make owner-only", path, e))?;
    Ok(listener)
}

/// The routes.
fn routes(handle: Handle) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/instances", get(instances))
        .route("/v1/events", get(events))
        .route("/v1/reload", post(reload))
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/runs", get(job_runs))
        .route("/v1/jobs/:name/run", post(run_job))
        .route("/v1/proxy", get(proxy))
        .route("/v1/proxy/maintenance", post(maintenance))
        .route("/v1/proxy/switch", post(switch))
        .route("/v1/alerts", get(alerts))
        .route("/v1/alerts/:id/ack", post(acknowledge))
        .route("/v1/silences", post(silence))
        .fallback(no_route)
        .with_state(handle)
}

/// Accepts connections until `shutdown`, each served on its own task; then gives the
/// open ones [`CONNECTIONS_GRACE`] to finish.
async fn serve(handle: Handle, listener: UnixListener, shutdown: CancellationToken) -> Result<()> {
    let app = routes(handle);
    let own = nix::unistd::geteuid().as_raw();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // A full fd table or the like: refuse this one, keep serving.
                    tracing::warn!(error = %e, "control API: accept failed");
                    continue;
                }
            },
        };
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        let router = match peer {
            Some(uid) if uid == own || uid == 0 => app.clone(),
            _ => refused(peer, own),
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "control API connection");
            }
        });
    }
    // A real-time bound on purpose: it is how long a client waits, not service time.
    let _ = tokio::time::timeout(CONNECTIONS_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// What a connection from another user gets: 403 to everything.
fn refused(peer: Option<u32>, own: u32) -> Router {
    let who = peer.map_or("an unknown uid".to_string(), |uid| format!("uid {uid}"));
    let body = ApiError {
        error: format!(
            "the daemon's control socket serves only uid {own} (the daemon's user) and root, not {who}"
        ),
        kind: ErrorKind::User,
        hint: Some("run the command as the user that runs `ostler serve`".into()),
        diagnostics: Vec::new(),
    };
    Router::new().fallback(move || {
        let body = body.clone();
        async move { Reply(StatusCode::FORBIDDEN, body) }
    })
}

async fn no_route(method: Method, uri: Uri) -> Reply {
    Reply(
        StatusCode::NOT_FOUND,
        ApiError::from_error(&Error::user(format!(
            "the control API has no route {method} {} (see docs/CONTROL-API.md)",
            uri.path()
        ))),
    )
}

/// Re-reads the config ([`super::reload::reload`]): what changed, or why it was refused.
async fn reload(
    State(handle): State<Handle>,
) -> std::result::Result<Json<super::reload::ConfigChanges>, Reply> {
    Ok(Json(super::reload::reload(&handle).await?))
}

async fn jobs(
    State(handle): State<Handle>,
) -> std::result::Result<Json<Vec<crate::jobs::Overview>>, Reply> {
    Ok(Json(handle.blocking(crate::jobs::overview).await?))
}

/// `?job=NAME&limit=N` of `GET /v1/jobs/runs`.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    job: Option<String>,
    limit: Option<usize>,
}

async fn job_runs(
    State(handle): State<Handle>,
    axum::extract::Query(q): axum::extract::Query<RunsQuery>,
) -> std::result::Result<Json<Vec<crate::jobs::runs::Run>>, Reply> {
    let runs = handle
        .blocking(move |o| {
            crate::jobs::runs::history(&o.state()?, q.job.as_deref(), q.limit.unwrap_or(50))
        })
        .await?;
    Ok(Json(runs))
}

/// Queues a run of the job now; answers the run as recorded (waiting).
async fn run_job(
    State(handle): State<Handle>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> std::result::Result<Json<crate::jobs::runs::Run>, Reply> {
    let run = handle
        .blocking(move |o| crate::jobs::queue(o, &name))
        .await?;
    handle.bus().publish(Event::JobQueued {
        job: run.job.clone(),
        run: run.id,
    });
    Ok(Json(run))
}

/// What the proxy routes to, as `GET /v1/proxy` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub routing: crate::proxy::Routing,
    pub backend: Option<crate::proxy::routing::Backend>,
    /// Requests each backend is answering now.
    pub in_flight: std::collections::BTreeMap<String, usize>,
}

impl ProxyStatus {
    fn of(handle: &Handle) -> ProxyStatus {
        let routing = (*handle.traffic().routing()).clone();
        ProxyStatus {
            backend: routing.backend(&handle.ostler().config),
            routing,
            in_flight: handle.traffic().in_flight(),
        }
    }
}

async fn proxy(State(handle): State<Handle>) -> Json<ProxyStatus> {
    Json(ProxyStatus::of(&handle))
}

/// The body of `POST /v1/proxy/switch`: the instance (or role) to send requests to,
/// none for the one `[proxy] role` names.
#[derive(Debug, Serialize, Deserialize)]
pub struct SwitchRequest {
    pub to: Option<String>,
    pub by: String,
}

async fn switch(
    State(handle): State<Handle>,
    Json(request): Json<SwitchRequest>,
) -> std::result::Result<Json<ProxyStatus>, Reply> {
    let routing = handle
        .blocking(move |o| crate::proxy::routing::switch(o, request.to.as_deref(), &request.by))
        .await?;
    handle.traffic().set_routing(routing);
    handle.bus().publish(Event::RoutingChanged);
    Ok(Json(ProxyStatus::of(&handle)))
}

/// The body of `POST /v1/proxy/maintenance`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MaintenanceRequest {
    pub on: bool,
    pub by: String,
    pub reason: Option<String>,
}

async fn maintenance(
    State(handle): State<Handle>,
    Json(request): Json<MaintenanceRequest>,
) -> std::result::Result<Json<crate::proxy::Routing>, Reply> {
    let routing = handle
        .blocking(move |o| {
            crate::proxy::routing::set_maintenance(
                o,
                request.on,
                &request.by,
                request.reason.as_deref(),
            )
        })
        .await?;
    handle.traffic().set_routing(routing.clone());
    handle.bus().publish(Event::RoutingChanged);
    Ok(Json(routing))
}

/// `?all=true&limit=N` of `GET /v1/alerts`.
#[derive(Debug, Deserialize)]
struct AlertsQuery {
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
}

async fn alerts(
    State(handle): State<Handle>,
    axum::extract::Query(q): axum::extract::Query<AlertsQuery>,
) -> std::result::Result<Json<crate::alerts::Overview>, Reply> {
    let overview = handle
        .blocking(move |o| crate::alerts::overview(o, q.all, q.limit.unwrap_or(100)))
        .await?;
    Ok(Json(overview))
}

/// The body of `POST /v1/alerts/:id/ack`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub note: Option<String>,
}

async fn acknowledge(
    State(handle): State<Handle>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Json(ack): Json<Acknowledgement>,
) -> std::result::Result<Json<crate::alerts::store::Alert>, Reply> {
    let alert = handle
        .blocking(move |o| crate::alerts::acknowledge(o, id, &ack.by, ack.note.as_deref()))
        .await?;
    Ok(Json(alert))
}

async fn silence(
    State(handle): State<Handle>,
    Json(request): Json<crate::alerts::SilenceRequest>,
) -> std::result::Result<Json<crate::alerts::store::Silence>, Reply> {
    Ok(Json(
        handle
            .blocking(move |o| crate::alerts::silence(o, &request))
            .await?,
    ))
}

async fn status(State(handle): State<Handle>) -> Json<DaemonStatus> {
    Json(DaemonStatus::of(&handle))
}

async fn instances(
    State(handle): State<Handle>,
) -> std::result::Result<Json<Vec<InstanceStatus>>, Reply> {
    let all = handle
        .blocking(|ostler| ops::statuses(ostler, &ostler.config.instance_names()))
        .await?;
    Ok(Json(all))
}

/// The bus as server-sent events, one JSON [`super::Event`] per message; a subscriber
/// that fell behind gets an `event: lagged` message saying how many it missed. The
/// stream ends when the daemon shuts down.
async fn events(
    State(handle): State<Handle>,
) -> Sse<impl Stream<Item = std::result::Result<sse::Event, Infallible>>> {
    let receiver = handle.bus().subscribe();
    let shutdown = handle.shutdown().clone();
    let stream = futures_util::stream::unfold(
        (receiver, shutdown),
        |(mut receiver, shutdown)| async move {
            let message = loop {
                let got = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    got = receiver.recv() => got,
                };
                match got {
                    Ok(event) => match sse::Event::default().json_data(&event) {
                        Ok(message) => break message,
                        Err(e) => tracing::warn!(error = %e, "event not serialized"),
                    },
                    Err(RecvError::Lagged(missed)) => {
                        break sse::Event::default()
                            .event("lagged")
                            .data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                }
            };
            Some((Ok(message), (receiver, shutdown)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the client rebuilds from the JSON the server sent.
    fn across(e: Error) -> Error {
        let json = serde_json::to_string(&ApiError::from_error(&e)).unwrap();
        serde_json::from_str::<ApiError>(&json)
            .unwrap()
            .into_error()
    }

    #[test]
    fn errors_come_back_of_their_kind_with_message_hint_and_diagnostics() {
        let busy = across(Error::busy("draining").with_hint("wait"));
        assert_eq!(busy.kind(), ErrorKind::Busy);
        assert_eq!(
            (busy.to_string().as_str(), busy.hint()),
            ("draining", Some("wait"))
        );

        let diagnostics = vec![Diagnostic {
            file: "ostler.toml".into(),
            line: 3,
            column: 1,
            message: "unknown field `prot`".into(),
        }];
        match across(Error::Config {
            diagnostics: diagnostics.clone(),
        }) {
            Error::Config { diagnostics: back } => assert_eq!(back, diagnostics),
            other => panic!("{other:?}"),
        }

        let internal = across(Error::Other(anyhow::anyhow!("a bug")));
        assert_eq!(internal.kind(), ErrorKind::Internal);
        assert_eq!(internal.to_string(), "a bug");
        assert_eq!(
            ApiError::from_error(&internal).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
