//! The admin API over TLS (rustls), with and without client certificates: the daemon
//! serves only TLS on its port, the CLI trusts exactly the configured certificate, and
//! a client certificate from another issuer is refused. Certificates in
//! `fixtures/tls` (test-only, see its README).

use std::path::{Path, PathBuf};

use warden::admin::client::{self, ClientTls, Endpoint};

use crate::support::*;

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls").join(name)
}

fn tls_toml(client_ca: bool) -> String {
    let mut t = format!("tls_cert = {:?}\ntls_key = {:?}\n", fx("server.crt"), fx("server.key"));
    if client_ca {
        t.push_str(&format!("tls_client_ca = {:?}\n", fx("client-ca.crt")));
    }
    t
}

fn health(to: Endpoint, token: &str) -> Result<u16, client::ClientError> {
    client::request(to, "GET", "/v1/health", Some(token), None).map(|r| r.status)
}

#[test]
fn the_admin_api_speaks_tls_and_trusts_only_its_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pinned = ClientTls::new(&fx("server.crt"), None).unwrap();
    let mut d = Daemon::start_admin(tmp.path(), &tls_toml(false), Some(pinned));
    assert_eq!(health(d.endpoint(), &d.token).unwrap(), 200);
    // Plain HTTP on the TLS port gets no answer of the API.
    assert!(!matches!(health(d.addr.into(), &d.token), Ok(200)));
    // A client that expects another certificate refuses this server.
    let other = ClientTls::new(&fx("rogue.crt"), None).unwrap();
    let e = health(Endpoint { addr: d.addr, tls: Some(other) }, &d.token).unwrap_err();
    assert!(e.to_string().contains("not the configured tls_cert"), "{e}");
    // The CLI reads the same configuration and speaks TLS.
    let out = d.cli(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.terminate(), Some(0));
}

#[test]
fn a_client_certificate_from_the_configured_ca_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = |cert: &str, key: &str| ClientTls::new(&fx("server.crt"), Some((&fx(cert), &fx(key)))).unwrap();
    let mut d = Daemon::start_admin(tmp.path(), &tls_toml(true), Some(identity("client.crt", "client.key")));
    assert_eq!(health(d.endpoint(), &d.token).unwrap(), 200);
    let anonymous = ClientTls::new(&fx("server.crt"), None).unwrap();
    assert!(health(Endpoint { addr: d.addr, tls: Some(anonymous) }, &d.token).is_err());
    // Same name, another issuer.
    let rogue = identity("rogue.crt", "rogue.key");
    assert!(health(Endpoint { addr: d.addr, tls: Some(rogue) }, &d.token).is_err());
    // The CLI presents the certificate it is given, and only then gets through.
    assert!(!d.cli(&["status"]).status.success());
    let (cert, key) = (fx("client.crt"), fx("client.key"));
    let out = d.cli(&["status", "--client-cert", cert.to_str().unwrap(), "--client-key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.terminate(), Some(0));
}

/// Unusable TLS files stop the start with the file named, never a fallback to HTTP.
#[test]
fn unusable_tls_files_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let not_pem = tmp.path().join("cert.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    for (cert, key, says) in [
        (not_pem.clone(), fx("server.key"), "holds no certificate"),
        (fx("server.crt"), fx("server.crt"), "holds no private key"),
        (fx("server.crt"), fx("rogue.key"), "server.crt"),
        (tmp.path().join("missing.pem"), fx("server.key"), "cannot read certificate"),
    ] {
        let config = tmp.path().join("warden.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{}\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n",
                tmp.path().join("data"),
                free_port()
            ),
        )
        .unwrap();
        // `timeout`: a daemon that started anyway must fail the test, not hang it.
        let out = std::process::Command::new("timeout")
            .args(["60", BIN, "run", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{says}: {err}");
        assert!(err.contains(says), "{says}: {err}");
    }
}
