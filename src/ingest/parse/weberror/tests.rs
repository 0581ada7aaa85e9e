use super::*;
use crate::messages::AuthEventKind;

use crate::ingest::parse::testing::{got as g, x};

#[test]
fn apache_authentication_and_refusals() {
    let a = |s: &str| g(apache(s));
    assert_eq!(a(" [error] [client 192.0.2.1] user  not found: /"), x(K::InvalidUser, "192.0.2.1", Some("")));
    assert_eq!(
        a(" [error] [client 192.0.2.2] user dsfasdf not found: /"),
        x(K::InvalidUser, "192.0.2.2", Some("dsfasdf"))
    );
    assert_eq!(
        a(" [error] [client 2001:db8::7] user test-ipv6 not found: /"),
        x(K::InvalidUser, "2001:db8::7", Some("test-ipv6"))
    );
    assert_eq!(
        a(
            " [authz_core:error] [pid 10691] [client 192.0.2.3:44271] AH01630: client denied by server configuration: /var/www/html/x.php"
        ),
        x(K::Rejected, "192.0.2.3", None)
    );
    assert_eq!(
        a(
            " [auth_basic:error] [pid 17512:tid 1401] [client 192.0.2.4:51390] AH01617: user username: authentication failure for \"/basic/file\": Password Mismatch"
        ),
        x(K::Failure, "192.0.2.4", Some("username"))
    );
    assert_eq!(
        a(
            " [auth_basic:error] [pid 17540:tid 1401] [client 192.0.2.5:51395] AH01618: user wrongusername not found: /basic/file"
        ),
        x(K::InvalidUser, "192.0.2.5", Some("wrongusername"))
    );
    assert_eq!(
        a(
            " [authz_owner:error] [pid 1:tid 2] [client [2001:db8::8]:51548] AH01637: Authorization of user t to access /b/c.html failed, reason: file owner dan does not match"
        ),
        x(K::Refused, "2001:db8::8", Some("t"))
    );
    assert_eq!(
        a(" [error] [client 192.0.2.6] Digest: user `username' in realm `digest private area' not found: /d/x.html"),
        x(K::InvalidUser, "192.0.2.6", Some("username"))
    );
    assert_eq!(
        a(
            " [auth_digest:error] [pid 1:tid 2] [client 192.0.2.7:51406] AH01792: user username: password mismatch: /digest/x.html"
        ),
        x(K::Failure, "192.0.2.7", Some("username"))
    );
    assert_eq!(
        a(" [error] [client 192.0.2.8] Digest: realm mismatch - got `so far away' but expected `area'").map(|x| x.0),
        Some(K::Failure)
    );
    assert_eq!(
        a(" [error] [client 192.0.2.9] user gg not found: /, referer: http://example.com/m.html"),
        x(K::InvalidUser, "192.0.2.9", Some("gg"))
    );
    // A client's request that quotes another client is not that client.
    assert_eq!(a(" [error] [client 192.0.2.10] File does not exist: /srv/[client 6.6.6.6] user root not found"), None);
}

#[test]
fn apache_overflows_noscript_and_shellshock() {
    let a = |s: &str| g(apache(s)).map(|x| (x.0, x.1));
    let k = |k: AuthEventKind, ip: &str| Some((k, ip.to_string()));
    assert_eq!(
        a(" [core:error] [pid 1] [client 192.0.2.20:1] AH00126: Invalid URI in request GET /%%% HTTP/1.1"),
        k(K::Exploit, "192.0.2.20")
    );
    assert_eq!(
        a(" [error] [client 192.0.2.21] request failed: URI too long (longer than 8190)"),
        k(K::Exploit, "192.0.2.21")
    );
    assert_eq!(
        a(" [error] [client 192.0.2.22] request failed: erroneous characters after protocol string: GET / HTTP/1.1x"),
        k(K::Exploit, "192.0.2.22")
    );
    assert_eq!(
        a(
            " [cgi:error] [pid 1] [client 192.0.2.23:5] AH01215: /bin/bash: warning: HTTP_TEST: ignoring function definition attempt"
        ),
        k(K::Exploit, "192.0.2.23")
    );
    assert_eq!(
        a(
            " [cgi:error] [pid 1] [client 192.0.2.24:5] AH01215: /bin/bash: error importing function definition for `HTTP_TEST'"
        ),
        k(K::Exploit, "192.0.2.24")
    );
    assert_eq!(
        a(
            " [cgi:error] [pid 1] [client 192.0.2.25:5] AH01264: script '/var/www/cgi-bin/x.pl' not found or unable to stat"
        ),
        k(K::Rejected, "192.0.2.25")
    );
}

#[test]
fn nginx_authentication_and_limits() {
    let n = |s: &str| g(nginx(s));
    assert_eq!(
        n(
            "*66647 user \"xyz\" was not found in \"/var/www/.htpasswd\", client: 192.0.2.30, server: www.example.com, request: \"GET / HTTP/1.1\", host: \"www.example.com\""
        ),
        x(K::InvalidUser, "192.0.2.30", Some("xyz"))
    );
    assert_eq!(
        n(
            "*1 user \"bob\": password mismatch, client: 192.0.2.31, server: s, request: \"GET / HTTP/1.1\", host: \"h\""
        ),
        x(K::Failure, "192.0.2.31", Some("bob"))
    );
    assert_eq!(
        n(
            "*2 no user/password was provided for basic authentication, client: 192.0.2.32, server: s, request: \"GET /a HTTP/1.1\", host: \"h\""
        ),
        x(K::Failure, "192.0.2.32", None)
    );
    assert_eq!(
        n(
            "*3 limiting requests, excess: 0.520 by zone \"one\", client: 2001:db8::9, server: s, request: \"GET / HTTP/1.1\", host: \"h\""
        ),
        x(K::Rejected, "2001:db8::9", None)
    );
    // Two `client:` parts: one is the client's own text; nobody is named.
    assert_eq!(
        n(
            "*4 user \"x, client: 6.6.6.6, server: s\": password mismatch, client: 192.0.2.33, server: s, request: \"GET / HTTP/1.1\", host: \"h\""
        ),
        None
    );
    assert_eq!(
        n("*5 open() \"/var/www/x\" failed (2: No such file or directory), client: 192.0.2.34, server: s"),
        None
    );
}
