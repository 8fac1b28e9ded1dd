//! `ostler.toml`: typed, validated, and every mistake reported with file, line and
//! column. Defaults live in the types (serde `default`s), never in strings elsewhere.
//!
//! Parsing is two passes: serde (with `deny_unknown_fields`) catches unknown keys and
//! wrong types and points at them through toml's spans; `validate` then checks what
//! serde cannot (roles naming no instance, two instances on one port, secrets written
//! into URLs) and reports all such problems at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::engine::{Address, Database, DatabaseIdentity, DatabaseKind};
use crate::error::{Diagnostic, Error, Result};
use crate::logrotate::config::RotationConfig;

/// The file name looked for in the current directory.
pub const FILE_NAME: &str = "ostler.toml";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub service: ServiceConfig,
    #[serde(default)]
    pub roles: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub instances: BTreeMap<String, InstanceConfig>,
    #[serde(default)]
    pub repository: Option<RepositoryConfig>,
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    #[serde(default)]
    pub supervise: SuperviseConfig,
    /// `[[logs]]`: files to rotate, with logrotate's keys (`crate::logrotate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<RotationConfig>,
    /// `[log_rotation]`: how each instance's own log and `logs` are rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotation: Option<RotationConfig>,
    /// `[[jobs]]`: scheduled work (`crate::jobs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<crate::jobs::JobConfig>,
    /// `[[probes]]`: checks of the service (`crate::probes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<crate::probes::ProbeConfig>,
    /// `[scheduler]`: how long the jobs' run history is kept.
    #[serde(default)]
    pub scheduler: crate::jobs::SchedulerConfig,
    /// `[proxy]`: the daemon's HTTP proxy in front of the service (`crate::proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::ProxyConfig>,
    /// `[alerts]`: channels, escalation tiers, renotify and delivery (`crate::alerts::config`).
    #[serde(default)]
    pub alerts: crate::alerts::config::AlertsConfig,
    /// Where the file was read from; every relative path is relative to its directory.
    #[serde(skip)]
    pub path: PathBuf,
    /// Keys written in an old spelling that is still read, to warn about once.
    #[serde(skip)]
    pub deprecations: Vec<Deprecation>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The zone schedules are read in (IANA name); default the host's ([`Config::timezone`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Spanned<String>>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".ostler")
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub dir: PathBuf,
    #[serde(default)]
    pub build: Option<String>,
    pub start: String,
    /// Optional command run by `ostler configure INSTANCE` (writes config files...).
    #[serde(default)]
    pub configure: Option<String>,
    pub port: Spanned<u16>,
    #[serde(default)]
    pub health: Option<String>,
    #[serde(default = "default_health_timeout")]
    pub health_timeout: HumanDuration,
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: HumanDuration,
    #[serde(default)]
    pub autostart: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The instance's log file (stdout and stderr); default `<state_dir>/logs/<name>.log`.
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Extra log files (access logs...) that `log-nuke` truncates too; relative to dir.
    #[serde(default)]
    pub logs: Vec<PathBuf>,
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    #[serde(default)]
    pub stores: Vec<StoreConfig>,
    /// `[instances.X.migrations]`: its schema migrations (`crate::migrations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<crate::migrations::MigrationsConfig>,
    /// This instance's rotation keys, over `[log_rotation]`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotation: Option<RotationConfig>,
}

fn default_health_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_stop_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub kind: DatabaseKind,
    /// SQLite: the database file, relative to the instance's dir.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// PostgreSQL / MySQL: `postgres://user@host:port/db`, without a password.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// A file holding the password (first line); relative to the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable of ostler's holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub name: String,
    pub path: PathBuf,
    /// Caches are not backed up.
    #[serde(default)]
    pub cache: bool,
}

/// How `ostler serve` restarts crashed instances.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuperviseConfig {
    /// First restart delay; doubled after each crash up to `backoff_max`.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial: HumanDuration,
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// This many crashes within `crash_window` mark the instance `crash-loop`.
    #[serde(default = "default_crash_limit")]
    pub crash_limit: u32,
    #[serde(default = "default_crash_window")]
    pub crash_window: HumanDuration,
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        SuperviseConfig {
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            crash_limit: default_crash_limit(),
            crash_window: default_crash_window(),
        }
    }
}

fn default_backoff_initial() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_backoff_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_crash_limit() -> u32 {
    5
}
fn default_crash_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub path: PathBuf,
    /// Off-host copies of the repository, filled by `ostler copy`.
    #[serde(default)]
    pub copies: Vec<CopyConfig>,
}

/// One off-host copy of the repository. (No `deny_unknown_fields` here: serde cannot
/// combine it with `flatten`; `CopyTarget` refuses unknown keys itself.)
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CopyConfig {
    pub name: String,
    #[serde(flatten)]
    pub target: CopyTarget,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CopyTarget {
    /// Another directory (a mounted disk, NFS...); relative to the config file.
    Dir { path: PathBuf },
    /// SFTP through the system's `ssh` (its config, keys and known_hosts apply).
    Sftp {
        host: String,
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        port: Option<u16>,
        /// Directory on the server.
        path: String,
        /// Private key file (default: ssh's own choice).
        #[serde(default)]
        identity_file: Option<PathBuf>,
        /// A known_hosts file to check the server's key against (default: ssh's).
        #[serde(default)]
        known_hosts: Option<PathBuf>,
    },
    /// S3-compatible object storage.
    S3 {
        /// e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`.
        endpoint: String,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        #[serde(default)]
        prefix: Option<String>,
        /// Environment variables holding the keys (never the keys themselves).
        #[serde(default = "default_access_key_env")]
        access_key_env: String,
        #[serde(default = "default_secret_key_env")]
        secret_key_env: String,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_access_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

/// `[retention]`. Its keys were kebab-case (`keep-last`) until issue 9; the old
/// spellings are still read (serde `alias`) and [`Config::deprecations`] says where.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default, alias = "keep-last")]
    pub keep_last: Option<u32>,
    #[serde(default, alias = "keep-hourly")]
    pub keep_hourly: Option<u32>,
    #[serde(default, alias = "keep-daily")]
    pub keep_daily: Option<u32>,
    #[serde(default, alias = "keep-weekly")]
    pub keep_weekly: Option<u32>,
    #[serde(default, alias = "keep-monthly")]
    pub keep_monthly: Option<u32>,
    #[serde(default, alias = "keep-within")]
    pub keep_within: Option<HumanDuration>,
    /// Zone the hourly/daily/... buckets are cut in; default the host's.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Keys still read in an old spelling: (table, old, new). Keep in step with the
/// `alias`es above.
const OLD_SPELLINGS: &[(&str, &str, &str)] = &[
    ("retention", "keep-last", "keep_last"),
    ("retention", "keep-hourly", "keep_hourly"),
    ("retention", "keep-daily", "keep_daily"),
    ("retention", "keep-weekly", "keep_weekly"),
    ("retention", "keep-monthly", "keep_monthly"),
    ("retention", "keep-within", "keep_within"),
];

/// A key written in an old spelling that is still accepted: where, and what to write
/// instead. Front ends show it as a warning (`Reporter::warn`, `config check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deprecation {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// `[retention]`
    pub table: String,
    /// `keep-last`
    pub old: String,
    /// `keep_last`
    pub new: String,
}

impl std::fmt::Display for Deprecation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: [{}] `{}` is an old spelling, still read; write `{}`",
            self.file.display(),
            self.line,
            self.column,
            self.table,
            self.old,
            self.new
        )
    }
}

/// The old spellings used in `text`, in file order (serde's aliases do not say
/// which spelling they met; toml_edit's spans do).
fn deprecations(text: &str, path: &Path) -> Vec<Deprecation> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &(table, old, new) in OLD_SPELLINGS {
        let Some(key) = doc
            .as_table()
            .get(table)
            .and_then(|t| t.as_table_like())
            .and_then(|t| t.key(old))
        else {
            continue;
        };
        let at = diagnostic(
            path,
            text,
            key.span().map(|s| s.start).unwrap_or(0),
            String::new(),
        );
        out.push(Deprecation {
            file: at.file,
            line: at.line,
            column: at.column,
            table: table.into(),
            old: old.into(),
            new: new.into(),
        });
    }
    out.sort_by_key(|d| (d.line, d.column));
    out
}

/// A duration written the human way in the file: `10s`, `5m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{text}`: {e} (write e.g. \"10s\", \"5m\", \"1h 30m\")"
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// The state dir a config file names, read from `[service] state_dir` alone (default
/// `.ostler`, relative to the file's directory), so that a file with other mistakes
/// still says where its daemon is (`ostler reload` tells the daemon it is refused).
/// `None` when the file cannot be read or is not TOML.
pub fn state_dir_of(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let named = table
        .get("service")
        .and_then(|s| s.get("state_dir"))
        .and_then(|d| d.as_str())
        .map_or_else(default_state_dir, PathBuf::from);
    Some(path.parent().unwrap_or(Path::new(".")).join(named))
}

/// Finds the config file: an explicit `--config`, else `$OSTLER_CONFIG`, else
/// `ostler.toml` in `cwd`.
pub fn locate(
    explicit: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    cwd: &Path,
) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(cwd.join(p));
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return Ok(cwd.join(p));
    }
    let p = cwd.join(FILE_NAME);
    if p.exists() {
        return Ok(p);
    }
    Err(Error::user(format!("no {FILE_NAME} in {}", cwd.display()))
        .with_hint("pass --config FILE, set OSTLER_CONFIG, or run `ostler demo` to make one"))
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigIo {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in messages and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config {
            diagnostics: vec![diagnostic(
                path,
                text,
                e.span().map(|s| s.start).unwrap_or(0),
                e.message().trim_end().to_string(),
            )],
        })?;
        config.path = path.to_path_buf();
        config.deprecations = deprecations(text, path);
        let problems = config.validate(text);
        if !problems.is_empty() {
            return Err(Error::Config {
                diagnostics: problems,
            });
        }
        Ok(config)
    }

    fn validate(&self, text: &str) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let at = |offset: usize, message: String| diagnostic(&self.path, text, offset, message);
        for (role, target) in &self.roles {
            if !self.instances.contains_key(target.get_ref()) {
                out.push(at(
                    target.span().start,
                    format!(
                        "role `{role}` names instance `{}`, which is not defined (instances: {})",
                        target.get_ref(),
                        self.instance_names().join(", ")
                    ),
                ));
            }
        }
        for (table, names) in [
            ("roles", self.roles.keys().collect::<Vec<_>>()),
            ("instances", self.instances.keys().collect()),
        ] {
            for name in names {
                if let Err(e) = check_name(name) {
                    out.push(at(
                        key_offset(text, table, name).unwrap_or(0),
                        format!(
                            "{} name `{name}` is not allowed: {e}",
                            if table == "roles" { "role" } else { "instance" }
                        ),
                    ));
                }
            }
        }
        let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
        for (name, inst) in &self.instances {
            if self.roles.contains_key(name) {
                out.push(at(
                    inst.port.span().start,
                    format!("instance `{name}` has the name of a role; rename one of them"),
                ));
            }
            let port = *inst.port.get_ref();
            if port == 0 {
                out.push(at(
                    inst.port.span().start,
                    format!("instance `{name}`: port 0 is not a port"),
                ));
            } else if let Some(other) = ports.insert(port, name) {
                out.push(at(
                    inst.port.span().start,
                    format!(
                        "instance `{name}` uses port {port}, which instance `{other}` already uses"
                    ),
                ));
            }
            if let Some(db) = &inst.database {
                match db.kind.engine().address() {
                    Address::File => {
                        if db.path.is_none() {
                            out.push(at(
                                inst.port.span().start,
                                format!("instance `{name}`: a sqlite database needs `path`"),
                            ));
                        }
                    }
                    Address::Server { .. } => match &db.url {
                        None => out.push(at(
                            inst.port.span().start,
                            format!("instance `{name}`: a {} database needs `url`", db.kind),
                        )),
                        Some(url) => {
                            if let Err(e) = crate::engine::DbUrl::parse(url.get_ref(), db.kind) {
                                out.push(at(url.span().start, format!("instance `{name}`: {e}")));
                            }
                        }
                    },
                }
            }
            if let Some(m) = &inst.migrations {
                if m.dir.is_some() == m.command.is_some() {
                    out.push(at(
                        inst.port.span().start,
                        format!("instance `{name}`: [migrations] takes `dir` (versioned SQL files) or `command` (the framework's), one of the two"),
                    ));
                } else if m.check.is_some() && m.command.is_none() {
                    out.push(at(
                        inst.port.span().start,
                        format!("instance `{name}`: [migrations] `check` goes with `command`"),
                    ));
                }
            }
            let mut stores = std::collections::BTreeSet::new();
            for s in &inst.stores {
                // Store names become directories of exports and restores.
                if let Err(e) = check_name(&s.name) {
                    out.push(at(
                        text.find(&format!("\"{}\"", s.name))
                            .unwrap_or(inst.port.span().start),
                        format!(
                            "instance `{name}`: store name `{}` is not allowed: {e}",
                            s.name
                        ),
                    ));
                }
                if !stores.insert(&s.name) {
                    out.push(at(
                        inst.port.span().start,
                        format!("instance `{name}`: two stores are named `{}`", s.name),
                    ));
                }
            }
        }
        for (offset, message) in crate::logrotate::config::problems(self, text) {
            out.push(at(offset, message));
        }
        for (offset, message) in crate::jobs::config::problems(self) {
            out.push(at(offset, message));
        }
        for (offset, message) in crate::proxy::config::problems(self) {
            out.push(at(offset, message));
        }
        for (offset, message) in crate::alerts::config::problems(self) {
            out.push(at(offset, message));
        }
        for (offset, message) in crate::probes::config::problems(self) {
            out.push(at(offset, message));
        }
        if let Some(r) = &self.retention {
            if let Some(tz) = &r.timezone {
                if jiff::tz::TimeZone::get(tz).is_err() {
                    let offset = text.find(tz.as_str()).unwrap_or(0);
                    out.push(at(
                        offset,
                        format!("[retention] timezone `{tz}` is not a known time zone"),
                    ));
                }
            }
        }
        out
    }

    pub fn instance_names(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.base_dir().join(&self.service.state_dir)
    }

    pub fn repository_dir(&self) -> Option<PathBuf> {
        self.repository
            .as_ref()
            .map(|r| self.base_dir().join(&r.path))
    }

    /// Resolves a name that is an instance or a role to the instance's name.
    pub fn resolve(&self, name: &str) -> Result<String> {
        if self.instances.contains_key(name) {
            return Ok(name.to_string());
        }
        if let Some(target) = self.roles.get(name) {
            return Ok(target.get_ref().clone());
        }
        let roles: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        Err(
            Error::user(format!("no instance or role named `{name}`")).with_hint(format!(
                "instances: {}; roles: {}",
                self.instance_names().join(", "),
                if roles.is_empty() {
                    "none".to_string()
                } else {
                    roles.join(", ")
                }
            )),
        )
    }

    /// The role names pointing at `instance`.
    pub fn roles_of(&self, instance: &str) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, t)| t.get_ref() == instance)
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub fn is_production(&self, instance: &str) -> bool {
        self.production() == Some(instance)
    }

    /// The instance the `production` role points at, if there is one.
    pub fn production(&self) -> Option<&str> {
        self.roles.get("production").map(|t| t.get_ref().as_str())
    }

    /// An instance's dir, relative paths resolved against the config file's directory.
    pub fn instance_dir(&self, instance: &str) -> Option<PathBuf> {
        self.instances
            .get(instance)
            .map(|i| self.base_dir().join(&i.dir))
    }

    /// The own log file (stdout and stderr) of instance `name` configured as `inst`:
    /// `log` relative to its dir, or `<state_dir>/logs/<name>.log`.
    pub fn log_path(&self, name: &str, inst: &InstanceConfig) -> PathBuf {
        match &inst.log {
            Some(p) => self.base_dir().join(&inst.dir).join(p),
            None => self.state_dir().join("logs").join(format!("{name}.log")),
        }
    }

    /// Every log file `log-nuke` empties: the instance's own log, then its `logs`.
    pub fn log_files(&self, instance: &str) -> Vec<PathBuf> {
        let (Some(inst), Some(dir)) = (self.instances.get(instance), self.instance_dir(instance))
        else {
            return Vec::new();
        };
        std::iter::once(self.log_path(instance, inst))
            .chain(inst.logs.iter().map(|p| dir.join(p)))
            .collect()
    }

    /// Which database an instance points at (without reading its password).
    pub fn database_identity(&self, instance: &str) -> Option<DatabaseIdentity> {
        let inst = self.instances.get(instance)?;
        let db = inst.database.as_ref()?;
        let url = db.url.as_ref().map(|u| u.get_ref().as_str());
        let dir = self.instance_dir(instance)?;
        // No password: an identity is where the database is, not how to log in.
        Database::new(db.kind, &dir, db.path.as_deref(), url, None)
            .ok()
            .map(|d| d.identity())
    }

    /// Each database that more than one instance points at, with those instances in name
    /// order. Sharing is allowed (blue-green upgrades do it); `config show` and
    /// `status` say it so nobody is surprised.
    pub fn shared_databases(&self) -> Vec<SharedDatabase> {
        let mut by_identity: BTreeMap<DatabaseIdentity, Vec<String>> = BTreeMap::new();
        for name in self.instances.keys() {
            if let Some(id) = self.database_identity(name) {
                by_identity.entry(id).or_default().push(name.clone());
            }
        }
        by_identity
            .into_iter()
            .filter(|(_, instances)| instances.len() > 1)
            .map(|(database, instances)| SharedDatabase {
                database,
                instances,
            })
            .collect()
    }

    /// The config with every secret a URL could hold masked, for showing.
    pub fn masked(&self) -> Config {
        let mut shown = self.clone();
        for inst in shown.instances.values_mut() {
            if let Some(db) = &mut inst.database {
                if let Some(url) = &mut db.url {
                    *url = Spanned::new(0..0, crate::engine::mask_url(url.get_ref()));
                }
            }
        }
        shown
    }

    /// The effective config as TOML, secrets masked (passwords are never in the file,
    /// but a password file's path and env var name are shown; any userinfo password in a
    /// URL is masked), after a comment for each database that instances share.
    pub fn show(&self) -> String {
        let shown = self.masked();
        let mut out = String::new();
        for shared in self.shared_databases() {
            out += &format!(
                "# instances {} share one database: {}\n",
                shared.instances.join(", "),
                shared.database
            );
        }
        match toml::to_string_pretty(&shown) {
            Ok(text) => out + &text,
            Err(e) => out + &format!("# cannot render: {e}\n"),
        }
    }
}

/// The longest instance or role name: it becomes part of file names.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name cannot name an instance or a role. Names become parts of file names
/// (`logs/NAME.log`, safety dumps) and are joined by commas on the command line, so
/// they are `[A-Za-z0-9][A-Za-z0-9._-]*`: no `/`, no `..`, no `,`, not empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    #[error("a name cannot be empty")]
    Empty,
    #[error("a name must start with a letter or a digit, not `{0}`")]
    BadStart(char),
    #[error("`{0}` cannot be part of a name (letters, digits, `.`, `_` and `-` only)")]
    BadChar(char),
    #[error("a name has at most {MAX_NAME_LEN} characters")]
    TooLong,
}

/// Checks that `name` can name an instance or a role (see [`BadName`]).
pub fn check_name(name: &str) -> std::result::Result<(), BadName> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(BadName::Empty),
        Some(c) if !c.is_ascii_alphanumeric() => return Err(BadName::BadStart(c)),
        Some(_) => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(BadName::BadChar(c));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(BadName::TooLong);
    }
    Ok(())
}

/// Where key `key` of top-level table `table` is written in `text`, for messages that
/// point at it (serde gives no spans for map keys; toml_edit keeps them).
fn key_offset(text: &str, table: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    doc.as_table()
        .get(table)?
        .as_table_like()?
        .key(key)?
        .span()
        .map(|s| s.start)
}

/// One database and the instances that point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedDatabase {
    pub database: DatabaseIdentity,
    pub instances: Vec<String>,
}

/// Rewrites `[roles] ROLE = "INSTANCE"` in the file, keeping its comments and layout.
pub fn write_role(path: &Path, role: &str, instance: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigIo {
        path: path.to_path_buf(),
        source,
    })?;
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| Error::Config {
                diagnostics: vec![diagnostic(
                    path,
                    &text,
                    e.span().map(|s| s.start).unwrap_or(0),
                    e.message().to_string(),
                )],
            })?;
    if doc.get("roles").is_none() {
        doc["roles"] = toml_edit::table();
    }
    doc["roles"][role] = toml_edit::value(instance);
    let new_text = doc.to_string();
    // Validate before writing: a role change must leave a valid file.
    Config::parse(&new_text, path)?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &new_text)
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("replacing {}", path.display()), e))?;
    Ok(())
}

fn diagnostic(path: &Path, text: &str, offset: usize, message: String) -> Diagnostic {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        message,
    }
}

/// Parses a human duration (`10s`, `5m`, `1h 30m`) with the message config errors use.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        format!("invalid duration `{text}`: {e} (write e.g. \"10s\", \"5m\", \"1h 30m\")")
    })
}
