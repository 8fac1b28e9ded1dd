//! The parts every throwaway server shares: its temp dir, the unprivileged account a
//! server may have to run as, the server process itself, and the watchdog that
//! cleans up after a test process that went away without dropping its servers.
//!
//! Why a watchdog process rather than `PR_SET_PDEATHSIG`: the death signal fires
//! when the *thread* that spawned the child exits, and the test harness runs each
//! test on its own thread, so a server shared by the whole process would be killed
//! as soon as the first test that used it finished. Statics are never dropped
//! either, so the shared servers need someone outside the process to stop them.

use std::fs::File;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use tempfile::TempDir;

use crate::command::{describe, log_tail};

/// Name of the file, inside a server's temp dir, that holds the process group
/// (installer's or server's) that the watchdog must stop.
const PGID_FILE: &str = "ostler-pgid";

/// True when this process runs as root, where PostgreSQL refuses to run at all and
/// MariaDB needs `--user=root`.
pub(crate) fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A system account that a server is run as when the tests run as root.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) name: String,
    uid: u32,
    gid: u32,
}

impl Account {
    /// The first of `names` that exists on this machine.
    pub(crate) fn first_existing(names: &[&str]) -> anyhow::Result<Account> {
        for name in names {
            let user = User::from_name(name)
                .with_context(|| format!("could not look up the system user {name:?}"))?;
            if let Some(user) = user {
                return Ok(Account {
                    name: (*name).to_owned(),
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                });
            }
        }
        bail!(
            "none of the system users {names:?} exists; one is needed to run the server \
             unprivileged while the tests run as root"
        )
    }

    /// Makes `cmd` run as this account (std drops supplementary groups too).
    pub(crate) fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid)
            .gid(self.gid)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
    }

    pub(crate) fn chown(&self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).with_context(|| {
            format!(
                "could not give {} to the system user {}",
                path.display(),
                self.name
            )
        })
    }
}

/// Whether every directory from `/` down to `path` lets other users pass through, so
/// that a server running as another account can reach its own dir below it.
fn traversable_by_all(path: &Path) -> bool {
    path.ancestors().all(|dir| {
        std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Creates the temp dir a server lives in, named `{prefix}XXXXXX`, mode 0700.
///
/// With an `owner` (a server that runs as another account), the dir is given to
/// that account and placed where it can reach it: the usual temp dir if every
/// parent is world-traversable, otherwise `/tmp`.
fn make_temp_dir(prefix: &str, owner: Option<&Account>) -> anyhow::Result<TempDir> {
    let mut base = std::env::temp_dir();
    if let Ok(canonical) = base.canonicalize() {
        base = canonical;
    }
    if owner.is_some() && !traversable_by_all(&base) {
        base = PathBuf::from("/tmp");
        if !traversable_by_all(&base) {
            bail!(
                "neither $TMPDIR nor /tmp can be reached by other users, so a server \
                 running unprivileged could not reach its own directory"
            );
        }
    }
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .with_context(|| format!("could not create a temp dir in {}", base.display()))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("could not set the mode of {}", dir.path().display()))?;
    if let Some(owner) = owner {
        owner.chown(dir.path())?;
    }
    Ok(dir)
}

/// The temp dir a server lives in, watched over by a small `bash` process that
/// waits for this process to end, then stops whatever runs in the dir (the
/// installer or the server: the process group recorded by [`track`]) and removes
/// the dir. Dropping it removes the dir first and then ends the watchdog, so that
/// the dir is looked after until it is gone.
///
/// The watchdog notices its parent's end by its own parent pid changing (it is
/// re-parented), which neither a reused pid nor an unreaped zombie parent can fool.
/// It stops the whole process group and waits until no live member is left before
/// removing the dir, because `mariadb-install-db` is a script whose bootstrap
/// server, left running, would go on writing into the dir being removed. It
/// ignores the terminal's signals, and sits in its own process group, so that a
/// Ctrl-C on the tests still gets the cleanup done. bash rather than sh because
/// dash's `kill` cannot signal a process group.
pub(crate) struct ServerDir {
    path: PathBuf,
    dir: Option<TempDir>,
    watchdog: Child,
}

const WATCHDOG_SCRIPT: &str = r#"
trap '' INT TERM HUP QUIT PIPE
parent=$1 dir=$2 sig=$3 pgid_file=$4
case "$dir" in /?*/ostler-*) ;; *) exit 2 ;; esac
ppid_now() { read -r s < /proc/$$/stat; s=${s##*") "}; set -- $s; pp=$2; }
group_alive() {
  local f s
  for f in /proc/[0-9]*/stat; do
    { read -r s < "$f"; } 2>/dev/null || continue
    s=${s##*") "}
    set -- $s
    [ "$1" != Z ] && [ "$3" = "$pg" ] && return 0
  done
  return 1
}
while ppid_now && [ "$pp" = "$parent" ]; do sleep 0.5; done
pg=
{ read -r pg < "$dir/$pgid_file"; } 2>/dev/null
if [ -n "$pg" ] && [ "$pg" -gt 1 ] && kill -s "$sig" -- "-$pg" 2>/dev/null; then
  i=0
  while group_alive && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  kill -s KILL -- "-$pg" 2>/dev/null
  i=0
  while group_alive && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
fi
rm -rf "$dir"
"#;

/// Records that the process group `pgid` now runs in `dir`, for the watchdog.
pub(crate) fn track(dir: &Path, pgid: u32) -> anyhow::Result<()> {
    let file = dir.join(PGID_FILE);
    std::fs::write(&file, format!("{pgid}\n"))
        .with_context(|| format!("could not write {}", file.display()))
}

/// Forgets the process group recorded by [`track`] once it has finished.
pub(crate) fn untrack(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(PGID_FILE));
}

impl ServerDir {
    /// Creates the dir, named `{prefix}XXXXXX`, and its watchdog. `owner` is the
    /// account the server runs as, if not this process's; `stop_signal` is the
    /// signal name (`INT`, `TERM`) that shuts the server down quickly and cleanly.
    pub(crate) fn create(
        prefix: &str,
        owner: Option<&Account>,
        stop_signal: &str,
    ) -> anyhow::Result<ServerDir> {
        let dir = make_temp_dir(prefix, owner)?;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("ostler-testsupport-watchdog")
            .arg(std::process::id().to_string())
            .arg(dir.path())
            .arg(stop_signal)
            .arg(PGID_FILE)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let watchdog = cmd
            .spawn()
            .with_context(|| format!("could not start the watchdog `{}`", describe(&cmd)))?;
        Ok(ServerDir {
            path: dir.path().to_owned(),
            dir: Some(dir),
            watchdog,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        // The dir is gone; the watchdog has nothing left to look after.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// A running server process: started in its own process group with its output in
/// a log file, stopped with a signal, killed if it does not stop in time. Dropping
/// it kills the server if it still runs (a server that failed to start properly).
pub(crate) struct ServerProcess {
    what: &'static str,
    child: Mutex<Child>,
    pid: u32,
    stop_signal: Signal,
    stop_timeout: Duration,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `cmd` in a process group of its own with stdout and stderr appended
    /// to `output_log`, and records it for the watchdog of `dir`. `log` is the file
    /// whose tail explains a failure (the server's own error log, or `output_log`).
    pub(crate) fn spawn(
        what: &'static str,
        cmd: &mut Command,
        dir: &Path,
        output_log: &Path,
        log: &Path,
        stop_signal: Signal,
        stop_timeout: Duration,
    ) -> anyhow::Result<ServerProcess> {
        let line = describe(cmd);
        let out = File::options()
            .create(true)
            .append(true)
            .open(output_log)
            .with_context(|| format!("could not open {}", output_log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("could not open {}", output_log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {what} failed: could not run `{line}`"))?;
        let server = ServerProcess {
            what,
            pid: child.id(),
            child: Mutex::new(child),
            stop_signal,
            stop_timeout,
            log: log.to_owned(),
        };
        // The server leads its own process group, so its pid is the group's id.
        track(dir, server.pid)?;
        Ok(server)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the server has exited, `None` while it runs.
    pub(crate) fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        // An error here means the child was already reaped; count it as gone.
        match child.try_wait() {
            Ok(status) => status,
            Err(_) => Some(ExitStatus::default()),
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.exited().is_none()
    }

    /// The last lines of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Asks the server to stop and waits for it; kills it if it takes longer than
    /// the stop timeout (and says so). Stopping a stopped server is a no-op.
    pub(crate) fn stop(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(child.try_wait(), Ok(None)) {
            return Ok(());
        }
        // Only signal a child we have not reaped, so the pid cannot be reused yet.
        kill(Pid::from_raw(self.pid as i32), self.stop_signal).with_context(|| {
            format!(
                "could not send {} to {} (pid {})",
                self.stop_signal, self.what, self.pid
            )
        })?;
        let deadline = Instant::now() + self.stop_timeout;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(anyhow!(
            "{} (pid {}) did not stop within {:?} of {}, so it was killed; its log ends:\n{}",
            self.what,
            self.pid,
            self.stop_timeout,
            self.stop_signal,
            log_tail(&self.log)
        ))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `probe` until it succeeds, the server exits, or `timeout` passes. The
/// error names the server, the last probe error and the tail of the server's log.
pub(crate) fn wait_until_ready(
    server: &ServerProcess,
    timeout: Duration,
    mut probe: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.exited() {
            bail!(
                "{} (pid {}) exited with {status} before it accepted connections; its log \
                 ends:\n{}",
                server.what,
                server.pid,
                server.log_tail()
            );
        }
        let last_error = match probe() {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        if Instant::now() >= deadline {
            bail!(
                "{} (pid {}) did not accept connections within {timeout:?}; the last \
                 attempt said: {last_error:#}\nits log ends:\n{}",
                server.what,
                server.pid,
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a server's log says it could not bind its port, which happens when
/// another process took the free port between our asking and the server binding.
pub(crate) fn lost_port_race(log: &Path) -> bool {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    text.contains("Address already in use") || text.contains("could not bind")
}
