use super::*;

use crate::ingest::parse::testing::{Got, got, who, x};

fn p(msg: &str) -> Got {
    got(parse(msg, None))
}

/// The lines of one connection, through the connection table (as sshd's lines are read),
/// and through a single connection: the same events either way.
fn conn(lines: &[&str]) -> Vec<Got> {
    let mut table = Connections::default();
    let now = chrono::Utc::now();
    let got: Vec<Got> =
        lines.iter().map(|l| parse_in(l, &mut table, "h", Some(42), now).map(|e| (e.kind, who(&e), e.user))).collect();
    let mut c = Connection::default();
    let direct: Vec<Got> = lines.iter().map(|l| parse(l, Some(&mut c)).map(|e| (e.kind, who(&e), e.user))).collect();
    assert_eq!(got, direct, "{lines:?}");
    got
}

#[test]
fn failed_logins_of_every_openssh_version() {
    assert_eq!(p("Failed password for root from 192.0.2.1 port 22 ssh2"), x(K::Failure, "192.0.2.1", Some("root")));
    assert_eq!(
        p("Failed password for invalid user admin from 2001:db8::1 port 22 ssh2"),
        x(K::Failure, "2001:db8::1", Some("admin"))
    );
    assert_eq!(p("Failed none for invalid user x from 192.0.2.2 port 1 ssh2"), x(K::Failure, "192.0.2.2", Some("x")));
    assert_eq!(
        p("Failed password for invalid user ROOT from 192.0.2.3 port 50273"),
        x(K::Failure, "192.0.2.3", Some("ROOT"))
    );
    assert_eq!(p("Failed password for invalid user ROOT from 2001:db8::3"), x(K::Failure, "2001:db8::3", Some("ROOT")));
    assert_eq!(p("Failed password for dan from 192.0.2.4 port 45416 ssh1"), x(K::Failure, "192.0.2.4", Some("dan")));
    assert_eq!(
        p("Failed keyboard-interactive/pam for invalid user jo from 192.0.2.5 port 33723 ssh2"),
        x(K::Failure, "192.0.2.5", Some("jo"))
    );
    // Solaris: the invalid name is written as such, with a space.
    assert_eq!(
        p("Failed keyboard-interactive for <invalid username> from 192.0.2.6 port 42742 ssh2"),
        x(K::Failure, "192.0.2.6", Some("<invalid username>"))
    );
    assert_eq!(
        p(
            "Failed hostbased for dan from 192.0.2.7 port 45785 ssh2: RSA 8c:e3:aa, client user \"dan\", client host \"h\""
        ),
        x(K::Failure, "192.0.2.7", Some("dan"))
    );
    assert_eq!(
        p("Failed publickey for invalid user gray from 192.0.2.8 port 37954 ssh2: RSA SHA256:v3dp"),
        x(K::Failure, "192.0.2.8", Some("gray"))
    );
    // An agent offering several keys to an existing account is not a failure.
    assert_eq!(
        p("Failed publickey for git from 192.0.2.9 port 57904 ssh2: ECDSA 0e:ff"),
        x(K::KeyRejected, "192.0.2.9", Some("git"))
    );
    assert_eq!(
        p("message repeated 3 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]").map(|_| ()),
        Some(())
    );
    assert_eq!(
        parse("message repeated 3 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]", None).unwrap().count,
        3
    );
    assert_eq!(p("Failed password for root from not-an-ip! port 22 ssh2"), None);
}

#[test]
fn user_names_and_auth_info_cannot_frame_an_address() {
    let host = |m: &str| p(m).map(|g| g.1);
    let some = |a: &str| Some(a.to_string());
    assert_eq!(
        host("Failed password for invalid user from 10.10.1.1 from 192.0.2.20 port 58946 ssh2"),
        some("192.0.2.20")
    );
    assert_eq!(
        host("Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 192.0.2.21 port 58946 ssh2"),
        some("192.0.2.21")
    );
    assert_eq!(
        host("Failed password for invalid user test from 192.0.2.22 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2"),
        some("192.0.2.22")
    );
    assert_eq!(
        host("Failed password for user from 192.0.2.23 port 20000 ssh1: ruser from 1.2.3.4"),
        some("192.0.2.23")
    );
    assert_eq!(
        host("Failed password for invalid user x from 6.6.6.6 port 1 ssh2: y from 192.0.2.24 port 5 ssh2"),
        some("192.0.2.24")
    );
    assert_eq!(host("Invalid user a from 6.6.6.6 port 1 from 192.0.2.25 port 5"), some("192.0.2.25"));
    assert_eq!(
        host("User a from 6.6.6.6 from 192.0.2.26 not allowed because not listed in AllowUsers"),
        some("192.0.2.26")
    );
    assert_eq!(
        host("Bad protocol version identification 'x' from 6.6.6.6' from 192.0.2.27 port 31778"),
        some("192.0.2.27")
    );
    assert_eq!(
        host("Connection closed by authenticating user t 6.6.6.6 port 12345 192.0.2.28 port 4 [preauth]"),
        some("192.0.2.28")
    );
    // The connection's own address settles a line that could be read two ways.
    let got = conn(&[
        "Invalid user x from 6.6.6.6 port 1 ssh2: from 192.0.2.29 port 5",
        "Failed password for invalid user x from 6.6.6.6 port 1 ssh2: from 192.0.2.29 port 5 ssh2",
    ]);
    assert_eq!(got[1].as_ref().map(|g| g.1.as_str()), Some("192.0.2.29"));
}

#[test]
fn refusals_and_other_failure_lines() {
    assert_eq!(p("Invalid user webmaster from 192.0.2.30"), x(K::InvalidUser, "192.0.2.30", Some("webmaster")));
    assert_eq!(p("Invalid user ftp from 192.0.2.31 port 37220"), x(K::InvalidUser, "192.0.2.31", Some("ftp")));
    assert_eq!(p("Invalid user  from 192.0.2.32 port 34916"), x(K::InvalidUser, "192.0.2.32", Some("")));
    assert_eq!(p("Illegal user x from 192.0.2.33"), x(K::InvalidUser, "192.0.2.33", Some("x")));
    for why in [
        "not listed in AllowUsers",
        "listed in DenyUsers",
        "not in any group",
        "a group is listed in DenyGroups",
        "none of user's groups are listed in AllowGroups",
    ] {
        assert_eq!(
            p(&format!("User root from 192.0.2.34 not allowed because {why}")),
            x(K::Refused, "192.0.2.34", Some("root")),
            "{why}"
        );
    }
    assert_eq!(
        p("User root from example.com not allowed because not listed in AllowUsers"),
        x(K::Refused, "example.com", Some("root"))
    );
    assert_eq!(p("ROOT LOGIN REFUSED FROM 192.0.2.35"), x(K::Refused, "192.0.2.35", Some("root")));
    assert_eq!(p("ROOT LOGIN REFUSED FROM 192.0.2.35 port 12345 [preauth]"), x(K::Refused, "192.0.2.35", Some("root")));
    assert_eq!(p("ROOT LOGIN REFUSED FROM ::ffff:192.0.2.36"), x(K::Refused, "192.0.2.36", Some("root")));
    // A link-local sender with its zone: the address without the zone.
    assert_eq!(p("Failed password for root from fe80::1%eth0 port 22 ssh2"), x(K::Failure, "fe80::1", Some("root")));
    assert_eq!(p("Invalid user bob from fe80::a:b%enp3s0 port 4022"), x(K::InvalidUser, "fe80::a:b", Some("bob")));
    assert_eq!(
        p("refused connect from _U2FsdGVk_@::ffff:192.0.2.37 (::ffff:192.0.2.37)"),
        x(K::Refused, "192.0.2.37", None)
    );
    assert_eq!(
        p("error: maximum authentication attempts exceeded for invalid user z from 192.0.2.38 port 2 ssh2 [preauth]"),
        x(K::MaxAttempts, "192.0.2.38", Some("z"))
    );
    assert_eq!(
        p("Disconnecting authenticating user root 192.0.2.39 port 22: Too many authentication failures [preauth]"),
        x(K::MaxAttempts, "192.0.2.39", Some("root"))
    );
    assert_eq!(
        p(
            "Disconnecting invalid user admin 192.0.2.40 port 44004: Change of username or service not allowed: (admin,ssh-connection) -> (user,ssh-connection) [preauth]"
        ),
        x(K::Refused, "192.0.2.40", Some("admin"))
    );
    assert_eq!(
        p("Received disconnect from 192.0.2.41: 3: com.jcraft.jsch.JSchException: Auth fail"),
        x(K::Failure, "192.0.2.41", None)
    );
    assert_eq!(
        p("error: Received disconnect from 192.0.2.42 port 7736:3: com.jcraft.jsch.JSchException: Auth fail [preauth]"),
        x(K::Failure, "192.0.2.42", None)
    );
    // FreeBSD/macOS PAM lines.
    assert_eq!(
        p("error: PAM: Authentication failure for bob from 192.0.2.43"),
        x(K::Failure, "192.0.2.43", Some("bob"))
    );
    assert_eq!(
        p("error: PAM: authentication error for james from example.com via 192.168.1.201"),
        x(K::Failure, "example.com", Some("james"))
    );
    assert_eq!(
        p("error: PAM: User not known to the underlying authentication module for illegal user k from 192.0.2.44 "),
        x(K::InvalidUser, "192.0.2.44", Some("k"))
    );
    // A host that is neither an address nor a name: no client rather than a wrong one.
    assert_eq!(p("error: PAM: Authentication failure for u from 192.030.0.6"), None);
    // sshd's PAM line repeats its own `Failed password`: kept, not a failure.
    assert_eq!(
        p(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.45  user=root"
        ),
        x(K::PamFailure, "192.0.2.45", Some("root"))
    );
    assert!(!K::PamFailure.is_failure());
}

#[test]
fn pre_authentication_probes_and_closes() {
    for (m, a) in [
        ("Did not receive identification string from 192.0.2.50", "192.0.2.50"),
        ("Did not receive identification string from 192.0.2.51 port 35836", "192.0.2.51"),
        ("Bad protocol version identification 'dummy string' from 192.0.2.52 port 31778", "192.0.2.52"),
        ("banner exchange: Connection from 192.0.2.53 port 5: invalid format", "192.0.2.53"),
        ("Timeout before authentication for 192.0.2.54 port 1", "192.0.2.54"),
    ] {
        assert_eq!(p(m), x(K::NoIdentification, a, None), "{m}");
    }
    for (m, a) in [
        ("Connection closed by 192.0.2.60 port 22 [preauth]", "192.0.2.60"),
        ("Connection reset by 192.0.2.61 port 14282 [preauth]", "192.0.2.61"),
        ("Disconnected from 192.0.2.62 port 36985 [preauth]", "192.0.2.62"),
        ("Received disconnect from 192.0.2.63 port 58846:11: Bye Bye [preauth]", "192.0.2.63"),
        (
            "Received disconnect from 192.0.2.64: 14: No supported authentication methods available [preauth]",
            "192.0.2.64",
        ),
        (
            "Unable to negotiate with 192.0.2.65 port 55419: no matching cipher found. Their offer: aes256-cbc [preauth]",
            "192.0.2.65",
        ),
    ] {
        assert_eq!(p(m).map(|g| (g.0, g.1)), Some((K::PreauthClose, a.to_string())), "{m}");
    }
    assert_eq!(
        p("Connection closed by authenticating user root 192.0.2.66 port 46038 [preauth]"),
        x(K::PreauthClose, "192.0.2.66", Some("root"))
    );
    assert_eq!(
        p("Connection closed by invalid user  192.0.2.67 port 34916 [preauth]"),
        x(K::PreauthClose, "192.0.2.67", Some(""))
    );
    // After a session (no `[preauth]`) a disconnect is no probe.
    assert_eq!(p("Received disconnect from 192.0.2.68 port 5:11: disconnected by user"), None);
    assert_eq!(p("Connection closed by 192.0.2.69 port 22"), None);
}

#[test]
fn lines_without_a_client_take_it_from_their_connection() {
    // OpenSSH 8+: a TCP connect and close, then the close names the client.
    assert_eq!(
        conn(&[
            "error: kex_exchange_identification: Connection closed by remote host",
            "Connection closed by 192.0.2.70 port 5555"
        ]),
        vec![None, x(K::NoIdentification, "192.0.2.70", None)]
    );
    // VERBOSE logging names it first.
    assert_eq!(
        conn(&[
            "Connection from 192.0.2.71 port 62004 on 192.0.2.1 port 22",
            "error: kex_exchange_identification: client sent invalid protocol identifier \"\"",
        ]),
        vec![None, x(K::NoIdentification, "192.0.2.71", None)]
    );
    // OpenSSH 7.6+ adds the routing domain.
    assert_eq!(
        conn(&[
            "Connection from 192.0.2.75 port 62004 on 192.0.2.1 port 22 rdomain \"\"",
            "error: kex_exchange_identification: read: Connection reset by peer",
        ]),
        vec![None, x(K::NoIdentification, "192.0.2.75", None)]
    );
    // Keys refused, then sshd gives up: one failure.
    assert_eq!(
        conn(&[
            "Failed publickey for git from 192.0.2.72 port 57910 ssh2: ECDSA 1e:fe",
            "Failed publickey for git from 192.0.2.72 port 57910 ssh2: RSA 14:ba",
            "Disconnecting: Too many authentication failures for git [preauth]",
            "Connection closed by 192.0.2.72 [preauth]",
        ]),
        vec![
            x(K::KeyRejected, "192.0.2.72", Some("git")),
            x(K::KeyRejected, "192.0.2.72", Some("git")),
            x(K::MaxAttempts, "192.0.2.72", Some("git")),
            x(K::PreauthClose, "192.0.2.72", None),
        ]
    );
    // A locked account, then the disconnect names the client.
    assert_eq!(
        conn(&[
            "User root not allowed because account is locked",
            "input_userauth_request: invalid user root [preauth]",
            "Received disconnect from 192.0.2.73: 11: Bye Bye [preauth]",
        ]),
        vec![None, None, x(K::Refused, "192.0.2.73", Some("root"))]
    );
    // A login that worked forgets the keys its agent tried first.
    let got = conn(&[
        "Failed publickey for git from 192.0.2.74 port 1 ssh2: RSA 04:bc",
        "Accepted publickey for git from 192.0.2.74 port 1 ssh2: DSA 36:48",
    ]);
    assert_eq!(got[1], x(K::Success, "192.0.2.74", Some("git")));
}

#[test]
fn dropbear_lines() {
    let d = |m: &str| dropbear(m).map(|e| (e.kind, who(&e), e.user));
    assert_eq!(d("bad password attempt for 'root' from 192.0.2.80:5543"), x(K::Failure, "192.0.2.80", Some("root")));
    assert_eq!(d("Bad password attempt for 'root' from 192.0.2.81:60588"), x(K::Failure, "192.0.2.81", Some("root")));
    assert_eq!(
        d("login attempt for nonexistent user from ::ffff:192.0.2.82:60495"),
        x(K::InvalidUser, "192.0.2.82", None)
    );
    assert_eq!(
        d("Exit before auth (user 'root', 10 fails): Max auth tries reached - user 'root' from 192.0.2.83:60588"),
        x(K::MaxAttempts, "192.0.2.83", Some("root"))
    );
    assert_eq!(
        d("[825] Jul 10 23:53:52 Bad password attempt for 'root' from 192.0.2.84:52289"),
        x(K::Failure, "192.0.2.84", Some("root"))
    );
    assert_eq!(d("Password auth succeeded for 'alice' from 192.0.2.85:1"), x(K::Success, "192.0.2.85", Some("alice")));
    assert_eq!(d("Child connection from 192.0.2.86:5"), None);
}

#[test]
fn the_connection_table_stays_bounded_and_standalone_lines_skip_it() {
    let mut table = Connections::default();
    let now = chrono::Utc::now();
    for pid in 0..10_000u32 {
        let l = format!("Failed password for root from 192.0.2.{} port {} ssh2", pid % 250, 1024 + pid % 60000);
        assert!(parse_in(&l, &mut table, "h", Some(pid), now).is_some());
        assert!(table.len() <= Connections::MAX, "{}", table.len());
    }
    let mut table = Connections::default();
    for (pid, l) in [
        "Accepted publickey for git from 192.0.2.74 port 1 ssh2: ED25519 SHA256:x",
        "Received disconnect from 192.0.2.74 port 1:11: disconnected by user",
        "Connection closed by 192.0.2.75 port 2 [preauth]",
        "pam_unix(sshd:session): session opened for user git(uid=1000) by (uid=0)",
    ]
    .iter()
    .enumerate()
    {
        parse_in(l, &mut table, "h", Some(pid as u32), now);
    }
    assert!(table.is_empty(), "a login, a close and a session line leave nothing behind");
}
