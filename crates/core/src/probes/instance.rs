//! The probes about an instance: `process` (it runs: the pid `ostler status` shows is
//! alive and ours) and `sql` (a query against its database returning one number, read
//! through the engine's own client (`Database::run_sql`, as the CLI's SQL is run),
//! judged against warn/crit).

use super::config::ProbeConfig;
use super::range::show;
use super::run::{Perf, ProbeResult};
use super::Status;
use crate::instance::{Instance, Ostler};

/// The instance a probe names, resolved (a role to the instance behind it).
fn instance(ostler: &Ostler, probe: &ProbeConfig) -> Result<Instance, ProbeResult> {
    let Some(named) = probe.instance.as_ref().map(|i| i.get_ref()) else {
        return Err(ProbeResult::new(
            Status::Unknown,
            "no `instance` to look at",
        ));
    };
    ostler
        .config
        .resolve(named)
        .and_then(|name| ostler.instance(&name))
        .map_err(|e| ProbeResult::new(Status::Unknown, crate::error::chain(&e).to_string()))
}

pub(super) fn check_process(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let inst = match instance(ostler, probe) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match crate::ops::status(ostler, &inst) {
        Ok(status) => match status.pid {
            Some(pid) => {
                ProbeResult::new(Status::Ok, format!("{} is running, pid {pid}", inst.name))
            }
            None => ProbeResult::new(
                Status::Critical,
                format!("{} is not running ({})", inst.name, status.state),
            ),
        },
        Err(e) => ProbeResult::new(
            Status::Unknown,
            format!("the state of {}: {}", inst.name, crate::error::chain(&e)),
        ),
    }
}

pub(super) fn check_sql(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let inst = match instance(ostler, probe) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(db) = &inst.database else {
        return ProbeResult::new(
            Status::Unknown,
            format!("{} has no [database] to query", inst.name),
        );
    };
    let query = probe.query.as_ref().map_or("", |q| q.get_ref().as_str());
    // The client runs on a thread of its own so that `timeout` is honoured: past it
    // the result is CRITICAL at once, and the client is left to end on its own (the
    // engines' clients take no deadline; its answer is then dropped).
    let (tx, rx) = std::sync::mpsc::channel();
    let (db, runner, sql) = (db.clone(), ostler.runner(), query.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(db.run_sql(&runner, None, &sql));
    });
    let timeout = super::run::timeout_of(probe);
    let output = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return ProbeResult::new(
                Status::Critical,
                format!(
                    "the query on {} failed: {}",
                    inst.name,
                    crate::error::chain(&e)
                ),
            )
        }
        Err(_) => {
            return ProbeResult::new(
                Status::Critical,
                format!(
                    "the query on {} did not answer within {}",
                    inst.name,
                    humantime::format_duration(timeout)
                ),
            )
        }
    };
    let first = output
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.split('\t').next())
        .unwrap_or("")
        .trim();
    let Ok(value) = first.parse::<f64>() else {
        return ProbeResult::new(
            Status::Unknown,
            format!(
                "the query on {} returned `{}`, not a number",
                inst.name,
                output.lines().next().unwrap_or("").trim()
            ),
        );
    };
    let thresholds = probe.thresholds();
    ProbeResult::new(
        thresholds.status(value),
        format!("{} on {}", show(value), inst.name),
    )
    .with_perf(Perf::new("value", value, "").judged(&thresholds))
}
