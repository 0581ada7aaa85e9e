//! TLS for the admin API (rustls, ring provider). The server's side comes from `[admin]
//! tls_cert` / `tls_key`, with `tls_client_ca` requiring a client certificate issued by
//! one of its CAs. The CLI's side trusts exactly the certificate the daemon serves — it
//! reads the same `tls_cert` file, as it reads the token from the data directory — so a
//! self-signed certificate works without a CA, and nothing else is trusted; it presents
//! a client certificate when given one.
//!
//! Architecture invariant: the only module that uses rustls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::AdminConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {detail}")]
    Read { what: &'static str, path: PathBuf, detail: String },
    #[error("{path} holds no {what} (PEM `-----BEGIN …-----` blocks expected)")]
    Empty { what: &'static str, path: PathBuf },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Makes ring the process's TLS provider (clients that take the process default — the
/// NATS client — would otherwise panic: two providers are compiled in). Once, at start.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |detail: String| TlsError::Read { what, path: path.to_path_buf(), detail };
    let list = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if list.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_path_buf() });
    }
    Ok(list)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Empty { what: "private key", path: path.to_path_buf() }
        }
        e => TlsError::Read { what: "private key", path: path.to_path_buf(), detail: e.to_string() },
    })
}

/// The server's TLS configuration, or `None` when `[admin]` sets no certificate.
pub fn server_config(cfg: &AdminConfig) -> Result<Option<rustls::ServerConfig>, TlsError> {
    let (Some(cert), Some(key_path)) = (&cfg.tls_cert, &cfg.tls_key) else { return Ok(None) };
    let chain = certs(cert, "certificate")?;
    let key = key(key_path)?;
    let setup = |e: rustls::Error| TlsError::Setup(e.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions();
    let builder = builder.map_err(setup)?;
    let builder = match &cfg.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "client CA certificate")? {
                roots.add(c).map_err(setup)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Setup(format!("client CAs in {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Setup(format!("{} and {}: {e}", cert.display(), key_path.display())))?;
    Ok(Some(config))
}

/// How the CLI speaks TLS to the daemon.
#[derive(Clone, Debug)]
pub struct ClientTls(Arc<rustls::ClientConfig>);

impl ClientTls {
    /// Trusts only the first certificate of `server_cert` (the daemon's `tls_cert`);
    /// presents `identity` (certificate chain, key) when given.
    pub fn new(server_cert: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
        let pinned = certs(server_cert, "certificate")?.swap_remove(0);
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { cert: pinned, provider }));
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key_path)) => builder
                .with_client_auth_cert(certs(chain, "client certificate")?, key(key_path)?)
                .map_err(|e| TlsError::Setup(format!("client certificate {}: {e}", chain.display())))?,
        };
        Ok(ClientTls(Arc::new(config)))
    }

    /// A TLS stream over `tcp` (the handshake happens on first use).
    pub(super) fn wrap(&self, tcp: TcpStream, addr: SocketAddr) -> Result<impl Read + Write + use<>, TlsError> {
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = rustls::ClientConnection::new(self.0.clone(), name).map_err(|e| TlsError::Setup(e.to_string()))?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

/// Accepts exactly one certificate, byte for byte, and checks that the server holds its
/// key (the handshake signatures). Its validity dates are not checked: the operator
/// pinned this certificate by configuring it.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the server's certificate is not the configured tls_cert".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
