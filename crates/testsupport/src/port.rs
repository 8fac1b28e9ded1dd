//! Free TCP ports for servers started by tests.
//!
//! Asking the kernel for port 0 gives a port that is free *now*; the server binds it
//! a moment later, so another process can still take it in between. The servers in
//! this crate retry with a new port when that happens. Within one process we do
//! better: a port is never handed out twice, so two servers started by concurrent
//! tests never race for the same one.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a TCP port on 127.0.0.1 that was free when asked and that this process
/// has not handed out before.
///
/// # Panics
/// Panics if the kernel refuses to bind 127.0.0.1:0 a hundred times in a row, which
/// means the machine cannot run networked tests at all.
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|err| panic!("{err:#}"))
}

/// Like [`free_port`], but says why instead of panicking.
pub(crate) fn try_free_port() -> anyhow::Result<u16> {
    let mut last_error = None;
    for _ in 0..100 {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => {
                let port = addr.port();
                // A poisoned lock only means another thread panicked while holding
                // it; the set itself is still valid.
                let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
                if ports.insert(port) {
                    return Ok(port);
                }
            }
            Err(err) => last_error = Some(err),
        }
    }
    match last_error {
        Some(err) => Err(anyhow::anyhow!(
            "could not find a free TCP port: binding 127.0.0.1:0 failed: {err}"
        )),
        None => Err(anyhow::anyhow!(
            "could not find a free TCP port: the kernel kept offering ports this process \
             already handed out"
        )),
    }
}
