//! `[proxy]` in `ostler.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{Config, HumanDuration};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where clients connect: `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The role (or instance) requests go to.
    #[serde(default = "default_role")]
    pub role: Spanned<String>,
    /// The proxy's own access log, combined format; relative to the config's directory.
    /// Default `<state_dir>/logs/proxy-access.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<PathBuf>,
    /// An HTML file served with 503 during maintenance or when no backend answers;
    /// relative to the config's directory. Default: a short built-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_page: Option<Spanned<PathBuf>>,
    /// What a 503's `Retry-After` says.
    #[serde(default = "default_retry_after")]
    pub retry_after: HumanDuration,
    /// How long a backend may take to answer (to send its response head).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Terminate TLS: the certificate chain (PEM), relative to the config's directory;
    /// with `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<Spanned<PathBuf>>,
    /// Its private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<Spanned<PathBuf>>,
}

fn default_role() -> Spanned<String> {
    Spanned::new(0..0, "production".to_string())
}

fn default_retry_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

impl ProxyConfig {
    /// The access log's path.
    pub fn access_log_in(&self, config: &Config) -> PathBuf {
        match &self.access_log {
            Some(p) => config.base_dir().join(p),
            None => config.state_dir().join("logs").join("proxy-access.log"),
        }
    }

    /// The certificate and key files, when TLS is terminated here.
    pub fn tls_in(&self, config: &Config) -> Option<(PathBuf, PathBuf)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((
                config.base_dir().join(c.get_ref()),
                config.base_dir().join(k.get_ref()),
            )),
            _ => None,
        }
    }

    /// The maintenance page's path, if one is configured.
    pub fn maintenance_page_in(&self, config: &Config) -> Option<PathBuf> {
        self.maintenance_page
            .as_ref()
            .map(|p| config.base_dir().join(p.get_ref()))
    }
}

/// What is wrong with `[proxy]` given the rest of the config, as (offset, message).
pub fn problems(config: &Config) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    if let Some(proxy) = &config.proxy {
        let role = proxy.role.get_ref();
        if config.resolve(role).is_err() {
            let known: Vec<String> = config
                .roles
                .keys()
                .cloned()
                .chain(config.instance_names())
                .collect();
            out.push((
                proxy.role.span().start,
                format!(
                    "[proxy] role `{role}` is no role or instance here (known: {})",
                    known.join(", ")
                ),
            ));
        }
        match (&proxy.tls_cert, &proxy.tls_key) {
            (Some(c), None) => out.push((
                c.span().start,
                "[proxy] tls_cert needs tls_key (the certificate's private key)".to_string(),
            )),
            (None, Some(k)) => out.push((
                k.span().start,
                "[proxy] tls_key needs tls_cert (the certificate chain)".to_string(),
            )),
            _ => {}
        }
        for file in [&proxy.tls_cert, &proxy.tls_key].into_iter().flatten() {
            let path = config.base_dir().join(file.get_ref());
            if !path.is_file() {
                out.push((
                    file.span().start,
                    format!("[proxy] {} is not a file", path.display()),
                ));
            }
        }
        if let (Some(page), Some(path)) =
            (&proxy.maintenance_page, proxy.maintenance_page_in(config))
        {
            if !path.is_file() {
                out.push((
                    page.span().start,
                    format!("[proxy] maintenance_page: {} is not a file", path.display()),
                ));
            }
        }
    }
    out
}
