//! The `disk` probe: the filesystem holding `path`, its percent of space used as `df`
//! counts it (used over used plus what is available to unprivileged users, so the
//! blocks reserved for root count as full, as they are to the service) and its percent
//! of inodes used, each against its thresholds (`warn`/`crit`, `inodes_warn`/
//! `inodes_crit`). A path that cannot be read is CRITICAL, as check_disk says.

use super::config::ProbeConfig;
use super::range::show;
use super::run::{Perf, ProbeResult};
use super::Status;
use crate::instance::Ostler;

/// What statvfs says of a filesystem, in percents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub used_percent: f64,
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// None on filesystems without an inode count (btrfs says 0).
    pub inodes_percent: Option<f64>,
}

/// The usage of the filesystem `path` is on.
pub fn usage(path: &std::path::Path) -> std::io::Result<Usage> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frag = s.fragment_size() as u64;
    let blocks = s.blocks() as u64;
    let free = s.blocks_free() as u64;
    let avail = s.blocks_available() as u64;
    let used = blocks.saturating_sub(free);
    let usable = used + avail;
    let used_percent = if usable == 0 {
        0.0
    } else {
        used as f64 * 100.0 / usable as f64
    };
    let files = s.files() as u64;
    let inodes_percent = (files > 0)
        .then(|| files.saturating_sub(s.files_free() as u64) as f64 * 100.0 / files as f64);
    Ok(Usage {
        used_percent,
        total_bytes: blocks * frag,
        used_bytes: used * frag,
        inodes_percent,
    })
}

/// A percent to one decimal, as perfdata and summaries show it.
fn tenth(p: f64) -> f64 {
    (p * 10.0).round() / 10.0
}

pub(super) fn check(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let Some(path) = probe.path.as_ref().map(|p| p.get_ref()) else {
        return ProbeResult::new(Status::Unknown, "no `path` to look at");
    };
    let path = ostler.config.base_dir().join(path);
    let u = match usage(&path) {
        Ok(u) => u,
        Err(e) => {
            return ProbeResult::new(
                Status::Critical,
                format!("{} is not accessible: {e}", path.display()),
            )
        }
    };
    let space = probe.thresholds();
    let inodes = probe.inode_thresholds();
    let mut status = space.status(u.used_percent);
    let mut summary = format!(
        "{} {}% used ({} of {} MiB)",
        path.display(),
        show(tenth(u.used_percent)),
        u.used_bytes >> 20,
        u.total_bytes >> 20
    );
    let mut result = ProbeResult::new(Status::Ok, "");
    result.perfdata.push(
        Perf::new("used", tenth(u.used_percent), "%")
            .judged(&space)
            .bounded(Some(0.0), Some(100.0)),
    );
    if let Some(ip) = u.inodes_percent {
        let inode_status = inodes.status(ip);
        status = super::run::worst([status, inode_status]);
        summary += &format!(", inodes {}% used", show(tenth(ip)));
        result.perfdata.push(
            Perf::new("inodes", tenth(ip), "%")
                .judged(&inodes)
                .bounded(Some(0.0), Some(100.0)),
        );
    }
    result.status = status;
    result.summary = summary;
    result
}
