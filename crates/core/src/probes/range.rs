//! Nagios threshold ranges (the plugin guidelines' `[@]start:end`), so a `warn` or
//! `crit` written for a Nagios plugin means the same here:
//!
//! | text     | alerts when the value is |
//! |----------|--------------------------|
//! | `10`     | outside 0..10 (< 0 or > 10) |
//! | `10:`    | below 10                 |
//! | `~:10`   | above 10                 |
//! | `10:20`  | outside 10..20           |
//! | `@10:20` | inside 10..20 (bounds included) |
//!
//! A number may carry the unit of what the probe measures (`3s`, `500ms` for a time,
//! `85%` for a disk, `7d` for a certificate): the range holds the value in the base
//! unit (seconds, percent, days), which is also what the perfdata says.

use std::fmt;

/// What a probe's threshold measures, and so which units its numbers may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds: `3`, `3s`, `500ms`, `1m`.
    Seconds,
    /// Percent: `85`, `85%`.
    Percent,
    /// Days: `30`, `30d`.
    Days,
    /// A plain number (a query's result).
    Plain,
}

impl Unit {
    /// The unit perfdata writes after a value of this kind.
    pub fn perf_unit(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Percent => "%",
            Unit::Days | Unit::Plain => "",
        }
    }

    /// Units this kind accepts, for messages.
    fn accepted(self) -> &'static str {
        match self {
            Unit::Seconds => "a time: `3`, `3s`, `500ms`, `1m` (a bare number is seconds)",
            Unit::Percent => "a percent: `85` or `85%`",
            Unit::Days => "days: `30` or `30d`",
            Unit::Plain => "a plain number",
        }
    }

    /// The factor from the suffix `suffix` to the base unit, if this kind takes it.
    fn factor(self, suffix: &str) -> Option<f64> {
        match (self, suffix) {
            (_, "") => Some(1.0),
            (Unit::Seconds, "s") => Some(1.0),
            (Unit::Seconds, "ms") => Some(0.001),
            (Unit::Seconds, "us") => Some(0.000_001),
            (Unit::Seconds, "m") => Some(60.0),
            (Unit::Seconds, "h") => Some(3600.0),
            (Unit::Percent, "%") => Some(1.0),
            (Unit::Days, "d") => Some(1.0),
            _ => None,
        }
    }
}

/// A parsed threshold range.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Lower bound (`f64::NEG_INFINITY` for `~`).
    pub start: f64,
    /// Upper bound (`f64::INFINITY` when not given: `10:`).
    pub end: f64,
    /// `@`: alert inside the bounds instead of outside.
    pub inside: bool,
}

/// Why a range cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{text}` is not a Nagios range: {why}")]
pub struct BadRange {
    pub text: String,
    pub why: String,
}

impl Range {
    /// Reads `text` (see the module's table) with numbers in `unit`.
    pub fn parse(text: &str, unit: Unit) -> Result<Range, BadRange> {
        let bad = |why: String| BadRange {
            text: text.to_string(),
            why,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let number = |part: &str| -> Result<f64, BadRange> {
            let part = part.trim();
            let split = part
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e')))
                .unwrap_or(part.len());
            let (digits, suffix) = part.split_at(split);
            let value: f64 = digits.parse().map_err(|_| {
                bad(format!(
                    "`{part}` is not a number (write {})",
                    unit.accepted()
                ))
            })?;
            let factor = unit.factor(suffix.trim()).ok_or_else(|| {
                bad(format!(
                    "`{suffix}` is not a unit here (write {})",
                    unit.accepted()
                ))
            })?;
            if !value.is_finite() {
                return Err(bad(format!("`{part}` is not a finite number")));
            }
            Ok(value * factor)
        };
        let (start, end) = match body.split_once(':') {
            None => (0.0, number(body)?),
            Some((start, end)) => {
                let start = match start.trim() {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    s => number(s)?,
                };
                let end = match end.trim() {
                    "" => f64::INFINITY,
                    e => number(e)?,
                };
                (start, end)
            }
        };
        if start > end {
            return Err(bad(format!(
                "its start ({}) is above its end ({})",
                show(start),
                show(end)
            )));
        }
        Ok(Range { start, end, inside })
    }

    /// Whether `value` is one to alert on.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside {
            within
        } else {
            !within
        }
    }
}

/// The range as perfdata writes it: base-unit numbers, Nagios syntax (`3`, `10:`,
/// `~:10`, `@10:20`).
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        let end = if self.end.is_infinite() {
            String::new()
        } else {
            show(self.end)
        };
        if self.start == 0.0 && !self.inside && !self.end.is_infinite() {
            return f.write_str(&end);
        }
        let start = if self.start.is_infinite() {
            "~".to_string()
        } else {
            show(self.start)
        };
        write!(f, "{start}:{end}")
    }
}

/// A number the shortest way that keeps it (`3`, `0.5`, `12.25`).
pub fn show(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Range {
        Range::parse(text, Unit::Plain).unwrap()
    }

    #[test]
    fn a_bare_number_alerts_outside_zero_to_it() {
        let range = r("10");
        assert!(!range.alerts(0.0));
        assert!(!range.alerts(10.0));
        assert!(range.alerts(10.5));
        assert!(range.alerts(-1.0));
    }

    #[test]
    fn zero_alerts_on_anything_above_zero() {
        // The orphan rows: `warn = "0"` alerts on one orphan.
        let range = r("0");
        assert!(!range.alerts(0.0));
        assert!(range.alerts(1.0));
    }

    #[test]
    fn start_colon_alerts_below_start() {
        let range = r("10:");
        assert!(range.alerts(9.9));
        assert!(!range.alerts(10.0));
        assert!(!range.alerts(1e12));
    }

    #[test]
    fn tilde_colon_alerts_above_end() {
        let range = r("~:10");
        assert!(!range.alerts(-1e12));
        assert!(!range.alerts(10.0));
        assert!(range.alerts(10.1));
    }

    #[test]
    fn start_end_alerts_outside() {
        let range = r("10:20");
        assert!(range.alerts(9.0));
        assert!(!range.alerts(10.0));
        assert!(!range.alerts(20.0));
        assert!(range.alerts(21.0));
    }

    #[test]
    fn at_alerts_inside_bounds_included() {
        let range = r("@10:20");
        assert!(!range.alerts(9.0));
        assert!(range.alerts(10.0));
        assert!(range.alerts(15.0));
        assert!(range.alerts(20.0));
        assert!(!range.alerts(20.5));
    }

    #[test]
    fn times_take_units_and_a_bare_number_is_seconds() {
        let t = |text| Range::parse(text, Unit::Seconds).unwrap();
        assert_eq!(t("3s"), t("3"));
        assert_eq!(t("500ms").end, 0.5);
        assert_eq!(t("1m").end, 60.0);
        assert!(t("3s").alerts(3.2));
        assert!(!t("500ms").alerts(0.4));
        assert_eq!(
            t("500ms:2s"),
            Range {
                start: 0.5,
                end: 2.0,
                inside: false
            }
        );
    }

    #[test]
    fn percents_and_days_take_their_own_suffix_only() {
        assert_eq!(Range::parse("85%", Unit::Percent).unwrap().end, 85.0);
        assert_eq!(Range::parse("30d:", Unit::Days).unwrap().start, 30.0);
        let e = Range::parse("85s", Unit::Percent).unwrap_err();
        assert_eq!(e.text, "85s");
        assert!(e.to_string().contains("`s` is not a unit here"), "{e}");
        assert!(Range::parse("3%", Unit::Seconds).is_err());
    }

    #[test]
    fn errors_name_the_text() {
        for text in ["", "abc", "10:5", "@", "1:2:3", "~"] {
            let e = Range::parse(text, Unit::Plain).unwrap_err();
            assert_eq!(e.text, text);
            assert!(
                e.to_string().starts_with(&format!("threshold `{text}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn perfdata_writes_the_range_in_base_units() {
        let t = |text| Range::parse(text, Unit::Seconds).unwrap().to_string();
        assert_eq!(t("3s"), "3");
        assert_eq!(t("500ms"), "0.5");
        assert_eq!(t("10:"), "10:");
        assert_eq!(t("~:10"), "~:10");
        assert_eq!(t("@1:2"), "@1:2");
        assert_eq!(t("1:2"), "1:2");
    }
}
