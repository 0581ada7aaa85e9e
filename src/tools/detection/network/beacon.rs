//! Beaconing: a client whose connections to one destination — a name when one is known
//! (`names.rs`), else an address — come on a regular rhythm with consistent sizes.
//!
//! A destination most internal hosts talk to weighs less (`prevalence`): an update or
//! CDN service every host polls on a timer is regular, and not a beacon.

use super::names::{Dest, Outbound};
use super::*;
use crate::tools::detection::tracked::{FastMap, process_digest};

/// A pair: client, destination, port, protocol (beacons; long connections and unusual
/// ports, whose destination is always an address).
pub type PairKey = (IpAddr, Dest, u16, Proto);

/// `src>dst:port/proto`, the destination a name or an address.
impl StateKey for PairKey {
    fn encode(&self) -> String {
        format!("{}>{}:{}/{}", self.0, self.1, self.2, self.3)
    }
    fn decode(s: &str) -> Option<Self> {
        let (a, rest) = s.split_once('>')?;
        let (dst_port, proto) = rest.rsplit_once('/')?;
        let (dst, port) = dst_port.rsplit_once(':')?;
        Some((a.parse().ok()?, Dest::parse(dst)?, port.parse().ok()?, proto_name(proto)))
    }
}

/// The number of internal clients of each destination, and of internal clients in all,
/// among the pairs followed: what prevalence is computed from. Counted as pairs appear
/// and go (pruned, evicted); rebuilt from the pairs on restore.
///
/// A destination is counted under a 64-bit digest of it (keyed once per process, so
/// that it cannot be chosen to collide): a small entry, no copy of a name.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Prevalence {
    clients_of: FastMap<u64, u32>,
    clients: FastMap<IpAddr, u32>,
}

/// The digest of a pair's destination (name or address, port, protocol).
fn dest_digest(k: &PairKey) -> u64 {
    process_digest((&k.1, k.2, k.3))
}

impl Prevalence {
    fn add(&mut self, k: &PairKey) {
        *self.clients_of.entry(dest_digest(k)).or_default() += 1;
        *self.clients.entry(k.0).or_default() += 1;
    }

    pub(super) fn remove(&mut self, k: &PairKey) {
        fn less<K: std::hash::Hash + Eq>(map: &mut FastMap<K, u32>, key: K) {
            // One lookup: the entry found is decremented, and removed at zero.
            if let std::collections::hash_map::Entry::Occupied(mut o) = map.entry(key) {
                *o.get_mut() -= 1;
                if *o.get() == 0 {
                    o.remove();
                }
            }
        }
        less(&mut self.clients_of, dest_digest(k));
        less(&mut self.clients, k.0);
    }

    pub(super) fn rebuild<'a>(&mut self, keys: impl Iterator<Item = &'a PairKey>) {
        self.clients_of.clear();
        self.clients.clear();
        for k in keys {
            self.add(k);
        }
    }

    /// The share of internal clients talking to the pair's destination (0 while fewer
    /// than `min_hosts` clients are known: a share of a handful means nothing).
    fn share(&self, k: &PairKey, min_hosts: u32) -> f64 {
        let all = self.clients.len();
        if all < min_hosts.max(1) as usize {
            return 0.0;
        }
        let of = self.clients_of.get(&dest_digest(k)).copied().unwrap_or(0) as f64;
        (of / all as f64).min(1.0)
    }
}

impl NetworkAnalyzer {
    pub(super) fn beacon(&mut self, o: Outbound, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        // Outbound only: an internal host calling out (inbound regularity is an attacker
        // retrying, which the scan and log detectors see).
        if p.beacon_ignore_ports.contains(&o.port)
            || !o.src_internal
            || (!p.beacon_internal && o.addr_internal)
            || o.addr_ignored
        {
            return;
        }
        let key: PairKey = (o.src, o.dest.clone(), o.port, o.proto);
        // Room made before the pair is added, so the pairs that go are uncounted.
        let prevalence = &mut self.prevalence;
        let Some((b, new)) = self.beacons.entry(&key, &mut self.evicted, |k, _| prevalence.remove(&k)) else { return };
        if new {
            prevalence.add(&key);
        }
        let window = p.beacon_window_secs as f64;
        if !b.conns.is_empty() && b.last <= o.ts - window {
            // Silent for the window: a series afresh (as if pruned, whether or not it was).
            *b = Beacon::default();
        }
        let pos = b.conns.partition_point(|c| c.0 <= o.ts);
        b.conns.insert(pos, (o.ts, o.size));
        b.last = b.last.max(o.ts);
        if o.addr.is_some() {
            b.addr = o.addr;
        }
        let keep = p.beacon_max_connections.max(p.beacon_min_connections as usize);
        if b.conns.len() > keep {
            b.conns.drain(..b.conns.len() - keep);
        }
        let n = b.conns.len();
        if n < p.beacon_min_connections as usize || b.last_alert.is_some_and(|a| o.ts < a + window) {
            return;
        }
        let prevalence = self.prevalence.share(&key, p.beacon_prevalence_min_hosts);
        let floor = p.beacon_prevalence_floor.clamp(0.0, 0.99);
        let factor = 1.0 - p.beacon_prevalence_weight.clamp(0.0, 1.0) * ((prevalence - floor) / (1.0 - floor)).max(0.0);
        // The longest recent run that is regular: all kept connections, then the last
        // 24 and 12 (a C2 that settled into its rhythm after a burst). Never a run
        // shorter than 12 once there are 12: a handful of connections can look regular
        // by chance.
        let min = p.beacon_min_connections as usize;
        let mut tried = 0;
        for len in [n, 24, 12] {
            if len > n || len < min || len == tried {
                continue;
            }
            tried = len;
            let (times, sizes): (Vec<f64>, Vec<f64>) = b.conns.iter().skip(n - len).map(|c| (c.0, c.1 as f64)).unzip();
            let Some(s) = beacon_score(&times, &sizes) else { continue };
            let score = s.score * factor;
            // The score and, by itself, the timing: intervals must be regular (a chatty
            // client with a constant request size at random times is not a beacon).
            if s.median_interval < p.beacon_min_interval_secs
                || score < p.beacon_score
                || s.interval_mad / s.median_interval > p.beacon_max_dispersion
            {
                continue;
            }
            b.last_alert = Some(o.ts);
            let span = (o.ts - times[0]).max(0.0);
            let observed = (self.newest - self.oldest).clamp(0.0, window).max(span);
            let mut numbers = BTreeMap::new();
            numbers.insert("connections".into(), len as f64);
            numbers.insert("median_interval_secs".into(), round(s.median_interval));
            numbers.insert("interval_mad_secs".into(), round(s.interval_mad));
            numbers.insert("interval_dispersion".into(), round(s.interval_mad / s.median_interval));
            numbers.insert("interval_skew".into(), round(s.skew));
            numbers.insert("median_bytes".into(), s.median_size);
            numbers.insert("bytes_mad".into(), round(s.size_mad));
            numbers.insert("duration_secs".into(), round(span));
            numbers.insert("duration_coverage".into(), if observed > 0.0 { round(span / observed) } else { 1.0 });
            numbers.insert("prevalence".into(), round(prevalence));
            numbers.insert("prevalence_factor".into(), round(factor));
            numbers.insert("regularity_score".into(), round(s.score));
            numbers.insert("score".into(), round(score));
            out.push(self.beacon_finding(&o, &s, score, (times[0], len), numbers, ev));
            return;
        }
    }

    fn beacon_finding(
        &self,
        o: &Outbound,
        s: &BeaconScore,
        score: f64,
        (first, len): (f64, usize),
        numbers: BTreeMap<String, f64>,
        ev: &Event,
    ) -> Finding {
        let (addr, via) = (o.addr, o.via);
        let dest = format!("{}:{}/{}", o.dest, o.port, o.proto);
        let through = match via {
            Some(v) => {
                let how = if self.proxies.iter().any(|n| n.contains(&v)) { "configured" } else { "recognised" };
                format!(" through web proxy {v} ({how})")
            }
            None => String::new(),
        };
        let mut f = finding(
            "c2_beaconing",
            format!("{} connects to {dest}{through} every {:.0}s (score {score:.2})", o.src, s.median_interval),
            Severity::High,
            round(score) as f32,
            o.src,
            ev,
            (first, o.ts),
            len as u64,
            &["T1071", "T1573"],
            numbers,
            format!("destination {dest}"),
        );
        // The destination is what a responder blocks — its address when the client
        // reached it directly; a name reached through a proxy has no address of its own
        // (blocking the proxy would cut every client off). The beaconing host is the one
        // the finding is about.
        // An address that also serves other names (a CDN, a shared host) is not the
        // destination's own either: blocking it would cut those off.
        let shared = |a: IpAddr| self.beacons.map.iter().any(|(k, b)| b.addr == Some(a) && k.1 != o.dest);
        let (entity, blockable) = match (&o.dest, via) {
            (Dest::Addr(a), _) => (a.to_string(), Some(*a)),
            (Dest::Name(n), None) => match addr {
                Some(a) if !shared(a) => (a.to_string(), Some(a)),
                _ => (format!("domain:{n}"), None),
            },
            (Dest::Name(n), Some(_)) => (format!("domain:{n}"), None),
        };
        f.entity = Some(entity);
        f.src_ip = blockable.map(|a| a.to_string());
        f.host = o.src.to_string();
        let mut said = format!("internal host {} beacons to {}", o.src, o.dest);
        if let (Dest::Name(_), Some(a), None) = (&o.dest, addr, via) {
            if blockable.is_some() {
                said.push_str(&format!(" (last at {a})"));
            } else {
                said.push_str(&format!(" (last at {a}, an address that serves other names too: not the one to block)"));
            }
        }
        said.push_str(&through);
        f.evidence.insert(0, sanitize(&said, 512));
        f
    }
}
