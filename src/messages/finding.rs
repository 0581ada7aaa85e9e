//! Findings: what a detector concluded from events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Severity of a finding or incident, ordered from least to most severe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// A detection. Its id is derived from the rule, the entity and the event time that
/// triggered it, so re-reading the same lines after a crash yields the same id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub id: Uuid,
    /// The rule that fired, e.g. `ssh_brute_force`.
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    /// How sure the rule is, 0.0 to 1.0.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// The attacker's address as a string, when there is one.
    #[serde(default)]
    pub src_ip: Option<String>,
    #[serde(default)]
    pub users: Vec<String>,
    /// The host whose logs showed it.
    #[serde(default)]
    pub host: String,
    /// Event time of the first and last event that contributed.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[serde(default)]
    pub event_count: u64,
    /// ATT&CK technique ids, e.g. `T1110.001`.
    #[serde(default)]
    pub techniques: Vec<String>,
    /// A few of the lines that triggered it, with control characters escaped.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// What the finding is about when that is not its address: `user:NAME` (an attack on
    /// an account from many addresses) or `host:NAME`. Incident response groups findings
    /// into incidents by this, else by `src_ip`, else by host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// ATT&CK tactic ids (`TA0006`), from the techniques and the rule's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tactics: Vec<String>,
    /// The numbers that led to the finding (distinct ports, interval deviation, bytes…).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub numbers: std::collections::BTreeMap<String, f64>,
    /// Threat-intelligence hits on the finding's entities or evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intel: Vec<IntelHit>,
    /// For a campaign: the findings it links, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Uuid>,
    /// The campaign this finding belongs to (its group's root id), once there is one:
    /// incident response files it with the campaign's incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<Uuid>,
    /// Where evidence lines were read: file, byte offset of the line, SHA-256 of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_refs: Vec<EvidenceRef>,
    /// CVE ids the detection names (Sigma `cve.YYYY-NNNN` tags): the weakness exploited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cves: Vec<String>,
    /// A language model's account of it for an analyst (only with a model configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrative: Option<String>,
}

/// The origin of an evidence line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRef {
    /// Shared by every reference into the same file (findings keep many).
    pub file: std::sync::Arc<str>,
    pub offset: u64,
    /// SHA-256 of the line as read (lossily decoded, without its newline); hex in JSON.
    #[serde(with = "hex32")]
    pub sha256: [u8; 32],
}

impl EvidenceRef {
    /// A reference to `line`, read at `offset` of `file`.
    pub fn new(file: std::sync::Arc<str>, offset: u64, line: &str) -> Self {
        use sha2::Digest;
        EvidenceRef { file, offset, sha256: sha2::Sha256::digest(line.as_bytes()).into() }
    }

    /// The hash in hex.
    pub fn sha256_hex(&self) -> String {
        hex32::to_hex(&self.sha256)
    }
}

/// 32 bytes as 64 hex digits.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_hex(v: &[u8; 32]) -> String {
        super::super::hex(v)
    }

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(serde::de::Error::custom("a SHA-256 is 64 hex digits"));
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// One indicator of a threat-intelligence feed that matched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IntelHit {
    /// The feed's name (its file stem or configured name).
    pub feed: String,
    /// `ipv4`, `ipv6`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `email`.
    pub kind: String,
    /// The indicator as the feed states it.
    pub indicator: String,
    /// What matched it (a field value or a piece of the raw line).
    pub matched: String,
    pub confidence: f32,
    /// The feed's label for it (malware family, threat type), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Finding {
    /// The entity incidents are grouped by.
    pub fn entity(&self) -> String {
        match (&self.entity, &self.src_ip) {
            (Some(e), _) => e.clone(),
            (None, Some(ip)) => ip.clone(),
            (None, None) => format!("host:{}", self.host),
        }
    }

    /// The attacker's address, when the finding names one (`::ffff:1.2.3.4` as IPv4).
    pub fn src_addr(&self) -> Option<std::net::IpAddr> {
        self.src_ip.as_deref()?.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_canonical())
    }
}

fn default_confidence() -> f32 {
    0.8
}

impl Finding {
    /// The deterministic id of a finding of `rule` on `entity` triggered at `at`.
    pub fn derive_id(rule: &str, entity: &str, at: DateTime<Utc>) -> Uuid {
        let name = format!("finding/{rule}/{entity}/{}", at.timestamp_nanos_opt().unwrap_or(0));
        Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
    }
}
