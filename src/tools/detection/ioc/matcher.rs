//! The `detect_ioc` matcher over a batch: hits become findings (at most once an hour
//! per indicator, backing off while it is seen) and enrich the batch's other findings;
//! when each indicator was last reported is state, stored with the batch.

use std::sync::Arc;

use super::FeedStore;
use crate::messages::Event;

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
    last: crate::tools::detection::tracked::Tracked<String, (chrono::DateTime<chrono::Utc>, u32)>,
    newest: Option<chrono::DateTime<chrono::Utc>>,
    /// Suppression entries evicted (least recent first) because the table was full.
    pub evicted: u64,
}

impl IocMatcher {
    pub fn new(store: Arc<FeedStore>) -> Self {
        IocMatcher { store, last: Default::default(), newest: None, evicted: 0 }
    }

    pub fn store(&self) -> &Arc<FeedStore> {
        &self.store
    }

    /// Resumes from stored entries (keys relative to [`STATE_PREFIX`]).
    pub fn restore(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<(), crate::tools::StateError> {
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
                if let Some(e) = self.last.touch(&key, &mut self.evicted) {
                    *e = (ev.time, count);
                }
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
                crate::tools::detection::attack::complete(&mut f);
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
