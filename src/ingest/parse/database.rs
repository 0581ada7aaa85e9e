//! Databases: MySQL/MariaDB's `Access denied for user 'u'@'host'` (fail2ban's
//! `mysqld-auth`) and PostgreSQL's failed authentications, with the client from the
//! line's prefix or from the connection's `connection received: host=…` line.

use super::{Client, Connection, client, event, ip};
use crate::messages::{AuthEvent, AuthEventKind as K, Service};

fn e(kind: K, c: Option<Client>, user: Option<&str>) -> AuthEvent {
    event(kind, Service::Database, c, user)
}

/// MySQL/MariaDB: the message after the server's own prefix (`8 [Warning] [MY-…]
/// [Server] `). The user is the client's: the host is after the last `'@'`.
pub fn mysql(msg: &str) -> Option<AuthEvent> {
    let at = msg.find("Access denied for user '")?;
    let rest = &msg[at + 24..];
    let (user, tail) = rest.rsplit_once("'@'")?;
    let (host, after) = tail.split_once('\'')?;
    let after = after.trim_start();
    let ours = after.is_empty() || after.starts_with("(using password") || after.starts_with("to database");
    if !ours {
        return None;
    }
    Some(e(K::Failure, Some(client(host)?), Some(user)))
}

/// A PostgreSQL message after its prefix: `FATAL:  password authentication failed for
/// user "u"`, `FATAL:  no pg_hba.conf entry for host "addr", …`, `FATAL:  role "u" does
/// not exist`, and `LOG:  connection received: host=addr port=N` /
/// `LOG:  connection authorized: user=u …` (with `log_connections`). `prefix` is the
/// text before the severity (where `%h`/`%r` put the client), `conn` the backend's.
pub fn postgres(prefix: &str, msg: &str, conn: Option<&mut Connection>) -> Option<AuthEvent> {
    let quoted = |s: &str| s.split_once('"').and_then(|(_, r)| r.rsplit_once('"')).map(|(u, _)| u.to_string());
    let from_prefix = prefix.split(' ').find_map(|w| {
        let w = w.strip_prefix("host=").unwrap_or(w);
        // `%r`: `addr(port)`; `%h`: `addr`.
        ip(w.split('(').next()?).filter(|_| w.ends_with(')') || w.parse::<std::net::IpAddr>().is_ok())
    });
    let m = msg.trim_end();
    if let Some(rest) = m.strip_prefix("LOG:  connection received: host=") {
        let addr = ip(rest.split(' ').next()?);
        if let (Some(c), Some(a)) = (conn, addr) {
            c.client = Some(a);
        }
        return None;
    }
    let known = conn.as_ref().and_then(|c| c.client).or(from_prefix);
    if let Some(rest) = m.strip_prefix("LOG:  connection authorized: user=") {
        let user = rest.split(' ').next();
        return Some(e(K::Success, Some(Client::Ip(known?)), user));
    }
    let rest = m.strip_prefix("FATAL:  ")?;
    if let Some(r) = rest.strip_prefix("no pg_hba.conf entry for host \"") {
        let (addr, tail) = r.split_once('"')?;
        let user = tail.split_once("user \"").and_then(|(_, u)| u.split_once("\", database \"")).map(|(u, _)| u);
        return Some(e(K::Refused, Some(client(addr)?), user));
    }
    let (kind, user) = if let Some(r) = rest.strip_prefix("password authentication failed for user ") {
        (K::Failure, quoted(r))
    } else if rest.starts_with("role \"") && rest.ends_with("\" does not exist") {
        (K::InvalidUser, quoted(rest))
    } else if let Some(r) = rest.strip_prefix("PAM authentication failed for user ") {
        (K::Failure, quoted(r))
    } else {
        return None;
    };
    Some(e(kind, known.map(Client::Ip), user.as_deref()))
}

/// PostgreSQL's own log line after its timestamp: `[pid] prefix… SEVERITY:  message`
/// (the pid and the rest of `log_line_prefix` vary); the pid, the prefix and the
/// message.
pub fn postgres_line(rest: &str) -> Option<(Option<u32>, &str, &str)> {
    const LEVELS: [&str; 6] = ["FATAL:  ", "LOG:  ", "ERROR:  ", "WARNING:  ", "DETAIL:  ", "STATEMENT:  "];
    let at = LEVELS.iter().filter_map(|l| rest.find(l)).min()?;
    let prefix = &rest[..at];
    let pid = prefix.split(' ').find_map(|w| w.strip_prefix('[')?.split(']').next()?.parse().ok());
    Some((pid, prefix, &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ingest::parse::testing::who;

    #[test]
    fn mysql_access_denied() {
        let ev =
            mysql("8 [Warning] [MY-010055] [Server] Access denied for user 'root'@'192.0.2.35' (using password: YES)")
                .unwrap();
        assert_eq!(
            (ev.kind, who(&ev), ev.user.as_deref(), ev.service),
            (K::Failure, "192.0.2.35".into(), Some("root"), Service::Database)
        );
        let ev = mysql(
            "[Warning] Access denied for user 'x'@'6.6.6.6' (using password: YES)'@'192.0.2.36' (using password: NO)",
        )
        .unwrap();
        assert_eq!(who(&ev), "192.0.2.36", "a user name cannot frame an address");
        let ev = mysql("Access denied for user 'app'@'db-client.example.net' to database 'shop'").unwrap();
        assert_eq!(ev.src_name.as_deref(), Some("db-client.example.net"));
        assert!(mysql("Access denied for user 'app'@'192.0.2.1' and more").is_none());
        assert!(mysql("[Note] Aborted connection 5 to db").is_none());
    }

    #[test]
    fn postgres_with_log_connections_and_prefixes() {
        let mut c = Connection::default();
        assert!(postgres("", "LOG:  connection received: host=203.0.113.30 port=5432", Some(&mut c)).is_none());
        let ev = postgres("", "FATAL:  password authentication failed for user \"postgres\"", Some(&mut c)).unwrap();
        assert_eq!((ev.kind, who(&ev), ev.user.as_deref()), (K::Failure, "203.0.113.30".into(), Some("postgres")));
        // `%r` in log_line_prefix.
        let ev = postgres("[77] 203.0.113.31(40000) app@shop ", "FATAL:  role \"admin\" does not exist", None).unwrap();
        assert_eq!((ev.kind, who(&ev), ev.user.as_deref()), (K::InvalidUser, "203.0.113.31".into(), Some("admin")));
        let ev = postgres(
            "",
            "FATAL:  no pg_hba.conf entry for host \"203.0.113.32\", user \"x\", database \"y\", no encryption",
            None,
        )
        .unwrap();
        assert_eq!((ev.kind, who(&ev)), (K::Refused, "203.0.113.32".into()));
        // No client known: an event without an address (counted as such, never guessed).
        let ev = postgres("[78] ", "FATAL:  password authentication failed for user \"bob\"", None).unwrap();
        assert!(ev.src_ip.is_none());
        let (pid, prefix, msg) = postgres_line("[1234] postgres@db FATAL:  role \"x\" does not exist").unwrap();
        assert_eq!((pid, prefix, msg), (Some(1234), "[1234] postgres@db ", "FATAL:  role \"x\" does not exist"));
    }
}
