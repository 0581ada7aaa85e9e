//! A small HTTP/1.1 client for the admin API, plain on loopback or over TLS (the CLI and
//! tests use it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the warden admin API at {addr}: {source} (is `warden run` running?)")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("admin API i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from {addr} within 60 s (is it a warden admin API?)")]
    Timeout { addr: SocketAddr },
    #[error("malformed response from the admin API")]
    Malformed,
    #[error("TLS with the admin API at {addr}: {detail}")]
    Tls { addr: SocketAddr, detail: String },
}

pub use super::tls::ClientTls;

/// Where the API is and how to speak to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<ClientTls>,
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint { addr, tls: None }
    }
}

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The body as text (lossy); `bytes` is the body as sent.
    pub body: String,
    pub bytes: Vec<u8>,
}

/// Sends one request and reads the whole response (`Connection: close`).
pub fn request(
    to: impl Into<Endpoint>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Response, ClientError> {
    let Endpoint { addr, tls } = to.into();
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| ClientError::Connect { addr, source })?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let raw = match tls {
        None => exchange(tcp, addr, method, path, token, body)?,
        Some(tls) => {
            let stream = tls.wrap(tcp, addr).map_err(|e| ClientError::Tls { addr, detail: e.to_string() })?;
            exchange(stream, addr, method, path, token, body).map_err(|e| match e {
                // The handshake's failures surface as I/O errors of the first write or read.
                ClientError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    ClientError::Tls { addr, detail: e.to_string() }
                }
                e => e,
            })?
        }
    };
    parse(&raw)
}

/// Writes the request and reads until the server closes.
fn exchange(
    mut s: impl Read + Write,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Vec<u8>, ClientError> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if method != "GET" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify after a whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Err(ClientError::Timeout { addr })
        }
        Err(e) => Err(ClientError::Io(e)),
    }
}

fn parse(raw: &[u8]) -> Result<Response, ClientError> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(ClientError::Malformed)?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| ClientError::Malformed)?;
    let mut lines = head.split("\r\n");
    let status: u16 =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).ok_or(ClientError::Malformed)?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = &raw[split + 4..];
    let bytes = if chunked {
        let mut out = Vec::new();
        loop {
            let nl = body.windows(2).position(|w| w == b"\r\n").ok_or(ClientError::Malformed)?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&body[..nl]).map_err(|_| ClientError::Malformed)?.trim(), 16)
                    .map_err(|_| ClientError::Malformed)?;
            body = &body[nl + 2..];
            if size == 0 || body.len() < size {
                break;
            }
            out.extend_from_slice(&body[..size]);
            body = &body[(size + 2).min(body.len())..];
        }
        out
    } else {
        body.to_vec()
    };
    Ok(Response { status, body: String::from_utf8_lossy(&bytes).into_owned(), bytes })
}
