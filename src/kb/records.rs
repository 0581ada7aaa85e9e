//! How records are written to the store: every value versioned, incidents with their
//! findings by id.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{KbError, RECORD_VERSION};
use crate::messages::{Action, Finding, Incident};
use crate::store::{RawWrite, Store, TreeName};

#[derive(Serialize, serde::Deserialize)]
pub(super) struct Versioned<T> {
    v: u32,
    data: T,
}

pub(super) fn encode<T: Serialize>(what: &'static str, data: &T) -> Result<Vec<u8>, KbError> {
    serde_json::to_vec(&Versioned { v: RECORD_VERSION, data }).map_err(|source| KbError::Encode { what, source })
}

pub(super) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, KbError> {
    let rec: Versioned<T> = serde_json::from_slice(bytes).map_err(|source| KbError::Decode { what, source })?;
    if rec.v != RECORD_VERSION {
        return Err(KbError::Version { found: rec.v });
    }
    Ok(rec.data)
}

/// An inbox entry's target alone (the rest of the record is skipped, not built).
#[derive(serde::Deserialize)]
pub(super) struct InboxTarget {
    pub(super) target: String,
}

/// An incident as stored: its findings by id (they live in the `findings` tree), so an
/// incident that collects findings over hours is not rewritten with all of them each time.
#[derive(Serialize)]
pub(super) struct IncidentOut<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    severity: crate::messages::Severity,
    priority: crate::messages::Priority,
    status: crate::messages::IncidentStatus,
    entities: &'a [String],
    finding_ids: Vec<Uuid>,
    actions: &'a [Action],
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    notes: &'a [String],
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    triage: Option<&'a crate::messages::TriageResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    playbook: Option<&'a crate::messages::PlaybookRun>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    earlier_playbooks: &'a [crate::messages::PlaybookRun],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    evidence: &'a [crate::messages::EvidenceItem],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    remediation: &'a [crate::messages::RemediationEntry],
}

impl<'a> From<&'a Incident> for IncidentOut<'a> {
    fn from(i: &'a Incident) -> Self {
        IncidentOut {
            id: i.id,
            kind: &i.kind,
            title: &i.title,
            severity: i.severity,
            priority: i.priority,
            status: i.status,
            entities: &i.entities,
            finding_ids: i.findings.iter().map(|f| f.id).collect(),
            actions: &i.actions,
            created_at: i.created_at,
            updated_at: i.updated_at,
            last_activity: i.last_activity,
            notes: &i.notes,
            version: i.version,
            triage: i.triage.as_ref(),
            playbook: i.playbook.as_ref(),
            earlier_playbooks: &i.earlier_playbooks,
            evidence: &i.evidence,
            remediation: &i.remediation,
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct IncidentIn {
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    title: String,
    severity: crate::messages::Severity,
    priority: crate::messages::Priority,
    status: crate::messages::IncidentStatus,
    entities: Vec<String>,
    pub(super) finding_ids: Vec<Uuid>,
    actions: Vec<Action>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_activity: DateTime<Utc>,
    #[serde(default)]
    notes: Vec<String>,
    version: u64,
    #[serde(default)]
    triage: Option<crate::messages::TriageResult>,
    #[serde(default)]
    playbook: Option<crate::messages::PlaybookRun>,
    #[serde(default)]
    earlier_playbooks: Vec<crate::messages::PlaybookRun>,
    #[serde(default)]
    evidence: Vec<crate::messages::EvidenceItem>,
    #[serde(default)]
    remediation: Vec<crate::messages::RemediationEntry>,
}

/// Puts an incident's findings back from the `findings` tree.
pub(super) fn join(store: &Store, mut rec: IncidentIn) -> Result<Incident, KbError> {
    let ids = std::mem::take(&mut rec.finding_ids);
    with_findings_of(store, rec.with_findings(Vec::new()), &ids)
}

/// An incident read without its findings, with them (by id) from the `findings` tree.
pub(super) fn with_findings_of(store: &Store, mut inc: Incident, ids: &[Uuid]) -> Result<Incident, KbError> {
    inc.findings.reserve(ids.len());
    for id in ids {
        match store.get(TreeName::Findings, id.as_bytes())? {
            Some(v) => inc.findings.push(decode("finding", &v)?),
            None => {
                tracing::warn!(incident = %inc.id, finding = %id, "an incident's finding is missing from the findings tree")
            }
        }
    }
    Ok(inc)
}

impl IncidentIn {
    /// The incident with these findings (none: its record alone).
    pub(super) fn with_findings(self, findings: Vec<Finding>) -> Incident {
        let rec = self;
        Incident {
            id: rec.id,
            kind: rec.kind,
            title: rec.title,
            severity: rec.severity,
            priority: rec.priority,
            status: rec.status,
            entities: rec.entities,
            findings,
            actions: rec.actions,
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            last_activity: rec.last_activity,
            notes: rec.notes,
            version: rec.version,
            triage: rec.triage,
            playbook: rec.playbook,
            earlier_playbooks: rec.earlier_playbooks,
            evidence: rec.evidence,
            remediation: rec.remediation,
        }
    }
}

/// Links every stored incident's findings to it, once, in a database written before
/// links were (the `links` tree empty while incidents exist).
pub(super) fn link_findings(store: &Store) -> Result<(), KbError> {
    if !store.is_empty(TreeName::Links) || store.is_empty(TreeName::Incidents) {
        return Ok(());
    }
    let mut writes = Vec::new();
    for item in store.iter(TreeName::Incidents) {
        let (_, v) = item?;
        let rec: IncidentIn = decode("incident", &v)?;
        for f in &rec.finding_ids {
            writes.push(RawWrite::Put {
                tree: TreeName::Links,
                key: f.as_bytes().to_vec(),
                value: encode("link", &rec.id)?,
            });
        }
    }
    // One batch: all the links or none (a crash before it leaves the tree empty, and the
    // next open links again).
    store.apply(&writes)?;
    tracing::info!(links = writes.len(), "linked the stored incidents' findings (a database from before links)");
    Ok(())
}
