//! `ostler upgrade ROLE --to NEW`: the instance behind ROLE is replaced by NEW without a
//! failed request, through the daemon's proxy. The steps, in order: build NEW; start it
//! (its health check must pass); when it has pending migrations, back up OLD and
//! migrate (the proxy in maintenance for exactly the migrations marked offline); switch
//! the proxy to NEW; wait until OLD has answered its requests in flight; stop OLD; move
//! the roles (ROLE = NEW, `old` = OLD) and point the proxy at ROLE again. A failure
//! before the switch stops NEW and leaves OLD serving as it was; the error names the
//! step. `ostler rollback ROLE` is the same switch back to `old`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::daemon::client::Client;
use crate::daemon::control::{MaintenanceRequest, ProxyStatus, SwitchRequest};
use crate::error::{Error, Result};
use crate::instance::{Instance, Ostler};

/// How long OLD may take to finish its requests in flight after the switch.
pub const DRAIN: Duration = Duration::from_secs(30);

/// A step of an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Build,
    Start,
    Backup,
    Migrate,
    Switch,
    Drain,
    StopOld,
    Roles,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Build => "build",
            Step::Start => "start",
            Step::Backup => "backup",
            Step::Migrate => "migrate",
            Step::Switch => "switch",
            Step::Drain => "drain",
            Step::StopOld => "stop-old",
            Step::Roles => "roles",
        }
    }
}

/// A step done, and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub step: Step,
    pub took: Duration,
    /// What it did (a backup's id, the migrations applied...), when there is more to say.
    pub detail: Option<String>,
}

/// An upgrade (or rollback) that completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upgraded {
    pub role: String,
    pub old: String,
    pub new: String,
    pub steps: Vec<Done>,
    /// How long the proxy was in maintenance (offline migrations), if at all.
    pub maintenance: Option<Duration>,
}

/// Replaces the instance behind `role` with `new`, through the daemon at `client`.
/// `on_step` hears each step as it is done.
pub fn upgrade(
    ostler: &Ostler,
    client: &Client,
    role: &str,
    new: &str,
    on_step: &dyn Fn(&Done),
) -> Result<Upgraded> {
    let config = &ostler.config;
    let old = config.resolve(role)?;
    let new = config.resolve(new)?;
    if old == new {
        return Err(Error::user(format!(
            "{role} is {new} already: upgrade to another instance"
        )));
    }
    let serving = proxied(client, &old)?;
    let (old_inst, new_inst) = (ostler.instance(&old)?, ostler.instance(&new)?);
    ostler.journal_event(
        "upgrade",
        Some(&new),
        &format!(
            "upgrade of {role} from {old} (port {}) to {new}: begun",
            serving.port
        ),
    )?;
    let mut run = Run {
        steps: Vec::new(),
        on_step,
    };
    let mut maintenance = None;
    // Before the switch: any failure stops NEW, and OLD serves as before.
    let before = (|| -> Result<()> {
        run.step(Step::Build, || {
            ostler.operate(&new_inst, "build", Duration::from_secs(1800), |r| {
                crate::ops::build(ostler, &new_inst, r).map(|_| None)
            })
        })?;
        run.step(Step::Start, || {
            ostler.operate(&new_inst, "start", Duration::from_secs(600), |r| {
                crate::ops::start(ostler, &new_inst, r).map(|_| None)
            })
        })?;
        maintenance = migrate(ostler, client, &old_inst, &new_inst, &mut run)?;
        Ok(())
    })();
    if let Err(e) = before {
        let failed = run.failed_step();
        let _ = ostler.operate(&new_inst, "stop", Duration::from_secs(120), |r| {
            crate::ops::stop(ostler, &new_inst, r)
        });
        let _ = ostler.journal_event(
            "upgrade",
            Some(&new),
            &format!(
                "upgrade of {role} to {new} failed at {}: {}; {new} stopped, {old} serves as before",
                failed.as_str(),
                crate::error::chain(&e)
            ),
        );
        return Err(Error::failed(format!(
            "upgrade of {role} to {new} failed at step {}: {}; {new} was stopped and {old} serves as before",
            failed.as_str(),
            crate::error::chain(&e)
        )));
    }
    move_traffic(ostler, client, role, &old_inst, &new_inst, &mut run)?;
    ostler.journal_event(
        "upgrade",
        Some(&new),
        &format!("upgrade of {role} from {old} to {new}: done; `ostler rollback {role}` goes back"),
    )?;
    Ok(Upgraded {
        role: role.to_string(),
        old,
        new,
        steps: run.steps,
        maintenance,
    })
}

/// Switches `role` back to the instance `old` names (started again if it is not).
pub fn rollback(
    ostler: &Ostler,
    client: &Client,
    role: &str,
    on_step: &dyn Fn(&Done),
) -> Result<Upgraded> {
    let config = &ostler.config;
    let current = config.resolve(role)?;
    let back = config
        .resolve("old")
        .map_err(|_| Error::user("there is no role `old` to roll back to (an upgrade sets it)"))?;
    if back == current {
        return Err(Error::user(format!("{role} is {back} already")));
    }
    proxied(client, &current)?;
    let (current_inst, back_inst) = (ostler.instance(&current)?, ostler.instance(&back)?);
    let mut run = Run {
        steps: Vec::new(),
        on_step,
    };
    run.step(Step::Start, || {
        ostler.operate(&back_inst, "start", Duration::from_secs(600), |r| {
            crate::ops::start(ostler, &back_inst, r).map(|_| None)
        })
    })?;
    move_traffic(ostler, client, role, &current_inst, &back_inst, &mut run)?;
    ostler.journal_event(
        "rollback",
        Some(&back),
        &format!("{role} rolled back from {current} to {back}"),
    )?;
    Ok(Upgraded {
        role: role.to_string(),
        old: current,
        new: back,
        steps: run.steps,
        maintenance: None,
    })
}

/// The steps taken so far, told as they are done.
struct Run<'a> {
    steps: Vec<Done>,
    on_step: &'a dyn Fn(&Done),
}

impl Run<'_> {
    fn step(&mut self, step: Step, f: impl FnOnce() -> Result<Option<String>>) -> Result<()> {
        let started = Instant::now();
        // Recorded before it runs: a failure is then the last one here.
        self.steps.push(Done {
            step,
            took: Duration::ZERO,
            detail: None,
        });
        let detail = f()?;
        let done = self.steps.last_mut().expect("pushed above");
        done.took = started.elapsed();
        done.detail = detail;
        (self.on_step)(done);
        Ok(())
    }

    fn failed_step(&self) -> Step {
        self.steps.last().map_or(Step::Build, |d| d.step)
    }
}

/// The daemon's proxy must route to `old` now: what it says about it.
fn proxied(client: &Client, old: &str) -> Result<crate::proxy::routing::Backend> {
    let status: ProxyStatus = client.get("/v1/proxy")?;
    match status.backend {
        Some(b) if b.instance == old => Ok(b),
        Some(b) => Err(Error::user(format!(
            "the proxy sends requests to {}, not {old}: finish or undo that first (`ostler proxy`)",
            b.instance
        ))),
        None => Err(Error::user(
            "the daemon runs no [proxy]: an upgrade without failed requests needs it",
        )
        .with_hint("add [proxy] listen = \"127.0.0.1:8080\" and point the clients at it")),
    }
}

/// Backs up OLD and applies NEW's pending migrations, in maintenance for exactly the
/// offline ones; how long maintenance lasted.
fn migrate(
    ostler: &Ostler,
    client: &Client,
    old: &Instance,
    new: &Instance,
    run: &mut Run,
) -> Result<Option<Duration>> {
    if new.config.migrations.is_none() {
        return Ok(None);
    }
    // Files: only when some are pending (and none changed); a framework's command:
    // always, as it knows what is pending.
    // The backup below is of OLD's database: enough when NEW migrates that one.
    let config = &ostler.config;
    let shared = config.database_identity(&old.name).is_some()
        && config.database_identity(&old.name) == config.database_identity(&new.name);
    let offline = match crate::migrations::dir_of(new)? {
        Some(_) => {
            let status = crate::migrations::status(new, &ostler.runner())?;
            crate::migrations::refuse_inconsistent(new, &status)?;
            if status.pending.is_empty() {
                return Ok(None);
            }
            status.pending.iter().any(|m| m.offline)
        }
        None => false,
    };
    run.step(Step::Backup, || {
        ostler.operate(old, "backup", Duration::from_secs(3600), |r| {
            crate::migrations::safety_copy(ostler, old, r).map(Some)
        })
    })?;
    let window = Instant::now();
    if offline {
        maintenance(client, true)?;
    }
    let migrated = run.step(Step::Migrate, || {
        let outcome = crate::migrations::migrate(
            ostler,
            new,
            &crate::migrations::MigrateOptions {
                to: None,
                yes_really_production: true,
                copied_already: shared,
            },
        )?;
        Ok(Some(format!("{:?}", outcome.migrated)))
    });
    if offline {
        maintenance(client, false)?;
    }
    migrated?;
    Ok(offline.then(|| window.elapsed()))
}

fn maintenance(client: &Client, on: bool) -> Result<()> {
    let _: crate::proxy::Routing = client.post(
        "/v1/proxy/maintenance",
        &MaintenanceRequest {
            on,
            by: "upgrade".into(),
            reason: Some("a schema change the old code cannot serve through".into()),
        },
    )?;
    Ok(())
}

/// Switches the proxy from `from` to `to`, waits for `from`'s requests, stops it, and
/// moves the roles (`role` = to, `old` = from).
fn move_traffic(
    ostler: &Ostler,
    client: &Client,
    role: &str,
    from: &Instance,
    to: &Instance,
    run: &mut Run,
) -> Result<()> {
    run.step(Step::Switch, || {
        let _: ProxyStatus = client.post(
            "/v1/proxy/switch",
            &SwitchRequest {
                to: Some(to.name.clone()),
                by: crate::state::who(),
            },
        )?;
        Ok(None)
    })?;
    run.step(Step::Drain, || {
        let left = client.wait_drained(&from.name, DRAIN)?;
        Ok((left > 0).then(|| format!("{left} requests still in flight after {DRAIN:?}")))
    })?;
    run.step(Step::StopOld, || {
        ostler.operate(from, "stop", Duration::from_secs(120), |r| {
            crate::ops::stop(ostler, from, r).map(|_| None)
        })
    })?;
    run.step(Step::Roles, || {
        crate::config::write_role(&ostler.config.path, role, &to.name)?;
        crate::config::write_role(&ostler.config.path, "old", &from.name)?;
        let _: crate::daemon::ConfigChanges = client.post("/v1/reload", &serde_json::json!({}))?;
        // The proxy follows the role again (which names `to` now).
        let _: ProxyStatus = client.post(
            "/v1/proxy/switch",
            &SwitchRequest {
                to: None,
                by: crate::state::who(),
            },
        )?;
        Ok(None)
    })
}
