//! The statistics behind the network findings: medians and absolute deviations,
//! Bowley's skew, the beaconing score, byte entropy and registered domains.

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The median of `v` and the median absolute deviation from it.
fn median_mad(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = median(&s);
    let mut d: Vec<f64> = s.iter().map(|x| (x - m).abs()).collect();
    d.sort_by(f64::total_cmp);
    (m, median(&d))
}

/// Bowley's quartile skew of `v`, in [-1, 1], and the interquartile range. The skew is
/// 0 for a symmetric series, and also when the median sits on a quartile (a series of
/// two values is not "skewed", only jittered).
pub(super) fn bowley(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n < 3 {
        return (0.0, 0.0);
    }
    let (lo, hi) = (&s[..n / 2], &s[n.div_ceil(2)..]);
    let (q1, q2, q3) = (median(lo), median(&s), median(hi));
    let iqr = q3 - q1;
    if iqr <= f64::EPSILON || q2 == q1 || q2 == q3 { (0.0, iqr) } else { ((q1 + q3 - 2.0 * q2) / iqr, iqr) }
}

/// The parts of a beaconing score.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconScore {
    pub median_interval: f64,
    pub interval_mad: f64,
    pub skew: f64,
    pub median_size: f64,
    pub size_mad: f64,
    pub score: f64,
}

/// Scores connection start times and payload sizes (time-ordered) for regularity:
/// 0.45 × interval dispersion (1 − MAD/median) + 0.2 × interval symmetry (1 − |skew|)
/// + 0.2 × size consistency (1 − MAD/median) + 0.15 × connection count (n/20, capped).
///
/// Timing weighs most: constant sizes at random times (a chatty client) are not a beacon.
pub fn beacon_score(times: &[f64], sizes: &[f64]) -> Option<BeaconScore> {
    if times.len() < 3 {
        return None;
    }
    let intervals: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let (mi, imad) = median_mad(&intervals);
    if mi <= 0.0 {
        return None;
    }
    let (skew, iqr) = bowley(&intervals);
    let (ms, smad) = median_mad(sizes);
    let dispersion = 1.0 - (imad / mi).min(1.0);
    // Asymmetry only counts when the spread matters: within 10 % of the median, a skew
    // is jitter.
    let symmetry = 1.0 - skew.abs().min(1.0) * (iqr / (0.1 * mi)).min(1.0);
    let size = if ms <= 0.0 { if smad == 0.0 { 1.0 } else { 0.0 } } else { 1.0 - (smad / ms).min(1.0) };
    let count = (times.len() as f64 / 20.0).min(1.0);
    Some(BeaconScore {
        median_interval: mi,
        interval_mad: imad,
        skew,
        median_size: ms,
        size_mad: smad,
        score: 0.45 * dispersion + 0.2 * symmetry + 0.2 * size + 0.15 * count,
    })
}

/// Shannon entropy of a string's bytes, in bits per byte.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| *c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Second-level labels under which registrations happen (`example.co.uk`). Not the
/// whole public suffix list: the common multi-label suffixes.
const MULTI_SUFFIX: &[&str] = &["co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nic"];

/// Splits a query name into (subdomain part, registered domain).
pub fn split_registered(name: &str) -> (&str, &str) {
    let labels: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
    let n = labels.len();
    // Number of labels in the registered domain: 2, or 3 under `co.uk`-style suffixes.
    let take = if n >= 2 {
        let tld_start = labels[n - 1] + 1;
        let sld = &name[labels[n - 2] + 1..labels[n - 1]];
        if name.len() - tld_start == 2 && MULTI_SUFFIX.contains(&sld) { 3 } else { 2 }
    } else {
        2
    };
    if n < take {
        return ("", name);
    }
    let cut = labels[n - take];
    (&name[..cut], &name[cut + 1..])
}
