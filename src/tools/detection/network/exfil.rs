//! Exfiltration: a host's outbound bytes far above its own baseline, or above a ceiling.

use super::*;

/// Bytes per destination, the largest few, in a small vector (a flow's destination is
/// found by a scan of at most 16 pairs, no allocation per flow); stored as an object keyed
/// by the address's text.
#[derive(Debug, Clone, Default)]
pub struct TopBytes {
    kept: Vec<(IpAddr, u64)>,
    /// Where the smallest is once [`Self::KEPT`] are held (found again when it changes):
    /// a new destination smaller than it goes at once, without a scan.
    smallest: Option<usize>,
}

impl PartialEq for TopBytes {
    fn eq(&self, other: &Self) -> bool {
        self.kept == other.kept
    }
}

impl TopBytes {
    /// Destinations kept.
    const KEPT: usize = 16;

    /// Counts `bytes` to `dst`; past [`Self::KEPT`] destinations the smallest goes (the
    /// lowest address among equals).
    pub fn add(&mut self, dst: IpAddr, bytes: u64) {
        if let Some(i) = self.kept.iter().position(|(a, _)| *a == dst) {
            self.kept[i].1 += bytes;
            if self.smallest == Some(i) {
                self.smallest = None;
            }
            return;
        }
        if self.kept.len() < Self::KEPT {
            self.kept.push((dst, bytes));
            return;
        }
        // Counts compared first; addresses only between equals.
        let below = |(a, b): (IpAddr, u64), (ma, mb): (IpAddr, u64)| b < mb || (b == mb && a < ma);
        let min = match self.smallest {
            Some(m) => m,
            None => {
                let mut m = 0;
                for i in 1..self.kept.len() {
                    if below(self.kept[i], self.kept[m]) {
                        m = i;
                    }
                }
                m
            }
        };
        if below((dst, bytes), self.kept[min]) {
            self.smallest = Some(min);
        } else {
            self.kept[min] = (dst, bytes);
            self.smallest = None;
        }
    }

    /// The destination that received the most (the highest address among equals).
    pub fn largest(&self) -> Option<(IpAddr, u64)> {
        self.kept.iter().copied().max_by_key(|(a, b)| (*b, *a))
    }

    pub fn clear(&mut self) {
        self.kept.clear();
        self.smallest = None;
    }
}

impl Serialize for TopBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<IpAddr, u64> = self.kept.iter().copied().collect();
        sorted.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TopBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kept = BTreeMap::<IpAddr, u64>::deserialize(d)?.into_iter().collect();
        Ok(TopBytes { kept, smallest: None })
    }
}

/// How long a host's baseline outlives its last flow: many windows, at least a day.
pub(super) fn exfil_keep_secs(p: &NetworkParams) -> f64 {
    (p.exfil_window_secs as f64).max(86_400.0)
}

impl NetworkAnalyzer {
    pub(super) fn exfiltration(&mut self, f: &Flow, ev: &Event, out: &mut Vec<Finding>) {
        if f.orig_bytes == 0 || !f.outbound() {
            return;
        }
        let p = &self.params;
        let window = p.exfil_window_secs as f64;
        let keep = exfil_keep_secs(p);
        let Some(x) = self.exfil.touch(&f.src, &mut self.evicted) else { return };
        if x.last > 0.0 && x.last <= f.ts - keep {
            // Silent for longer than a baseline is kept: a host seen afresh.
            *x = Exfil::default();
        }
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
        x.by_dst.add(f.dst, f.orig_bytes);
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
        let (top, top_bytes) = match x.by_dst.largest() {
            Some((k, b)) => (Some(k), b),
            None => (None, 0),
        };
        let top_text = top.map(|a| a.to_string()).unwrap_or_default();
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
            format!("largest destination {top_text} ({})", human_bytes(top_bytes)),
        );
        // The receiving address is what containment blocks; the source host is named.
        if let Some(dst) = top {
            fi.src_ip = Some(dst.to_string());
            fi.entity = Some(dst.to_string());
            fi.evidence.insert(0, format!("internal host {} sent the data", f.src));
        }
        fi.host = f.src.to_string();
        out.push(fi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Destinations are kept as addresses and stored as before: an object keyed by the
    /// address's text (state stored by an older version reads back).
    #[test]
    fn destinations_are_stored_keyed_by_their_text() {
        let stored = serde_json::json!({"window_start": 600.0, "bytes": 30, "flows": 2,
            "by_dst": {"198.51.100.9": 10, "2001:db8::1": 20}, "baseline": 0.0, "windows": 0,
            "alerted": false, "last": 700.0});
        let x: Exfil = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(x.by_dst.largest(), Some(("2001:db8::1".parse().unwrap(), 20)));
        assert_eq!(serde_json::to_value(&x).unwrap(), stored);
        let bad = serde_json::json!({"by_dst": {"not an address": 1}});
        assert!(serde_json::from_value::<Exfil>(bad).is_err(), "a key that is no address is refused");
    }

    /// The largest sixteen are kept; among equal counts the lowest address goes first
    /// and the highest is the largest.
    #[test]
    fn the_largest_destinations_are_kept() {
        let mut t = TopBytes::default();
        for i in 1..=20u8 {
            t.add(IpAddr::from([198, 51, 100, i]), 100 * u64::from(i));
        }
        t.add(IpAddr::from([198, 51, 100, 20]), 1);
        assert_eq!(t.kept.len(), 16);
        assert!(t.kept.iter().all(|(a, _)| a > &IpAddr::from([198, 51, 100, 4])), "{t:?}");
        assert_eq!(t.largest(), Some((IpAddr::from([198, 51, 100, 20]), 2001)));
        let mut tie = TopBytes::default();
        tie.add(IpAddr::from([10, 0, 0, 9]), 5);
        tie.add(IpAddr::from([10, 0, 0, 2]), 5);
        assert_eq!(tie.largest(), Some((IpAddr::from([10, 0, 0, 9]), 5)));
    }

    /// The remembered smallest keeps what is kept exactly as a scan of all of them would:
    /// against a plain model (push, then drop the smallest of all) over a long mixed run
    /// of new destinations, repeated ones and ties.
    #[test]
    fn the_remembered_smallest_keeps_what_a_full_scan_keeps() {
        let mut model: Vec<(IpAddr, u64)> = Vec::new();
        let mut t = TopBytes::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let dst = IpAddr::from([198, 51, 100, (x % 40) as u8]);
            let bytes = (x >> 8) % 7 * 50;
            t.add(dst, bytes);
            match model.iter_mut().find(|(a, _)| *a == dst) {
                Some((_, b)) => *b += bytes,
                None => {
                    model.push((dst, bytes));
                    if model.len() > TopBytes::KEPT {
                        let min = (0..model.len()).min_by_key(|&i| (model[i].1, model[i].0)).unwrap();
                        model.swap_remove(min);
                    }
                }
            }
            assert_eq!(t.kept, model);
            if x % 997 == 0 {
                t.clear();
                model.clear();
            }
        }
    }
}
