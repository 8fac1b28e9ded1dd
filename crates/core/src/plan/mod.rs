//! Plans: every procedure that can lose or replace something is first a [`Plan`], a
//! list of typed [`Step`]s built without side effects, then run. A plan is what
//! `--dry-run` prints, what the production guard judges (each step's [`Effect`]),
//! and what the journal records before the procedure runs, so the three cannot
//! disagree about what will happen. Each step says what it does ([`Action`]), what
//! proves it worked ([`Check`]) and, where there is one, how it is undone ([`Undo`]).
//!
//! The builders live beside the procedures they plan: [`chain`] (the bin/manage verbs,
//! db-nuke and rebuild among them) here, `backup::procedures::plan_restore` and
//! `plan_mirror`, `backup::prune::plan`, `forensics::partial::plan`. The runners take the
//! plan they were given, so what runs is what was shown. Words for people are the
//! front end's business: nothing here renders a plan as text.

pub mod chain;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::guard::Effect;
pub use chain::Verb;

/// What the plan is for, as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", rename_all = "kebab-case")]
pub enum Procedure {
    /// A bin/manage chain: the verbs as typed, on the instances named.
    Chain {
        verbs: Vec<Verb>,
        instances: Vec<String>,
    },
    /// A backup restored over an instance (its own, or another with `--into`).
    Restore { backup: String, instance: String },
    /// One instance's backup put onto another; `backup` is None when a fresh one is
    /// taken first.
    Mirror {
        source: String,
        target: String,
        backup: Option<String>,
    },
    /// The backups no retention rule keeps removed, and the chunks nothing needs.
    Prune,
    /// Rows of a table put back from a backup into the live database.
    RestoreRows {
        backup: String,
        instance: String,
        table: String,
    },
}

impl Procedure {
    /// The journal's name for the operation.
    pub fn operation(&self) -> &'static str {
        match self {
            Procedure::Chain { .. } => "chain",
            Procedure::Restore { .. } => "restore",
            Procedure::Mirror { .. } => "mirror",
            Procedure::Prune => "prune",
            Procedure::RestoreRows { .. } => "restore-rows",
        }
    }
}

/// One step: where it runs, what it does, what it does as the guard sees it, what
/// proves it worked and how it is undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The instance the step acts on; None for what is the service's (prune).
    pub instance: Option<String>,
    pub action: Action,
    /// In a chain, the verb the user typed this step comes from (`rebuild` for its `build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Verb>,
    pub effect: Effect,
    pub check: Check,
    pub undo: Option<Undo>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// Runs the build command in the instance's dir (None: there is none; nothing runs).
    Build { command: Option<String> },
    /// Runs the configure command.
    Configure { command: Option<String> },
    /// Starts the instance's process.
    Start,
    /// Stops it (SIGTERM to its group, SIGKILL after its stop timeout).
    Stop,
    /// Shows the instance as configured and its status.
    Print,
    /// Names the instance.
    Echo,
    /// Lists its processes.
    Processes,
    /// Empties these log files.
    EmptyLogs { files: Vec<PathBuf> },
    /// Writes a safety dump of the database into `dump_dir`, then drops it (db-nuke).
    DropDatabase { database: String, dump_dir: PathBuf },
    /// Finishes or undoes an earlier restore of the instance that was killed.
    SettleUnfinishedRestore { backup: String },
    /// Takes a backup (mirror's `--fresh`).
    TakeBackup,
    /// Backs up what the instance holds now, before it is replaced.
    TakeSafetyBackup,
    /// Loads the backup's database into a side database beside the live one.
    /// (`backup` None: the one an earlier step of the plan takes.)
    LoadSideDatabase {
        backup: Option<String>,
        side: String,
    },
    /// Runs the scrub SQL on the side database before it goes live.
    Scrub { sql: String },
    /// Restores a store's files into a side directory beside the live one.
    RestoreStore {
        name: String,
        backup: Option<String>,
        side: PathBuf,
    },
    /// Swaps every side location in, putting each live one aside (see `backup::recover`).
    SwapIn { places: Vec<String> },
    /// Removes what the swap put aside: from here the safety backup is the way back.
    RemoveAsides,
    /// Finishes removing backups an interrupted prune had marked.
    FinishInterruptedPrune { ids: Vec<String> },
    /// Removes these backups' manifests and catalog entries.
    RemoveBackups { ids: Vec<String> },
    /// Clears failed or interrupted catalog entries.
    ClearEntries { ids: Vec<String> },
    /// Removes the chunks no remaining backup names.
    CollectGarbage,
    /// Inserts these rows into a live table (all tables of the plan in one transaction).
    InsertRows { table: String, rows: usize },
}

/// What proves a step worked (the runner stops the plan when it does not hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Check {
    /// Nothing to prove: the step only shows something.
    Nothing,
    /// The command exits 0.
    CommandSucceeds,
    /// The process is alive and, when the instance has a health URL, answers it with 2xx.
    Healthy { url: Option<String> },
    /// No process of the instance's group is left.
    ProcessGone,
    /// The log files are empty.
    LogsEmpty,
    /// The safety dump is written, then the database is gone or empty.
    DumpWrittenAndDatabaseEmpty,
    /// No restore journal is left for the instance.
    NoUnfinishedRestore,
    /// The backup is in the catalog as good (its manifest written last).
    BackupGood,
    /// Every table loaded from the backup's chains, each chunk's hash verified as read.
    TablesLoaded { tables: usize },
    /// The SQL runs without an error.
    SqlSucceeds,
    /// Every file written from chunks whose hashes were verified as read.
    FilesRestored,
    /// The restore journal reaches `swapped`: every side is live.
    JournalSwapped,
    /// The backups are gone from the catalog and the repository.
    BackupsGone,
    /// The chunks kept are exactly those the remaining manifests and good backups name.
    OnlyNeededChunksKept,
    /// The transaction commits (or nothing is written).
    TransactionCommits,
}

/// How a step is undone, when it can be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    /// Start the instance again.
    Start,
    /// Stop it again.
    Stop,
    /// Remove the side location (nothing live was touched).
    RemoveSide,
    /// Put each aside back in place (what a failed restore does on its own).
    SwapBack,
    /// Restore the safety backup taken first (`ostler restore --from <it>`).
    RestoreSafetyBackup,
    /// Load the safety dump written first, with the database's own client.
    LoadSafetyDump { dump_dir: PathBuf },
}

/// A procedure as a list of steps, built before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    #[serde(flatten)]
    pub procedure: Procedure,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn new(procedure: Procedure) -> Plan {
        Plan {
            procedure,
            steps: Vec::new(),
        }
    }

    /// Appends a step on `instance`.
    pub fn push(
        &mut self,
        instance: Option<&str>,
        action: Action,
        effect: Effect,
        check: Check,
        undo: Option<Undo>,
    ) {
        self.steps.push(Step {
            instance: instance.map(str::to_string),
            action,
            from: None,
            effect,
            check,
            undo,
        });
    }

    /// How the guard and the journal name what `step` is part of: the verb typed for a
    /// chain's step, the procedure and its target otherwise (`restore backup 3f2a1c
    /// over`, `mirror gb-1 onto`), always followed by the instance.
    pub fn operation(&self, step: &Step) -> String {
        match (&self.procedure, step.from) {
            (_, Some(verb)) => verb.name().to_string(),
            (Procedure::Chain { .. }, None) => "chain".into(),
            (Procedure::Restore { backup, .. }, _) => format!("restore backup {backup} over"),
            (Procedure::Mirror { source, backup, .. }, _) => match backup {
                Some(b) => format!("mirror {source}'s backup {b} onto"),
                None => format!("mirror a fresh backup of {source} onto"),
            },
            (Procedure::Prune, _) => "prune the backups of".into(),
            (Procedure::RestoreRows { backup, table, .. }, _) => {
                format!("restore rows of {table} from backup {backup} into")
            }
        }
    }

    /// The plan as JSON, for the journal.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
