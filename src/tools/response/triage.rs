//! `triage_incident`: severity and priority from the findings of an incident.
//!
//! Priority combines the worst finding's severity, the rules' confidence and the attack
//! stage (a successful login after failures is a later, more urgent stage than failed
//! attempts).

use serde::{Deserialize, Serialize};

use crate::messages::{Incident, Priority, Severity};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriageResult {
    pub kind: String,
    pub severity: Severity,
    pub priority: Priority,
    pub reasons: Vec<String>,
}

/// Triage an incident from its findings.
pub fn triage(incident: &Incident) -> TriageResult {
    let mut reasons = Vec::new();
    let severity = incident.findings.iter().map(|f| f.severity).max().unwrap_or(incident.severity);
    let confidence = incident.findings.iter().map(|f| f.confidence).fold(0.0f32, f32::max);
    let compromised = incident.findings.iter().any(|f| f.rule == "ssh_success_after_failures");
    let kind = if compromised { "account_compromise".to_string() } else { incident.kind.clone() };
    if compromised {
        reasons.push("a login succeeded after failures from the same address".to_string());
    }
    let mut score = match severity {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    };
    if compromised {
        score += 1;
    }
    if confidence < 0.5 {
        score -= 1;
        reasons.push(format!("low detection confidence ({confidence:.2})"));
    }
    if incident.findings.len() >= 3 {
        score += 1;
        reasons.push(format!("{} findings attached: the attack persists", incident.findings.len()));
    }
    let priority = match score {
        s if s >= 4 => Priority::P1,
        3 => Priority::P2,
        2 => Priority::P3,
        _ => Priority::P4,
    };
    reasons.push(format!("worst finding severity {severity}"));
    TriageResult { kind, severity, priority, reasons }
}
