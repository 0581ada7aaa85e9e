//! FTP servers: vsftpd (its own log and syslog), proftpd and pure-ftpd — failed
//! logins (fail2ban's `vsftpd`, `proftpd`, `pure-ftpd` filters) and logins that worked.
//! Their PAM lines are read by the PAM parser.

use super::{Client, client, event};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

fn e(kind: K, c: Option<Client>, user: Option<&str>) -> Option<AuthEvent> {
    Some(event(kind, Service::Ftp, Some(c?), user))
}

/// vsftpd: `[user] FAIL LOGIN: Client "addr"` / `OK LOGIN: Client "addr"`, after its
/// own `[pid N] ` in vsftpd.log. The user is the client's: the address is the last
/// `Client "…"`, which ends the line.
pub fn vsftpd(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    let m = m.strip_prefix("[pid ").and_then(|r| r.split_once("] ")).map(|(_, r)| r).unwrap_or(m);
    let (head, addr) = m.rsplit_once(" Client \"")?;
    let addr = addr.strip_suffix('"')?;
    let kind = if head.ends_with("FAIL LOGIN:") {
        K::Failure
    } else if head.ends_with("OK LOGIN:") {
        K::Success
    } else {
        return None;
    };
    let user = head.strip_prefix('[').and_then(|u| u.rsplit_once("] ")).map(|(u, _)| u);
    e(kind, client(addr), user)
}

/// proftpd: `server (name[addr]) - USER u (Login failed): …`, `… - USER u: no such user
/// found from …`, `… - SECURITY VIOLATION: root login attempted`, `… - Maximum login
/// attempts (3) exceeded`, and `… - USER u: Login successful.`
pub fn proftpd(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end();
    // The client is the first parenthesised `name[addr]`, written by proftpd before
    // anything the client sent.
    let open = m.find(" (")?;
    let (who, rest) = m[open + 2..].split_once(")")?;
    let addr = who.rsplit_once('[')?.1.strip_suffix(']')?;
    let rest = rest.trim_start_matches([' ', '-', ':']).trim_start();
    let user = rest.strip_prefix("USER ").map(|u| u.split([' ', ':']).next().unwrap_or(u));
    let kind = if rest.starts_with("USER ") && rest.contains("(Login failed)") {
        K::Failure
    } else if rest.starts_with("USER ") && rest.contains(": no such user found from ") {
        K::InvalidUser
    } else if rest.starts_with("SECURITY VIOLATION: ") && rest.contains(" login attempted") {
        K::Refused
    } else if rest.starts_with("Maximum login attempts") && rest.contains("exceeded") {
        K::MaxAttempts
    } else if rest.starts_with("USER ") && rest.ends_with("Login successful.") {
        K::Success
    } else {
        return None;
    };
    e(kind, client(addr), user)
}

/// pure-ftpd: `(?@addr) [WARNING] Authentication failed for user [u]` and
/// `(u@addr) [INFO] u is now logged in`.
pub fn pure_ftpd(msg: &str) -> Option<AuthEvent> {
    let m = msg.trim_end().strip_prefix('(')?;
    let (who, rest) = m.split_once(") [")?;
    let (user, addr) = who.rsplit_once('@')?;
    let kind = if rest.starts_with("WARNING] Authentication failed for user") {
        K::Failure
    } else if rest.starts_with("INFO] ") && rest.ends_with(" is now logged in") && user != "?" {
        K::Success
    } else {
        return None;
    };
    let user = match kind {
        K::Failure => rest.split_once(" [").and_then(|(_, u)| u.strip_suffix(']')),
        _ => Some(user),
    };
    e(kind, client(addr), user)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::parse::testing::{Got, got, x};

    fn p(f: fn(&str) -> Option<AuthEvent>, m: &str) -> Got {
        got(f(m))
    }

    #[test]
    fn vsftpd_lines() {
        assert_eq!(
            p(vsftpd, "[pid 3282] [anonymous] FAIL LOGIN: Client \"192.0.2.1\""),
            x(K::Failure, "192.0.2.1", Some("anonymous"))
        );
        assert_eq!(p(vsftpd, "[bob] FAIL LOGIN: Client \"::ffff:192.0.2.7\""), x(K::Failure, "192.0.2.7", Some("bob")));
        assert_eq!(
            p(vsftpd, "[pid 9] [bob] OK LOGIN: Client \"198.51.100.2\""),
            x(K::Success, "198.51.100.2", Some("bob"))
        );
        // A user name that holds a fake client does not frame it.
        assert_eq!(
            p(vsftpd, "[x] FAIL LOGIN: Client \"6.6.6.6\"] FAIL LOGIN: Client \"192.0.2.9\"").map(|x| x.1),
            Some("192.0.2.9".into())
        );
        assert!(p(vsftpd, "[pid 2] CONNECT: Client \"192.0.2.1\"").is_none());
    }

    #[test]
    fn proftpd_lines() {
        let l = "ftp.example.com (client.example.net[203.0.113.4]) - USER bob (Login failed): Incorrect password.";
        assert_eq!(p(proftpd, l), x(K::Failure, "203.0.113.4", Some("bob")));
        let l = "ftp.example.com (::ffff:203.0.113.5[::ffff:203.0.113.5]) - USER nobody: no such user found from ::ffff:203.0.113.5 [::ffff:203.0.113.5] to ::ffff:192.0.2.1:21";
        assert_eq!(p(proftpd, l), x(K::InvalidUser, "203.0.113.5", Some("nobody")));
        let l = "ftp.example.com (x[203.0.113.6]) - SECURITY VIOLATION: root login attempted.";
        assert_eq!(p(proftpd, l).map(|x| x.0), Some(K::Refused));
        let l = "ftp.example.com (x[203.0.113.7]) - Maximum login attempts (3) exceeded";
        assert_eq!(p(proftpd, l).map(|x| x.0), Some(K::MaxAttempts));
        let l = "ftp.example.com (x[203.0.113.8]) - USER alice: Login successful.";
        assert_eq!(p(proftpd, l), x(K::Success, "203.0.113.8", Some("alice")));
        assert!(p(proftpd, "ftp.example.com (x[203.0.113.8]) - FTP session opened.").is_none());
    }

    #[test]
    fn pure_ftpd_lines() {
        assert_eq!(
            p(pure_ftpd, "(?@203.0.113.9) [WARNING] Authentication failed for user [admin]"),
            x(K::Failure, "203.0.113.9", Some("admin"))
        );
        assert_eq!(
            p(pure_ftpd, "(alice@203.0.113.10) [INFO] alice is now logged in"),
            x(K::Success, "203.0.113.10", Some("alice"))
        );
        assert!(p(pure_ftpd, "(?@203.0.113.9) [INFO] New connection from 203.0.113.9").is_none());
    }
}
