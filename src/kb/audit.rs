//! The hash-chained audit ledger.
//!
//! Each record stores `hash = sha256(prev_hash || canonical_json(record))`, where the
//! record includes `prev` (the previous hash) and `seq`. Canonical JSON here means
//! serde_json's `Value` rendering, whose object keys are sorted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// The canonical JSON of a record: serde_json's `Value` rendering, keys sorted.
pub fn canonical(record: &AuditRecord) -> String {
    serde_json::to_value(record).map(|v| v.to_string()).unwrap_or_default()
}

fn hash_canonical(prev: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.as_bytes());
    hex(&h.finalize())
}

/// A record and its hash as stored, encoding the record once: the stored text is built
/// from the same canonical JSON that was hashed.
pub fn seal(prev: &str, record: &AuditRecord) -> (String, Vec<u8>) {
    let canonical = canonical(record);
    let hash = hash_canonical(prev, &canonical);
    let stored = format!("{{\"record\":{canonical},\"hash\":\"{hash}\"}}").into_bytes();
    (hash, stored)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
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
