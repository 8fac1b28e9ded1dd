//! A copy in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Garage, R2...).
//!
//! `rusty-s3` signs the requests (AWS Signature V4, as presigned URLs) without doing
//! any I/O itself, and the blocking `ureq` the library already uses sends them. That
//! keeps the backend synchronous with no async runtime, no second HTTP stack and a
//! handful of small dependencies, where `aws-sdk-s3` brings its own runtime and a
//! long build, and `rust-s3`'s blocking mode a second HTTP client. Addressing is
//! path-style (`https://host/bucket/key`), which every S3-compatible server accepts;
//! virtual-hosted style is used only for AWS's own endpoints.
//!
//! Keys come from the environment variables the config names, never from the file.
//! A PUT is atomic by nature: an object becomes visible only when its upload is
//! complete, so no temporary names are needed. Request URLs carry a signature and are
//! never put in messages; errors name the endpoint, bucket and key only.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::{check_path, Backend};
use crate::error::{Error, Result};

/// How long a signed request stays valid; each request is signed just before it is sent.
const SIGNATURE_VALID: Duration = Duration::from_secs(15 * 60);

pub struct S3Backend {
    agent: ureq::Agent,
    bucket: Bucket,
    credentials: Credentials,
    /// `""` or a prefix ending in `/`.
    prefix: String,
    label: String,
}

impl S3Backend {
    /// A copy under `prefix` (if any) in `bucket` at `endpoint`
    /// (`https://s3.eu-central-1.amazonaws.com`, `http://127.0.0.1:9000`).
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        prefix: Option<&str>,
        access_key: &str,
        secret_key: &str,
    ) -> Result<S3Backend> {
        let url = url::Url::parse(endpoint)
            .map_err(|e| Error::user(format!("S3 endpoint `{endpoint}` is not a URL: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_string();
        let style = if host.ends_with(".amazonaws.com") && !bucket.contains('.') {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        // Only scheme, host and port in messages: the URL could carry a password.
        let shown = format!(
            "{}://{host}{}",
            url.scheme(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let bucket_handle = Bucket::new(url, style, bucket.to_string(), region.to_string())
            .map_err(|e| Error::user(format!("S3 endpoint `{shown}`, bucket `{bucket}`: {e}")))?;
        let prefix = prefix.unwrap_or("").trim_matches('/');
        if !prefix.is_empty() {
            check_path(prefix)?;
        }
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .timeout_write(Duration::from_secs(300))
            .build();
        Ok(S3Backend {
            agent,
            bucket: bucket_handle,
            credentials: Credentials::new(access_key, secret_key),
            label: format!("s3 {shown}/{bucket}/{prefix}"),
            prefix,
        })
    }

    fn key(&self, path: &str) -> Result<String> {
        check_path(path)?;
        Ok(format!("{}{path}", self.prefix))
    }

    fn err(&self, what: &str, key: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Status(status, response) => {
                let mut body = String::new();
                let _ = response
                    .into_reader()
                    .take(64 * 1024)
                    .read_to_string(&mut body);
                let code = xml_text(&body, "Code").unwrap_or_default();
                let message = xml_text(&body, "Message").unwrap_or_default();
                let err = Error::failed(format!(
                    "{}: {what} {key}: HTTP {status} {code}: {message}",
                    self.label
                ));
                match (status, code.as_str()) {
                    (_, "NoSuchBucket") => err.with_hint(format!(
                        "create the bucket `{}` first (ostler does not create buckets)",
                        self.bucket.name()
                    )),
                    (403, _) => err.with_hint(
                        "check the access key and secret in the environment, and the bucket policy",
                    ),
                    _ => err,
                }
            }
            ureq::Error::Transport(t) => {
                let mut text = t.kind().to_string();
                if let Some(m) = t.message() {
                    text = format!("{text}: {m}");
                }
                if let Some(source) = std::error::Error::source(&t) {
                    text = format!("{text}: {source}");
                }
                Error::failed(format!("{}: {what} {key}: {text}", self.label))
            }
        }
    }
}

/// The text of the first `<tag>` in an S3 error document.
fn xml_text(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].to_string())
}

impl Backend for S3Backend {
    fn list(&self, prefix_dir: &str) -> Result<Vec<String>> {
        let dir = prefix_dir.trim_end_matches('/');
        let listed = if dir.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}/", self.key(dir)?)
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(listed.as_str());
            if let Some(t) = &token {
                action.with_continuation_token(t.as_str());
            }
            let url = action.sign(SIGNATURE_VALID);
            let body = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| self.err("list", &listed, e))?
                .into_string()
                .map_err(|e| Error::io(format!("{}: list {listed}", self.label), e))?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&body).map_err(|e| {
                Error::failed(format!(
                    "{}: list {listed}: unreadable answer: {e}",
                    self.label
                ))
            })?;
            for object in page.contents {
                // Skip "folder" markers some tools create, and anything outside the prefix.
                if let Some(rel) = object.key.strip_prefix(&self.prefix) {
                    if !rel.is_empty() && !rel.ends_with('/') {
                        out.push(rel.to_string());
                    }
                }
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &str) -> Result<bool> {
        let key = self.key(path)?;
        let url = self
            .bucket
            .head_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_VALID);
        match self.agent.head(url.as_str()).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(self.err("stat", &key, e)),
        }
    }

    fn put(&self, path: &str, local_file: &Path) -> Result<()> {
        let key = self.key(path)?;
        let file = std::fs::File::open(local_file)
            .map_err(|e| Error::io(format!("open {}", local_file.display()), e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", local_file.display()), e))?
            .len();
        let url = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_VALID);
        self.agent
            .put(url.as_str())
            .set("Content-Length", &size.to_string())
            .send(file)
            .map_err(|e| self.err("put", &key, e))?;
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let key = self.key(path)?;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_VALID);
        let response = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| self.err("get", &key, e))?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("{}: get {key}", self.label), e))?;
        Ok(bytes)
    }

    fn remove(&self, path: &str) -> Result<()> {
        let key = self.key(path)?;
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_VALID);
        match self.agent.delete(url.as_str()).call() {
            Ok(_) | Err(ureq::Error::Status(404, _)) => Ok(()),
            Err(e) => Err(self.err("remove", &key, e)),
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}
