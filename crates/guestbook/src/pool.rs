//! A small pool of blocking connections for the async HTTP handlers.
//!
//! The database clients are synchronous, so every use runs on tokio's blocking
//! threads. A handful of connections is plenty for a sample service and keeps it
//! well under a PostgreSQL's `max_connections`. The pool also heals: a connection
//! that failed and no longer answers a ping is dropped instead of returned, and one
//! that sat idle for a while is pinged before use, so a database restart (something
//! ostler does on purpose) costs at most one failed request, not a dead service.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Semaphore;

use crate::db::Db;
use crate::dburl::{DbTarget, Engine};

/// At most this many connections are open (and this many queries run) at once.
const MAX_CONNECTIONS: usize = 4;
/// A network connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

pub struct Pool {
    target: DbTarget,
    idle: Mutex<Vec<(Db, Instant)>>,
    permits: Semaphore,
}

impl Pool {
    pub fn new(target: DbTarget) -> Arc<Pool> {
        Arc::new(Pool {
            target,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
        })
    }

    pub fn engine(&self) -> Engine {
        self.target.engine()
    }

    /// Runs `f` with a connection on a blocking thread.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.context("pool closed")?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.run_blocking(f))
            .await
            .context("database task panicked")?
    }

    fn run_blocking<T>(&self, f: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut db = self.checkout()?;
        let result = f(&mut db);
        if result.is_ok() || db.ping().is_ok() {
            self.lock_idle().push((db, Instant::now()));
        }
        result
    }

    fn checkout(&self) -> Result<Db> {
        loop {
            let Some((mut db, since)) = self.lock_idle().pop() else {
                return Db::connect(&self.target);
            };
            let remote = db.engine() != Engine::Sqlite;
            if !remote || since.elapsed() < PING_AFTER_IDLE || db.ping().is_ok() {
                return Ok(db);
            }
            tracing::warn!("dropping a stale connection to {}", self.target);
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(Db, Instant)>> {
        // A panic while holding this lock cannot leave the Vec half-changed.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(
            self.idle
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if idle.is_empty() {
            return;
        }
        // The last handle usually goes away on an async worker thread, when the
        // server stops. Closing a `postgres::Client` blocks on the client's private
        // tokio runtime, which panics on a thread already driving async tasks; a
        // plain thread has no runtime, so the connections are closed there.
        if std::thread::spawn(move || drop(idle)).join().is_err() {
            tracing::warn!("closing idle database connections panicked");
        }
    }
}
