//! One recorded run carried out, from `waiting` to its end: journaled (operation `job`,
//! its command under it), executed ([`launch`]), its end recorded, a retry queued when
//! the job has retries left, and a last failure journaled as `job-failed` when the job
//! alerts on failure. The daemon's scheduler and `ostler jobs run` without a daemon both
//! go through [`perform`].

use tokio_util::sync::CancellationToken;

use super::due::retry_wait;
use super::launch::{Executed, Execution, Exit, KillReason, Launcher};
use super::runs::{self, Ended, NewRun, Run, RunState, Trigger};
use super::{JobConfig, Overlap};
use crate::error::{Error, ErrorKind, Result};
use crate::instance::Ostler;

/// A run found its instance (or the repository) locked by another operation: with
/// `overlap = "queue"` it is tried again after this long.
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// What became of a run.
#[derive(Debug, Clone)]
pub struct Performed {
    /// The run as recorded at its end (or waiting again, when it found its instance
    /// busy and queues).
    pub run: Run,
    /// Its retry, queued.
    pub retry: Option<Run>,
    /// It failed for the last time and the job alerts on failure.
    pub alert: bool,
}

/// Carries out run `run` (waiting) of `job`. `kill` asks for it to be killed;
/// `on_start` hears its pid; `on_line` each line it prints.
pub fn perform(
    ostler: &Ostler,
    launcher: &Launcher,
    job: &JobConfig,
    run: &Run,
    kill: &CancellationToken,
    on_start: impl FnOnce(i32),
    on_line: impl FnMut(&str) + Send + 'static,
) -> Result<Performed> {
    let state = ostler.state()?;
    let instance = job.instance_in(&ostler.config);
    let instance = instance.as_deref();
    let name = job.name.get_ref();
    let journal = state.journal_begin(
        "job",
        instance,
        Some(&format!(
            "{name}: run {} ({})",
            run.id,
            run.trigger.as_str()
        )),
    )?;
    let runner = ostler.runner().journaled(&state, journal);
    let execution = Execution {
        ostler,
        runner: &runner,
        launcher,
        job,
        run,
        kill,
    };
    let executed = execution.execute(
        |pid| {
            runs::started(&state, run.id, pid)?;
            on_start(pid);
            Ok(())
        },
        on_line,
    );
    let executed = match executed {
        Ok(executed) => executed,
        Err(e) => {
            // It never ran (the command could not start): a failure like any other.
            let why = crate::error::chain(&e).to_string();
            Executed {
                exit: Exit::Code(127),
                output: why,
            }
        }
    };
    let end = judge(job, instance, &executed);
    let waits_again = end.state == RunState::Waiting;
    if waits_again {
        let not_before = crate::clock::later(ostler.clock.now(), BUSY_WAIT);
        runs::wait_again(&state, run.id, not_before, &end)?;
    } else {
        runs::ended(&state, run.id, &end)?;
    }
    let status = match end.state {
        RunState::Finished => "ok",
        RunState::Waiting | RunState::Skipped => "skipped",
        _ => "failed",
    };
    state.journal_end(journal, status, end.detail.as_deref())?;
    let retry = match (&end.state, &executed.exit) {
        (RunState::Failed, Exit::Killed(KillReason::Asked | KillReason::Interrupted)) => None,
        (RunState::Failed, _) if run.attempt <= job.retries => {
            let not_before = crate::clock::later(ostler.clock.now(), retry_wait(job, run.attempt));
            let id = runs::record(
                &state,
                &NewRun {
                    trigger: Trigger::Retry,
                    attempt: run.attempt + 1,
                    not_before: Some(not_before),
                    ..NewRun {
                        scheduled_for: run.scheduled_for,
                        ..NewRun::manual(name)
                    }
                },
            )?;
            match id {
                Some(id) => runs::get(&state, id)?,
                None => None,
            }
        }
        _ => None,
    };
    let alert = end.state == RunState::Failed && retry.is_none() && job.alert_on_failure;
    if alert {
        ostler.journal_event(
            "job-failed",
            instance,
            &format!(
                "{name}: run {} failed{}: {}",
                run.id,
                if run.attempt > 1 {
                    format!(" (attempt {})", run.attempt)
                } else {
                    String::new()
                },
                end.detail.as_deref().unwrap_or("")
            ),
        )?;
    }
    let run = runs::get(&state, run.id)?
        .ok_or_else(|| Error::failed(format!("run {} of job `{name}` vanished", run.id)))?;
    Ok(Performed { run, retry, alert })
}

/// How the run's end is recorded.
fn judge(job: &JobConfig, instance: Option<&str>, executed: &Executed) -> Ended {
    let output = Some(executed.output.clone());
    let failed = |detail: String| Ended {
        state: RunState::Failed,
        exit_status: match executed.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        },
        detail: Some(detail),
        output: output.clone(),
    };
    let builtin = job.action.is_some();
    match executed.exit {
        Exit::Code(0) => Ended {
            state: RunState::Finished,
            exit_status: Some(0),
            detail: None,
            output,
        },
        // The ostler command of a built-in action says "busy" with this exit status:
        // the instance (or the repository) is locked by another operation.
        Exit::Code(code) if builtin && code == ErrorKind::Busy.exit_code() => {
            let what = instance.map_or("the repository".to_string(), |i| format!("instance {i}"));
            let (state, then) = if job.overlap == Overlap::Queue {
                (RunState::Waiting, "waiting for it (overlap = \"queue\")")
            } else {
                (RunState::Skipped, "skipped")
            };
            Ended {
                state,
                exit_status: Some(code),
                detail: Some(format!("{what} is locked by another operation; {then}")),
                output,
            }
        }
        Exit::Code(code) => failed(format!("exited with status {code}")),
        Exit::Signal(sig) => failed(format!("ended by signal {sig}")),
        Exit::Killed(KillReason::Timeout(after)) => failed(format!(
            "timed out after {}; killed with its process group",
            humantime::format_duration(after)
        )),
        Exit::Killed(KillReason::Asked) => failed(
            "killed with its process group: a newer run took its place (overlap = \"kill-previous\")"
                .to_string(),
        ),
        Exit::Killed(KillReason::Interrupted) => failed(
            "interrupted: killed with its process group as the daemon stopped (or on Ctrl-C)"
                .to_string(),
        ),
    }
}
