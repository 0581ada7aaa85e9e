//! DNS as a channel: many long or high-entropy subdomains of one domain, mostly TXT
//! queries, or many high-entropy TXT answers (tunnelling, C2 in the answers); and a
//! domain generation algorithm: one source asking for many names, of many domains,
//! that do not exist.

use super::*;

/// Names remembered per source for the NXDOMAIN count.
const MAX_NX_PER_SOURCE: usize = 1024;

/// The names one source asked for that did not exist, in the DNS window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NxWindow {
    /// (time, digest of the name, digest of its registered domain).
    pub names: VecDeque<(f64, u64, u64)>,
    pub samples: Vec<String>,
    pub last_alert: Option<f64>,
}

impl Recency for NxWindow {
    fn recency(&self) -> f64 {
        self.names.back().map_or(0.0, |n| n.0)
    }
}

pub(super) fn digest(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl NetworkAnalyzer {
    pub(super) fn tunnel(&mut self, q: &DnsQuery, ev: &Event, out: &mut Vec<Finding>) {
        let p = &self.params;
        let (sub, domain) = split_registered(&q.query);
        let key = (q.src, domain.to_string());
        let Some(d) = self.dns.touch(&key, &mut self.evicted) else { return };
        let window = p.dns_window_secs as f64;
        let len = sub.len();
        let obs = DnsObs {
            ts: q.ts,
            sub: digest(sub),
            len: len.min(u16::MAX as usize) as u16,
            high_entropy: len >= p.dns_entropy_min_len && entropy(sub) >= p.dns_entropy_bits,
            txt: matches!(q.qtype.as_str(), "TXT" | "NULL"),
            txt_answers: q
                .txt_answers
                .iter()
                .filter(|a| a.len() >= p.dns_entropy_min_len && entropy(a) >= p.dns_entropy_bits)
                .map(|a| digest(a))
                .collect(),
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
        let answers = d.queries.iter().flat_map(|o| o.txt_answers.iter()).collect::<HashSet<_>>().len();
        let distinct = d.queries.iter().map(|o| o.sub).collect::<HashSet<_>>().len();
        if answers >= p.dns_txt_answers as usize {
            d.last_alert = Some(q.ts);
            let first = d.queries.front().map(|o| o.ts).unwrap_or(q.ts);
            let mut numbers = BTreeMap::new();
            numbers.insert("queries".into(), n as f64);
            numbers.insert("distinct_high_entropy_txt_answers".into(), answers as f64);
            numbers.insert("distinct_subdomains".into(), distinct as f64);
            numbers.insert("window_secs".into(), window);
            let title = format!(
                "{} received {answers} distinct encoded-looking TXT answers from {domain} within {}s",
                q.src, window as u64
            );
            let note = format!("domain {domain}; e.g. {}", sanitize(&q.query, 255));
            out.push(domain_finding("dns_txt_channel", title, q, domain, ev, (first, n as u64), numbers, note));
            return;
        }
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
        let title = format!(
            "{} sent {distinct} distinct encoded-looking subdomains of {domain} within {}s",
            q.src, window as u64
        );
        let note = format!("domain {domain}; e.g. {samples}");
        out.push(domain_finding("dns_tunnelling", title, q, domain, ev, (first, n as u64), numbers, note));
    }

    /// A domain generation algorithm: a source asking for many names, over many
    /// registered domains, that do not exist.
    pub(super) fn nx_burst(&mut self, q: &DnsQuery, ev: &Event, out: &mut Vec<Finding>) {
        if q.rcode != "NXDOMAIN" {
            return;
        }
        let p = &self.params;
        let window = p.dns_window_secs as f64;
        let Some(x) = self.nxdomain.touch(&q.src, &mut self.evicted) else { return };
        let (_, domain) = split_registered(&q.query);
        x.names.push_back((q.ts, digest(&q.query), digest(domain)));
        if x.names.len() > MAX_NX_PER_SOURCE {
            x.names.pop_front();
        }
        while x.names.front().is_some_and(|n| n.0 <= q.ts - window) {
            x.names.pop_front();
        }
        if x.samples.len() < 5 {
            x.samples.push(sanitize(&q.query, 255));
        }
        if x.last_alert.is_some_and(|a| q.ts < a + window) {
            return;
        }
        let names = x.names.iter().map(|n| n.1).collect::<HashSet<_>>().len();
        let domains = x.names.iter().map(|n| n.2).collect::<HashSet<_>>().len();
        if names < p.dga_nxdomain_names as usize || domains < p.dga_min_domains as usize {
            return;
        }
        x.last_alert = Some(q.ts);
        let mut numbers = BTreeMap::new();
        numbers.insert("nxdomain_names".into(), names as f64);
        numbers.insert("registered_domains".into(), domains as f64);
        numbers.insert("window_secs".into(), window);
        let first = x.names.front().map_or(q.ts, |n| n.0);
        let mut fi = finding(
            "dga_nxdomain",
            format!(
                "{} asked for {names} names of {domains} domains that do not exist within {}s (a domain generation algorithm)",
                q.src, window as u64
            ),
            Severity::High,
            0.6,
            q.src,
            ev,
            (first, q.ts),
            x.names.len() as u64,
            &["T1568.002"],
            numbers,
            format!("e.g. {}", x.samples.join(" ")),
        );
        // The querying host is the infected one: named as the host, not blocked.
        fi.entity = Some(format!("host:{}", q.src));
        fi.src_ip = None;
        fi.host = q.src.to_string();
        out.push(fi);
    }
}

/// A finding about a domain used as a channel: the domain is the entity; the querying
/// host is a victim, not an attacker.
#[allow(clippy::too_many_arguments)]
fn domain_finding(
    rule: &str,
    title: String,
    q: &DnsQuery,
    domain: &str,
    ev: &Event,
    (first, count): (f64, u64),
    numbers: BTreeMap<String, f64>,
    note: String,
) -> Finding {
    let mut fi = finding(
        rule,
        title,
        Severity::High,
        0.7,
        q.src,
        ev,
        (first, q.ts),
        count,
        &["T1071.004", "T1572", "T1048"],
        numbers,
        note,
    );
    fi.entity = Some(format!("domain:{}", sanitize(domain, 255)));
    fi.src_ip = None;
    fi.host = q.src.to_string();
    fi
}
