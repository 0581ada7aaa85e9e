//! Mail servers: postfix, dovecot, exim, courier and cyrus-imap — the lines fail2ban's
//! filters of the same names count by default, and their successful logins.
//!
//! Clients' user names, HELO names and commands are theirs to choose: an address is
//! taken only from the place the server writes it — `name[addr]` after postfix's
//! `from`, the last `rip=` of dovecot, exim's `[addr]` outside the HELO's parentheses,
//! courier's `ip=[…]` at the end of the line.

use super::{Client, client, event, ip};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

fn e(kind: K, c: Option<Client>, user: Option<&str>) -> Option<AuthEvent> {
    Some(event(kind, Service::Mail, Some(c?), user))
}

/// postfix's `name[addr]` (with an optional `:port`): the address in its brackets.
fn bracketed(token: &str) -> Option<Client> {
    let inner = token.split_once('[')?.1;
    let (addr, _) = inner.split_once(']')?;
    ip(addr).map(Client::Ip)
}

/// postfix (`postfix/smtpd`, `postfix/submission/smtpd`, …): SASL failures, the
/// `reject:`s fail2ban's default mode counts, pipelining and rate limits; a SASL login.
pub fn postfix(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    if let Some(rest) = m.strip_prefix("warning: ")
        && let Some((who, what)) = rest.split_once(": SASL ")
        && !who.contains(' ')
    {
        let failed = what.contains(" authentication failed")
            && !what.contains("Connection lost to authentication server")
            && !what.contains("Invalid authentication mechanism");
        return if failed { e(K::Failure, bracketed(who), None) } else { None };
    }
    if let Some(at) = m.find(" reject: ") {
        // `NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <…>: Relay access denied; …`
        let rest = &m[at + 9..];
        let (_cmd, rest) = rest.split_once(" from ")?;
        let (who, rest) = rest.split_once(": ")?;
        let code = rest.get(..3)?;
        // The server's reason (what follows, `; from=<…> to=<…> helo=<…>`, is the client's).
        let reason = rest.split_once("; from=").map(|(r, _)| r).unwrap_or(rest);
        const REASONS: [&str; 10] = [
            "Relay access denied",
            "User unknown",
            "Service unavailable",
            "Access denied",
            "Client host rejected",
            "need fully-qualified hostname",
            "Helo command rejected: Host not found",
            "Sender address rejected: Domain not found",
            "Undeliverable address",
            ": match ",
        ];
        let counted = matches!(code.as_bytes(), [b'4' | b'5', b'0' | b'5', b'0' | b'4'])
            && REASONS.iter().any(|r| reason.contains(r));
        return if counted { e(K::Rejected, bracketed(who), None) } else { None };
    }
    if let Some(rest) = m.strip_prefix("improper command pipelining after ") {
        let (_, who) = rest.split_once(" from ")?;
        return e(K::Rejected, bracketed(who.trim_end_matches(':')), None);
    }
    if let Some(at) = m.find(" rate limit exceeded: ") {
        let (_, who) = m[at..].split_once(" from ")?;
        return e(K::Rejected, bracketed(who.split(' ').next()?), None);
    }
    // `4F2…: client=name[addr], sasl_method=LOGIN, sasl_username=alice`
    if let Some(at) = m.find(": client=")
        && let Some(user) = super::field(m, "sasl_username=")
    {
        let who = m[at + 9..].split(',').next()?;
        return e(K::Success, bracketed(who), Some(user));
    }
    None
}

/// Dovecot's process and level prefixes (`imap-login: `, `auth-worker(default): `,
/// `Info: `…), however many.
fn dovecot_body(msg: &str) -> &str {
    let mut m = msg.trim();
    loop {
        let Some((head, rest)) = m.split_once(": ") else { return m };
        let word = head.split('(').next().unwrap_or(head);
        let known = matches!(word, "dovecot" | "auth" | "auth-worker" | "Info" | "Warning" | "Error" | "lmtp")
            || word.ends_with("-login")
            || word.starts_with("imap")
            || word.starts_with("pop3");
        if !known || head.contains(' ') {
            return m;
        }
        m = rest;
    }
}

/// `(user,addr[,session])` before `): `: the user may hold commas, the address is the
/// last part that is not a session id.
fn dovecot_paren(inner: &str) -> Option<(&str, Client)> {
    let mut parts = inner.rsplitn(3, ',');
    let last = parts.next()?;
    let (addr, user) = if last.starts_with('<') {
        let a = parts.next()?;
        (a, parts.next().unwrap_or(""))
    } else {
        (last, inner.rsplit_once(',').map(|(u, _)| u).unwrap_or(""))
    };
    Some((user, client(addr)?))
}

/// dovecot (its syslog lines and its own log): failed logins as its login processes
/// and auth workers report them, and a login that worked.
pub fn dovecot(msg: &str) -> Option<AuthEvent> {
    let m = dovecot_body(msg);
    if m.contains("authentication failure;") {
        return super::local::pam("dovecot", m).map(|ev| AuthEvent { service: Service::Mail, ..ev });
    }
    let rip = || m.rfind(" rip=").and_then(|i| client(m[i + 5..].split([',', ' ']).next()?));
    let user = || {
        let u = m.split_once("user=<")?.1;
        u.split_once(">, ").map(|(u, _)| u)
    };
    const FAILED: [&str; 4] =
        ["(auth failed, ", "(tried to use disabled ", "(tried to use disallowed ", "(proxy dest auth failed)"];
    const NO_AUTH: [&str; 3] = ["(no auth attempts", "(disconnected before auth was ready", "(client didn't finish "];
    let ended = ["Aborted login", "Login aborted", "Disconnected", "Remote closed connection", "Client has quit"]
        .iter()
        .any(|p| m.starts_with(p));
    if ended {
        // The reason is dovecot's, before the first `: user=`/`: method=`/`: rip=`.
        let end = [": user=", ": method=", ": rip="].iter().filter_map(|p| m.find(p)).min().unwrap_or(m.len());
        let head = &m[..end];
        if FAILED.iter().any(|f| head.contains(f)) {
            return e(K::Failure, rip(), user());
        }
        if NO_AUTH.iter().any(|f| head.contains(f)) {
            return e(K::PreauthClose, rip(), None);
        }
        return None;
    }
    if m.starts_with("Login: ") {
        return e(K::Success, rip(), user());
    }
    // `pam(user,addr): pam_authenticate() failed: …`, `passwd-file(user,addr): unknown user`
    let (head, tail) = m.rsplit_once("): ")?;
    let (module, inner) = head.split_once('(')?;
    if module.len() < 3 || module.len() > 15 || !module.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return None;
    }
    let tail_l = tail.to_ascii_lowercase();
    let kind = if tail_l.contains("unknown user") || tail_l.contains("user not known") {
        K::InvalidUser
    } else if tail_l.starts_with("pam_authenticate() failed")
        || tail_l.contains("password mismatch")
        || tail_l.contains("invalid credentials")
    {
        K::Failure
    } else {
        return None;
    };
    let (user, c) = dovecot_paren(inner)?;
    e(kind, Some(c), Some(user))
}

/// exim's host information: `[name ][(helo) ][addr][:port]` — the address in square
/// brackets that is not inside the client's HELO parentheses.
fn exim_host(s: &str) -> Option<Client> {
    let mut s = s.trim_start();
    if !s.starts_with('[') && !s.starts_with('(') {
        s = s.split_once(' ')?.1;
    }
    if s.starts_with('(') {
        s = s.split_once(") ")?.1;
    }
    let inner = s.strip_prefix('[')?;
    ip(inner.split(']').next()?).map(Client::Ip)
}

/// exim (its main log or syslog): authenticator failures and the rejections of
/// fail2ban's `exim` filter.
pub fn exim(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    // `[pid] ` and a message id (`1ahr79-0006jK-G9 `) may lead.
    let m = match m.strip_prefix('[') {
        Some(r) => r.split_once("] ").map(|(_, r)| r).unwrap_or(m),
        None => m,
    };
    if let Some(at) = m.find(" authenticator failed for ") {
        if !m.contains(": 535 ") {
            return None;
        }
        let user = m.rsplit_once("(set_id=").map(|(_, u)| u.trim_end_matches(')'));
        return e(K::Failure, exim_host(&m[at + 26..]), user);
    }
    let rejected = [
        "sender verify fail for ",
        "rejected RCPT ",
        "SMTP protocol synchronization error",
        "dropped: too many nonmail commands",
        "AUTH command used when not advertised",
        "no MAIL in SMTP connection from ",
        "closed by DROP in ACL",
    ];
    if !rejected.iter().any(|r| m.contains(r)) {
        return None;
    }
    if m.contains("rejected RCPT ")
        && !["relay not permitted", "Sender verify failed", "Unknown user", "Unrouteable address"]
            .iter()
            .any(|r| m.ends_with(r) || m.contains(&format!(": {r}")))
    {
        return None;
    }
    // The host: after ` H=`, or `connection from ` / `SMTP call from `.
    let host = m
        .match_indices(" H=")
        .map(|(i, _)| &m[i + 3..])
        .chain(m.strip_prefix("H="))
        .chain(["connection from ", "SMTP call from "].iter().filter_map(|a| m.split_once(a).map(|(_, r)| r)))
        .find_map(exim_host);
    e(K::Rejected, host, None)
}

/// courier: `LOGIN FAILED, user=…, ip=[addr]` (imapd, pop3d, courierlogin) and
/// courieresmtpd's `error,relay=addr,…` for failed AUTH and unknown users.
pub fn courier(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    if m.starts_with("LOGIN FAILED, ") {
        let (_, addr) = m.rsplit_once(", ip=[")?;
        let user = m.split_once("user=").and_then(|(_, u)| u.rsplit_once(", ip=[")).map(|(u, _)| u);
        return e(K::Failure, client(addr.strip_suffix(']')?), user);
    }
    if let Some(rest) = m.strip_prefix("LOGIN, user=") {
        let (user, tail) = rest.split_once(", ip=[")?;
        return e(K::Success, client(tail.split(']').next()?), Some(user));
    }
    let rest = m.strip_prefix("error,relay=")?;
    let (addr, tail) = rest.split_once(',')?;
    let kind = if tail.contains("535 Authentication failed") {
        K::Failure
    } else if tail.contains(": 550 User") && tail.contains("unknown") {
        K::Rejected
    } else {
        return None;
    };
    e(kind, client(addr), None)
}

/// cyrus-imap: `badlogin: name [addr] mech [user] SASL(-13): authentication failure: …`.
pub fn cyrus(msg: &str) -> Option<AuthEvent> {
    let rest = msg.trim_end().strip_prefix("badlogin: ")?;
    let mut words = rest.split(' ');
    let first = words.next()?;
    let addr = if first.starts_with('[') { first } else { words.next()? };
    if !rest.contains("SASL(-13)") && !rest.contains("authentication failure") {
        return None;
    }
    e(K::Failure, ip(addr).map(Client::Ip), None)
}

#[cfg(test)]
mod tests;
