//! DNS tunnelling: many long or high-entropy subdomains of one domain, or mostly TXT.

use super::*;

impl NetworkAnalyzer {
    pub(super) fn tunnel(&mut self, q: &DnsQuery, ev: &Event, out: &mut Vec<Finding>) {
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
