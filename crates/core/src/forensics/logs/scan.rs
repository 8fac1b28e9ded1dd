//! Sharp changes in what one URL answers.
//!
//! The AMY clue was a response that grew fifteenfold between two requests of the same
//! URL half an hour apart: the API filtered by a tag that had just been deleted, so
//! it answered everything. That is the pattern looked for here. Each request is
//! compared with the previous request of the same URL (method, path and query), and a
//! change is reported when the size moves by at least `min_ratio` either way *and*
//! by at least `min_bytes` (so 90 → 400 bytes is not news but 17806 → 261521 is), or
//! when the status class changes (2xx → 5xx, 2xx → 404...).
//!
//! Comparing with the previous request, not an average, keeps the state to one
//! small record per URL, so a month of logs scans in memory proportional to the
//! number of distinct URLs. Responses without a full body are skipped, neither
//! compared nor remembered: `304 Not Modified` (an empty answer to a conditional GET
//! would read as the page shrinking to nothing every time a browser revalidates) and
//! `206 Partial Content` (its size is the range asked for).

use std::collections::HashMap;
use std::path::PathBuf;

use jiff::Timestamp;

use super::input::{self, Consumer, Place, Summary};
use super::parse::Entry;
use super::Format;
use crate::error::{Error, Result};
use crate::report::Interrupt;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub format: Format,
    /// The least size ratio (larger / smaller) that counts as sharp.
    pub min_ratio: f64,
    /// The least size difference in bytes that counts as sharp.
    pub min_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            format: Format::Combined,
            min_ratio: 4.0,
            min_bytes: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Same status class, size changed sharply.
    Size,
    /// The status class changed (sizes are shown but not judged).
    Status,
}

/// One request, as a change report shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    pub time: Timestamp,
    pub status: u16,
    pub size: u64,
    pub file: PathBuf,
    pub line: u64,
}

/// Two consecutive requests of one URL that answered very differently.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// `GET /api/v1/events/?tag=DC`
    pub url: String,
    pub kind: ChangeKind,
    pub before: Sample,
    pub after: Sample,
    /// after / before (sizes of 0 count as 1): above 1 it grew, below 1 it shrank.
    pub ratio: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanReport {
    pub summary: Summary,
    /// Distinct URLs compared.
    pub urls: usize,
    /// Sorted by the time of the later request.
    pub changes: Vec<Change>,
}

/// Whether a response is compared at all (see the module comment).
pub fn comparable(status: u16) -> bool {
    status != 304 && status != 206
}

/// after / before, with 0 counted as 1 so that growth from nothing stays finite.
pub fn ratio(before: u64, after: u64) -> f64 {
    after.max(1) as f64 / before.max(1) as f64
}

/// Whether `after` differs from `before` enough to report, and how.
pub fn classify(before: (u16, u64), after: (u16, u64), opts: &ScanOptions) -> Option<ChangeKind> {
    let ((s0, b0), (s1, b1)) = (before, after);
    if s0 / 100 != s1 / 100 {
        return Some(ChangeKind::Status);
    }
    let (lo, hi) = (b0.min(b1), b0.max(b1));
    let sharp = hi - lo >= opts.min_bytes && hi as f64 >= opts.min_ratio * lo.max(1) as f64;
    sharp.then_some(ChangeKind::Size)
}

/// Scans the logs for sharp changes.
pub fn scan(paths: &[PathBuf], opts: &ScanOptions, interrupt: &Interrupt) -> Result<ScanReport> {
    if !(opts.min_ratio.is_finite() && opts.min_ratio >= 1.0) {
        return Err(Error::user(format!(
            "the minimum ratio must be a number of at least 1, not {}",
            opts.min_ratio
        )));
    }
    let mut scanner = Scanner {
        opts,
        ids: HashMap::new(),
        last: Vec::new(),
        found: Vec::new(),
    };
    let summary = input::read(paths, opts.format, interrupt, &mut scanner)?;

    let mut names = vec![&[][..]; scanner.ids.len()];
    for (name, &id) in &scanner.ids {
        names[id as usize] = &name[..];
    }
    let sample = |s: Seen| Sample {
        time: s.time,
        status: s.status,
        size: s.size,
        file: summary.files[s.at.file as usize].path.clone(),
        line: s.at.line,
    };
    let mut changes: Vec<Change> = scanner
        .found
        .iter()
        .map(|&(id, kind, before, after)| Change {
            url: String::from_utf8_lossy(names[id as usize]).into_owned(),
            kind,
            ratio: ratio(before.size, after.size),
            before: sample(before),
            after: sample(after),
        })
        .collect();
    changes.sort_by(|a, b| {
        a.after
            .time
            .cmp(&b.after.time)
            .then_with(|| a.url.cmp(&b.url))
    });
    Ok(ScanReport {
        urls: scanner.ids.len(),
        summary,
        changes,
    })
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    time: Timestamp,
    status: u16,
    size: u64,
    at: Place,
}

struct Scanner<'o> {
    opts: &'o ScanOptions,
    /// URL key → index into `last`.
    ids: HashMap<Box<[u8]>, u32>,
    /// The previous comparable request of each URL.
    last: Vec<Option<Seen>>,
    found: Vec<(u32, ChangeKind, Seen, Seen)>,
}

impl Consumer for Scanner<'_> {
    type Item = (u32, u16, u64, Place);

    fn keep(&mut self, entry: &Entry<'_>, at: Place) -> Option<Self::Item> {
        if !comparable(entry.status) {
            return None;
        }
        let url = entry.url();
        let id = match self.ids.get(url) {
            Some(&id) => id,
            None => {
                let id = self.last.len() as u32;
                self.ids.insert(url.into(), id);
                self.last.push(None);
                id
            }
        };
        Some((id, entry.status, entry.size, at))
    }

    fn take(&mut self, time: Timestamp, (id, status, size, at): Self::Item) {
        let now = Seen {
            time,
            status,
            size,
            at,
        };
        if let Some(before) = self.last[id as usize].replace(now) {
            if let Some(kind) = classify((before.status, before.size), (status, size), self.opts) {
                self.found.push((id, kind, before, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharp_means_both_ratio_and_bytes() {
        let o = ScanOptions::default();
        let c = |b: (u16, u64), a: (u16, u64)| classify(b, a, &o);
        assert_eq!(c((200, 17806), (200, 261521)), Some(ChangeKind::Size));
        assert_eq!(c((200, 261521), (200, 17806)), Some(ChangeKind::Size));
        assert_eq!(c((200, 17806), (200, 18806)), None);
        assert_eq!(c((200, 10_000), (200, 39_999)), None, "under 4x");
        assert_eq!(c((200, 10_000), (200, 40_000)), Some(ChangeKind::Size));
        assert_eq!(c((200, 100), (200, 900)), None, "9x but only 800 bytes");
        assert_eq!(c((200, 0), (200, 2000)), Some(ChangeKind::Size));
        assert_eq!(c((200, 0), (200, 0)), None);
        let wide = ScanOptions {
            min_ratio: 1.5,
            ..ScanOptions::default()
        };
        assert_eq!(
            classify((200, 10_000), (200, 16_000), &wide),
            Some(ChangeKind::Size)
        );
    }

    #[test]
    fn status_class_changes_are_reported_whatever_the_sizes() {
        let o = ScanOptions::default();
        assert_eq!(
            classify((200, 17806), (500, 17806), &o),
            Some(ChangeKind::Status)
        );
        assert_eq!(
            classify((200, 5000), (404, 5000), &o),
            Some(ChangeKind::Status)
        );
        assert_eq!(classify((302, 0), (200, 100), &o), Some(ChangeKind::Status));
        assert_eq!(classify((200, 5000), (201, 5000), &o), None);
        assert_eq!(classify((502, 150), (504, 160), &o), None);
        assert!(!comparable(304) && !comparable(206) && comparable(200) && comparable(404));
    }

    #[test]
    fn ratios_grow_above_one_and_shrink_below() {
        assert!((ratio(17806, 261521) - 14.687).abs() < 0.001);
        assert!((ratio(261521, 17806) - 0.0681).abs() < 0.0001);
        assert_eq!(ratio(0, 2048), 2048.0);
    }
}
