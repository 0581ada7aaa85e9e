//! The timestamps services write at the start of their own log files (not syslog):
//! exim, dovecot, MariaDB/MySQL, PostgreSQL, nginx, Apache, vsftpd, and the audit log.
//! Times without a zone are the host's local time.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::YearInference;

fn digits(s: &str, n: usize) -> Option<u32> {
    let d = s.get(..n)?;
    if d.bytes().all(|b| b.is_ascii_digit()) { d.parse().ok() } else { None }
}

/// `hh:mm:ss` (the hour may be one digit, or space-padded) and an optional fraction
/// (`.123456` or `,123`); the rest of the line.
fn clock(s: &str) -> Option<(NaiveTime, &str)> {
    let s = s.trim_start_matches(' ');
    let (h, rest) = match (digits(s, 2), digits(s, 1)) {
        (Some(h), _) => (h, &s[2..]),
        (None, Some(h)) => (h, &s[1..]),
        _ => return None,
    };
    let rest = rest.strip_prefix(':')?;
    let (m, rest) = (digits(rest, 2)?, &rest[2..]);
    let rest = rest.strip_prefix(':')?;
    let (sec, mut rest) = (digits(rest, 2)?, &rest[2..]);
    let mut nanos = 0u32;
    if let Some(f) = rest.strip_prefix(['.', ',']) {
        let n = f.bytes().take_while(|b| b.is_ascii_digit()).count();
        let frac = &f[..n.min(9)];
        if !frac.is_empty() {
            nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
        }
        rest = &f[n..];
    }
    Some((NaiveTime::from_hms_nano_opt(h, m, sec, nanos)?, rest))
}

/// A zone after a time: `Z`, `+01:00`, `+0100`, ` UTC`/` GMT`; its offset in seconds and
/// the rest. No zone: `None`.
fn zone(s: &str) -> (Option<i32>, &str) {
    if let Some(r) = s.strip_prefix('Z') {
        return (Some(0), r);
    }
    for name in [" UTC", " GMT"] {
        if let Some(r) = s.strip_prefix(name) {
            return (Some(0), r);
        }
    }
    let t = s.strip_prefix(' ').filter(|t| t.starts_with(['+', '-'])).unwrap_or(s);
    let sign = match t.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return (None, s),
    };
    let t = &t[1..];
    let (h, rest) = match digits(t, 2) {
        Some(h) => (h, &t[2..]),
        None => return (None, s),
    };
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    match digits(rest, 2) {
        Some(m) => (Some(sign * (h * 3600 + m * 60) as i32), &rest[2..]),
        None => (Some(sign * (h * 3600) as i32), rest),
    }
}

fn at(date: NaiveDate, time: NaiveTime, offset: Option<i32>, years: &YearInference) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::new(date, time);
    match offset {
        Some(o) => Some(DateTime::from_naive_utc_and_offset(naive - chrono::Duration::seconds(o as i64), Utc)),
        None => years.local(naive),
    }
}

/// `yyyy-mm-dd hh:mm:ss[.f][zone]`, `yyyy-mm-ddThh:mm:ss[.f][zone]` and `yyyy/mm/dd
/// hh:mm:ss`, with what follows (a space after the time is consumed).
pub fn iso<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    let b = line.as_bytes();
    if b.len() < 19 || !(b[4] == b'-' && b[7] == b'-' || b[4] == b'/' && b[7] == b'/') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(line, 4)? as i32, digits(&line[5..], 2)?, digits(&line[8..], 2)?)?;
    if b[10] != b' ' && b[10] != b'T' {
        return None;
    }
    let (time, rest) = clock(&line[11..])?;
    let (offset, rest) = zone(rest);
    Some((at(date, time, offset, years)?, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// MySQL before 5.7: `yymmdd hh:mm:ss` (the hour space-padded: `130324  0:04:00`).
pub fn mysql_short<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    if line.as_bytes().get(6) != Some(&b' ') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(2000 + digits(line, 2)? as i32, digits(&line[2..], 2)?, digits(&line[4..], 2)?)?;
    let (time, rest) = clock(&line[7..])?;
    Some((at(date, time, None, years)?, rest.strip_prefix(' ').unwrap_or(rest)))
}

fn month(s: &str) -> Option<u32> {
    super::month(s.as_bytes().get(..3)?)
}

/// `Www Mmm dd hh:mm:ss[.f] yyyy` (Apache's error log inside brackets, vsftpd's log).
pub fn ctime<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    let mut parts = line.splitn(3, ' ');
    let (_weekday, mon) = (parts.next()?, parts.next()?);
    let rest = parts.next()?.trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    let (time, rest) = clock(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let year = digits(rest, 4)?;
    let date = NaiveDate::from_ymd_opt(year as i32, month(mon)?, day.parse().ok()?)?;
    Some((at(date, time, None, years)?, &rest[4..]))
}

/// `@4000000050a2e2a10a3d0a14 …`: a TAI64N label (daemontools' multilog, dovecot).
pub fn tai64n(line: &str) -> Option<(DateTime<Utc>, &str)> {
    // 24 hex digits (ASCII: a multi-byte character there made the slices below panic —
    // found by fuzzing).
    let hex = line.strip_prefix('@')?.get(..24).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let secs = u64::from_str_radix(&hex[..16], 16).ok()?.checked_sub(0x4000_0000_0000_000a)?;
    let nanos = u32::from_str_radix(&hex[16..], 16).ok()?;
    let t = DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos.min(999_999_999))?;
    Some((t, line[25..].trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn y() -> YearInference {
        YearInference::with_offset("2026-11-26T12:00:00Z".parse().unwrap(), FixedOffset::east_opt(3600).unwrap())
    }

    fn t(x: Option<(DateTime<Utc>, &str)>) -> (String, String) {
        let (t, r) = x.expect("a time");
        (t.to_rfc3339(), r.to_string())
    }

    #[test]
    fn service_timestamps() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(t(iso("2013-01-04 17:03:46 login x", &y())), s("2013-01-04T16:03:46+00:00", "login x"));
        assert_eq!(
            t(iso("2019-07-29T09:09:11.123456Z 8 [Note] x", &y())),
            s("2019-07-29T09:09:11.123456+00:00", "8 [Note] x")
        );
        assert_eq!(
            t(iso("2021-04-02 12:34:56.789 UTC [1234] x", &y())),
            s("2021-04-02T12:34:56.789+00:00", "[1234] x")
        );
        assert_eq!(t(iso("2021-04-02 12:34:56 +0200 x", &y())), s("2021-04-02T10:34:56+00:00", "x"));
        assert_eq!(
            t(iso("2012/04/09 11:53:29 [error] 2865#0: x", &y())),
            s("2012-04-09T10:53:29+00:00", "[error] 2865#0: x")
        );
        assert_eq!(t(mysql_short("130324  0:04:00 [Warning] x", &y())), s("2013-03-23T23:04:00+00:00", "[Warning] x"));
        assert_eq!(t(ctime("Sun Jun 09 07:57:47.123 2013] [x", &y())), s("2013-06-09T06:57:47.123+00:00", "] [x"));
        assert_eq!(t(ctime("Sun Jan  5 23:12:43 2014 [pid 1] x", &y())), s("2014-01-05T22:12:43+00:00", " [pid 1] x"));
        assert_eq!(
            t(tai64n("@400000004c91b044077a9e94 imap-login: x")),
            s("2010-09-16T05:50:50.125476500+00:00", "imap-login: x")
        );
        // Found by fuzzing: a multi-byte character inside the label panicked a slice.
        assert!(tai64n("@4000000000000\u{fffd}000000000 x").is_none());
        assert!(tai64n("@40000000\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd} x").is_none());
        assert!(iso("2013-13-04 17:03:46 x", &y()).is_none());
        assert!(iso("not a time at all here", &y()).is_none());
        assert!(ctime("Sun Foo 09 07:57:47 2013", &y()).is_none());
    }
}
