//! Times people type and read. Every time ostler prints carries its offset; every time
//! it takes must say its zone (an offset or an IANA name), because a backup "at 17:00"
//! means nothing until we know whose 17:00 (AMY's postmortem lost hours to exactly that).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::{Error, Result};

/// Parses `2016-04-06 17:00 -04:00`, `2016-04-06T17:00:00-04:00`,
/// `2016-04-06 17:00 America/New_York`, `2016-04-06 21:00 UTC` or `...Z`.
pub fn parse_user_time(text: &str) -> Result<Timestamp> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let bad = || {
        Error::user(format!("cannot read the time `{text}`")).with_hint(
            "write a date, a time and a zone: `2016-04-06 17:00 -04:00`, `2016-04-06 17:00 America/New_York` or `2016-04-06T21:00Z`",
        )
    };
    let no_zone = || {
        Error::user(format!("the time `{text}` has no zone")).with_hint(
            "add an offset (`-04:00`) or a zone name (`America/New_York`, `UTC`): a time without a zone is ambiguous",
        )
    };
    let (civil, zone) = match text.rsplit_once(' ') {
        Some((c, z)) => (c.trim(), z.trim()),
        None => return Err(no_zone()),
    };
    let looks_like_zone = zone.starts_with('+')
        || zone.starts_with('-')
        || zone.chars().any(|c| c.is_ascii_alphabetic());
    if !looks_like_zone {
        return Err(no_zone());
    }
    let civil: DateTime = match civil.replace('T', " ").parse::<DateTime>() {
        Ok(dt) => dt,
        Err(_) => match civil.parse::<jiff::civil::Date>() {
            Ok(d) => d.to_datetime(jiff::civil::Time::midnight()),
            Err(_) => return Err(bad()),
        },
    };
    let tz = if zone.starts_with('+') || zone.starts_with('-') {
        let offset: jiff::tz::Offset = parse_offset(zone).ok_or_else(bad)?;
        TimeZone::fixed(offset)
    } else if zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc") {
        TimeZone::UTC
    } else {
        TimeZone::get(zone).map_err(|_| {
            Error::user(format!("unknown time zone `{zone}` in `{text}`"))
                .with_hint("use an IANA name like `America/New_York` or an offset like `-04:00`")
        })?
    };
    civil.to_zoned(tz).map(|z| z.timestamp()).map_err(|e| {
        Error::user(format!(
            "the time `{text}` does not exist in that zone: {e}"
        ))
    })
}

/// `+HH:MM`, `-HHMM`, `+HH` or `+H`: one sign, then ASCII digits only, so `+-5` and
/// `+1é1` are errors rather than a second sign read by `i32::parse` or a slice cut
/// inside a character.
fn parse_offset(text: &str) -> Option<jiff::tz::Offset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    // Only digits and one colon from here on, so slicing by bytes is slicing by chars.
    if !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i32>().ok())
            .flatten()
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (digits(h, 1..=2)?, digits(m, 2..=2)?),
        None if rest.len() == 4 => (digits(&rest[..2], 2..=2)?, digits(&rest[2..], 2..=2)?),
        None => (digits(rest, 1..=2)?, 0),
    };
    if h > 18 || m > 59 {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// A time for people: in `tz`, with its offset.
pub fn show(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_zones_and_utc_agree() {
        let a = parse_user_time("2016-04-06 17:00 -04:00").unwrap();
        let b = parse_user_time("2016-04-06 17:00 America/New_York").unwrap();
        let c = parse_user_time("2016-04-06T21:00:00Z").unwrap();
        let d = parse_user_time("2016-04-06 21:00 UTC").unwrap();
        assert_eq!(a, c);
        assert_eq!(b, c);
        assert_eq!(d, c);
    }

    #[test]
    fn an_offset_with_a_multibyte_character_is_an_error_not_a_panic() {
        for text in [
            "2016-04-06 17:00 +1é1",
            "2016-04-06 17:00 +é",
            "2016-04-06 17:00 -00é",
        ] {
            let e = parse_user_time(text).unwrap_err();
            assert!(
                e.to_string().contains("cannot read the time"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn an_offset_with_two_signs_is_refused() {
        for text in [
            "2016-04-06 17:00 +-5",
            "2016-04-06 17:00 -+05:00",
            "2016-04-06 17:00 +05:-3",
            "2016-04-06 17:00 +",
            "2016-04-06 17:00 +123",
            "2016-04-06 17:00 +19",
        ] {
            assert!(parse_user_time(text).is_err(), "{text} was accepted");
        }
        // The forms people write still work.
        let utc = parse_user_time("2016-04-06T21:00:00Z").unwrap();
        for text in [
            "2016-04-06 17:00 -04:00",
            "2016-04-06 17:00 -0400",
            "2016-04-06 17:00 -04",
            "2016-04-06 17:00 -4",
        ] {
            assert_eq!(parse_user_time(text).unwrap(), utc, "{text}");
        }
    }

    #[test]
    fn a_time_without_zone_is_refused() {
        let e = parse_user_time("2016-04-06 17:00").unwrap_err();
        assert!(e.to_string().contains("has no zone"), "{e}");
        assert!(parse_user_time("2016-04-06 17:00 Mars/Olympus").is_err());
    }
}
