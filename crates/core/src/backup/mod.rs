//! Backups: consistent captures of an instance's database and stores into the
//! repository, listed in the catalog, verified, pruned, restored and exported.

pub mod capture;
pub mod catalog;
pub mod damage;
pub mod manifest;
pub mod procedures;
pub mod prune;
pub mod recover;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod verify;
