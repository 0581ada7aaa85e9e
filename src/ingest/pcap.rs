//! Packet captures (pcap and pcapng) turned into flows and DNS transactions, named as
//! Zeek names its `conn` and `dns` fields, so the network detectors read them like Zeek
//! logs. A DNS query's event gets its response's answer code (`rcode_name`) and
//! addresses (`answers`) when the response is in the capture, as Zeek's `dns.log` has
//! one record per transaction; a TCP flow whose originator opened with a TLS ClientHello
//! gets an `ssl` record with its server name, sharing the flow's `uid`.
//!
//! Link layers: Ethernet, raw IP, Linux cooked (SLL) and BSD loopback. A flow is one
//! 5-tuple from its first packet until it closes (FIN both ways or RST), goes idle
//! (TCP 5 minutes, others 1 minute) or a new SYN reopens it; its originator is the
//! sender of the first packet (the receiver, when that packet is a SYN-ACK). Bytes are
//! payload bytes, as Zeek's `orig_bytes`/`resp_bytes`. `conn_state` follows Zeek's
//! meanings for the states it can tell from the packets: `S0`, `REJ`, `RSTOS0`,
//! `S1`, `SF`, `S2`, `S3`, `RSTO`, `RSTR`, `OTH`.
//!
//! A capture is a file read once (`warden replay`), not a stream to tail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};
use serde_json::{Map, Value, json};

use crate::messages::{Event, Fields};

/// Most flows open at once; packets of new flows past it are counted, not tracked.
const MAX_OPEN_FLOWS: usize = 1_000_000;

/// Whether the first bytes of a file are a pcap or pcapng magic number.
pub fn is_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] | [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d])
            | Some([0x0a, 0x0d, 0x0d, 0x0a])
    )
}

/// What reading a capture found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CaptureStats {
    pub packets: u64,
    /// Packets whose link or network layer Warden does not decode (ARP, unknown links).
    pub undecoded: u64,
    pub flows: u64,
    pub dns_queries: u64,
    /// DNS responses matched to their query (its answer code and addresses added to it).
    pub dns_answers: u64,
    /// TLS ClientHellos whose server name was read (an `ssl` record for their flow).
    pub tls_names: u64,
    /// Packets of new flows dropped because the flow table was full.
    pub dropped: u64,
    /// The capture ended in the middle of a record.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
struct FlowState {
    orig: (IpAddr, u16),
    resp: (IpAddr, u16),
    proto: &'static str,
    first: f64,
    last: f64,
    orig_bytes: u64,
    resp_bytes: u64,
    orig_pkts: u64,
    resp_pkts: u64,
    syn: bool,
    synack: bool,
    orig_rst: bool,
    resp_rst: bool,
    orig_fin: bool,
    resp_fin: bool,
    /// The server name of the TLS ClientHello the originator sent first, if any.
    sni: Option<String>,
}

impl FlowState {
    fn closed(&self) -> bool {
        self.orig_rst || self.resp_rst || (self.orig_fin && self.resp_fin)
    }

    fn conn_state(&self) -> &'static str {
        match self.proto {
            "tcp" => match (self.syn, self.synack) {
                (false, _) => "OTH",
                (true, false) if self.resp_rst => "REJ",
                (true, false) if self.orig_rst => "RSTOS0",
                (true, false) => "S0",
                (true, true) if self.orig_rst => "RSTO",
                (true, true) if self.resp_rst => "RSTR",
                (true, true) => match (self.orig_fin, self.resp_fin) {
                    (true, true) => "SF",
                    (true, false) => "S2",
                    (false, true) => "S3",
                    (false, false) => "S1",
                },
            },
            "udp" => {
                if self.resp_pkts > 0 {
                    "SF"
                } else {
                    "S0"
                }
            }
            _ => "OTH",
        }
    }

    /// The fields every record of this flow starts with, as Zeek's: `ts`, `uid`, `id.*`.
    fn record(&self, uid: &str) -> Map<String, serde_json::Value> {
        let mut m = Map::new();
        m.insert("ts".into(), json!(self.first));
        m.insert("uid".into(), json!(uid));
        m.insert("id.orig_h".into(), json!(self.orig.0.to_string()));
        m.insert("id.orig_p".into(), json!(self.orig.1));
        m.insert("id.resp_h".into(), json!(self.resp.0.to_string()));
        m.insert("id.resp_p".into(), json!(self.resp.1));
        m
    }

    fn event(&self, uid: &str) -> Event {
        let dur = (self.last - self.first).max(0.0);
        let mut m = self.record(uid);
        m.insert("proto".into(), json!(self.proto));
        m.insert("duration".into(), json!(dur));
        m.insert("orig_bytes".into(), json!(self.orig_bytes));
        m.insert("resp_bytes".into(), json!(self.resp_bytes));
        m.insert("conn_state".into(), json!(self.conn_state()));
        m.insert("orig_pkts".into(), json!(self.orig_pkts));
        m.insert("resp_pkts".into(), json!(self.resp_pkts));
        let raw = format!(
            "{:.6}\t{}\t{}\t{}\t{}\t{}\t{dur:.6}\t{}\t{}\t{}",
            self.first,
            self.orig.0,
            self.orig.1,
            self.resp.0,
            self.resp.1,
            self.proto,
            self.orig_bytes,
            self.resp_bytes,
            self.conn_state()
        );
        event(self.first, "pcap:conn", m, raw)
    }
}

fn event(ts: f64, program: &str, m: Map<String, Value>, raw: String) -> Event {
    let time = crate::ingest::parse::json::epoch(ts).unwrap_or_default();
    crate::ingest::parse::json::record_event(m, time, String::new(), program.into(), raw)
}

type Key = (IpAddr, u16, IpAddr, u16, u8);

/// The flow table of one capture.
#[derive(Default)]
struct Flows {
    open: HashMap<Key, FlowState>,
    out: Vec<Event>,
    stats: CaptureStats,
    /// DNS queries awaiting their response: (client, client port, id) → their event.
    pending: HashMap<(IpAddr, u16, u16), usize>,
}

struct Packet<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    payload: &'a [u8],
}

impl Flows {
    fn packet(&mut self, ts: f64, link: Linktype, data: &[u8]) {
        self.stats.packets += 1;
        let Some(p) = decode(link, data) else {
            self.stats.undecoded += 1;
            return;
        };
        if p.proto == 17 && p.dport == 53 {
            self.dns(ts, &p);
        } else if p.proto == 17 && p.sport == 53 {
            self.dns_answer(&p);
        }
        let a = (p.src, p.sport);
        let b = (p.dst, p.dport);
        let key: Key = if a <= b { (a.0, a.1, b.0, b.1, p.proto) } else { (b.0, b.1, a.0, a.1, p.proto) };
        let idle = if p.proto == 6 { 300.0 } else { 60.0 };
        let restart =
            self.open.get(&key).is_some_and(|f| ts - f.last > idle || (f.closed() && p.proto == 6 && p.syn && !p.ack));
        if restart && let Some(f) = self.open.remove(&key) {
            self.finish(f);
        }
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN_FLOWS {
                self.stats.dropped += 1;
                return;
            }
            // A SYN-ACK seen first: its receiver opened the connection.
            let (orig, resp) = if p.proto == 6 && p.syn && p.ack { (b, a) } else { (a, b) };
            self.open.insert(
                key,
                FlowState {
                    orig,
                    resp,
                    proto: match p.proto {
                        6 => "tcp",
                        17 => "udp",
                        _ => "icmp",
                    },
                    first: ts,
                    last: ts,
                    orig_bytes: 0,
                    resp_bytes: 0,
                    orig_pkts: 0,
                    resp_pkts: 0,
                    syn: false,
                    synack: false,
                    orig_rst: false,
                    resp_rst: false,
                    orig_fin: false,
                    resp_fin: false,
                    sni: None,
                },
            );
        }
        let f = self.open.get_mut(&key).expect("inserted above");
        f.last = f.last.max(ts);
        let from_orig = a == f.orig;
        let n = p.payload.len() as u64;
        if from_orig && n > 0 && f.proto == "tcp" && f.sni.is_none() && f.orig_pkts < 8 {
            f.sni = tls_server_name(p.payload);
        }
        if from_orig {
            f.orig_bytes += n;
            f.orig_pkts += 1;
            f.syn |= p.syn && !p.ack;
            f.orig_rst |= p.rst;
            f.orig_fin |= p.fin;
        } else {
            f.resp_bytes += n;
            f.resp_pkts += 1;
            f.synack |= p.syn && p.ack;
            f.resp_rst |= p.rst;
            f.resp_fin |= p.fin;
        }
        if p.syn && p.ack && !from_orig {
            // A SYN-ACK implies the SYN (it may have been missed by the capture).
            f.syn = true;
        }
    }

    fn finish(&mut self, f: FlowState) {
        self.stats.flows += 1;
        // A connection id, as Zeek's: what names the flow (its TLS server name) refers to.
        let uid = format!("P{}", self.stats.flows);
        self.out.push(f.event(&uid));
        if let Some(name) = &f.sni {
            self.stats.tls_names += 1;
            let mut m = f.record(&uid);
            m.insert("server_name".into(), json!(name));
            let raw = format!("{:.6}\t{uid}\t{}\t{}\t{}\t{}\t{name}", f.first, f.orig.0, f.orig.1, f.resp.0, f.resp.1);
            self.out.push(event(f.first, "pcap:ssl", m, raw));
        }
    }

    fn dns(&mut self, ts: f64, p: &Packet<'_>) {
        let Some((name, qtype)) = dns_question(p.payload) else { return };
        self.stats.dns_queries += 1;
        let mut m = Map::new();
        m.insert("ts".into(), json!(ts));
        m.insert("id.orig_h".into(), json!(p.src.to_string()));
        m.insert("id.orig_p".into(), json!(p.sport));
        m.insert("id.resp_h".into(), json!(p.dst.to_string()));
        m.insert("id.resp_p".into(), json!(p.dport));
        m.insert("proto".into(), json!("udp"));
        m.insert("query".into(), json!(name));
        m.insert("qtype_name".into(), json!(qtype));
        let raw = format!("{ts:.6}\t{}\t{}\t{}\t{}\tudp\t{name}\t{qtype}", p.src, p.sport, p.dst, p.dport);
        if p.payload.len() >= 2 {
            if self.pending.len() >= MAX_PENDING_DNS {
                // Unanswered queries pile up: the oldest are given up on.
                self.pending.clear();
            }
            let id = u16::from_be_bytes([p.payload[0], p.payload[1]]);
            self.pending.insert((p.src, p.sport, id), self.out.len());
        }
        self.out.push(event(ts, "pcap:dns", m, raw));
    }

    /// A response: its answer code and addresses go on its query's event, as Zeek's
    /// `dns.log` has one record per transaction.
    fn dns_answer(&mut self, p: &Packet<'_>) {
        let Some((id, rcode, addrs)) = dns_response(p.payload) else { return };
        let Some(i) = self.pending.remove(&(p.dst, p.dport, id)) else { return };
        let Some(Fields::Json(m)) = self.out.get_mut(i).and_then(|e| e.fields.as_deref_mut()) else { return };
        self.stats.dns_answers += 1;
        m.insert("rcode_name".into(), json!(rcode));
        m.insert("answers".into(), json!(addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()));
    }
}

/// The server name (SNI) of a TLS ClientHello at the start of `data`, lower case, if it
/// is one and names a host (printable ASCII, at most 253 bytes); anything else — other
/// protocols, a hello cut across segments, malformed lengths — gives `None`.
pub fn tls_server_name(data: &[u8]) -> Option<String> {
    // Record header: handshake (22), version, length; handshake: ClientHello (1).
    if data.len() < 43 || data[0] != 0x16 || data[1] != 0x03 || data[5] != 0x01 {
        return None;
    }
    let u8_at = |i: usize| data.get(i).map(|b| *b as usize);
    let u16_at = |i: usize| Some(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]) as usize);
    // Client version (2) and random (32) after the 4-byte handshake header.
    let mut i = 5 + 4 + 2 + 32;
    i += 1 + u8_at(i)?; // session id
    i += 2 + u16_at(i)?; // cipher suites
    i += 1 + u8_at(i)?; // compression methods
    let end = (i + 2 + u16_at(i)?).min(data.len());
    i += 2;
    while i + 4 <= end {
        let (kind, len) = (u16_at(i)?, u16_at(i + 2)?);
        let body = data.get(i + 4..i + 4 + len)?;
        if kind == 0 {
            // server_name: list length, then (type 0 = host name, length, name).
            let name_len = u16::from_be_bytes([*body.get(3)?, *body.get(4)?]) as usize;
            let name = body.get(5..5 + name_len)?;
            let ok = *body.get(2)? == 0
                && !name.is_empty()
                && name.len() <= 253
                && name.iter().all(|b| b.is_ascii_graphic());
            return ok.then(|| String::from_utf8_lossy(name).to_ascii_lowercase());
        }
        i += 4 + len;
    }
    None
}

/// Queries awaiting a response, at most.
const MAX_PENDING_DNS: usize = 65_536;

/// A DNS response: its id, answer code name and the addresses among its answers (A,
/// AAAA; at most 16). Queries and malformed messages give `None`.
pub fn dns_response(msg: &[u8]) -> Option<(u16, String, Vec<IpAddr>)> {
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let rcode = match msg[3] & 0x0f {
        0 => "NOERROR".to_string(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    };
    let (qd, an) = (u16::from_be_bytes([msg[4], msg[5]]), u16::from_be_bytes([msg[6], msg[7]]));
    // Skips a (possibly compressed) name, returning the index after it.
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            let len = *msg.get(i)? as usize;
            match len & 0xc0 {
                0 if len == 0 => return Some(i + 1),
                0 => i += 1 + len,
                0xc0 => return Some(i + 2),
                _ => return None,
            }
        }
    };
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(i)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        i = skip_name(i)?;
        let field = |at: usize| Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]));
        let (kind, len) = (field(i)?, field(i + 8)? as usize);
        let data = msg.get(i + 10..i + 10 + len)?;
        match (kind, len) {
            (1, 4) => addrs.push(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
            (28, 16) => addrs.push(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => {}
        }
        i += 10 + len;
        if addrs.len() >= 16 {
            break;
        }
    }
    Some((id, rcode, addrs))
}

fn decode(link: Linktype, data: &[u8]) -> Option<Packet<'_>> {
    let sliced = match link.0 {
        1 => SlicedPacket::from_ethernet(data).ok()?,
        113 => SlicedPacket::from_linux_sll(data).ok()?,
        12 | 14 | 101 | 228 | 229 => SlicedPacket::from_ip(data).ok()?,
        // BSD loopback: a 4-byte address family, then IP.
        0 | 108 => SlicedPacket::from_ip(data.get(4..)?).ok()?,
        _ => return None,
    };
    let (src, dst) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(s) => (IpAddr::V4(s.header().source_addr()), IpAddr::V4(s.header().destination_addr())),
        NetSlice::Ipv6(s) => (IpAddr::V6(s.header().source_addr()), IpAddr::V6(s.header().destination_addr())),
        _ => return None,
    };
    let mut p =
        Packet { src, dst, proto: 1, sport: 0, dport: 0, syn: false, ack: false, fin: false, rst: false, payload: &[] };
    match sliced.transport.as_ref() {
        Some(TransportSlice::Tcp(t)) => {
            p.proto = 6;
            p.sport = t.source_port();
            p.dport = t.destination_port();
            p.syn = t.syn();
            p.ack = t.ack();
            p.fin = t.fin();
            p.rst = t.rst();
            p.payload = t.payload();
        }
        Some(TransportSlice::Udp(u)) => {
            p.proto = 17;
            p.sport = u.source_port();
            p.dport = u.destination_port();
            p.payload = u.payload();
        }
        Some(TransportSlice::Icmpv4(_) | TransportSlice::Icmpv6(_)) => {}
        _ => return None,
    }
    Some(p)
}

/// The first question of a DNS query message: (name, type). Responses and malformed
/// messages give `None`. Label bytes outside printable ASCII are escaped (`\xNN`).
pub fn dns_question(msg: &[u8]) -> Option<(String, String)> {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || u16::from_be_bytes([msg[4], msg[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = *msg.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 || name.len() > 255 {
            return None; // No compression pointers in a question; over-long names stop.
        }
        let label = msg.get(i + 1..i + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' {
                name.push(b.to_ascii_lowercase() as char);
            } else {
                name.push_str(&format!("\\x{b:02x}"));
            }
        }
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    let t = match qtype {
        1 => "A".to_string(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    };
    (!name.is_empty()).then_some((name, t))
}

/// Why a capture cannot be read at all (a damaged record later in it only ends it).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("{path}: not a pcap or pcapng capture ({reason})")]
    Format { path: String, reason: String },
}

/// Reads a whole capture: its flows and DNS queries as events, in time order.
pub fn read(path: &Path) -> Result<(Vec<Event>, CaptureStats), CaptureError> {
    // pcap-parser 0.17.0 subtracts without a check on a pcapng block shorter than its
    // header (found by fuzzing): a panic in a debug build, a wrapped length and an
    // incomplete block in a release one. A decoder that panics on a hostile capture is
    // an error about that file, never the end of the process.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_capture(path))).unwrap_or_else(|_| {
        Err(CaptureError::Format {
            path: path.display().to_string(),
            reason: "the capture decoder failed on a malformed block".into(),
        })
    })
}

fn read_capture(path: &Path) -> Result<(Vec<Event>, CaptureStats), CaptureError> {
    let shown = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| CaptureError::Open { path: shown(), source })?;
    let mut reader = pcap_parser::create_reader(1 << 20, file)
        .map_err(|e| CaptureError::Format { path: shown(), reason: format!("{e:?}") })?;
    let mut flows = Flows::default();
    let mut legacy = (Linktype(1), 1e6);
    // Per interface of the current pcapng section: (link type, units per second, offset).
    let mut ifaces: Vec<(Linktype, u64, i64)> = Vec::new();
    let mut last_ts = 0.0;
    let mut stalled = 0;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                stalled = 0;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = (h.network, if h.is_nanosecond_precision() { 1e9 } else { 1e6 });
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let ts = b.ts_sec as f64 + b.ts_usec as f64 / legacy.1;
                        last_ts = ts;
                        flows.packet(ts, legacy.0, b.data);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((idb.linktype, idb.ts_resolution().unwrap_or(1_000_000), idb.ts_offset()))
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match ifaces.get(epb.if_id as usize) {
                        Some(&(link, res, off)) => {
                            let ts = epb.decode_ts_f64(off.max(0) as u64, res.max(1));
                            last_ts = ts;
                            let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                            flows.packet(ts, link, data);
                        }
                        None => flows.stats.undecoded += 1,
                    },
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match ifaces.first() {
                        // No timestamp of its own: the previous packet's.
                        Some(&(link, ..)) => flows.packet(last_ts, link, spb.data),
                        None => flows.stats.undecoded += 1,
                    },
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                stalled += 1;
                if stalled > 2 || reader.refill().is_err() {
                    flows.stats.truncated = true;
                    break;
                }
            }
            Err(e) => {
                // A damaged record: what was read so far is kept, and the damage said.
                tracing::warn!(file = %path.display(), error = ?e, "capture damaged; the rest is skipped");
                flows.stats.truncated = true;
                break;
            }
        }
    }
    let open: Vec<FlowState> = flows.open.drain().map(|(_, f)| f).collect();
    for f in open {
        flows.finish(f);
    }
    let Flows { mut out, stats, .. } = flows;
    out.sort_by_key(|a| a.time);
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_questions() {
        // id, flags (RD), 1 question; "a1.Example.com" TXT.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["a1", "Example", "com"] {
            q.push(l.len() as u8);
            q.extend(l.as_bytes());
        }
        q.extend([0, 0, 16, 0, 1]);
        assert_eq!(dns_question(&q), Some(("a1.example.com".into(), "TXT".into())));
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(dns_question(&resp), None, "responses are not queries");
        assert_eq!(dns_question(&q[..15]), None, "cut short");
        let mut odd = vec![0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', 0, b'\n', 0, 0, 1, 0, 1];
        assert_eq!(dns_question(&odd).unwrap().0, "a\\x00\\x0a");
        odd[12] = 0xc0;
        assert_eq!(dns_question(&odd), None);
        assert!(is_capture(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]) && is_capture(&[0x0a, 0x0d, 0x0d, 0x0a]));
        assert!(!is_capture(b"Mar  1 10:00:00"));
    }

    /// The server name of a ClientHello (among other extensions); not one of a record
    /// that is not a hello, cut short, or with a bad name.
    #[test]
    fn tls_server_names() {
        let hello = client_hello("C2.Example.NET");
        assert_eq!(tls_server_name(&hello).as_deref(), Some("c2.example.net"));
        assert_eq!(tls_server_name(&hello[..hello.len() - 3]), None, "cut in the name");
        let mut other = hello.clone();
        other[0] = 0x17;
        assert_eq!(tls_server_name(&other), None, "application data");
        assert_eq!(tls_server_name(&client_hello("bad name")), None);
        assert_eq!(tls_server_name(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), None);
    }

    /// A ClientHello with a supported-groups extension, then the server name.
    fn client_hello(name: &str) -> Vec<u8> {
        let mut ext = vec![0, 10, 0, 4, 0, 2, 0, 29];
        let n = name.len() as u16;
        ext.extend([0, 0]);
        ext.extend((n + 5).to_be_bytes());
        ext.extend((n + 3).to_be_bytes());
        ext.push(0);
        ext.extend(n.to_be_bytes());
        ext.extend(name.as_bytes());
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    /// A response's answers: addresses of A and AAAA records behind compressed names
    /// (a CNAME skipped), its answer code; a query, a cut message, a bad label are none.
    #[test]
    fn dns_responses() {
        let mut r = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        for l in ["c2", "example", "net"] {
            r.push(l.len() as u8);
            r.extend(l.as_bytes());
        }
        r.extend([0, 0, 1, 0, 1]);
        // CNAME to "x.example.net" (compressed), then A and AAAA under the pointer.
        r.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'x', 0xc0, 15]);
        r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 80]);
        r.extend([0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        r.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let (id, rcode, addrs) = dns_response(&r).unwrap();
        assert_eq!((id, rcode.as_str()), (0xabcd, "NOERROR"));
        assert_eq!(addrs, ["203.0.113.80".parse::<IpAddr>().unwrap(), "2001:db8::1".parse().unwrap()]);
        let mut nx = r[..32].to_vec();
        nx[3] = 0x83;
        nx[7] = 0;
        assert_eq!(dns_response(&nx), Some((0xabcd, "NXDOMAIN".into(), vec![])));
        let mut query = r.clone();
        query[2] &= 0x7f;
        assert_eq!(dns_response(&query), None);
        assert_eq!(dns_response(&r[..40]), None, "cut in an answer");
        let mut bad = r.clone();
        bad[12] = 0x80;
        assert_eq!(dns_response(&bad), None, "a reserved label type");
    }
}
