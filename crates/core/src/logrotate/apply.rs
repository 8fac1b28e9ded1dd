//! Runs the planned steps of one file. Files ostler makes while rotating (the
//! compressed file, the copy of copytruncate, the new log of `create`) get the mode
//! and owner of the file they come from, and compressed files its times, as
//! logrotate's `createOutputFile` and `setAtimeMtime` do.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::config::CompressMethod;
use super::plan::Step;
use super::{FileError, Target};
use crate::exec::Runner;
use crate::instance::Ostler;

/// Applies `steps` in order; on the first failure, the error and the steps done.
pub(crate) fn apply(
    ostler: &Ostler,
    runner: &Runner,
    target: &Target,
    steps: &[Step],
) -> Result<(), (FileError, Vec<Step>)> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = run(ostler, runner, target, step) {
            return Err((e, steps[..i].to_vec()));
        }
    }
    Ok(())
}

fn run(ostler: &Ostler, runner: &Runner, target: &Target, step: &Step) -> Result<(), FileError> {
    match step {
        Step::Compress { from, to, method } => compress(from, to, *method),
        Step::Rename { from, to } => {
            std::fs::rename(from, to).map_err(|e| FileError::io("cannot rename", from, e))
        }
        Step::Remove { path, .. } => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(FileError::io("cannot remove", path, e))
            }
            _ => Ok(()),
        },
        Step::CopyTruncate { from, to } => copy_truncate(from, to),
        Step::Create {
            path,
            mode,
            uid,
            gid,
        } => create_like(path, *mode, *uid, *gid).map(drop),
        Step::Postrotate { command, log } => postrotate(ostler, runner, target, command, log),
        Step::Signal { signal, pid, .. } => match pid {
            // The group, as `stop` does: the instance may be a shell and its child.
            Some(pid) => nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid), signal.0)
                .map_err(|e| FileError::io(&format!("cannot send {signal} for"), &target.path, e)),
            None => Ok(()),
        },
    }
}

/// Opens `path` new (refusing one that exists) with this mode and owner.
fn create_like(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<File, FileError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600 & mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| FileError::io("cannot create", path, e))?;
    // Owner first: chown may clear set-id bits that chmod then puts back.
    // Not permitted unless root or the owner already: then the file stays ours.
    let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| FileError::io("cannot set the mode of", path, e))?;
    Ok(file)
}

fn compress(from: &Path, to: &Path, method: CompressMethod) -> Result<(), FileError> {
    let meta = std::fs::metadata(from).map_err(|e| FileError::io("cannot stat", from, e))?;
    let input = File::open(from).map_err(|e| FileError::io("cannot open", from, e))?;
    let out = create_like(to, meta.mode() & 0o7777, meta.uid(), meta.gid())?;
    let written = (|| -> std::io::Result<File> {
        let mut reader = BufReader::new(input);
        match method {
            CompressMethod::Gzip => {
                // gzip's default level, as logrotate runs it.
                let mut enc =
                    flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::new(6));
                std::io::copy(&mut reader, &mut enc)?;
                enc.finish()?.into_inner().map_err(|e| e.into_error())
            }
            CompressMethod::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(BufWriter::new(out), 3)?;
                std::io::copy(&mut reader, &mut enc)?;
                enc.finish()?.into_inner().map_err(|e| e.into_error())
            }
        }
    })();
    let out = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(to);
            return Err(FileError::io("cannot compress into", to, e));
        }
    };
    out.sync_all()
        .map_err(|e| FileError::io("cannot sync", to, e))?;
    let times = std::fs::FileTimes::new()
        .set_accessed(meta.accessed().unwrap_or(std::time::SystemTime::UNIX_EPOCH))
        .set_modified(meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH));
    let _ = out.set_times(times);
    std::fs::remove_file(from).map_err(|e| FileError::io("cannot remove", from, e))
}

fn copy_truncate(from: &Path, to: &Path) -> Result<(), FileError> {
    let mut log = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .map_err(|e| FileError::io("cannot open", from, e))?;
    let meta = log
        .metadata()
        .map_err(|e| FileError::io("cannot stat", from, e))?;
    let mut copy = create_like(to, meta.mode() & 0o7777, meta.uid(), meta.gid())?;
    std::io::copy(&mut log, &mut copy)
        .and_then(|_| copy.flush())
        .and_then(|_| copy.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(to);
            FileError::io("cannot copy into", to, e)
        })?;
    log.set_len(0)
        .map_err(|e| FileError::io("cannot truncate", from, e))
}

fn postrotate(
    ostler: &Ostler,
    runner: &Runner,
    target: &Target,
    command: &str,
    log: &Path,
) -> Result<(), FileError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .arg("sh")
        .arg(log)
        .current_dir(ostler.config.base_dir());
    if let Some(inst) = target
        .instance
        .as_deref()
        .and_then(|n| ostler.instance(n).ok())
    {
        cmd.envs(inst.env());
    }
    runner
        .run(&mut cmd)
        .map(drop)
        .map_err(|e| FileError::Postrotate {
            command: command.into(),
            message: crate::error::chain(&e).to_string(),
        })
}
