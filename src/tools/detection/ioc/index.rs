//! The indicator index: exact addresses in hash maps, networks per prefix length
//! (longest first), domains with their parents, normalised URLs, hashes and e-mail
//! addresses — each with its feed, confidence and label — and the lookups over it,
//! including the single-pass search of raw text.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::values::{Value, hash_kind, normalize_url, token_byte};
use super::{FeedSpec, IocKind};
use crate::messages::{Event, IntelHit};
use crate::tools::detection::sigma::RuleError;

#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    /// The feed that owns the entry (the most confident one).
    feed: u16,
    /// The last feed that inserted it (duplicate counting while loading).
    seen_by: u16,
    confidence: u8,
    label: u32,
}

pub(super) const NO_LABEL: u32 = u32::MAX;

/// Per feed: indicators by kind, entries skipped, and the errors met.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedStats {
    pub files: usize,
    pub indicators: BTreeMap<IocKind, usize>,
    /// Entries of types Warden does not match (MISP `filename`, STIX `x509-certificate`…).
    pub unsupported: usize,
    pub invalid: usize,
}

/// The loaded indicators of every feed.
#[derive(Default)]
pub struct IocIndex {
    pub(super) feeds: Vec<FeedSpec>,
    pub(super) labels: Vec<Box<str>>,
    pub(super) label_ids: HashMap<Box<str>, u32>,
    pub(super) v4: HashMap<u32, Meta>,
    pub(super) v6: HashMap<u128, Meta>,
    /// (prefix length, networks of that length), longest first.
    pub(super) cidr4: Vec<(u8, HashMap<u32, Meta>)>,
    pub(super) cidr6: Vec<(u8, HashMap<u128, Meta>)>,
    pub(super) domains: HashMap<Box<str>, Meta>,
    pub(super) urls: HashMap<Box<str>, Meta>,
    pub(super) hashes: HashMap<Box<str>, Meta>,
    pub(super) emails: HashMap<Box<str>, Meta>,
    pub stats: BTreeMap<String, FeedStats>,
    pub errors: Vec<RuleError>,
}

impl std::fmt::Debug for IocIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IocIndex").field("indicators", &self.len()).finish_non_exhaustive()
    }
}

impl IocIndex {
    /// Every indicator held.
    pub fn len(&self) -> usize {
        self.v4.len()
            + self.v6.len()
            + self.cidr4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.cidr6.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.domains.len()
            + self.urls.len()
            + self.hashes.len()
            + self.emails.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn stats_mut(&mut self, feed: u16) -> &mut FeedStats {
        let name = self.feeds[feed as usize].name.clone();
        self.stats.entry(name).or_default()
    }

    pub(super) fn label_id(&mut self, label: Option<&str>) -> u32 {
        let Some(l) = label else { return NO_LABEL };
        if let Some(id) = self.label_ids.get(l) {
            return *id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(l.into());
        self.label_ids.insert(l.into(), id);
        id
    }

    pub(super) fn insert(&mut self, feed: u16, v: Value, label: Option<&str>) {
        let label = self.label_id(label);
        let confidence = (self.feeds[feed as usize].confidence.clamp(0.0, 1.0) * 100.0) as u8;
        let meta = Meta { feed, seen_by: feed, confidence, label };
        let kind = v.kind();
        // Merge rule: the most confident feed owns an indicator; report whether this
        // feed had it already.
        fn put<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Meta>, k: K, meta: Meta) -> bool {
            match map.get_mut(&k) {
                Some(m) => {
                    let dup = m.seen_by == meta.feed;
                    m.seen_by = meta.feed;
                    if meta.confidence > m.confidence {
                        *m = meta;
                    }
                    !dup
                }
                None => {
                    map.insert(k, meta);
                    true
                }
            }
        }
        let new = match v {
            Value::V4(a) => put(&mut self.v4, a, meta),
            Value::V6(a) => put(&mut self.v6, a, meta),
            Value::Net4(a, len) => put(prefix_slot(&mut self.cidr4, len), a, meta),
            Value::Net6(a, len) => put(prefix_slot(&mut self.cidr6, len), a, meta),
            Value::Domain(d) => put(&mut self.domains, d.into_boxed_str(), meta),
            Value::Url(u) => put(&mut self.urls, u.into_boxed_str(), meta),
            Value::Hash(_, h) => put(&mut self.hashes, h.into_boxed_str(), meta),
            Value::Email(e) => put(&mut self.emails, e.into_boxed_str(), meta),
        };
        if new {
            *self.stats_mut(feed).indicators.entry(kind).or_default() += 1;
        }
    }

    fn hit(&self, kind: IocKind, indicator: String, matched: &str, m: &Meta) -> IntelHit {
        IntelHit {
            feed: self.feeds[m.feed as usize].name.clone(),
            kind: kind.as_str().into(),
            indicator,
            matched: crate::text::sanitize(matched, 256),
            confidence: m.confidence as f32 / 100.0,
            label: (m.label != NO_LABEL).then(|| self.labels[m.label as usize].to_string()),
        }
    }

    /// The feed's ATT&CK techniques for a hit.
    pub fn techniques(&self, feed: &str) -> Vec<String> {
        self.feeds.iter().find(|f| f.name == feed).map(|f| f.techniques.clone()).unwrap_or_default()
    }

    /// An address: exact first, then the longest listed network containing it.
    pub fn match_ip(&self, ip: IpAddr) -> Option<IntelHit> {
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                if let Some(m) = self.v4.get(&a) {
                    return Some(self.hit(IocKind::Ipv4, Ipv4Addr::from(a).to_string(), &ip.to_string(), m));
                }
                for (len, nets) in &self.cidr4 {
                    let net = if *len == 0 { 0 } else { a & (u32::MAX << (32 - len)) };
                    if let Some(m) = nets.get(&net) {
                        return Some(self.hit(
                            IocKind::Cidr,
                            format!("{}/{len}", Ipv4Addr::from(net)),
                            &ip.to_string(),
                            m,
                        ));
                    }
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                if let Some(m) = self.v6.get(&a) {
                    return Some(self.hit(IocKind::Ipv6, Ipv6Addr::from(a).to_string(), &ip.to_string(), m));
                }
                for (len, nets) in &self.cidr6 {
                    let net = if *len == 0 { 0 } else { a & (u128::MAX << (128 - len)) };
                    if let Some(m) = nets.get(&net) {
                        return Some(self.hit(
                            IocKind::Cidr,
                            format!("{}/{len}", Ipv6Addr::from(net)),
                            &ip.to_string(),
                            m,
                        ));
                    }
                }
            }
        }
        None
    }

    /// A host name, or any of its parent domains.
    pub fn match_domain(&self, name: &str) -> Option<IntelHit> {
        if self.domains.is_empty() {
            return None;
        }
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let mut cur = lower.as_str();
        loop {
            if let Some(m) = self.domains.get(cur) {
                return Some(self.hit(IocKind::Domain, cur.to_string(), name, m));
            }
            match cur.split_once('.') {
                Some((_, rest)) if rest.contains('.') => cur = rest,
                _ => return None,
            }
        }
    }

    pub fn match_url(&self, url: &str) -> Option<IntelHit> {
        if self.urls.is_empty() {
            return None;
        }
        let n = normalize_url(url)?;
        self.urls.get(n.as_str()).map(|m| self.hit(IocKind::Url, n.clone(), url, m))
    }

    pub fn match_hash(&self, h: &str) -> Option<IntelHit> {
        let kind = hash_kind(h)?;
        let lower = h.to_ascii_lowercase();
        self.hashes.get(lower.as_str()).map(|m| self.hit(kind, lower.clone(), h, m))
    }

    pub fn match_email(&self, e: &str) -> Option<IntelHit> {
        let lower = e.to_ascii_lowercase();
        self.emails.get(lower.as_str()).map(|m| self.hit(IocKind::Email, lower.clone(), e, m))
    }

    /// Every indicator an event contains: its parsed fields, then its raw text.
    pub fn match_event(&self, ev: &Event) -> Vec<IntelHit> {
        let mut hits: Vec<IntelHit> = Vec::new();
        let mut push = |h: Option<IntelHit>| {
            if let Some(h) = h
                && !hits.iter().any(|x| x.indicator == h.indicator && x.feed == h.feed)
            {
                hits.push(h);
            }
        };
        if let Some(ip) = ev.src_ip() {
            push(self.match_ip(ip));
        }
        if let Some(m) = ev.fields.as_deref() {
            for f in ["id.resp_h", "dst_ip", "destination.ip", "dest_ip", "remote_ip"] {
                if let Some(ip) = m.text(f).and_then(|s| s.parse().ok()) {
                    push(self.match_ip(ip));
                }
            }
            for f in ["query", "host", "server_name", "domain", "dns.question.name", "url.domain"] {
                if let Some(d) = m.text(f) {
                    push(self.match_domain(d));
                }
            }
            // Zeek http: the URL is host + uri.
            if let (Some(h), Some(u)) = (m.text("host"), m.text("uri")) {
                push(self.match_url(&format!("http://{h}{u}")));
            }
            for f in ["md5", "sha1", "sha256", "file.hash.sha256", "hash"] {
                if let Some(h) = m.text(f) {
                    push(self.match_hash(h));
                }
            }
        }
        for h in self.match_text(&ev.raw) {
            push(Some(h));
        }
        hits
    }

    /// Indicators in free text: URLs, then tokens that look like addresses, names,
    /// hashes or e-mail addresses.
    pub fn match_text(&self, text: &str) -> Vec<IntelHit> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        if !self.urls.is_empty() {
            for (i, _) in text.match_indices("://") {
                let start = text[..i].rfind(|c: char| !c.is_ascii_alphanumeric()).map_or(0, |p| p + 1);
                let end =
                    text[i..].find(|c: char| c.is_whitespace() || "\"'<>`".contains(c)).map_or(text.len(), |e| i + e);
                if let Some(h) = self.match_url(&text[start..end]) {
                    out.push(h);
                }
            }
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !token_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && token_byte(bytes[i]) {
                i += 1;
            }
            let tok = text[start..i].trim_matches(|c| c == '.' || c == ':' || c == '-' || c == '_');
            if tok.len() < 3 || tok.len() > 255 {
                continue;
            }
            if let Some(h) = self.match_token(tok) {
                out.push(h);
            }
        }
        out
    }

    fn match_token(&self, tok: &str) -> Option<IntelHit> {
        if let Ok(ip) = tok.parse::<IpAddr>() {
            return self.match_ip(ip);
        }
        // `ADDR:PORT`
        if let Some((host, port)) = tok.rsplit_once(':')
            && port.bytes().all(|b| b.is_ascii_digit())
            && let Ok(ip) = host.parse::<Ipv4Addr>()
        {
            return self.match_ip(IpAddr::V4(ip));
        }
        if tok.contains('@') {
            if let Some(h) = self.match_email(tok) {
                return Some(h);
            }
            return tok.rsplit_once('@').and_then(|(_, d)| self.match_domain(d));
        }
        if hash_kind(tok).is_some() {
            return self.match_hash(tok);
        }
        if tok.contains('.') && tok.bytes().any(|b| b.is_ascii_alphabetic()) && !tok.contains(':') {
            return self.match_domain(tok);
        }
        None
    }
}

/// The map of networks of one prefix length, created when first needed.
pub(super) fn prefix_slot<K>(slots: &mut Vec<(u8, HashMap<K, Meta>)>, len: u8) -> &mut HashMap<K, Meta> {
    let i = match slots.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            slots.push((len, HashMap::new()));
            slots.len() - 1
        }
    };
    &mut slots[i].1
}
