//! Forensics: which backups still hold vanished rows (`find`), what changed between
//! two backups or a backup and the live database (`diff`), putting back exactly the
//! lost rows (`partial`), and reading access logs for the moment things changed (`logs`).

pub mod diff;
pub mod eval;
pub mod find;
pub mod logs;
pub mod partial;
