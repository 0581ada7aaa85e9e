//! OpenSSH's and dropbear's messages: every failure variant fail2ban's `sshd` filter
//! counts (OpenSSH across versions and platforms), the pre-authentication probes of its
//! `ddos` and `aggressive` modes, and logins that worked.
//!
//! User names, client versions and key comments are attacker-supplied, so an address is
//! taken only where sshd itself wrote it: anchored on the fixed text that follows it
//! (` port N`, ` not allowed because`, the end of the line), never on a ` from ` the
//! client could have typed. A line that names no client (`Disconnecting: Too many
//! authentication failures`, `kex_exchange_identification: …`) takes it from the other
//! lines of the same connection (sshd's pid): the one before (`Connection from …`) or the
//! one that closes it (`Connection closed by …`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{Client, Connection, Connections, client, cut, event, field, rcut};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

/// sshd's optional prefixes (`error: `, `fatal: `, `error: PAM: `) and suffix (` [preauth]`).
fn strip(msg: &str) -> (&str, bool) {
    let mut m = msg.trim_end();
    for p in ["error: ", "fatal: "] {
        if let Some(r) = m.strip_prefix(p) {
            m = r.strip_prefix("PAM: ").unwrap_or(r);
            break;
        }
    }
    match m.strip_suffix("[preauth]") {
        Some(r) => (r.trim_end(), true),
        None => (m, false),
    }
}

/// `HOST[ port N][ on ADDR[ port M]][ sshN]` — the whole of `tail` must be this, so the
/// host is the one sshd wrote last; `None` when anything else follows.
fn host_then_port(tail: &str) -> Option<Client> {
    let mut words = tail.split(' ');
    let host = client(words.next()?)?;
    // At most eight words follow (no allocation: this runs for most sshd lines).
    let mut rest = [""; 8];
    let mut n = 0;
    for w in words {
        *rest.get_mut(n)? = w;
        n += 1;
    }
    let port = |n: &str| n.parse::<u16>().is_ok();
    let ok = match &rest[..n] {
        [] => true,
        ["port", n] => port(n),
        ["port", n, ssh] => port(n) && ssh.starts_with("ssh"),
        ["port", n, "on", _, "port", m] => port(n) && port(m),
        // OpenSSH 7.6+: `… on ADDR port N rdomain ""` (the routing domain, quoted).
        ["port", n, "on", _, "port", m, "rdomain", d] => {
            port(n) && port(m) && d.len() >= 2 && d.starts_with('"') && d.ends_with('"')
        }
        ["on", _] => true,
        ["on", _, "port", m] => port(m),
        _ => false,
    };
    ok.then_some(host)
}

/// The client and user of `… USER from HOST[ port N][ sshN]`, where the user may hold
/// anything (even ` from 1.2.3.4`): the host is after the last ` from ` whose tail is
/// only sshd's.
fn user_from(s: &str) -> Option<(&str, Client)> {
    let (user, host) = rcut(s, " from ")?;
    Some((user, host_then_port(host)?))
}

/// `Failed METHOD for [invalid user ]USER from HOST port N sshN[: INFO]`.
fn failed(rest: &str, conn: Option<&Connection>) -> Option<AuthEvent> {
    let (method, rest) = cut(rest, " for ")?;
    let (invalid, who) = match rest.strip_prefix("invalid user ").or_else(|| rest.strip_prefix("illegal user ")) {
        Some(r) => (true, r),
        None => (false, rest),
    };
    // An existing account: its name is one word, and sshd's text follows at once.
    if !invalid
        && let Some((user, tail)) = cut(who, " from ")
        && !user.contains(' ')
    {
        let host_part = cut(tail, ": ").map(|(h, _)| h).unwrap_or(tail);
        if let Some(c) = host_then_port(host_part) {
            // Several keys offered by an agent: not a failure until the connection
            // gives up (`Too many authentication failures`).
            let kind = if method == "publickey" { K::KeyRejected } else { K::Failure };
            let mut ev = event(kind, Service::Ssh, Some(c), Some(user));
            ev.method = Some(method.to_string());
            return Some(ev);
        }
    }
    // A name the client chose: each ` from HOST port N sshN` is a candidate; sshd's own
    // is followed by the end of the line or by `: INFO` without another ` from `. The
    // address this connection already showed wins.
    let mut candidates: Vec<(usize, Client)> = Vec::new();
    let mut at = 0;
    while let Some(i) = who[at..].find(" from ") {
        let start = at + i;
        let tail = &who[start + 6..];
        let (head, info) = match cut(tail, ": ") {
            Some((h, info)) => (h, Some(info)),
            None => (tail, None),
        };
        if let Some(c) = host_then_port(head)
            && info.is_none_or(|i| !i.contains(" from "))
        {
            candidates.push((start, c));
        }
        at = start + 6;
    }
    let known = conn.and_then(|c| c.client);
    let pick =
        candidates.iter().find(|(_, c)| known.is_some_and(|k| *c == Client::Ip(k))).or(candidates.first()).cloned()?;
    let user = &who[..pick.0];
    let mut ev = event(K::Failure, Service::Ssh, Some(pick.1), Some(user));
    ev.method = Some(method.to_string());
    Some(ev)
}

/// `(by|from) [authenticating user X |invalid user X ]HOST[ port N]`: the host is the last
/// word once the port is taken off (a user name can hold spaces); and the user.
fn closing(s: &str) -> (Option<Client>, Option<&str>) {
    let s = s.trim_end();
    let s = match rcut(s, " port ") {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => s,
    };
    let (head, host) = s.rsplit_once(' ').unwrap_or(("", s));
    let user = ["authenticating user", "invalid user"]
        .iter()
        .find_map(|u| head.strip_prefix(u).and_then(|r| r.strip_prefix(' ').or((r.is_empty()).then_some(r))));
    (client(host), user)
}

/// `Disconnecting (invalid|authenticating) user USER HOST port N: REASON`.
fn disconnecting<'a>(rest: &'a str, conn: Option<&Connection>) -> Option<(Client, K, &'a str)> {
    const REASONS: [(&str, K); 2] = [
        ("Too many authentication failures", K::MaxAttempts),
        ("Change of username or service not allowed", K::Refused),
    ];
    let mut found = Vec::new();
    for (i, _) in rest.match_indices(" port ") {
        let before = &rest[..i];
        let after = &rest[i + 6..];
        let Some((port, reason)) = cut(after, ": ") else { continue };
        let Some((_, kind)) = REASONS.iter().find(|(r, _)| reason.starts_with(r)) else { continue };
        let (user, host) = before.rsplit_once(' ').unwrap_or(("", before));
        if port.parse::<u16>().is_ok()
            && let Some(c) = client(host)
        {
            found.push((c, *kind, user));
        }
    }
    let known = conn.and_then(|c| c.client);
    let i = found.iter().position(|(c, _, _)| known.is_some_and(|k| *c == Client::Ip(k))).unwrap_or(0);
    (!found.is_empty()).then(|| found.swap_remove(i))
}

/// One sshd message of process `pid` on `host`, with what its connection's earlier lines
/// said. Session lines (`pam_unix(sshd:session)`) say nothing about a client, and a line
/// that stands alone (a login, or a close, of a connection nothing is known about) needs
/// no entry: most of a busy server's sshd lines never touch the connection table.
pub fn parse_in(
    msg: &str,
    conns: &mut Connections,
    host: &str,
    pid: Option<u32>,
    now: DateTime<Utc>,
) -> Option<AuthEvent> {
    if msg.starts_with("pam_unix(sshd:session)") || msg.starts_with("pam_systemd(sshd:session)") {
        return None;
    }
    if let Some((n, inner)) = repeated(msg) {
        let mut ev = parse_in(inner, conns, host, pid, now)?;
        ev.count = n;
        return Some(ev);
    }
    let Some(pid) = pid else { return parse(msg, None) };
    let (m, preauth) = strip(msg);
    let known = conns.peek(host, pid, now);
    let own = recognise(m, preauth, known)?;
    let named = |ev: &AuthEvent| ev.src_ip.is_some() || ev.src_name.is_some();
    let alone = known.is_none()
        && match &own.event {
            Some(ev) => named(ev) && (ev.kind == K::Success || own.ends),
            None => own.ends,
        };
    if alone {
        return own.event;
    }
    let c = conns.at(host, pid, now);
    let out = apply(own, c);
    if c.ended {
        conns.end(host, pid);
    }
    out
}

/// rsyslog's de-duplication: `message repeated 3 times: [ Failed password for ...]`.
fn repeated(msg: &str) -> Option<(u32, &str)> {
    let rest = msg.strip_prefix("message repeated ")?;
    let (n, inner) = cut(rest, " times: [ ")?;
    let n: u32 = n.parse().ok()?;
    Some((n.clamp(1, 10_000), inner.strip_suffix(']').unwrap_or(inner)))
}

/// One sshd message; `conn` is what the connection's earlier lines said (updated here,
/// and marked ended when the message closes it).
pub fn parse(msg: &str, conn: Option<&mut Connection>) -> Option<AuthEvent> {
    if let Some((n, inner)) = repeated(msg) {
        let mut ev = parse(inner, conn)?;
        ev.count = n;
        return Some(ev);
    }
    let (m, preauth) = strip(msg);
    let own = recognise(m, preauth, conn.as_deref())?;
    match conn {
        Some(c) => apply(own, c),
        None => own.event,
    }
}

/// What a message means given its connection's earlier lines, and what the connection
/// remembers of it.
fn apply(own: Recognised, c: &mut Connection) -> Option<AuthEvent> {
    if let Some(ip) = own.client {
        c.client = Some(ip);
    }
    c.ended |= own.ends;
    match own.event {
        // A failure without a client: waits for the line that names it.
        Some(ev) if ev.src_ip.is_none() && ev.src_name.is_none() => match c.client {
            Some(ip) => Some(AuthEvent { src_ip: Some(ip), ..ev }),
            None => {
                c.pending = Some(Box::new(ev));
                None
            }
        },
        Some(ev) => match c.pending.take() {
            // A login that worked forgets what its connection failed before it.
            Some(_) if ev.kind == K::Success => Some(ev),
            Some(p) if ev.kind.is_failure() || ev.kind == K::NoIdentification => {
                Some(AuthEvent { count: ev.count + p.count, ..ev })
            }
            // The line that closes the connection carries the failure it waited for.
            Some(p) => Some(AuthEvent { src_ip: ev.src_ip, src_name: ev.src_name, ..*p }),
            None => Some(ev),
        },
        None => match (c.pending.take(), c.client) {
            (Some(p), Some(ip)) => Some(AuthEvent { src_ip: Some(ip), ..*p }),
            (p, _) => {
                c.pending = p;
                None
            }
        },
    }
}

/// What one message says: an event, the connection's client if it names one, and
/// whether the connection ended.
struct Recognised {
    event: Option<AuthEvent>,
    client: Option<IpAddr>,
    ends: bool,
}

fn with(ev: AuthEvent) -> Option<Recognised> {
    let client = ev.src_ip;
    Some(Recognised { event: Some(ev), client, ends: false })
}

fn only_client(c: Option<Client>) -> Option<Recognised> {
    let client = match c? {
        Client::Ip(a) => Some(a),
        Client::Name(_) => None,
    };
    Some(Recognised { event: None, client, ends: false })
}

fn without_client(ev: AuthEvent) -> Option<Recognised> {
    Some(Recognised { event: Some(ev), client: None, ends: false })
}

fn e(kind: K, c: Option<Client>, user: Option<&str>) -> AuthEvent {
    event(kind, Service::Ssh, c, user)
}

fn recognise(m: &str, preauth: bool, conn: Option<&Connection>) -> Option<Recognised> {
    // The closes of a busy server's connections, most of its sshd lines: no prefix
    // below starts like them.
    if m.starts_with("Connection ") || m.starts_with("Disconnected from ") {
        return probe(m, preauth);
    }
    if let Some(rest) = m.strip_prefix("Received disconnect from ") {
        return received_disconnect(rest, preauth);
    }
    if let Some(rest) = m.strip_prefix("Failed ") {
        return with(failed(rest, conn)?);
    }
    if let Some(rest) = m.strip_prefix("Accepted ") {
        let (method, rest) = cut(rest, " for ")?;
        let (user, tail) = cut(rest, " from ")?;
        let c = host_then_port(cut(tail, ": ").map(|(h, _)| h).unwrap_or(tail))?;
        let mut ev = e(K::Success, Some(c), Some(user));
        ev.method = Some(method.to_string());
        return with(ev);
    }
    for p in ["Invalid user ", "invalid user ", "Illegal user ", "illegal user "] {
        if let Some(rest) = m.strip_prefix(p) {
            // `Invalid user  from 1.2.3.4` (an empty name) has the ` from ` right away.
            let (user, c) = user_from(&format!(" {rest}")).map(|(u, c)| (u.trim_start().to_string(), c))?;
            return with(e(K::InvalidUser, Some(c), Some(&user)));
        }
    }
    if let Some(rest) = m.strip_prefix("User ")
        && let Some((head, reason)) = rcut(rest, " not allowed because ")
    {
        if reason == "account is locked" {
            // A real account (one word); no client on the line.
            return without_client(e(K::Refused, None, Some(head)));
        }
        let (user, c) = user_from(head)?;
        return with(e(K::Refused, Some(c), Some(user)));
    }
    if let Some(rest) = m.strip_prefix("ROOT LOGIN REFUSED") {
        let i = rest.rfind(" FROM ")?;
        return with(e(K::Refused, Some(host_then_port(&rest[i + 6..])?), Some("root")));
    }
    if let Some(rest) = m.strip_prefix("refused connect from ") {
        // TCP wrappers: `refused connect from NAME (ADDR)`.
        let inside = rest.rsplit_once('(')?.1.strip_suffix(')')?;
        return with(e(K::Refused, Some(client(inside)?), None));
    }
    if let Some(rest) = m.strip_prefix("maximum authentication attempts exceeded for ") {
        let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
        let (user, c) = user_from(rest)?;
        return with(e(K::MaxAttempts, Some(c), Some(user)));
    }
    if let Some(rest) = m.strip_prefix("Disconnecting: Too many authentication failures") {
        let user = rest.strip_prefix(" for ").filter(|u| !u.contains(' '));
        return without_client(e(K::MaxAttempts, None, user));
    }
    for p in ["Disconnecting invalid user ", "Disconnecting authenticating user "] {
        if let Some(rest) = m.strip_prefix(p) {
            let (c, kind, user) = disconnecting(rest, conn)?;
            return with(e(kind, Some(c), Some(user)));
        }
    }
    probe(m, preauth)
}

/// `Received disconnect from HOST[ port N]:CODE: TEXT`: a client's `Auth fail` (code 3)
/// is a failure; a pre-auth disconnect a close; anything else only ends the connection.
fn received_disconnect(rest: &str, preauth: bool) -> Option<Recognised> {
    // IPv6 addresses hold colons: the host is a word.
    let (host, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (host, rest) = match host.strip_suffix(':') {
        Some(h) => (h, rest),
        None if rest.starts_with("port ") => (host, rest.split_once(':').map(|(_, r)| r).unwrap_or("")),
        None => (host, rest),
    };
    let c = client(host);
    let (code, text) = rest.trim_start().split_once(':').unwrap_or((rest, ""));
    let kind = match code.trim() {
        "3" if text.trim_end().ends_with("Auth fail") => K::Failure,
        "14" if text.contains("authentication methods available") => K::PreauthClose,
        "11" if preauth => K::PreauthClose,
        _ => return only_client(c).map(|r| Recognised { ends: true, ..r }),
    };
    with(e(kind, c, None)).map(|r| Recognised { ends: true, ..r })
}

/// Connections that end before authenticating, probes that never identify, and the
/// PAM-style failure lines.
fn probe(m: &str, preauth: bool) -> Option<Recognised> {
    for (p, kind) in [
        ("Connection closed by ", K::PreauthClose),
        ("Connection reset by ", K::PreauthClose),
        ("Disconnected from ", K::PreauthClose),
    ] {
        if let Some(rest) = m.strip_prefix(p) {
            let (c, user) = closing(rest);
            let mut r = if preauth { with(e(kind, c, user))? } else { only_client(c)? };
            r.ends = true;
            return Some(r);
        }
    }
    if let Some(rest) = m.strip_prefix("Did not receive identification string from ") {
        return with(e(K::NoIdentification, Some(host_then_port(rest)?), None));
    }
    if let Some(rest) = m.strip_prefix("Timeout before authentication for ") {
        let rest = rest.strip_prefix("connection from ").unwrap_or(rest);
        return with(e(K::NoIdentification, Some(host_then_port(rest)?), None));
    }
    if let Some(rest) = m.strip_prefix("Bad protocol version identification ") {
        // The identification is the client's: the host is after the last ` from `.
        let i = rest.rfind(" from ")?;
        return with(e(K::NoIdentification, Some(host_then_port(&rest[i + 6..])?), None));
    }
    for p in ["banner exchange: Connection from ", "ssh_dispatch_run_fatal: Connection from "] {
        if let Some(rest) = m.strip_prefix(p) {
            let (head, _) = cut(rest, ": ")?;
            return with(e(K::NoIdentification, Some(host_then_port(head)?), None));
        }
    }
    if m.starts_with("kex_exchange_identification: ") || m.starts_with("Read from socket failed: Connection reset") {
        return without_client(e(K::NoIdentification, None, None));
    }
    if let Some(rest) = m.strip_prefix("Unable to negotiate with ") {
        let (head, _) = cut(rest, ": ")?;
        return with(e(K::PreauthClose, Some(host_then_port(head)?), None));
    }
    if m.starts_with("Unable to negotiate a ") || m.starts_with("no matching ") && m.contains(" found") {
        return without_client(e(K::PreauthClose, None, None));
    }
    if let Some(rest) = m.strip_prefix("Connection from ") {
        return only_client(host_then_port(rest));
    }
    if let Some(rest) = m.strip_prefix("SSH: Server;Ltype: ") {
        // `…;Remote: 127.0.0.1-1780;…`
        let remote = rest.split(';').find_map(|p| p.strip_prefix("Remote: "))?;
        return only_client(client(remote.rsplit_once('-')?.0));
    }
    if let Some(rest) = m.strip_prefix("User not known to the underlying authentication module for ") {
        let rest = rest.strip_prefix("illegal user ").unwrap_or(rest);
        let (user, c) = user_from(rest)?;
        return with(e(K::InvalidUser, Some(c), Some(user)));
    }
    if let Some(rest) = m.strip_prefix(['A', 'a']) {
        for p in ["uthentication failure for ", "uthentication error for ", "uthentication failed for "] {
            if let Some(rest) = rest.strip_prefix(p) {
                return pam_style(rest);
            }
        }
    }
    if (m.starts_with("pam_") || m.starts_with("(pam_unix)")) && m.contains("authentication failure;") {
        // The same failure as sshd's own `Failed password` line: not counted again.
        let c = field(m, "rhost=").and_then(client);
        let user = field(m, "user=").or_else(|| field(m, "ruser="));
        return without_client(e(K::PamFailure, c, user));
    }
    None
}

/// FreeBSD/macOS PAM: `USER from HOST[ via ADDR]`.
fn pam_style(rest: &str) -> Option<Recognised> {
    let rest = match rcut(rest, " via ") {
        Some((h, via)) if !via.contains(' ') => h,
        _ => rest,
    };
    let (user, c) = user_from(rest)?;
    with(e(K::Failure, Some(c), Some(user)))
}

/// dropbear: `Bad password attempt for 'USER' from HOST:PORT`, `Login attempt for
/// nonexistent user[ 'USER'] from HOST:PORT`, `Exit before auth (…): Max auth tries
/// reached - user 'USER' from HOST:PORT`, and `… auth succeeded for 'USER' from …`.
pub fn dropbear(msg: &str) -> Option<AuthEvent> {
    // Some journals repeat the pid and time: `[825] Jul 10 23:53:52 Bad password …`.
    let mut m = msg.trim_end();
    if m.starts_with('[')
        && let Some((_, r)) = cut(m, "] ")
    {
        m = r;
        if r.len() > 16 && r.as_bytes()[3] == b' ' && r.as_bytes().get(15) == Some(&b' ') {
            m = &r[16..];
        }
    }
    let lower = m.to_ascii_lowercase();
    let kind = if lower.starts_with("bad password attempt for ") {
        K::Failure
    } else if lower.starts_with("login attempt for nonexistent user") {
        K::InvalidUser
    } else if lower.starts_with("exit before auth") && lower.contains("max auth tries reached") {
        K::MaxAttempts
    } else if lower.starts_with("password auth succeeded for ") || lower.starts_with("pubkey auth succeeded for ") {
        K::Success
    } else {
        return None;
    };
    // The host is the last word: `HOST:PORT`.
    let last = m.rsplit(' ').next()?;
    let host = last.rsplit_once(':').map(|(h, _)| h).unwrap_or(last);
    let c = client(host)?;
    let user = m.split('\'').nth(1).filter(|_| m.matches('\'').count() >= 2);
    Some(event(kind, Service::Ssh, Some(c), user))
}

#[cfg(test)]
mod tests;
