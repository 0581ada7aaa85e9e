//! The hash-chained audit ledger.
//!
//! Each record stores `hash = sha256(prev_hash || canonical_json(record))`, where the
//! record includes `prev` (the previous hash) and `seq`. Canonical JSON here means the
//! compact rendering of the record's fields in their declared order (`seq`, `at`, `prev`,
//! `actor`, `kind`, `subject`, `detail`), `detail`'s keys in the order they were built
//! or read (serde_json's `preserve_order`) — which is what the ledger has always hashed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::messages::hex;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    EnvelopeRouted,
    EnvelopeHandled,
    Handoff,
    ToolCall,
    Action,
    AgentRestarted,
    AgentFailed,
    DeadLetter,
    /// An operator approved or rejected an action.
    Approval,
    /// An action undone (expired, or its incident closed).
    Rollback,
    /// Evidence collected, exported or verified.
    Custody,
    /// A language model was asked: provider, model, digests, tools, decisions.
    ModelCall,
}

/// An audit entry as a caller submits it; the ledger assigns `seq`, `at` and `prev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub actor: String,
    pub kind: AuditKind,
    pub subject: String,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(actor: &str, kind: AuditKind, subject: impl ToString, detail: serde_json::Value) -> Self {
        AuditEntry { actor: actor.to_string(), kind, subject: subject.to_string(), detail }
    }
}

/// One stored record of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub prev: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// What is stored under the record's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAudit {
    pub record: AuditRecord,
    pub hash: String,
}

/// Computes a record's hash from the previous hash and the record's canonical JSON.
pub fn chain_hash(prev: &str, record: &AuditRecord) -> String {
    hash_canonical(prev, &canonical(record))
}

/// The canonical JSON of a record (see the module's documentation).
pub fn canonical(record: &AuditRecord) -> String {
    let AuditRecord { seq, at, prev, entry } = record;
    canonical_of(&RecordRef { seq: *seq, at, prev, entry })
}

/// An [`AuditRecord`] that borrows its parts: the ledger seals entries without copying them.
/// Its fields and their order are [`AuditRecord`]'s (a test compares the two renderings).
#[derive(Serialize)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub at: &'a DateTime<Utc>,
    pub prev: &'a str,
    #[serde(flatten)]
    pub entry: &'a AuditEntry,
}

fn canonical_of(record: &RecordRef<'_>) -> String {
    // Serializing plain data to a string cannot fail (no maps with non-string keys).
    serde_json::to_string(record).unwrap_or_default()
}

fn hash_canonical(prev: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.as_bytes());
    hex(&h.finalize())
}

/// A record and its hash as stored, encoding the record once: the stored text is built
/// from the same canonical JSON that was hashed.
pub fn seal(record: &RecordRef<'_>) -> (String, Vec<u8>) {
    let prev = record.prev;
    let canonical = canonical_of(record);
    let hash = hash_canonical(prev, &canonical);
    let stored = format!("{{\"record\":{canonical},\"hash\":\"{hash}\"}}").into_bytes();
    (hash, stored)
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub ok: bool,
    /// Records checked (up to and including the first broken one).
    pub records: u64,
    pub first_broken: Option<BrokenRecord>,
    /// Hash of the last record checked.
    pub head: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokenRecord {
    pub seq: u64,
    pub reason: String,
}

/// Walks stored `(key, value)` pairs in key order and reports the first broken record.
pub fn verify<I, E>(records: I) -> Result<AuditReport, E>
where
    I: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
{
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    let mut expected_seq = 0u64;
    for item in records {
        let (key, value) = item?;
        let key_seq = key.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
        count += 1;
        let broken = |reason: String| AuditReport {
            ok: false,
            records: count,
            first_broken: Some(BrokenRecord { seq: key_seq, reason }),
            head: prev.clone(),
        };
        let stored: StoredAudit = match serde_json::from_slice(&value) {
            Ok(s) => s,
            Err(e) => return Ok(broken(format!("record is not valid json: {e}"))),
        };
        if key_seq != expected_seq || stored.record.seq != key_seq {
            return Ok(broken(format!(
                "sequence gap: expected record {expected_seq}, found key {key_seq} holding record {}",
                stored.record.seq
            )));
        }
        if stored.record.prev != prev {
            return Ok(broken("previous-hash link does not match the preceding record".into()));
        }
        let recomputed = chain_hash(&prev, &stored.record);
        if recomputed != stored.hash {
            return Ok(broken(format!(
                "content does not match its hash (stored {}, recomputed {})",
                stored.hash, recomputed
            )));
        }
        prev = stored.hash;
        expected_seq += 1;
    }
    Ok(AuditReport { ok: true, records: count, first_broken: None, head: prev })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        let detail = serde_json::json!({
            "zeta": 1, "alpha": [1.5, "two", null], "nested": { "b": true, "a": "x\"y\u{7}" }
        });
        AuditRecord {
            seq: 42,
            at: DateTime::parse_from_rfc3339("2026-11-30T12:00:00.123456Z").unwrap().with_timezone(&Utc),
            prev: GENESIS.to_string(),
            entry: AuditEntry::new("incident-response", AuditKind::Action, "block_ip 203.0.113.7", detail),
        }
    }

    /// Ledgers written before the borrowed rendering hashed the record's `Value` rendering:
    /// both renderings must stay byte for byte the same, or old ledgers stop verifying.
    #[test]
    fn canonical_is_the_value_rendering_old_ledgers_hashed() {
        let r = record();
        let old = serde_json::to_value(&r).unwrap().to_string();
        assert_eq!(canonical(&r), old);
        assert!(old.starts_with(r#"{"seq":42,"at":"2026-11-30T12:00:00.123456Z","prev":"000"#), "{old}");
        assert_eq!(
            chain_hash(GENESIS, &r),
            hash_canonical(GENESIS, &old),
            "the hash is over the previous hash and the canonical text"
        );
    }

    #[test]
    fn a_sealed_record_reads_back_and_verifies() {
        let r = record();
        let AuditRecord { seq, at, prev, entry } = &r;
        let (hash, stored) = seal(&RecordRef { seq: *seq, at, prev, entry });
        let back: StoredAudit = serde_json::from_slice(&stored).unwrap();
        assert_eq!(back.record, r);
        assert_eq!(back.hash, hash);
        assert_eq!(chain_hash(GENESIS, &back.record), hash);
        let mut first = r.clone();
        first.seq = 0;
        let (h0, v0) = seal(&RecordRef { seq: 0, at, prev, entry });
        assert_eq!(h0, chain_hash(GENESIS, &first));
        let report = verify([Ok::<_, ()>((0u64.to_be_bytes().to_vec(), v0))]).unwrap();
        assert!(report.ok && report.records == 1 && report.head == h0, "{report:?}");
    }
}
