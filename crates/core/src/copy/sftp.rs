//! A copy on an SFTP server, reached through the system's `ssh` as restic and borg do:
//! `ssh -o BatchMode=yes [-p PORT] [-i KEY] [-o UserKnownHostsFile=..] [-l USER] -s HOST sftp`.
//! So the operator's `~/.ssh/config`, keys, agent, known_hosts, `ProxyJump` and
//! `ControlMaster` all apply, and ostler carries no SSH implementation of its own to
//! keep secure. `BatchMode` makes a missing key or an unknown host key fail at once
//! instead of waiting at a prompt nobody sees.
//!
//! The SFTP protocol over the child's stdin/stdout is spoken by `russh-sftp`, a
//! maintained pure-Rust client that accepts any byte stream, keeps up to 16 writes in
//! flight per file and sends `fsync@openssh.com` on flush. The alternative, driving
//! `sftp -b -`, means parsing `ls` output written for people, a batch that aborts on
//! the first failed command (so "does it exist?" needs a batch of its own) and a local
//! temp file for every `get`. The price of the library is a small tokio runtime (one
//! worker thread) owned by the backend, which keeps [`Backend`] synchronous; the
//! backend must therefore not be used from inside another tokio runtime's async code
//! (use `spawn_blocking`).
//!
//! Atomic puts: upload to a temporary name in the destination directory, fsync it,
//! then rename. SFTP v3's rename refuses to replace an existing file (OpenSSH does
//! `link` + `unlink`), which suits an immutable repository: a put whose target
//! appeared meanwhile keeps the existing file and drops the upload.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{Config as SftpConfig, SftpSession};
use russh_sftp::protocol::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{check_path, temp_path, Backend};
use crate::error::{Error, Result};
use crate::exec::{Launch, Runner};

/// How long one SFTP request may take before the connection is given up.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Bytes of ssh's stderr kept for error messages.
const STDERR_KEEP: usize = 4096;

/// How to reach the server; relative local paths must already be resolved.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
}

impl SshOptions {
    /// Arguments for `ssh` that open the `sftp` subsystem.
    pub fn ssh_args(&self) -> Result<Vec<OsString>> {
        if self.host.is_empty() || self.host.starts_with('-') {
            return Err(Error::user(format!(
                "`{}` is not an SSH host name",
                self.host
            )));
        }
        let mut args: Vec<OsString> = vec!["-o".into(), "BatchMode=yes".into()];
        if let Some(port) = self.port {
            args.extend(["-p".into(), port.to_string().into()]);
        }
        if let Some(key) = &self.identity_file {
            args.extend(["-i".into(), key.clone().into_os_string()]);
        }
        if let Some(known) = &self.known_hosts {
            let known = known.to_str().filter(|s| !s.contains('"')).ok_or_else(|| {
                Error::user(format!(
                    "known_hosts path {} cannot be passed to ssh",
                    known.display()
                ))
            })?;
            args.extend([
                "-o".into(),
                format!("UserKnownHostsFile=\"{known}\"").into(),
            ]);
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.starts_with('-') {
                return Err(Error::user(format!("`{user}` is not an SSH user name")));
            }
            args.extend(["-l".into(), user.into()]);
        }
        args.extend([
            "-s".into(),
            "--".into(),
            self.host.clone().into(),
            "sftp".into(),
        ]);
        Ok(args)
    }
}

pub struct SftpBackend {
    runtime: tokio::runtime::Runtime,
    session: SftpSession,
    /// ssh, and its announcement whose end is recorded when it exits.
    child: Mutex<Option<(tokio::process::Child, Launch)>>,
    stderr: Arc<Mutex<String>>,
    root: String,
    label: String,
    made_dirs: Mutex<HashSet<String>>,
}

impl SftpBackend {
    /// Starts `ssh` and the SFTP session; `path` is the copy's directory on the
    /// server (relative to the login directory unless absolute), created on the
    /// first `put` if missing.
    /// `ssh` runs through `runner`: echoed, and journaled with its end when the
    /// backend is dropped.
    pub fn connect(ssh: &SshOptions, path: &str, runner: &Runner) -> Result<SftpBackend> {
        let args = ssh.ssh_args()?;
        let root = match path.trim_end_matches('/') {
            "" if path.starts_with('/') => "/".to_string(),
            "" => ".".to_string(),
            p => p.to_string(),
        };
        let label = format!(
            "sftp {}{}:{root}{}",
            ssh.user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            ssh.host,
            ssh.port.map(|p| format!(" (port {p})")).unwrap_or_default()
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ostler-sftp")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the SFTP runtime", e))?;
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let launch = runner.launch(&cmd)?;
        tracing::info!(command = %launch.line(), "starting ssh for {label}");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (session, child) = runtime.block_on(start(cmd, launch, stderr.clone(), &label))?;
        Ok(SftpBackend {
            runtime,
            session,
            child: Mutex::new(Some(child)),
            stderr,
            root,
            label,
            made_dirs: Mutex::new(HashSet::new()),
        })
    }

    fn full(&self, path: &str) -> String {
        if self.root.ends_with('/') {
            format!("{}{path}", self.root)
        } else {
            format!("{}/{path}", self.root)
        }
    }

    fn err(&self, what: &str, path: &str, e: SftpError) -> Error {
        let said = ssh_said(&self.stderr);
        Error::failed(format!("{}: {what} {path}: {e}{said}", self.label))
    }

    /// Creates `dir` and its missing parents.
    async fn mkdir_p(&self, dir: &str) -> Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir.to_string();
        loop {
            if self
                .made_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&cur)
            {
                break;
            }
            match self.session.try_exists(cur.clone()).await {
                Ok(true) => break,
                Ok(false) => missing.push(cur.clone()),
                Err(e) => return Err(self.err("stat", &cur, e)),
            }
            match cur.rsplit_once('/') {
                Some((parent, _)) if !parent.is_empty() => cur = parent.to_string(),
                _ => break,
            }
        }
        for d in missing.iter().rev() {
            if let Err(e) = self.session.create_dir(d.clone()).await {
                // Another sender may have made it meanwhile.
                if !self.session.try_exists(d.clone()).await.unwrap_or(false) {
                    return Err(self.err("create directory", d, e));
                }
            }
        }
        self.made_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_string());
        Ok(())
    }

    async fn upload(&self, tmp: &str, local_file: &Path) -> Result<()> {
        let mut file = match self.session.create(tmp.to_string()).await {
            Ok(file) => file,
            Err(e) if is_not_found(&e) => {
                let dir = tmp.rsplit_once('/').map_or(".", |(d, _)| d);
                self.mkdir_p(dir).await?;
                self.session
                    .create(tmp.to_string())
                    .await
                    .map_err(|e| self.err("create", tmp, e))?
            }
            Err(e) => return Err(self.err("create", tmp, e)),
        };
        let mut src = std::fs::File::open(local_file)
            .map_err(|e| Error::io(format!("open {}", local_file.display()), e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let written: std::io::Result<()> = async {
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n]).await?;
            }
            file.flush().await?; // waits for every write, then fsync@openssh.com
            file.shutdown().await // close
        }
        .await;
        written.map_err(|e| self.err("write", tmp, SftpError::from(e)))
    }
}

/// Spawns ssh (`cmd`, announced as `launch`) and opens the session; on failure, says
/// what ssh said.
async fn start(
    cmd: std::process::Command,
    launch: Launch,
    stderr: Arc<Mutex<String>>,
    label: &str,
) -> Result<(SftpSession, (tokio::process::Child, Launch))> {
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::io(format!("{label}: cannot run ssh"), e)
                .with_hint("install the OpenSSH client (openssh-client)")
        })?;
    let (Some(stdin), Some(stdout), Some(mut err_pipe)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Error::failed(format!(
            "{label}: ssh started without its pipes"
        )));
    };
    let keep = stderr.clone();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = err_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut kept = keep.lock().unwrap_or_else(|p| p.into_inner());
            kept.push_str(&String::from_utf8_lossy(&buf[..n]));
            if kept.len() > STDERR_KEEP {
                let cut = kept.len() - STDERR_KEEP;
                let cut = (cut..kept.len())
                    .find(|&i| kept.is_char_boundary(i))
                    .unwrap_or(0);
                kept.drain(..cut);
            }
        }
    });
    let config = SftpConfig {
        request_timeout_secs: REQUEST_TIMEOUT_SECS,
        ..SftpConfig::default()
    };
    if let Some(pid) = child.id() {
        launch.started_as(pid);
    }
    match SftpSession::new_with_config(tokio::io::join(stdout, stdin), config).await {
        Ok(session) => Ok((session, (child, launch))),
        Err(e) => {
            // ssh has usually exited by now (refused key, unknown host): wait for its
            // last words before reporting.
            let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            let exit = match status {
                Ok(Ok(s)) => {
                    launch.ended(s);
                    format!("ssh exited with {s}")
                }
                _ => format!("no SFTP session ({e})"),
            };
            let said = ssh_said(&stderr);
            Err(Error::failed(format!("{label}: cannot connect: {exit}{said}")).with_hint(
                "check that `ssh` reaches the host non-interactively with the same user, port, key \
                 and known_hosts, and that the server offers the sftp subsystem",
            ))
        }
    }
}

/// What ssh wrote to stderr, as indented lines after "; ssh said:", or nothing.
fn ssh_said(stderr: &Mutex<String>) -> String {
    let text = stderr.lock().unwrap_or_else(|p| p.into_inner());
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '@'))
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("; ssh said:\n  {}", lines.join("\n  "))
    }
}

fn is_not_found(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

impl Backend for SftpBackend {
    fn list(&self, prefix_dir: &str) -> Result<Vec<String>> {
        let prefix = prefix_dir.trim_end_matches('/');
        if !prefix.is_empty() {
            check_path(prefix)?;
        }
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.full(prefix)
        };
        self.runtime.block_on(async {
            let mut out = Vec::new();
            let mut stack = vec![(start, prefix.to_string())];
            while let Some((dir, rel)) = stack.pop() {
                let entries = match self.session.read_dir(dir.clone()).await {
                    Ok(entries) => entries,
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(self.err("list", &dir, e)),
                };
                for entry in entries {
                    let name = entry.file_name();
                    if name.contains('/') {
                        continue;
                    }
                    let rel_name = if rel.is_empty() {
                        name.clone()
                    } else {
                        format!("{rel}/{name}")
                    };
                    let kind = entry.file_type();
                    if kind.is_dir() {
                        stack.push((format!("{dir}/{name}"), rel_name));
                    } else if kind.is_file() {
                        out.push(rel_name);
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    fn exists(&self, path: &str) -> Result<bool> {
        check_path(path)?;
        let full = self.full(path);
        self.runtime
            .block_on(self.session.try_exists(full.clone()))
            .map_err(|e| self.err("stat", &full, e))
    }

    fn put(&self, path: &str, local_file: &Path) -> Result<()> {
        check_path(path)?;
        let full = self.full(path);
        let tmp = self.full(&temp_path(path));
        self.runtime.block_on(async {
            if let Err(e) = self.upload(&tmp, local_file).await {
                let _ = self.session.remove_file(tmp.clone()).await;
                return Err(e);
            }
            match self.session.rename(tmp.clone(), full.clone()).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let exists = self.session.try_exists(full.clone()).await;
                    let _ = self.session.remove_file(tmp.clone()).await;
                    match exists {
                        Ok(true) => Ok(()),
                        _ => Err(self.err("rename into", &full, e)),
                    }
                }
            }
        })
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        check_path(path)?;
        let full = self.full(path);
        self.runtime
            .block_on(self.session.read(full.clone()))
            .map_err(|e| self.err("read", &full, e))
    }

    fn remove(&self, path: &str) -> Result<()> {
        check_path(path)?;
        let full = self.full(path);
        match self
            .runtime
            .block_on(self.session.remove_file(full.clone()))
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.err("remove", &full, e)),
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

impl Drop for SftpBackend {
    fn drop(&mut self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.runtime.block_on(async {
            let _ = self.session.close().await;
            if let Some((mut child, launch)) = child {
                // Closing the session ends ssh's stdin, so it exits on its own.
                match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(Ok(status)) => {
                        tracing::debug!(%status, "ssh for {} exited", self.label);
                        launch.ended(status);
                    }
                    _ => {
                        let _ = child.kill().await;
                        if let Ok(status) = child.wait().await {
                            launch.ended(status);
                        }
                    }
                }
            }
        });
        let said = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        if !said.trim().is_empty() {
            tracing::debug!(stderr = %said.trim(), "ssh for {} said", self.label);
        }
    }
}
