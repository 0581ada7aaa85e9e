use super::*;

use crate::ingest::parse::testing::{got as g, x};

#[test]
fn postfix_sasl_rejections_and_logins() {
    assert_eq!(
        g(postfix("warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")),
        x(K::Failure, "192.0.2.1", None)
    );
    assert_eq!(
        g(postfix("warning: mail.example.net[2001:db8::5]: SASL PLAIN authentication failed: authentication failure")),
        x(K::Failure, "2001:db8::5", None)
    );
    assert_eq!(
        g(postfix(
            "warning: unknown[192.0.2.2]: SASL LOGIN authentication failed: Connection lost to authentication server"
        )),
        None
    );
    assert_eq!(
        g(postfix(
            "NOQUEUE: reject: RCPT from a.example[192.0.2.3]: 554 5.7.1 <s@example.org>: Relay access denied; from=<j@example.com> to=<s@example.org> proto=SMTP helo=<x>"
        )),
        x(K::Rejected, "192.0.2.3", None)
    );
    assert_eq!(
        g(postfix(
            "NOQUEUE: reject: RCPT from unknown[192.0.2.4]: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in local recipient table; from=<a@b> to=<nobody@example.org> proto=ESMTP helo=<x>"
        )),
        x(K::Rejected, "192.0.2.4", None)
    );
    assert_eq!(
        g(postfix(
            "NOQUEUE: reject: VRFY from h.example[192.0.2.5]: 550 5.1.1 : Recipient address rejected: User unknown in local recipient tab"
        )),
        x(K::Rejected, "192.0.2.5", None)
    );
    assert_eq!(
        g(postfix(
            "NOQUEUE: reject: EHLO from s.example[192.0.2.6]: 504 5.5.2 <User>: Helo command rejected: need fully-qualified hostname; proto=SMTP helo=<User>"
        )),
        x(K::Rejected, "192.0.2.6", None)
    );
    // Greylisting is not abuse; the client's own `to=<…>` text does not make it so.
    assert_eq!(
        g(postfix(
            "NOQUEUE: reject: RCPT from m.example[192.0.2.7]: 450 4.2.0 <a@b>: Recipient address rejected: Greylisted; from=<Relay access denied@x> to=<a@b> proto=ESMTP helo=<m>"
        )),
        None
    );
    assert_eq!(
        g(postfix("improper command pipelining after DATA from unknown[192.0.2.8]:")),
        x(K::Rejected, "192.0.2.8", None)
    );
    assert_eq!(
        g(postfix("warning: Connection rate limit exceeded: 31 from unknown[192.0.2.9] for service smtp")),
        x(K::Rejected, "192.0.2.9", None)
    );
    assert_eq!(
        g(postfix("4F2A1: client=unknown[192.0.2.10], sasl_method=LOGIN, sasl_username=alice")),
        x(K::Success, "192.0.2.10", Some("alice"))
    );
    assert_eq!(g(postfix("4F2A1: client=unknown[192.0.2.10]")), None);
    assert_eq!(g(postfix("connect from unknown[192.0.2.11]")), None);
}

#[test]
fn dovecot_logins() {
    assert_eq!(
        g(dovecot(
            "imap-login: Info: Aborted login (auth failed, 1 attempts): user=<m@example.de>, method=CRAM-MD5, rip=192.0.2.20, lip=192.0.2.1, TLS"
        )),
        x(K::Failure, "192.0.2.20", Some("m@example.de"))
    );
    assert_eq!(
        g(dovecot("pop3-login: Aborted login (tried to use disabled plaintext auth): rip=192.0.2.21, lip=192.0.2.1")),
        x(K::Failure, "192.0.2.21", None)
    );
    assert_eq!(
        g(dovecot(
            "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): method=PLAIN, rip=192.0.2.22, lip=192.0.2.1, TLS: Disconnected"
        )),
        x(K::Failure, "192.0.2.22", None)
    );
    assert_eq!(
        g(dovecot(
            "pop3-login: Disconnected: Inactivity (auth failed, 1 attempts): user=<info>, method=PLAIN, rip=192.0.2.23, lip=192.0.2.1"
        )),
        x(K::Failure, "192.0.2.23", Some("info"))
    );
    // No attempt at all: counted only in an aggressive mode.
    assert_eq!(
        g(dovecot("pop3-login: Disconnected (no auth attempts in 58 secs): user=<>, rip=192.0.2.24, lip=192.0.2.1"))
            .map(|x| x.0),
        Some(K::PreauthClose)
    );
    assert_eq!(
        g(dovecot(
            "dovecot: auth(default): pam(account@example.com,192.0.2.25): pam_authenticate() failed: User not known to the underlying authentication module: 2 Time(s)"
        )),
        x(K::InvalidUser, "192.0.2.25", Some("account@example.com"))
    );
    assert_eq!(
        g(dovecot(
            "auth-worker(default): Info: pam(username,192.0.2.26,<Xy1>): pam_authenticate() failed: Authentication failure (password mismatch?)"
        )),
        x(K::Failure, "192.0.2.26", Some("username"))
    );
    assert_eq!(
        g(dovecot("auth: passwd-file(a,b,192.0.2.27): unknown user")),
        x(K::InvalidUser, "192.0.2.27", Some("a,b"))
    );
    assert_eq!(
        g(dovecot(
            "auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=informix rhost=192.0.2.28"
        )),
        x(K::Failure, "192.0.2.28", Some("informix"))
    );
    // The user name is the client's: the last `rip=` is dovecot's.
    assert_eq!(
        g(dovecot("imap-login: Disconnected (auth failed, 1 attempts): user=<x, rip=6.6.6.6>, method=PLAIN, rip=192.0.2.29, lip=192.0.2.1")).map(|x| x.1),
        Some("192.0.2.29".into())
    );
    assert_eq!(
        g(dovecot("imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.30, lip=192.0.2.1, mpid=1, TLS")),
        x(K::Success, "192.0.2.30", Some("alice"))
    );
    assert_eq!(g(dovecot("imap(alice): Logged out in=0 out=1")), None);
}

#[test]
fn exim_courier_cyrus() {
    assert_eq!(
        g(exim(
            "login authenticator failed for r.example.com ([192.168.2.33]) [192.0.2.40]: 535 Incorrect authentication data (set_id=brian)"
        )),
        x(K::Failure, "192.0.2.40", Some("brian"))
    );
    assert_eq!(
        g(exim(
            "plain authenticator failed for ([192.168.2.102]) [192.0.2.41]: 535 Incorrect authentication data: 1 Time(s)"
        )),
        x(K::Failure, "192.0.2.41", None)
    );
    assert_eq!(
        g(exim(
            "auth_plain authenticator failed for (rom182) [192.0.2.42]:41556 I=[10.0.0.1]:25: 535 Incorrect authentication data (set_id=webmaster)"
        )),
        x(K::Failure, "192.0.2.42", Some("webmaster"))
    );
    assert_eq!(
        g(exim(
            "[10099] H=(yakult.example) [192.0.2.43]:3755 I=[10.0.0.1]:25 F=a@b.example rejected RCPT dir@example.org: relay not permitted"
        )),
        x(K::Rejected, "192.0.2.43", None)
    );
    assert_eq!(
        g(exim(
            "H=u.example (srv.u.example) [192.0.2.44] sender verify fail for <user@example.com>: Unrouteable address"
        )),
        x(K::Rejected, "192.0.2.44", None)
    );
    assert_eq!(
        g(exim(
            "[13314] SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[192.0.2.45]:25936 I=[10.0.0.1]:25 input=\"GET / HTTP/1.1\\r\\n\\r\\n\""
        )),
        x(K::Rejected, "192.0.2.45", None)
    );
    assert_eq!(
        g(exim(
            "[19591] SMTP call from pc.example.tw [192.0.2.46]:3767 I=[10.0.0.1]:25 dropped: too many nonmail commands (last was \"RSET\")"
        )),
        x(K::Rejected, "192.0.2.46", None)
    );
    assert_eq!(
        g(exim(
            "[26221] SMTP protocol error in \"AUTH LOGIN aW5m\" H=([127.0.0.1]) [192.0.2.47]:14243 I=[10.0.0.1]:587 AUTH command used when not advertised"
        )),
        x(K::Rejected, "192.0.2.47", None)
    );
    assert_eq!(
        g(exim("[5908] no MAIL in SMTP connection from [192.0.2.48]:2056 I=[10.0.0.1]:25 D=10s")),
        x(K::Rejected, "192.0.2.48", None)
    );
    assert_eq!(
        g(exim(
            "[25874] 1ahr79-0006jK-G9 SMTP connection from (v.example) [192.0.2.49]:44884 I=[10.0.0.1]:25 closed by DROP in ACL"
        )),
        x(K::Rejected, "192.0.2.49", None)
    );
    assert_eq!(g(exim("1ahr79-0006jK-G9 <= a@b.example H=m.example [192.0.2.50] P=esmtp S=100")), None);
    assert_eq!(
        g(courier("LOGIN FAILED, user=test, ip=[::ffff:192.0.2.51]")),
        x(K::Failure, "192.0.2.51", Some("test"))
    );
    assert_eq!(g(courier("LOGIN FAILED, method=PLAIN, ip=[::ffff:192.0.2.52]")), x(K::Failure, "192.0.2.52", None));
    assert_eq!(
        g(courier("error,relay=::ffff:192.0.2.53,msg=\"535 Authentication failed.\",cmd: AUTH PLAIN AHVzZXI= xyz")),
        x(K::Failure, "192.0.2.53", None)
    );
    assert_eq!(
        g(courier("error,relay=::ffff:192.0.2.54,from=<a@b>,to=<c@d>: 550 User <c@d> unknown.")),
        x(K::Rejected, "192.0.2.54", None)
    );
    assert_eq!(
        g(cyrus(
            "badlogin: h.example.com [192.0.2.55] plaintext user SASL(-13): authentication failure: checkpass failed"
        )),
        x(K::Failure, "192.0.2.55", None)
    );
    assert_eq!(
        g(cyrus(
            "badlogin: [192.0.2.56] PLAIN [SASL(-13): user not found: user: x property: cmusaslsecretPLAIN not found in sasldb]"
        )),
        x(K::Failure, "192.0.2.56", None)
    );
}
