//! Beaconing: a pair whose connections come on a regular rhythm with consistent sizes.

use super::*;

impl NetworkAnalyzer {
    pub(super) fn beacon(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
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
}
