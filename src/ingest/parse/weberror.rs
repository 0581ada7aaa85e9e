//! Web servers' error logs: Apache's (`[time] [module:level] [pid …] [client addr:port]
//! AH…: message`, also through syslog) and nginx's (`yyyy/mm/dd hh:mm:ss [level]
//! pid#tid: *cid message, client: addr, server: …`) — authentication failures and
//! refusals (fail2ban's `apache-auth`, `apache-noscript`, `nginx-http-auth`,
//! `nginx-limit-req`), overlong or malformed requests (`apache-overflows`) and
//! shellshock attempts (`apache-shellshock`).
//!
//! Apache writes the client in its own bracket before the message, so a message that
//! quotes `[client …]` (a requested path) cannot frame anyone. nginx appends `, client:
//! addr, server: …` after a message that may quote the client's user name: a line with
//! more than one such part is ambiguous and names no client.

use chrono::{DateTime, Utc};

use super::{Client, YearInference, client, event, ip};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

fn e(kind: K, c: Option<Client>, user: Option<&str>) -> Option<AuthEvent> {
    Some(event(kind, Service::Web, Some(c?), user))
}

/// Apache's `[client addr:port]` (or `[client [v6]:port]`, or without a port).
fn apache_client(v: &str) -> Option<Client> {
    if let Some(a) = ip(v) {
        return Some(Client::Ip(a));
    }
    if let Some(r) = v.strip_prefix('[') {
        return ip(r.split(']').next()?).map(Client::Ip);
    }
    let (host, port) = v.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    client(host)
}

/// The bracketed header fields of an Apache error line (`[…] [error] [pid 1] [client
/// …]`), the client, and the message after them (and after an `AH01234: ` code).
pub fn apache_fields(s: &str) -> (Option<Client>, &str) {
    let mut rest = s.trim_start();
    let mut who = None;
    while let Some(r) = rest.strip_prefix('[') {
        // `[client [2001:db8::1]:443]` holds brackets of its own.
        let end = match r.strip_prefix("client [") {
            Some(v6) => v6.find(']').and_then(|close| {
                let more = v6[close + 1..].find(']')?;
                Some("client [".len() + close + 1 + more)
            }),
            None => r.find(']'),
        };
        let Some(end) = end else { break };
        let field = &r[..end];
        if let Some(v) = field.strip_prefix("client ") {
            who = apache_client(v);
        }
        rest = r[end + 1..].trim_start();
    }
    let msg = match rest.split_once(": ") {
        Some((code, m))
            if code.len() == 7 && code.starts_with("AH") && code[2..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            m
        }
        _ => rest,
    };
    (who, msg)
}

/// An Apache error message about the client: what kind of event it is, and its user.
fn apache_kind(msg: &str) -> Option<(K, Option<&str>)> {
    let m = msg.trim_end();
    let m = m.split_once(", referer: ").map(|(a, _)| a).unwrap_or(m);
    let m = m.strip_prefix("Digest: ").unwrap_or(m);
    if m.starts_with("client denied by server configuration")
        || m.starts_with("client used wrong authentication scheme")
    {
        return Some((K::Rejected, None));
    }
    if let Some(rest) = m.strip_prefix("user ") {
        // The user is the client's; the kind is in Apache's words after it.
        let (kind, user) = if let Some(r) = rest.strip_prefix('`') {
            let (u, w) = r.split_once("' in realm `")?;
            let kind = if w.contains("' denied by provider") {
                K::Refused
            } else if w.contains("' not found") {
                K::InvalidUser
            } else {
                return None;
            };
            (kind, u)
        } else if let Some((u, _)) = rest.split_once(": authentication failure for ") {
            (K::Failure, u)
        } else if let Some((u, _)) = rest.split_once(": password mismatch") {
            (K::Failure, u)
        } else if let Some((u, _)) = rest.split_once(": authorization failure for ") {
            (K::Refused, u)
        } else if let Some((u, _)) =
            rest.split_once(": nonce expired").or_else(|| rest.split_once(": one-time-nonce mismatch"))
        {
            (K::Failure, u)
        } else if let Some((u, _)) = rest.rsplit_once(" not found") {
            (K::InvalidUser, u)
        } else {
            return None;
        };
        return Some((kind, Some(user)));
    }
    if let Some(rest) = m.strip_prefix("Authorization of user ") {
        let (user, tail) = rest.split_once(" to access ")?;
        return tail.contains(" failed, reason: ").then_some((K::Refused, Some(user)));
    }
    let failure = ["invalid nonce ", "realm mismatch - got `", "unknown algorithm `", "invalid qop `"];
    if failure.iter().any(|f| m.starts_with(f)) {
        if m.starts_with("invalid nonce ") && m.contains("received - hash is not") {
            return None;
        }
        return Some((K::Failure, None));
    }
    // apache-noscript
    if m.starts_with("script '") && m.ends_with("' not found or unable to stat")
        || m.starts_with("attempt to invoke directory as script")
    {
        return Some((K::Rejected, None));
    }
    // apache-overflows
    let overflow = [
        "request failed: URI too long",
        "request failed: erroneous characters after protocol string",
        "request failed: error reading the headers",
        "Invalid URI in request",
        "Invalid method in request",
    ];
    if overflow.iter().any(|o| m.starts_with(o)) {
        return Some((K::Exploit, None));
    }
    // apache-shellshock: bash complaining about a function definition in a header.
    let sh = m.split_once(": warning: ").map(|(_, w)| w).unwrap_or(m);
    if sh.starts_with("HTTP_") && sh.contains(": ignoring function definition attempt")
        || m.starts_with("error importing function definition for `HTTP_")
        || m.contains(": error importing function definition for `HTTP_")
    {
        return Some((K::Exploit, None));
    }
    None
}

/// An Apache error message (its bracketed fields and message, from a file or syslog).
pub fn apache(fields: &str) -> Option<AuthEvent> {
    let (who, msg) = apache_fields(fields);
    let (kind, user) = apache_kind(msg)?;
    e(kind, who, user)
}

/// An Apache error log line: `[Www Mmm dd hh:mm:ss[.f] yyyy] …`; its time and the rest.
pub fn apache_line<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    let (time, rest) = super::stamp::ctime(line.strip_prefix('[')?, years)?;
    Some((time, rest.strip_prefix(']')?))
}

/// An nginx error message (after `[level] pid#tid: `).
pub fn nginx(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    let m = m.split_once(' ').filter(|(c, _)| c.starts_with('*')).map(|(_, r)| r).unwrap_or(m);
    let parts: Vec<usize> = m.match_indices(", client: ").map(|(i, _)| i).collect();
    let (body, who) = match parts.as_slice() {
        [i] => (&m[..*i], m[i + 10..].split(',').next().and_then(client)),
        [] => return None,
        [i, ..] => (&m[..*i], None),
    };
    let (kind, user) = if body.starts_with("no user/password was provided for basic authentication") {
        (K::Failure, None)
    } else if let Some(r) = body.strip_prefix("user \"") {
        let user = r.rsplit_once("\":").or_else(|| r.rsplit_once("\" was not found in")).map(|(u, _)| u);
        if body.ends_with("password mismatch") {
            (K::Failure, user)
        } else if body.contains("\" was not found in \"") {
            (K::InvalidUser, user)
        } else {
            return None;
        }
    } else if body.starts_with("limiting requests, excess: ") || body.starts_with("limiting connections by zone") {
        (K::Rejected, None)
    } else {
        return None;
    };
    e(kind, who, user)
}

/// An nginx error log line: `yyyy/mm/dd hh:mm:ss [level] pid#tid: message`.
pub fn nginx_line<'a>(line: &'a str, years: &YearInference) -> Option<(DateTime<Utc>, &'a str)> {
    if line.as_bytes().get(4) != Some(&b'/') {
        return None;
    }
    let (time, rest) = super::stamp::iso(line, years)?;
    let rest = rest.strip_prefix('[')?.split_once("] ")?.1;
    let (pid, msg) = rest.split_once(": ")?;
    pid.contains('#').then_some((time, msg))
}

#[cfg(test)]
mod tests;
