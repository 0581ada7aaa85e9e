//! Incidents and the actions taken on them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Finding, ResponseMode, Severity};

/// An incident: one attacker (or one internal failure) while it is active, with every
/// finding attached to it and every action taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Incident {
    pub id: Uuid,
    /// `ssh_brute_force`, `account_compromise`, `agent_failed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub priority: Priority,
    pub status: IncidentStatus,
    /// The entities involved: the attacker's address, accounts, agents.
    pub entities: Vec<String>,
    pub findings: Vec<Finding>,
    pub actions: Vec<Action>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Event time of the latest finding; drives "still active".
    pub last_activity: DateTime<Utc>,
    /// Why something was or was not done (e.g. a containment refused for a protected address).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Record version, bumped on every update.
    pub version: u64,
    /// What triage decided and why (type, severity, priority, deadline, asset, reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triage: Option<TriageResult>,
    /// The playbook run for this incident, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<PlaybookRun>,
    /// Earlier runs, superseded when triage found the incident to be something worse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_playbooks: Vec<PlaybookRun>,
    /// Evidence collected for it (content in the evidence store, by SHA-256).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceItem>,
    /// The root cause handed to vulnerability management: remediations scheduled and
    /// what their verification found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<RemediationEntry>,
}

impl Incident {
    /// A new open incident (priority P4 until triage says otherwise), version 1, with
    /// nothing done yet.
    pub fn open(
        id: Uuid,
        kind: String,
        title: String,
        severity: Severity,
        entities: Vec<String>,
        findings: Vec<crate::messages::Finding>,
        now: DateTime<Utc>,
    ) -> Incident {
        Incident {
            id,
            kind,
            title,
            severity,
            priority: Priority::P4,
            status: IncidentStatus::Open,
            entities,
            findings,
            actions: Vec::new(),
            created_at: now,
            updated_at: now,
            last_activity: now,
            notes: Vec::new(),
            version: 1,
            triage: None,
            playbook: None,
            earlier_playbooks: Vec::new(),
            evidence: Vec::new(),
            remediation: Vec::new(),
        }
    }

    /// A `visibility` incident: a blind spot — something Warden could not see or store —
    /// about `entity`, P2, its id derived from `key` (the blind spot and when it began)
    /// so that saying it again does not open a second one.
    pub fn blind_spot(
        key: &str,
        title: String,
        severity: Severity,
        entity: String,
        note: String,
        now: DateTime<Utc>,
    ) -> Incident {
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("visibility/{key}").as_bytes());
        Incident {
            priority: Priority::P2,
            notes: vec![note],
            ..Incident::open(id, "visibility".into(), title, severity, vec![entity], Vec::new(), now)
        }
    }
}

/// Where one remediation of an incident's root cause stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationStatus {
    /// Waiting for the patch (and its verification).
    Scheduled,
    Verified,
    /// Verification failed: the incident stays open and is escalated.
    Failed,
    /// No fixed version is published: mitigations only.
    NoFix,
}

/// One remediation on an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationEntry {
    /// The vulnerability-management plan it tracks.
    pub plan: String,
    pub asset: String,
    pub ecosystem: String,
    pub package: String,
    pub installed: String,
    pub target: Option<String>,
    /// The command that applies it, as a shell-quoted line (empty: none).
    pub command: String,
    pub advisories: Vec<String>,
    pub priority: Priority,
    pub deadline: DateTime<Utc>,
    pub status: RemediationStatus,
    /// The last verification's checks, `name: status — detail`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

/// Where a playbook run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Waiting for an operator to approve step `next`.
    Waiting,
    Done,
    Aborted,
}

/// A playbook run: its state, persisted with the incident after every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookRun {
    pub playbook: String,
    pub status: RunStatus,
    /// The index of the next step to run.
    pub next: usize,
    pub steps: Vec<StepRecord>,
    /// While waiting: the id to approve or reject, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_deadline: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub id: String,
    /// The step's idempotency key (also the id of anything it routed).
    pub key: Uuid,
    /// `done`, `skipped`, `requested`, `waiting`, `approved`, `rejected`, `timed_out`,
    /// `failed`, `unavailable`.
    pub outcome: String,
    #[serde(default)]
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Priority from triage, P1 (act now) to P4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Triaged,
    Contained,
    /// The root cause was remediated and the patch verified.
    Resolved,
    Closed,
}

/// A containment (or other response) action on an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub id: Uuid,
    pub kind: ActionKind,
    pub target: String,
    pub mode: ResponseMode,
    pub status: ActionStatus,
    /// The exact program and arguments that run (or would run); never a shell string.
    pub argv: Vec<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// When the action expires and is rolled back (an executed one) or lapses (one
    /// waiting for approval).
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub output: Option<String>,
    /// Every command and native step of the action, as recorded or run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// A human's approval or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Kept when it expires (no rollback).
    #[serde(default)]
    pub permanent: bool,
    /// When and how it was undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// What the undoing applies to when it is not `target` (a quarantined file's hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_target: Option<String>,
    /// A decision published for a fleet: what each host's enforcer last said of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforcement: Vec<EnforcementReport>,
}

/// What one host's enforcer did with a containment decision of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnforcementReport {
    pub host: String,
    /// The address the decision is about.
    pub target: String,
    /// The incident that decided it, when the decision names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
    /// The decision's revision in the bucket (0 for a removal).
    pub revision: u64,
    pub outcome: EnforcementOutcome,
    /// Why (a failure's error, a refusal's reason, an ineffective block's missing rule).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The outcome of one decision on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforcementOutcome {
    /// In the host's set, and the set is in the traffic path.
    Applied,
    /// It was in the set already (a re-sync).
    AlreadyPresent,
    /// In the set, but no rule hooked into the traffic path uses the set.
    Ineffective,
    /// Removed (unblocked, or expired).
    Removed,
    /// Not applied: the address is protected on this host.
    Refused,
    /// Observe mode: what would have been done, not done.
    Observed,
    /// Not applied: written by a leader that had been replaced (its fencing token is
    /// older than the lease's).
    Stale,
    Failed,
}

impl EnforcementOutcome {
    /// Whether the block stands on the host that said so.
    pub fn in_force(self) -> bool {
        matches!(self, EnforcementOutcome::Applied | EnforcementOutcome::AlreadyPresent)
    }
}

impl Action {
    /// Whether the action still stands for its target: recorded (dry run), waiting for
    /// an operator, decided against by one, or in force. One that failed, lapsed or was
    /// rolled back does not: a new finding against the target asks again.
    pub fn stands(&self) -> bool {
        match self.status {
            ActionStatus::DryRun | ActionStatus::PendingApproval | ActionStatus::Rejected => true,
            ActionStatus::Executed | ActionStatus::Published => self.rollback.is_none(),
            ActionStatus::Failed | ActionStatus::Expired | ActionStatus::RolledBack => false,
        }
    }
}

/// Who approved or rejected an action, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub comment: String,
}

/// The undoing of an action (an unblock for a block).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub at: DateTime<Utc>,
    /// `expired` or `incident closed`.
    pub why: String,
    pub argv: Vec<String>,
    pub ok: bool,
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Add an address to Warden's nftables set, with a timeout.
    BlockIp,
    UnblockIp,
    /// This host: drop everything but loopback and the management networks; a remote
    /// host: the configured command.
    IsolateHost,
    ReleaseHost,
    /// Lock and expire a local account and end its processes.
    DisableAccount,
    EnableAccount,
    /// Kill a process, only if it is still the one that was seen.
    KillProcess,
    /// Move a file into quarantine (by its SHA-256, no permissions).
    QuarantineFile,
    RestoreFile,
}

impl ActionKind {
    /// Every action, in declaration order.
    pub const ALL: [ActionKind; 9] = [
        ActionKind::BlockIp,
        ActionKind::UnblockIp,
        ActionKind::IsolateHost,
        ActionKind::ReleaseHost,
        ActionKind::DisableAccount,
        ActionKind::EnableAccount,
        ActionKind::KillProcess,
        ActionKind::QuarantineFile,
        ActionKind::RestoreFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockIp => "block_ip",
            ActionKind::UnblockIp => "unblock_ip",
            ActionKind::IsolateHost => "isolate_host",
            ActionKind::ReleaseHost => "release_host",
            ActionKind::DisableAccount => "disable_account",
            ActionKind::EnableAccount => "enable_account",
            ActionKind::KillProcess => "kill_process",
            ActionKind::QuarantineFile => "quarantine_file",
            ActionKind::RestoreFile => "restore_file",
        }
    }

    /// The action that undoes this one when its time is up, if it can be undone.
    pub fn rollback(self) -> Option<ActionKind> {
        match self {
            ActionKind::BlockIp => Some(ActionKind::UnblockIp),
            ActionKind::IsolateHost => Some(ActionKind::ReleaseHost),
            ActionKind::DisableAccount => Some(ActionKind::EnableAccount),
            ActionKind::QuarantineFile => Some(ActionKind::RestoreFile),
            _ => None,
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Observe mode: recorded with its argv, never executed.
    DryRun,
    /// Approve mode: waiting for an operator.
    PendingApproval,
    Executed,
    /// Enforce mode in a fleet (`[cluster]`): the decision is in the cluster's decisions
    /// bucket; each host's enforcer applies it and reports whether it is in force there.
    Published,
    Failed,
    /// An operator said no.
    Rejected,
    /// Nobody decided before its deadline.
    Expired,
    /// Executed, then undone when it expired or its incident closed.
    RolledBack,
}

/// What triage decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageResult {
    /// `brute_force`, `credential_compromise`, `web_attack`, `malware_c2`, `ransomware`,
    /// `phishing`, `data_exfiltration`, `privilege_abuse`, `vulnerability_exploitation`,
    /// `reconnaissance`, `defense_evasion`, `agent_failure`.
    pub kind: String,
    pub severity: Severity,
    pub priority: Priority,
    /// Respond by then.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// The asset it was scored against (`None`: the default).
    #[serde(default)]
    pub asset: Option<String>,
    pub reasons: Vec<String>,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceItem {
    /// `log_lines`, `file`, `host_snapshot`, `external`.
    pub kind: String,
    /// Where it came from: a file path, `/proc`, the collector's command.
    pub source: String,
    pub sha256: String,
    pub size: u64,
    pub collected_at: DateTime<Utc>,
    pub collector: String,
    /// Its name inside the evidence store and in bundles.
    pub name: String,
}
