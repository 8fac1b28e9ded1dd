//! Reading web server access logs for forensics.
//!
//! AMY's data loss was dated from the access log: one API URL that had answered
//! 17806 bytes every half hour for days suddenly answered 261521 bytes, which put the
//! deletion between two requests 29 minutes apart. Finding that by eye took hours of
//! reading; here it is a scan. Every URL's requests are compared with the previous
//! request of the same URL, and the moments where the response size jumps or the
//! status class changes are scored against that URL's own history (did the level
//! shift and stay?) and reported strongest first, with both requests' times, sizes
//! and places.
//!
//! - `parse`: one line of Apache/nginx combined or common format, without allocating.
//! - `input`: the files (plain or gzip'd, as logrotate leaves them) read in time order,
//!   malformed lines counted, slight disorder put right by a small reorder window.
//! - `scan`: the change detection. `timeline`: one URL's requests, runs condensed.
//!
//! Nothing here prints; the CLI renders the reports (text or JSON).

pub mod input;
pub mod parse;
pub mod scan;
pub mod timeline;

pub use input::{FileSummary, Malformed, Summary};
pub use parse::{Entry, Parser};
pub use scan::{scan, Change, ChangeKind, Classes, Sample, ScanOptions, ScanReport};
pub use timeline::{timeline, Run, Timeline, UrlPattern, UrlTimeline};

/// Which access log format the lines are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` (Apache's and nginx's
    /// default); fields after the user agent are allowed and ignored.
    #[default]
    Combined,
    /// `%h %l %u %t "%r" %>s %b`; anything after the size is ignored, so combined
    /// logs read as common too.
    Common,
}
