//! SQLite: a file. Backups copy it with the online backup API and read tables from
//! the copy; rows are kept in a small typed binary encoding; maintenance goes through
//! the `sqlite3` shell.

mod admin;
mod codec;
mod connect;
mod load;
mod quote;
mod snapshot;

pub(crate) use admin::{exists, nuke, remove, run_sql, safety_dump, swap_in};
pub use codec::{decode, decode_values, encode_values};
pub use load::{export, load};
pub use snapshot::SqliteSnapshot;
