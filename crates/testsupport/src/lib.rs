//! Throwaway real database servers for ostler's integration tests.
//!
//! ostler's drivers are tested against the real thing (see DESIGN.md), so the tests
//! need PostgreSQL and MariaDB servers that nobody else uses: each one here lives in
//! its own temp dir, listens on a free port on 127.0.0.1 only, demands a random
//! password, and is gone (process stopped, dir removed) when it is dropped or, for
//! the per-process [`PgServer::shared`] / [`MariaDbServer::shared`] servers and for
//! servers whose test process was killed, when the test process exits (a small
//! watchdog process sees to that). The machine's own database servers, if any, are
//! never touched.
//!
//! Secrets travel the way ostler itself passes them: in the environment
//! (`PGPASSWORD`, `MYSQL_PWD`), never in argv, and never in the URLs given out.
//! [`SmtpSink`] and [`WebhookSink`] are loopback servers recording what alert channels send.

mod command;
mod loopback;
mod mariadb;
mod pg;
mod port;
mod process;
mod secret;
pub mod smtp;
pub mod webhook;

pub use mariadb::MariaDbServer;
pub use pg::PgServer;
pub use port::free_port;
pub use smtp::{Mail, SmtpSink};
pub use webhook::{Request, WebhookSink};
