//! One access log line, split by hand.
//!
//! Why by hand and not a regex: an investigation reads days of logs, millions of
//! lines, and should answer in a second or two. The fields of the combined format are
//! found with `memchr` (a space, a `[`, a `]`, quotes with backslash escapes), nothing
//! is copied or allocated, and the fields come back as slices of the line. The one
//! costly field, the timestamp, repeats from line to line (a busy server writes many
//! lines per second), so the last one parsed is cached by its 26 bytes.
//!
//! The parser is strict where the scan depends on it (time, status, size) and lenient
//! elsewhere: ident and user are skipped, fields after the user agent (nginx's
//! `$request_time`, a forwarded-for) are ignored, and a request that is not
//! `METHOD TARGET PROTOCOL` (`"-"`, a TLS handshake sent to the HTTP port) is kept
//! as written.

use jiff::Timestamp;
use memchr::{memchr, memchr2, memrchr};

use super::Format;

/// The fields of one line, borrowed from it. Quoted fields keep their escapes
/// (`\"`, `\\`, `\xhh`) as the server wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `%h`: an IPv4 or IPv6 address, or a host name.
    pub client: &'a [u8],
    pub time: Timestamp,
    /// `%r`: the request line, e.g. `GET /events/?tag=DC HTTP/1.1`.
    pub request: &'a [u8],
    pub status: u16,
    /// `%b`: body bytes sent; `-` reads as 0.
    pub size: u64,
    /// Combined format only.
    pub referer: Option<&'a [u8]>,
    /// Combined format only.
    pub user_agent: Option<&'a [u8]>,
}

impl<'a> Entry<'a> {
    /// What identifies a URL: the method and the target with its query string
    /// (`GET /events/?tag=DC`), without the protocol. A request that is not
    /// `METHOD TARGET PROTOCOL` is its own key.
    pub fn url(&self) -> &'a [u8] {
        let r = self.request;
        if let Some(sp) = memrchr(b' ', r) {
            if r[sp + 1..].starts_with(b"HTTP/") && memchr(b' ', &r[..sp]).is_some() {
                return &r[..sp];
            }
        }
        r
    }
}

/// The target alone (`/events/?tag=DC`) of a key made by [`Entry::url`].
pub fn target_of(url: &[u8]) -> &[u8] {
    match memchr(b' ', url) {
        Some(sp) => &url[sp + 1..],
        None => url,
    }
}

const TIME_LEN: usize = "10/Oct/2026:13:55:36 +0000".len();
const BAD_TIME: &str = "the time is not like [10/Oct/2026:13:55:36 +0000]";

/// Parses lines of one format, remembering the last timestamp it parsed.
pub struct Parser {
    format: Format,
    cached: [u8; TIME_LEN],
    cached_time: Option<Timestamp>,
}

impl Parser {
    pub fn new(format: Format) -> Parser {
        Parser {
            format,
            cached: [0; TIME_LEN],
            cached_time: None,
        }
    }

    /// Splits one line (without its newline). The error says what is wrong, for the
    /// malformed-line report.
    pub fn parse<'a>(&mut self, line: &'a [u8]) -> Result<Entry<'a>, &'static str> {
        let sp = memchr(b' ', line).ok_or("not an access log line (no spaces)")?;
        if sp == 0 {
            return Err("no client address");
        }
        let client = &line[..sp];
        let open = sp + memchr(b'[', &line[sp..]).ok_or("no [time]")?;
        let close = open + memchr(b']', &line[open..]).ok_or("no ] after the time")?;
        let time = self.time(&line[open + 1..close])?;
        let (request, mut pos) =
            quoted(line, close + 1).ok_or("no quoted request after the time")?;

        let status = match line.get(pos..pos + 4) {
            Some([b' ', a, b, c])
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err("no three-digit status after the request"),
        };
        pos += 4;
        if line.get(pos) != Some(&b' ') {
            return Err("no size after the status");
        }
        pos += 1;
        let end = memchr(b' ', &line[pos..]).map_or(line.len(), |i| pos + i);
        let size = parse_size(&line[pos..end]).ok_or("the size is neither a number nor -")?;

        let (referer, user_agent) = match self.format {
            Format::Common => (None, None),
            Format::Combined => {
                let (referer, pos) = quoted(line, end).ok_or(
                    "no quoted referer after the size (a common-format log? try --format common)",
                )?;
                let (agent, _) =
                    quoted(line, pos).ok_or("no quoted user agent after the referer")?;
                (Some(referer), Some(agent))
            }
        };
        Ok(Entry {
            client,
            time,
            request,
            status,
            size,
            referer,
            user_agent,
        })
    }

    fn time(&mut self, field: &[u8]) -> Result<Timestamp, &'static str> {
        if field.len() != TIME_LEN {
            return Err(BAD_TIME);
        }
        if let Some(t) = self.cached_time {
            if field == self.cached {
                return Ok(t);
            }
        }
        let t = parse_clf_time(field).ok_or(BAD_TIME)?;
        self.cached.copy_from_slice(field);
        self.cached_time = Some(t);
        Ok(t)
    }
}

/// At `line[pos..]`, ` "field"`: the inside (escapes kept) and the position after the
/// closing quote. A backslash escapes the next byte, so `\"` does not end the field.
fn quoted(line: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    if !line.get(pos..)?.starts_with(b" \"") {
        return None;
    }
    let start = pos + 2;
    let mut i = start;
    loop {
        let j = i + memchr2(b'"', b'\\', line.get(i..)?)?;
        if line[j] == b'"' {
            return Some((&line[start..j], j + 1));
        }
        i = j + 2;
    }
}

fn parse_size(field: &[u8]) -> Option<u64> {
    if field == b"-" {
        return Some(0);
    }
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// `10/Oct/2026:13:55:36 +0000` (the inside of `%t`) as an instant.
pub fn parse_clf_time(f: &[u8]) -> Option<Timestamp> {
    if f.len() != TIME_LEN
        || f[2] != b'/'
        || f[6] != b'/'
        || f[11] != b':'
        || f[14] != b':'
        || f[17] != b':'
        || f[20] != b' '
    {
        return None;
    }
    let day = digits(&f[0..2])?;
    let month = month(&f[3..6])?;
    let year = digits(&f[7..11])?;
    let (hour, minute, second) = (
        digits(&f[12..14])?,
        digits(&f[15..17])?,
        digits(&f[18..20])?,
    );
    let sign = match f[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (off_h, off_m) = (digits(&f[22..24])?, digits(&f[24..26])?);
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if off_h > 25 || off_m > 59 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Timestamp::from_second(local - sign * (off_h * 3600 + off_m * 60)).ok()
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn month(b: &[u8]) -> Option<i64> {
    const NAMES: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    NAMES
        .iter()
        .position(|m| m.eq_ignore_ascii_case(b))
        .map(|i| i as i64 + 1)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const COMBINED: &[u8] = br#"203.0.113.9 - frank [06/Apr/2016:15:30:10 -0600] "GET /api/v1/events/?tag=DC HTTP/1.1" 200 261521 "https://example.org/" "curl/7.47.0""#;

    #[test]
    fn combined_line() {
        let e = Parser::new(Format::Combined).parse(COMBINED).unwrap();
        assert_eq!(e.client, b"203.0.113.9");
        assert_eq!(e.time, ts("2016-04-06T21:30:10Z"));
        assert_eq!(e.request, b"GET /api/v1/events/?tag=DC HTTP/1.1");
        assert_eq!(e.url(), b"GET /api/v1/events/?tag=DC");
        assert_eq!(target_of(e.url()), b"/api/v1/events/?tag=DC");
        assert_eq!((e.status, e.size), (200, 261521));
        assert_eq!(e.referer, Some(&b"https://example.org/"[..]));
        assert_eq!(e.user_agent, Some(&b"curl/7.47.0"[..]));
    }

    #[test]
    fn common_line_and_common_read_as_combined() {
        let line = br#"127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "POST /login HTTP/1.0" 302 -"#;
        let e = Parser::new(Format::Common).parse(line).unwrap();
        assert_eq!((e.status, e.size, e.referer), (302, 0, None));
        assert_eq!(e.time, ts("2026-10-10T13:55:36Z"));
        let err = Parser::new(Format::Combined).parse(line).unwrap_err();
        assert!(err.contains("--format common"), "{err}");
        // A combined line read as common: the extra fields are ignored.
        let e = Parser::new(Format::Common).parse(COMBINED).unwrap();
        assert_eq!((e.status, e.size, e.user_agent), (200, 261521, None));
    }

    #[test]
    fn escaped_quotes_do_not_end_fields() {
        let line = br#"198.51.100.7 - - [10/Oct/2026:13:55:36 +0000] "GET /q?x=\"a b\" HTTP/1.1" 404 512 "-" "Mozilla/5.0 \"quoted\" \\ (x)" "-" 0.003"#;
        let e = Parser::new(Format::Combined).parse(line).unwrap();
        assert_eq!(e.request, br#"GET /q?x=\"a b\" HTTP/1.1"#);
        assert_eq!(e.url(), br#"GET /q?x=\"a b\""#);
        assert_eq!((e.status, e.size), (404, 512));
        assert_eq!(e.user_agent, Some(&br#"Mozilla/5.0 \"quoted\" \\ (x)"#[..]));
    }

    #[test]
    fn dash_size_is_zero_and_ipv6_clients() {
        let line =
            br#"2001:db8::1 - - [10/Oct/2026:13:55:36 +0000] "HEAD / HTTP/1.1" 304 - "-" "-""#;
        let e = Parser::new(Format::Combined).parse(line).unwrap();
        assert_eq!(e.client, b"2001:db8::1");
        assert_eq!((e.status, e.size), (304, 0));
    }

    #[test]
    fn requests_that_are_not_method_target_protocol_are_their_own_key() {
        let mut p = Parser::new(Format::Combined);
        let dash = br#"192.0.2.1 - - [10/Oct/2026:13:55:36 +0000] "-" 400 0 "-" "-""#;
        assert_eq!(p.parse(dash).unwrap().url(), b"-");
        let old = br#"192.0.2.1 - - [10/Oct/2026:13:55:36 +0000] "GET /x" 200 5 "-" "-""#;
        assert_eq!(p.parse(old).unwrap().url(), b"GET /x");
        let tls = br#"192.0.2.1 - - [10/Oct/2026:13:55:36 +0000] "\x16\x03\x01" 400 226 "-" "-""#;
        assert_eq!(p.parse(tls).unwrap().url(), br#"\x16\x03\x01"#);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let mut p = Parser::new(Format::Combined);
        let cases: &[(&[u8], &str)] = &[
            (b"", "no spaces"),
            (b"garbage", "no spaces"),
            (b" - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"", "client"),
            (b"1.2.3.4 - - 10/Oct/2026:13:55:36 +0000 \"GET /\" 200 1 \"-\" \"-\"", "[time]"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000 \"GET /\" 200 1", "]"),
            (b"1.2.3.4 - - [10/Foo/2026:13:55:36 +0000] \"GET /\" 200 1 \"-\" \"-\"", "time"),
            (b"1.2.3.4 - - [30/Feb/2026:13:55:36 +0000] \"GET /\" 200 1 \"-\" \"-\"", "time"),
            (b"1.2.3.4 - - [10/Oct/2026:24:00:00 +0000] \"GET /\" 200 1 \"-\" \"-\"", "time"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36] \"GET /\" 200 1 \"-\" \"-\"", "time"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] GET / 200 1", "quoted request"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET / 200 1", "quoted request"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\" OK 1 \"-\" \"-\"", "status"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\" 200", "size"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\" 200 12x \"-\" \"-\"", "size"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\" 200 99999999999999999999 \"-\" \"-\"", "size"),
            (b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\" 200 1 \"-\" \"unterminated \\\"", "user agent"),
        ];
        for (line, want) in cases {
            let err = p.parse(line).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn times_with_offsets_leap_days_and_the_cache() {
        let t = |s: &str| parse_clf_time(s.as_bytes());
        assert_eq!(
            t("06/Apr/2016:17:04:00 -0400"),
            Some(ts("2016-04-06T21:04:00Z"))
        );
        assert_eq!(
            t("06/Apr/2016:15:04:00 -0600"),
            Some(ts("2016-04-06T21:04:00Z"))
        );
        assert_eq!(
            t("01/Jan/2027:05:30:00 +0530"),
            Some(ts("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            t("29/Feb/2024:00:00:00 +0000"),
            Some(ts("2024-02-29T00:00:00Z"))
        );
        assert_eq!(t("29/Feb/2100:00:00:00 +0000"), None);
        assert_eq!(
            t("31/Dec/1969:23:59:59 +0000"),
            Some(ts("1969-12-31T23:59:59Z"))
        );
        // Every day of a few years agrees with jiff.
        let mut d = jiff::civil::date(2015, 12, 25);
        while d.year() < 2029 {
            let text = format!("{}", d.strftime("%d/%b/%Y:12:34:56 +0100"));
            let want = d
                .at(12, 34, 56, 0)
                .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)))
                .unwrap();
            assert_eq!(t(&text), Some(want.timestamp()), "{text}");
            d = d.tomorrow().unwrap();
        }
        // The cache returns the same instant for the same bytes and notices new ones.
        let mut p = Parser::new(Format::Common);
        let line = |time: &str| format!("1.2.3.4 - - [{time}] \"GET / HTTP/1.1\" 200 1");
        let a = p
            .parse(line("06/Apr/2016:15:30:10 -0600").as_bytes())
            .unwrap()
            .time;
        let b = p
            .parse(line("06/Apr/2016:15:30:10 -0600").as_bytes())
            .unwrap()
            .time;
        let c = p
            .parse(line("06/Apr/2016:15:30:10 -0400").as_bytes())
            .unwrap()
            .time;
        assert_eq!(a, b);
        assert_eq!(c, ts("2016-04-06T19:30:10Z"));
    }
}
