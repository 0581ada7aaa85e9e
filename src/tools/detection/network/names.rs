//! Destinations by name: which name a connection went to, and which internal addresses
//! are web proxies.
//!
//! A connection's destination is the best name known for it: the `http.log` request's
//! host (a CONNECT's target) or the `ssl.log` server name of the same Zeek `uid`, else
//! the name a DNS answer gave the client for the address, else the address. A request
//! addressed to a proxy (CONNECT, or an absolute URI) is itself the observation — the
//! client and the name — and the connection to the proxy that carried it is not: a
//! proxy is never a beacon's destination. Proxies are configured (`proxies`) or
//! recognised: an internal address receiving proxy-style requests for `proxy_min_names`
//! distinct names.
//!
//! The names of a batch's `http`/`ssl` records and DNS answers are learnt before its
//! connections are read (merged on time, a connection's `conn` record comes before its
//! `ssl` record: both carry its start time); across batches they are kept a while (a live
//! `conn.log` line is written when the connection ends, after its `ssl.log` line).

use super::records::{Naming, Record};
use super::*;

/// How long (event time) a connection id's name is kept for its `conn` record.
const UID_TTL_SECS: f64 = 2.0 * 3600.0;
/// How long a DNS answer names an address for the client that asked.
const RESOLVED_TTL_SECS: f64 = 6.0 * 3600.0;

/// The name of one connection (by Zeek `uid`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UidName {
    pub ts: f64,
    pub name: String,
    pub port: u16,
    /// Carried through a proxy: the request is the observation, not the connection.
    pub proxied: bool,
}

/// The name a DNS answer gave a client for an address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resolved {
    pub ts: f64,
    pub name: String,
}

/// Proxy-style requests received by one internal address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProxySeen {
    /// Digests of the distinct names asked for, up to the recognition threshold.
    pub names: Vec<u64>,
    pub last: f64,
}

impl Recency for UidName {
    fn recency(&self) -> f64 {
        self.ts
    }
}

impl Recency for Resolved {
    fn recency(&self) -> f64 {
        self.ts
    }
}

impl Recency for ProxySeen {
    fn recency(&self) -> f64 {
        self.last
    }
}

/// Where a connection went: a name, or an address when no name is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    Addr(IpAddr),
    Name(String),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Addr(a) => a.fmt(f),
            Dest::Name(n) => f.write_str(n),
        }
    }
}

impl Dest {
    pub(super) fn parse(s: &str) -> Option<Dest> {
        match s.parse() {
            Ok(a) => Some(Dest::Addr(a)),
            Err(_) => records::host_port(s).map(|(n, _)| Dest::Name(n)),
        }
    }
}

/// One outbound connection (or proxied request) as beaconing sees it.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub ts: f64,
    pub src: IpAddr,
    pub dest: Dest,
    pub port: u16,
    pub proto: Proto,
    pub size: u64,
    /// The address connected to, when it was the destination itself (not a proxy).
    pub addr: Option<IpAddr>,
    /// The proxy that carried it.
    pub via: Option<IpAddr>,
    /// Whether the client is inside, and `addr` inside or ignored (`ignore_destinations`).
    pub src_internal: bool,
    pub addr_internal: bool,
    pub addr_ignored: bool,
}

impl NetworkAnalyzer {
    /// Learns the names a batch gives connections (http/ssl records, DNS answers) and
    /// the proxies its requests reveal, before its connections are read.
    pub(super) fn learn_names<'r>(&mut self, records: impl Iterator<Item = &'r Record<'r>>) {
        for r in records {
            match r {
                Record::Name(n) => self.learn_naming(n),
                Record::Dns(q) if !q.addrs.is_empty() && records::host_port(&q.query).is_some() => {
                    for a in &q.addrs {
                        if let Some(r) = self.resolved.touch(&(q.src, *a), &mut self.evicted) {
                            *r = Resolved { ts: q.ts, name: q.query.clone() };
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn learn_naming(&mut self, n: &Naming) {
        let proxied = n.proxy_style || self.is_proxy(n.dst, n.ts);
        // Recognised proxies are followed too: one still busy must not be forgotten.
        if n.proxy_style && self.internal(n.dst) && !self.proxies.iter().any(|c| c.contains(&n.dst)) {
            let min = self.params.proxy_min_names as usize;
            let keep = self.proxy_keep_secs();
            if let Some(p) = self.proxies_seen.touch(&n.dst, &mut self.evicted) {
                if p.last <= n.ts - keep {
                    // Silent for the window: what it was asked for before is forgotten.
                    *p = ProxySeen::default();
                }
                p.last = p.last.max(n.ts);
                let d = dns::digest(&n.name);
                if p.names.len() < min && !p.names.contains(&d) {
                    p.names.push(d);
                    if p.names.len() == min {
                        tracing::info!(proxy = %n.dst, names = min, "recognised a web proxy: its requests are attributed to their clients and names");
                    }
                }
            }
        }
        if let Some(uid) = &n.uid
            && let Some(u) = self.uids.touch(uid, &mut self.evicted)
        {
            // The first request of a kept-alive connection names it.
            if u.name.is_empty() || proxied || u.ts <= n.ts - UID_TTL_SECS {
                *u = UidName { ts: n.ts, name: n.name.clone(), port: n.port, proxied };
            }
        }
    }

    /// How long a recognised proxy stays one after its last proxy-style request (the
    /// beacon window: what it carried is scored over that time).
    fn proxy_keep_secs(&self) -> f64 {
        self.params.beacon_window_secs as f64
    }

    /// Whether an address is a web proxy at `now`: configured, or recognised from its
    /// requests (within the beacon window of the last).
    pub(super) fn is_proxy(&self, a: IpAddr, now: f64) -> bool {
        let keep = self.proxy_keep_secs();
        self.proxies.iter().any(|n| n.contains(&a))
            || self
                .proxies_seen
                .map
                .get(&a)
                .is_some_and(|p| p.names.len() >= self.params.proxy_min_names as usize && p.last > now - keep)
    }

    /// A proxied request as beaconing sees it: the client and the name.
    pub(super) fn proxied_request(&self, n: &Naming) -> Option<Outbound> {
        (n.proxy_style || self.is_proxy(n.dst, n.ts)).then(|| Outbound {
            ts: n.ts,
            src: n.src,
            dest: Dest::Name(n.name.clone()),
            port: n.port,
            proto: Proto::Tcp,
            size: n.size,
            addr: None,
            via: Some(n.dst),
            src_internal: self.internal(n.src),
            addr_internal: false,
            addr_ignored: false,
        })
    }

    /// A connection as beaconing sees it, under the best name known; `None` when it is
    /// a connection to or from a proxy (the requests it carried are the observations).
    pub(super) fn observed(&self, f: &Flow) -> Option<Outbound> {
        // Names past their time are not used, whether or not they were pruned yet.
        let named = f.uid.and_then(|u| self.uids.map.get(u)).filter(|u| u.ts > f.ts - UID_TTL_SECS);
        // A proxy's own connections out are its clients' requests, attributed to them.
        if named.is_some_and(|u| u.proxied) || self.is_proxy(f.dst, f.ts) || self.is_proxy(f.src, f.ts) {
            return None;
        }
        let resolved = || self.resolved.map.get(&(f.src, f.dst)).filter(|r| r.ts > f.ts - RESOLVED_TTL_SECS);
        let dest = match named {
            Some(u) => Dest::Name(u.name.clone()),
            None => match resolved() {
                Some(r) => Dest::Name(r.name.clone()),
                None => Dest::Addr(f.dst),
            },
        };
        Some(Outbound {
            ts: f.ts,
            src: f.src,
            dest,
            port: f.dport,
            proto: f.proto,
            size: f.orig_bytes,
            addr: Some(f.dst),
            via: None,
            src_internal: f.src_internal,
            addr_internal: f.dst_internal,
            addr_ignored: f.dst_ignored,
        })
    }

    pub(super) fn prune_names(&mut self, now: f64) {
        if self.pruned.due("uids", now, UID_TTL_SECS) {
            self.uids.retain(|u| u.ts > now - UID_TTL_SECS);
        }
        if self.pruned.due("resolved", now, RESOLVED_TTL_SECS) {
            self.resolved.retain(|r| r.ts > now - RESOLVED_TTL_SECS);
        }
        let keep = self.proxy_keep_secs();
        if self.pruned.due("proxies", now, keep) {
            self.proxies_seen.retain(|p| p.last > now - keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_772_409_600.0;

    fn event(program: &str, fields: serde_json::Value) -> Event {
        let serde_json::Value::Object(map) = fields else { unreachable!() };
        let ts = map["ts"].as_f64().unwrap();
        crate::ingest::parse::json::record_event(map, epoch(ts).unwrap(), String::new(), program.into(), String::new())
    }

    fn conn(ts: f64, uid: &str, src: &str, dst: &str, port: u16) -> Event {
        event(
            "zeek:conn",
            serde_json::json!({"ts": ts, "uid": uid, "id.orig_h": src, "id.orig_p": 40000, "id.resp_h": dst,
                "id.resp_p": port, "proto": "tcp", "duration": 0.5, "orig_bytes": 300, "resp_bytes": 900,
                "conn_state": "SF"}),
        )
    }

    fn ssl(ts: f64, uid: &str, src: &str, dst: &str, name: &str) -> Event {
        event(
            "zeek:ssl",
            serde_json::json!({"ts": ts, "uid": uid, "id.orig_h": src, "id.orig_p": 40000, "id.resp_h": dst,
                "id.resp_p": 443, "server_name": name}),
        )
    }

    fn http(ts: f64, src: &str, proxy: &str, method: &str, host: &str, uri: &str) -> Event {
        event(
            "zeek:http",
            serde_json::json!({"ts": ts, "uid": format!("H{}", ts as u64), "id.orig_h": src, "id.orig_p": 40000,
                "id.resp_h": proxy, "id.resp_p": 3128, "method": method, "host": host, "uri": uri,
                "request_body_len": 0}),
        )
    }

    /// Names are what a client asked for: a CONNECT's target, an absolute URI's host, a
    /// Host header, a TLS server name — lower case, without port or trailing dot; what
    /// is not a DNS name (an address, a header with spaces, `..`-free junk) is none.
    #[test]
    fn requests_name_their_destination() {
        let n = Naming::from_event(&http(T0, "10.0.0.7", "10.0.0.3", "CONNECT", "-", "C2.Example.NET:8443")).unwrap();
        assert_eq!((n.name.as_str(), n.port, n.proxy_style), ("c2.example.net", 8443, true));
        let n = Naming::from_event(&http(T0, "10.0.0.7", "10.0.0.3", "GET", "x", "http://a.example.org:8080/p?q=1"))
            .unwrap();
        assert_eq!((n.name.as_str(), n.port, n.proxy_style), ("a.example.org", 8080, true));
        let n = Naming::from_event(&http(T0, "10.0.0.7", "198.51.100.1", "GET", "www.example.org.", "/")).unwrap();
        assert_eq!((n.name.as_str(), n.port, n.proxy_style), ("www.example.org", 3128, false));
        let n = Naming::from_event(&ssl(T0, "C1", "10.0.0.7", "198.51.100.1", "api.example.com")).unwrap();
        assert_eq!((n.name.as_str(), n.port, n.uid.as_deref()), ("api.example.com", 443, Some("C1")));
        for bad in ["198.51.100.1", "evil host.example", "a>b.example", "", "localhost"] {
            assert!(Naming::from_event(&http(T0, "10.0.0.7", "198.51.100.1", "GET", bad, "/")).is_none(), "{bad}");
        }
        // Keys round-trip, names and addresses (IPv6 too) alike.
        for key in [
            (IpAddr::from([10, 0, 0, 7]), Dest::Name("c2.example.net".into()), 443, Proto::Tcp),
            (IpAddr::from([10, 0, 0, 7]), Dest::Addr("2001:db8::1".parse().unwrap()), 8443, Proto::Tcp),
        ] {
            assert_eq!(<beacon::PairKey as StateKey>::decode(&key.encode()), Some(key));
        }
    }

    /// Live, a connection's `ssl.log` line is written before its `conn.log` line (at its
    /// end): the name learnt from an earlier batch names the connection, and survives a
    /// restart from the stored state.
    #[test]
    fn a_server_name_from_an_earlier_batch_names_the_connection() {
        let mut a = NetworkAnalyzer::new(NetworkParams::default());
        let mut found = Vec::new();
        let mut stored = std::collections::BTreeMap::new();
        for i in 0..10 {
            let ts = T0 + 60.0 * i as f64;
            let uid = format!("C{i}");
            found.extend(a.analyze(&[ssl(ts + 0.05, &uid, "10.0.0.7", "198.51.100.9", "c2.example.net")]));
            for (k, v) in a.take_delta() {
                stored.insert(k, v);
            }
            if i == 5 {
                // A restart between a connection's name and its record.
                let mut b = NetworkAnalyzer::new(NetworkParams::default());
                b.restore(stored.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect()).unwrap();
                a = b;
            }
            found.extend(a.analyze(&[conn(ts, &uid, "10.0.0.7", "198.51.100.9", 443)]));
            for (k, v) in a.take_delta() {
                stored.insert(k, v);
            }
        }
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].title.contains("c2.example.net:443/tcp"), "{}", found[0].title);
        assert_eq!(found[0].entity.as_deref(), Some("198.51.100.9"), "reached directly, at an address of its own");
        assert_eq!(found[0].numbers["connections"], 8.0);
    }

    /// A configured proxy: its requests are the observations (absolute URIs here, too
    /// few names for it to be recognised), its connections are not — neither to it nor
    /// from it.
    #[test]
    fn a_configured_proxy_is_never_the_destination() {
        let params = NetworkParams { proxies: vec!["10.0.0.3/32".into()], beacon_internal: true, ..Default::default() };
        let mut a = NetworkAnalyzer::new(params);
        let mut found = Vec::new();
        for i in 0..10 {
            let ts = T0 + 120.0 * i as f64;
            found.extend(a.analyze(&[
                conn(ts, &format!("H{}", (ts + 0.01) as u64), "10.0.0.7", "10.0.0.3", 3128),
                http(ts + 0.01, "10.0.0.7", "10.0.0.3", "GET", "-", "http://updates.evil.example/check"),
                conn(ts + 0.05, "Cout", "10.0.0.3", "203.0.113.5", 80),
            ]));
        }
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(
            (f.entity.as_deref(), f.src_ip.as_deref(), f.host.as_str()),
            (Some("domain:updates.evil.example"), None, "10.0.0.7")
        );
        assert!(f.title.contains("through web proxy 10.0.0.3 (configured)"), "{}", f.title);
        assert!(
            a.beacons.map.keys().all(|k| k.0 != IpAddr::from([10, 0, 0, 3]) && k.1 != Dest::Addr([10, 0, 0, 3].into()))
        );
    }
}
