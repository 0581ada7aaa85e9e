//! The hash-chained audit ledger.
//!
//! Each record stores `hash = sha256(prev_hash || canonical_json(record))`, where the
//! record includes `prev` (the previous hash) and `seq`. Canonical JSON here means the
//! compact rendering of the record's fields in their declared order (`seq`, `at`, `prev`,
//! `actor`, `kind`, `subject`, `detail`), `detail`'s keys in the order they were built
//! or read (serde_json's `preserve_order`) — which is what the ledger has always hashed.
//!
//! Records are stored a *page* at a time: the records one commit appends, in pages of
//! about [`PAGE_BYTES`], each under its first record's sequence number as a JSON array
//! of `{"record", "hash"}` objects (a page of one record is the bare object, which is
//! also how ledgers written before pages stored every record). Each record keeps its own `seq`, `prev` and hash, so verification still
//! checks — and names — records one by one; a page only saves the database a key per
//! record.

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

/// A page is closed once its records take this many bytes.
pub const PAGE_BYTES: usize = 4096;

/// The stored value of a page holding `sealed` records (each from [`seal`], in order).
pub fn page(sealed: Vec<Vec<u8>>) -> Vec<u8> {
    if sealed.len() == 1 {
        return sealed.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(sealed.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, r) in sealed.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    out
}

/// The records of a stored page, in order.
pub fn read_page(value: &[u8]) -> Result<Vec<StoredAudit>, serde_json::Error> {
    if value.trim_ascii_start().first() == Some(&b'[') {
        serde_json::from_slice(value)
    } else {
        serde_json::from_slice(value).map(|one| vec![one])
    }
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

/// Walks stored pages (`(key, value)` pairs) in key order and reports the first broken
/// record.
pub fn verify<I, E>(pages: I) -> Result<AuditReport, E>
where
    I: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
{
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    let mut expected_seq = 0u64;
    for item in pages {
        let (key, value) = item?;
        let key_seq = key.as_slice().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
        let broken = |seq: u64, count: u64, prev: &str, reason: String| AuditReport {
            ok: false,
            records: count,
            first_broken: Some(BrokenRecord { seq, reason }),
            head: prev.to_string(),
        };
        let records = match read_page(&value) {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => return Ok(broken(key_seq, count + 1, &prev, "empty page".into())),
            Err(e) => return Ok(broken(key_seq, count + 1, &prev, format!("record is not valid json: {e}"))),
        };
        for (i, stored) in records.into_iter().enumerate() {
            count += 1;
            let seq = stored.record.seq;
            if seq != expected_seq || (i == 0 && key_seq != expected_seq) {
                let found =
                    if i == 0 { format!("key {key_seq} holding record {seq}") } else { format!("record {seq}") };
                let at = if i == 0 { key_seq } else { seq };
                return Ok(broken(
                    at,
                    count,
                    &prev,
                    format!("sequence gap: expected record {expected_seq}, found {found}"),
                ));
            }
            if stored.record.prev != prev {
                return Ok(broken(seq, count, &prev, "previous-hash link does not match the preceding record".into()));
            }
            let recomputed = chain_hash(&prev, &stored.record);
            if recomputed != stored.hash {
                let reason =
                    format!("content does not match its hash (stored {}, recomputed {})", stored.hash, recomputed);
                return Ok(broken(seq, count, &prev, reason));
            }
            prev = stored.hash;
            expected_seq += 1;
        }
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

    #[test]
    fn a_page_verifies_record_by_record() {
        let r = record();
        let at = &r.at;
        let entries: Vec<AuditEntry> =
            (0..4).map(|i| AuditEntry::new("t", AuditKind::ToolCall, i, serde_json::json!({ "n": i }))).collect();
        let mut prev = GENESIS.to_string();
        let mut sealed = Vec::new();
        for (seq, entry) in entries.iter().enumerate() {
            let (hash, v) = seal(&RecordRef { seq: seq as u64, at, prev: &prev, entry });
            sealed.push(v);
            prev = hash;
        }
        let one = page(sealed[..1].to_vec());
        let rest = page(sealed[1..].to_vec());
        assert!(one.starts_with(b"{") && rest.starts_with(b"["));
        let pages = |rest: Vec<u8>| {
            [Ok::<_, ()>((0u64.to_be_bytes().to_vec(), one.clone())), Ok((1u64.to_be_bytes().to_vec(), rest))]
        };
        let report = verify(pages(rest.clone())).unwrap();
        assert!(report.ok && report.records == 4 && report.head == prev, "{report:?}");
        assert_eq!(read_page(&rest).unwrap().len(), 3);
        // A record changed inside a page is named by its own sequence number.
        let forged = String::from_utf8(rest).unwrap().replace("\"n\":2", "\"n\":7").into_bytes();
        let report = verify(pages(forged)).unwrap();
        let broken = report.first_broken.unwrap();
        assert_eq!((broken.seq, report.records), (2, 3), "{}", broken.reason);
        assert!(broken.reason.contains("does not match its hash"), "{}", broken.reason);
        // A record dropped from a page leaves a gap named where it is.
        let mut short: Vec<serde_json::Value> = serde_json::from_slice(&page(sealed[1..].to_vec())).unwrap();
        short.remove(1);
        let report = verify(pages(serde_json::to_vec(&short).unwrap())).unwrap();
        let broken = report.first_broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("expected record 2"), "{}", broken.reason);
    }
}
