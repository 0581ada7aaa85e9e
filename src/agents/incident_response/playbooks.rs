//! Running playbooks: each step is a routed `PlaybookStep` envelope; what the step
//! needs from other tools (evidence, a report) is gathered first, then
//! `execute_playbook` decides and records it through the pure interpreter, and what it
//! asks for (containment, a handoff, the next step, a notification) becomes effects.
//! Gates wait for an operator's decision or their timeout.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::IncidentResponse;
use crate::agents::{AgentError, Effects, Tools};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{ApprovalDecision, Envelope, Incident, PlaybookStepRef};
use crate::tools::response::collect_evidence::{CollectEvidence, Evidence, EvidenceArgs};
use crate::tools::response::execute_playbook::{ExecutePlaybook, StepArgs, StepResult};
use crate::tools::response::generate_report::{GenerateReport, ReportArgs};
use crate::tools::response::playbook::StepKind;
use crate::tools::response::playbook::run::{self, Due, Gathered, Request, StepDone, Stepped};
use crate::tools::response::report::{Audience, Format};

impl IncidentResponse {
    /// Runs one step of an incident's playbook (and routes the next). A step that is
    /// not the run's next one (a redelivery of a committed step) does nothing.
    pub(super) async fn playbook_step(
        &mut self,
        env: &Envelope,
        r: &PlaybookStepRef,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let Some(inc) = self.incident(r.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let gathered = self.gather(&inc, r.step, tools).await;
        let now = Utc::now();
        // The interpreter gets the incident itself (not a copy, unless a pending write
        // still shares it); it comes back with the step recorded. Should the tool fail,
        // the agent is rebuilt from the stored incidents.
        drop(inc);
        let Some(inc) = self.held.take(r.incident_id)? else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let args = StepArgs { incident: inc, index: r.step, gathered, now };
        let StepResult { incident, stepped } = tools
            .call::<ExecutePlaybook>(args)
            .await
            .output()
            .map_err(|o| AgentError::Fatal(format!("execute_playbook {}", o.summary())))?;
        let StepDone { step, key, playbook, decision, recorded } = match stepped {
            Stepped::Stale => {
                self.held.insert(Arc::new(incident));
                return Ok(fx);
            }
            Stepped::Ended => {
                self.replace(incident);
                return Ok(fx);
            }
            Stepped::Decided(done) => *done,
        };
        for item in &decision.evidence {
            // Custody: collected, by whom, when, with the content's hash.
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::Custody,
                &item.sha256,
                serde_json::json!({ "event": "collected", "incident": incident.id, "item": item }),
            ));
        }
        for req in decision.request.iter().chain(&recorded.next) {
            fx.route.push(self.envelope(Some(env), req.clone()));
        }
        // Queued, never awaited: a slow or dead webhook does not hold the run up.
        if let (Some(text), Some(n)) = (&recorded.notify, &self.env.notifier) {
            fx.writes.push(n.queue(&crate::outbox::Notification::about(&incident, text.clone(), now)));
        }
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "execute_playbook",
            serde_json::json!({ "incident": incident.id, "playbook": playbook, "step": step, "key": key,
                "outcome": decision.outcome, "detail": decision.detail, "run": recorded.status }),
        ));
        let incident = Incident { updated_at: now, ..incident };
        self.replace(incident);
        Ok(fx)
    }

    /// What a due step needs from other tools before it is decided: the evidence it
    /// collects, the report it renders (when the agent declares those tools).
    async fn gather(&self, inc: &Arc<Incident>, index: usize, tools: &dyn Tools) -> Gathered {
        let Due::Step { step, skip: false, .. } = run::due(inc, &self.def.playbooks, &self.def.assets, index) else {
            return Gathered::Nothing;
        };
        match step.kind {
            StepKind::CollectEvidence if self.declares::<CollectEvidence>() => {
                let args = EvidenceArgs {
                    incident: inc.clone(),
                    files: step.files.iter().map(std::path::PathBuf::from).collect(),
                    snapshot: step.snapshot.unwrap_or(true),
                };
                match tools.call::<CollectEvidence>(args).await.output() {
                    Ok(Evidence { items, problems }) => Gathered::Evidence { items, problems },
                    Err(o) => Gathered::EvidenceFailed(o.summary()),
                }
            }
            StepKind::Report if self.declares::<GenerateReport>() => {
                let args =
                    ReportArgs { incident: inc.clone(), audience: Audience::Technical, format: Format::Markdown };
                match tools.call::<GenerateReport>(args).await.output() {
                    Ok(md) => Gathered::Report(md),
                    Err(_) => Gathered::Nothing,
                }
            }
            _ => Gathered::Nothing,
        }
    }

    /// Puts an incident the interpreter changed back, to be written with the commit.
    fn replace(&mut self, mut incident: Incident) {
        incident.version += 1;
        self.hold_changed(incident);
    }

    /// The envelope for what the interpreter asks: caused by `cause` when there is one,
    /// under the step's own id when it has one.
    fn envelope(&self, cause: Option<&Envelope>, req: Request) -> Envelope {
        let mut e = match cause {
            Some(c) => Envelope::caused_by(c, self.name(), req.payload, req.n),
            None => Envelope::new(self.name(), req.payload),
        };
        if let Some(id) = req.id {
            e.id = id;
        }
        e
    }

    /// An operator's answer to a playbook waiting for approval, if `d` answers a gate.
    pub(super) fn playbook_gate(&mut self, d: &ApprovalDecision) -> Option<Effects> {
        let incident_id = match self.held.iter().find(|i| run::waits_at(i, d.action_id)) {
            Some(i) => i.id,
            None => *self.watch.iter().find(|(_, w)| w.gate == Some(d.action_id))?.0,
        };
        if !self.incident(incident_id).is_some_and(|i| run::waits_at(&i, d.action_id)) {
            return None;
        }
        Some(self.resume_gate(incident_id, if d.approve { "approved" } else { "rejected" }, &d.by, d.approve))
    }

    /// Ends a run's wait: approved (or timed out with `continue`), the run goes on.
    fn resume_gate(&mut self, incident_id: Uuid, outcome: &str, by: &str, go_on: bool) -> Effects {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let now = Utc::now();
        let by = crate::text::sanitize(by, 64);
        let steps = self.incident(incident_id).map_or(0, |i| run::steps_of(&i, &self.def.playbooks));
        let Some(inc) = self.edit(incident_id) else { return fx };
        let Some(resumed) = run::resume(inc, steps, outcome, &by, go_on, now) else { return fx };
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Approval,
            resumed.key,
            serde_json::json!({ "incident": incident_id, "playbook": resumed.playbook, "step": resumed.step,
                "outcome": outcome, "by": by, "at": now }),
        ));
        if let Some(next) = resumed.next {
            fx.route.push(self.envelope(None, next));
        }
        fx
    }

    /// Playbooks waiting past their approval timeout: the step's `on_failure` decides.
    pub(super) fn overdue_gates(&mut self, now: chrono::DateTime<Utc>, watched: &[Uuid]) -> Effects {
        let mut gates: Vec<(Uuid, bool)> = Vec::new();
        for id in watched {
            let Some(i) = self.incident(*id) else { continue };
            if let Some(go_on) = run::overdue(&i, &self.def.playbooks, now) {
                gates.push((i.id, go_on));
            }
        }
        let mut fx = Effects::default();
        for (incident_id, go_on) in gates {
            let more = self.resume_gate(incident_id, "timed_out", "nobody", go_on);
            fx.writes.extend(more.writes);
            fx.audit.extend(more.audit);
            fx.route.extend(more.route);
        }
        fx
    }
}
