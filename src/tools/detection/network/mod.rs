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
//!   are long or high-entropy, or mostly TXT/NULL queries.
//!
//! The state is plain serde data kept per key (`v/…`, `h/…`, `b/…`, `x/…`, `d/…`); the
//! keys a batch touched are returned as a delta and stored with the batch's checkpoint.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

mod params;
mod records;
mod stats;

pub use params::NetworkParams;
use records::proto_name;
pub use records::{DnsQuery, Flow};
pub use stats::{BeaconScore, beacon_score, entropy, split_registered};

use super::tracked::{Recency, StateKey, Tracked};
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

/// Connection times and sizes of one source–destination pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Beacon {
    pub times: VecDeque<f64>,
    pub sizes: VecDeque<u64>,
    pub last_alert: Option<f64>,
}

/// Outbound volume of one host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Exfil {
    pub window_start: f64,
    pub bytes: u64,
    pub flows: u64,
    /// Bytes per destination in the current window (the largest few).
    pub by_dst: BTreeMap<String, u64>,
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
        self.times.back().copied().unwrap_or(0.0)
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
impl StateKey for (IpAddr, &'static str, u16) {
    fn encode(&self) -> String {
        format!("{}>{}/{}", self.0, self.1, self.2)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, rest) = s.split_once('>')?;
        let (proto, port) = rest.split_once('/')?;
        Some((a.parse().ok()?, proto_name(proto), port.parse().ok()?))
    }
}

/// `src>dst:port/proto` (beaconing pairs).
impl StateKey for (IpAddr, IpAddr, u16, &'static str) {
    fn encode(&self) -> String {
        format!("{}>{}:{}/{}", self.0, self.1, self.2, self.3)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, rest) = s.split_once('>')?;
        let (dst_port, proto) = rest.rsplit_once('/')?;
        let (dst, port) = dst_port.rsplit_once(':')?;
        Some((a.parse().ok()?, dst.parse().ok()?, port.parse().ok()?, proto_name(proto)))
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
    vscan: Tracked<(IpAddr, IpAddr), Targets>,
    hscan: Tracked<(IpAddr, &'static str, u16), Targets>,
    beacons: Tracked<(IpAddr, IpAddr, u16, &'static str), Beacon>,
    exfil: Tracked<IpAddr, Exfil>,
    dns: Tracked<(IpAddr, String), DnsWindow>,
    newest: f64,
    last_prune: f64,
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
            params,
            vscan: Tracked::default(),
            hscan: Tracked::default(),
            beacons: Tracked::default(),
            exfil: Tracked::default(),
            dns: Tracked::default(),
            newest: 0.0,
            last_prune: 0.0,
            evicted: 0,
        }
    }

    /// Resumes from stored entries (`key` relative to [`STATE_PREFIX`]). Entries that do
    /// not decode are an error: silently resetting detection is not an option.
    pub fn restore(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<(), crate::tools::StateError> {
        for (key, value) in entries {
            let Some((kind, rest)) = key.split_once('/') else { continue };
            match kind {
                "v" => drop(self.vscan.load(rest, value)?),
                "h" => drop(self.hscan.load(rest, value)?),
                "b" => {
                    let b = self.beacons.load(rest, value)?;
                    self.newest = self.newest.max(b.times.back().copied().unwrap_or(0.0));
                }
                "x" => {
                    let x = self.exfil.load(rest, value)?;
                    self.newest = self.newest.max(x.last);
                }
                "d" => drop(self.dns.load(rest, value)?),
                _ => {}
            }
        }
        self.last_prune = self.newest;
        Ok(())
    }

    /// Forgets which keys changed (when nothing stores them).
    pub fn discard_delta(&mut self) {
        self.vscan.discard();
        self.hscan.discard();
        self.beacons.discard();
        self.exfil.discard();
        self.dns.discard();
    }

    /// The keys changed since the last call: `(key below STATE_PREFIX, value or None
    /// for a deletion)`.
    pub fn take_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        self.vscan.drain("v/", &mut out);
        self.hscan.drain("h/", &mut out);
        self.beacons.drain("b/", &mut out);
        self.exfil.drain("x/", &mut out);
        self.dns.drain("d/", &mut out);
        out
    }

    fn internal(&self, ip: IpAddr) -> bool {
        is_internal(&self.internal, ip)
    }

    /// Whether an event is network data this tool reads.
    pub fn is_network(ev: &Event) -> bool {
        ev.json.is_some() && (ev.program.ends_with(":conn") || ev.program.ends_with(":dns"))
            || ev.json.as_deref().is_some_and(|m| m.contains_key("conn_state") || m.contains_key("qtype_name"))
    }

    /// Runs every flow and DNS query of the events through the detectors.
    pub fn analyze(&mut self, events: &[Event]) -> Vec<Finding> {
        let mut out = Vec::new();
        for ev in events {
            if let Some(flow) = Flow::from_event(ev) {
                self.newest = self.newest.max(flow.ts);
                if self.ignore.iter().any(|n| n.contains(&flow.src)) {
                    continue;
                }
                self.scan(&flow, ev, &mut out);
                self.beacon(&flow, ev, &mut out);
                self.exfiltration(&flow, ev, &mut out);
            } else if let Some(q) = DnsQuery::from_event(ev) {
                self.newest = self.newest.max(q.ts);
                if !self.ignore.iter().any(|n| n.contains(&q.src)) {
                    self.tunnel(&q, ev, &mut out);
                }
            }
        }
        if self.newest - self.last_prune >= 60.0 {
            self.prune();
        }
        out
    }

    fn prune(&mut self) {
        let now = self.newest;
        self.last_prune = now;
        let p = &self.params;
        let scan = p.scan_window_secs as f64;
        self.vscan.retain(|t| t.last > now - scan * 2.0);
        self.hscan.retain(|t| t.last > now - scan * 2.0);
        let bw = p.beacon_window_secs as f64;
        self.beacons.retain(|b| b.times.back().is_some_and(|t| *t > now - bw));
        // A host's baseline outlives many windows: keep it for a day of silence.
        let xw = (p.exfil_window_secs as f64).max(86_400.0);
        self.exfil.retain(|x| x.last > now - xw);
        let dw = p.dns_window_secs as f64;
        self.dns.retain(|d| d.queries.back().is_some_and(|q| q.ts > now - dw));
    }

    fn scan(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        let window = p.scan_window_secs as f64;
        let vkey = (f.src, f.dst);
        let hkey = (f.src, f.proto, f.dport);
        let unanswered = f.unanswered();
        // A sweep of one port counts answered attempts too when it is of our hosts or
        // comes from outside (a host touching 29 of our web servers is a sweep, answered
        // or not); from the inside out it must be mostly unanswered, as a scan — a
        // browsing host reaches many answering servers on 443.
        let from_outside = !self.internal(f.src);
        let sweep_starts = unanswered || from_outside || self.internal(f.dst);
        for vertical in [true, false] {
            let threshold = if vertical { p.vertical_scan_ports } else { p.horizontal_scan_hosts } as usize;
            // A scan starts with an unanswered attempt (a sweep also with an answered one
            // of ours, or from outside): other traffic only adds to a key that is already
            // tracked (this keeps ordinary traffic out of the state).
            let tracked =
                if vertical { self.vscan.map.contains_key(&vkey) } else { self.hscan.map.contains_key(&hkey) };
            let starts = if vertical { unanswered } else { sweep_starts };
            if !starts && !tracked {
                continue;
            }
            let t = if vertical {
                self.vscan.touch(&vkey, &mut self.evicted)
            } else {
                self.hscan.touch(&hkey, &mut self.evicted)
            };
            let Some(t) = t else { continue };
            let target = if vertical { f.dport.to_string() } else { f.dst.to_string() };
            if t.seen.is_empty() {
                t.first = f.ts;
            }
            t.last = t.last.max(f.ts);
            // Bounded: past four times the threshold only refresh known targets.
            if t.seen.len() < threshold * 4 || t.seen.contains_key(&target) {
                let e = t.seen.entry(target).or_insert((f.ts, f.unanswered()));
                if f.ts >= e.0 {
                    *e = (f.ts, f.unanswered());
                }
            }
            if t.seen.len() < threshold || t.last_alert.is_some_and(|a| f.ts < a + window) {
                continue;
            }
            // Only now (enough targets to matter) drop the ones outside the window.
            let newest = t.last;
            t.seen.retain(|_, (ts, _)| *ts > newest - window);
            if t.seen.len() < threshold {
                continue;
            }
            let distinct = t.seen.len();
            let unanswered = t.seen.values().filter(|(_, u)| *u).count();
            let ratio = unanswered as f64 / distinct as f64;
            let mostly_unanswered = ratio >= p.scan_min_unanswered_ratio;
            let ours = || t.seen.keys().filter(|h| h.parse().is_ok_and(|ip| is_internal(&self.internal, ip))).count();
            let answered_sweep = !vertical && (from_outside || ours() >= threshold);
            if !mostly_unanswered && !answered_sweep {
                continue;
            }
            t.last_alert = Some(f.ts);
            let first = t.seen.values().map(|(ts, _)| *ts).fold(f64::MAX, f64::min);
            let mut sample: Vec<&String> = t.seen.keys().collect();
            sample.truncate(20);
            let sample = sample.into_iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
            let (rule, title, tech, entity_note) = if vertical {
                (
                    "port_scan_vertical",
                    format!("{} probed {distinct} ports of {} within {}s", f.src, f.dst, window as u64),
                    "T1046",
                    format!("ports {sample}"),
                )
            } else {
                (
                    "port_scan_horizontal",
                    format!(
                        "{} probed port {}/{} on {distinct} hosts within {}s",
                        f.src, f.dport, f.proto, window as u64
                    ),
                    "T1046",
                    format!("hosts {sample}"),
                )
            };
            let mut numbers = BTreeMap::new();
            numbers.insert("distinct_targets".into(), distinct as f64);
            numbers.insert("unanswered_ratio".into(), round(ratio));
            numbers.insert("answered_ratio".into(), round(1.0 - ratio));
            numbers.insert("window_secs".into(), window);
            numbers.insert("threshold".into(), threshold as f64);
            // A sweep nobody answers is someone looking for what is there: high. One
            // that is answered (or a vertical scan) is medium.
            let severity = if !vertical && mostly_unanswered { Severity::High } else { Severity::Medium };
            out.push(finding(
                rule,
                title,
                severity,
                0.8,
                f.src,
                ev,
                (first, f.ts),
                distinct as u64,
                &[tech, "T1595.001"],
                numbers,
                entity_note,
            ));
        }
    }

    fn beacon(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        // Outbound only: an internal host calling out (inbound regularity is an attacker
        // retrying, which the scan and log detectors see).
        if p.beacon_ignore_ports.contains(&f.dport)
            || !self.internal(f.src)
            || (!p.beacon_internal && self.internal(f.dst))
            || self.ignore_dst.iter().any(|n| n.contains(&f.dst))
        {
            return;
        }
        let key = (f.src, f.dst, f.dport, f.proto);
        let Some(b) = self.beacons.touch(&key, &mut self.evicted) else { return };
        let pos = b.times.partition_point(|t| *t <= f.ts);
        b.times.insert(pos, f.ts);
        b.sizes.insert(pos, f.orig_bytes);
        while b.times.len() > p.beacon_max_connections.max(p.beacon_min_connections as usize) {
            b.times.pop_front();
            b.sizes.pop_front();
        }
        let window = p.beacon_window_secs as f64;
        let n = b.times.len();
        if n < p.beacon_min_connections as usize || b.last_alert.is_some_and(|a| f.ts < a + window) {
            return;
        }
        // The longest recent run that is regular: all kept connections, then the last
        // 24 and 12 (a C2 that settled into its rhythm after a burst). Never a run
        // shorter than 12 once there are 12: a handful of connections can look regular
        // by chance.
        let min = p.beacon_min_connections as usize;
        let mut lens = vec![n, 24, 12];
        lens.retain(|l| *l <= n && *l >= min);
        lens.dedup();
        for len in lens {
            let times: Vec<f64> = b.times.iter().skip(n - len).copied().collect();
            let sizes: Vec<f64> = b.sizes.iter().skip(n - len).map(|s| *s as f64).collect();
            let Some(s) = beacon_score(&times, &sizes) else { continue };
            // The score and, by itself, the timing: intervals must be regular (a chatty
            // client with a constant request size at random times is not a beacon).
            if s.median_interval < p.beacon_min_interval_secs
                || s.score < p.beacon_score
                || s.interval_mad / s.median_interval > p.beacon_max_dispersion
            {
                continue;
            }
            b.last_alert = Some(f.ts);
            let mut numbers = BTreeMap::new();
            numbers.insert("connections".into(), len as f64);
            numbers.insert("median_interval_secs".into(), round(s.median_interval));
            numbers.insert("interval_mad_secs".into(), round(s.interval_mad));
            numbers.insert("interval_skew".into(), round(s.skew));
            numbers.insert("median_bytes".into(), s.median_size);
            numbers.insert("bytes_mad".into(), round(s.size_mad));
            numbers.insert("score".into(), round(s.score));
            out.push(finding(
                "c2_beaconing",
                format!(
                    "{} connects to {}:{}/{} every {:.0}s (score {:.2})",
                    f.src, f.dst, f.dport, f.proto, s.median_interval, s.score
                ),
                Severity::High,
                round(s.score) as f32,
                f.src,
                ev,
                (times[0], f.ts),
                len as u64,
                &["T1071", "T1573"],
                numbers,
                format!("destination {}:{}/{}", f.dst, f.dport, f.proto),
            ));
            // The destination is what a responder blocks; the beaconing host is the one
            // the finding is about.
            if let Some(last) = out.last_mut() {
                last.entity = Some(f.dst.to_string());
                last.src_ip = Some(f.dst.to_string());
                last.host = f.src.to_string();
                last.evidence.insert(0, format!("internal host {} beacons to {}", f.src, f.dst));
            }
            return;
        }
    }

    fn exfiltration(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        if f.orig_bytes == 0
            || !self.internal(f.src)
            || self.internal(f.dst)
            || self.ignore_dst.iter().any(|n| n.contains(&f.dst))
        {
            return;
        }
        let p = &self.params;
        let window = p.exfil_window_secs as f64;
        let Some(x) = self.exfil.touch(&f.src, &mut self.evicted) else { return };
        let start = (f.ts / window).floor() * window;
        if x.window_start == 0.0 && x.bytes == 0 {
            x.window_start = start;
        }
        if start > x.window_start {
            // Close the previous window into the baseline (α = 0.3).
            x.baseline = if x.windows == 0 { x.bytes as f64 } else { 0.7 * x.baseline + 0.3 * x.bytes as f64 };
            x.windows += 1;
            x.window_start = start;
            x.bytes = 0;
            x.flows = 0;
            x.by_dst.clear();
            x.alerted = false;
        } else if start < x.window_start {
            // An old record (merged streams): count it in the current window.
        }
        x.bytes += f.orig_bytes;
        x.flows += 1;
        x.last = x.last.max(f.ts);
        *x.by_dst.entry(f.dst.to_string()).or_default() += f.orig_bytes;
        if x.by_dst.len() > 16 {
            // Keep the largest destinations.
            let smallest = x.by_dst.iter().min_by_key(|(_, b)| **b).map(|(k, _)| k.clone());
            if let Some(k) = smallest {
                x.by_dst.remove(&k);
            }
        }
        if x.alerted {
            return;
        }
        let ratio = if x.baseline > 0.0 { x.bytes as f64 / x.baseline } else { f64::INFINITY };
        let over_ceiling = x.bytes >= p.exfil_threshold_bytes;
        let over_baseline =
            x.windows >= p.exfil_baseline_windows && x.bytes >= p.exfil_min_bytes && ratio >= p.exfil_factor;
        if !(over_ceiling || over_baseline) {
            return;
        }
        x.alerted = true;
        let (top, top_bytes) =
            x.by_dst.iter().max_by_key(|(_, b)| **b).map(|(k, b)| (k.clone(), *b)).unwrap_or_default();
        let mut numbers = BTreeMap::new();
        numbers.insert("bytes_out".into(), x.bytes as f64);
        numbers.insert("flows".into(), x.flows as f64);
        numbers.insert("baseline_bytes".into(), x.baseline.round());
        numbers.insert("baseline_windows".into(), x.windows as f64);
        if ratio.is_finite() {
            numbers.insert("ratio_to_baseline".into(), round(ratio));
        }
        numbers.insert("window_secs".into(), window);
        numbers.insert("top_destination_bytes".into(), top_bytes as f64);
        let why = if over_baseline {
            format!("{:.0}× its baseline", ratio)
        } else {
            format!("over the {} byte ceiling", p.exfil_threshold_bytes)
        };
        let mut fi = finding(
            "data_exfiltration",
            format!("{} sent {} outbound within {}s, {why}", f.src, human_bytes(x.bytes), window as u64),
            Severity::High,
            if over_baseline && over_ceiling { 0.8 } else { 0.6 },
            f.src,
            ev,
            (x.window_start, f.ts),
            x.flows,
            &["T1041", "T1048"],
            numbers,
            format!("largest destination {top} ({})", human_bytes(top_bytes)),
        );
        // The receiving address is what containment blocks; the source host is named.
        if let Ok(dst) = top.parse::<IpAddr>() {
            fi.src_ip = Some(dst.to_string());
            fi.entity = Some(dst.to_string());
            fi.evidence.insert(0, format!("internal host {} sent the data", f.src));
        }
        fi.host = f.src.to_string();
        out.push(fi);
    }

    fn tunnel(&mut self, q: &DnsQuery, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        let (sub, domain) = split_registered(&q.query);
        let key = (q.src, domain.to_string());
        let Some(d) = self.dns.touch(&key, &mut self.evicted) else { return };
        let window = p.dns_window_secs as f64;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sub.hash(&mut h);
        let len = sub.len();
        let obs = DnsObs {
            ts: q.ts,
            sub: h.finish(),
            len: len.min(u16::MAX as usize) as u16,
            high_entropy: len >= p.dns_entropy_min_len && entropy(sub) >= p.dns_entropy_bits,
            txt: matches!(q.qtype.as_str(), "TXT" | "NULL"),
        };
        d.queries.push_back(obs);
        if d.queries.len() > MAX_DNS_PER_KEY {
            d.queries.pop_front();
        }
        while d.queries.front().is_some_and(|o| o.ts <= q.ts - window) {
            d.queries.pop_front();
        }
        if d.samples.len() < 3 && len >= p.dns_long_subdomain {
            d.samples.push(sanitize(&q.query, 255));
        }
        if d.last_alert.is_some_and(|a| q.ts < a + window) {
            return;
        }
        let n = d.queries.len();
        let distinct = d.queries.iter().map(|o| o.sub).collect::<HashSet<_>>().len();
        if distinct < p.dns_min_distinct as usize {
            return;
        }
        let long = d.queries.iter().filter(|o| o.len as usize >= p.dns_long_subdomain).count() as f64 / n as f64;
        let high = d.queries.iter().filter(|o| o.high_entropy).count() as f64 / n as f64;
        let txt = d.queries.iter().filter(|o| o.txt).count() as f64 / n as f64;
        let mean_len = d.queries.iter().map(|o| o.len as f64).sum::<f64>() / n as f64;
        if long < 0.5 && high < 0.5 && txt < p.dns_txt_share {
            return;
        }
        d.last_alert = Some(q.ts);
        let mut numbers = BTreeMap::new();
        numbers.insert("queries".into(), n as f64);
        numbers.insert("distinct_subdomains".into(), distinct as f64);
        numbers.insert("mean_subdomain_length".into(), round(mean_len));
        numbers.insert("long_share".into(), round(long));
        numbers.insert("high_entropy_share".into(), round(high));
        numbers.insert("txt_share".into(), round(txt));
        numbers.insert("window_secs".into(), window);
        let first = d.queries.front().map(|o| o.ts).unwrap_or(q.ts);
        let samples = d.samples.join(" ");
        let mut fi = finding(
            "dns_tunnelling",
            format!(
                "{} sent {distinct} distinct encoded-looking subdomains of {domain} within {}s",
                q.src, window as u64
            ),
            Severity::High,
            0.7,
            q.src,
            ev,
            (first, q.ts),
            n as u64,
            &["T1071.004", "T1572", "T1048"],
            numbers,
            format!("domain {domain}; e.g. {samples}"),
        );
        // The domain is the entity; the querying host is a victim, not an attacker.
        fi.entity = Some(format!("domain:{}", sanitize(domain, 255)));
        fi.src_ip = None;
        fi.host = q.src.to_string();
        out.push(fi);
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
