//! Scans: vertical (many ports of one host) and horizontal sweeps (one port, many hosts).

use std::fmt::Write;

use super::*;

impl NetworkAnalyzer {
    pub(super) fn scan(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        let window = p.scan_window_secs as f64;
        let vkey = (f.src, f.dst);
        let hkey = (f.src, f.proto, f.dport);
        let unanswered = f.unanswered();
        // A sweep of one port counts answered attempts too when it is of our hosts or
        // comes from outside (a host touching 29 of our web servers is a sweep, answered
        // or not); from the inside out it must be mostly unanswered, as a scan — a
        // browsing host reaches many answering servers on 443.
        let from_outside = !f.src_internal;
        let sweep_starts = unanswered || from_outside || f.dst_internal;
        for vertical in [true, false] {
            let threshold = if vertical { p.vertical_scan_ports } else { p.horizontal_scan_hosts } as usize;
            // A scan starts with an unanswered attempt (a sweep also with an answered one
            // of ours, or from outside): other traffic only adds to a key that is already
            // tracked (this keeps ordinary traffic out of the state).
            let starts = if vertical { unanswered } else { sweep_starts };
            if !starts
                && !(if vertical { self.vscan.map.contains_key(&vkey) } else { self.hscan.map.contains_key(&hkey) })
            {
                continue;
            }
            let t = if vertical {
                self.vscan.touch(&vkey, &mut self.evicted)
            } else {
                self.hscan.touch(&hkey, &mut self.evicted)
            };
            let Some(t) = t else { continue };
            // The target as text, written into a buffer kept between flows: most flows
            // of a tracked key refresh a known target (a host's DNS server), no copy.
            let target = &mut self.scratch;
            target.clear();
            let _ = if vertical { write!(target, "{}", f.dport) } else { write!(target, "{}", f.dst) };
            if t.seen.is_empty() {
                t.first = f.ts;
            }
            t.last = t.last.max(f.ts);
            let room = t.seen.len() < threshold * 4;
            match t.seen.get_mut(target.as_str()) {
                Some(e) if f.ts >= e.0 => *e = (f.ts, unanswered),
                Some(_) => {}
                // Bounded: past four times the threshold only refresh known targets.
                None if room => {
                    t.seen.insert(target.clone(), (f.ts, unanswered));
                }
                None => {}
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
}
