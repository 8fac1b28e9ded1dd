//! Processes as the kernel sees them (procfs): is a recorded pid still the process we
//! started (or a reused pid now belonging to someone else), who holds a port, and an
//! instance's process tree.

use std::collections::HashMap;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

/// True when a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match procfs::process::Process::new(pid).and_then(|p| p.stat()) {
        Ok(stat) => stat.state != 'Z' && stat.state != 'X',
        Err(_) => matches!(
            kill(Pid::from_raw(pid), None::<Signal>),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        ),
    }
}

/// The process's start time in clock ticks since boot: with the pid, it identifies a
/// process across pid reuse.
pub fn start_ticks(pid: i32) -> Option<u64> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .ok()
        .map(|s| s.starttime)
}

/// What we know of a recorded pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidState {
    /// It is the process we started.
    Ours,
    /// No such process (it exited).
    Gone,
    /// The pid now belongs to another process: the recorded one exited and the pid was reused.
    Reused,
}

pub fn pid_state(pid: i32, recorded_ticks: Option<u64>) -> PidState {
    if !pid_alive(pid) {
        return PidState::Gone;
    }
    match (recorded_ticks, start_ticks(pid)) {
        (Some(want), Some(have)) if want != have => PidState::Reused,
        _ => PidState::Ours,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub state: char,
    pub rss_kib: u64,
    pub command: String,
    /// Depth in the tree below the instance's top process (0 = top).
    pub depth: usize,
}

fn info(p: &procfs::process::Process, depth: usize) -> Option<ProcessInfo> {
    let stat = p.stat().ok()?;
    let cmdline = p
        .cmdline()
        .ok()
        .filter(|c| !c.is_empty())
        .map(|c| c.join(" "));
    Some(ProcessInfo {
        pid: stat.pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        state: stat.state,
        rss_kib: stat.rss * (procfs::page_size() / 1024),
        command: cmdline.unwrap_or_else(|| format!("[{}]", stat.comm)),
        depth,
    })
}

/// The process `root` and all its descendants, plus anything else left in its process
/// group, in tree order.
pub fn tree(root: i32) -> Vec<ProcessInfo> {
    let mut all: HashMap<i32, ProcessInfo> = HashMap::new();
    if let Ok(procs) = procfs::process::all_processes() {
        for p in procs.flatten() {
            if let Some(i) = info(&p, 0) {
                all.insert(i.pid, i);
            }
        }
    }
    let mut out = Vec::new();
    fn walk(pid: i32, depth: usize, all: &HashMap<i32, ProcessInfo>, out: &mut Vec<ProcessInfo>) {
        if let Some(p) = all.get(&pid) {
            let mut p = p.clone();
            p.depth = depth;
            out.push(p);
            let mut kids: Vec<i32> = all
                .values()
                .filter(|c| c.ppid == pid)
                .map(|c| c.pid)
                .collect();
            kids.sort();
            for k in kids {
                walk(k, depth + 1, all, out);
            }
        }
    }
    walk(root, 0, &all, &mut out);
    let seen: std::collections::HashSet<i32> = out.iter().map(|p| p.pid).collect();
    let mut strays: Vec<ProcessInfo> = all
        .values()
        .filter(|p| p.pgid == root && !seen.contains(&p.pid))
        .cloned()
        .collect();
    strays.sort_by_key(|p| p.pid);
    out.extend(strays);
    out
}

/// Signals process group `pgid` (an instance's, a job run's: each is its own group).
pub fn signal_group(pgid: i32, signal: nix::sys::signal::Signal) -> nix::Result<()> {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal)
}

/// Pids of every live process in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(procs) = procfs::process::all_processes() {
        for p in procs.flatten() {
            if let Ok(stat) = p.stat() {
                if stat.pgrp == pgid && stat.state != 'Z' {
                    out.push(stat.pid);
                }
            }
        }
    }
    out
}

/// Whether `pid` runs with `key=value` in its environment (as it was started): how a
/// job run's process is told from another that got its pid since.
pub fn has_env(pid: i32, key: &str, value: &str) -> bool {
    let Ok(environ) = procfs::process::Process::new(pid).and_then(|p| p.environ()) else {
        return false;
    };
    environ
        .get(std::ffi::OsStr::new(key))
        .is_some_and(|v| v == value)
}

/// Who listens on a TCP port: (pid, program) when it can be found.
pub fn port_holder(port: u16) -> Option<(i32, String)> {
    let mut inodes = Vec::new();
    for table in [procfs::net::tcp(), procfs::net::tcp6()]
        .into_iter()
        .flatten()
    {
        for e in table {
            if e.local_address.port() == port && e.state == procfs::net::TcpState::Listen {
                inodes.push(e.inode);
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for p in procfs::process::all_processes().ok()?.flatten() {
        if let Ok(fds) = p.fd() {
            for fd in fds.flatten() {
                if let procfs::process::FDTarget::Socket(inode) = fd.target {
                    if inodes.contains(&inode) {
                        let name = p
                            .cmdline()
                            .ok()
                            .filter(|c| !c.is_empty())
                            .map(|c| c.join(" "))
                            .or_else(|| p.stat().ok().map(|s| s.comm))
                            .unwrap_or_default();
                        return Some((p.pid, name));
                    }
                }
            }
        }
    }
    None
}

/// True when something accepts or holds a listening socket on 127.0.0.1/0.0.0.0:port.
pub fn port_in_use(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_err()
        || std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}
