//! One URL's history, for reading around a change.
//!
//! Once a scan has named a URL, the investigator wants its whole story: when it
//! changed, whether it changed back, who asked. A URL polled every half hour for a
//! month is 1440 lines saying the same thing, so consecutive requests with the same
//! status and size are condensed into one run (first and last time, count, clients)
//! and the moment of change stands out as the start of a new run. Every request is
//! shown here, 304s included: this is the record, not a judgement.
//!
//! A pattern with `*` is a glob matched against the whole key (`GET /x?y`) or the
//! target alone (`/x?y`); without one it is a substring of the key.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use jiff::Timestamp;

use super::input::{self, Consumer, Place, Summary};
use super::parse::{target_of, Entry};
use super::Format;
use crate::error::{Error, Result};
use crate::report::Interrupt;

/// Which URLs a timeline shows.
#[derive(Debug, Clone)]
pub struct UrlPattern {
    text: String,
}

impl UrlPattern {
    pub fn new(text: &str) -> Result<UrlPattern> {
        if text.is_empty() {
            return Err(Error::user("the URL pattern is empty")
                .with_hint("give part of a URL (`tag=DC`) or a glob (`/api/v1/events/*`)"));
        }
        Ok(UrlPattern { text: text.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a URL key (`GET /events/?tag=DC`) matches.
    pub fn matches(&self, url: &[u8]) -> bool {
        let p = self.text.as_bytes();
        if memchr::memchr(b'*', p).is_some() {
            glob(p, url) || glob(p, target_of(url))
        } else {
            memchr::memmem::find(url, p).is_some()
        }
    }
}

/// `*` matches any run of bytes, everything else itself; anchored at both ends.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Consecutive requests of one URL with the same status and size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    pub first: Timestamp,
    pub last: Timestamp,
    pub status: u16,
    pub size: u64,
    pub count: u64,
    /// The first request's client.
    pub client: String,
    /// Distinct clients in the run.
    pub clients: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UrlTimeline {
    pub url: String,
    pub requests: u64,
    /// In time order.
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Timeline {
    pub summary: Summary,
    pub pattern: String,
    /// Matching URLs, by time of their first request.
    pub urls: Vec<UrlTimeline>,
}

/// The condensed timeline of every URL matching `pattern`.
pub fn timeline(
    paths: &[PathBuf],
    format: Format,
    pattern: &UrlPattern,
    interrupt: &Interrupt,
) -> Result<Timeline> {
    let mut builder = Builder {
        pattern,
        ids: HashMap::new(),
        urls: Vec::new(),
    };
    let summary = input::read(paths, format, interrupt, &mut builder)?;
    let mut urls: Vec<UrlTimeline> = builder
        .urls
        .into_iter()
        .map(|mut open| {
            open.close_run();
            open.timeline
        })
        .collect();
    urls.sort_by(|a, b| {
        a.runs
            .first()
            .map(|r| r.first)
            .cmp(&b.runs.first().map(|r| r.first))
    });
    Ok(Timeline {
        summary,
        pattern: pattern.text.clone(),
        urls,
    })
}

struct Builder<'p> {
    pattern: &'p UrlPattern,
    ids: HashMap<Box<[u8]>, u32>,
    urls: Vec<Open>,
}

/// A timeline being built, with the distinct clients of its last run.
struct Open {
    timeline: UrlTimeline,
    clients: HashSet<Box<str>>,
}

impl Open {
    fn close_run(&mut self) {
        if let Some(run) = self.timeline.runs.last_mut() {
            run.clients = self.clients.len() as u64;
        }
        self.clients.clear();
    }
}

impl Consumer for Builder<'_> {
    type Item = (u32, u16, u64, Box<str>);

    fn keep(&mut self, entry: &Entry<'_>, _at: Place) -> Option<Self::Item> {
        let url = entry.url();
        let id = match self.ids.get(url) {
            Some(&id) => id,
            None if self.pattern.matches(url) => {
                let id = self.urls.len() as u32;
                self.ids.insert(url.into(), id);
                self.urls.push(Open {
                    timeline: UrlTimeline {
                        url: String::from_utf8_lossy(url).into_owned(),
                        requests: 0,
                        runs: Vec::new(),
                    },
                    clients: HashSet::new(),
                });
                id
            }
            None => return None,
        };
        let client = String::from_utf8_lossy(entry.client).into();
        Some((id, entry.status, entry.size, client))
    }

    fn take(&mut self, time: Timestamp, (id, status, size, client): Self::Item) {
        let open = &mut self.urls[id as usize];
        open.timeline.requests += 1;
        let same =
            matches!(open.timeline.runs.last(), Some(r) if r.status == status && r.size == size);
        if same {
            let run = open.timeline.runs.last_mut().expect("a run exists");
            run.last = run.last.max(time);
            run.count += 1;
        } else {
            open.close_run();
            open.timeline.runs.push(Run {
                first: time,
                last: time,
                status,
                size,
                count: 1,
                client: client.to_string(),
                clients: 0,
            });
        }
        open.clients.insert(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substrings_and_globs() {
        let p = |s: &str| UrlPattern::new(s).unwrap();
        let dc = b"GET /api/v1/events/?tag=DC";
        assert!(p("tag=DC").matches(dc));
        assert!(!p("tag=SWC").matches(dc));
        assert!(p("/api/v1/events/*").matches(dc), "glob on the target");
        assert!(p("GET /api/*").matches(dc), "glob on the key");
        assert!(p("*tag=DC").matches(dc));
        assert!(p("*events*DC").matches(dc));
        assert!(!p("/api/v1/events/*SWC").matches(dc));
        assert!(!p("/api/*/x").matches(dc));
        assert!(p("*").matches(b"-"));
        assert!(UrlPattern::new("").is_err());
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(glob(b"a**c", b"ac"));
        assert!(!glob(b"a*b", b"aXbY"));
        assert!(glob(b"", b""));
        assert!(!glob(b"", b"x"));
    }
}
