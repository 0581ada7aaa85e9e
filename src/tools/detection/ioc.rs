//! `detect_ioc`: threat-intelligence feeds loaded into one index, matched against the
//! parsed fields and the raw text of every event.
//!
//! Feed formats: plain lists (one indicator per line, `#` comments, type detected per
//! line), CSV (abuse.ch Feodo Tracker and URLhaus layouts with their `#` banners, or a
//! header naming the indicator column), STIX 2.1 bundles (indicator patterns comparing
//! `ipv4-addr`, `ipv6-addr`, `domain-name`, `url`, `file:hashes`, `email-addr` values;
//! each comparison joined by `OR` or `AND` is an indicator — Warden matches single
//! values, so an `AND` of two values is kept as two indicators and the hit says which),
//! MISP event JSON (attributes and object attributes with `to_ids`).
//!
//! Index: exact IPv4/IPv6 addresses in hash maps and CIDRs per prefix length (longest
//! prefix first); domains matched with every parent (`a.evil.com` hits `evil.com`);
//! URLs normalised (scheme and host lower-cased, default port and fragment dropped);
//! MD5/SHA-1/SHA-256 lower-cased; e-mail addresses lower-cased.
//!
//! Raw text is searched by a single pass that cuts the line into candidate tokens
//! (addresses, names, hex strings, e-mail addresses, URLs) and looks each up: a
//! multi-pattern search whose cost does not grow with the number of indicators.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::sigma::RuleError;
use crate::messages::{Event, IntelHit};

/// What an indicator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IocKind {
    Ipv4,
    Ipv6,
    Cidr,
    Domain,
    Url,
    Md5,
    Sha1,
    Sha256,
    Email,
}

impl IocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IocKind::Ipv4 => "ipv4",
            IocKind::Ipv6 => "ipv6",
            IocKind::Cidr => "cidr",
            IocKind::Domain => "domain",
            IocKind::Url => "url",
            IocKind::Md5 => "md5",
            IocKind::Sha1 => "sha1",
            IocKind::Sha256 => "sha256",
            IocKind::Email => "email",
        }
    }
}

/// A feed's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedFormat {
    #[default]
    Auto,
    Plain,
    Csv,
    Stix,
    Misp,
}

/// One feed as `feeds.toml` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSpec {
    pub name: String,
    /// A file or a folder (every file in it). Relative paths are inside the agent's
    /// folder; absolute ones anywhere. A missing absolute path is not an error: the
    /// feed is empty until it appears.
    pub path: String,
    #[serde(default)]
    pub format: FeedFormat,
    /// How much a hit is trusted, 0.0–1.0.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// ATT&CK techniques a hit stands for (`T1071` for a C2 list).
    #[serde(default)]
    pub techniques: Vec<String>,
}

fn default_confidence() -> f32 {
    0.8
}

/// The `feeds.toml` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedList {
    #[serde(default, rename = "feed")]
    pub feeds: Vec<FeedSpec>,
}

/// Where a feed's files are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FeedSource {
    /// Files built into the binary (the shipped agent folder): (path for messages, text).
    Embedded(Vec<(String, String)>),
    /// A file or folder on disk, watched for changes.
    Path(PathBuf),
}

/// A feed ready to load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feed {
    pub spec: FeedSpec,
    pub source: FeedSource,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    /// The feed that owns the entry (the most confident one).
    feed: u16,
    /// The last feed that inserted it (duplicate counting while loading).
    seen_by: u16,
    confidence: u8,
    label: u32,
}

const NO_LABEL: u32 = u32::MAX;

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
    feeds: Vec<FeedSpec>,
    labels: Vec<Box<str>>,
    label_ids: HashMap<Box<str>, u32>,
    v4: HashMap<u32, Meta>,
    v6: HashMap<u128, Meta>,
    /// (prefix length, networks of that length), longest first.
    cidr4: Vec<(u8, HashMap<u32, Meta>)>,
    cidr6: Vec<(u8, HashMap<u128, Meta>)>,
    domains: HashMap<Box<str>, Meta>,
    urls: HashMap<Box<str>, Meta>,
    hashes: HashMap<Box<str>, Meta>,
    emails: HashMap<Box<str>, Meta>,
    pub stats: BTreeMap<String, FeedStats>,
    pub errors: Vec<RuleError>,
}

impl std::fmt::Debug for IocIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IocIndex").field("indicators", &self.len()).finish_non_exhaustive()
    }
}

/// A parsed indicator value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    V4(u32),
    V6(u128),
    Net4(u32, u8),
    Net6(u128, u8),
    Domain(String),
    Url(String),
    Hash(IocKind, String),
    Email(String),
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

    /// Loads every feed. Errors are collected (`file:line: message`); one bad entry or
    /// file never stops the rest from loading.
    pub fn load(feeds: &[Feed]) -> IocIndex {
        let mut idx = IocIndex::default();
        for feed in feeds {
            let id = idx.feeds.len() as u16;
            idx.feeds.push(feed.spec.clone());
            idx.stats.entry(feed.spec.name.clone()).or_default();
            match &feed.source {
                FeedSource::Embedded(files) => {
                    for (path, text) in files {
                        idx.load_text(id, path, text, feed.spec.format);
                    }
                }
                FeedSource::Path(p) => {
                    for path in feed_files(p) {
                        match std::fs::read(&path) {
                            Ok(bytes) => {
                                let text = String::from_utf8_lossy(&bytes);
                                idx.load_text(id, &path.display().to_string(), &text, feed.spec.format);
                            }
                            Err(e) => idx.errors.push(RuleError {
                                file: path.display().to_string(),
                                line: 0,
                                message: format!("cannot read feed: {e}"),
                            }),
                        }
                    }
                }
            }
        }
        idx.cidr4.sort_by_key(|n| std::cmp::Reverse(n.0));
        idx.cidr6.sort_by_key(|n| std::cmp::Reverse(n.0));
        idx.label_ids = HashMap::new();
        idx
    }

    fn stats_mut(&mut self, feed: u16) -> &mut FeedStats {
        let name = self.feeds[feed as usize].name.clone();
        self.stats.entry(name).or_default()
    }

    fn load_text(&mut self, feed: u16, path: &str, text: &str, format: FeedFormat) {
        self.stats_mut(feed).files += 1;
        let format = match format {
            FeedFormat::Auto => detect_format(path, text),
            f => f,
        };
        match format {
            FeedFormat::Plain | FeedFormat::Auto => self.load_plain(feed, path, text),
            FeedFormat::Csv => self.load_csv(feed, path, text),
            FeedFormat::Stix | FeedFormat::Misp => {
                let doc: serde_json::Value = match serde_json::from_str(text) {
                    Ok(d) => d,
                    Err(e) => {
                        self.errors.push(RuleError {
                            file: path.into(),
                            line: e.line(),
                            message: format!("not valid JSON: {e}"),
                        });
                        return;
                    }
                };
                if format == FeedFormat::Stix {
                    self.load_stix(feed, path, &doc)
                } else {
                    self.load_misp(feed, path, &doc)
                }
            }
        }
    }

    fn error(&mut self, feed: u16, path: &str, line: usize, message: String) {
        self.stats_mut(feed).invalid += 1;
        // Bounded: a garbage file must not fill memory with messages.
        if self.errors.len() < 1000 {
            self.errors.push(RuleError { file: path.into(), line, message });
        }
    }

    fn load_plain(&mut self, feed: u16, path: &str, text: &str) {
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            // `value<whitespace>comment` is common in block lists.
            let value = entry.split_whitespace().next().unwrap_or(entry);
            match parse_value(value, None) {
                Some(v) => self.insert(feed, v, None),
                None => self.error(feed, path, n + 1, format!("`{}` is not an indicator", clip(value))),
            }
        }
    }

    fn load_csv(&mut self, feed: u16, path: &str, text: &str) {
        let mut header: Option<Vec<String>> = None;
        let mut last_comment: Option<Vec<String>> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                // abuse.ch's originals comment out the header line: remember the last
                // comment that reads like one.
                let cols = split_csv(c.trim());
                if cols.len() > 1 {
                    last_comment = Some(cols);
                }
                continue;
            }
            let cols = split_csv(line);
            if header.is_none() {
                if cols.iter().any(|c| indicator_column(c).is_some()) {
                    header = Some(cols.iter().map(|c| c.trim().to_ascii_lowercase()).collect());
                    continue;
                }
                match last_comment.take() {
                    Some(h) => header = Some(h.iter().map(|c| c.trim().to_ascii_lowercase()).collect()),
                    None => {
                        self.error(feed, path, n + 1, "CSV feed without a header naming its indicator column".into());
                        return;
                    }
                }
            }
            let h = header.as_ref().expect("set above");
            if cols.len() != h.len() {
                self.error(feed, path, n + 1, format!("{} columns where the header has {}", cols.len(), h.len()));
                continue;
            }
            let Some(col) = h.iter().position(|c| indicator_column(c).is_some()) else {
                self.error(feed, path, n + 1, "no indicator column in the header".into());
                return;
            };
            let hint = indicator_column(&h[col]).flatten();
            // The feed's own label: the malware family (Feodo), the threat and tags (URLhaus).
            let label = ["malware", "threat", "malware_printable", "tags"]
                .iter()
                .filter_map(|l| h.iter().position(|c| c == l))
                .map(|i| cols[i].trim())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let value = cols[col].trim();
            match parse_value(value, hint) {
                Some(v) => self.insert(feed, v, (!label.is_empty()).then_some(label.as_str())),
                None => self.error(feed, path, n + 1, format!("`{}` is not an indicator", clip(value))),
            }
        }
    }

    fn load_stix(&mut self, feed: u16, path: &str, doc: &serde_json::Value) {
        let objects: Vec<&serde_json::Value> = match doc.get("objects").and_then(|o| o.as_array()) {
            Some(objs) => objs.iter().collect(),
            None if doc.get("type").and_then(|t| t.as_str()) == Some("indicator") => vec![doc],
            None => {
                self.error(feed, path, 0, "not a STIX bundle (no `objects`)".into());
                return;
            }
        };
        for obj in objects {
            if obj.get("type").and_then(|t| t.as_str()) != Some("indicator") {
                continue;
            }
            if obj.get("pattern_type").and_then(|t| t.as_str()).is_some_and(|t| t != "stix") {
                self.stats_mut(feed).unsupported += 1;
                continue;
            }
            if obj.get("revoked").and_then(|r| r.as_bool()) == Some(true) {
                continue;
            }
            let Some(pattern) = obj.get("pattern").and_then(|p| p.as_str()) else {
                self.error(feed, path, 0, "indicator without a pattern".into());
                continue;
            };
            let label = obj.get("name").and_then(|n| n.as_str()).map(|s| clip(s).to_string());
            match stix_comparisons(pattern) {
                Ok(cmps) => {
                    for (object_path, value) in cmps {
                        let hint = match stix_kind(&object_path) {
                            Some(k) => k,
                            None => {
                                self.stats_mut(feed).unsupported += 1;
                                continue;
                            }
                        };
                        match parse_value(&value, Some(hint)) {
                            Some(v) => self.insert(feed, v, label.as_deref()),
                            None => self.error(
                                feed,
                                path,
                                0,
                                format!(
                                    "indicator {}: `{}` is not a valid {}",
                                    object_path,
                                    clip(&value),
                                    hint.as_str()
                                ),
                            ),
                        }
                    }
                }
                Err(e) => self.error(feed, path, 0, format!("pattern `{}`: {e}", clip(pattern))),
            }
        }
    }

    fn load_misp(&mut self, feed: u16, path: &str, doc: &serde_json::Value) {
        let event = doc.get("Event").unwrap_or(doc);
        if !event.is_object() || (event.get("Attribute").is_none() && event.get("Object").is_none()) {
            self.error(feed, path, 0, "not a MISP event (no `Attribute` or `Object`)".into());
            return;
        }
        let label = event.get("info").and_then(|i| i.as_str()).map(|s| clip(s).to_string());
        let mut attrs: Vec<&serde_json::Value> = Vec::new();
        if let Some(a) = event.get("Attribute").and_then(|a| a.as_array()) {
            attrs.extend(a);
        }
        for o in event.get("Object").and_then(|o| o.as_array()).into_iter().flatten() {
            if let Some(a) = o.get("Attribute").and_then(|a| a.as_array()) {
                attrs.extend(a);
            }
        }
        for a in attrs {
            let to_ids = match a.get("to_ids") {
                Some(serde_json::Value::Bool(b)) => *b,
                Some(serde_json::Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
                Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
                _ => false,
            };
            if !to_ids {
                continue;
            }
            let (Some(t), Some(v)) = (a.get("type").and_then(|t| t.as_str()), a.get("value").and_then(|v| v.as_str()))
            else {
                self.error(feed, path, 0, "MISP attribute without a type or value".into());
                continue;
            };
            let Some((hint, value)) = misp_value(t, v) else {
                self.stats_mut(feed).unsupported += 1;
                continue;
            };
            match parse_value(value, hint) {
                Some(v) => self.insert(feed, v, label.as_deref()),
                None => self.error(feed, path, 0, format!("MISP {t} `{}` is not valid", clip(v))),
            }
        }
    }

    fn label_id(&mut self, label: Option<&str>) -> u32 {
        let Some(l) = label else { return NO_LABEL };
        if let Some(id) = self.label_ids.get(l) {
            return *id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(l.into());
        self.label_ids.insert(l.into(), id);
        id
    }

    fn insert(&mut self, feed: u16, v: Value, label: Option<&str>) {
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
        if let Some(m) = ev.json.as_deref() {
            for f in ["id.resp_h", "dst_ip", "destination.ip", "dest_ip", "remote_ip"] {
                if let Some(ip) = m.get(f).and_then(|v| v.as_str()).and_then(|s| s.parse().ok()) {
                    push(self.match_ip(ip));
                }
            }
            for f in ["query", "host", "server_name", "domain", "dns.question.name", "url.domain"] {
                if let Some(d) = crate::messages::json_lookup(m, f).and_then(|v| v.as_str()) {
                    push(self.match_domain(d));
                }
            }
            // Zeek http: the URL is host + uri.
            if let (Some(h), Some(u)) = (m.get("host").and_then(|v| v.as_str()), m.get("uri").and_then(|v| v.as_str()))
            {
                push(self.match_url(&format!("http://{h}{u}")));
            }
            for f in ["md5", "sha1", "sha256", "file.hash.sha256", "hash"] {
                if let Some(h) = crate::messages::json_lookup(m, f).and_then(|v| v.as_str()) {
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
fn prefix_slot<K>(slots: &mut Vec<(u8, HashMap<K, Meta>)>, len: u8) -> &mut HashMap<K, Meta> {
    let i = match slots.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            slots.push((len, HashMap::new()));
            slots.len() - 1
        }
    };
    &mut slots[i].1
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@' | b':')
}

impl Value {
    fn kind(&self) -> IocKind {
        match self {
            Value::V4(_) => IocKind::Ipv4,
            Value::V6(_) => IocKind::Ipv6,
            Value::Net4(..) | Value::Net6(..) => IocKind::Cidr,
            Value::Domain(_) => IocKind::Domain,
            Value::Url(_) => IocKind::Url,
            Value::Hash(k, _) => *k,
            Value::Email(_) => IocKind::Email,
        }
    }
}

fn clip(s: &str) -> String {
    crate::text::sanitize(s, 120)
}

fn hash_kind(s: &str) -> Option<IocKind> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match s.len() {
        32 => Some(IocKind::Md5),
        40 => Some(IocKind::Sha1),
        64 => Some(IocKind::Sha256),
        _ => None,
    }
}

fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
        })
        && d.rsplit('.').next().is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// Parses one indicator; `hint` is the kind the feed says it is.
fn parse_value(raw: &str, hint: Option<IocKind>) -> Option<Value> {
    let s = raw.trim().trim_matches('"');
    if s.is_empty() {
        return None;
    }
    let as_ip = |s: &str| -> Option<Value> {
        if let Some((a, len)) = s.split_once('/') {
            let len: u8 = len.parse().ok()?;
            return match a.parse::<IpAddr>().ok()? {
                IpAddr::V4(a) if len <= 32 => {
                    let a = u32::from(a);
                    // A /32 is an address.
                    if len == 32 {
                        Some(Value::V4(a))
                    } else {
                        Some(Value::Net4(if len == 0 { 0 } else { a & (u32::MAX << (32 - len)) }, len))
                    }
                }
                IpAddr::V6(a) if len <= 128 => {
                    let a = u128::from(a);
                    if len == 128 {
                        Some(Value::V6(a))
                    } else {
                        Some(Value::Net6(if len == 0 { 0 } else { a & (u128::MAX << (128 - len)) }, len))
                    }
                }
                _ => None,
            };
        }
        match s.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some(Value::V4(a.into())),
            IpAddr::V6(a) => Some(Value::V6(a.into())),
        }
    };
    match hint {
        Some(IocKind::Ipv4 | IocKind::Ipv6 | IocKind::Cidr) => as_ip(s),
        Some(IocKind::Domain) => {
            let d = s.trim_end_matches('.').to_ascii_lowercase();
            valid_domain(&d).then_some(Value::Domain(d))
        }
        Some(IocKind::Url) if s.contains("://") => normalize_url(s).map(Value::Url),
        Some(IocKind::Url) => {
            // Feeds (MISP `url` attributes) often leave the scheme out: `www.x.top/p`.
            // Such a value is a URL when it starts with a host name or an address.
            let host = s
                .split(['/', '?'])
                .next()
                .unwrap_or("")
                .rsplit_once(':')
                .map_or(s.split(['/', '?']).next().unwrap_or(""), |(h, _)| h);
            let ok = host.parse::<Ipv4Addr>().is_ok() || valid_domain(&host.to_ascii_lowercase());
            if ok { normalize_url(&format!("http://{s}")).map(Value::Url) } else { None }
        }
        Some(k @ (IocKind::Md5 | IocKind::Sha1 | IocKind::Sha256)) => {
            (hash_kind(s) == Some(k)).then(|| Value::Hash(k, s.to_ascii_lowercase()))
        }
        Some(IocKind::Email) => {
            let (user, dom) = s.rsplit_once('@')?;
            (!user.is_empty() && valid_domain(&dom.to_ascii_lowercase())).then(|| Value::Email(s.to_ascii_lowercase()))
        }
        None => {
            if let Some(v) = as_ip(s) {
                return Some(v);
            }
            if s.contains("://") {
                return normalize_url(s).map(Value::Url);
            }
            if s.contains('@') {
                return parse_value(s, Some(IocKind::Email));
            }
            if let Some(k) = hash_kind(s) {
                return Some(Value::Hash(k, s.to_ascii_lowercase()));
            }
            parse_value(s, Some(IocKind::Domain))
        }
    }
}

/// `scheme://host[:port]/path?query` with scheme and host lower-cased, the default
/// port and any fragment dropped, and an empty path written `/`.
pub fn normalize_url(u: &str) -> Option<String> {
    let u = u.trim();
    let (scheme, rest) = u.split_once("://")?;
    if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let host_port = authority.rsplit('@').next().unwrap_or(authority).to_ascii_lowercase();
    if host_port.is_empty() {
        return None;
    }
    let host_port = match (scheme.as_str(), host_port.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) | ("ftp", Some((h, "21"))) => h.to_string(),
        _ => host_port,
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Some(format!("{scheme}://{host_port}{path}"))
}

/// Splits one CSV line (RFC 4180 quoting, `""` for a quote).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Whether a CSV column holds indicators, and of which kind (`None`: detect per value).
fn indicator_column(name: &str) -> Option<Option<IocKind>> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "dst_ip" | "ip" | "ip_address" | "ipaddress" | "ioc_ip" => None,
        "url" => Some(IocKind::Url),
        "domain" | "hostname" => Some(IocKind::Domain),
        "md5" | "md5_hash" => Some(IocKind::Md5),
        "sha1" | "sha1_hash" => Some(IocKind::Sha1),
        "sha256" | "sha256_hash" => Some(IocKind::Sha256),
        "email" => Some(IocKind::Email),
        "indicator" | "ioc" | "ioc_value" | "value" => None,
        _ => return None,
    })
}

fn detect_format(path: &str, text: &str) -> FeedFormat {
    let head = text.trim_start();
    if head.starts_with('{') || head.starts_with('[') {
        let doc_is_stix = head.contains("\"type\"") && (head.contains("\"bundle\"") || head.contains("\"indicator\""));
        if head.contains("\"Event\"") || head.contains("\"Attribute\"") {
            return FeedFormat::Misp;
        }
        if doc_is_stix || path.ends_with(".json") {
            return FeedFormat::Stix;
        }
    }
    if path.ends_with(".csv") {
        return FeedFormat::Csv;
    }
    FeedFormat::Plain
}

/// The indicator kind of a STIX object path, when Warden matches it.
fn stix_kind(path: &str) -> Option<IocKind> {
    let p = path.replace(' ', "");
    Some(match p.as_str() {
        "ipv4-addr:value" => IocKind::Ipv4,
        "ipv6-addr:value" => IocKind::Ipv6,
        "domain-name:value" => IocKind::Domain,
        "url:value" => IocKind::Url,
        "email-addr:value" | "email-message:from_ref.value" | "email-message:sender_ref.value" => IocKind::Email,
        _ => {
            let lower = p.to_ascii_lowercase();
            let h = lower.strip_prefix("file:hashes.")?.trim_matches('\'');
            match h {
                "md5" => IocKind::Md5,
                "sha-1" | "sha1" => IocKind::Sha1,
                "sha-256" | "sha256" => IocKind::Sha256,
                _ => return None,
            }
        }
    })
}

/// The equality comparisons of a STIX pattern, `(object path, value)`. Observation
/// expressions (`[...]`) joined by `OR`/`AND`/`FOLLOWEDBY`, comparisons inside joined by
/// `OR`/`AND`; operators other than `=` (`MATCHES`, `LIKE`, `!=`, …) are reported as
/// unsupported by returning no comparison for them.
pub fn stix_comparisons(pattern: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut depth = 0i32;
    let mut saw_bracket = false;
    while i < b.len() {
        match b[i] {
            b'[' => {
                depth += 1;
                saw_bracket = true;
                i += 1;
            }
            b']' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced `]`".into());
                }
                i += 1;
            }
            b'\'' => return Err("a string outside a comparison".into()),
            c if depth > 0 && (c.is_ascii_alphabetic()) => {
                // An object path, an operator, then a quoted value.
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'!' {
                    if b[i] == b'\'' {
                        // Quoted key inside the path (`hashes.'SHA-256'`).
                        i += 1;
                        while i < b.len() && b[i] != b'\'' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                let path = pattern[start..i.min(b.len())].to_string();
                if ["AND", "OR", "FOLLOWEDBY", "NOT"].contains(&path.as_str()) {
                    continue;
                }
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let op_start = i;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                let op = pattern[op_start..i].trim().to_string();
                if i >= b.len() {
                    return Err(format!("comparison on `{path}` without a quoted value"));
                }
                i += 1;
                let mut value = String::new();
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    value.push(b[i] as char);
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                if op == "=" {
                    out.push((path, value));
                } else {
                    // Not an equality: nothing Warden can look up.
                    out.push((format!("{path} {op}"), value));
                }
            }
            _ => i += 1,
        }
    }
    if depth != 0 || !saw_bracket {
        return Err("not a STIX pattern (`[ … ]`)".into());
    }
    Ok(out)
}

/// The kind and value of a MISP attribute Warden matches.
fn misp_value<'a>(t: &str, v: &'a str) -> Option<(Option<IocKind>, &'a str)> {
    let second = |v: &'a str| v.split_once('|').map(|(_, b)| b);
    let first = |v: &'a str| v.split_once('|').map(|(a, _)| a).unwrap_or(v);
    Some(match t {
        "ip-src" | "ip-dst" => (None, v),
        "ip-src|port" | "ip-dst|port" => (None, first(v)),
        "domain" | "hostname" => (Some(IocKind::Domain), v),
        "domain|ip" => (Some(IocKind::Domain), first(v)),
        "url" | "link" => (Some(IocKind::Url), v),
        "md5" => (Some(IocKind::Md5), v),
        "sha1" => (Some(IocKind::Sha1), v),
        "sha256" => (Some(IocKind::Sha256), v),
        "filename|md5" => (Some(IocKind::Md5), second(v)?),
        "filename|sha1" => (Some(IocKind::Sha1), second(v)?),
        "filename|sha256" => (Some(IocKind::Sha256), second(v)?),
        "email" | "email-src" | "email-dst" => (Some(IocKind::Email), v),
        _ => return None,
    })
}

/// The files of a feed path: the file, or every regular file in the folder (sorted,
/// hidden files skipped).
pub fn feed_files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        files
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        Vec::new()
    }
}

/// The current index of an agent's feeds, replaced whole when a feed changes.
#[derive(Debug)]
pub struct FeedStore {
    feeds: Vec<Feed>,
    current: RwLock<Arc<IocIndex>>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

impl FeedStore {
    /// Loads the feeds now; `metrics` gets the indicator count and the reloads.
    pub fn new(feeds: Vec<Feed>, metrics: Option<Arc<crate::telemetry::Metrics>>) -> Arc<FeedStore> {
        let idx = IocIndex::load(&feeds);
        for e in &idx.errors {
            tracing::warn!("threat-intel feed: {e}");
        }
        tracing::info!(indicators = idx.len(), feeds = feeds.len(), "threat-intel feeds loaded");
        if let Some(m) = &metrics {
            m.intel_indicators.store(idx.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Arc::new(FeedStore { feeds, current: RwLock::new(Arc::new(idx)), metrics })
    }

    pub fn index(&self) -> Arc<IocIndex> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl crate::ingest::feeds::Reloadable for FeedStore {
    type Signature = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

    /// The folders to watch for changes (a feed's folder, or the folder of a feed file).
    fn watched_dirs(&self) -> Vec<PathBuf> {
        self.feeds
            .iter()
            .filter_map(|f| match &f.source {
                FeedSource::Path(p) if p.is_dir() => Some(p.clone()),
                FeedSource::Path(p) => p.parent().map(Path::to_path_buf),
                FeedSource::Embedded(_) => None,
            })
            .collect()
    }

    /// A fingerprint of the feed files on disk (path, size, mtime).
    fn signature(&self) -> Self::Signature {
        let mut sig = Vec::new();
        for f in &self.feeds {
            if let FeedSource::Path(p) = &f.source {
                for file in feed_files(p) {
                    let md = std::fs::metadata(&file).ok();
                    sig.push((file, md.as_ref().map_or(0, |m| m.len()), md.and_then(|m| m.modified().ok())));
                }
            }
        }
        sig
    }

    /// Reloads every feed and swaps the index in.
    fn reload(&self) {
        let idx = IocIndex::load(&self.feeds);
        for e in &idx.errors {
            tracing::warn!("threat-intel feed: {e}");
        }
        tracing::info!(indicators = idx.len(), "threat-intel feeds reloaded");
        if let Some(m) = &self.metrics {
            m.intel_indicators.store(idx.len() as u64, std::sync::atomic::Ordering::Relaxed);
            m.intel_reloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(name: &str, files: &[(&str, &str)]) -> Feed {
        Feed {
            spec: FeedSpec {
                name: name.into(),
                path: "x".into(),
                format: FeedFormat::Auto,
                confidence: 0.9,
                techniques: vec![],
            },
            source: FeedSource::Embedded(files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()),
        }
    }

    #[test]
    fn plain_lists_detect_each_kind_and_report_bad_lines() {
        let idx = IocIndex::load(&[feed(
            "local",
            &[(
                "local.txt",
                "# comment\n203.0.113.7\n198.51.100.0/24  # a network\n2001:db8::/32\nEvil.Example.COM\n\
                 http://Bad.Example.net:80/x?y=1#frag\nd41d8cd98f00b204e9800998ecf8427e\nphish@bad.example\nnot an ioc!\n",
            )],
        )]);
        let s = &idx.stats["local"];
        assert_eq!(s.indicators[&IocKind::Ipv4], 1);
        assert_eq!(s.indicators[&IocKind::Cidr], 2);
        assert_eq!(s.indicators[&IocKind::Domain], 1);
        assert_eq!(s.indicators[&IocKind::Url], 1);
        assert_eq!(s.indicators[&IocKind::Md5], 1);
        assert_eq!(s.indicators[&IocKind::Email], 1);
        assert_eq!(idx.errors.len(), 1);
        assert_eq!(idx.errors[0].to_string(), "local.txt:9: `not` is not an indicator");
        assert_eq!(idx.match_ip("198.51.100.77".parse().unwrap()).unwrap().indicator, "198.51.100.0/24");
        assert_eq!(idx.match_ip("2001:db8::1".parse().unwrap()).unwrap().indicator, "2001:db8::/32");
        assert!(idx.match_ip("198.51.101.1".parse().unwrap()).is_none());
        assert_eq!(idx.match_domain("a.b.evil.example.com").unwrap().indicator, "evil.example.com");
        assert!(idx.match_domain("notevil.example.com").is_none());
        assert!(idx.match_domain("example.com").is_none());
        assert!(idx.match_url("HTTP://bad.example.net/x?y=1").is_some());
        let text = "GET /dl?u=http://bad.example.net/x?y=1 from 203.0.113.7:4444 md5=D41D8CD98F00B204E9800998ECF8427E \
                    to <phish@bad.example> via cdn.evil.example.com.";
        let kinds: Vec<String> = idx.match_text(text).into_iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["url", "ipv4", "md5", "email", "domain"]);
    }

    #[test]
    fn most_specific_prefix_wins_and_confident_feed_owns() {
        let mut a = feed("a", &[("a.txt", "10.0.0.0/8\n10.1.0.0/16\n")]);
        a.spec.confidence = 0.5;
        let b = feed("b", &[("b.txt", "10.1.0.0/16\n")]);
        let idx = IocIndex::load(&[a, b]);
        let h = idx.match_ip("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!((h.indicator.as_str(), h.feed.as_str()), ("10.1.0.0/16", "b"));
        assert_eq!(idx.match_ip("10.9.2.3".parse().unwrap()).unwrap().indicator, "10.0.0.0/8");
        assert_eq!(idx.stats["b"].indicators[&IocKind::Cidr], 1, "counted for every feed that lists it");
    }

    #[test]
    fn csv_layouts_with_banners_and_quotes() {
        let feodo = "#####\n# abuse.ch Feodo Tracker\n#\n\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n\
                     \"2023-05-23 17:51:44\",\"192.9.135.73\",\"1194\",\"online\",\"2024-04-01\",\"Pikabot\"\n# END 1 entries\n";
        let urlhaus = "# URLhaus\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
                       \"1\",\"2025-04-21\",\"http://117.209.87.242:60905/bin.sh\",\"online\",\"x\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/1/\",\"r\"\n\
                       \"2\",\"bad row\"\n";
        let idx = IocIndex::load(&[feed("feodo", &[("f.csv", feodo)]), feed("urlhaus", &[("u.csv", urlhaus)])]);
        assert_eq!(idx.stats["feodo"].indicators[&IocKind::Ipv4], 1);
        assert_eq!(idx.stats["urlhaus"].indicators[&IocKind::Url], 1);
        let h = idx.match_ip("192.9.135.73".parse().unwrap()).unwrap();
        assert_eq!(h.label.as_deref(), Some("Pikabot"));
        let h = idx.match_url("http://117.209.87.242:60905/bin.sh").unwrap();
        assert_eq!(h.label.as_deref(), Some("malware_download 32-bit,elf,mips,Mozi"));
        assert!(idx.match_url("https://urlhaus.abuse.ch/url/1/").is_none(), "the reference link is not an indicator");
        assert_eq!(idx.errors[0].to_string(), "u.csv:4: 2 columns where the header has 9");
    }

    #[test]
    fn stix_patterns() {
        let cmps = stix_comparisons(
            "[domain-name:value = 'www.x.com' OR ipv4-addr:value = '10.0.0.1'] AND [file:hashes.'SHA-256' = 'ab\\'c']",
        )
        .unwrap();
        assert_eq!(
            cmps,
            [
                ("domain-name:value".to_string(), "www.x.com".to_string()),
                ("ipv4-addr:value".into(), "10.0.0.1".into()),
                ("file:hashes.'SHA-256'".into(), "ab'c".into())
            ]
        );
        assert!(stix_comparisons("[ipv4-addr:value = '1.2.3.4'").is_err());
        assert!(stix_comparisons("ipv4-addr:value = '1.2.3.4'").is_err());
        let bundle = r#"{"type":"bundle","objects":[
            {"type":"indicator","pattern":"[ipv4-addr:value = '198.51.100.1/32' OR url:value = 'http://x.example/a']","pattern_type":"stix"},
            {"type":"indicator","pattern":"[email-message:subject MATCHES '^x']","pattern_type":"stix"},
            {"type":"indicator","pattern":"[ipv4-addr:value = 'nope']","pattern_type":"stix"},
            {"type":"malware","name":"m"}]}"#;
        let idx = IocIndex::load(&[feed("stix", &[("b.json", bundle)])]);
        let s = &idx.stats["stix"];
        assert_eq!((s.indicators[&IocKind::Ipv4], s.indicators[&IocKind::Url], s.unsupported, s.invalid), (1, 1, 1, 1));
        let broken = IocIndex::load(&[feed("stix", &[("b.json", "{\"type\": \"bundle\",\n \"objects\": [}")])]);
        assert!(broken.errors[0].to_string().starts_with("b.json:2: not valid JSON"), "{}", broken.errors[0]);
    }

    #[test]
    fn hits_become_findings_once_an_hour_and_enrich_others() {
        let store = FeedStore::new(vec![feed("lab", &[("l.txt", "203.0.113.5\nhttp://dl.example.net/x.sh\n")])], None);
        let mut m = IocMatcher::new(store);
        let ev = |secs: i64, raw: &str| {
            let time = chrono::DateTime::from_timestamp(1_772_409_600 + secs, 0).unwrap();
            crate::ingest::parse::json::record_event(Default::default(), time, "web1".into(), "x".into(), raw.into())
        };
        let mut other =
            [crate::messages::Finding { src_ip: Some("203.0.113.5".into()), confidence: 0.5, ..Default::default() }];
        let found = m.run(&[ev(0, "wget http://DL.example.net:80/x.sh from 203.0.113.5")], &mut other);
        let kinds: Vec<(&str, &[String])> =
            found.iter().map(|f| (f.intel[0].kind.as_str(), &f.techniques[..])).collect();
        assert_eq!(kinds, [("url", &["T1105".to_string()][..]), ("ipv4", &["T1071".to_string()][..])]);
        assert_eq!(found[0].tactics, ["TA0011"]);
        assert_eq!(found[1].src_ip.as_deref(), Some("203.0.113.5"));
        assert_eq!(found[0].entity.as_deref(), Some("url:http://dl.example.net/x.sh"));
        assert_eq!(other[0].intel.len(), 1, "the batch's other findings are enriched");
        assert_eq!(other[0].confidence, 0.9);
        // Seen again within the hour: no new finding; after it: one.
        assert!(m.run(&[ev(1800, "again 203.0.113.5")], &mut []).is_empty());
        assert_eq!(m.run(&[ev(3700, "again 203.0.113.5")], &mut []).len(), 1);
        // Its state survives a restore.
        let delta = m.take_delta();
        let mut again = IocMatcher::new(m.store().clone());
        again
            .restore(delta.into_iter().filter_map(|(k, v)| Some((k[STATE_PREFIX.len()..].to_string(), v?))).collect())
            .unwrap();
        assert!(again.run(&[ev(3800, "203.0.113.5")], &mut []).is_empty());
    }

    #[test]
    fn misp_attributes_with_to_ids() {
        let ev = r#"{"Event":{"info":"op x","Attribute":[
            {"type":"ip-dst","value":"203.0.113.9","to_ids":true},
            {"type":"domain","value":"c2.example.org","to_ids":false},
            {"type":"filename|sha256","value":"a.exe|e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","to_ids":"1"},
            {"type":"filename","value":"a.exe","to_ids":true}],
            "Object":[{"Attribute":[{"type":"url","value":"https://c2.example.org/p","to_ids":true}]}]}}"#;
        let idx = IocIndex::load(&[feed("misp", &[("e.json", ev)])]);
        let s = &idx.stats["misp"];
        assert_eq!(s.indicators.values().sum::<usize>(), 3);
        assert_eq!(s.unsupported, 1);
        assert!(idx.match_domain("c2.example.org").is_none(), "to_ids false is not an indicator");
        assert_eq!(idx.match_ip("203.0.113.9".parse().unwrap()).unwrap().label.as_deref(), Some("op x"));
    }
}

/// What a hit stands for when its feed does not say: contact with a listed address or
/// name is command and control (T1071), a listed URL a tool or payload download
/// (T1105), a listed file a malicious file run by a user (T1204.002), a listed sender
/// phishing (T1566).
pub fn default_techniques(kind: &str) -> Vec<String> {
    let t = match kind {
        "url" => "T1105",
        "md5" | "sha1" | "sha256" => "T1204.002",
        "email" => "T1566",
        _ => "T1071",
    };
    vec![t.to_string()]
}

/// The prefix of the stored `detect_ioc` state, below the agent's name.
pub const STATE_PREFIX: &str = "detect_ioc/";

/// `detect_ioc` itself: matches events against the current index, reports each
/// indicator seen (at most once an hour per indicator, the wait doubling while it keeps
/// being seen, up to a day), and adds hits to the findings of the same batch.
#[derive(Debug)]
pub struct IocMatcher {
    store: Arc<FeedStore>,
    /// `feed|indicator` → (event time of the last finding, findings so far).
    last: super::tracked::Tracked<String, (chrono::DateTime<chrono::Utc>, u32)>,
    newest: Option<chrono::DateTime<chrono::Utc>>,
}

impl IocMatcher {
    pub fn new(store: Arc<FeedStore>) -> Self {
        IocMatcher { store, last: Default::default(), newest: None }
    }

    pub fn store(&self) -> &Arc<FeedStore> {
        &self.store
    }

    /// Resumes from stored entries (keys relative to [`STATE_PREFIX`]).
    pub fn restore(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<(), String> {
        for (key, value) in entries {
            let Some(k) = key.strip_prefix("s/") else { continue };
            let (at, _) = *self.last.load(k, value)?;
            self.newest = self.newest.max(Some(at));
        }
        Ok(())
    }

    /// Forgets what changed (when nothing stores it); returns no entries.
    pub fn discard_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        self.last.discard();
        Vec::new()
    }

    /// The entries changed since the last call (`None`: deleted).
    pub fn take_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        self.last.drain(&format!("{STATE_PREFIX}s/"), &mut out);
        out
    }

    /// Matches the events; enriches `findings` in place; returns the new IoC findings.
    pub fn run(
        &mut self,
        events: &[Event],
        findings: &mut [crate::messages::Finding],
    ) -> Vec<crate::messages::Finding> {
        use crate::messages::{Finding, Severity};
        let idx = self.store.index();
        let mut out = Vec::new();
        if idx.is_empty() {
            return out;
        }
        let hour = chrono::Duration::hours(1);
        for ev in events {
            self.newest = self.newest.max(Some(ev.time));
            for hit in idx.match_event(ev) {
                let key = format!("{}|{}", hit.feed, hit.indicator);
                let count = match self.last.map.get(&key) {
                    Some((l, n)) => {
                        let wait = (hour * 2i32.pow(n.saturating_sub(1).min(5))).min(chrono::Duration::days(1));
                        if ev.time < *l + wait && ev.time >= *l {
                            continue;
                        }
                        n + 1
                    }
                    None => 1,
                };
                self.last.insert(key, (ev.time, count));
                let ip_kind = matches!(hit.kind.as_str(), "ipv4" | "ipv6" | "cidr");
                let entity = if ip_kind { hit.matched.clone() } else { format!("{}:{}", hit.kind, hit.indicator) };
                let label =
                    hit.label.as_deref().map(|l| format!(" ({})", crate::text::sanitize(l, 80))).unwrap_or_default();
                let mut f = Finding {
                    id: Finding::derive_id("threat_intel_match", &format!("{}/{}", hit.feed, hit.indicator), ev.time),
                    rule: "threat_intel_match".into(),
                    title: format!("{} {} is listed by threat-intel feed {}{label}", hit.kind, hit.indicator, hit.feed),
                    severity: if hit.confidence >= 0.8 { Severity::High } else { Severity::Medium },
                    confidence: hit.confidence,
                    src_ip: ip_kind.then(|| hit.matched.clone()),
                    host: crate::text::sanitize(&ev.host, 255),
                    first_seen: ev.time,
                    last_seen: ev.time,
                    event_count: 1,
                    techniques: {
                        let t = idx.techniques(&hit.feed);
                        if t.is_empty() { default_techniques(&hit.kind) } else { t }
                    },
                    evidence: vec![crate::text::sanitize(&ev.raw, 512)],
                    entity: (!ip_kind).then_some(entity),
                    intel: vec![hit],
                    ..Default::default()
                };
                super::attack::complete(&mut f);
                out.push(f);
            }
        }
        for f in findings.iter_mut() {
            let mut hits = Vec::new();
            if let Some(ip) = f.src_ip.as_deref().and_then(|s| s.parse().ok()) {
                hits.extend(idx.match_ip(ip));
            }
            if let Some(d) = f.entity.as_deref().and_then(|e| e.strip_prefix("domain:")) {
                hits.extend(idx.match_domain(d));
            }
            for h in hits {
                if !f.intel.iter().any(|x| x.indicator == h.indicator && x.feed == h.feed) {
                    f.confidence = f.confidence.max(h.confidence);
                    f.intel.push(h);
                }
            }
        }
        // Forget indicators not seen for a day.
        if let Some(newest) = self.newest {
            self.last.retain(|(l, _)| newest - *l <= chrono::Duration::days(1));
        }
        out
    }
}
