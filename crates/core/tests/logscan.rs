//! The access log scan on AMY's incident, rebuilt: a week of traffic in which one API
//! URL answered 17806 bytes every half hour until the DC tag was deleted, then
//! 261521 bytes from 2016-04-06 17:04 -04:00. The log is written in the server's own
//! zone (-06:00, as AMY's was) and read in New York's, split across logrotate's files
//! (one gzip'd), passed out of order, with slight disorder and a few bad lines, among
//! noise that must not be reported: many URLs with jittering sizes, and a static file
//! answered 200 and 304 in turn.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use ostler_core::forensics::logs::{self, ChangeKind, Format, ScanOptions, UrlPattern};
use ostler_core::report::Interrupt;
use ostler_core::time::show;

const DC: &str = "GET /api/v1/events/?tag=DC";

fn t(s: &str) -> Timestamp {
    ostler_core::time::parse_user_time(s).unwrap()
}

fn new_york() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

/// xorshift64: deterministic noise without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn line(
    time: Timestamp,
    client: &str,
    request: &str,
    status: u16,
    size: u64,
    agent: &str,
) -> String {
    let when = time.to_zoned(TimeZone::fixed(jiff::tz::offset(-6)));
    let size = if size == 0 {
        "-".to_string()
    } else {
        size.to_string()
    };
    format!(
        "{client} - - [{}] \"{request} HTTP/1.1\" {status} {size} \"-\" \"{agent}\"\n",
        when.strftime("%d/%b/%Y:%H:%M:%S %z")
    )
}

/// The AMY week. Returns the lines in time order and how many DC requests came
/// before the jump.
fn amy_week() -> (Vec<(Timestamp, String)>, u64) {
    let start = t("2016-04-01 00:00 -04:00");
    let end = t("2016-04-08 00:00 -04:00");
    let jump = t("2016-04-06 17:04 -04:00");
    let mut rng = Rng(0x5eed_cafe_f00d);
    let mut out = Vec::new();
    let mut dc_before = 0;
    // The website rebuild: five API requests every 30 minutes, at :04 and :34.
    let mut rebuild = start + jiff::SignedDuration::from_mins(4);
    while rebuild < end {
        let api = [
            ("/api/v1/export/badges.yaml", 69122),
            ("/api/v1/export/instructors.yaml", 50488),
            ("/api/v1/events/?tag=SWC", 231344),
            (
                "/api/v1/events/?tag=DC",
                if rebuild < jump { 17806 } else { 261521 },
            ),
            ("/api/v1/events/?tag=TTT", 7879),
        ];
        for (i, (path, size)) in api.into_iter().enumerate() {
            let at = rebuild + jiff::SignedDuration::from_secs(10 + i as i64);
            let agent = "python-requests/2.9.1";
            out.push((
                at,
                line(at, "192.0.2.10", &format!("GET {path}"), 200, size, agent),
            ));
        }
        if rebuild < jump {
            dc_before += 1;
        }
        rebuild += jiff::SignedDuration::from_mins(30);
    }
    // People: event pages with sizes that jitter a few percent, a stylesheet answered
    // 200 or 304, a missing favicon, logins, searches, from IPv4 and IPv6 clients.
    let mut now = start;
    while now < end {
        now += jiff::SignedDuration::from_secs(5 + rng.below(30) as i64);
        let client = match rng.below(3) {
            0 => format!("198.51.100.{}", rng.below(250)),
            1 => format!("2001:db8::{:x}", rng.below(4000)),
            _ => format!("203.0.113.{}", rng.below(250)),
        };
        let agent = "Mozilla/5.0 (X11; Linux x86_64) \\\"quoted\\\" Firefox/45.0";
        let (request, status, size) = match rng.below(6) {
            0 | 1 => {
                let n = rng.below(200);
                let base = 5000 + n * 97;
                let size = base - base * 3 / 100 + rng.below(base * 6 / 100);
                (
                    format!("GET /workshops/event/2016-{n:03}-event/"),
                    200,
                    size,
                )
            }
            2 => {
                let fresh = rng.below(2) == 0;
                (
                    "GET /static/css/main.css".into(),
                    if fresh { 200 } else { 304 },
                    if fresh { 48213 } else { 0 },
                )
            }
            3 => ("GET /favicon.ico".into(), 404, 209),
            4 => ("POST /account/login/".into(), 302, 0),
            _ => (
                format!("GET /search/?q=word{}", rng.below(5000)),
                200,
                3000 + rng.below(6000),
            ),
        };
        out.push((now, line(now, &client, &request, status, size, agent)));
    }
    out.sort_by_key(|(at, _)| *at);
    // Slight disorder, as Apache leaves it: now and then a line logged a little late.
    for i in (0..out.len() - 1).step_by(41) {
        out.swap(i, i + 1);
    }
    (out, dc_before)
}

/// Writes the week as logrotate would leave it and returns the paths out of order:
/// `access.log.2.gz` (gzip'd, oldest), `access.log.1` (until 16:50 on the 6th, with two
/// bad lines), `access.log` (the rest).
fn write_amy_logs(dir: &Path) -> (Vec<PathBuf>, u64) {
    let (lines, dc_before) = amy_week();
    let first_cut = t("2016-04-03 06:25 -04:00");
    let second_cut = t("2016-04-06 16:50 -04:00");
    let mut parts = [String::new(), String::new(), String::new()];
    let mut in_second = 0;
    for (at, text) in &lines {
        let part = if *at < first_cut {
            0
        } else if *at < second_cut {
            1
        } else {
            2
        };
        parts[part].push_str(text);
        if part == 1 {
            in_second += 1;
            if in_second == 2000 || in_second == 5000 {
                parts[1].push_str("this line is not a request\n");
            }
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(parts[0].as_bytes()).unwrap();
    std::fs::write(dir.join("access.log.2.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("access.log.1"), &parts[1]).unwrap();
    std::fs::write(dir.join("access.log"), &parts[2]).unwrap();
    let given = ["access.log", "access.log.2.gz", "access.log.1"];
    (given.iter().map(|n| dir.join(n)).collect(), dc_before)
}

fn names(files: &[logs::FileSummary]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn amy_the_dc_jump_is_found_across_rotated_files_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = write_amy_logs(dir.path());
    let report = logs::scan(&paths, &ScanOptions::default(), &Interrupt::new()).unwrap();

    let s = &report.summary;
    assert_eq!(
        names(&s.files),
        ["access.log.2.gz", "access.log.1", "access.log"]
    );
    assert_eq!(s.files[0].compression, "gzip");
    assert_eq!(s.files[1].compression, "plain");
    assert_eq!(s.malformed, 2);
    assert_eq!(s.requests + 2, s.lines);
    let bad = &s.malformed_examples[0];
    assert!(bad.file.ends_with("access.log.1"), "{bad:?}");
    assert!(
        bad.line > 1000 && bad.text.contains("not a request"),
        "{bad:?}"
    );
    assert_eq!(
        s.out_of_order, 0,
        "slight disorder is put right, not counted"
    );
    assert!(report.urls > 1000, "noise of many URLs: {}", report.urls);

    assert_eq!(report.strong, 1, "{:#?}", &report.changes[..3]);
    let c = &report.changes[0];
    assert_eq!(c.url, DC);
    assert_eq!((c.history, c.held), (8, 8));
    assert_eq!(c.kind, ChangeKind::Size);
    assert_eq!((c.before.size, c.after.size), (17806, 261521));
    assert_eq!((c.before.status, c.after.status), (200, 200));
    assert_eq!(
        show(c.before.time, &new_york()),
        "2016-04-06 16:34:13 -04:00"
    );
    assert_eq!(
        show(c.after.time, &new_york()),
        "2016-04-06 17:04:13 -04:00"
    );
    assert_eq!(
        show(c.after.time, &TimeZone::fixed(jiff::tz::offset(-6))),
        "2016-04-06 15:04:13 -06:00"
    );
    assert!(c.before.file.ends_with("access.log.1") && c.after.file.ends_with("access.log"));
    assert!((c.ratio - 14.69).abs() < 0.01, "{}", c.ratio);
    let text = std::fs::read_to_string(&c.after.file).unwrap();
    let logged = text.lines().nth(c.after.line as usize - 1).unwrap();
    assert!(
        logged.contains("tag=DC") && logged.contains(" 261521 "),
        "{logged}"
    );
}

#[test]
fn amy_timeline_condenses_runs_of_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (paths, dc_before) = write_amy_logs(dir.path());
    let pattern = UrlPattern::new("tag=DC").unwrap();
    let tl = logs::timeline(&paths, Format::Combined, &pattern, &Interrupt::new()).unwrap();
    assert_eq!(tl.urls.len(), 1);
    let dc = &tl.urls[0];
    assert_eq!(dc.url, DC);
    assert_eq!(dc.runs.len(), 2, "{:#?}", dc.runs);
    let (small, big) = (&dc.runs[0], &dc.runs[1]);
    assert_eq!(
        (small.size, small.count, small.status),
        (17806, dc_before, 200)
    );
    assert_eq!(big.size, 261521);
    assert_eq!(small.count + big.count, dc.requests);
    assert_eq!(show(small.first, &new_york()), "2016-04-01 00:04:13 -04:00");
    assert_eq!(show(small.last, &new_york()), "2016-04-06 16:34:13 -04:00");
    assert_eq!(show(big.first, &new_york()), "2016-04-06 17:04:13 -04:00");
    assert_eq!((small.client.as_str(), small.clients), ("192.0.2.10", 1));

    let glob = UrlPattern::new("/api/v1/events/*").unwrap();
    let tl = logs::timeline(&paths, Format::Combined, &glob, &Interrupt::new()).unwrap();
    let mut urls: Vec<_> = tl
        .urls
        .iter()
        .map(|u| (u.url.as_str(), u.runs.len()))
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        [
            (DC, 2),
            ("GET /api/v1/events/?tag=SWC", 1),
            ("GET /api/v1/events/?tag=TTT", 1)
        ]
    );
}

#[test]
fn status_class_changes_are_found_in_common_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let l = |time: &str, req: &str, status: u16, size: &str| {
        format!("192.0.2.1 - - [{time}] \"{req} HTTP/1.1\" {status} {size}\n")
    };
    let text = [
        l(
            "04/Apr/2016:10:00:00 +0000",
            "GET /api/v1/reports/",
            200,
            "8000",
        ),
        l(
            "04/Apr/2016:10:30:00 +0000",
            "GET /api/v1/reports/",
            200,
            "8100",
        ),
        l(
            "04/Apr/2016:11:00:00 +0000",
            "GET /api/v1/reports/",
            500,
            "301",
        ),
        l(
            "04/Apr/2016:11:00:05 +0000",
            "GET /persons/42/",
            200,
            "7000",
        ),
        l(
            "04/Apr/2016:11:30:00 +0000",
            "GET /api/v1/reports/",
            200,
            "8100",
        ),
        l("04/Apr/2016:12:00:00 +0000", "GET /persons/42/", 404, "-"),
        l("04/Apr/2016:12:00:01 +0000", "HEAD /persons/42/", 200, "-"),
        l("04/Apr/2016:12:00:02 +0000", "GET /big", 200, "-"),
        l("04/Apr/2016:12:00:03 +0000", "GET /big", 200, "4096"),
    ]
    .concat();
    std::fs::write(&path, text).unwrap();
    let opts = ScanOptions {
        format: Format::Common,
        ..ScanOptions::default()
    };
    let mut report = logs::scan(std::slice::from_ref(&path), &opts, &Interrupt::new()).unwrap();
    report.changes.sort_by_key(|c| c.after.time);
    let got: Vec<_> = report
        .changes
        .iter()
        .map(|c| {
            (
                c.url.as_str(),
                c.kind,
                c.before.status,
                c.after.status,
                show(c.after.time, &TimeZone::UTC),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "GET /api/v1/reports/",
                ChangeKind::Status,
                200,
                500,
                "2016-04-04 11:00:00 +00:00".into()
            ),
            (
                "GET /api/v1/reports/",
                ChangeKind::Status,
                500,
                200,
                "2016-04-04 11:30:00 +00:00".into()
            ),
            (
                "GET /persons/42/",
                ChangeKind::Status,
                200,
                404,
                "2016-04-04 12:00:00 +00:00".into()
            ),
            (
                "GET /big",
                ChangeKind::Size,
                200,
                200,
                "2016-04-04 12:00:03 +00:00".into()
            ),
        ]
    );
    assert_eq!(report.changes[2].after.size, 0, "`-` is 0 bytes");

    // Read as combined, every line is malformed, counted and never fatal.
    let report = logs::scan(&[path], &ScanOptions::default(), &Interrupt::new()).unwrap();
    assert_eq!((report.summary.malformed, report.changes.len()), (9, 0));
    assert!(report.summary.malformed_examples[0]
        .reason
        .contains("--format common"));
}

#[test]
fn a_persistent_2_7x_shift_is_found_though_under_the_old_4x_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let mut text = String::new();
    let mut at = t("2016-04-04 00:00 +00:00");
    let mut rng = Rng(0x2_7);
    for i in 0..60 {
        let size = if i < 40 { 16917 } else { 44931 };
        let agent = "curl/7.47";
        text.push_str(&line(
            at,
            "192.0.2.7",
            "GET /api/v1/stats/",
            200,
            size,
            agent,
        ));
        let search = format!("GET /search/?q=w{}", rng.below(3));
        let size = 3000 + rng.below(6000);
        text.push_str(&line(at, "192.0.2.8", &search, 200, size, agent));
        at += jiff::SignedDuration::from_mins(10);
    }
    std::fs::write(&path, text).unwrap();
    let report = logs::scan(&[path], &ScanOptions::default(), &Interrupt::new()).unwrap();
    assert_eq!(report.strong, 1, "{:#?}", report.changes);
    let c = &report.changes[0];
    assert_eq!(c.url, "GET /api/v1/stats/");
    assert_eq!((c.before.size, c.after.size), (16917, 44931));
    assert_eq!(
        show(c.after.time, &TimeZone::UTC),
        "2016-04-04 06:40:00 +00:00"
    );
    assert!(
        report.changes[1..]
            .iter()
            .all(|w| w.url.starts_with("GET /search/")),
        "{:#?}",
        report.changes
    );
}

#[test]
fn amy_with_1_percent_random_404s_the_dc_jump_is_first_and_the_rest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = amy_week();
    let mut rng = Rng(0x404);
    let mut text = String::new();
    let mut noise = 0;
    let mut flaky = 0;
    for (i, (at, l)) in lines.iter().enumerate() {
        text.push_str(l);
        // 1 % of requests: a 404 for a URL asked lately, picked at random (so as
        // often as the URL is asked), never the DC one.
        let (_, earlier) = &lines[i - rng.below(i.min(1000) as u64 + 1) as usize];
        let url = earlier
            .split('"')
            .nth(1)
            .unwrap()
            .trim_end_matches(" HTTP/1.1");
        if rng.below(100) == 0 && url != DC {
            text.push_str(&line(*at, "198.51.100.9", url, 404, 209, "bot"));
            noise += 1;
        }
        // A URL that fails one time in six, and one 404 in every flaky stretch.
        if rng.below(40) == 0 {
            let status = if rng.below(6) == 0 { 404 } else { 200 };
            let size = if status == 404 { 209 } else { 12000 };
            text.push_str(&line(
                *at,
                "198.51.100.10",
                "GET /flaky/",
                status,
                size,
                "bot",
            ));
            flaky += u64::from(status == 404);
        }
    }
    assert!(noise > 100 && flaky > 20, "{noise} {flaky}");
    let path = dir.path().join("access.log");
    std::fs::write(&path, text).unwrap();
    let report = logs::scan(&[path], &ScanOptions::default(), &Interrupt::new()).unwrap();

    let c = &report.changes[0];
    assert_eq!(c.url, DC, "{:#?}", &report.changes[..5]);
    assert_eq!((c.before.size, c.after.size), (17806, 261521));
    assert_eq!(report.strong, 1, "{:#?}", &report.changes[..5]);
    let on_flaky: Vec<_> = report
        .changes
        .iter()
        .filter(|w| w.url == "GET /flaky/")
        .collect();
    assert!(!on_flaky.is_empty());
    assert!(
        on_flaky.iter().all(|w| w.score < c.score / 5.0),
        "{on_flaky:#?}"
    );
    let noisy: Vec<_> = report
        .changes
        .iter()
        .filter(|w| w.after.status == 404)
        .collect();
    assert!(noisy.len() as u64 >= noise, "every 404 is a candidate");

    // The rest: counted, with the URLs they are on.
    let weaker = &report.changes[report.strong..];
    let urls: std::collections::HashSet<_> = weaker.iter().map(|w| &w.url).collect();
    assert_eq!(report.weaker_urls, urls.len());
    assert!(urls.len() > 100, "{}", urls.len());
    assert!(weaker
        .iter()
        .all(|w| w.score < ScanOptions::default().min_score));
}

#[test]
fn unreadable_files_and_bad_options_are_errors_that_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("access.log.7.gz");
    let err = logs::scan(&[missing], &ScanOptions::default(), &Interrupt::new()).unwrap_err();
    assert!(err.to_string().contains("access.log.7.gz"), "{err}");

    let truncated = dir.path().join("access.log.3.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..20_000 {
        writeln!(
            gz,
            "192.0.2.1 - - [04/Apr/2016:10:00:00 +0000] \"GET /{i} HTTP/1.1\" 200 1 \"-\" \"-\""
        )
        .unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = logs::scan(&[truncated], &ScanOptions::default(), &Interrupt::new()).unwrap_err();
    assert!(err.to_string().contains("access.log.3.gz at line"), "{err}");

    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let bad = ScanOptions {
        min_ratio: 0.5,
        ..ScanOptions::default()
    };
    assert!(logs::scan(std::slice::from_ref(&empty), &bad, &Interrupt::new()).is_err());
    let report = logs::scan(&[empty], &ScanOptions::default(), &Interrupt::new()).unwrap();
    assert_eq!((report.summary.lines, report.changes.len()), (0, 0));
}

mod fuzz {
    //! No line makes the access-log parser panic (issue 9), and a line written from
    //! fields reads back as those fields.

    use super::*;
    use ostler_core::forensics::logs::Parser;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            for format in [Format::Combined, Format::Common] {
                let _ = Parser::new(format).parse(&line);
            }
        }

        #[test]
        fn near_lines_never_panic(
            cut in 0usize..200,
            noise in proptest::collection::vec(any::<u8>(), 0..8),
            at in any::<prop::sample::Index>(),
        ) {
            // A real line cut short or with bytes spliced in: the cases a parser that
            // indexes by position gets wrong.
            let good = br#"203.0.113.9 - frank [06/Apr/2016:15:30:10 -0600] "GET /api/v1/events/?tag=DC HTTP/1.1" 200 261521 "https://example.org/" "curl/7.47.0""#;
            let mut line = good[..cut.min(good.len())].to_vec();
            let i = at.index(line.len() + 1);
            line.splice(i..i, noise);
            for format in [Format::Combined, Format::Common] {
                let _ = Parser::new(format).parse(&line);
            }
        }

        #[test]
        fn written_fields_read_back(
            client in "[0-9a-f:.]{1,20}",
            secs in 0i64..4_000_000_000,
            target in "/[!-~]{0,30}",
            status in 100u16..600,
            size in any::<u64>(),
            agent in "[ -~]{0,30}",
        ) {
            let time = Timestamp::from_second(secs).unwrap();
            let target = target.replace(['"', '\\'], "_");
            let agent = agent.replace('\\', "\\\\").replace('"', "\\\"");
            let text = line(time, &client, &format!("GET {target}"), status, size, &agent);
            let mut parser = Parser::new(Format::Combined);
            let e = parser.parse(text.trim_end().as_bytes()).unwrap();
            prop_assert_eq!(e.client, client.as_bytes());
            prop_assert_eq!(e.time, time);
            let url = format!("GET {target}");
            prop_assert_eq!(e.url(), url.as_bytes());
            prop_assert_eq!((e.status, e.size), (status, size));
            prop_assert_eq!(e.user_agent, Some(agent.as_bytes()));
        }
    }
}
