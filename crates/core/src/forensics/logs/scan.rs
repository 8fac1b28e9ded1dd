//! Changes in what one URL answers, judged against that URL's own history.
//!
//! The AMY clue was a response that grew fifteenfold between two requests of the same
//! URL half an hour apart, and stayed that size: the API filtered by a tag that had
//! just been deleted, so it answered everything. A change a person would see is a
//! *level shift that persists*, not a one-off: a URL that answered 16,917 bytes for
//! hours and then 44,931 bytes every time after matters; one 404 on a URL that often
//! fails does not.
//!
//! Candidates are consecutive requests of one URL (method, path and query) whose size
//! moves by `min_ratio` either way and by `min_bytes`, or whose status class changes.
//! Each candidate is then scored ([`score`]) on up to [`WINDOW`] requests of the URL
//! before it and [`WINDOW`] from it on: the shift of the median (log) size relative to
//! the two windows' spread (MAD), and the rise in the share of the new status class,
//! both scaled by how many requests the new level held for and how much history there
//! was. The report is ranked strongest first; changes scoring `min_score` or more are
//! the strong ones.
//!
//! The state is one small fixed ring of recent answers per URL plus the candidates
//! still waiting for their following requests, so a month of logs scans in memory
//! proportional to the number of distinct URLs. Responses without a full body are
//! skipped, neither compared nor remembered: `304 Not Modified` (an empty answer to a
//! conditional GET would read as the page shrinking to nothing every time a browser
//! revalidates) and `206 Partial Content` (its size is the range asked for).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use jiff::Timestamp;

use super::input::{self, Consumer, Place, Summary};
use super::parse::Entry;
use super::Format;
use crate::error::{Error, Result};
use crate::report::Interrupt;

/// Requests of a URL looked at on each side of a candidate change.
pub const WINDOW: usize = 8;
/// Requests a new level must hold for (and history it must follow) to score fully.
pub const HOLD: usize = 4;
/// The least spread of log sizes assumed: sizes jittering 10 % are ordinary.
const FLOOR: f64 = 0.1;
/// How much of its score a change keeps (times n / HOLD) with fewer than [`HOLD`]
/// requests of history, or of the new level holding: too little to judge by.
const SHORT: f64 = 0.1;
/// What a status class taking over entirely (none before, all after) scores.
const STATUS_WEIGHT: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub format: Format,
    /// The least size ratio (larger / smaller) between consecutive requests that makes
    /// a candidate.
    pub min_ratio: f64,
    /// The least size difference in bytes that makes a candidate.
    pub min_bytes: u64,
    /// The least score of a strong change.
    pub min_score: f64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            format: Format::Combined,
            min_ratio: 1.5,
            min_bytes: 1024,
            min_score: 5.0,
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
    /// How strongly the URL's level shifted here and stayed (see [`score`]).
    pub score: f64,
    /// Requests of the URL before the change that it was judged against.
    pub history: usize,
    /// Requests from the change on (up to [`WINDOW`]) that it was judged on.
    pub held: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScanReport {
    pub summary: Summary,
    /// Distinct URLs compared.
    pub urls: usize,
    /// Strongest first (ties by the time of the later request).
    pub changes: Vec<Change>,
    /// How many of `changes` (the first ones) score at least `min_score`.
    pub strong: usize,
    /// Distinct URLs among the weaker changes.
    pub weaker_urls: usize,
}

/// Whether a response is compared at all (see the module comment).
pub fn comparable(status: u16) -> bool {
    status != 304 && status != 206
}

/// after / before, with 0 counted as 1 so that growth from nothing stays finite.
pub fn ratio(before: u64, after: u64) -> f64 {
    after.max(1) as f64 / before.max(1) as f64
}

/// Whether `after` differs from `before` enough to be a candidate, and how.
pub fn classify(before: (u16, u64), after: (u16, u64), opts: &ScanOptions) -> Option<ChangeKind> {
    let ((s0, b0), (s1, b1)) = (before, after);
    if s0 / 100 != s1 / 100 {
        return Some(ChangeKind::Status);
    }
    let (lo, hi) = (b0.min(b1), b0.max(b1));
    let sharp = hi - lo >= opts.min_bytes && hi as f64 >= opts.min_ratio * lo.max(1) as f64;
    sharp.then_some(ChangeKind::Size)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// How strongly a URL's answers (status, size) shifted between `before` (its requests
/// up to the candidate, oldest first) and `after` (the candidate and the requests
/// following it). Sizes are compared as logarithms: the distance between the two
/// windows' medians over the pooled median absolute deviation around them (at least
/// 0.1, i.e. 10 % jitter). Status: the rise in the share of the candidate's status
/// class over its share before (in the window, or in all of the URL's requests before,
/// `usual`, whichever is more: a URL that often fails is not news when it fails),
/// times 10. The larger of the two, scaled for the history and for how many
/// requests stayed nearer the new size level (or in the new class) than the old: by 1
/// with [`HOLD`] or more, by `0.1 * n / HOLD` with fewer (and for a history shorter
/// than [`WINDOW`], by `0.1 * n / WINDOW`); a size shift counts a tenth
/// when either window's median lies within the other window's range of sizes. A one-off
/// answer leaves the medians and shares where they were and scores near 0; a level
/// that holds scores high.
pub fn score(before: &[(u16, u64)], after: &[(u16, u64)], usual: &Classes) -> f64 {
    let (Some(&(new_status, _)), false) = (after.first(), before.is_empty()) else {
        return 0.0;
    };
    let ln = |&(_, size): &(u16, u64)| (size.max(1) as f64).ln();
    let mut xb: Vec<f64> = before.iter().map(ln).collect();
    let mut xa: Vec<f64> = after.iter().map(ln).collect();
    let (mb, ma) = (median(&mut xb), median(&mut xa));
    let mut dev: Vec<f64> = xb
        .iter()
        .map(|x| (x - mb).abs())
        .chain(xa.iter().map(|x| (x - ma).abs()))
        .collect();
    let spread = (1.4826 * median(&mut dev)).max(FLOOR);
    let nearer_new = xa
        .iter()
        .filter(|x| (*x - ma).abs() < (*x - mb).abs())
        .count();
    let factor = |n: usize| {
        if n >= HOLD {
            1.0
        } else {
            SHORT * n as f64 / HOLD as f64
        }
    };
    // A full window of history: with fewer requests, among thousands of URLs, two
    // small windows of a wandering size fall apart by chance (a search page seen 4
    // times then 4 more scored as a shift).
    let history = if before.len() >= WINDOW {
        1.0
    } else {
        SHORT * before.len() as f64 / WINDOW as f64
    };
    // A level that moved is a level the URL had not been at: the new median outside
    // the range of the sizes before, and the old one outside the range after. A URL
    // whose sizes wander (a search page) puts each median inside the other window's
    // range, however small its spread looked in a few requests.
    let within = |x: f64, w: &[f64]| {
        w.iter().copied().fold(f64::INFINITY, f64::min) <= x
            && x <= w.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    };
    let apart = if within(ma, &xb) || within(mb, &xa) {
        SHORT
    } else {
        1.0
    };
    let size = (ma - mb).abs() / spread * factor(nearer_new) * apart;

    let class = new_status / 100;
    let in_class = |w: &[(u16, u64)]| w.iter().filter(|(s, _)| s / 100 == class).count();
    let share = |w: &[(u16, u64)]| in_class(w) as f64 / w.len() as f64;
    let rise = (share(after) - share(before).max(usual.share(new_status))).max(0.0);
    let status = STATUS_WEIGHT * rise * factor(in_class(after));
    size.max(status) * history
}

/// How many of a URL's requests fell in each status class (1xx..5xx, others last).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes([u32; 6]);

impl Classes {
    fn index(status: u16) -> usize {
        usize::from(status / 100).clamp(1, 6) - 1
    }

    pub fn count(&mut self, status: u16) {
        let c = &mut self.0[Self::index(status)];
        *c = c.saturating_add(1);
    }

    /// The share of `status`'s class, 0 with no requests.
    pub fn share(&self, status: u16) -> f64 {
        let total: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            0.0
        } else {
            f64::from(self.0[Self::index(status)]) / total as f64
        }
    }
}

/// Scans the logs for changes, strongest first.
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
        urls: Vec::new(),
        found: Vec::new(),
    };
    let summary = input::read(paths, opts.format, interrupt, &mut scanner)?;
    // Candidates near the end of the logs are judged on what followed them.
    for url in &mut scanner.urls {
        for p in url.pending.drain(..) {
            scanner.found.push(p.judge());
        }
    }

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
    let mut changes: Vec<(u32, Change)> = scanner
        .found
        .iter()
        .map(|f| {
            (
                f.id,
                Change {
                    url: String::from_utf8_lossy(names[f.id as usize]).into_owned(),
                    kind: f.kind,
                    ratio: ratio(f.before.size, f.after.size),
                    before: sample(f.before),
                    after: sample(f.after),
                    score: f.score,
                    history: f.history,
                    held: f.held,
                },
            )
        })
        .collect();
    changes.sort_by(|(_, a), (_, b)| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.after.time.cmp(&b.after.time))
            .then_with(|| a.url.cmp(&b.url))
    });
    let strong = changes
        .iter()
        .take_while(|(_, c)| c.score >= opts.min_score)
        .count();
    let weaker_urls = changes[strong..]
        .iter()
        .map(|(id, _)| *id)
        .collect::<HashSet<_>>()
        .len();
    Ok(ScanReport {
        urls: scanner.ids.len(),
        summary,
        changes: changes.into_iter().map(|(_, c)| c).collect(),
        strong,
        weaker_urls,
    })
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    time: Timestamp,
    status: u16,
    size: u64,
    at: Place,
}

/// The last [`WINDOW`] answers of a URL, oldest first once unrolled.
#[derive(Default)]
struct Ring {
    answers: [(u16, u64); WINDOW],
    len: u8,
    next: u8,
}

impl Ring {
    fn push(&mut self, answer: (u16, u64)) {
        self.answers[self.next as usize] = answer;
        self.next = ((self.next as usize + 1) % WINDOW) as u8;
        self.len = (self.len + 1).min(WINDOW as u8);
    }

    fn to_vec(&self) -> Vec<(u16, u64)> {
        let (len, next) = (self.len as usize, self.next as usize);
        (0..len)
            .map(|i| self.answers[(next + WINDOW - len + i) % WINDOW])
            .collect()
    }
}

/// A candidate waiting for the requests that follow it.
struct Pending {
    id: u32,
    kind: ChangeKind,
    before: Seen,
    after: Seen,
    history: Vec<(u16, u64)>,
    usual: Classes,
    following: Vec<(u16, u64)>,
}

impl Pending {
    fn judge(self) -> Found {
        Found {
            id: self.id,
            kind: self.kind,
            before: self.before,
            after: self.after,
            score: score(&self.history, &self.following, &self.usual),
            history: self.history.len(),
            held: self.following.len(),
        }
    }
}

struct Found {
    id: u32,
    kind: ChangeKind,
    before: Seen,
    after: Seen,
    score: f64,
    history: usize,
    held: usize,
}

#[derive(Default)]
struct UrlState {
    last: Option<Seen>,
    recent: Ring,
    classes: Classes,
    pending: Vec<Pending>,
}

struct Scanner<'o> {
    opts: &'o ScanOptions,
    /// URL key → index into `urls`.
    ids: HashMap<Box<[u8]>, u32>,
    urls: Vec<UrlState>,
    found: Vec<Found>,
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
                let id = self.urls.len() as u32;
                self.ids.insert(url.into(), id);
                self.urls.push(UrlState::default());
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
        let url = &mut self.urls[id as usize];
        let mut i = 0;
        while i < url.pending.len() {
            url.pending[i].following.push((status, size));
            if url.pending[i].following.len() == WINDOW {
                self.found.push(url.pending.swap_remove(i).judge());
            } else {
                i += 1;
            }
        }
        if let Some(before) = url.last.replace(now) {
            if let Some(kind) = classify((before.status, before.size), (status, size), self.opts) {
                url.pending.push(Pending {
                    id,
                    kind,
                    before,
                    after: now,
                    history: url.recent.to_vec(),
                    usual: url.classes,
                    following: vec![(status, size)],
                });
            }
        }
        url.recent.push((status, size));
        url.classes.count(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharp_means_both_ratio_and_bytes() {
        let o = ScanOptions {
            min_ratio: 4.0,
            ..ScanOptions::default()
        };
        let c = |b: (u16, u64), a: (u16, u64)| classify(b, a, &o);
        assert_eq!(c((200, 17806), (200, 261521)), Some(ChangeKind::Size));
        assert_eq!(c((200, 261521), (200, 17806)), Some(ChangeKind::Size));
        assert_eq!(c((200, 17806), (200, 18806)), None);
        assert_eq!(c((200, 10_000), (200, 39_999)), None, "under 4x");
        assert_eq!(c((200, 10_000), (200, 40_000)), Some(ChangeKind::Size));
        assert_eq!(c((200, 100), (200, 900)), None, "9x but only 800 bytes");
        assert_eq!(c((200, 0), (200, 2000)), Some(ChangeKind::Size));
        assert_eq!(c((200, 0), (200, 0)), None);
        let d = ScanOptions::default();
        assert_eq!(
            classify((200, 16_917), (200, 44_931), &d),
            Some(ChangeKind::Size),
            "2.7x is a candidate by default"
        );
        assert_eq!(classify((200, 10_000), (200, 14_000), &d), None);
    }

    /// The score with the URL's usual classes taken from `before` alone.
    fn sc(before: &[(u16, u64)], after: &[(u16, u64)]) -> f64 {
        let mut usual = Classes::default();
        before.iter().for_each(|&(s, _)| usual.count(s));
        score(before, after, &usual)
    }

    #[test]
    fn a_url_that_often_fails_is_not_news_when_it_fails_a_few_times() {
        let mut after = steady(200, 12000, WINDOW);
        for i in [0, 3, 5, 6] {
            after[i] = (404, 209);
        }
        let window = steady(200, 12000, WINDOW);
        let mut steady_url = Classes::default();
        (0..100).for_each(|_| steady_url.count(200));
        let mut flaky_url = steady_url;
        (0..20).for_each(|_| flaky_url.count(404));
        let on_steady = score(&window, &after, &steady_url);
        let on_flaky = score(&window, &after, &flaky_url);
        assert!((on_steady - 5.0).abs() < 1e-9, "{on_steady}");
        assert!(on_flaky < on_steady * 0.7, "{on_flaky}");
        assert!((flaky_url.share(404) - 20.0 / 120.0).abs() < 1e-9);
        assert_eq!(Classes::default().share(200), 0.0);
    }

    fn steady(status: u16, size: u64, n: usize) -> Vec<(u16, u64)> {
        vec![(status, size); n]
    }

    #[test]
    fn a_level_shift_that_holds_scores_high_and_a_one_off_near_zero() {
        let amy = sc(&steady(200, 17806, WINDOW), &steady(200, 261521, WINDOW));
        let shift = sc(&steady(200, 16917, WINDOW), &steady(200, 44931, WINDOW));
        assert!(
            amy > shift && shift >= ScanOptions::default().min_score,
            "{amy} {shift}"
        );

        // One 404 then back to normal: neither the 404 nor the recovery is news.
        let mut after = steady(200, 16917, WINDOW);
        after[0] = (404, 209);
        let one_off = sc(&steady(200, 16917, WINDOW), &after);
        assert!(one_off < 2.0, "{one_off}");
        let mut before = steady(200, 16917, WINDOW);
        before[WINDOW - 1] = (404, 209);
        assert!(sc(&before, &steady(200, 16917, WINDOW)) < 2.0);

        // On a URL that often fails, a 404 is less still.
        let mut flaky = steady(200, 16917, WINDOW);
        flaky[2] = (404, 209);
        flaky[5] = (404, 209);
        let flaky_one = sc(&flaky, &after);
        assert!(
            flaky_one < one_off && flaky_one < 0.01,
            "{flaky_one} {one_off}"
        );

        // A new status class that stays is strong.
        let down = sc(&steady(200, 16917, WINDOW), &steady(503, 16917, WINDOW));
        assert!(down >= STATUS_WEIGHT - 0.01, "{down}");
    }

    #[test]
    fn the_score_needs_history_and_a_level_that_holds() {
        let full = sc(&steady(200, 17806, WINDOW), &steady(200, 261521, WINDOW));
        let short_history = sc(&steady(200, 17806, 1), &steady(200, 261521, WINDOW));
        let short_hold = sc(&steady(200, 17806, WINDOW), &steady(200, 261521, 1));
        assert!((short_history - full * SHORT / WINDOW as f64).abs() < 1e-9);
        assert!((short_hold - full * SHORT / HOLD as f64).abs() < 1e-9);
        assert!(short_hold < ScanOptions::default().min_score);
        assert_eq!(sc(&[], &steady(200, 1, 3)), 0.0);
        assert_eq!(sc(&steady(200, 1, 3), &[]), 0.0);
        // Sizes that always wander widely: a move within the wandering scores low.
        let wander = [3000, 8000, 4100, 9000, 3500, 7600, 5200, 8800];
        let w: Vec<_> = wander.iter().map(|&s| (200, s)).collect();
        let (before, after) = w.split_at(4);
        assert!(sc(before, after) < 3.0, "{}", sc(before, after));
    }

    #[test]
    fn the_ring_keeps_the_last_window_oldest_first() {
        let mut r = Ring::default();
        for i in 0..(WINDOW as u64 + 3) {
            r.push((200, i));
        }
        let sizes: Vec<u64> = r.to_vec().into_iter().map(|(_, s)| s).collect();
        assert_eq!(sizes, (3..WINDOW as u64 + 3).collect::<Vec<_>>());
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
