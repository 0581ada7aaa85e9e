//! Local account activity (sudo, su, account changes, logind sessions) and PAM's
//! `authentication failure` of any service that names a remote host (fail2ban's
//! `pam-generic`).

#[cfg(test)]
use super::Client;
use super::{client, field};
use crate::messages::{AuthEvent, AuthEventKind, Service};

fn event(kind: AuthEventKind, user: Option<&str>) -> AuthEvent {
    super::event(kind, Service::Local, None, user)
}

fn with_target(mut ev: AuthEvent, target: Option<&str>, command: Option<&str>) -> AuthEvent {
    ev.target_user = target.map(|t| t.to_string());
    ev.command = command.map(|c| c.to_string());
    ev
}

/// PAM's `authentication failure; logname= uid=0 euid=0 tty=X ruser=Y rhost=HOST[ user=Z]`
/// of any module (`pam_unix`, `pam_sss`, …) in any of its forms (`pam_unix(svc:auth): `,
/// `(pam_unix) `, `pam_unix: `, or the program `pop(pam_unix)`): a failed login at the
/// service PAM names (its module's `svc`, else the program), when it names the remote
/// host. sshd's own are left to sshd's parser.
pub fn pam(program: &str, msg: &str) -> Option<AuthEvent> {
    let at = super::find(msg, "authentication failure;")?;
    let head = msg[..at].trim_end();
    let pam_like = program.contains("(pam_")
        || head.starts_with("pam_")
        || head.starts_with("(pam_")
        || head.is_empty() && program.contains("pam");
    if !pam_like || head.contains(' ') {
        return None;
    }
    let rest = &msg[at..];
    let host = field(rest, "rhost=")?;
    let from = client(host)?;
    // `pam_unix(vsftpd:auth)`: the PAM service; else the program.
    let svc = head.split_once('(').and_then(|(_, s)| s.split([':', ')']).next()).unwrap_or(program);
    let svc = if svc.is_empty() || svc.starts_with("pam_") { program } else { svc };
    let user = field(rest, "user=").or_else(|| field(rest, "ruser="));
    let mut ev = super::event(AuthEventKind::Failure, service_of(svc, field(rest, "tty=")), Some(from), user);
    if ev.service == Service::Ssh {
        ev.kind = AuthEventKind::PamFailure;
    }
    Some(ev)
}

/// The service a PAM service name (or tty) stands for.
fn service_of(svc: &str, tty: Option<&str>) -> Service {
    let s = svc.trim_start_matches(['(', ' ']);
    if s.starts_with("sshd") || tty == Some("ssh") {
        Service::Ssh
    } else if s.contains("ftp") || tty == Some("ftp") {
        Service::Ftp
    } else if ["dovecot", "imap", "pop", "smtp", "courier", "cyrus", "sasl"].iter().any(|m| s.starts_with(m))
        || tty == Some("dovecot")
    {
        Service::Mail
    } else {
        Service::Login
    }
}

/// The client of a PAM line, if it has one (tests).
#[cfg(test)]
fn client_of(ev: &AuthEvent) -> Option<Client> {
    ev.src_ip.map(Client::Ip).or_else(|| ev.src_name.clone().map(Client::Name))
}

/// sudo: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash`, its failure
/// forms (`3 incorrect password attempts`, `user NOT in sudoers`, `command not allowed`)
/// and PAM's `pam_unix(sudo:auth): authentication failure`. The command is last on the
/// line, so everything after `COMMAND=` is taken as it is.
pub fn parse_sudo(msg: &str) -> Option<AuthEvent> {
    if msg.starts_with("pam_unix(sudo:auth): authentication failure") {
        let user = field(msg, "ruser=").or_else(|| field(msg, "logname="));
        return Some(with_target(event(AuthEventKind::SudoFailure, user), field(msg, "user="), None));
    }
    let (user, rest) = super::cut(msg.trim_start(), " : ")?;
    let field = |k: &str| rest.split(" ; ").find_map(|p| p.trim().strip_prefix(k));
    let command = super::cut(rest, "COMMAND=").map(|(_, c)| c.trim_end());
    let target = field("USER=");
    let failed = ["incorrect password attempt", "NOT in sudoers", "command not allowed"]
        .iter()
        .any(|f| super::find(rest, f).is_some());
    let kind = if failed {
        AuthEventKind::SudoFailure
    } else if command.is_some() {
        AuthEventKind::SudoCommand
    } else {
        return None;
    };
    Some(with_target(event(kind, Some(user.trim())), target, command))
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
        return Some(with_target(event(AuthEventKind::SuFailure, Some(&user)), Some(&target), None));
    }
    if let Some((target, user)) = to(msg) {
        return Some(with_target(event(AuthEventKind::SuSession, Some(&user)), Some(&target), None));
    }
    if msg.starts_with("pam_unix(su:auth): authentication failure")
        || msg.starts_with("pam_unix(su-l:auth): authentication failure")
    {
        let user = field(msg, "ruser=").or_else(|| field(msg, "logname="));
        return Some(with_target(event(AuthEventKind::SuFailure, user), field(msg, "user="), None));
    }
    None
}

/// Account changes: useradd's `new user: name=x, UID=…`, groupadd's `new group: name=x`,
/// usermod's `add 'bob' to group 'sudo'` / `change user 'bob' …`, and password changes.
pub fn parse_accounts(msg: &str) -> Option<AuthEvent> {
    let name = |s: &str| s.split_once("name=").map(|(_, r)| r.split(',').next().unwrap_or("").trim().to_string());
    if let Some(rest) = msg.strip_prefix("new user: ") {
        let n = name(rest)?;
        return Some(with_target(event(AuthEventKind::UserAdded, None), Some(&n), None));
    }
    if let Some(rest) = msg.strip_prefix("new group: ") {
        let n = name(rest)?;
        return Some(with_target(event(AuthEventKind::GroupAdded, None), Some(&n), None));
    }
    if msg.starts_with("add '") || msg.starts_with("change user '") || msg.starts_with("lock user '") {
        let target = msg.split('\'').nth(1)?;
        return Some(with_target(event(AuthEventKind::UserModified, None), Some(target), Some(msg)));
    }
    if let Some((_, rest)) = msg.split_once("password changed for ") {
        let target = rest.split_whitespace().next()?;
        return Some(with_target(event(AuthEventKind::PasswordChanged, None), Some(target), None));
    }
    None
}

/// systemd-logind: `New session 12 of user alice.`
pub fn parse_logind(msg: &str) -> Option<AuthEvent> {
    let rest = msg.strip_prefix("New session ")?;
    let (id, rest) = rest.split_once(" of user ")?;
    let user = rest.trim_end_matches('.');
    Some(with_target(event(AuthEventKind::SessionOpened, Some(user)), None, Some(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn pam_generic_forms() {
        let p = |prog: &str, m: &str| pam(prog, m).map(|e| (e.kind, e.service, client_of(&e), e.user));
        let ip = |s: &str| Some(Client::Ip(s.parse().unwrap()));
        assert_eq!(
            p(
                "pure-ftpd",
                "(pam_unix) authentication failure; logname= uid=0 euid=0 tty=pure-ftpd ruser=sample-user rhost=192.168.1.1 "
            ),
            Some((AuthEventKind::Failure, Service::Ftp, ip("192.168.1.1"), Some("sample-user".into())))
        );
        assert_eq!(
            p(
                "pop(pam_unix)",
                "authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=192.168.10.3 user=mailuser"
            ),
            Some((AuthEventKind::Failure, Service::Mail, ip("192.168.10.3"), Some("mailuser".into())))
        );
        assert_eq!(
            p("vsftpd", "pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=an8767 rhost=www3.example.com").map(|x| x.2),
            Some(Some(Client::Name("www3.example.com".into())))
        );
        assert_eq!(
            p("login", "pam_sss(login:auth): authentication failure; logname= uid=0 euid=0 tty=pts/1 ruser= rhost=203.0.113.9 user=bob").map(|x| (x.0, x.1)),
            Some((AuthEventKind::Failure, Service::Login))
        );
        assert_eq!(
            p("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=8.8.4.4  user=root").map(|x| x.0),
            Some(AuthEventKind::PamFailure)
        );
        // No remote host, or an injected one inside another field: nothing to count.
        assert!(p("su", "pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/0 ruser=bob rhost=  user=root").is_none());
        assert_eq!(
            p("dovecot-auth", "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=rhost=1.2.3.4 rhost=192.0.43.10").map(|x| x.2),
            Some(ip("192.0.43.10"))
        );
        assert!(p("cron", "session opened for user root").is_none());
    }
}
