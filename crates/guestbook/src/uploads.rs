//! Uploaded files: the service's "store", a plain directory beside its database.
//!
//! ostler backs up and restores stores together with the database, so guestbook
//! keeps one that a test can fill over HTTP. Names are single path components (no
//! `/`, no `..`, no leading dot) so a request can never reach outside the store.
//! A file is written under a hidden temporary name and renamed into place, so a
//! backup running at the same time sees the old file or the new one, never half.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body::Body as _;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::http::{ApiError, AppState};

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub name: String,
    pub size: u64,
}

/// Checks that `name` is one plain file name inside the store.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("an upload name must be 1 to 255 bytes long".into());
    }
    if name.contains('/') || name.contains('\\') || name.contains("..") {
        return Err(format!(
            "upload name {name:?} may not contain '/', '\\' or '..'"
        ));
    }
    if name.starts_with('.') {
        return Err(format!("upload name {name:?} may not start with '.'"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "upload name {name:?} may not contain control characters"
        ));
    }
    Ok(())
}

fn store(state: &AppState) -> Result<&Path, ApiError> {
    state.store.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "uploads are off: guestbook was started without --store",
        )
    })
}

fn file_path(state: &AppState, name: &str) -> Result<PathBuf, ApiError> {
    let dir = store(state)?;
    check_name(name).map_err(|msg| ApiError::new(StatusCode::BAD_REQUEST, msg))?;
    Ok(dir.join(name))
}

/// `PUT /uploads/{name}`: 201 for a new file, 200 for a replaced one.
pub async fn put(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    mut body: Body,
) -> Result<Response, ApiError> {
    let path = file_path(&state, &name)?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_file_name(format!(
        ".{name}.upload-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut size = 0u64;
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.context("reading the request body")?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await?;
                size += data.len() as u64;
            }
        }
        file.sync_all().await?;
        anyhow::Ok(size)
    }
    .await;
    let size = match written {
        Ok(size) => size,
        Err(err) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(err.into());
        }
    };
    let existed = tokio::fs::try_exists(&path).await.unwrap_or(false);
    if let Err(err) = tokio::fs::rename(&tmp, &path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(anyhow::Error::new(err)
            .context(format!("cannot move upload into {}", path.display()))
            .into());
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(Upload { name, size })).into_response())
}

/// `GET /uploads/{name}`: the file's bytes, streamed.
pub async fn get(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let path = file_path(&state, &name)?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no upload named {name:?}")))
        }
        Err(err) => return Err(anyhow::Error::new(err).into()),
    };
    let len = file.metadata().await.context("stat upload")?.len();
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `DELETE /uploads/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<StatusCode, ApiError> {
    let path = file_path(&state, &name)?;
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::not_found(format!("no upload named {name:?}")))
        }
        Err(err) => Err(anyhow::Error::new(err).into()),
    }
}

/// `GET /uploads`: every stored file with its size, sorted by name.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Upload>>, ApiError> {
    let dir = store(&state)?.to_path_buf();
    let mut uploads = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir)
        .await
        .with_context(|| format!("cannot list {}", dir.display()))?;
    while let Some(entry) = entries.next_entry().await.context("listing uploads")? {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let meta = entry.metadata().await.context("stat upload")?;
        if meta.is_file() && check_name(&name).is_ok() {
            uploads.push(Upload {
                name,
                size: meta.len(),
            });
        }
    }
    uploads.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(uploads))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_stay_inside_the_store() {
        for ok in ["photo.jpg", "a b.txt", "report-2026.pdf", "ünïcode"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", "../x", "a..b", ".hidden", "a\\b", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
    }
}
