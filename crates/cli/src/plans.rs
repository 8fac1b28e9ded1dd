//! Plans and what their steps did, in words: `--dry-run`'s one line per step (with
//! what proves it and how it is undone), the production guard's question, and each
//! chain step's outcome. The library hands over typed plans and outcomes; this is
//! where they become sentences, so `--json` carries fields and text stays readable.

use ostler_core::guard::{self, Danger, Exposure};
use ostler_core::ops::{Built, InstanceInfo, Started, Stopped};
use ostler_core::plan::chain::{StepOutcome, StepResult};
use ostler_core::plan::{Action, Check, Plan, Procedure, Step, Undo};
use ostler_core::process::ProcessInfo;
use ostler_core::{Ostler, Result};

/// Prints a plan: the plan object with `--json`, else one line per step and a last
/// line saying nothing changed.
pub fn print_dry_run(ostler: &Ostler, plan: &Plan, json: bool) -> Result<()> {
    if json {
        return crate::commands::print_json(plan);
    }
    for s in &plan.steps {
        outln!("{}", step_line(ostler, s));
    }
    if plan.steps.is_empty() {
        outln!("dry run: nothing to do");
    } else {
        outln!(
            "dry run: {}; nothing changed",
            procedure_words(&plan.procedure)
        );
    }
    Ok(())
}

/// What the plan is, in a few words.
pub fn procedure_words(p: &Procedure) -> String {
    match p {
        Procedure::Chain { verbs, instances } => format!(
            "{} on {}",
            verbs.iter().map(|v| v.name()).collect::<Vec<_>>().join(","),
            instances.join(",")
        ),
        Procedure::Restore { backup, instance } => {
            format!("restore backup {backup} over {instance}")
        }
        Procedure::Mirror {
            source,
            target,
            backup,
        } => match backup {
            Some(b) => format!("mirror {source}'s backup {b} onto {target}"),
            None => format!("mirror a fresh backup of {source} onto {target}"),
        },
        Procedure::Prune => "prune".into(),
        Procedure::RestoreRows {
            backup,
            instance,
            table,
        } => format!("restore rows of {table} from backup {backup} into {instance}"),
    }
}

/// One step: what it does (and whether the guard will ask), its check and its undo.
pub fn step_line(ostler: &Ostler, s: &Step) -> String {
    let what = match (&s.from, &s.instance) {
        (Some(_), Some(i)) => format!("{} {i}", chain_verb(&s.action)),
        (None, Some(i)) => format!("{i}: {}", action_words(&s.action)),
        (_, None) => action_words(&s.action),
    };
    let guarded = match &s.instance {
        Some(i) if guard::exposure(&ostler.config, i, s.effect).is_some() => {
            format!("  (guarded: {})", s.effect.words())
        }
        _ => String::new(),
    };
    format!(
        "{what}{guarded}  -- check: {}; undo: {}",
        check_words(&s.check),
        s.undo.as_ref().map_or("none".into(), undo_words)
    )
}

/// A chain step's verb, as typed on the command line.
fn chain_verb(a: &Action) -> &'static str {
    match a {
        Action::Build { .. } => "build",
        Action::Configure { .. } => "configure",
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Print => "print",
        Action::Echo => "echo",
        Action::Processes => "processes",
        Action::EmptyLogs { .. } => "log-nuke",
        Action::DropDatabase { .. } => "db-nuke",
        _ => "step",
    }
}

fn ids(ids: &[String]) -> String {
    format!("{} ({})", ids.len(), ids.join(", "))
}

fn backup_words(b: &Option<String>) -> String {
    match b {
        Some(b) => format!("backup {b}"),
        None => "the fresh backup".into(),
    }
}

fn action_words(a: &Action) -> String {
    match a {
        Action::Build { command } => match command {
            Some(c) => format!("build with `{c}`"),
            None => "build (no build command: nothing runs)".into(),
        },
        Action::Configure { command } => match command {
            Some(c) => format!("configure with `{c}`"),
            None => "configure (no configure command: refused)".into(),
        },
        Action::Start => "start it".into(),
        Action::Stop => "stop it".into(),
        Action::Print => "print it".into(),
        Action::Echo => "name it".into(),
        Action::Processes => "list its processes".into(),
        Action::EmptyLogs { files } => format!(
            "empty {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Action::DropDatabase { database, dump_dir } => format!(
            "write a safety dump into {}, then drop database {database}",
            dump_dir.display()
        ),
        Action::SettleUnfinishedRestore { backup } => {
            format!("finish or undo the interrupted restore of backup {backup}")
        }
        Action::TakeBackup => "take a fresh backup".into(),
        Action::TakeSafetyBackup => "take a safety backup of what it holds now".into(),
        Action::LoadSideDatabase { backup, side } => format!(
            "load the database of {} into side database {side}",
            backup_words(backup)
        ),
        Action::Scrub { sql } => format!(
            "run the scrub SQL ({} bytes) on the side database",
            sql.len()
        ),
        Action::RestoreStore { name, backup, side } => format!(
            "restore store {name} of {} into {}",
            backup_words(backup),
            side.display()
        ),
        Action::SwapIn { places } => format!(
            "swap the restored {} in, putting the live ones aside",
            places.join(", ")
        ),
        Action::RemoveAsides => "remove what was put aside".into(),
        Action::FinishInterruptedPrune { ids: i } => {
            format!("finish removing {} marked by an interrupted prune", ids(i))
        }
        Action::RemoveBackups { ids: i } => format!("remove backups {}", ids(i)),
        Action::ClearEntries { ids: i } => {
            format!("clear failed or interrupted entries {}", ids(i))
        }
        Action::CollectGarbage => "remove the chunks no remaining backup needs".into(),
        Action::InsertRows { table, rows } => format!("insert {rows} rows into {table}"),
    }
}

fn check_words(c: &Check) -> String {
    match c {
        Check::Nothing => "nothing to check".into(),
        Check::CommandSucceeds => "the command exits 0".into(),
        Check::Healthy { url: Some(u) } => format!("{u} answers 2xx"),
        Check::Healthy { url: None } => "the process is alive".into(),
        Check::ProcessGone => "no process of its group is left".into(),
        Check::LogsEmpty => "the files are empty".into(),
        Check::DumpWrittenAndDatabaseEmpty => {
            "the dump is written, then the database is empty".into()
        }
        Check::NoUnfinishedRestore => "no restore journal is left".into(),
        Check::BackupGood => "the backup is good in the catalog".into(),
        Check::TablesLoaded { tables } => {
            format!("{tables} tables loaded, every chunk's hash verified")
        }
        Check::SqlSucceeds => "the SQL runs without an error".into(),
        Check::FilesRestored => "every file written from verified chunks".into(),
        Check::JournalSwapped => "the restore journal reaches `swapped`".into(),
        Check::BackupsGone => "gone from the catalog and the repository".into(),
        Check::OnlyNeededChunksKept => "only chunks a remaining backup names are kept".into(),
        Check::TransactionCommits => "the transaction commits, or nothing is written".into(),
    }
}

fn undo_words(u: &Undo) -> String {
    match u {
        Undo::Start => "start it".into(),
        Undo::Stop => "stop it".into(),
        Undo::RemoveSide => "remove the side copy".into(),
        Undo::SwapBack => "put the live data back (done on any failure)".into(),
        Undo::RestoreSafetyBackup => "restore the safety backup".into(),
        Undo::LoadSafetyDump { dump_dir } => {
            format!("load the dump from {}", dump_dir.display())
        }
    }
}

/// What the guard asks about, in words: why the instance is guarded and what the
/// plan will do to it.
pub fn describe_danger(danger: &Danger) -> String {
    let who = match &danger.exposure {
        Exposure::Production => format!("{} is the PRODUCTION instance.", danger.instance),
        Exposure::SharesProductionDatabase {
            production,
            database,
        } => format!(
            "{}'s database is the PRODUCTION instance {production}'s database ({database}).",
            danger.instance
        ),
        Exposure::SharesProductionLogs { production, files } => format!(
            "{}'s logs are the PRODUCTION instance {production}'s ({}).",
            danger.instance,
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let what: Vec<String> = danger
        .consequences
        .iter()
        .map(|c| format!("{} {} {}", c.operation, danger.instance, c.effect.words()))
        .collect();
    format!("{who} {}.", what.join("; "))
}

/// A started instance, as one line.
pub fn started(instance: &str, s: &Started) -> String {
    format!(
        "{instance}: started (pid {}, port {}){}",
        s.pid,
        s.port,
        s.healthy_after_secs
            .map(|t| format!(", healthy after {t:.1}s"))
            .unwrap_or_default()
    )
}

fn stopped(instance: &str, s: &Stopped) -> String {
    match s {
        Stopped::Terminated { after_secs } => {
            format!("{instance}: stopped with SIGTERM after {after_secs:.1}s")
        }
        Stopped::Killed { timeout_ms } => format!(
            "{instance}: did not stop within {} of SIGTERM; killed with SIGKILL",
            humantime::format_duration(std::time::Duration::from_millis(*timeout_ms))
        ),
    }
}

/// A chain step's outcome, in words.
pub fn outcome(o: &StepOutcome) -> String {
    let i = &o.instance;
    match &o.result {
        StepResult::Echoed => i.clone(),
        StepResult::Printed(info) => instance_info(info),
        StepResult::Processes { processes: ps } => processes(ps),
        StepResult::Built {
            built: Built::Built,
        } => format!("{i}: built"),
        StepResult::Built {
            built: Built::NoBuildCommand,
        } => format!("{i}: no build command; nothing to build"),
        StepResult::Configured => format!("{i}: configured"),
        StepResult::Started(s) => started(i, s),
        StepResult::Stopped(s) => stopped(i, s),
        StepResult::LogsEmptied(l) if l.files.is_empty() => format!("{i}: no log files yet"),
        StepResult::LogsEmptied(l) => format!(
            "{i}: emptied {}",
            l.files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepResult::DatabaseNuked(n) => format!(
            "{i}: database emptied; safety dump: {}",
            n.safety_dump
                .as_ref()
                .map_or("none (no database file yet)".into(), |p| p
                    .display()
                    .to_string())
        ),
        StepResult::Failed { error } => error.clone(),
    }
}

fn processes(ps: &[ProcessInfo]) -> String {
    let mut out = format!("{:>7} {:>7} {:>9}  COMMAND\n", "PID", "PPID", "RSS");
    for p in ps {
        out += &format!(
            "{:>7} {:>7} {:>7}Ki  {}{}\n",
            p.pid,
            p.ppid,
            p.rss_kib,
            "  ".repeat(p.depth),
            p.command
        );
    }
    out.trim_end().to_string()
}

fn instance_info(i: &InstanceInfo) -> String {
    let mut out = format!(
        "instance {}\n  dir:      {}\n  port:     {}\n  start:    {}\n",
        i.name,
        i.dir.display(),
        i.port,
        i.start
    );
    if let Some(b) = &i.build {
        out += &format!("  build:    {b}\n");
    }
    if let Some(h) = &i.health {
        out += &format!("  health:   {h}\n");
    }
    if let Some(db) = &i.database {
        out += &format!("  database: {} {}\n", db.kind, db.locator);
    }
    for s in &i.stores {
        out += &format!(
            "  store:    {} {}{}\n",
            s.name,
            s.path.display(),
            if s.cache { " (cache)" } else { "" }
        );
    }
    out += &format!("  log:      {}\n", i.log.display());
    let st = &i.status;
    if !st.roles.is_empty() {
        out += &format!("  roles:    {}\n", st.roles.join(", "));
    }
    if !st.shares_database_with.is_empty() {
        out += &format!(
            "  shares its database with: {}\n",
            st.shares_database_with.join(", ")
        );
    }
    out += &format!("  status:   {}", st.state);
    if let Some(pid) = st.pid {
        out += &format!(" (pid {pid})");
    }
    out.push('\n');
    out
}
