//! Plain data that crosses actor boundaries: envelopes and the routed payloads,
//! findings, incidents and actions.
//!
//! Nothing in here talks to an actor or to storage; every type is serde data so that
//! it can be persisted in the knowledge base, shown by the admin API and replayed.

mod batch;
mod envelope;
mod event;
mod fields;
mod finding;
mod incident;

pub use batch::{BatchAck, BatchError, BatchStats, LogBatch, Parser, ParserCounts, Prematched};
pub use envelope::{
    ApprovalDecision, CloseRequest, ContainmentRequest, Envelope, Handoff, IncidentRef, Instruction, Payload,
    PayloadKind, PlaybookStepRef, ScanRequest, VerifyRequest,
};
pub use event::{AuthEvent, AuthEventKind, Event, Service, WebRequest};
pub use fields::{FieldRef, Fields, TsvFields, TsvMarkers, TsvNames, json_lookup};
pub use finding::{EvidenceRef, Finding, IntelHit, Severity};
pub use incident::{
    Action, ActionKind, ActionStatus, Decision, EnforcementOutcome, EnforcementReport, EvidenceItem, Incident,
    IncidentStatus, PlaybookRun, Priority, RemediationEntry, RemediationStatus, Rollback, RunStatus, StepRecord,
    TriageResult,
};

/// The response mode: what the incident-response executor does with a containment action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Store the exact command that would run, never execute it (the default).
    #[default]
    Observe,
    /// Store the action as pending until an operator approves it.
    Approve,
    /// Execute the action.
    Enforce,
}

impl ResponseMode {
    /// The stricter of two modes (observe < approve < enforce).
    pub fn stricter(self, other: ResponseMode) -> ResponseMode {
        let rank = |m| match m {
            ResponseMode::Observe => 0,
            ResponseMode::Approve => 1,
            ResponseMode::Enforce => 2,
        };
        if rank(self) <= rank(other) { self } else { other }
    }
}

impl std::fmt::Display for ResponseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseMode::Observe => "observe",
            ResponseMode::Approve => "approve",
            ResponseMode::Enforce => "enforce",
        })
    }
}

/// Where a source has read up to, stored with the effects of the batch that reached it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub device: u64,
    pub inode: u64,
    /// Byte offset just past the last line whose effects are stored.
    pub offset: u64,
    /// Hash of the file's first bytes, to tell a reused inode from the same file.
    pub fingerprint: u64,
    /// Sequence number of the last committed batch (batches at or below it are stale).
    pub seq: u64,
    /// True when the reader was discarding the tail of an over-long line.
    pub skipping: bool,
    /// Lines processed from this source since it was first read (durable counter).
    pub lines_total: u64,
    /// A journald source's position: the cursor of the last entry whose effects are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// An envelope waiting in the durable inbox of the agent it is routed to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InboxEntry {
    pub target: String,
    pub envelope: Envelope,
    /// How many times it has been delivered without being acknowledged.
    pub attempts: u32,
}

/// Lower-case hexadecimal of `bytes` (hashes as they are shown and stored).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }
}
