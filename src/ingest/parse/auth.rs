//! Authentication lines of every service Warden reads: syslog lines, dispatched on the
//! program that wrote them, and the services' own log formats (Apache's and nginx's
//! error logs, exim's main log, dovecot's log, MySQL's and PostgreSQL's logs, vsftpd's
//! log, the audit log), recognised by their shape.
//!
//! Everything after a header is written from attacker-supplied data (user names, HELO
//! names, requests): each service's parser takes the client only from where the
//! service itself writes it.

use super::weberror;
use super::{Connections, SyslogLine, Unparsed, YearInference, audit, database, ftp, local, mail, sshd, stamp, syslog};
use crate::messages::{AuthEvent, Event, Parser};

/// What parsing remembers between lines: sshd's and PostgreSQL's connections (a line
/// that names no client takes it from another line of the same connection).
#[derive(Debug, Default)]
pub struct ParseState {
    pub sshd: Connections,
    pub postgres: Connections,
}

fn make(line: String, time: chrono::DateTime<chrono::Utc>, host: String, program: String, at: usize) -> Event {
    Event {
        time,
        host,
        program: program.into(),
        auth: None,
        web: None,
        fields: None,
        message_at: at.min(line.len()),
        raw: line,
        offset: None,
        file: None,
    }
}

/// Parses a syslog line: the header, then the program's message. `Err` hands the line
/// back when it has no syslog header.
pub fn parse_line(line: String, years: &YearInference, st: &mut ParseState) -> Result<(Event, Parser), Unparsed> {
    let Some(s) = syslog(&line, years) else { return Err(Unparsed(line)) };
    let (parser, auth) = dispatch(&s, st);
    let (time, host, program) = (s.time, s.host.to_string(), s.program.to_string());
    let message_at = line.len() - s.message.len();
    // The header's parts are copied out before the line moves into the event.
    let mut ev = make(line, time, host, program, message_at);
    ev.auth = auth.map(Box::new);
    Ok((ev, parser))
}

/// The parser of a syslog program, and what it made of the message.
fn dispatch(s: &SyslogLine, st: &mut ParseState) -> (Parser, Option<AuthEvent>) {
    let msg = s.message;
    let base = s.program.split('/').next().unwrap_or(s.program);
    let pam = || local::pam(s.program, msg);
    match base {
        "sshd" | "sshd-session" | "sshd-auth" => {
            (Parser::Sshd, sshd::parse_in(msg, &mut st.sshd, s.host, s.pid, s.time))
        }
        "dropbear" => (Parser::Dropbear, sshd::dropbear(msg)),
        "sudo" => (Parser::Sudo, local::parse_sudo(msg)),
        "su" => (Parser::Su, local::parse_su(msg)),
        "useradd" | "groupadd" | "usermod" | "passwd" | "chpasswd" | "chage" => {
            (Parser::Accounts, local::parse_accounts(msg))
        }
        "systemd-logind" => (Parser::Logind, local::parse_logind(msg)),
        b if b.starts_with("postfix") => (Parser::Postfix, mail::postfix(msg)),
        "dovecot" | "dovecot-auth" | "imap-login" | "pop3-login" | "submission-login" | "managesieve-login" => {
            (Parser::Dovecot, mail::dovecot(msg))
        }
        "auth" | "auth-worker" if msg.contains("dovecot") || msg.contains("rip=") => {
            (Parser::Dovecot, mail::dovecot(msg))
        }
        "exim" | "exim4" => (Parser::Exim, mail::exim(msg)),
        "courierlogin" | "courierpop3login" | "courieresmtpd" | "courieresmtp" | "imapd" | "pop3d" | "imapd-ssl"
        | "pop3d-ssl" | "courierpop3d" | "courierimapd" => (Parser::Courier, mail::courier(msg).or_else(pam)),
        "cyrus" | "imap" | "imaps" | "pop3" | "pop3s" | "lmtpunix" => (Parser::Cyrus, mail::cyrus(msg).or_else(pam)),
        "vsftpd" => (Parser::Vsftpd, ftp::vsftpd(msg).or_else(pam)),
        "proftpd" => (Parser::Proftpd, ftp::proftpd(msg).or_else(pam)),
        "pure-ftpd" => (Parser::PureFtpd, ftp::pure_ftpd(msg).or_else(pam)),
        "mysqld" | "mysqld_safe" | "mariadbd" | "mariadb" | "mysql" => (Parser::Mysql, database::mysql(msg)),
        "postgres" | "postgresql" | "postmaster" => {
            let (prefix, body) = database::postgres_line(msg).map(|(_, p, m)| (p, m)).unwrap_or(("", msg));
            let conn = s.pid.map(|pid| st.postgres.at(s.host, pid, s.time));
            (Parser::Postgresql, database::postgres(prefix, body, conn))
        }
        "httpd" | "apache2" | "apache" => (Parser::ApacheError, weberror::apache(msg)),
        "nginx" => (Parser::NginxError, weberror::nginx(msg.split_once(": ").map(|(_, m)| m).unwrap_or(msg))),
        "audit" | "audispd" | "auditd" | "audisp-syslog" => {
            let m = msg.strip_prefix("node=").and_then(|r| r.split_once(' ')).map(|(_, r)| r).unwrap_or(msg);
            let ev = audit::record(m).and_then(|(kind, _, body)| audit::sshd_failure(kind, body));
            (Parser::Audit, ev)
        }
        _ => match pam() {
            Some(ev) => (Parser::Pam, Some(ev)),
            None => (Parser::Syslog, None),
        },
    }
}

/// A line in a service's own format (not syslog), recognised by its shape; `Err` hands
/// it back when it is none of them.
pub fn parse_native(line: String, years: &YearInference, st: &mut ParseState) -> Result<(Event, Parser), Unparsed> {
    match native(&line, years, st) {
        Some((time, program, parser, at, auth)) => {
            let mut ev = make(line, time, String::new(), program.to_string(), at);
            ev.auth = auth.map(Box::new);
            Ok((ev, parser))
        }
        None => Err(Unparsed(line)),
    }
}

type Native<'a> = (chrono::DateTime<chrono::Utc>, &'static str, Parser, usize, Option<AuthEvent>);

fn native<'a>(line: &'a str, years: &YearInference, st: &mut ParseState) -> Option<Native<'a>> {
    let offset = |rest: &str| line.len() - rest.len();
    if let Some((time, rest)) = weberror::apache_line(line, years) {
        return Some((time, "apache", Parser::ApacheError, offset(rest), weberror::apache(rest)));
    }
    if let Some((time, msg)) = weberror::nginx_line(line, years) {
        return Some((time, "nginx", Parser::NginxError, offset(msg), weberror::nginx(msg)));
    }
    if let Some((kind, time, body)) = audit::record(line) {
        return Some((time, "audit", Parser::Audit, 0, audit::sshd_failure(kind, body)));
    }
    if let Some((time, rest)) = stamp::tai64n(line) {
        return Some((time, "dovecot", Parser::Dovecot, offset(rest), mail::dovecot(rest)));
    }
    if let Some((time, rest)) = stamp::mysql_short(line, years) {
        return Some((time, "mysqld", Parser::Mysql, offset(rest), database::mysql(rest)));
    }
    if let Some((time, rest)) = stamp::ctime(line, years) {
        // vsftpd.log: `Sun Jan  5 23:12:43 2014 [pid 1] [user] FAIL LOGIN: Client "…"`
        let rest = rest.trim_start();
        return rest.starts_with("[pid ").then(|| (time, "vsftpd", Parser::Vsftpd, offset(rest), ftp::vsftpd(rest)));
    }
    let (time, rest) = stamp::iso(line, years)?;
    let at = offset(rest);
    if rest.contains("Access denied for user '") || mysql_shape(rest) {
        return Some((time, "mysqld", Parser::Mysql, at, database::mysql(rest)));
    }
    if let Some((pid, prefix, msg)) = database::postgres_line(rest) {
        let conn = pid.map(|pid| st.postgres.at("", pid, time));
        return Some((time, "postgres", Parser::Postgresql, at, database::postgres(prefix, msg, conn)));
    }
    let first = rest.split([' ', ':', '(']).next().unwrap_or("");
    if matches!(first, "auth" | "auth-worker" | "dovecot" | "imap-login" | "pop3-login" | "imap" | "pop3" | "lmtp")
        || first.ends_with("-login")
    {
        return Some((time, "dovecot", Parser::Dovecot, at, mail::dovecot(rest)));
    }
    let auth = mail::exim(rest);
    (auth.is_some() || exim_shape(rest)).then_some((time, "exim", Parser::Exim, at, auth))
}

/// MySQL's own lines: `8 [Warning] …` / `[Note] …` after the time.
fn mysql_shape(rest: &str) -> bool {
    let r = rest.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
    ["[Note] ", "[Warning] ", "[ERROR] ", "[System] "].iter().any(|l| r.starts_with(l))
}

/// exim's main log: `[pid] ` or a message id (`1ahr79-0006jK-G9 `) after the time, or
/// one of its connection lines.
fn exim_shape(rest: &str) -> bool {
    let r = rest.strip_prefix('[').and_then(|r| r.split_once("] ")).map(|(_, r)| r).unwrap_or(rest);
    let id = r.split(' ').next().unwrap_or("");
    let parts: Vec<&str> = id.split('-').collect();
    let message_id = matches!(parts.as_slice(), [a, b, c] if a.len() == 6 && (b.len() == 6 || b.len() == 11) && (2..=4).contains(&c.len()));
    message_id
        || r.starts_with("SMTP connection from ")
        || r.starts_with("H=")
        || r.contains(" authenticator failed for ")
}

#[cfg(test)]
mod tests;
