//! The routed envelope and its closed set of payloads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Finding;

/// One routed message: a payload plus the ids that tie it to what caused it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique, time-ordered (UUIDv7) unless derived deterministically from its cause.
    pub id: Uuid,
    /// The first envelope of the chain this one belongs to.
    pub correlation_id: Uuid,
    /// The envelope (or batch) that directly caused this one.
    pub causation_id: Option<Uuid>,
    /// Who emitted it: an agent name, `admin`, or a source name.
    pub origin: String,
    pub created_at: DateTime<Utc>,
    pub payload: Payload,
}

impl Envelope {
    /// A fresh envelope that starts a new correlation chain.
    pub fn new(origin: impl Into<String>, payload: Payload) -> Self {
        let id = Uuid::now_v7();
        Envelope { id, correlation_id: id, causation_id: None, origin: origin.into(), created_at: Utc::now(), payload }
    }

    /// An envelope caused by `cause`, with a deterministic id so that re-handling the
    /// cause after a crash produces the same envelope (and is deduplicated downstream).
    pub fn caused_by(cause: &Envelope, origin: impl Into<String>, payload: Payload, n: u32) -> Self {
        let origin = origin.into();
        let name = format!("{}/{}/{}", cause.id, origin, n);
        Envelope {
            id: Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()),
            correlation_id: cause.correlation_id,
            causation_id: Some(cause.id),
            origin,
            created_at: Utc::now(),
            payload,
        }
    }
}

/// The closed set of routed payloads, tagged by `kind` in snake_case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Detection(Finding),
    Triage(IncidentRef),
    Containment(ContainmentRequest),
    PatchVerification(VerifyRequest),
    Handoff(Handoff),
    Instruction(Instruction),
    Approval(ApprovalDecision),
    PlaybookStep(PlaybookStepRef),
    Close(CloseRequest),
    Scan(ScanRequest),
    /// What a fleet host's enforcer did with a containment decision.
    Enforcement(crate::messages::EnforcementReport),
}

/// Scan for vulnerabilities now: one configured target (by path), or all of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    #[serde(default)]
    pub target: Option<String>,
}

/// An operator closes an incident: its actions are rolled back (unless permanent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    pub incident_id: Uuid,
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// Run step `step` of an incident's playbook run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlaybookStepRef {
    pub incident_id: Uuid,
    pub step: usize,
}

/// An operator's answer to an action waiting for approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    pub action_id: Uuid,
    pub approve: bool,
    /// Who decided (the operator's name as the CLI or API caller gives it).
    pub by: String,
    #[serde(default)]
    pub comment: String,
}

/// An operator's request in free text ("investigate 203.0.113.7"): with a language
/// model the agent investigates with its tools and answers; without one it records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    pub text: String,
    /// The incident it is about: the answer is also noted there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<Uuid>,
}

impl Payload {
    pub fn kind(&self) -> PayloadKind {
        match self {
            Payload::Detection(_) => PayloadKind::Detection,
            Payload::Triage(_) => PayloadKind::Triage,
            Payload::Containment(_) => PayloadKind::Containment,
            Payload::PatchVerification(_) => PayloadKind::PatchVerification,
            Payload::Handoff(_) => PayloadKind::Handoff,
            Payload::Instruction(_) => PayloadKind::Instruction,
            Payload::Approval(_) => PayloadKind::Approval,
            Payload::PlaybookStep(_) => PayloadKind::PlaybookStep,
            Payload::Close(_) => PayloadKind::Close,
            Payload::Scan(_) => PayloadKind::Scan,
            Payload::Enforcement(_) => PayloadKind::Enforcement,
        }
    }
}

/// The kinds of [`Payload`], as named in agent definitions (`handles = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    Detection,
    Triage,
    Containment,
    PatchVerification,
    Handoff,
    Instruction,
    Approval,
    PlaybookStep,
    Close,
    Scan,
    Enforcement,
}

impl PayloadKind {
    pub const ALL: [PayloadKind; 11] = [
        PayloadKind::Detection,
        PayloadKind::Triage,
        PayloadKind::Containment,
        PayloadKind::PatchVerification,
        PayloadKind::Handoff,
        PayloadKind::Instruction,
        PayloadKind::Approval,
        PayloadKind::PlaybookStep,
        PayloadKind::Close,
        PayloadKind::Scan,
        PayloadKind::Enforcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Detection => "detection",
            PayloadKind::Triage => "triage",
            PayloadKind::Containment => "containment",
            PayloadKind::PatchVerification => "patch_verification",
            PayloadKind::Handoff => "handoff",
            PayloadKind::Instruction => "instruction",
            PayloadKind::Approval => "approval",
            PayloadKind::PlaybookStep => "playbook_step",
            PayloadKind::Close => "close",
            PayloadKind::Scan => "scan",
            PayloadKind::Enforcement => "enforcement",
        }
    }
}

impl std::fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to a stored incident, asking its handler to (re-)triage it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncidentRef {
    pub incident_id: Uuid,
}

/// A request to contain a threat tied to an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainmentRequest {
    pub incident_id: Uuid,
    pub action: super::ActionKind,
    /// What the action applies to: an IP address for `block_ip`.
    pub target: String,
    #[serde(default)]
    pub reason: String,
    /// `model` when a language model asked for it: such a request may never undo a
    /// containment (unblock, enable) — rollbacks are Warden's or an operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// A request to verify that a vulnerability was patched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    pub incident_id: Option<Uuid>,
    pub package: String,
    #[serde(default)]
    pub fixed_version: Option<String>,
}

/// One agent passing work to another, with the context the receiver needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub incident_id: Option<Uuid>,
    pub context: serde_json::Value,
}
