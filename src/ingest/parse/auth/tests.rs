use super::*;
use crate::messages::{AuthEventKind as K, Service};
use chrono::FixedOffset;

fn years() -> YearInference {
    YearInference::with_offset("2026-11-26T12:00:00Z".parse().unwrap(), FixedOffset::east_opt(0).unwrap())
}

/// The parser that took a line (syslog or native), the event's kind, service and client.
fn take(line: &str) -> Option<(Parser, Option<(K, Service, String)>)> {
    let mut st = ParseState::default();
    let y = years();
    let r = parse_line(line.to_string(), &y, &mut st).or_else(|Unparsed(l)| parse_native(l, &y, &mut st));
    r.ok().map(|(ev, p)| {
        let a =
            ev.auth.map(|a| (a.kind, a.service, a.src_ip.map(|i| i.to_string()).or(a.src_name).unwrap_or_default()));
        (p, a)
    })
}

fn x(p: Parser, k: K, s: Service, a: &str) -> Option<(Parser, Option<(K, Service, String)>)> {
    Some((p, Some((k, s, a.to_string()))))
}

#[test]
fn syslog_programs_reach_their_parsers() {
    let cases = [
        (
            "Nov 26 10:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2",
            Parser::Sshd,
            K::Failure,
            Service::Ssh,
        ),
        (
            "Nov 26 10:00:00 h dropbear[2]: Bad password attempt for 'root' from 192.0.2.1:5",
            Parser::Dropbear,
            K::Failure,
            Service::Ssh,
        ),
        (
            "Nov 26 10:00:00 h postfix/submission/smtpd[3]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x",
            Parser::Postfix,
            K::Failure,
            Service::Mail,
        ),
        (
            "Nov 26 10:00:00 h dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<a>, method=PLAIN, rip=192.0.2.1, lip=10.0.0.1",
            Parser::Dovecot,
            K::Failure,
            Service::Mail,
        ),
        (
            "Nov 26 10:00:00 h exim[4]: login authenticator failed for (x) [192.0.2.1]: 535 Incorrect authentication data",
            Parser::Exim,
            K::Failure,
            Service::Mail,
        ),
        (
            "Nov 26 10:00:00 h imapd: LOGIN FAILED, user=a, ip=[::ffff:192.0.2.1]",
            Parser::Courier,
            K::Failure,
            Service::Mail,
        ),
        (
            "Nov 26 10:00:00 h cyrus/imap[5]: badlogin: x [192.0.2.1] plaintext a SASL(-13): authentication failure: checkpass failed",
            Parser::Cyrus,
            K::Failure,
            Service::Mail,
        ),
        ("Nov 26 10:00:00 h vsftpd[6]: [a] FAIL LOGIN: Client \"192.0.2.1\"", Parser::Vsftpd, K::Failure, Service::Ftp),
        (
            "Nov 26 10:00:00 h vsftpd: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=a rhost=192.0.2.1",
            Parser::Vsftpd,
            K::Failure,
            Service::Ftp,
        ),
        (
            "Nov 26 10:00:00 h proftpd[7]: f.example (x[192.0.2.1]) - USER a (Login failed): Incorrect password.",
            Parser::Proftpd,
            K::Failure,
            Service::Ftp,
        ),
        (
            "Nov 26 10:00:00 h pure-ftpd: (?@192.0.2.1) [WARNING] Authentication failed for user [a]",
            Parser::PureFtpd,
            K::Failure,
            Service::Ftp,
        ),
        (
            "Nov 26 10:00:00 h mysqld[8]: 2026-11-26T10:00:00.1Z 8 [Warning] Access denied for user 'a'@'192.0.2.1' (using password: YES)",
            Parser::Mysql,
            K::Failure,
            Service::Database,
        ),
        (
            "Nov 26 10:00:00 h httpd[9]: [authz_core:error] [pid 9] [client 192.0.2.1:5] AH01630: client denied by server configuration: /x",
            Parser::ApacheError,
            K::Rejected,
            Service::Web,
        ),
        (
            "Nov 26 10:00:00 h nginx: 2026/11/26 10:00:00 [error] 1#1: *2 user \"a\": password mismatch, client: 192.0.2.1, server: s",
            Parser::NginxError,
            K::Failure,
            Service::Web,
        ),
        (
            "Nov 26 10:00:00 h login[10]: pam_unix(login:auth): authentication failure; logname= uid=0 euid=0 tty=tty1 ruser= rhost=192.0.2.1 user=a",
            Parser::Pam,
            K::Failure,
            Service::Login,
        ),
        (
            "Nov 26 10:00:00 h audispd: node=h type=USER_AUTH msg=audit(1.0:1): pid=1 uid=0 msg='op=password acct=\"a\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.1 terminal=ssh res=failed'",
            Parser::Audit,
            K::Failure,
            Service::Ssh,
        ),
    ];
    for (line, p, k, s) in cases {
        assert_eq!(take(line), x(p, k, s, "192.0.2.1"), "{line}");
    }
    assert_eq!(take("Nov 26 10:00:00 h CRON[11]: (root) CMD (true)"), Some((Parser::Syslog, None)));
}

#[test]
fn services_own_log_formats_are_recognised_by_shape() {
    let cases = [
        (
            "[Sun Sep 14 21:44:43.008606 2014] [authz_core:error] [pid 10691] [client 192.0.2.2:44271] AH01630: client denied by server configuration: /var/www/x",
            Parser::ApacheError,
            K::Rejected,
            Service::Web,
        ),
        (
            "[Wed Jul 17 22:18:52 2013] [error] [client 192.0.2.2] user u: authentication failure for \"/b\": Password Mismatch",
            Parser::ApacheError,
            K::Failure,
            Service::Web,
        ),
        (
            "2012/04/09 11:53:29 [error] 2865#0: *66647 user \"xyz\" was not found in \"/var/www/.htpasswd\", client: 192.0.2.2, server: s, request: \"GET / HTTP/1.1\", host: \"h\"",
            Parser::NginxError,
            K::InvalidUser,
            Service::Web,
        ),
        (
            "2013-01-04 17:03:46 login authenticator failed for r.example ([192.168.2.33]) [192.0.2.2]: 535 Incorrect authentication data (set_id=brian)",
            Parser::Exim,
            K::Failure,
            Service::Mail,
        ),
        (
            "2013-08-11 03:56:40 auth-worker(default): Info: pam(u,192.0.2.2): pam_authenticate() failed: Authentication failure (password mismatch?)",
            Parser::Dovecot,
            K::Failure,
            Service::Mail,
        ),
        (
            "@400000004c91b044077a9e94 imap-login: Info: Aborted login (auth failed, 1 attempts): user=<m@x>, method=CRAM-MD5, rip=192.0.2.2, lip=10.0.0.1, TLS",
            Parser::Dovecot,
            K::Failure,
            Service::Mail,
        ),
        (
            "2019-07-29T09:09:11.123456Z 8 [Warning] [MY-010055] [Server] Access denied for user 'root'@'192.0.2.2' (using password: YES)",
            Parser::Mysql,
            K::Failure,
            Service::Database,
        ),
        (
            "130324  0:04:00 [Warning] Access denied for user 'root'@'192.0.2.2' (using password: YES)",
            Parser::Mysql,
            K::Failure,
            Service::Database,
        ),
        (
            "2019-07-29 09:09:11 8 [Warning] Access denied for user 'root'@'192.0.2.2' (using password: NO)",
            Parser::Mysql,
            K::Failure,
            Service::Database,
        ),
        (
            "2021-04-02 12:34:56.789 UTC [1234] 192.0.2.2(5432) postgres@db FATAL:  password authentication failed for user \"postgres\"",
            Parser::Postgresql,
            K::Failure,
            Service::Database,
        ),
        (
            "Sun Jan  5 23:12:43 2014 [pid 3282] [anon] FAIL LOGIN: Client \"192.0.2.2\"",
            Parser::Vsftpd,
            K::Failure,
            Service::Ftp,
        ),
        (
            "type=USER_AUTH msg=audit(1383116263.000:603): pid=1 uid=0 auid=4294967295 msg='op=password acct=\"dan\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.2 terminal=ssh res=failed'",
            Parser::Audit,
            K::Failure,
            Service::Ssh,
        ),
    ];
    for (line, p, k, s) in cases {
        assert_eq!(take(line), x(p, k, s, "192.0.2.2"), "{line}");
    }
    // PostgreSQL with log_connections: the connection line names the client.
    let mut st = ParseState::default();
    let y = years();
    let first = "2021-04-02 12:34:56.700 UTC [77] LOG:  connection received: host=192.0.2.3 port=40000";
    let second = "2021-04-02 12:34:56.789 UTC [77] FATAL:  password authentication failed for user \"admin\"";
    let (_, p) = parse_native(first.into(), &y, &mut st).unwrap();
    assert_eq!(p, Parser::Postgresql);
    let (ev, _) = parse_native(second.into(), &y, &mut st).unwrap();
    assert_eq!(ev.auth.unwrap().src_ip.unwrap().to_string(), "192.0.2.3");
    // Look-alikes of one service in another's shape stay what they are.
    assert_eq!(take("2013-06-10 10:10:59 just some text"), None);
    assert!(take("not a log line").is_none());
}

#[test]
fn lines_of_one_service_that_look_like_another() {
    // An sshd user name that reads like a postfix line is still an sshd failure.
    assert_eq!(
        take(
            "Nov 26 10:00:00 h sshd[1]: Invalid user warning: unknown[6.6.6.6]: SASL LOGIN authentication failed from 192.0.2.4 port 5"
        ),
        x(Parser::Sshd, K::InvalidUser, Service::Ssh, "192.0.2.4")
    );
    // A postfix line quoting sshd's words is a postfix line, and no failure.
    assert_eq!(
        take("Nov 26 10:00:00 h postfix/smtpd[2]: connect from Failed-password-for-root[192.0.2.5]"),
        Some((Parser::Postfix, None))
    );
}
