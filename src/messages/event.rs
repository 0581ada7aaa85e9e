//! Parsed log events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

use super::Fields;

/// One log line. `time` is the log's own timestamp (event time), never the time Warden
/// read it. Every line becomes an event — one whose header could not be parsed still
/// reaches keyword rules, with the time of the line before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    /// The host that wrote the line (the syslog hostname field).
    pub host: String,
    /// The program that wrote the line (`sshd`, `sudo`, ...).
    pub program: std::sync::Arc<str>,
    pub auth: Option<Box<AuthEvent>>,
    /// A web server request (access logs).
    #[serde(default)]
    pub web: Option<Box<WebRequest>>,
    /// The fields of a structured record (JSON lines, Zeek logs, pcap flows), as given.
    #[serde(default, rename = "json")]
    pub fields: Option<Box<Fields>>,
    /// The line as read (lossy UTF-8, possibly cut), kept as evidence.
    pub raw: String,
    /// Byte offset in `raw` where the message (after the syslog header) starts.
    #[serde(default)]
    pub message_at: usize,
    /// Where the line starts in the file it was read from (file sources and replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The file the line was read from, when its batch mixes files (several files
    /// replayed as one stream); otherwise the batch's file is the line's.
    #[serde(skip)]
    pub file: Option<std::sync::Arc<str>>,
}

/// One request of a web server access log, with Sigma's web field names noted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebRequest {
    /// `c-ip`: the client address as logged (an address, or a name).
    pub client: String,
    /// `cs-username`
    pub user: Option<String>,
    /// `cs-method`
    pub method: String,
    /// `cs-uri-stem`
    pub uri_stem: String,
    /// `cs-uri-query` (without the `?`)
    pub uri_query: String,
    /// `cs-version`
    pub protocol: String,
    /// `sc-status`
    pub status: u16,
    /// `sc-bytes`
    pub bytes: u64,
    /// `cs-referer`
    pub referer: String,
    /// `c-useragent`
    pub user_agent: String,
}

impl Event {
    /// A line no parser took (or none was asked to): its text at a time.
    pub fn unparsed(raw: String, time: DateTime<Utc>) -> Event {
        Event {
            time,
            fields: None,
            host: String::new(),
            program: Default::default(),
            auth: None,
            web: None,
            raw,
            message_at: 0,
            offset: None,
            file: None,
        }
    }

    /// The remote address the event is about: the client of a login or of a request.
    pub fn src_ip(&self) -> Option<IpAddr> {
        if let Some(a) = &self.auth {
            return a.src_ip;
        }
        if let Some(w) = &self.web {
            return w.client.parse().ok();
        }
        let m = self.fields.as_deref()?;
        ["src_ip", "source.ip", "client.ip", "c-ip", "remote_addr", "id.orig_h"]
            .iter()
            .find_map(|f| m.text(f).and_then(|s| s.parse().ok()))
    }

    /// The message after the syslog header (the whole line when there is none).
    pub fn message(&self) -> &str {
        self.raw.get(self.message_at..).unwrap_or(&self.raw)
    }
}

/// What a service logged about a client or an account: a login that failed or worked,
/// a refusal, a probe (sshd, PAM, mail, FTP, database and web servers' error logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthEvent {
    pub kind: AuthEventKind,
    /// The client's address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is stored as IPv4.
    pub src_ip: Option<IpAddr>,
    /// The client as a host name, when the log gave a name instead of an address (never
    /// resolved: reported, not blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_name: Option<String>,
    /// The service the client talked to.
    #[serde(default)]
    pub service: Service,
    pub user: Option<String>,
    /// The authentication method (`password`, `publickey`, ...).
    pub method: Option<String>,
    /// How many attempts the line stands for (syslog's "message repeated N times").
    pub count: u32,
    /// The account acted upon: sudo's `USER=`, su's target, a created account or group.
    #[serde(default)]
    pub target_user: Option<String>,
    /// The command run (sudo's `COMMAND=`) or the change made (usermod).
    #[serde(default)]
    pub command: Option<String>,
}

/// The services whose clients Warden follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// OpenSSH, dropbear (and SELinux's audit of sshd).
    #[default]
    Ssh,
    /// SMTP and IMAP/POP3: postfix, exim, dovecot, courier, cyrus.
    Mail,
    /// HTTP servers: authentication and refusals in Apache's and nginx's error logs.
    Web,
    /// vsftpd, proftpd, pure-ftpd.
    Ftp,
    /// MySQL/MariaDB, PostgreSQL.
    Database,
    /// Any other PAM service that names a remote host (`rhost=`).
    Login,
    /// Local account activity: sudo, su, account changes, sessions.
    Local,
}

impl Service {
    /// Every service, in declaration order (`ALL[s as usize] == s`).
    pub const ALL: [Service; 7] =
        [Service::Ssh, Service::Mail, Service::Web, Service::Ftp, Service::Database, Service::Login, Service::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ssh => "ssh",
            Service::Mail => "mail",
            Service::Web => "web",
            Service::Ftp => "ftp",
            Service::Database => "database",
            Service::Login => "login",
            Service::Local => "local",
        }
    }
}

/// The kinds of authentication event Warden recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthEventKind {
    /// A failed login: sshd's `Failed <method> for [invalid user] USER from IP`, a wrong
    /// password at a mail, FTP, database or web server, a PAM `authentication failure`.
    Failure,
    /// A login attempt for an account that does not exist (`Invalid user USER from IP`).
    InvalidUser,
    /// `maximum authentication attempts exceeded` / `Too many authentication failures`.
    MaxAttempts,
    /// The server refused a login by its own policy: `AllowUsers`/`DenyUsers`/groups,
    /// `ROOT LOGIN REFUSED`, TCP wrappers, a locked account, a change of user.
    Refused,
    /// The server refused a request: mail relaying or an unknown recipient, a client
    /// denied by the web server's configuration, a rate limit.
    Rejected,
    /// A connection that never sent an SSH identification (scanners and floods:
    /// `Did not receive identification string`, `kex_exchange_identification`, `Bad
    /// protocol version identification`, `banner exchange: … invalid format`).
    NoIdentification,
    /// A connection closed or reset before authenticating (`Connection closed by … [preauth]`,
    /// `Received disconnect … [preauth]`): counted only in sshd's aggressive mode.
    PreauthClose,
    /// `Failed publickey for USER` of an existing account: an agent offering several
    /// keys before the right one; not a failure by itself.
    KeyRejected,
    /// A request that tries to exploit the server: an overlong or malformed request
    /// line, a shellshock function definition.
    Exploit,
    /// `Accepted <method> for USER from IP`, and the other services' successful logins.
    Success,
    /// sshd's `pam_unix(sshd:auth): authentication failure; … rhost=IP`: the same failure
    /// as sshd's own line, so not counted again.
    PamFailure,
    /// sudo ran a command (`USER : TTY=… ; USER=root ; COMMAND=…`).
    SudoCommand,
    /// sudo refused: wrong password, not in sudoers, command not allowed.
    SudoFailure,
    /// su opened a session as another user.
    SuSession,
    /// su authentication failed.
    SuFailure,
    /// useradd created an account.
    UserAdded,
    /// groupadd created a group.
    GroupAdded,
    /// usermod changed an account (group membership, lock, shell, …).
    UserModified,
    /// A password was changed (passwd, chpasswd).
    PasswordChanged,
    /// systemd-logind opened a session.
    SessionOpened,
}

impl AuthEventKind {
    /// A failed login attempt, counted once per line as fail2ban counts it.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            AuthEventKind::Failure | AuthEventKind::InvalidUser | AuthEventKind::MaxAttempts | AuthEventKind::Refused
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthEventKind::Failure => "failure",
            AuthEventKind::InvalidUser => "invalid_user",
            AuthEventKind::MaxAttempts => "max_attempts",
            AuthEventKind::Refused => "refused",
            AuthEventKind::Rejected => "rejected",
            AuthEventKind::NoIdentification => "no_identification",
            AuthEventKind::PreauthClose => "preauth_close",
            AuthEventKind::KeyRejected => "key_rejected",
            AuthEventKind::Exploit => "exploit",
            AuthEventKind::Success => "success",
            AuthEventKind::PamFailure => "pam_failure",
            AuthEventKind::SudoCommand => "sudo_command",
            AuthEventKind::SudoFailure => "sudo_failure",
            AuthEventKind::SuSession => "su_session",
            AuthEventKind::SuFailure => "su_failure",
            AuthEventKind::UserAdded => "user_added",
            AuthEventKind::GroupAdded => "group_added",
            AuthEventKind::UserModified => "user_modified",
            AuthEventKind::PasswordChanged => "password_changed",
            AuthEventKind::SessionOpened => "session_opened",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_listed_in_declaration_order() {
        for (i, s) in Service::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{}", s.as_str());
        }
    }
}
