//! Parsers: syslog headers, the messages of the programs Warden understands, and the
//! services' own log formats.

/// A line a parser does not recognise, handed back whole: the next parser tries it, or
/// it becomes an event of its own (keyword rules still see it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed(pub String);

pub mod audit;
pub mod auth;
pub mod database;
pub mod ftp;
pub mod json;
pub mod local;
pub mod mail;
pub mod sshd;
pub mod stamp;
#[cfg(test)]
pub mod testing;
pub mod web;
pub mod weberror;
pub mod zeek;

use std::net::IpAddr;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};

use crate::messages::{AuthEvent, AuthEventKind, Service};

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

    /// A local date and time without a zone, in the host's offset.
    pub fn local(&self, naive: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        Some(self.offset.from_local_datetime(&naive).single()?.with_timezone(&Utc))
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

/// The parts of a syslog line: time, host, program, its pid and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogLine<'a> {
    pub time: DateTime<Utc>,
    /// Empty when the line has none (`Nov 23 21:50:19 sshd[8148]: …`).
    pub host: &'a str,
    pub program: &'a str,
    pub pid: Option<u32>,
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

/// `Mmm dd hh:mm:ss` (the day padded with a space, or not) and what follows it.
fn bsd_time<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    let b = line.as_bytes();
    if b.len() < 15 || b[3] != b' ' {
        return None;
    }
    let m = month(&b[0..3])?;
    // `Nov  3`, `Nov 03`, or `Nov 3`.
    let (day, at) = match (b[4], b[5]) {
        (b' ', d) if d.is_ascii_digit() => (num2(&b[5..6])?, 6),
        (d, b' ') if d.is_ascii_digit() => (num2(&b[4..5])?, 5),
        _ => (num2(&b[4..6])?, 6),
    };
    let t = b.get(at + 1..at + 9)?;
    if b[at] != b' ' || t[2] != b':' || t[5] != b':' {
        return None;
    }
    let time = years.place(m, day, num2(&t[0..2])?, num2(&t[3..5])?, num2(&t[6..8])?)?;
    let mut rest = &line[at + 9..];
    // Fractions of a second (`14:47:49.123`) are dropped.
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    Some((time, rest.strip_prefix(' ')?))
}

/// Whether a header token is already the program tag (`sshd[42]:`, `[sshd]`): the line
/// has no host.
fn is_tag(tok: &str) -> bool {
    if tok.starts_with('[') {
        return true;
    }
    let Some(t) = tok.strip_suffix(':') else { return false };
    !t.is_empty() && t.parse::<IpAddr>().is_err() && t.bytes().all(|c| c.is_ascii_graphic())
}

/// `s` split around the first `pat` (ASCII): what `str::split_once` does, without
/// building a substring searcher for each call — the parsers' patterns are a few bytes
/// and their lines short, and this runs several times for every line.
pub fn cut<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let (b, p) = (s.as_bytes(), pat.as_bytes());
    let first = *p.first()?;
    let mut from = 0;
    while from + p.len() <= b.len() {
        let i = from + b[from..].iter().position(|&c| c == first)?;
        if b[i..].starts_with(p) {
            // `pat` is ASCII: where it starts and ends are character boundaries.
            return Some((&s[..i], &s[i + p.len()..]));
        }
        from = i + 1;
    }
    None
}

/// Where `pat` (ASCII) first starts in `s`: `str::find` without a searcher.
pub fn find(s: &str, pat: &str) -> Option<usize> {
    cut(s, pat).map(|(head, _)| head.len())
}

/// `s` split around the last `pat` (ASCII): `str::rsplit_once` without a searcher.
pub fn rcut<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let (b, p) = (s.as_bytes(), pat.as_bytes());
    let first = *p.first()?;
    let mut end = b.len().checked_sub(p.len())? + 1;
    while end > 0 {
        let i = b[..end].iter().rposition(|&c| c == first)?;
        if b[i..].starts_with(p) {
            return Some((&s[..i], &s[i + p.len()..]));
        }
        end = i;
    }
    None
}

/// Parses `Mmm dd hh:mm:ss host program[pid]: message` or the RFC 3339 variant
/// (`2026-11-26T14:47:49.123456+01:00 host program[pid]: message`); the host may be
/// missing, the program may be bracketed (`[sshd]`), a BSD priority (`<auth.info>`) and
/// Solaris' message id (`[ID 800047 auth.info]`) are skipped.
pub fn syslog<'a>(line: &'a str, years: &YearInference) -> Option<SyslogLine<'a>> {
    let b = line.as_bytes();
    let (time, rest) = if let Some(x) = bsd_time(line, years) {
        x
    } else if b.len() > 20 && b[4] == b'-' && b[10] == b'T' {
        let sp = line.find(' ')?;
        let t = DateTime::parse_from_rfc3339(&line[..sp]).ok()?.with_timezone(&Utc);
        (t, &line[sp + 1..])
    } else {
        return None;
    };
    let mut rest = rest.trim_start_matches(' ');
    if rest.starts_with('<')
        && let Some((_, r)) = rest.split_once("> ")
    {
        rest = r;
    }
    // Byte scans: these run for every line, and `str`'s pattern machinery costs more than
    // the few bytes it looks at.
    let sp = rest.bytes().position(|c| c == b' ');
    let first = &rest[..sp.unwrap_or(rest.len())];
    let (host, rest) = if is_tag(first) { ("", rest) } else { (first, &rest[sp? + 1..]) };
    let bracketed = if host.is_empty() { rest.strip_prefix('[') } else { None };
    let (tag, message) = if let Some(inner) = bracketed {
        // `[sshd]: message` or `[sshd] message`
        let (tag, msg) = inner.split_once(']')?;
        (tag, msg.strip_prefix(':').unwrap_or(msg).strip_prefix(' ').unwrap_or(msg))
    } else {
        cut(rest, ": ").or_else(|| rest.strip_suffix(':').map(|t| (t, "")))?
    };
    let (program, pid) = match tag.bytes().position(|c| c == b'[') {
        Some(i) if tag.ends_with(']') => (&tag[..i], tag[i + 1..tag.len() - 1].parse().ok()),
        Some(i) => (&tag[..i], None),
        None => (tag, None),
    };
    if program.is_empty() || program.bytes().any(|c| c == b' ') {
        return None;
    }
    // Solaris: `[ID 800047 auth.info] Failed …`
    let message = match message.strip_prefix("[ID ") {
        Some(r) => cut(r, "] ").map(|(_, m)| m).unwrap_or(message),
        None => message,
    };
    Some(SyslogLine { time, host, program, pid, message })
}

/// The client of a log line: an address, or a host name (never resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    Ip(IpAddr),
    Name(String),
}

/// An address token as services write it: bracketed (`[1.2.3.4]`), with IPv4 mapped in
/// IPv6 (`::ffff:1.2.3.4`, kept as the IPv4 address), with an IPv6 zone (`fe80::1%eth0`,
/// the zone dropped), or followed by punctuation.
pub fn ip(token: &str) -> Option<IpAddr> {
    let t = token.trim_start_matches(['[', '(', '"', '\'']).trim_end_matches([']', ')', ',', ';', ':', '"', '\'', '.']);
    let t = t.strip_prefix("IPv6:").unwrap_or(t);
    let t = match t.split_once('%') {
        Some((addr, zone)) if addr.contains(':') && !zone.is_empty() => addr,
        _ => t,
    };
    t.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// An address or a host name (letters, digits, `-`, `.`, `_`, with at least one letter).
pub fn client(token: &str) -> Option<Client> {
    if let Some(a) = ip(token) {
        return Some(Client::Ip(a));
    }
    let t = token.trim_start_matches(['[', '(']).trim_end_matches([']', ')', ',', ';', ':', '.']);
    let ok = !t.is_empty()
        && t.len() <= 253
        && t.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        && t.bytes().any(|c| c.is_ascii_alphabetic());
    ok.then(|| Client::Name(t.to_ascii_lowercase()))
}

/// An authentication event of `kind` at `service` from a client.
pub fn event(kind: AuthEventKind, service: Service, from: Option<Client>, user: Option<&str>) -> AuthEvent {
    let (src_ip, src_name) = match from {
        Some(Client::Ip(a)) => (Some(a), None),
        Some(Client::Name(n)) => (None, Some(n)),
        None => (None, None),
    };
    AuthEvent {
        kind,
        src_ip,
        src_name,
        service,
        user: user.map(|u| u.to_string()),
        method: None,
        count: 1,
        target_user: None,
        command: None,
    }
}

/// `key=value` from a PAM-style message (`logname= uid=0 … rhost=1.2.3.4 user=root`): the
/// word that starts with the key, so `ruser=rhost=6.6.6.6` is not `rhost`.
pub fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split([' ', ';', ',']).find_map(|w| w.strip_prefix(key)).filter(|v| !v.is_empty())
}

/// What earlier lines of one connection (a program's pid on a host) said: its client,
/// and a failure logged without the client, waiting for a line that names it.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub client: Option<IpAddr>,
    /// Boxed: most connections never hold one, and this keeps the map's entries small.
    pub pending: Option<Box<AuthEvent>>,
    /// The last line's time: a pid seen again much later is another connection.
    pub last: Option<DateTime<Utc>>,
    /// The last line closed the connection.
    pub ended: bool,
}

impl Connection {
    /// Still going at `now`: not ended, and its last line not so long ago that the pid
    /// must have been reused (a connection not seen yet is going).
    fn live(&self, now: DateTime<Utc>) -> bool {
        !self.ended && self.last.is_none_or(|l| (now - l).num_seconds().abs() <= Connections::STALE_SECS)
    }
}

/// A hasher for `(host hash, pid)` keys: the parts are already well mixed or small
/// integers, and this runs for every line of a tracked program.
#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
}

/// FNV-1a of a host name (no allocation per line for the connection key).
fn host_hash(host: &str) -> u64 {
    host.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Connections by host and pid, at most [`Connections::MAX`]: when full, the stale and
/// ended ones are forgotten, and if that frees too little (a flood of connections), all
/// of them — the context of a few connections is lost, memory never grows.
#[derive(Debug, Default)]
pub struct Connections {
    map: std::collections::HashMap<(u64, u32), Connection, std::hash::BuildHasherDefault<KeyHasher>>,
}

impl Connections {
    pub const MAX: usize = 4096;

    /// How long a connection's lines may be apart (sshd's grace time is two minutes).
    pub const STALE_SECS: i64 = 600;

    /// The connection of `pid` on `host` at `now`: a new one when none is known, when
    /// the known one ended, or when its last line is too long ago (the pid was reused).
    pub fn at(&mut self, host: &str, pid: u32, now: DateTime<Utc>) -> &mut Connection {
        let key = (host_hash(host), pid);
        if self.map.len() >= Self::MAX && !self.map.contains_key(&key) {
            self.map.retain(|_, c| c.live(now));
            if self.map.len() >= Self::MAX * 3 / 4 {
                self.map.clear();
            }
        }
        let c = self.map.entry(key).or_default();
        if !c.live(now) {
            *c = Connection::default();
        }
        c.last = Some(now);
        c
    }

    /// The connection of `pid` on `host`, when one is known that is still going at `now`.
    pub fn peek(&self, host: &str, pid: u32, now: DateTime<Utc>) -> Option<&Connection> {
        self.map.get(&(host_hash(host), pid)).filter(|c| c.live(now))
    }

    /// Forgets a connection that ended.
    pub fn end(&mut self, host: &str, pid: u32) {
        self.map.remove(&(host_hash(host), pid));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn years(reference: &str) -> YearInference {
        YearInference::with_offset(reference.parse().unwrap(), FixedOffset::east_opt(0).unwrap())
    }

    #[test]
    fn cut_and_rcut_split_as_the_standard_library_does() {
        for (s, p) in [
            ("a: b: c", ": "),
            ("no match", ": "),
            ("", " from "),
            ("x from y from z", " from "),
            ("from", "from"),
            ("ffrom from", "from"),
            ("été : x", " : "),
            ("aaa", "aa"),
        ] {
            assert_eq!(cut(s, p), s.split_once(p), "{s:?} {p:?}");
            assert_eq!(rcut(s, p), s.rsplit_once(p), "{s:?} {p:?}");
        }
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

    #[test]
    fn header_variants_of_other_syslog_writers() {
        let y = years("2026-11-26T12:00:00Z");
        let at = |l: &str| {
            let s = syslog(l, &y).unwrap_or_else(|| panic!("{l}"));
            (s.host.to_string(), s.program.to_string(), s.pid, s.message.to_string())
        };
        let x = |h: &str, p: &str, pid: Option<u32>, m: &str| (h.to_string(), p.to_string(), pid, m.to_string());
        assert_eq!(at("Feb 7 16:01:07 nas sshd[5106]: User root"), x("nas", "sshd", Some(5106), "User root"));
        assert_eq!(at("Nov 23 21:50:19 sshd[8148]: Disconnecting: x"), x("", "sshd", Some(8148), "Disconnecting: x"));
        assert_eq!(at("Mar  3 00:17:22 [sshd]: User root from"), x("", "sshd", None, "User root from"));
        assert_eq!(at("Jun 25 23:53:34 [sshd] User root from"), x("", "sshd", None, "User root from"));
        assert_eq!(
            at("Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] Failed keyboard-interactive"),
            x("dusky", "sshd", Some(20878), "Failed keyboard-interactive")
        );
        assert_eq!(
            at("Nov 25 17:12:13 webmail pop(pam_unix)[4920]: a"),
            x("webmail", "pop(pam_unix)", Some(4920), "a")
        );
        assert_eq!(at("Jul 19 18:11:26 srv2 vsftpd: pam_unix: a"), x("srv2", "vsftpd", None, "pam_unix: a"));
        assert_eq!(
            at("Feb 21 09:21:54 xxx postfix/smtpd[14398]: NOQUEUE"),
            x("xxx", "postfix/smtpd", Some(14398), "NOQUEUE")
        );
        assert_eq!(at("Jan  2 01:18:41 <auth.info> host sshd[1]: m"), x("host", "sshd", Some(1), "m"));
        assert_eq!(at("Jan  2 01:18:41.123456 host sshd[1]: m"), x("host", "sshd", Some(1), "m"));
    }

    #[test]
    fn clients_are_addresses_or_names() {
        assert_eq!(ip("::ffff:1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(ip("[2001:db8::1]:"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(ip("[IPv6:2001:db8::1]"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(client("example.com"), Some(Client::Name("example.com".into())));
        // Not an address (leading zeros), not a name: no client rather than a wrong one.
        assert_eq!(client("192.030.0.6"), None);
        assert_eq!(client("-"), None);
        assert_eq!(field("ruser=rhost=1.2.3.4 rhost=192.0.43.10", "rhost="), Some("192.0.43.10"));
    }
}
