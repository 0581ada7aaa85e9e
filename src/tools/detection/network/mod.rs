//! `analyze_network_traffic`: flows and DNS queries in, network findings out.
//!
//! Flows come from Zeek `conn` records (TSV or JSON) or from a pcap assembled into
//! flows by [`crate::ingest::pcap`], which names its fields as Zeek does; DNS queries
//! from Zeek `dns` records or the pcap's DNS packets. Everything runs on event time.
//!
//! Detectors, each finding carrying the numbers that led to it in `numbers`:
//! - vertical scan: one source, many ports of one host, mostly unanswered, in a window;
//! - horizontal scan (a sweep): one source, one port, many hosts in a window, answered
//!   or not when the hosts are ours or the source is outside (high when mostly
//!   unanswered, medium when answered); from the inside out, unanswered attempts only;
//! - beaconing: a source–destination pair whose connection intervals are regular
//!   (median absolute deviation small against the median, Bowley skew near 0), whose
//!   payload sizes are consistent, over enough connections;
//! - exfiltration: outbound bytes of a host in a window far above its own baseline
//!   (an exponentially weighted mean of its previous windows) or above a fixed ceiling;
//! - DNS tunnelling: per source and registered domain, many distinct subdomains that
//!   are long or high-entropy, or mostly TXT/NULL queries, or many high-entropy TXT
//!   answers; a DGA: per source, many names of many domains that do not exist;
//! - long connections and strobes (`long.rs`): an inside host's connection to an
//!   outside address open for hours, and a pair with a thousand connections a day;
//! - unusual ports (`ports.rs`): data exchanged with an outside address on a port no
//!   common service uses and few inside hosts use.
//!
//! Beacons are scored per destination *name* when one is known (`names.rs`: the
//! `http`/`ssl` records of the same connection, DNS answers; web proxies).
//!
//! The state is plain serde data kept per key (`v/…`, `h/…`, `b/…`, `x/…`, `d/…`,
//! `l/…`, `s/…`, `n/…`, `u/…`, `r/…`, `p/…`, `o/…`, `c/…`); the keys a batch touched are
//! returned as a delta and stored with the batch's checkpoint.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod beacon;
mod dns;
mod exfil;
mod long;
mod names;
mod params;
mod ports;
mod records;
mod scan;
mod stats;

pub use params::NetworkParams;
pub use records::{DnsQuery, Flow};
use records::{Proto, proto_name};
pub use stats::{BeaconScore, beacon_score, entropy, split_registered};

use super::tracked::{Recency, StateKey, Table, Tracked};
use crate::ingest::parse::json::epoch;
use crate::messages::{Event, Finding, Severity};
use crate::text::sanitize;

/// Queries remembered per (source, domain).
const MAX_DNS_PER_KEY: usize = 4096;

/// Distinct targets (ports or hosts) of one scanner key in the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Targets {
    /// Target → (last time seen, whether that attempt went unanswered).
    pub seen: BTreeMap<String, (f64, bool)>,
    pub first: f64,
    pub last: f64,
    pub last_alert: Option<f64>,
}

/// Connection times and sizes of one source–destination pair: one vector of both, its
/// first connection held in the entry itself (most pairs are seen once: no allocation
/// for them), stored as before, as `times` and `sizes` side by side ([`StoredBeacon`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(from = "StoredBeacon", into = "StoredBeacon")]
pub struct Beacon {
    /// The newest connection time, kept beside the entry (evicting the least recent
    /// pairs reads it for every pair).
    pub last: f64,
    /// (time, bytes) of each connection kept, in time order.
    pub conns: Series,
    pub last_alert: Option<f64>,
    /// The address last connected to, when the destination is a name reached directly
    /// (what tells an address serving several names).
    pub addr: Option<IpAddr>,
}

/// A pair's connections, (time, bytes) each: the first in place, more on the heap.
pub type Series = smallvec::SmallVec<[(f64, u64); 1]>;

/// A [`Beacon`] as stored: its times and sizes as two lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredBeacon {
    /// 0 in state stored before it was kept (then the newest time is taken).
    #[serde(default)]
    last: f64,
    times: VecDeque<f64>,
    sizes: VecDeque<u64>,
    last_alert: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<IpAddr>,
}

impl From<StoredBeacon> for Beacon {
    /// Times without a size (a list cut short) are left out.
    fn from(s: StoredBeacon) -> Beacon {
        let conns: Series = s.times.into_iter().zip(s.sizes).collect();
        let newest = conns.last().map_or(0.0, |c| c.0);
        Beacon { last: s.last.max(newest), conns, last_alert: s.last_alert, addr: s.addr }
    }
}

impl From<Beacon> for StoredBeacon {
    fn from(b: Beacon) -> StoredBeacon {
        let (times, sizes) = b.conns.into_iter().unzip();
        StoredBeacon { last: b.last, times, sizes, last_alert: b.last_alert, addr: b.addr }
    }
}

/// Outbound volume of one host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Exfil {
    pub window_start: f64,
    pub bytes: u64,
    pub flows: u64,
    /// Bytes per destination in the current window (the largest few).
    pub by_dst: exfil::TopBytes,
    /// Exponentially weighted mean of the previous windows' bytes.
    pub baseline: f64,
    /// Windows that went into the baseline.
    pub windows: u32,
    pub alerted: bool,
    pub last: f64,
}

/// One DNS query remembered for tunnelling.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DnsObs {
    pub ts: f64,
    /// A digest of the subdomain part (distinct count).
    pub sub: u64,
    pub len: u16,
    pub high_entropy: bool,
    pub txt: bool,
    /// Digests of the high-entropy TXT answers (a channel in the answers).
    #[serde(default)]
    pub txt_answers: Vec<u64>,
}

/// DNS queries of one source for one registered domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DnsWindow {
    pub queries: VecDeque<DnsObs>,
    pub samples: Vec<String>,
    pub last_alert: Option<f64>,
}

impl Recency for Targets {
    fn recency(&self) -> f64 {
        self.last
    }
}

impl Recency for Beacon {
    fn recency(&self) -> f64 {
        self.last
    }
}

impl Recency for Exfil {
    fn recency(&self) -> f64 {
        self.last
    }
}

impl Recency for DnsWindow {
    fn recency(&self) -> f64 {
        self.queries.back().map_or(0.0, |q| q.ts)
    }
}

/// `src>dst` (vertical scans).
impl StateKey for (IpAddr, IpAddr) {
    fn encode(&self) -> String {
        format!("{}>{}", self.0, self.1)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('>')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

/// `src>proto/port` (horizontal scans).
impl StateKey for (IpAddr, Proto, u16) {
    fn encode(&self) -> String {
        format!("{}>{}/{}", self.0, self.1, self.2)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, rest) = s.split_once('>')?;
        let (proto, port) = rest.split_once('/')?;
        Some((a.parse().ok()?, proto_name(proto), port.parse().ok()?))
    }
}

/// `src` (exfiltration baselines).
impl StateKey for IpAddr {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// `src>domain` (DNS tunnelling).
impl StateKey for (IpAddr, String) {
    fn encode(&self) -> String {
        format!("{}>{}", self.0, self.1)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, d) = s.split_once('>')?;
        Some((a.parse().ok()?, d.to_string()))
    }
}

/// The network analyser: parameters and per-key state.
pub struct NetworkAnalyzer {
    params: NetworkParams,
    internal: Vec<IpNet>,
    ignore: Vec<IpNet>,
    ignore_dst: Vec<IpNet>,
    proxies: Vec<IpNet>,
    vscan: Tracked<(IpAddr, IpAddr), Targets>,
    hscan: Tracked<(IpAddr, Proto, u16), Targets>,
    beacons: Tracked<beacon::PairKey, Beacon>,
    prevalence: beacon::Prevalence,
    uids: Tracked<String, names::UidName>,
    resolved: Tracked<(IpAddr, IpAddr), names::Resolved>,
    proxies_seen: Tracked<IpAddr, names::ProxySeen>,
    exfil: Tracked<IpAddr, Exfil>,
    dns: Tracked<(IpAddr, String), DnsWindow>,
    long: Tracked<beacon::PairKey, long::LongConn>,
    nxdomain: Tracked<IpAddr, dns::NxWindow>,
    strobes: Tracked<(IpAddr, IpAddr), long::Strobe>,
    odd_ports: Tracked<beacon::PairKey, ports::OddPort>,
    port_clients: Tracked<(Proto, u16), ports::PortClients>,
    /// Where the current Zeek header puts a connection's fields.
    layout: records::FlowLayout,
    newest: f64,
    /// The earliest event time seen (what a beacon's duration is compared with).
    oldest: f64,
    last_prune: f64,
    pruned: Pruned,
    /// A text buffer of the scan detector, kept between flows.
    scratch: String,
    /// Keys evicted (least recent first) because a map was full.
    pub evicted: u64,
}

impl std::fmt::Debug for NetworkAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkAnalyzer").field("pairs", &self.beacons.map.len()).finish_non_exhaustive()
    }
}

/// The prefix of the stored network state, below the agent's name.
pub const STATE_PREFIX: &str = "analyze_network_traffic/";

impl NetworkAnalyzer {
    pub fn new(params: NetworkParams) -> Self {
        // Validated when the definition was loaded (`config::cidr`); one that is not a
        // network here is left out rather than widened.
        let nets = |v: &[String]| v.iter().filter_map(|s| crate::config::cidr::parse(s).ok()).collect::<Vec<_>>();
        NetworkAnalyzer {
            internal: nets(&params.internal_networks),
            ignore: nets(&params.ignore_sources),
            ignore_dst: nets(&params.ignore_destinations),
            proxies: nets(&params.proxies),
            params,
            vscan: Tracked::default(),
            hscan: Tracked::default(),
            beacons: Tracked::default(),
            prevalence: beacon::Prevalence::default(),
            uids: Tracked::default(),
            resolved: Tracked::default(),
            proxies_seen: Tracked::default(),
            exfil: Tracked::default(),
            dns: Tracked::default(),
            long: Tracked::default(),
            nxdomain: Tracked::default(),
            strobes: Tracked::default(),
            odd_ports: Tracked::default(),
            port_clients: Tracked::default(),
            layout: records::FlowLayout::default(),
            newest: 0.0,
            oldest: f64::INFINITY,
            last_prune: 0.0,
            pruned: Pruned::default(),
            scratch: String::new(),
            evicted: 0,
        }
    }

    /// Every table, with the prefix of its stored keys.
    fn tables(&mut self) -> [(&'static str, &mut dyn Table); 13] {
        [
            ("v/", &mut self.vscan),
            ("h/", &mut self.hscan),
            ("b/", &mut self.beacons),
            ("x/", &mut self.exfil),
            ("d/", &mut self.dns),
            ("l/", &mut self.long),
            ("n/", &mut self.nxdomain),
            ("s/", &mut self.strobes),
            ("u/", &mut self.uids),
            ("r/", &mut self.resolved),
            ("p/", &mut self.proxies_seen),
            ("o/", &mut self.odd_ports),
            ("c/", &mut self.port_clients),
        ]
    }

    /// Caps every table at `keys` (the least recent evicted past it, counted).
    pub fn with_cap(mut self, keys: usize) -> Self {
        for (_, t) in self.tables() {
            t.set_cap(keys);
        }
        self
    }

    /// Resumes from stored entries (`key` relative to [`STATE_PREFIX`]). Entries that do
    /// not decode are an error: silently resetting detection is not an option.
    pub fn restore(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<(), crate::tools::StateError> {
        for (key, value) in entries {
            let Some(at) = key.find('/') else { continue };
            let (prefix, rest) = key.split_at(at + 1);
            if let Some((_, t)) = self.tables().into_iter().find(|(p, _)| *p == prefix) {
                t.load_entry(rest, value)?;
            }
        }
        let beacons = self.beacons.map.values();
        self.newest = beacons.clone().filter_map(|b| b.conns.last().map(|c| c.0)).fold(0.0, f64::max);
        self.newest = self.exfil.map.values().map(|x| x.last).fold(self.newest, f64::max);
        self.oldest = beacons.filter_map(|b| b.conns.first().map(|c| c.0)).fold(f64::INFINITY, f64::min);
        self.prevalence.rebuild(self.beacons.map.keys());
        self.last_prune = self.newest;
        Ok(())
    }

    /// Does not remember which keys change (state nothing stores, as a replay's).
    pub fn untracked(mut self) -> Self {
        for (_, t) in self.tables() {
            t.untrack();
        }
        self
    }

    /// Forgets which keys changed (when nothing stores them).
    pub fn discard_delta(&mut self) {
        for (_, t) in self.tables() {
            t.discard_changes();
        }
    }

    /// The keys changed since the last call: `(key below STATE_PREFIX, value or None
    /// for a deletion)`.
    pub fn take_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        for (prefix, t) in self.tables() {
            t.drain_changes(prefix, &mut out);
        }
        out
    }

    fn internal(&self, ip: IpAddr) -> bool {
        is_internal(&self.internal, ip)
    }

    /// Whether an event is network data this tool reads.
    pub fn is_network(ev: &Event) -> bool {
        ev.fields.is_some()
            && [":conn", ":dns", ":conn_long", ":open_conn", ":http", ":ssl"].iter().any(|p| ev.program.ends_with(p))
            || ev.fields.as_deref().is_some_and(|m| m.contains_key("conn_state") || m.contains_key("qtype_name"))
    }

    /// Runs every flow and DNS query of the events through the detectors.
    pub fn analyze(&mut self, events: &[Event]) -> Vec<Finding> {
        let mut out = Vec::new();
        // The names the batch gives connections learnt first: its DNS, http and ssl
        // records (kept by position); its connections are read in the second pass.
        let named: Vec<(usize, records::Record<'_>)> =
            events.iter().enumerate().filter_map(|(i, ev)| Some((i, records::Record::naming(ev)?))).collect();
        self.learn_names(named.iter().map(|(_, r)| r));
        let mut named = named.into_iter().peekable();
        for (i, ev) in events.iter().enumerate() {
            let record = match named.next_if(|(at, _)| *at == i) {
                Some((_, r)) => r,
                None => match Flow::from_event(ev, &mut self.layout) {
                    Some(f) => records::Record::Flow(f),
                    None => continue,
                },
            };
            match record {
                records::Record::Flow(flow) => self.flow(flow, ev, &mut out),
                records::Record::Dns(q) => {
                    self.newest = self.newest.max(q.ts);
                    if !self.ignore.iter().any(|n| n.contains(&q.src)) {
                        self.tunnel(&q, ev, &mut out);
                        self.nx_burst(&q, ev, &mut out);
                    }
                }
                records::Record::Name(n) => {
                    // A request through a proxy is the client's connection to the name.
                    self.newest = self.newest.max(n.ts);
                    if !self.ignore.iter().any(|i| i.contains(&n.src))
                        && let Some(o) = self.proxied_request(&n)
                    {
                        self.beacon(o, ev, &mut out);
                    }
                }
            }
        }
        if self.newest - self.last_prune >= 60.0 {
            self.prune();
        }
        out
    }

    fn flow(&mut self, mut flow: Flow<'_>, ev: &Event, out: &mut Vec<Finding>) {
        self.newest = self.newest.max(flow.ts);
        self.oldest = self.oldest.min(flow.ts);
        if self.ignore.iter().any(|n| n.contains(&flow.src)) {
            return;
        }
        flow.src_internal = self.internal(flow.src);
        flow.dst_internal = self.internal(flow.dst);
        flow.dst_ignored = self.ignore_dst.iter().any(|n| n.contains(&flow.dst));
        let flow = &flow;
        self.long_connection(flow, ev, out);
        // A still-open connection is logged again when it ends: only its length counts
        // before that.
        if flow.open {
            return;
        }
        self.scan(flow, ev, out);
        if !self.strobe(flow, ev, out)
            && let Some(o) = self.observed(flow)
        {
            self.beacon(o, ev, out);
        }
        self.exfiltration(flow, ev, out);
        self.unusual_port(flow, ev, out);
    }

    /// Frees what is past its time. Each table is pruned every tenth of the time its
    /// entries are kept (at least a minute apart): the detectors ignore or restart an
    /// entry past its time themselves, so their results do not depend on when.
    fn prune(&mut self) {
        let now = self.newest;
        self.last_prune = now;
        let p = &self.params;
        let scan = p.scan_window_secs as f64 * 2.0;
        if self.pruned.due("scans", now, scan) {
            self.vscan.retain(|t| t.last > now - scan);
            self.hscan.retain(|t| t.last > now - scan);
        }
        let bw = p.beacon_window_secs as f64;
        if self.pruned.due("beacons", now, bw) {
            for k in self.beacons.retain(|b| b.last > now - bw) {
                self.prevalence.remove(&k);
            }
        }
        let xw = exfil::exfil_keep_secs(p);
        if self.pruned.due("exfil", now, xw) {
            self.exfil.retain(|x| x.last > now - xw);
        }
        let dw = p.dns_window_secs as f64;
        if self.pruned.due("dns", now, dw) {
            self.dns.retain(|d| d.queries.back().is_some_and(|q| q.ts > now - dw));
            self.nxdomain.retain(|n| n.names.back().is_some_and(|x| x.0 > now - dw));
        }
        // A run of connections is over once nothing extended it for the threshold.
        let lw = p.long_connection_secs as f64;
        if self.pruned.due("long", now, lw) {
            let report = long::LONG_REPORT_EVERY_SECS;
            self.long.retain(|l| l.end > now - lw || l.last_alert.is_some_and(|a| a > now - report));
        }
        let sw = p.strobe_window_secs as f64;
        if self.pruned.due("strobes", now, sw) {
            self.strobes.retain(|s| s.last > now - sw);
        }
        if self.pruned.due("ports", now, 86_400.0) {
            self.odd_ports.retain(|o| o.last > now - 86_400.0);
            self.port_clients.retain(|c| c.last > now - ports::PORT_CLIENTS_KEEP_SECS);
        }
        self.prune_names(now);
    }
}

/// When each table was last pruned (event time).
#[derive(Debug, Default)]
struct Pruned(BTreeMap<&'static str, f64>);

impl Pruned {
    /// Whether `table`, whose entries are kept `keep` seconds, is due a prune at `now`
    /// (a tenth of `keep` after the last, at least a minute); if so, its prune is `now`.
    fn due(&mut self, table: &'static str, now: f64, keep: f64) -> bool {
        let last = self.0.entry(table).or_insert(f64::NEG_INFINITY);
        let due = now - *last >= (keep / 10.0).max(60.0);
        if due {
            *last = now;
        }
        due
    }
}

#[allow(clippy::too_many_arguments)]
fn finding(
    rule: &str,
    title: String,
    severity: Severity,
    confidence: f32,
    src: IpAddr,
    ev: &Event,
    (first, last): (f64, f64),
    count: u64,
    techniques: &[&str],
    numbers: BTreeMap<String, f64>,
    note: String,
) -> Finding {
    let at = |t: f64| epoch(t).unwrap_or(ev.time);
    let entity = src.to_string();
    let mut f = Finding {
        id: Finding::derive_id(rule, &format!("{entity}/{note}"), at(last)),
        rule: rule.into(),
        title,
        severity,
        confidence,
        src_ip: Some(entity),
        host: sanitize(&ev.host, 255),
        first_seen: at(first),
        last_seen: at(last),
        event_count: count,
        techniques: techniques.iter().map(|t| t.to_string()).collect(),
        evidence: vec![sanitize(&note, 512), sanitize(&ev.raw, 512)],
        numbers,
        ..Default::default()
    };
    super::attack::complete(&mut f);
    f
}

/// Whether an address is on the inside: the configured networks, loopback, multicast.
fn is_internal(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() || nets.iter().any(|n| n.contains(&ip))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::stats::bowley;
    use super::*;

    /// A completed connection `src` → `dst`:443/tcp at `ts` (Zeek JSON `conn` record).
    fn conn(ts: f64, src: &str, dst: &str) -> Event {
        let m = serde_json::json!({"ts": ts, "id.orig_h": src, "id.orig_p": 40000, "id.resp_h": dst,
            "id.resp_p": 443, "proto": "tcp", "duration": 0.5, "orig_bytes": 300, "resp_bytes": 900,
            "conn_state": "SF"});
        let serde_json::Value::Object(map) = m else { unreachable!() };
        crate::ingest::parse::json::record_event(
            map,
            epoch(ts).unwrap(),
            String::new(),
            "zeek:conn".into(),
            String::new(),
        )
    }

    /// A flood of distinct pairs holds each table at its cap — the least recent go,
    /// counted — and a pair still calling is kept.
    #[test]
    fn a_flood_of_pairs_is_held_at_the_cap() {
        let mut a = NetworkAnalyzer::new(NetworkParams::default()).with_cap(1000);
        let conn = |ts: f64, src: String, dst: String| conn(ts, &src, &dst);
        let t0 = 1_772_409_600.0;
        for n in 0..5000u32 {
            let ts = t0 + f64::from(n);
            let mut batch = vec![conn(
                ts,
                format!("10.0.{}.{}", n % 16, 1 + n / 16 % 250),
                format!("198.51.{}.{}", n / 250 % 250, 1 + n % 250),
            )];
            if n % 10 == 0 {
                batch.push(conn(ts, "10.9.9.9".into(), "203.0.113.9".into()));
            }
            a.analyze(&batch);
        }
        assert!(
            a.beacons.map.len() <= 1000 && a.strobes.map.len() <= 1000,
            "{} {}",
            a.beacons.map.len(),
            a.strobes.map.len()
        );
        assert!(a.evicted >= 2 * 4000, "{}", a.evicted);
        let implant = (IpAddr::from([10, 9, 9, 9]), names::Dest::Addr([203, 0, 113, 9].into()), 443, Proto::Tcp);
        assert!(a.beacons.map.contains_key(&implant), "the pair still calling is kept");
        // Prevalence counts followed the pairs that went: as counted from scratch.
        let mut fresh = beacon::Prevalence::default();
        fresh.rebuild(a.beacons.map.keys());
        assert_eq!(a.prevalence, fresh);
    }

    /// An entry past its time restarts when it is next used, pruned or not: a pair's
    /// series after a silence longer than the beacon window holds only what came after
    /// (one batch: no prune ran between).
    #[test]
    fn a_series_after_a_silent_window_starts_afresh() {
        let mut a = NetworkAnalyzer::new(NetworkParams::default());
        let window = NetworkParams::default().beacon_window_secs as f64;
        let conn = |ts: f64| conn(ts, "10.0.0.5", "203.0.113.5");
        let t0 = 1_772_409_600.0;
        let mut batch: Vec<Event> = (0..5).map(|i| conn(t0 + 60.0 * f64::from(i))).collect();
        batch.push(conn(t0 + 240.0 + window + 1.0));
        a.analyze(&batch);
        let key = (IpAddr::from([10, 0, 0, 5]), names::Dest::Addr([203, 0, 113, 5].into()), 443, Proto::Tcp);
        assert_eq!(a.beacons.map[&key].conns.as_slice(), [(t0 + 240.0 + window + 1.0, 300)]);
        assert_eq!(a.strobes.map[&(key.0, IpAddr::from([203, 0, 113, 5]))].count, 1);
    }

    /// A pair's connections are kept as one list but stored as they always were (`times`
    /// and `sizes`); state stored before `last` was kept reads back with it.
    #[test]
    fn a_beacon_is_stored_as_times_and_sizes() {
        let b = Beacon { last: 20.0, conns: Series::from_slice(&[(10.0, 5), (20.0, 7)]), last_alert: None, addr: None };
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v, serde_json::json!({"last": 20.0, "times": [10.0, 20.0], "sizes": [5, 7], "last_alert": null}));
        assert_eq!(serde_json::from_value::<Beacon>(v).unwrap(), b);
        let old = serde_json::json!({"times": [10.0, 20.0], "sizes": [5, 7], "last_alert": null});
        assert_eq!(serde_json::from_value::<Beacon>(old).unwrap(), b);
    }

    #[test]
    fn registered_domains() {
        assert_eq!(split_registered("a.b.example.com"), ("a.b", "example.com"));
        assert_eq!(split_registered("x.example.co.uk"), ("x", "example.co.uk"));
        assert_eq!(split_registered("example.com"), ("", "example.com"));
        assert_eq!(split_registered("localhost"), ("", "localhost"));
    }

    #[test]
    fn entropy_separates_words_from_encodings() {
        assert!(entropy("mail") < 2.5);
        assert!(entropy("dGhpcyBpcyBzZWNyZXQgZGF0YSBleGZpbHRyYXRlZA") > 3.8);
        assert_eq!(entropy(""), 0.0);
    }

    #[test]
    fn regular_series_score_high_and_jittered_ones_low() {
        let times: Vec<f64> = (0..10).map(|i| i as f64 * 60.0 + (i % 3) as f64 * 0.5).collect();
        let sizes = vec![512.0; 10];
        let s = beacon_score(&times, &sizes).unwrap();
        assert!(s.score > 0.85, "{s:?}");
        assert!((s.median_interval - 60.0).abs() < 1.0);
        // Irregular, human-driven: intervals spread over two orders of magnitude.
        let mut t = 0.0;
        let mut times = Vec::new();
        for d in [5.0, 300.0, 42.0, 1200.0, 8.0, 95.0, 600.0, 17.0, 2400.0, 61.0] {
            t += d;
            times.push(t);
        }
        let sizes: Vec<f64> = (0..10).map(|i| 300.0 + 1000.0 * (i % 4) as f64).collect();
        let s = beacon_score(&times, &sizes).unwrap();
        assert!(s.score < 0.6, "{s:?}");
        assert_eq!(bowley(&[1.0, 1.0, 1.0, 1.0]).0, 0.0);
        assert!(bowley(&[1.0, 2.0, 3.0, 4.0, 100.0, 200.0, 300.0]).0 > 0.5);
    }
}
