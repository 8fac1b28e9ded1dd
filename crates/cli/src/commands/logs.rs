//! `ostler logs scan`: the access log reading of AMY's postmortem as a command. Needs
//! no config: logs are often copied off a server (or out of a backup) to be read
//! somewhere else. The work is in `ostler_core::forensics::logs`; this renders it.

use std::path::PathBuf;

use ostler_core::forensics::logs::{
    self, Change, ChangeKind, Format, Run, ScanOptions, Summary, UrlPattern, UrlTimeline,
};
use ostler_core::Result;
use serde::Serialize;

use crate::cli::Context;

/// Read web server access logs (Apache/nginx combined or common format), or rotate
/// the config's log files (`logs rotate`, in logs_rotate.rs).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: LogsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LogsCommand {
    Scan(ScanArgs),
    Rotate(super::logs_rotate::Args),
}

/// Find the moments a URL's answer changed and stayed changed (size or status class).
///
/// Each request is compared with the previous request of the same URL (method, path
/// and query): a candidate is its size moving by --min-ratio either way and at least
/// --min-bytes, or its status class changing (2xx -> 5xx, 2xx -> 404...). Each is
/// scored against the URL's own history: how far the median size (or the share of the
/// new status class) moved, over the URL's usual spread, and whether the new level
/// held for the following requests. Changes scoring --min-score or more are shown,
/// strongest first; the weaker ones (a one-off 404 on a URL that often fails) are
/// counted in one line, and --all lists them too.
///
/// Files may be plain, gzip'd or zstd'd (told by content, not name) and given in any
/// order: they are read in time order, as logrotate's access.log.2.gz, access.log.1,
/// access.log. Times are shown in --tz with their offset. 304 and 206 responses are
/// not compared (they carry no full body). With --url, show the matching URLs'
/// timelines instead, runs of the same status and size condensed into one line.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Access log files, in any order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The log format.
    #[arg(long, value_enum, default_value_t = FormatArg::Combined)]
    pub format: FormatArg,
    /// Show the timeline of URLs matching PATTERN (a substring, or a glob with `*`).
    #[arg(long, value_name = "PATTERN")]
    pub url: Option<String>,
    /// The least size ratio, larger over smaller, between consecutive requests that
    /// makes a candidate.
    #[arg(long, default_value_t = 1.5, value_name = "R")]
    pub min_ratio: f64,
    /// The least size difference in bytes that makes a candidate.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    pub min_bytes: u64,
    /// The least score of a change shown by default.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub min_score: f64,
    /// List the weaker changes too, after the strong ones.
    #[arg(long)]
    pub all: bool,
    /// Show at most N changes (or timeline lines).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    /// %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
    Combined,
    /// %h %l %u %t "%r" %>s %b
    Common,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Combined => Format::Combined,
            FormatArg::Common => Format::Common,
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<i32> {
    match args.command {
        LogsCommand::Scan(args) => match &args.url {
            Some(pattern) => timeline(ctx, &args, &UrlPattern::new(pattern)?),
            None => scan(ctx, &args),
        },
        LogsCommand::Rotate(args) => super::logs_rotate::run(ctx, args),
    }
}

fn scan(ctx: &Context, args: &ScanArgs) -> Result<i32> {
    let opts = ScanOptions {
        format: args.format.into(),
        min_ratio: args.min_ratio,
        min_bytes: args.min_bytes,
        min_score: args.min_score,
    };
    let report = logs::scan(&args.files, &opts, &ctx.interrupt)?;
    let listed = if args.all {
        &report.changes[..]
    } else {
        &report.changes[..report.strong]
    };
    let shown = &listed[..listed.len().min(args.limit)];
    let more = listed.len() - shown.len();
    let weaker = report.changes.len() - report.strong;
    if ctx.json {
        #[derive(Serialize)]
        struct Json<'a> {
            summary: &'a Summary,
            urls: usize,
            changes: &'a [Change],
            more: usize,
            strong: usize,
            weaker: usize,
            weaker_urls: usize,
        }
        super::print_json(&Json {
            summary: &report.summary,
            urls: report.urls,
            changes: shown,
            more,
            strong: report.strong,
            weaker,
            weaker_urls: report.weaker_urls,
        })?;
        return Ok(0);
    }
    print_summary(ctx, &report.summary, &plural(report.urls as u64, "URL"));
    outln!();
    let rule = format!(
        "score {} or more against the URL's own history",
        args.min_score
    );
    match report.strong {
        0 => outln!("No strong changes ({rule})."),
        1 => outln!("1 strong change ({rule}):"),
        n => outln!("{n} strong changes ({rule}), strongest first:"),
    }
    for c in shown {
        outln!();
        print_change(ctx, c);
    }
    if more > 0 {
        outln!(
            "\n... and {more} more (--limit {} shows them all).",
            args.limit + more
        );
    }
    if weaker > 0 && !args.all {
        outln!(
            "\n{} on {} (a one-off or within the URL's usual spread); --all lists them.",
            plural(weaker as u64, "weaker change"),
            plural(report.weaker_urls as u64, "URL")
        );
    }
    Ok(0)
}

fn print_change(ctx: &Context, c: &Change) {
    let (b, a) = (&c.before, &c.after);
    outln!(
        "{}  {}  (score {:.1})",
        ctx.show_time(a.time),
        c.url,
        c.score
    );
    let how = if a.size == b.size {
        "same".to_string()
    } else if c.ratio >= 1.0 {
        format!("{:.2}x larger", c.ratio)
    } else {
        format!("{:.2}x smaller", 1.0 / c.ratio)
    };
    outln!("    size    {} -> {} bytes ({how})", b.size, a.size);
    match c.kind {
        ChangeKind::Status => outln!(
            "    status  {} -> {} ({}xx -> {}xx)",
            b.status,
            a.status,
            b.status / 100,
            a.status / 100
        ),
        ChangeKind::Size => outln!("    status  {} -> {}", b.status, a.status),
    }
    outln!(
        "    before  {}  {}:{}",
        ctx.show_time(b.time),
        b.file.display(),
        b.line
    );
    outln!(
        "    after   {}  {}:{}",
        ctx.show_time(a.time),
        a.file.display(),
        a.line
    );
}

fn timeline(ctx: &Context, args: &ScanArgs, pattern: &UrlPattern) -> Result<i32> {
    let tl = logs::timeline(&args.files, args.format.into(), pattern, &ctx.interrupt)?;
    // The limit counts timeline lines (runs) across all matching URLs.
    let mut budget = args.limit;
    let mut more = 0;
    let mut urls = Vec::with_capacity(tl.urls.len());
    for u in &tl.urls {
        let take = u.runs.len().min(budget);
        budget -= take;
        more += u.runs.len() - take;
        urls.push((u, &u.runs[..take]));
    }
    if ctx.json {
        #[derive(Serialize)]
        struct JsonUrl<'a> {
            url: &'a str,
            requests: u64,
            runs: &'a [Run],
        }
        #[derive(Serialize)]
        struct Json<'a> {
            summary: &'a Summary,
            pattern: &'a str,
            urls: Vec<JsonUrl<'a>>,
            more: usize,
        }
        let urls = urls
            .iter()
            .map(|(u, runs)| JsonUrl {
                url: &u.url,
                requests: u.requests,
                runs,
            })
            .collect();
        super::print_json(&Json {
            summary: &tl.summary,
            pattern: &tl.pattern,
            urls,
            more,
        })?;
        return Ok(0);
    }
    let matched = format!(
        "{} matching `{}`",
        plural(tl.urls.len() as u64, "URL"),
        tl.pattern
    );
    print_summary(ctx, &tl.summary, &matched);
    if tl.urls.is_empty() {
        outln!("\nNo request matches `{}`.", tl.pattern);
    }
    for (u, runs) in urls {
        if !runs.is_empty() {
            print_timeline(ctx, u, runs);
        }
    }
    if more > 0 {
        outln!(
            "\n... and {more} more lines (--limit {} shows them all).",
            args.limit + more
        );
    }
    Ok(0)
}

fn print_timeline(ctx: &Context, u: &UrlTimeline, runs: &[Run]) {
    let (requests, runs_) = (
        plural(u.requests, "request"),
        plural(u.runs.len() as u64, "run"),
    );
    outln!("\n{}: {requests} in {runs_}", u.url);
    for r in runs {
        let first = ctx.show_time(r.first);
        let when = if r.count == 1 {
            first
        } else {
            format!("{first} .. {}", ctx.show_time(r.last))
        };
        let who = if r.clients > 1 {
            format!("{} and {}", r.client, plural(r.clients - 1, "other client"))
        } else {
            r.client.clone()
        };
        outln!(
            "  {when:<56} {:>7}x  {}  {:>10} bytes  {who}",
            r.count,
            r.status,
            r.size
        );
    }
}

/// What was read: files in the order read, malformed lines, disorder.
fn print_summary(ctx: &Context, s: &Summary, what: &str) {
    outln!(
        "Read {} from {}: {}, {what}, {} malformed.",
        plural(s.lines, "line"),
        plural(s.files.len() as u64, "file"),
        plural(s.requests, "request"),
        s.malformed
    );
    let width = s
        .files
        .iter()
        .map(|f| f.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    for f in &s.files {
        let span = match (f.first, f.last) {
            (Some(a), Some(b)) => format!("{} .. {}", ctx.show_time(a), ctx.show_time(b)),
            _ => "no requests".into(),
        };
        outln!(
            "  {:<width$}  {:<5}  {:>9} lines  {span}",
            f.path.display().to_string(),
            f.compression,
            f.lines
        );
    }
    for m in &s.malformed_examples {
        let text: String = m.text.chars().take(60).collect();
        outln!(
            "  malformed {}:{}: {} ({text})",
            m.file.display(),
            m.line,
            m.reason
        );
    }
    if s.malformed > s.malformed_examples.len() as u64 {
        outln!(
            "  ... and {} more malformed lines",
            s.malformed - s.malformed_examples.len() as u64
        );
    }
    if s.out_of_order > 0 {
        outln!(
            "  {} requests were logged more than {} s out of time order; each was compared where it was logged.",
            s.out_of_order,
            logs::input::WINDOW_SECONDS
        );
    }
}

/// `1 file`, `3 files`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
