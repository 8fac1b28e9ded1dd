//! PostgreSQL: one `REPEATABLE READ` snapshot shared with `pg_dump` for the DDL, rows
//! as COPY text lines, loads through COPY in one transaction, and maintenance with
//! the server's own tools (`psql`, `pg_dump`).

mod admin;
mod codec;
mod connect;
mod load;
mod quote;
mod snapshot;

pub(crate) use admin::{exists, nuke, remove, run_sql, safety_dump, swap_in};
pub use codec::decode;
pub use load::{export, load};
pub use snapshot::PgSnapshot;
