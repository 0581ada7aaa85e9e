//! sshd and PAM lines of a syslog `auth.log`.
//!
//! Everything after the syslog header is written by sshd from attacker-supplied data
//! (user names, client versions). Fields are therefore located from the end of the
//! message: the source address is taken from the *last* ` from ` so that a user name
//! such as `x from 10.0.0.1 port 22` cannot frame another address.

use super::Unparsed;
use std::net::IpAddr;

use super::{YearInference, syslog};
use crate::messages::{AuthEvent, AuthEventKind, Event};

/// Parses one line into an event. `Err` hands the line back when its syslog header
/// cannot be parsed.
pub fn parse_line(line: String, years: &mut YearInference) -> Result<Event, Unparsed> {
    let Some(s) = syslog(&line, years) else { return Err(Unparsed(line)) };
    let auth = match s.program {
        "sshd" | "sshd-session" | "sshd-auth" => parse_sshd(s.message),
        "sudo" => parse_sudo(s.message),
        "su" => parse_su(s.message),
        "useradd" | "groupadd" | "usermod" | "passwd" | "chpasswd" | "chage" => parse_accounts(s.message),
        "systemd-logind" => parse_logind(s.message),
        _ => None,
    };
    let (time, host, program) = (s.time, s.host.to_string(), s.program.to_string());
    let message_at = line.len() - s.message.len();
    Ok(Event { time, host, program, auth, web: None, json: None, raw: line, message_at, offset: None })
}

fn ip(token: &str) -> Option<IpAddr> {
    let t = token.trim_start_matches('[').trim_end_matches([']', ',', ';', ':']);
    t.parse().ok()
}

/// The address after the last ` from ` (or `rhost=`), and what precedes it.
fn from_addr(msg: &str) -> Option<(&str, IpAddr)> {
    let i = msg.rfind(" from ")?;
    let addr = msg[i + 6..].split(' ').next()?;
    Some((&msg[..i], ip(addr)?))
}

fn event(kind: AuthEventKind, src_ip: Option<IpAddr>, user: Option<&str>, method: Option<&str>) -> AuthEvent {
    AuthEvent {
        kind,
        src_ip,
        user: user.map(|u| u.to_string()),
        method: method.map(|m| m.to_string()),
        count: 1,
        target_user: None,
        command: None,
    }
}

fn with_target(mut ev: AuthEvent, target: Option<&str>, command: Option<&str>) -> AuthEvent {
    ev.target_user = target.map(|t| t.to_string());
    ev.command = command.map(|c| c.to_string());
    ev
}

/// `key=value` from a PAM message (`logname=alice uid=1000 … user=root`).
fn pam_field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split([' ', ';']).find_map(|w| w.strip_prefix(key)).filter(|v| !v.is_empty())
}

/// sudo: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash`, its failure
/// forms (`3 incorrect password attempts`, `user NOT in sudoers`, `command not allowed`)
/// and PAM's `pam_unix(sudo:auth): authentication failure`. The command is last on the
/// line, so everything after `COMMAND=` is taken as it is.
pub fn parse_sudo(msg: &str) -> Option<AuthEvent> {
    if msg.starts_with("pam_unix(sudo:auth): authentication failure") {
        let user = pam_field(msg, "ruser=").or_else(|| pam_field(msg, "logname="));
        return Some(with_target(event(AuthEventKind::SudoFailure, None, user, None), pam_field(msg, "user="), None));
    }
    let (user, rest) = msg.trim_start().split_once(" : ")?;
    let field = |k: &str| rest.split(" ; ").find_map(|p| p.trim().strip_prefix(k));
    let command = rest.split_once("COMMAND=").map(|(_, c)| c.trim_end());
    let target = field("USER=");
    let failed = rest.contains("incorrect password attempt")
        || rest.contains("NOT in sudoers")
        || rest.contains("command not allowed");
    let kind = if failed {
        AuthEventKind::SudoFailure
    } else if command.is_some() {
        AuthEventKind::SudoCommand
    } else {
        return None;
    };
    Some(with_target(event(kind, None, Some(user.trim()), None), target, command))
}

/// su: `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`, and PAM's
/// authentication failure.
pub fn parse_su(msg: &str) -> Option<AuthEvent> {
    let to = |s: &str| -> Option<(String, String)> {
        let rest = s.strip_prefix("(to ")?;
        let (target, rest) = rest.split_once(") ")?;
        let user = rest.split(' ').next()?;
        Some((target.to_string(), user.to_string()))
    };
    if let Some(rest) = msg.strip_prefix("FAILED SU ") {
        let (target, user) = to(rest)?;
        return Some(with_target(event(AuthEventKind::SuFailure, None, Some(&user), None), Some(&target), None));
    }
    if let Some((target, user)) = to(msg) {
        return Some(with_target(event(AuthEventKind::SuSession, None, Some(&user), None), Some(&target), None));
    }
    if msg.starts_with("pam_unix(su:auth): authentication failure")
        || msg.starts_with("pam_unix(su-l:auth): authentication failure")
    {
        let user = pam_field(msg, "ruser=").or_else(|| pam_field(msg, "logname="));
        return Some(with_target(event(AuthEventKind::SuFailure, None, user, None), pam_field(msg, "user="), None));
    }
    None
}

/// Account changes: useradd's `new user: name=x, UID=…`, groupadd's `new group: name=x`,
/// usermod's `add 'bob' to group 'sudo'` / `change user 'bob' …`, and password changes.
pub fn parse_accounts(msg: &str) -> Option<AuthEvent> {
    let name = |s: &str| s.split_once("name=").map(|(_, r)| r.split(',').next().unwrap_or("").trim().to_string());
    if let Some(rest) = msg.strip_prefix("new user: ") {
        let n = name(rest)?;
        return Some(with_target(event(AuthEventKind::UserAdded, None, None, None), Some(&n), None));
    }
    if let Some(rest) = msg.strip_prefix("new group: ") {
        let n = name(rest)?;
        return Some(with_target(event(AuthEventKind::GroupAdded, None, None, None), Some(&n), None));
    }
    if msg.starts_with("add '") || msg.starts_with("change user '") || msg.starts_with("lock user '") {
        let target = msg.split('\'').nth(1)?;
        return Some(with_target(event(AuthEventKind::UserModified, None, None, None), Some(target), Some(msg)));
    }
    if let Some((_, rest)) = msg.split_once("password changed for ") {
        let target = rest.split_whitespace().next()?;
        return Some(with_target(event(AuthEventKind::PasswordChanged, None, None, None), Some(target), None));
    }
    None
}

/// systemd-logind: `New session 12 of user alice.`
pub fn parse_logind(msg: &str) -> Option<AuthEvent> {
    let rest = msg.strip_prefix("New session ")?;
    let (id, rest) = rest.split_once(" of user ")?;
    let user = rest.trim_end_matches('.');
    Some(with_target(event(AuthEventKind::SessionOpened, None, Some(user), None), None, Some(id)))
}

/// Parses an sshd message.
pub fn parse_sshd(msg: &str) -> Option<AuthEvent> {
    // rsyslog's de-duplication: `message repeated 3 times: [ Failed password for ...]`.
    if let Some(rest) = msg.strip_prefix("message repeated ") {
        let (n, inner) = rest.split_once(" times: [ ")?;
        let n: u32 = n.parse().ok()?;
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        let mut ev = parse_sshd(inner)?;
        ev.count = n.clamp(1, 10_000);
        return Some(ev);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (who, addr) = from_addr(rest)?;
        let user = who.strip_prefix("invalid user ").unwrap_or(who);
        return Some(event(AuthEventKind::Failure, Some(addr), Some(user), Some(method)));
    }
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (user, addr) = from_addr(rest)?;
        return Some(event(AuthEventKind::Success, Some(addr), Some(user), Some(method)));
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        let (user, addr) = from_addr(&format!(" {rest}")).map(|(u, a)| (u.trim_start().to_string(), a))?;
        return Some(event(AuthEventKind::InvalidUser, Some(addr), Some(&user), None));
    }
    if let Some(rest) = msg.strip_prefix("Did not receive identification string from ") {
        return Some(event(AuthEventKind::NoIdentification, ip(rest.split(' ').next()?), None, None));
    }
    if let Some(rest) = msg.strip_prefix("error: maximum authentication attempts exceeded for ") {
        let (who, addr) = from_addr(rest)?;
        let user = who.strip_prefix("invalid user ").unwrap_or(who);
        return Some(event(AuthEventKind::MaxAttempts, Some(addr), Some(user), None));
    }
    if msg.starts_with("Disconnecting ") && msg.contains("Too many authentication failures") {
        // `Disconnecting authenticating user root 1.2.3.4 port 22: Too many ...`
        let head = msg.split(" port ").next()?;
        let mut words = head.rsplit(' ');
        let addr = ip(words.next()?)?;
        let user = words.next();
        return Some(event(AuthEventKind::MaxAttempts, Some(addr), user, None));
    }
    if msg.starts_with("pam_unix(") && msg.contains("): authentication failure;") {
        let addr = msg.split(' ').find_map(|w| w.strip_prefix("rhost=")).and_then(ip);
        let user = msg.split(' ').find_map(|w| w.strip_prefix("user="));
        return Some(event(AuthEventKind::PamFailure, addr, user, None));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthEventKind::*;

    fn p(msg: &str) -> Option<(AuthEventKind, Option<String>, Option<String>, u32)> {
        parse_sshd(msg).map(|e| (e.kind, e.src_ip.map(|i| i.to_string()), e.user, e.count))
    }

    fn some(
        k: AuthEventKind,
        ip: &str,
        user: Option<&str>,
    ) -> Option<(AuthEventKind, Option<String>, Option<String>, u32)> {
        Some((k, Some(ip.to_string()), user.map(|u| u.to_string()), 1))
    }

    #[test]
    fn sshd_messages() {
        assert_eq!(p("Failed password for root from 1.2.3.4 port 22 ssh2"), some(Failure, "1.2.3.4", Some("root")));
        assert_eq!(
            p("Failed password for invalid user admin from 2001:db8::1 port 22 ssh2"),
            some(Failure, "2001:db8::1", Some("admin"))
        );
        assert_eq!(p("Failed none for invalid user x from 5.6.7.8 port 1 ssh2"), some(Failure, "5.6.7.8", Some("x")));
        assert_eq!(
            p("Accepted publickey for bob from 10.1.2.3 port 5 ssh2: RSA SHA256:abc"),
            some(Success, "10.1.2.3", Some("bob"))
        );
        assert_eq!(
            p("Invalid user webmaster from 173.234.31.186"),
            some(InvalidUser, "173.234.31.186", Some("webmaster"))
        );
        assert_eq!(p("Invalid user a from 1.1.1.1 port 40"), some(InvalidUser, "1.1.1.1", Some("a")));
        assert_eq!(
            p("Did not receive identification string from 9.9.9.9 port 3"),
            some(NoIdentification, "9.9.9.9", None)
        );
        assert_eq!(
            p("error: maximum authentication attempts exceeded for invalid user z from 4.4.4.4 port 2 ssh2 [preauth]"),
            some(MaxAttempts, "4.4.4.4", Some("z"))
        );
        assert_eq!(
            p("Disconnecting authenticating user root 4.3.2.1 port 22: Too many authentication failures [preauth]"),
            some(MaxAttempts, "4.3.2.1", Some("root"))
        );
        assert_eq!(
            p(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=8.8.4.4  user=root"
            ),
            some(PamFailure, "8.8.4.4", Some("root"))
        );
        assert_eq!(
            p("message repeated 3 times: [ Failed password for root from 1.2.3.4 port 22 ssh2]"),
            Some((Failure, Some("1.2.3.4".into()), Some("root".into()), 3))
        );
        assert_eq!(p("Connection closed by 1.2.3.4 port 22 [preauth]"), None);
        assert_eq!(p("Failed password for root from not-an-ip port 22 ssh2"), None);
    }

    #[test]
    fn sudo_su_accounts_and_sessions() {
        let e = parse_sudo("   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash -c id ; x").unwrap();
        assert_eq!(
            (e.kind, e.user.as_deref(), e.target_user.as_deref()),
            (AuthEventKind::SudoCommand, Some("alice"), Some("root"))
        );
        assert_eq!(e.command.as_deref(), Some("/bin/bash -c id ; x"));
        let e =
            parse_sudo("    bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id")
                .unwrap();
        assert_eq!(e.kind, AuthEventKind::SudoFailure);
        let e = parse_sudo("pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=bob").unwrap();
        assert_eq!((e.kind, e.user.as_deref()), (AuthEventKind::SudoFailure, Some("bob")));
        assert!(parse_sudo("pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1000)").is_none());
        let e = parse_su("(to root) alice on pts/0").unwrap();
        assert_eq!(
            (e.kind, e.user.as_deref(), e.target_user.as_deref()),
            (AuthEventKind::SuSession, Some("alice"), Some("root"))
        );
        assert_eq!(parse_su("FAILED SU (to root) mallory on pts/2").unwrap().kind, AuthEventKind::SuFailure);
        let e = parse_accounts("new user: name=backdoor, UID=1001, GID=1001, home=/home/backdoor, shell=/bin/bash")
            .unwrap();
        assert_eq!((e.kind, e.target_user.as_deref()), (AuthEventKind::UserAdded, Some("backdoor")));
        assert_eq!(parse_accounts("new group: name=ops, GID=1002").unwrap().target_user.as_deref(), Some("ops"));
        let e = parse_accounts("add 'bob' to group 'sudo'").unwrap();
        assert_eq!((e.kind, e.target_user.as_deref()), (AuthEventKind::UserModified, Some("bob")));
        let e = parse_accounts("pam_unix(passwd:chauthtok): password changed for bob").unwrap();
        assert_eq!((e.kind, e.target_user.as_deref()), (AuthEventKind::PasswordChanged, Some("bob")));
        let e = parse_logind("New session 42 of user alice.").unwrap();
        assert_eq!(
            (e.kind, e.user.as_deref(), e.command.as_deref()),
            (AuthEventKind::SessionOpened, Some("alice"), Some("42"))
        );
    }

    #[test]
    fn a_user_name_cannot_frame_another_address() {
        let got = p("Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from 6.6.6.6 port 4444 ssh2");
        assert_eq!(got.unwrap().1.as_deref(), Some("6.6.6.6"));
    }
}
