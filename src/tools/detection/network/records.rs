//! The records the network detectors read: a connection (Zeek `conn`, or a pcap flow
//! named as Zeek names it) and a DNS query, each taken from an event in one pass.

use std::net::IpAddr;

use std::sync::Arc;

use crate::messages::{Event, FieldRef, Fields, TsvNames};

/// What a network event is, read once per batch.
pub enum Record<'a> {
    Flow(Flow<'a>),
    Dns(DnsQuery),
    Name(Naming),
}

impl Record<'_> {
    /// The record of an event that names destinations (a DNS query, an `http` or `ssl`
    /// record), if it is one. An event that claims to be a connection is not, whether
    /// or not it reads as one.
    pub fn naming(ev: &Event) -> Option<Record<'_>> {
        if Flow::claims(ev) {
            None
        } else if let Some(q) = DnsQuery::from_event(ev) {
            Some(Record::Dns(q))
        } else {
            Naming::from_event(ev).map(Record::Name)
        }
    }
}

/// One connection, borrowing its texts from the event it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow<'a> {
    pub ts: f64,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// `tcp`, `udp`, `icmp` or `other`.
    pub proto: Proto,
    pub duration: f64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    /// Zeek's `conn_state` (`S0`, `REJ`, `SF`, …).
    pub state: &'a str,
    /// A connection still open when logged (Zeek's `conn_long.log`, `open_conn.log`):
    /// its duration and bytes so far; its complete record comes later in `conn.log`.
    pub open: bool,
    /// Zeek's connection id (`uid`), which `http.log` and `ssl.log` records share.
    pub uid: Option<&'a str>,
    /// Where its ends are as the analyser is configured (`internal_networks`,
    /// `ignore_destinations`): set by it once per flow, false until then.
    pub src_internal: bool,
    pub dst_internal: bool,
    pub dst_ignored: bool,
}

fn ip(m: &Fields, k: &str) -> Option<IpAddr> {
    m.text(k)?.parse().ok()
}

fn ts_of(ev: &Event) -> f64 {
    ev.time.timestamp() as f64 + ev.time.timestamp_subsec_nanos() as f64 / 1e9
}

/// The fields a flow is read from, in [`FlowLayout`]'s order.
const FLOW_FIELDS: [&str; 10] = [
    "id.orig_h",
    "id.resp_h",
    "id.orig_p",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "uid",
];

/// Where one TSV header puts the fields a flow is read from: found once per header
/// (its records share its names), then each value is taken by position.
#[derive(Debug, Default)]
pub struct FlowLayout {
    names: Option<Arc<TsvNames>>,
    at: [Option<usize>; FLOW_FIELDS.len()],
}

impl FlowLayout {
    fn of(&mut self, names: &Arc<TsvNames>) -> [Option<usize>; FLOW_FIELDS.len()] {
        if !self.names.as_ref().is_some_and(|n| Arc::ptr_eq(n, names)) {
            self.at = FLOW_FIELDS.map(|f| names.index(f));
            self.names = Some(Arc::clone(names));
        }
        self.at
    }
}

/// A flow's addresses and ports while its fields are read.
#[derive(Default)]
struct Ends {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: u16,
    dport: Option<u16>,
}

impl<'a> Flow<'a> {
    /// The flow of a Zeek `conn` record (or a pcap flow), if the event is one: each field
    /// read once, nothing copied; a TSV record's fields by the positions `layout` found
    /// for its header.
    pub fn from_event(ev: &'a Event, layout: &mut FlowLayout) -> Option<Flow<'a>> {
        if !Flow::claims(ev) {
            return None;
        }
        let m = ev.fields.as_deref()?;
        let open = ev.program.ends_with(":conn_long") || ev.program.ends_with(":open_conn");
        let mut f = Flow {
            ts: ts_of(ev),
            src: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            sport: 0,
            dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dport: 0,
            proto: Proto::Other,
            duration: 0.0,
            orig_bytes: 0,
            resp_bytes: 0,
            state: "",
            open,
            uid: None,
            src_internal: false,
            dst_internal: false,
            dst_ignored: false,
        };
        let mut ends = Ends::default();
        match m {
            Fields::Tsv(t) => {
                for (field, at) in layout.of(t.names()).into_iter().enumerate() {
                    if let Some(v) = at.and_then(|i| t.value(i)) {
                        f.read(&mut ends, field, FieldRef::Text(v));
                    }
                }
            }
            Fields::Json(_) => {
                for (k, v) in m.iter() {
                    if let Some(field) = FLOW_FIELDS.iter().position(|n| *n == k) {
                        f.read(&mut ends, field, v);
                    } else if k == "id"
                        && let Some(id) = v.as_object()
                    {
                        // Nested form (`{"id": {"orig_h": …}}`), as some exporters write it.
                        let id_num = |v: &serde_json::Value| FieldRef::Json(v).as_f64();
                        ends.src = ends.src.or_else(|| id.get("orig_h")?.as_str()?.parse().ok());
                        ends.dst = ends.dst.or_else(|| id.get("resp_h")?.as_str()?.parse().ok());
                        ends.sport = id.get("orig_p").and_then(id_num).map_or(ends.sport, |p| p as u16);
                        ends.dport = ends.dport.or_else(|| id.get("resp_p").and_then(id_num).map(|p| p as u16));
                    }
                }
            }
        }
        f.src = ends.src?;
        f.dst = ends.dst?;
        f.sport = ends.sport;
        f.dport = ends.dport?;
        Some(f)
    }

    /// Reads the value of [`FLOW_FIELDS`]`[field]`.
    fn read(&mut self, ends: &mut Ends, field: usize, v: FieldRef<'a>) {
        // A number; counts (ports, bytes) read as integers without the float parser, to
        // the same value.
        let num = |v: FieldRef<'_>| match v {
            FieldRef::Text(s) if let Ok(n) = s.parse::<u64>() => Some(n as f64),
            _ => v.as_f64(),
        };
        match field {
            0 => ends.src = v.as_str().and_then(|s| s.parse().ok()),
            1 => ends.dst = v.as_str().and_then(|s| s.parse().ok()),
            2 => ends.sport = num(v).unwrap_or(0.0) as u16,
            3 => ends.dport = num(v).map(|p| p as u16),
            4 => self.proto = proto_name(v.as_str().unwrap_or("")),
            5 => self.duration = num(v).unwrap_or(0.0).max(0.0),
            6 => self.orig_bytes = num(v).unwrap_or(0.0).max(0.0) as u64,
            7 => self.resp_bytes = num(v).unwrap_or(0.0).max(0.0) as u64,
            8 => self.state = v.as_str().unwrap_or(""),
            _ => self.uid = v.as_str().filter(|u| is_uid(u)),
        }
    }

    /// Whether an event is a connection record: a Zeek `conn`, `conn_long` or
    /// `open_conn` record, or fields with a `conn_state` (pcap flows, Zeek JSON without
    /// `_path`).
    pub fn claims(ev: &Event) -> bool {
        let p = &ev.program;
        ev.fields.as_deref().is_some_and(|m| {
            p.ends_with(":conn")
                || p.ends_with(":conn_long")
                || p.ends_with(":open_conn")
                || m.contains_key("conn_state")
        })
    }

    /// From the inside out, to a destination that is not ignored.
    pub fn outbound(&self) -> bool {
        self.src_internal && !self.dst_internal && !self.dst_ignored
    }

    /// An attempt nobody answered or that was refused.
    pub fn unanswered(&self) -> bool {
        matches!(self.state, "S0" | "REJ" | "RSTOS0" | "RSTRH" | "SH" | "SHR")
    }
}

/// One DNS query.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsQuery {
    pub ts: f64,
    pub src: IpAddr,
    pub query: String,
    pub qtype: String,
    /// Zeek's `rcode_name` (`NOERROR`, `NXDOMAIN`, …), upper case; empty when unknown.
    pub rcode: String,
    /// The data of the TXT answers (Zeek writes them `TXT <length> <data>`).
    pub txt_answers: Vec<String>,
    /// The addresses among the answers (A, AAAA): they are known by `query` to `src`.
    pub addrs: Vec<IpAddr>,
}

impl DnsQuery {
    /// The query of a Zeek `dns` record (or a pcap DNS packet), if the event is one.
    pub fn from_event(ev: &Event) -> Option<DnsQuery> {
        let m = ev.fields.as_deref()?;
        if !(ev.program.ends_with(":dns") || (m.contains_key("query") && m.contains_key("qtype_name"))) {
            return None;
        }
        let query = m.text("query")?.trim_end_matches('.').to_ascii_lowercase();
        if query.is_empty() {
            return None;
        }
        let qtype = m.text("qtype_name").unwrap_or("").to_ascii_uppercase();
        // Answers: a JSON array, or the TSV form's values joined by the set separator.
        let answers: Vec<&str> = m.get("answers").map(FieldRef::elements).unwrap_or_default();
        let txt_answers =
            if qtype == "TXT" { answers.iter().filter_map(|a| txt_data(a)).collect() } else { Vec::new() };
        let addrs = answers.iter().filter_map(|a| a.trim().parse().ok()).take(16).collect();
        Some(DnsQuery {
            ts: ts_of(ev),
            src: ip(m, "id.orig_h")?,
            query,
            qtype,
            rcode: m.text("rcode_name").unwrap_or("").to_ascii_uppercase(),
            txt_answers,
            addrs,
        })
    }
}

/// A request seen by Zeek's `http.log` or a TLS handshake in `ssl.log`: the name the
/// client asked for on connection `uid`.
#[derive(Debug, Clone, PartialEq)]
pub struct Naming {
    pub ts: f64,
    pub uid: Option<String>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
    /// The destination's name (lower case, without a trailing dot or port).
    pub name: String,
    /// The port of the destination the client asked for (a CONNECT's target port, the
    /// URI's port, else the connection's).
    pub port: u16,
    /// A request addressed to a proxy: `CONNECT host:port` or an absolute URI.
    pub proxy_style: bool,
    /// Bytes the client sent in the request's body (0 for TLS and CONNECT).
    pub size: u64,
}

impl Naming {
    /// The name of an `http` or `ssl` record, if the event is one and names a valid host.
    pub fn from_event(ev: &Event) -> Option<Naming> {
        let m = ev.fields.as_deref()?;
        let http = ev.program.ends_with(":http");
        if !(http || ev.program.ends_with(":ssl")) {
            return None;
        }
        // A count as a JSON number (integral or not) or as TSV text.
        let count = |k: &str| m.get(k)?.as_f64();
        let dport = count("id.resp_p").filter(|p| (0.0..=65535.0).contains(p)).map(|p| p as u16);
        let mut n = Naming {
            ts: ts_of(ev),
            uid: m.text("uid").filter(|u| is_uid(u)).map(str::to_string),
            src: ip(m, "id.orig_h")?,
            dst: ip(m, "id.resp_h")?,
            dport: dport?,
            name: String::new(),
            port: 0,
            proxy_style: false,
            size: 0,
        };
        n.port = n.dport;
        let target = if http {
            n.size = count("request_body_len").map_or(0, |b| b.max(0.0) as u64);
            let uri = m.text("uri").unwrap_or("");
            if m.text("method").is_some_and(|x| x.eq_ignore_ascii_case("CONNECT")) {
                n.proxy_style = true;
                n.port = 443;
                if uri.is_empty() || uri == "-" { m.text("host")? } else { uri }
            } else if let Some(rest) = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://")) {
                n.proxy_style = true;
                n.port = if uri.starts_with("https") { 443 } else { 80 };
                rest.split(['/', '?', '#']).next().unwrap_or("")
            } else {
                m.text("host")?
            }
        } else {
            m.text("server_name")?
        };
        let (name, port) = host_port(target)?;
        n.name = name;
        n.port = port.unwrap_or(n.port);
        Some(n)
    }
}

/// A host name as a destination: lower case, without a trailing dot, only the characters
/// of DNS names (what an attacker writes in a Host header is not trusted), not an
/// address; with its port when it has one.
pub(super) fn host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p.parse::<u16>().ok()?)),
        _ => (s, None),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.contains('.')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        && host.parse::<IpAddr>().is_err();
    valid.then_some((host, port))
}

/// Whether a text is a Zeek connection id: short and alphanumeric.
fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The data of one TXT answer as Zeek writes it (`TXT 44 data…`), else the answer.
fn txt_data(a: &str) -> Option<String> {
    let data = match a.strip_prefix("TXT ") {
        Some(rest) => rest.split_once(' ').map_or(rest, |(_, d)| d),
        None => a,
    };
    (!data.is_empty() && data != "-").then(|| data.to_string())
}

/// A transport protocol as Zeek names it (any case read): one byte in a state key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    #[default]
    Other,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Other => "other",
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) fn proto_name(p: &str) -> Proto {
    [Proto::Tcp, Proto::Udp, Proto::Icmp].into_iter().find(|n| p.eq_ignore_ascii_case(n.as_str())).unwrap_or_default()
}
