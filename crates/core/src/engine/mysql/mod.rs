//! MySQL and MariaDB: a `WITH CONSISTENT SNAPSHOT` transaction, the server's own DDL,
//! rows as SQL value tuples, loads as multi-row INSERTs, and maintenance with the
//! server's own tools (`mariadb`, `mariadb-dump`).

mod admin;
mod codec;
mod connect;
mod load;
mod quote;
mod schema;
mod snapshot;

pub(crate) use admin::{exists, holds_data, nuke, remove, run_sql, safety_dump, swap_in};
pub use codec::decode;
pub use load::{export, load};
pub use snapshot::MysqlSnapshot;
