//! Parsers: syslog headers and the messages of the programs Warden understands.

/// A line a parser does not recognise, handed back whole: the next parser tries it, or
/// it becomes an event of its own (keyword rules still see it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed(pub String);

pub mod auth;
pub mod json;
pub mod web;
pub mod zeek;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};

/// Places year-less syslog timestamps (`Nov 26 14:47:49`) in a year.
///
/// The year is the reference's (for a live tail: now; for a replayed file: its
/// modification time), unless that puts the line more than a week after the
/// reference, in which case it belongs to the year before (a December line read in
/// January). Year-less times are in the host's local offset, taken at the reference.
#[derive(Debug, Clone)]
pub struct YearInference {
    reference: DateTime<Utc>,
    offset: FixedOffset,
}

impl YearInference {
    pub fn new(reference: DateTime<Utc>) -> Self {
        let offset = chrono::Offset::fix(&chrono::Local.offset_from_utc_datetime(&reference.naive_utc()));
        YearInference { reference, offset }
    }

    /// With an explicit offset (tests, and hosts that log in UTC).
    pub fn with_offset(reference: DateTime<Utc>, offset: FixedOffset) -> Self {
        YearInference { reference, offset }
    }

    /// The reference time ("now" for a live source).
    pub fn reference(&self) -> DateTime<Utc> {
        self.reference
    }

    pub fn place(&self, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<DateTime<Utc>> {
        let year = self.reference.year();
        let at = |y: i32| {
            let naive = NaiveDate::from_ymd_opt(y, month, day)?.and_hms_opt(h, m, s)?;
            Some(self.offset.from_local_datetime(&naive).single()?.with_timezone(&Utc))
        };
        // Feb 29 may exist only in the previous year.
        let this = at(year);
        match this {
            Some(t) if t <= self.reference + Duration::days(7) => Some(t),
            _ => at(year - 1).or(this),
        }
    }
}

/// The parts of a syslog line: time, host, program and message.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogLine<'a> {
    pub time: DateTime<Utc>,
    pub host: &'a str,
    pub program: &'a str,
    pub message: &'a str,
}

fn month(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn num2(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some(((a - b'0') * 10 + (b - b'0')) as u32),
        [b' ', b] | [b] if b.is_ascii_digit() => Some((b - b'0') as u32),
        _ => None,
    }
}

/// Parses `Mmm dd hh:mm:ss host program[pid]: message` or the RFC 3339 variant
/// (`2026-11-26T14:47:49.123456+01:00 host program[pid]: message`).
pub fn syslog<'a>(line: &'a str, years: &YearInference) -> Option<SyslogLine<'a>> {
    let b = line.as_bytes();
    let (time, rest) = if b.len() >= 16 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' {
        let t =
            years.place(month(&b[0..3])?, num2(&b[4..6])?, num2(&b[7..9])?, num2(&b[10..12])?, num2(&b[13..15])?)?;
        (t, line.get(16..)?)
    } else if b.len() > 20 && b[4] == b'-' && b[10] == b'T' {
        let sp = line.find(' ')?;
        let t = DateTime::parse_from_rfc3339(&line[..sp]).ok()?.with_timezone(&Utc);
        (t, &line[sp + 1..])
    } else {
        return None;
    };
    let (host, rest) = rest.split_once(' ')?;
    let (tag, message) = rest.split_once(": ").or_else(|| rest.strip_suffix(':').map(|t| (t, "")))?;
    let program = match tag.find('[') {
        Some(i) => &tag[..i],
        None => tag,
    };
    if program.is_empty() || program.contains(' ') {
        return None;
    }
    Some(SyslogLine { time, host, program, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn years(reference: &str) -> YearInference {
        YearInference::with_offset(reference.parse().unwrap(), FixedOffset::east_opt(0).unwrap())
    }

    #[test]
    fn year_comes_from_the_reference() {
        let y = years("2026-11-26T12:00:00Z");
        assert_eq!(y.place(11, 26, 11, 0, 0).unwrap().to_rfc3339(), "2026-11-26T11:00:00+00:00");
        // A December line read in early January belongs to last year.
        let y = years("2027-01-02T00:00:00Z");
        assert_eq!(y.place(12, 31, 23, 59, 59).unwrap().to_rfc3339(), "2026-12-31T23:59:59+00:00");
        // Feb 29 of a leap year read in a non-leap year.
        let y = years("2025-03-01T00:00:00Z");
        assert_eq!(y.place(2, 29, 1, 0, 0).unwrap().to_rfc3339(), "2024-02-29T01:00:00+00:00");
    }

    #[test]
    fn parses_both_header_forms() {
        let y = years("2026-11-26T12:00:00Z");
        let l = syslog("Nov  3 04:05:06 web1 sshd[42]: Failed password", &y).unwrap();
        assert_eq!((l.host, l.program, l.message), ("web1", "sshd", "Failed password"));
        assert_eq!(l.time.to_rfc3339(), "2026-11-03T04:05:06+00:00");
        let l = syslog("2026-11-26T14:47:49.123+01:00 h sshd-session[7]: Accepted x", &y).unwrap();
        assert_eq!(l.program, "sshd-session");
        assert_eq!(l.time.to_rfc3339(), "2026-11-26T13:47:49.123+00:00");
        assert!(syslog("garbage", &y).is_none());
        assert!(syslog("Foo 26 14:47:49 h p: m", &y).is_none());
    }
}
