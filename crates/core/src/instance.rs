//! The model: an `Ostler` handle on one service (its config, reporter and interrupt
//! flag) and the `Instance`s it resolves, with their paths, database and commands
//! expanded. `Ostler::operate` is the one way an operation on an instance runs: under
//! the instance's lock, journaled before and completed after.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{Config, DatabaseConfig, InstanceConfig};
use crate::engine::Database;
use crate::error::{Error, Result};
use crate::exec::Runner;
use crate::report::{Interrupt, Reporter};
use crate::state::State;

/// ostler acting on one service.
#[derive(Clone)]
pub struct Ostler {
    pub config: Config,
    pub reporter: Arc<dyn Reporter>,
    pub interrupt: Interrupt,
    /// Where every time ostler records or compares comes from.
    pub clock: Clock,
}

/// One instance, resolved: absolute paths and its database.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub config: InstanceConfig,
    pub dir: PathBuf,
    pub log_path: PathBuf,
    pub database: Option<Database>,
    pub port: u16,
}

impl Ostler {
    pub fn new(config: Config, reporter: Arc<dyn Reporter>, interrupt: Interrupt) -> Ostler {
        Ostler {
            config,
            reporter,
            interrupt,
            clock: Clock::system(),
        }
    }

    /// The same, on another clock (a test's manual one).
    pub fn with_clock(mut self, clock: Clock) -> Ostler {
        self.clock = clock;
        self
    }

    pub fn load(path: &Path, reporter: Arc<dyn Reporter>, interrupt: Interrupt) -> Result<Ostler> {
        let config = Config::load(path)?;
        // Said once, here, for every command that loads the config.
        for old in &config.deprecations {
            reporter.warn("", &old.to_string());
        }
        Ok(Ostler::new(config, reporter, interrupt))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.config.state_dir()
    }

    pub fn state(&self) -> Result<State> {
        State::open(&self.state_dir(), self.clock.clone())
    }

    /// A runner not tied to a journal entry.
    pub fn runner(&self) -> Runner {
        Runner::new(self.reporter.clone(), self.interrupt.clone())
    }

    /// Resolves an instance or role name.
    pub fn instance(&self, name: &str) -> Result<Instance> {
        let name = self.config.resolve(name)?;
        // Validated with the config already; checked again here, where the name becomes
        // part of paths (`logs/NAME.log`, safety dumps), whatever built the config.
        crate::config::check_name(&name)
            .map_err(|e| Error::user(format!("instance name `{name}` is not allowed: {e}")))?;
        let config = self.config.instances[&name].clone();
        let base = self.config.base_dir();
        let dir = base.join(&config.dir);
        let log_path = self.config.log_path(&name, &config);
        let database = match &config.database {
            Some(db) => Some(resolve_database(&self.config, &name, db, &dir)?),
            None => None,
        };
        Ok(Instance {
            port: *config.port.get_ref(),
            name,
            config,
            dir,
            log_path,
            database,
        })
    }

    pub fn instances(&self) -> Result<Vec<Instance>> {
        self.config
            .instance_names()
            .iter()
            .map(|n| self.instance(n))
            .collect()
    }

    /// Runs `f` as operation `operation` on `instance`: takes the instance's lock (or
    /// fails naming its holder), journals the start, runs, journals the outcome, unlocks.
    pub fn operate<T>(
        &self,
        instance: &Instance,
        operation: &str,
        ttl: Duration,
        f: impl FnOnce(&Runner) -> Result<T>,
    ) -> Result<T> {
        self.operate_planned(instance, operation, ttl, None, f)
    }

    /// [`Ostler::operate`] for an operation that runs (part of) `plan`: the journal
    /// entry records the plan before `f` runs.
    pub fn operate_planned<T>(
        &self,
        instance: &Instance,
        operation: &str,
        ttl: Duration,
        plan: Option<&crate::plan::Plan>,
        f: impl FnOnce(&Runner) -> Result<T>,
    ) -> Result<T> {
        // What is logged while it runs says which operation on which instance.
        let _span =
            tracing::info_span!("operation", operation, instance = %instance.name).entered();
        let state = self.state()?;
        state.lock(&instance.name, operation, ttl)?;
        let begun = state
            .journal_begin(operation, Some(&instance.name), None)
            .and_then(|id| {
                if let Some(plan) = plan {
                    state.journal_plan(id, &plan.to_json())?;
                }
                Ok(id)
            });
        let id = match begun {
            Ok(id) => id,
            Err(e) => {
                let _ = state.unlock(&instance.name);
                return Err(e);
            }
        };
        // A plan silences its own instance's alerts while it runs (a restore takes the
        // instance down on purpose), for at most its lock's time.
        let silence = plan.and_then(|_| {
            crate::alerts::store::silence(
                &state,
                &instance.name,
                ttl,
                &format!("plan:{operation}"),
                Some("a planned operation runs on it"),
            )
            .map_err(|e| tracing::warn!(error = %crate::error::chain(&e), "instance not silenced"))
            .ok()
        });
        let runner = self.runner().journaled(&state, id);
        let result = f(&runner);
        if let Some(silence) = silence {
            let _ = crate::alerts::store::end_silence(&state, silence.id);
        }
        let (status, detail) = match &result {
            Ok(_) => ("ok", None),
            Err(Error::Interrupted) => ("interrupted", Some("interrupted".to_string())),
            Err(e) => ("failed", Some(crate::error::chain(e).to_string())),
        };
        let _ = state.journal_end(id, status, detail.as_deref());
        let _ = state.unlock(&instance.name);
        result
    }

    /// Journals an operation that is not about one instance (role changes, serve...).
    pub fn journal_event(
        &self,
        operation: &str,
        instance: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        let state = self.state()?;
        let id = state.journal_begin(operation, instance, Some(detail))?;
        state.journal_end(id, "ok", None)
    }
}

/// Builds an instance's `Database` from its `[database]` section. Reads the password
/// now so that a missing password file is reported before anything runs.
fn resolve_database(
    config: &Config,
    instance: &str,
    db: &DatabaseConfig,
    dir: &Path,
) -> Result<Database> {
    let password = read_password(config, instance, db)?;
    Database::new(
        db.kind,
        dir,
        db.path.as_deref(),
        db.url.as_ref().map(|u| u.get_ref().as_str()),
        password,
    )
    .map_err(|e| Error::user(format!("instance `{instance}`: {e}")))
}

/// The password of a `[database]` section: the first line of `password_file`
/// (relative to the config file) or the value of `password_env`.
fn read_password(config: &Config, instance: &str, db: &DatabaseConfig) -> Result<Option<String>> {
    if let Some(file) = &db.password_file {
        let path = config.base_dir().join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::user(format!(
                "instance `{instance}`: cannot read password_file {}: {e}",
                path.display()
            ))
        })?;
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    if let Some(var) = &db.password_env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(Error::user(format!(
                "instance `{instance}`: password_env names `{var}`, which is not set"
            ))),
        };
    }
    Ok(None)
}

impl Instance {
    /// Expands `{port}`, `{db}`, `{dir}` and `{name}` in a command from the config.
    pub fn expand(&self, template: &str) -> String {
        template
            .replace("{port}", &self.port.to_string())
            .replace(
                "{db}",
                &self
                    .database
                    .as_ref()
                    .map(|d| d.locator())
                    .unwrap_or_default(),
            )
            .replace("{dir}", &self.dir.display().to_string())
            .replace("{name}", &self.name)
    }

    /// The health URL, expanded.
    pub fn health_url(&self) -> Option<String> {
        self.config.health.as_deref().map(|h| self.expand(h))
    }

    /// Environment for the instance's commands: the config's `env`, the database
    /// password in its engine's variable, and `OSTLER_INSTANCE`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), self.expand(v)))
            .collect();
        if let Some(db) = &self.database {
            env.extend(db.child_env());
        }
        env.push(("OSTLER_INSTANCE".into(), self.name.clone()));
        env
    }

    /// Absolute paths of the instance's stores (name, path, cache).
    pub fn stores(&self) -> Vec<(String, PathBuf, bool)> {
        self.config
            .stores
            .iter()
            .map(|s| (s.name.clone(), self.dir.join(&s.path), s.cache))
            .collect()
    }
}
