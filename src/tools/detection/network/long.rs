//! Long connections and strobes (as RITA names them), of an inside host to an outside
//! address: a connection open for hours — or a pair's overlapping connections covering
//! hours together — and a pair with a thousand connections in a day, which is reported
//! as a strobe rather than scored as a beacon.

use super::*;

/// Connections shorter than this are not followed for long connections.
const MIN_TRACKED_SECS: f64 = 60.0;

/// One long-connection finding per pair within this time: a device that keeps a
/// session to its broker open all day is one finding, not one per reconnection.
pub(super) const LONG_REPORT_EVERY_SECS: f64 = 86_400.0;

/// The connections of one pair that overlap.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LongConn {
    pub start: f64,
    pub end: f64,
    /// Bytes of the complete connections, both ways.
    pub bytes: u64,
    /// The most a still-open connection had exchanged when last logged.
    pub open_bytes: u64,
    pub conns: u64,
    pub open: bool,
    /// When the pair was last reported (kept across runs; a run is reported once).
    #[serde(default)]
    pub last_alert: Option<f64>,
}

impl Recency for LongConn {
    fn recency(&self) -> f64 {
        self.end
    }
}

/// Connections of one pair in the current window (an entry and its key fill one
/// 64-byte cache line: every outbound flow touches this table).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Strobe {
    pub window_start: f64,
    pub count: u32,
    pub last: f64,
    pub alerted: bool,
}

impl Recency for Strobe {
    fn recency(&self) -> f64 {
        self.last
    }
}

impl NetworkAnalyzer {
    pub(super) fn long_connection(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        if !f.outbound() {
            return;
        }
        let limit = self.params.long_connection_secs as f64;
        // Short connections are most of the traffic and cannot cover hours together
        // without overlapping long ones: they are not tracked.
        if f.duration < limit.min(MIN_TRACKED_SECS) {
            return;
        }
        let Some(l) = self.long.touch(&(f.src, names::Dest::Addr(f.dst), f.dport, f.proto), &mut self.evicted) else {
            return;
        };
        let end = f.ts + f.duration;
        // A connection that does not overlap the run starts a new one.
        if l.conns == 0 || f.ts > l.end {
            *l = LongConn { start: f.ts, end, last_alert: l.last_alert, ..LongConn::default() };
        }
        l.start = l.start.min(f.ts);
        l.end = l.end.max(end);
        let bytes = f.orig_bytes + f.resp_bytes;
        if f.open {
            l.open_bytes = l.open_bytes.max(bytes);
        } else {
            l.bytes += bytes;
        }
        l.open |= f.open;
        l.conns += 1;
        let span = l.end - l.start;
        if span < limit || l.last_alert.is_some_and(|a| l.end < a + LONG_REPORT_EVERY_SECS) {
            return;
        }
        l.last_alert = Some(l.end);
        let mut numbers = BTreeMap::new();
        numbers.insert("duration_secs".into(), span.round());
        numbers.insert("bytes".into(), l.bytes as f64);
        numbers.insert("open_bytes".into(), l.open_bytes as f64);
        numbers.insert("connections".into(), l.conns as f64);
        numbers.insert("still_open".into(), if l.open { 1.0 } else { 0.0 });
        numbers.insert("threshold_secs".into(), limit);
        let (hours, minutes) = ((span / 3600.0) as u64, ((span % 3600.0) / 60.0) as u64);
        let how = if l.conns > 1 { format!("{} overlapping connections", l.conns) } else { "one connection".into() };
        let mut fi = finding(
            "long_connection",
            format!(
                "{} kept {}:{}/{} connected for {hours} h {minutes:02} min ({how})",
                f.src, f.dst, f.dport, f.proto
            ),
            Severity::Medium,
            0.6,
            f.dst,
            ev,
            (l.start, l.end),
            l.conns,
            &["T1071"],
            numbers,
            format!("inside host {} ({} exchanged)", f.src, human_bytes(l.bytes.max(l.open_bytes))),
        );
        // As for a beacon: the outside address is what containment blocks.
        fi.entity = Some(f.dst.to_string());
        fi.host = f.src.to_string();
        out.push(fi);
    }

    /// Counts a pair's connections; true while the pair is a strobe (its connections
    /// are then not scored as a beacon).
    pub(super) fn strobe(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) -> bool {
        let p = &self.params;
        if p.beacon_ignore_ports.contains(&f.dport) || !f.outbound() {
            return false;
        }
        let (threshold, window) = (p.strobe_connections, p.strobe_window_secs as f64);
        let Some(s) = self.strobes.touch(&(f.src, f.dst), &mut self.evicted) else { return false };
        if s.count == 0 || f.ts >= s.window_start + window {
            *s = Strobe { window_start: f.ts, ..Strobe::default() };
        }
        s.count = s.count.saturating_add(1);
        s.last = s.last.max(f.ts);
        if u64::from(s.count) < threshold {
            return false;
        }
        if !s.alerted {
            s.alerted = true;
            let mut numbers = BTreeMap::new();
            numbers.insert("connections".into(), f64::from(s.count));
            numbers.insert("window_secs".into(), window);
            numbers.insert("threshold".into(), threshold as f64);
            let mut fi = finding(
                "strobe",
                format!(
                    "{} connected to {} {} times within {} s",
                    f.src,
                    f.dst,
                    s.count,
                    (s.last - s.window_start) as u64
                ),
                Severity::Medium,
                0.5,
                f.dst,
                ev,
                (s.window_start, s.last),
                s.count.into(),
                &["T1071"],
                numbers,
                format!("inside host {}", f.src),
            );
            fi.entity = Some(f.dst.to_string());
            fi.host = f.src.to_string();
            out.push(fi);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(program: &str, ts: f64, dur: f64, bytes: u64) -> Event {
        let m = serde_json::json!({
            "ts": ts, "uid": "C1", "id.orig_h": "10.0.0.7", "id.orig_p": 40000, "id.resp_h": "203.0.113.7",
            "id.resp_p": 22, "proto": "tcp", "duration": dur, "orig_bytes": bytes, "resp_bytes": 0, "conn_state": "S1",
        });
        let serde_json::Value::Object(map) = m else { unreachable!() };
        crate::ingest::parse::json::record_event(map, epoch(ts).unwrap(), String::new(), program.into(), String::new())
    }

    /// A connection still open when Zeek logged it (`conn_long.log`) is a long connection
    /// once it has lasted the threshold, with the bytes so far; it is not counted again
    /// as a flow (its complete record comes later), and a record below the threshold is
    /// nothing yet.
    #[test]
    fn a_still_open_connection_is_long_once_it_has_lasted() {
        let mut a = NetworkAnalyzer::new(NetworkParams::default());
        assert!(a.analyze(&[event("zeek:conn_long", 1_772_409_600.0, 1800.0, 5_000)]).is_empty());
        let found = a.analyze(&[event("zeek:conn_long", 1_772_409_600.0, 3700.0, 9_000)]);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(
            (f.rule.as_str(), f.entity.as_deref(), f.host.as_str()),
            ("long_connection", Some("203.0.113.7"), "10.0.0.7")
        );
        assert_eq!((f.numbers["still_open"], f.numbers["open_bytes"], f.numbers["bytes"]), (1.0, 9_000.0, 0.0));
        assert_eq!(a.beacons.map.len() + a.exfil.map.len() + a.strobes.map.len(), 0, "not a flow of its own");
        // Its complete record later: the same run, not a second finding.
        assert!(a.analyze(&[event("zeek:conn", 1_772_409_600.0, 5000.0, 20_000)]).is_empty());
        // A new session after a gap, the same day: the pair was reported already.
        assert!(a.analyze(&[event("zeek:conn", 1_772_420_000.0, 4000.0, 20_000)]).is_empty());
        // The next day it is reported again.
        assert_eq!(a.analyze(&[event("zeek:conn", 1_772_500_000.0, 4000.0, 20_000)]).len(), 1);
    }
}
