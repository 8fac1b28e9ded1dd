//! guestbook's HTTP API: routes, JSON bodies, status codes, and the server loop.
//!
//! Handlers are thin: validate, hand a closure to the pool, map the result to a
//! status. Every error is JSON (`{"error": "..."}`) so probes and tests can read it.
//! `serve` takes its shutdown signal as a future (mini-redis style), so tests and
//! `main` decide what ends the server; after that signal in-flight requests get a
//! bounded time to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

use crate::accesslog::{self, AccessLog};
use crate::pool::Pool;
use crate::queries::{self, NewEntry};
use crate::{migrations, uploads};

/// How long `/health` waits for the database before answering 503.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long in-flight requests may run on after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppState {
    pub pool: Arc<Pool>,
    /// The upload store; `None` turns the `/uploads` routes off.
    pub store: Option<PathBuf>,
}

/// An error response: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Unexpected failures (database down, disk full) become a 500, logged in full.
impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> ApiError {
        tracing::error!("request failed: {err:#}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub fn router(state: AppState, access_log: Option<Arc<AccessLog>>) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .route("/entries", get(list_entries).post(create_entry))
        .route("/entries/:id", get(get_entry).delete(delete_entry))
        .route("/tags", get(list_tags).post(create_tag))
        .route("/tags/:name", axum::routing::delete(delete_tag))
        .route("/tags/:name/entries", get(tag_entries))
        .route("/uploads", get(uploads::list))
        .route(
            "/uploads/:name",
            get(uploads::get).put(uploads::put).delete(uploads::delete),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state);
    match access_log {
        Some(log) => router.layer(axum::middleware::from_fn_with_state(
            log,
            accesslog::middleware,
        )),
        None => router,
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    let drain_deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = drain_deadline => {
            tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after the shutdown signal; stopping anyway");
            Ok(())
        }
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let check = state.pool.run(migrations::current_version);
    let (status, health) = match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok(Ok(schema)) => (StatusCode::OK, Health::ok(schema)),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health::down(format!("{err:#}")),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Health::down(format!(
                "the database did not answer within {HEALTH_TIMEOUT:?}"
            )),
        ),
    };
    (status, Json(health)).into_response()
}

/// `{"status":"ok","schema":3}` or `{"status":"unavailable","error":"..."}`, fields
/// in that order.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Health {
    fn ok(schema: u32) -> Health {
        Health {
            status: "ok",
            schema: Some(schema),
            error: None,
        }
    }

    fn down(error: String) -> Health {
        Health {
            status: "unavailable",
            schema: None,
            error: Some(error),
        }
    }
}

fn entry_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::bad_request("an entry id is an integer"))
}

async fn list_entries(State(state): State<AppState>) -> Result<Response, ApiError> {
    let entries = state.pool.run(queries::list_entries).await?;
    Ok(Json(entries).into_response())
}

async fn get_entry(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = entry_id(path)?;
    match state.pool.run(move |db| queries::get_entry(db, id)).await? {
        Some(entry) => Ok(Json(entry).into_response()),
        None => Err(ApiError::not_found(format!("no entry {id}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    author: String,
    message: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

const MAX_AUTHOR: usize = 200;
const MAX_MESSAGE: usize = 10_000;
const MAX_EMAIL: usize = 254;
/// Well under MySQL's `VARCHAR(255)`, so `INSERT IGNORE` never truncates.
const MAX_TAG: usize = 100;

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to {max} characters and not blank"
        )));
    }
    Ok(())
}

fn check_tag(name: &str) -> Result<(), ApiError> {
    check_text("a tag name", name, MAX_TAG)?;
    if name.contains('/') || name.trim() != name || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "tag name {name:?} may not contain '/', control characters or surrounding spaces"
        )));
    }
    Ok(())
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

async fn create_entry(
    State(state): State<AppState>,
    body: Result<Json<EntryBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    check_text("author", &body.author, MAX_AUTHOR)?;
    check_text("message", &body.message, MAX_MESSAGE)?;
    if let Some(email) = &body.email {
        check_text("email", email, MAX_EMAIL)?;
    }
    for tag in &body.tags {
        check_tag(tag)?;
    }
    let new = NewEntry {
        author: body.author,
        message: body.message,
        email: body.email,
        tags: body.tags,
    };
    let now = crate::now_rfc3339();
    let entry = state
        .pool
        .run(move |db| queries::create_entry(db, &new, &now))
        .await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn delete_entry(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = entry_id(path)?;
    if state
        .pool
        .run(move |db| queries::delete_entry(db, id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no entry {id}")))
    }
}

async fn list_tags(State(state): State<AppState>) -> Result<Response, ApiError> {
    let tags = state.pool.run(queries::list_tags).await?;
    Ok(Json(tags).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagBody {
    name: String,
}

async fn create_tag(
    State(state): State<AppState>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let name = json_body(body)?.name;
    check_tag(&name)?;
    let created = {
        let name = name.clone();
        state
            .pool
            .run(move |db| queries::create_tag(db, &name))
            .await?
    };
    match created {
        Some(tag) => Ok((StatusCode::CREATED, Json(tag)).into_response()),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("tag {name:?} exists already"),
        )),
    }
}

/// Deletes the tag and, by cascade, every link from an entry to it.
async fn delete_tag(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = {
        let name = name.clone();
        state
            .pool
            .run(move |db| queries::delete_tag(db, &name))
            .await?
    };
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no tag {name:?}")))
    }
}

async fn tag_entries(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let found = {
        let name = name.clone();
        state
            .pool
            .run(move |db| queries::entries_with_tag(db, &name))
            .await?
    };
    match found {
        Some(entries) => Ok(Json(entries).into_response()),
        None => Err(ApiError::not_found(format!("no tag {name:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dburl::{DbTarget, Remote};

    #[tokio::test]
    async fn health_is_503_when_the_database_is_unreachable() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let target = DbTarget::Postgres(Remote {
            user: "app".into(),
            password: Some("hunter2".into()),
            host: "127.0.0.1".into(),
            port: 1,
            database: "guestbook".into(),
        });
        let state = AppState {
            pool: Pool::new(target),
            store: None,
        };
        let response = health(State(state)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.starts_with(r#"{"status":"unavailable","error":"#),
            "{body}"
        );
        assert!(!body.contains("hunter2"), "{body}");
    }
}
