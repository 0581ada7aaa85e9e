//! Web server access logs: the NCSA common and combined formats written by Apache and
//! nginx (`client ident user [time] "request" status bytes "referer" "user-agent"`).
//!
//! The request line, referer and user agent are client-controlled: quoted strings are
//! read with their `\"` escapes, and nothing is interpreted beyond splitting.

use super::Unparsed;
use chrono::{DateTime, Utc};

use crate::messages::{Event, WebRequest};

/// Reads a quoted string starting after its opening quote; returns it and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    if n != '"' && n != '\\' {
                        out.push('\\');
                    }
                    out.push(n);
                }
            }
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Parses one access-log line into an event; hands the line back if it is not one.
pub fn parse_line(line: String) -> Result<Event, Unparsed> {
    match parse(&line) {
        Some((time, web)) => Ok(Event {
            time,
            host: String::new(),
            program: httpd(),
            auth: None,
            web: Some(Box::new(web)),
            fields: None,
            raw: line,
            message_at: 0,
            offset: None,
            file: None,
        }),
        None => Err(Unparsed(line)),
    }
}

fn parse(line: &str) -> Option<(DateTime<Utc>, WebRequest)> {
    // Some exports wrap each line in one more pair of quotes.
    let line = match line.strip_prefix('"') {
        Some(inner) if inner.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[' || c == ':') => {
            inner.strip_suffix('"').unwrap_or(inner)
        }
        _ => line,
    };
    let (client, rest) = line.split_once(' ')?;
    let (_ident, rest) = rest.split_once(' ')?;
    let (user, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (ts, rest) = rest.split_once("] ")?;
    let time = DateTime::parse_from_str(ts, "%d/%b/%Y:%H:%M:%S %z").ok()?.with_timezone(&Utc);
    let (request, rest) = quoted(rest.strip_prefix('"')?)?;
    let mut nums = rest.trim_start().splitn(3, ' ');
    let status: u16 = nums.next()?.parse().ok()?;
    let bytes: u64 = nums.next().and_then(|b| b.parse().ok()).unwrap_or(0);
    let tail = nums.next().unwrap_or("").trim_start();
    let (referer, user_agent) = match tail.strip_prefix('"').and_then(quoted) {
        Some((referer, rest)) => {
            let ua = rest.trim_start().strip_prefix('"').and_then(quoted).map(|(u, _)| u).unwrap_or_default();
            (referer, ua)
        }
        None => (String::new(), String::new()),
    };
    // `METHOD TARGET PROTOCOL`; a malformed request keeps what it has.
    let (method, target, protocol) = match request.splitn(3, ' ').collect::<Vec<_>>().as_slice() {
        [m, t, p] => (m.to_string(), t.to_string(), p.to_string()),
        [m, t] => (m.to_string(), t.to_string(), String::new()),
        _ => (String::new(), request.clone(), String::new()),
    };
    let (uri_stem, uri_query) = match target.split_once('?') {
        Some((s, q)) => (s.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let none = |s: &str| (s != "-").then(|| s.to_string());
    Some((
        time,
        WebRequest {
            client: client.to_string(),
            user: none(user),
            method,
            uri_stem,
            uri_query,
            protocol,
            status,
            bytes,
            referer: none(&referer).unwrap_or_default(),
            user_agent: none(&user_agent).unwrap_or_default(),
        },
    ))
}

/// The program of every access-log event: one name shared by all of them.
fn httpd() -> std::sync::Arc<str> {
    static HTTPD: std::sync::LazyLock<std::sync::Arc<str>> = std::sync::LazyLock::new(|| "httpd".into());
    HTTPD.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_format() {
        let l = r#"203.0.113.5 - bob [10/Oct/2026:13:55:36 -0700] "GET /search.php?q=1%27%20OR%201=1 HTTP/1.1" 200 2326 "http://x/" "sqlmap/1.7 (\"quoted\")""#;
        let ev = parse_line(l.to_string()).unwrap();
        let w = ev.web.as_ref().unwrap();
        assert_eq!(ev.time.to_rfc3339(), "2026-10-10T20:55:36+00:00");
        assert_eq!((w.client.as_str(), w.user.as_deref(), w.method.as_str()), ("203.0.113.5", Some("bob"), "GET"));
        assert_eq!((w.uri_stem.as_str(), w.uri_query.as_str()), ("/search.php", "q=1%27%20OR%201=1"));
        assert_eq!((w.status, w.bytes), (200, 2326));
        assert_eq!(w.user_agent, r#"sqlmap/1.7 ("quoted")"#);
        assert_eq!(ev.src_ip().map(|i| i.to_string()).as_deref(), Some("203.0.113.5"));
    }

    #[test]
    fn common_format_wrapped_lines_and_garbage() {
        let ev = parse_line(r#"::1 - - [10/Oct/2026:13:55:36 +0000] "HEAD / HTTP/1.0" 404 -"#.into()).unwrap();
        assert_eq!(ev.web.as_ref().unwrap().status, 404);
        let wrapped = r#""192.168.4.25 - - [22/Dec/2016:16:30:52 +0300] "POST /a HTTP/1.1" 303 382 "-" "UA"""#;
        assert_eq!(parse_line(wrapped.into()).unwrap().web.unwrap().method, "POST");
        assert!(parse_line("not a log line".into()).is_err());
        assert!(parse_line(r#"1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1"#.into()).is_err());
    }
}
