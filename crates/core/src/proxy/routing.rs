//! What the proxy routes to: the instance its role names, unless an upgrade switched it
//! to another ([`Routing::backend`]), and whether it is in maintenance. Kept in
//! `<state_dir>/proxy.json`, replaced whole by an atomic rename, so a daemon restart
//! routes as before and a crash never leaves half a file.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The instance requests go to, over the role's (an upgrade's switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// Maintenance mode: every request is answered 503 with the maintenance page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    pub since: Timestamp,
    pub by: String,
    pub reason: Option<String>,
}

/// Where requests go: the instance and its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub instance: String,
    pub port: u16,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("proxy.json")
}

impl Routing {
    /// The routing recorded in `state_dir` (none recorded: the role's instance, serving).
    pub fn load(state_dir: &Path) -> Result<Routing> {
        let path = path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::failed(format!(
                    "{} is not the proxy's routing: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Routing::default()),
            Err(e) => Err(Error::io_at("read", &path, e)),
        }
    }

    /// Records it in `state_dir`, replacing what was there in one rename.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = path(state_dir);
        let tmp = state_dir.join("proxy.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.into()))?;
        std::fs::write(&tmp, json).map_err(|e| Error::io_at("write", &tmp, e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io_at("sync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io_at("rename", &path, e))
    }

    /// The instance requests go to under `config`: the switched-to one if it is still
    /// an instance, else the one `[proxy] role` names. None without `[proxy]`.
    pub fn backend(&self, config: &Config) -> Option<Backend> {
        let proxy = config.proxy.as_ref()?;
        let instance = self
            .backend
            .clone()
            .filter(|b| config.instances.contains_key(b))
            .or_else(|| config.resolve(proxy.role.get_ref()).ok())?;
        let port = *config.instances.get(&instance)?.port.get_ref();
        Some(Backend { instance, port })
    }
}

/// Puts the proxy in maintenance (`on`) or takes it out, recorded for `by`; journaled.
/// Returns the routing now in force (the daemon is told by its caller).
pub fn set_maintenance(
    ostler: &crate::Ostler,
    on: bool,
    by: &str,
    reason: Option<&str>,
) -> Result<Routing> {
    if ostler.config.proxy.is_none() {
        return Err(Error::user(format!(
            "{} has no [proxy]: there is nothing to put in maintenance",
            ostler.config.path.display()
        ))
        .with_hint("add [proxy] listen = \"127.0.0.1:8080\" and run `ostler serve`"));
    }
    let dir = ostler.state_dir();
    ostler_repo::private::create_dir_all(&dir).map_err(|e| Error::io_at("create", &dir, e))?;
    let mut routing = Routing::load(&dir)?;
    routing.maintenance = on.then(|| Maintenance {
        since: ostler.clock.now(),
        by: by.to_string(),
        reason: reason.map(str::to_string),
    });
    routing.save(&dir)?;
    let detail = match (on, reason) {
        (true, Some(r)) => format!("maintenance on by {by}: {r}"),
        (true, None) => format!("maintenance on by {by}"),
        (false, _) => format!("maintenance off by {by}"),
    };
    ostler.journal_event("maintenance", None, &detail)?;
    Ok(routing)
}

/// Sends the proxy's requests to `instance` from now on (an upgrade's switch), or back
/// to the instance its role names (`None`); journaled. Refused for a name that is no
/// instance, and without `[proxy]`.
pub fn switch(ostler: &crate::Ostler, instance: Option<&str>, by: &str) -> Result<Routing> {
    let config = &ostler.config;
    if config.proxy.is_none() {
        return Err(Error::user(format!(
            "{} has no [proxy]: there is nothing to switch",
            config.path.display()
        )));
    }
    let instance = match instance {
        Some(name) => Some(config.resolve(name)?),
        None => None,
    };
    let dir = ostler.state_dir();
    ostler_repo::private::create_dir_all(&dir).map_err(|e| Error::io_at("create", &dir, e))?;
    let mut routing = Routing::load(&dir)?;
    routing.backend = instance.clone();
    routing.save(&dir)?;
    let to = match routing.backend(config) {
        Some(b) => format!("{} (port {})", b.instance, b.port),
        None => "nothing".to_string(),
    };
    ostler.journal_event(
        "proxy-switch",
        instance.as_deref(),
        &format!("proxy switched to {to} by {by}"),
    )?;
    Ok(routing)
}
