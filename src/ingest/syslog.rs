//! `Syslog`: receives syslog messages over UDP or TCP, so rsyslog, syslog-ng or Vector
//! can forward many hosts to one Warden.
//!
//! Owns: the listening socket, one task per TCP connection (bounded per sender, in
//! total and in idle time: see `syslog_conns`), and a batcher. Accepts: datagrams and TCP streams; TCP frames are
//! newline-terminated or octet-counted (RFC 6587), detected per frame. Emits: `LogBatch`es
//! (not checkpointed: a network stream cannot be read again, so the agent flushes their
//! effects before acknowledging them).
//! Survives a restart: nothing; senders retransmit over TCP, UDP is lossy by nature.
//!
//! Each message (RFC 3164 or RFC 5424) is rewritten into one normalised line
//! `TIMESTAMP HOST APP[PROCID]: MSG` for the source's parser; the host in the message
//! header becomes the event's host (the sender's address when the header has none).
//! Backpressure: connections push into a bounded channel, so a slow consumer stops TCP
//! reads (and senders), and UDP datagrams beyond the socket buffer (sized by the source's
//! `recv_buffer_bytes`) are dropped by the kernel — counted from `/proc/net/udp` and
//! exported, never silent. Warnings a sender can provoke are throttled, with counts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::syslog_conns::{Admission, Conns};
use super::{BatchBuilder, LineSplitter, LogSink, send_batch};
use crate::config::{IngestConfig, LogFormat, SyslogLimits};
use crate::telemetry::{Metrics, Throttle};

/// How often a repeated warning a sender can provoke is said at most.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often the kernel's drop count of a UDP socket is read.
const DROPS_EVERY: Duration = Duration::from_secs(5);
/// How long a partial batch waits for more messages.
const BATCH_DELAY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Why a syslog message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no <PRI> header")]
    NoPriority,
    #[error("RFC 5424 header is incomplete")]
    Truncated5424,
    #[error("octet count `{0}` is not a valid frame length")]
    BadLength(String),
}

fn is_printable_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Rewrites one syslog message into the line format the parsers read.
pub fn normalize(msg: &str, peer: IpAddr, now: DateTime<Utc>) -> Result<String, FrameError> {
    let msg = msg.trim_end_matches(['\n', '\r', '\0']);
    let rest = msg.strip_prefix('<').ok_or(FrameError::NoPriority)?;
    let close = rest.find('>').filter(|i| (1..=3).contains(i)).ok_or(FrameError::NoPriority)?;
    let pri: u16 = rest[..close].parse().map_err(|_| FrameError::NoPriority)?;
    if pri > 191 {
        return Err(FrameError::NoPriority);
    }
    let rest = &rest[close + 1..];
    if let Some(body) = rest.strip_prefix("1 ") {
        // RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
        let mut parts = body.splitn(6, ' ');
        let (ts, host, app, procid, _msgid, tail) = (
            parts.next().ok_or(FrameError::Truncated5424)?,
            parts.next().ok_or(FrameError::Truncated5424)?,
            parts.next().ok_or(FrameError::Truncated5424)?,
            parts.next().ok_or(FrameError::Truncated5424)?,
            parts.next().ok_or(FrameError::Truncated5424)?,
            parts.next().unwrap_or("-"),
        );
        let ts = match DateTime::parse_from_rfc3339(ts) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => now,
        };
        let host = if host != "-" && is_printable_token(host) { host.to_string() } else { peer.to_string() };
        let app = if is_printable_token(app) && app != "-" { app } else { "-" };
        let text = skip_structured_data(tail);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let tag =
            if procid != "-" && is_printable_token(procid) { format!("{app}[{procid}]") } else { app.to_string() };
        return Ok(format!("{} {host} {tag}: {text}", ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)));
    }
    // RFC 3164: `Mmm dd hh:mm:ss HOST TAG: MSG`. Without a timestamp, the receiver's time
    // and the sender's address stand in.
    let b = rest.as_bytes();
    let has_ts = b.len() >= 16 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':';
    // The time is 15 ASCII bytes and a space; anything else there (a multi-byte
    // character: found by fuzzing, it panicked the slicing) is not a timestamp.
    if has_ts && let (Some(stamp), Some(after)) = (rest.get(..15), rest.get(16..)) {
        // A sender that leaves out the host writes `TAG: MSG` right after the time.
        let first = after.split(' ').next().unwrap_or("");
        if first.ends_with(':') || first.contains('[') {
            return Ok(format!("{stamp} {peer} {after}"));
        }
        return Ok(rest.to_string());
    }
    let local = now.with_timezone(&chrono::Local).format("%b %e %H:%M:%S");
    Ok(format!("{local} {peer} {rest}"))
}

/// Skips RFC 5424 structured data (`-` or one or more `[...]` elements, with `\]` escapes).
fn skip_structured_data(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('-') {
        return rest.strip_prefix(' ').unwrap_or(rest);
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        i += 1;
        while i < b.len() && b[i] != b']' {
            if b[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        i += 1;
    }
    let rest = s.get(i.min(s.len())..).unwrap_or("");
    rest.strip_prefix(' ').unwrap_or(rest)
}

/// Splits a TCP byte stream into syslog frames. A connection that starts with a digit is
/// octet-counted (`LEN SP MSG`, RFC 6587 §3.4.1), any other is newline-terminated; a
/// sender keeps one method for the whole connection.
pub struct TcpFramer {
    buf: Vec<u8>,
    lines: LineSplitter,
    max: usize,
    counted: Option<bool>,
}

impl TcpFramer {
    pub fn new(max: usize) -> Self {
        TcpFramer { buf: Vec::new(), lines: LineSplitter::new(max), max, counted: None }
    }

    /// Lines with invalid UTF-8 and lines cut at the limit so far.
    pub fn damaged(&self) -> (u64, u64) {
        (self.lines.invalid_utf8, self.lines.truncated)
    }

    /// Feeds bytes; complete frames go to `emit`. An invalid octet count is an error:
    /// the stream cannot be resynchronised and the connection should be closed.
    pub fn push(&mut self, data: &[u8], emit: &mut impl FnMut(String)) -> Result<(), FrameError> {
        let counted = *self.counted.get_or_insert_with(|| data.first().is_some_and(|b| b.is_ascii_digit()));
        if !counted {
            self.lines.push(data, emit);
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while start < self.buf.len() {
            let rest = &self.buf[start..];
            let Some(sp) = rest.iter().take(8).position(|b| *b == b' ') else {
                if rest.len() >= 8 {
                    return Err(FrameError::BadLength(String::from_utf8_lossy(&rest[..8]).into_owned()));
                }
                break; // The length is still arriving.
            };
            let digits = std::str::from_utf8(&rest[..sp]).unwrap_or("");
            let len: usize = digits.parse().map_err(|_| FrameError::BadLength(digits.to_string()))?;
            if len == 0 || len > self.max {
                return Err(FrameError::BadLength(digits.to_string()));
            }
            if rest.len() < sp + 1 + len {
                break; // The frame is still arriving.
            }
            // A counted frame may contain newlines (a multi-line message): it stays one
            // message, its line breaks turned into spaces.
            let frame = &rest[sp + 1..sp + 1 + len];
            let text = match std::str::from_utf8(frame) {
                Ok(t) => t.to_string(),
                Err(_) => {
                    self.lines.invalid_utf8 += 1;
                    String::from_utf8_lossy(frame).into_owned()
                }
            };
            emit(text.replace(['\r', '\n'], " "));
            start += sp + 1 + len;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Emits a final newline-framed message that the sender did not terminate.
    pub fn finish(&mut self, emit: &mut impl FnMut(String)) {
        self.lines.finish(emit);
    }
}

/// The syslog source actor.
pub struct Syslog {
    pub source: String,
    pub listen: SocketAddr,
    pub transport: Transport,
    pub format: LogFormat,
    pub cfg: IngestConfig,
    pub limits: SyslogLimits,
    pub sink: LogSink,
    pub metrics: Arc<Metrics>,
    /// Told the bound address (port 0 picks a free one), or why binding failed.
    pub bound: Bound,
}

impl Actor for Syslog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (tx, rx) = mpsc::channel::<(String, u64, u64)>(4096);
        let (source, format, cfg, sup, metrics) =
            (self.source.clone(), self.format, self.cfg.clone(), self.sink.clone(), self.metrics.clone());
        ctx.spawn(actix::fut::wrap_future(batcher(source, format, cfg.batch_lines, rx, sup, metrics)));
        let input = Input {
            source: self.source.clone(),
            max: self.cfg.max_line_bytes,
            tx,
            metrics: self.metrics.clone(),
            skipped: Arc::new(std::sync::Mutex::new(Throttle::new(WARN_EVERY))),
        };
        let (listen, limits, bound) = (self.listen, self.limits, self.bound.take());
        match self.transport {
            Transport::Udp => ctx.spawn(actix::fut::wrap_future(udp(input, listen, limits, bound))),
            Transport::Tcp => ctx.spawn(actix::fut::wrap_future(tcp(input, listen, limits, bound))),
        };
    }
}

/// Collects normalised lines into batches and applies them one at a time.
async fn batcher(
    source: String,
    format: LogFormat,
    batch_lines: usize,
    mut rx: mpsc::Receiver<(String, u64, u64)>,
    sink: LogSink,
    metrics: Arc<Metrics>,
) {
    let mut builder = BatchBuilder::new(format, Utc::now());
    loop {
        let Some((line, invalid, truncated)) = rx.recv().await else { return };
        builder.parser.set_reference(Utc::now());
        let add = |b: &mut BatchBuilder, line: String, invalid: u64, truncated: u64| {
            b.line(line);
            b.stats.invalid_utf8 += invalid;
            b.stats.truncated += truncated;
        };
        add(&mut builder, line, invalid, truncated);
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while builder.stats.lines < batch_lines as u64 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((line, invalid, truncated))) => add(&mut builder, line, invalid, truncated),
                Ok(None) | Err(_) => break,
            }
        }
        let batch = builder.take(&source, None, None);
        if let Err(e) = send_batch(&sink, batch).await {
            metrics.inc(&metrics.source_errors);
            tracing::error!(%source, error = %e, "batch rejected");
        }
    }
}

/// Why a syslog source could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen}/{proto}: {source}")]
pub struct BindError {
    pub listen: SocketAddr,
    pub proto: &'static str,
    pub source: std::io::Error,
}

type Bound = Option<std::sync::mpsc::Sender<Result<SocketAddr, BindError>>>;

/// Tells whoever waits for it how binding went; returns the socket if it did.
fn announce<T>(
    source: &str,
    listen: SocketAddr,
    proto: &'static str,
    bound: Bound,
    res: std::io::Result<T>,
    local: impl Fn(&T) -> std::io::Result<SocketAddr>,
) -> Option<T> {
    let report = |r: Result<SocketAddr, BindError>| {
        if let Some(b) = &bound {
            let _ = b.send(r);
        }
    };
    match res {
        Ok(sock) => {
            report(local(&sock).map_err(|source| BindError { listen, proto, source }));
            tracing::info!(%source, %listen, proto, "listening for syslog");
            Some(sock)
        }
        Err(e) => {
            tracing::error!(%source, %listen, proto, error = %e, "cannot listen for syslog");
            report(Err(BindError { listen, proto, source: e }));
            None
        }
    }
}

/// What every socket task of a source shares: where messages go and what is counted.
#[derive(Clone)]
struct Input {
    source: String,
    max: usize,
    tx: mpsc::Sender<(String, u64, u64)>,
    metrics: Arc<Metrics>,
    /// "Not syslog" is said at most once per [`WARN_EVERY`].
    skipped: Arc<std::sync::Mutex<Throttle>>,
}

impl Input {
    /// Normalises one message and hands it to the batcher with the damage counts of its
    /// read. `None`: the batcher is gone; `Some(false)`: not syslog, skipped and counted.
    async fn forward(&self, frame: &str, peer: SocketAddr, damage: (u64, u64)) -> Option<bool> {
        match normalize(frame, peer.ip(), Utc::now()) {
            Ok(line) => self.tx.send((line, damage.0, damage.1)).await.ok().map(|_| true),
            Err(e) => {
                self.metrics.source_event(&self.source, |c| c.unparsed += 1);
                let said = self.skipped.lock().unwrap_or_else(|p| p.into_inner()).allow(std::time::Instant::now());
                if let Some(held) = said {
                    let source = &self.source;
                    tracing::warn!(%source, %peer, error = %e, held_back = held, "syslog message skipped (counted in warden_lines_unparsed_total)");
                }
                Some(false)
            }
        }
    }
}

/// The message of one datagram: its first line (cut at `max`), with its damage counts
/// (invalid UTF-8, cut); `None` for an empty datagram.
pub fn datagram(bytes: &[u8], max: usize) -> Option<(String, (u64, u64))> {
    let mut one = LineSplitter::new(max);
    let mut frame = None;
    one.push(bytes, &mut |l| {
        frame.get_or_insert(l);
    });
    one.finish(&mut |l| {
        frame.get_or_insert(l);
    });
    frame.map(|f| (f, (one.invalid_utf8, one.truncated)))
}

async fn udp(input: Input, listen: SocketAddr, limits: SyslogLimits, bound: Bound) {
    let source = input.source.clone();
    let res = tokio::net::UdpSocket::bind(listen).await;
    let Some(sock) = announce(&source, listen, "udp", bound, res, |s| s.local_addr()) else { return };
    size_receive_buffer(&sock, limits.recv_buffer_bytes, &source);
    if let Some(inode) = socket_inode(&sock) {
        actix_rt::spawn(watch_drops(inode, source.clone(), input.metrics.clone()));
    }
    let mut buf = vec![0u8; 65_536];
    let mut errors = Throttle::new(WARN_EVERY);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                if let Some(held) = errors.allow(std::time::Instant::now()) {
                    tracing::warn!(%source, error = %e, held_back = held, "UDP receive error");
                }
                input.metrics.inc(&input.metrics.source_errors);
                continue;
            }
        };
        let Some((frame, damage)) = datagram(&buf[..n], input.max) else { continue };
        if input.forward(&frame, peer, damage).await.is_none() {
            return;
        }
    }
}

/// Asks for a receive buffer of `bytes` and says what the kernel granted (Linux doubles
/// the request for its bookkeeping and caps it at `net.core.rmem_max`).
fn size_receive_buffer(sock: &tokio::net::UdpSocket, bytes: usize, source: &str) {
    use rustix::net::sockopt;
    if let Err(e) = sockopt::set_socket_recv_buffer_size(sock, bytes) {
        tracing::warn!(%source, error = %e, "cannot size the UDP receive buffer");
    }
    match sockopt::socket_recv_buffer_size(sock) {
        Ok(got) if got < bytes => tracing::warn!(
            %source, asked = bytes, granted = got,
            "UDP receive buffer smaller than configured (raise net.core.rmem_max): bursts will be dropped sooner"
        ),
        Ok(got) => tracing::info!(%source, granted = got, "UDP receive buffer"),
        Err(e) => tracing::warn!(%source, error = %e, "cannot read the UDP receive buffer size"),
    }
}

/// The inode that names the socket in `/proc/net/udp`.
fn socket_inode(sock: &impl std::os::fd::AsRawFd) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd())).ok().map(|m| m.ino())
}

/// The kernel's count of datagrams dropped on the socket with this inode (the last
/// column of `/proc/net/udp` and `/proc/net/udp6`).
pub fn udp_drops(tables: &[&str], inode: u64) -> Option<u64> {
    let ino = inode.to_string();
    tables.iter().flat_map(|t| t.lines().skip(1)).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 13 && cols[9] == ino).then(|| cols[cols.len() - 1].parse().ok()).flatten()
    })
}

async fn watch_drops(inode: u64, source: String, metrics: Arc<Metrics>) {
    let mut seen = 0u64;
    loop {
        tokio::time::sleep(DROPS_EVERY).await;
        let tables: Vec<String> =
            ["/proc/net/udp", "/proc/net/udp6"].iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
        let Some(drops) = udp_drops(&tables.iter().map(String::as_str).collect::<Vec<_>>(), inode) else {
            continue;
        };
        if drops > seen {
            tracing::warn!(%source, dropped = drops - seen, total = drops, "the kernel dropped syslog datagrams (receive buffer full)");
            metrics.source_event(&source, |c| c.kernel_drops = drops);
            seen = drops;
        }
    }
}

async fn tcp(input: Input, listen: SocketAddr, limits: SyslogLimits, bound: Bound) {
    let source = input.source.clone();
    let res = tokio::net::TcpListener::bind(listen).await;
    let Some(listener) = announce(&source, listen, "tcp", bound, res, |l| l.local_addr()) else { return };
    let conns = Arc::new(std::sync::Mutex::new(Conns::new(limits)));
    let (mut accept_errors, mut refusals) = (Throttle::new(WARN_EVERY), Throttle::new(WARN_EVERY));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(held) = accept_errors.allow(std::time::Instant::now()) {
                    tracing::warn!(%source, error = %e, held_back = held, "TCP accept error");
                }
                input.metrics.inc(&input.metrics.source_errors);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let now = std::time::Instant::now();
        let admission = conns.lock().unwrap_or_else(|p| p.into_inner()).admit(peer.ip(), now);
        let (id, close) = match admission {
            Admission::Admitted { id, close, evicted } => {
                if evicted {
                    input.metrics.source_event(&source, |c| c.idle_closed += 1);
                }
                (id, close)
            }
            refused => {
                input.metrics.source_event(&source, |c| c.refused += 1);
                if let Some(held) = refusals.allow(now) {
                    let why = match refused {
                        Admission::SenderFull => "this sender has as many connections open as it may",
                        _ => "every connection is busy",
                    };
                    tracing::warn!(%source, %peer, held_back = held, "refusing a syslog connection: {why}");
                }
                continue; // Dropping the stream closes it.
            }
        };
        let (input, conns) = (input.clone(), conns.clone());
        actix_rt::spawn(async move {
            connection(stream, peer, &input, limits.idle_timeout, (id, &conns, &close)).await;
            conns.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        });
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    input: &Input,
    idle: Duration,
    (id, conns, close): (u64, &std::sync::Mutex<Conns>, &tokio::sync::Notify),
) {
    let source = &input.source;
    let mut framer = TcpFramer::new(input.max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = false;
    let mut deadline = tokio::time::Instant::now() + idle;
    while !done {
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => r,
            _ = close.notified() => {
                tracing::debug!(%source, %peer, "closing an idle syslog connection to admit a new one");
                return;
            }
        };
        let n = match read {
            Err(_) => {
                tracing::debug!(%source, %peer, "closing a syslog connection idle for {}s", idle.as_secs());
                input.metrics.source_event(source, |c| c.idle_closed += 1);
                return;
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                done = true;
                0
            }
            Ok(Ok(n)) => n,
        };
        let mut frames = Vec::new();
        let (inv0, tr0) = framer.damaged();
        let res = framer.push(&buf[..n], &mut |f| frames.push(f));
        if done {
            framer.finish(&mut |f| frames.push(f));
        }
        let (inv1, tr1) = framer.damaged();
        if !frames.is_empty() {
            // Activity is a complete message: trickled bytes keep nothing open.
            deadline = tokio::time::Instant::now() + idle;
            conns.lock().unwrap_or_else(|p| p.into_inner()).touch(id, std::time::Instant::now());
        }
        // Damage counts ride on the first message of the read that is taken.
        let mut damage = (inv1 - inv0, tr1 - tr0);
        for f in frames {
            match input.forward(&f, peer, damage).await {
                None => return,
                Some(true) => damage = (0, 0),
                Some(false) => {}
            }
        }
        if let Err(e) = res {
            tracing::warn!(%source, %peer, error = %e, "closing a syslog connection that cannot be framed");
            input.metrics.inc(&input.metrics.source_errors);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-26T12:00:00Z".parse().unwrap()
    }
    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 9));

    #[test]
    fn rfc5424_becomes_a_line() {
        let m = "<38>1 2026-11-26T11:59:58.5Z web1 sshd 1234 - [meta sequenceId=\"1\\]x\"] Failed password for root from 1.2.3.4 port 22 ssh2";
        assert_eq!(
            normalize(m, PEER, now()).unwrap(),
            "2026-11-26T11:59:58.500Z web1 sshd[1234]: Failed password for root from 1.2.3.4 port 22 ssh2"
        );
        let m = "<38>1 - - sshd - - - \u{feff}hello";
        assert_eq!(normalize(m, PEER, now()).unwrap(), "2026-11-26T12:00:00Z 192.0.2.9 sshd: hello");
        assert_eq!(normalize("<38>1 2026-11-26T11:59:58Z web1", PEER, now()), Err(FrameError::Truncated5424));
    }

    #[test]
    fn rfc3164_keeps_its_host_or_takes_the_peer() {
        let m = "<38>Nov 26 11:59:58 web2 sshd[7]: Invalid user x from 5.6.7.8";
        assert_eq!(normalize(m, PEER, now()).unwrap(), "Nov 26 11:59:58 web2 sshd[7]: Invalid user x from 5.6.7.8");
        let m = "<38>Nov 26 11:59:58 sshd[7]: Invalid user x from 5.6.7.8";
        assert_eq!(
            normalize(m, PEER, now()).unwrap(),
            "Nov 26 11:59:58 192.0.2.9 sshd[7]: Invalid user x from 5.6.7.8"
        );
        assert_eq!(normalize("no priority", PEER, now()), Err(FrameError::NoPriority));
        assert_eq!(normalize("<999>x", PEER, now()), Err(FrameError::NoPriority));
        // Found by fuzzing: a multi-byte character where the time ends panicked the slice.
        let m = "<38>Nov 30 12:00:0\u{fffd}-30T12:00:00 x";
        let local = now().with_timezone(&chrono::Local).format("%b %e %H:%M:%S");
        assert_eq!(
            normalize(m, PEER, now()).unwrap(),
            format!("{local} 192.0.2.9 Nov 30 12:00:0\u{fffd}-30T12:00:00 x")
        );
    }

    #[test]
    fn tcp_framing_by_octet_count() {
        let mut f = TcpFramer::new(1024);
        let mut out = Vec::new();
        f.push(b"12 <38>hello w", &mut |l| out.push(l)).unwrap();
        assert!(out.is_empty(), "a frame is emitted only when complete");
        f.push(b"d5 <38>x16 <38>with\nnewline", &mut |l| out.push(l)).unwrap();
        assert_eq!(out, vec!["<38>hello wd", "<38>x", "<38>with newline"]);
        assert!(matches!(f.push(b"99999999 x", &mut |_| {}), Err(FrameError::BadLength(_))));
        let mut f = TcpFramer::new(1024);
        assert!(matches!(f.push(b"12x <38>a", &mut |_| {}), Err(FrameError::BadLength(_))));
    }

    /// A socket nobody reads, with the smallest buffer: the kernel drops what does not
    /// fit, and `/proc/net/udp` says how much — what `warden_syslog_kernel_drops_total` shows.
    #[test]
    fn kernel_drops_are_read_from_proc_net_udp() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rustix::net::sockopt::set_socket_recv_buffer_size(&rx, 1).unwrap();
        let inode = socket_inode(&rx).unwrap();
        let tables = || [std::fs::read_to_string("/proc/net/udp").unwrap()];
        assert_eq!(udp_drops(&tables().each_ref().map(String::as_str), inode), Some(0));
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            tx.send_to(&[b'x'; 1000], rx.local_addr().unwrap()).unwrap();
        }
        let drops = udp_drops(&tables().each_ref().map(String::as_str), inode).unwrap();
        assert!(drops > 0 && drops <= 200, "{drops}");
        assert_eq!(udp_drops(&tables().each_ref().map(String::as_str), u64::MAX), None, "another socket");
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     1: 00000000:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
                     2: garbage";
        assert_eq!(udp_drops(&[table], 4242), Some(17));
    }

    #[test]
    fn tcp_framing_by_newline() {
        let mut f = TcpFramer::new(1024);
        let mut out = Vec::new();
        f.push(b"<38>line one\n<38>li", &mut |l| out.push(l)).unwrap();
        f.push(b"ne two\r\n<38>three", &mut |l| out.push(l)).unwrap();
        f.finish(&mut |l| out.push(l));
        assert_eq!(out, vec!["<38>line one", "<38>line two", "<38>three"]);
    }
}
