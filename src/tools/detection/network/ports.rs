//! Unusual ports (T1571, as Slips reports them): an inside host's established TCP
//! connection that exchanged data with an outside address on a port no common service
//! uses — and that few inside hosts use (a port many hosts use is a service of the
//! organisation's, a VPN or an application). Low severity: context for correlation and
//! the analyst, not an incident by itself.

use super::*;

/// Inside clients remembered per port (enough to say "more than a few").
const CLIENTS_PER_PORT: usize = 8;

/// How long a port's clients are remembered after its last use.
pub(super) const PORT_CLIENTS_KEEP_SECS: f64 = 7.0 * 86_400.0;

/// One pair on an unusual port, reported once a day.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OddPort {
    pub last: f64,
    pub last_alert: Option<f64>,
}

impl Recency for OddPort {
    fn recency(&self) -> f64 {
        self.last
    }
}

/// The inside clients seen on one unusual port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PortClients {
    pub clients: Vec<IpAddr>,
    pub last: f64,
}

impl Recency for PortClients {
    fn recency(&self) -> f64 {
        self.last
    }
}

/// `proto/port` (clients of a port).
impl StateKey for (Proto, u16) {
    fn encode(&self) -> String {
        format!("{}/{}", self.0, self.1)
    }
    fn decode(s: &str) -> Option<Self> {
        let (proto, port) = s.split_once('/')?;
        Some((proto_name(proto), port.parse().ok()?))
    }
}

impl NetworkAnalyzer {
    pub(super) fn unusual_port(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        let established = matches!(f.state, "SF" | "S1" | "S2" | "S3" | "RSTO" | "RSTR");
        if f.proto != Proto::Tcp
            || !established
            || f.resp_bytes == 0
            || f.orig_bytes + f.resp_bytes < p.unusual_port_min_bytes
            || p.common_ports.contains(&f.dport)
            || !f.outbound()
            || self.is_proxy(f.src, f.ts)
        {
            return;
        }
        let (max_clients, now) = (p.unusual_port_max_clients as usize, f.ts);
        let Some(pc) = self.port_clients.touch(&(f.proto, f.dport), &mut self.evicted) else { return };
        if pc.last <= now - PORT_CLIENTS_KEEP_SECS {
            // Unused for the time a port's clients are kept: counted afresh.
            *pc = PortClients::default();
        }
        pc.last = pc.last.max(now);
        if !pc.clients.contains(&f.src) && pc.clients.len() < CLIENTS_PER_PORT {
            pc.clients.push(f.src);
        }
        let clients = pc.clients.len();
        if clients > max_clients {
            return;
        }
        let Some(o) = self.odd_ports.touch(&(f.src, names::Dest::Addr(f.dst), f.dport, f.proto), &mut self.evicted)
        else {
            return;
        };
        o.last = o.last.max(now);
        if o.last_alert.is_some_and(|a| now < a + 86_400.0) {
            return;
        }
        o.last_alert = Some(now);
        let mut numbers = BTreeMap::new();
        numbers.insert("port".into(), f64::from(f.dport));
        numbers.insert("bytes_out".into(), f.orig_bytes as f64);
        numbers.insert("bytes_in".into(), f.resp_bytes as f64);
        numbers.insert("duration_secs".into(), round(f.duration));
        numbers.insert("inside_clients_of_port".into(), clients as f64);
        let mut fi = finding(
            "unusual_port",
            format!(
                "{} exchanged data with {} on unusual port {}/{} ({} out, {} in)",
                f.src,
                f.dst,
                f.dport,
                f.proto,
                human_bytes(f.orig_bytes),
                human_bytes(f.resp_bytes)
            ),
            Severity::Low,
            0.4,
            f.dst,
            ev,
            (f.ts, f.ts + f.duration),
            1,
            &["T1571"],
            numbers,
            format!("inside host {} to {}:{}/{}", f.src, f.dst, f.dport, f.proto),
        );
        fi.entity = Some(f.dst.to_string());
        fi.host = f.src.to_string();
        out.push(fi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(src: &str, dst: &str, port: u16, state: &str, bytes: u64) -> Event {
        let m = serde_json::json!({
            "ts": 1_772_409_600.0, "uid": "C1", "id.orig_h": src, "id.orig_p": 40000, "id.resp_h": dst,
            "id.resp_p": port, "proto": "tcp", "duration": 3.0, "orig_bytes": bytes, "resp_bytes": bytes,
            "conn_state": state,
        });
        let serde_json::Value::Object(map) = m else { unreachable!() };
        crate::ingest::parse::json::record_event(
            map,
            epoch(1_772_409_600.0).unwrap(),
            String::new(),
            "zeek:conn".into(),
            String::new(),
        )
    }

    /// Reported: data exchanged on an odd port, once per pair. Not: a common port, an
    /// unanswered attempt, a handful of bytes, a port many inside hosts use.
    #[test]
    fn data_on_a_port_few_hosts_use_is_reported_once() {
        let mut a = NetworkAnalyzer::new(NetworkParams::default());
        let found = a.analyze(&[conn("10.0.0.7", "203.0.113.5", 1337, "SF", 40_000)]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].rule.as_str(), found[0].severity), ("unusual_port", Severity::Low));
        assert_eq!((found[0].entity.as_deref(), found[0].host.as_str()), (Some("203.0.113.5"), "10.0.0.7"));
        assert!(a.analyze(&[conn("10.0.0.7", "203.0.113.5", 1337, "SF", 40_000)]).is_empty(), "once a day");
        for (src, dst, port, state, bytes) in [
            ("10.0.0.8", "203.0.113.5", 443, "SF", 40_000),
            ("10.0.0.8", "203.0.113.5", 4444, "S0", 0),
            ("10.0.0.8", "203.0.113.5", 4444, "SF", 100),
            ("203.0.113.5", "10.0.0.8", 4444, "SF", 40_000),
        ] {
            assert!(a.analyze(&[conn(src, dst, port, state, bytes)]).is_empty(), "{src} {port} {state}");
        }
        // A port several inside hosts use (an application's): the third and later
        // clients are not reported.
        let mut reported = 0;
        for i in 1..=6 {
            reported += a.analyze(&[conn(&format!("10.0.1.{i}"), "198.51.100.9", 9000, "SF", 40_000)]).len();
        }
        assert_eq!(reported, 2);
    }
}
