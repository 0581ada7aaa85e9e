//! Triage: `triage_incident` classifies the incident and sets its severity and
//! priority; a model (when configured) explains a new or changed triage; then the
//! incident's playbook takes over, or without one a block of the attacker's address is
//! proposed.

use chrono::Utc;

use super::IncidentResponse;
use crate::agents::{AgentError, Effects, Tools};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{ActionKind, Envelope, Incident, IncidentRef, IncidentStatus, TriageResult};
use crate::tools::response::execute_playbook::ExecutePlaybook;
use crate::tools::response::playbook::run::{self, Begin};
use crate::tools::response::triage_incident::TriageIncident;

impl IncidentResponse {
    pub(super) async fn triage(
        &mut self,
        env: &Envelope,
        r: &IncidentRef,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        let Some(inc) = self.incident(r.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let result = tools
            .call::<TriageIncident>(inc.clone())
            .await
            .output()
            .map_err(|o| AgentError::Fatal(format!("triage_incident {}", o.summary())))?;
        let mut fx = Effects::default();
        let explanation = self.explain(&inc, &result, tools, &mut fx).await;
        // Let go of the shared copy: changing the incident below must not copy it.
        drop(inc);
        let name = self.def.name.clone();
        let contain_min = self.def.response.contain_min_severity;
        // A playbook for this type of incident takes over (when the agent runs them).
        let playbooks = self.def.playbooks.clone();
        let matching = playbooks.iter().filter(|_| self.declares::<ExecutePlaybook>()).find(|p| {
            p.trigger.types.contains(&result.kind) && p.trigger.min_severity.is_none_or(|m| result.severity >= m)
        });
        let inc = self.edit_known(r.incident_id)?;
        match explanation {
            Some(Ok(text)) => {
                inc.notes.push(format!("triage explained by the model: {}", crate::text::sanitize(&text, 2000)))
            }
            Some(Err(why)) => inc.notes.push(format!("language model unavailable ({why}): the rules' triage stands")),
            None => {}
        }
        apply(inc, &result);
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "triage_incident",
            serde_json::json!({ "incident": inc.id, "severity": result.severity, "priority": result.priority, "reasons": result.reasons }),
        ));
        let began = run::begin(inc, matching, Utc::now());
        let has_playbook = !matches!(began, Begin::None);
        if let Begin::Started { playbook, first } = began {
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::ToolCall,
                "execute_playbook",
                serde_json::json!({ "incident": inc.id, "playbook": playbook, "started": true }),
            ));
            fx.route.push(Envelope::caused_by(env, &name, first.payload, first.n));
        }
        // Containment of every attacker: once the incident blocks one (its playbook
        // decided so), or without a playbook when it is severe enough.
        let blocks = inc.actions.iter().any(|a| a.kind == ActionKind::BlockIp);
        if blocks || (!has_playbook && inc.severity >= contain_min) {
            let more = self.contain_attackers(env, r.incident_id, None, 10);
            fx.route.extend(more);
        }
        Ok(fx)
    }

    /// With a model: it explains a new or changed triage to the operator and may
    /// propose a better-fitting playbook (validated); the rules' decision stands.
    async fn explain(
        &self,
        inc: &Incident,
        result: &TriageResult,
        tools: &dyn Tools,
        fx: &mut Effects,
    ) -> Option<Result<String, crate::agents::reasoning::NoAnswer>> {
        let changed = inc.triage.as_ref().is_none_or(|t| {
            (t.kind.as_str(), t.severity, t.priority) != (result.kind.as_str(), result.severity, result.priority)
        });
        if !changed || self.env.reasoner.is_none() {
            return None;
        }
        let summary = serde_json::json!({ "id": inc.id, "title": inc.title, "entities": inc.entities,
            "findings": inc.findings.iter().map(|f| serde_json::json!({ "rule": f.rule, "title": f.title,
                "severity": f.severity, "evidence": f.evidence })).collect::<Vec<_>>(),
            "triage": result });
        let prompt = format!(
            "Warden's rules triaged incident {}:\n{}\nExplain this triage to an operator in at most four sentences. \
             If another playbook fits this incident better, propose it with execute_playbook.",
            inc.id,
            crate::llm::fence_untrusted("INCIDENT AND TRIAGE", &summary.to_string(), 6000)
        );
        let snap = crate::tools::Snapshot::default();
        crate::agents::reasoning::consult(&self.env, &self.def, tools, snap, prompt, fx).await
    }
}

/// The triage's type, severity and priority become the incident's. An attack that
/// succeeded is titled by the finding that shows it (a compromise is not "SSH brute
/// force", even in a campaign's incident).
fn apply(inc: &mut Incident, result: &TriageResult) {
    let succeeded =
        matches!(result.kind.as_str(), "credential_compromise" | "ransomware" | "data_exfiltration" | "malware_c2");
    if succeeded
        && let Some(f) = crate::tools::response::triage::defining_finding(inc, &result.kind)
        && inc.title != f.title
    {
        inc.title = f.title.clone();
    }
    inc.severity = result.severity;
    inc.priority = result.priority;
    inc.kind = result.kind.clone();
    inc.triage = Some(result.clone());
    if inc.status == IncidentStatus::Open {
        inc.status = IncidentStatus::Triaged;
    }
    inc.updated_at = Utc::now();
}
