//! Incident-response logic: findings become incidents, incidents are triaged, and
//! containment is requested and carried out through the `contain_threat` tool.
//!
//! Decision state: the incidents (rebuilt from the knowledge base on every start) and
//! an index from entity (the attacker's address) to its active incident.
//! Flow: `Detection` opens or extends an incident and routes `Triage`; `Triage` sets
//! severity and priority and routes `Containment` unless the target is protected;
//! `Containment` records the action with its exact argv (dry run unless enforcing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{Duration, Utc};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{AgentEnv, AgentError, AgentLogic, Effects, Tools};
use crate::definitions::AgentDefinition;
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{
    Action, ActionKind, ActionStatus, ApprovalDecision, ContainmentRequest, Decision, Envelope, Finding, Incident,
    IncidentRef, IncidentStatus, Payload, PlaybookRun, PlaybookStepRef, ResponseMode, Rollback, RunStatus, StepRecord,
};
use crate::tools::response::ContainSpec;
use crate::tools::{ToolCall, ToolOutcome, ToolOutput};

pub struct IncidentResponse {
    def: Arc<AgentDefinition>,
    env: Arc<AgentEnv>,
    /// Shared with the pending writes: once a commit has dropped them, changing an
    /// incident does not copy it (`Arc::make_mut`).
    incidents: HashMap<Uuid, Arc<Incident>>,
    by_entity: HashMap<String, Uuid>,
    /// Ids of every finding attached to an incident (handling one twice is a no-op).
    finding_ids: std::collections::HashSet<Uuid>,
    /// The incident each attached finding is in (campaigns find their members' here).
    finding_incident: HashMap<Uuid, Uuid>,
    /// Incidents changed since the last `pending_writes`.
    dirty: std::collections::BTreeSet<Uuid>,
}

/// The stricter of two modes (observe < approve < enforce).
pub fn stricter(a: ResponseMode, b: ResponseMode) -> ResponseMode {
    let rank = |m| match m {
        ResponseMode::Observe => 0,
        ResponseMode::Approve => 1,
        ResponseMode::Enforce => 2,
    };
    if rank(a) <= rank(b) { a } else { b }
}

impl IncidentResponse {
    pub fn new(def: Arc<AgentDefinition>, env: Arc<AgentEnv>, incidents: Vec<Incident>) -> Self {
        let mut me = IncidentResponse {
            def,
            env,
            incidents: HashMap::new(),
            by_entity: HashMap::new(),
            finding_ids: Default::default(),
            finding_incident: HashMap::new(),
            dirty: Default::default(),
        };
        for i in incidents {
            if i.status != IncidentStatus::Closed && i.kind != "agent_failed" {
                for e in &i.entities {
                    me.by_entity.insert(e.clone(), i.id);
                }
            }
            me.finding_ids.extend(i.findings.iter().map(|f| f.id));
            me.finding_incident.extend(i.findings.iter().map(|f| (f.id, i.id)));
            me.incidents.insert(i.id, Arc::new(i));
        }
        me
    }

    fn name(&self) -> &str {
        &self.def.name
    }

    fn active_for(&self, entity: &str, f: &Finding) -> Option<Uuid> {
        let id = *self.by_entity.get(entity)?;
        let inc = self.incidents.get(&id)?;
        let active = Duration::seconds(self.def.response.incident_active_secs as i64);
        (inc.status != IncidentStatus::Closed && f.last_seen - inc.last_activity <= active).then_some(id)
    }

    /// The open incident holding the earliest of a campaign's findings.
    fn incident_of_related(&self, f: &Finding) -> Option<Uuid> {
        f.related.iter().find_map(|rid| {
            let id = self.finding_incident.get(rid)?;
            self.incidents.get(id).filter(|i| i.status != IncidentStatus::Closed).map(|i| i.id)
        })
    }

    /// Folds the other open incidents that hold findings of a campaign into the
    /// campaign's incident: their findings move over, their entities point to it, and
    /// they are closed with a note saying where they went.
    fn merge_related(&mut self, target: Uuid, f: &Finding, now: chrono::DateTime<Utc>) {
        let mut others: Vec<Uuid> = f
            .related
            .iter()
            .filter_map(|rid| self.finding_incident.get(rid).copied())
            .filter(|id| {
                *id != target
                    && self
                        .incidents
                        .get(id)
                        .is_some_and(|i| i.status != IncidentStatus::Closed && i.kind != "agent_failed")
            })
            .collect();
        others.sort();
        others.dedup();
        for oid in others {
            let other = Arc::make_mut(self.incidents.get_mut(&oid).expect("listed above"));
            let moved = std::mem::take(&mut other.findings);
            let entities = other.entities.clone();
            other.status = IncidentStatus::Closed;
            other.notes.push(format!("merged into campaign incident {target}"));
            other.updated_at = now;
            other.version += 1;
            self.dirty.insert(oid);
            let inc = Arc::make_mut(self.incidents.get_mut(&target).expect("target exists"));
            for m in moved {
                self.finding_incident.insert(m.id, target);
                if !inc.findings.iter().any(|x| x.id == m.id) {
                    inc.severity = inc.severity.max(m.severity);
                    inc.findings.push(m);
                }
            }
            for e in entities {
                if !inc.entities.contains(&e) && inc.entities.len() < 32 {
                    inc.entities.push(e.clone());
                }
                self.by_entity.insert(e, target);
            }
            inc.notes.push(format!("incident {oid} merged in: its findings belong to this campaign"));
            inc.findings.sort_by_key(|x| (x.first_seen, x.id));
        }
    }

    fn detection(&mut self, env: &Envelope, f: &Finding) -> Result<Effects, AgentError> {
        let mut fx = Effects::default();
        // What the detector says the finding is about: the attacker's address, an
        // attacked account, or the host whose logs showed it.
        let entity = f.entity();
        let now = Utc::now();
        if !self.finding_ids.insert(f.id) {
            return Ok(fx); // Already attached (idempotent by finding id).
        }
        // Stored incidents refer to their findings by id. A detector stores its findings
        // itself; one injected from outside (the admin API) is stored here.
        if self.env.routes.handles(&env.origin).is_empty() {
            fx.writes.push(Write::Finding(f.clone()));
        }
        // A campaign and its members share one incident.
        let campaign_key = f.campaign.map(|c| format!("campaign:{c}"));
        let existing = campaign_key
            .as_deref()
            .and_then(|k| self.active_for(k, f))
            .or_else(|| self.active_for(&entity, f))
            .or_else(|| self.incident_of_related(f));
        if existing.is_none() && f.severity < self.def.response.open_min_severity {
            self.env.metrics.inc(&self.env.metrics.findings_without_incident);
            return Ok(fx); // Stored, not an incident on its own.
        }
        let id = match existing {
            Some(id) => {
                let inc = Arc::make_mut(self.incidents.get_mut(&id).expect("indexed incident exists"));
                inc.findings.push(f.clone());
                inc.severity = inc.severity.max(f.severity);
                inc.last_activity = inc.last_activity.max(f.last_seen);
                inc.updated_at = now;
                inc.version += 1;
                for u in &f.users {
                    let e = format!("user:{u}");
                    if !inc.entities.contains(&e) && inc.entities.len() < 32 {
                        inc.entities.push(e);
                    }
                }
                id
            }
            None => {
                // Deterministic from the finding: re-handling cannot open a second one.
                let id = Uuid::new_v5(&f.id, b"incident");
                let mut entities = vec![entity.clone()];
                entities.extend(f.users.iter().take(16).map(|u| format!("user:{u}")));
                let inc = Incident {
                    last_activity: f.last_seen,
                    ..Incident::open(id, f.rule.clone(), f.title.clone(), f.severity, entities, vec![f.clone()], now)
                };
                self.by_entity.insert(entity.clone(), id);
                self.incidents.insert(id, Arc::new(inc));
                self.env.metrics.inc(&self.env.metrics.incidents);
                tracing::info!(agent = %self.def.name, incident = %id, %entity, "incident opened");
                id
            }
        };
        self.finding_incident.insert(f.id, id);
        if let Some(key) = campaign_key {
            self.by_entity.insert(key.clone(), id);
            let inc = Arc::make_mut(self.incidents.get_mut(&id).expect("indexed incident exists"));
            if !inc.entities.contains(&key) {
                inc.entities.push(key);
            }
            if !f.related.is_empty() {
                inc.title = f.title.clone();
                self.merge_related(id, f, now);
            }
        }
        let inc = &self.incidents[&id];
        self.dirty.insert(inc.id);
        fx.route.push(Envelope::caused_by(env, self.name(), Payload::Triage(IncidentRef { incident_id: id }), 0));
        Ok(fx)
    }

    async fn triage(&mut self, env: &Envelope, r: &IncidentRef, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let Some(inc) = self.incidents.get(&r.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let result =
            match tools.call(ToolCall::TriageIncident { incident: inc.clone(), assets: self.def.assets.clone() }).await
            {
                ToolOutcome::Succeeded(ToolOutput::Triage(t)) => t,
                other => {
                    return Err(AgentError::Fatal(format!("triage_incident {}", other.summary())));
                }
            };
        let name = self.def.name.clone();
        let contain_min = self.def.response.contain_min_severity;
        let protected = self.env.protected.clone();
        // With a model: it explains a new or changed triage to the operator and may
        // propose a better-fitting playbook (validated); the rules' decision stands.
        let changed = inc.triage.as_ref().is_none_or(|t| {
            (t.kind.as_str(), t.severity, t.priority) != (result.kind.as_str(), result.severity, result.priority)
        });
        let mut fx = Effects::default();
        let mut explanation = None;
        if changed && self.env.reasoner.is_some() {
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
            let snap = super::reasoning::Snapshot::default();
            explanation = super::reasoning::consult(&self.env, &self.def, tools, snap, prompt, &mut fx).await;
        }
        let inc = Arc::make_mut(self.incidents.get_mut(&r.incident_id).expect("checked above"));
        match explanation {
            Some(Ok(text)) => {
                inc.notes.push(format!("triage explained by the model: {}", crate::text::sanitize(&text, 2000)))
            }
            Some(Err(why)) => inc.notes.push(format!("language model unavailable ({why}): the rules' triage stands")),
            None => {}
        }
        inc.severity = result.severity;
        inc.priority = result.priority;
        inc.kind = result.kind.clone();
        inc.triage = Some(result.clone());
        if inc.status == IncidentStatus::Open {
            inc.status = IncidentStatus::Triaged;
        }
        inc.updated_at = Utc::now();
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "triage_incident",
            serde_json::json!({ "incident": inc.id, "severity": result.severity, "priority": result.priority, "reasons": result.reasons }),
        ));
        // A playbook for this type of incident takes over; without one, propose a block
        // of the attacker's address (unless it is protected or already blocked).
        let matching = self.def.tools.contains(&crate::definitions::ToolName::ExecutePlaybook).then(|| {
            self.def.playbooks.iter().find(|p| {
                p.trigger.types.contains(&inc.kind) && p.trigger.min_severity.is_none_or(|m| inc.severity >= m)
            })
        });
        // The incident turned out to be something else (a brute force that succeeded is
        // a compromise): the current run is superseded by the new type's playbook.
        if let (Some(Some(pb)), Some(run)) = (matching, inc.playbook.as_ref())
            && run.playbook != pb.name
        {
            let mut old = inc.playbook.take().expect("checked");
            if matches!(old.status, RunStatus::Running | RunStatus::Waiting) {
                old.status = RunStatus::Aborted;
                old.gate = None;
                inc.notes.push(format!("playbook `{}` superseded by `{}` (now {})", old.playbook, pb.name, inc.kind));
            }
            inc.earlier_playbooks.push(old);
        }
        if inc.playbook.is_none()
            && let Some(Some(pb)) = matching
        {
            inc.playbook = Some(PlaybookRun {
                playbook: pb.name.clone(),
                status: RunStatus::Running,
                next: 0,
                steps: Vec::new(),
                gate: None,
                gate_deadline: None,
                started_at: Utc::now(),
            });
            inc.notes.push(format!("playbook `{}` started", pb.name));
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::ToolCall,
                "execute_playbook",
                serde_json::json!({ "incident": inc.id, "playbook": pb.name, "started": true }),
            ));
            fx.route.push(Envelope::caused_by(
                env,
                &name,
                Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: 0 }),
                1,
            ));
            self.dirty.insert(inc.id);
            return Ok(fx);
        }
        if inc.playbook.is_some() {
            self.dirty.insert(inc.id);
            return Ok(fx);
        }
        let target = inc.entities.iter().find_map(|e| e.parse::<IpAddr>().ok());
        if let Some(ip) = target
            && inc.severity >= contain_min
        {
            let already = inc.actions.iter().any(|a| a.kind == ActionKind::BlockIp && a.target == ip.to_string());
            if protected.contains(ip) {
                let note = format!("{ip} is protected: no containment proposed");
                if !inc.notes.contains(&note) {
                    inc.notes.push(note);
                }
            } else if !already {
                fx.route.push(Envelope::caused_by(
                    env,
                    &name,
                    Payload::Containment(ContainmentRequest {
                        incident_id: inc.id,
                        action: ActionKind::BlockIp,
                        target: ip.to_string(),
                        reason: format!("{} ({})", inc.title, result.reasons.join("; ")),
                        requested_by: None,
                    }),
                    0,
                ));
            }
        }
        self.dirty.insert(inc.id);
        Ok(fx)
    }

    /// A containment request refused: noted on the incident and in the ledger.
    fn refuse(&mut self, incident_id: Uuid, note: String, detail: serde_json::Value) -> Effects {
        let mut fx = Effects::default();
        let Some(inc) = self.incidents.get_mut(&incident_id).map(Arc::make_mut) else { return fx };
        inc.notes.push(note);
        inc.version += 1;
        fx.audit.push(AuditEntry::new(&self.def.name, AuditKind::Action, inc.id, detail));
        self.dirty.insert(inc.id);
        fx
    }

    async fn containment(&mut self, req: &ContainmentRequest, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let Some(inc) = self.incidents.get(&req.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", req.incident_id)));
        };
        let mut fx = Effects::default();
        // Addresses are normalised here (and refused when protected, whatever asked);
        // every other target is validated by contain_threat itself.
        let ip: Option<IpAddr> = req.target.trim().parse().ok();
        let from_model = req.requested_by.as_deref() == Some("model");
        let refusal = if from_model && matches!(req.action, ActionKind::UnblockIp | ActionKind::EnableAccount) {
            Some("undoing a containment is an operator's decision, never a model's".to_string())
        } else if matches!(req.action, ActionKind::BlockIp | ActionKind::UnblockIp) && ip.is_none() {
            Some("the target is not an IP address".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            let what = format!("{} {}", req.action, crate::text::sanitize(&req.target, 64));
            if !from_model {
                return Err(AgentError::Rejected(format!("containment `{what}` refused: {why}")));
            }
            let note = format!("containment request from the language model `{what}` refused: {why}");
            let detail = serde_json::json!({ "refused": what, "requested_by": "model", "reason": why });
            return Ok(self.refuse(req.incident_id, note, detail));
        }
        let target = ip.map(|i| i.to_string()).unwrap_or_else(|| req.target.trim().to_string());
        if inc.actions.iter().any(|a| a.kind == req.action && a.target == target) {
            return Ok(fx); // Already requested.
        }
        if let Some(ip) = ip
            && req.action == ActionKind::BlockIp
            && self.env.protected.contains(ip)
        {
            let note = format!("containment of {target} refused: the address is protected");
            return Ok(self.refuse(
                req.incident_id,
                note,
                serde_json::json!({ "refused": target, "reason": "protected" }),
            ));
        }
        let mode = self.mode_for(req.action);
        let ttl = self.def.response.block_ttl_secs;
        let spec = ContainSpec { kind: req.action, target: target.clone(), ttl_secs: ttl, mode };
        let outcome = tools.call(ToolCall::ContainThreat(spec.clone())).await;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "contain_threat",
            serde_json::json!({ "incident": inc.id, "spec": spec, "outcome": outcome.summary() }),
        ));
        let now = Utc::now();
        let mut steps = Vec::new();
        let mut undo_target = None;
        let (status, argv, output) = match outcome {
            ToolOutcome::DryRun { argv, steps: s } if mode == ResponseMode::Approve => {
                steps = s;
                (ActionStatus::PendingApproval, argv, None)
            }
            ToolOutcome::DryRun { argv, steps: s } => {
                steps = s;
                (ActionStatus::DryRun, argv, None)
            }
            ToolOutcome::Succeeded(ToolOutput::Executed { argv, output, undo }) => {
                undo_target = undo;
                (ActionStatus::Executed, argv, Some(output))
            }
            ToolOutcome::Denied(reason) => {
                let inc = Arc::make_mut(self.incidents.get_mut(&req.incident_id).expect("checked above"));
                let target = crate::text::sanitize(&target, 80);
                inc.notes.push(format!("{} of {target} denied: {reason}", req.action));
                fx.audit.push(AuditEntry::new(
                    &name,
                    AuditKind::Action,
                    inc.id,
                    serde_json::json!({ "refused": target, "action": req.action, "reason": reason }),
                ));
                inc.version += 1;
                self.dirty.insert(inc.id);
                return Ok(fx);
            }
            ToolOutcome::Failed(e) => (ActionStatus::Failed, Vec::new(), Some(e)),
            ToolOutcome::TimedOut => (ActionStatus::Failed, Vec::new(), Some("timed out".into())),
            ToolOutcome::Succeeded(_) => {
                return Err(AgentError::Fatal("contain_threat returned an unexpected output".into()));
            }
        };
        let action = Action {
            id: Uuid::new_v5(&req.incident_id, format!("{}/{}", req.action, target).as_bytes()),
            kind: req.action,
            target: crate::text::sanitize(&target, 256),
            mode,
            status,
            argv,
            reason: crate::text::sanitize(&req.reason, 1024),
            created_at: now,
            expires_at: self.expiry(req.action, status, now),
            output,
            steps,
            decision: None,
            permanent: self.def.response.permanent.contains(&req.action) || req.action.rollback().is_none(),
            rollback: None,
            undo_target,
        };
        let inc = Arc::make_mut(self.incidents.get_mut(&req.incident_id).expect("checked above"));
        if status == ActionStatus::Executed {
            inc.status = IncidentStatus::Contained;
            fx.flush = true;
        }
        inc.actions.push(action.clone());
        inc.updated_at = now;
        inc.version += 1;
        self.env.metrics.inc(&self.env.metrics.actions);
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            action.id,
            serde_json::to_value(&action).unwrap_or_default(),
        ));
        fx.writes.push(Write::Action { incident_id: inc.id, action });
        self.dirty.insert(inc.id);
        Ok(fx)
    }
}

impl IncidentResponse {
    /// The effective mode of an action: the stricter of the configured mode, the
    /// agent's autonomy and the action's own.
    fn mode_for(&self, kind: ActionKind) -> ResponseMode {
        let mut mode = stricter(self.env.response_mode, self.def.autonomy);
        if let Some(m) = self.def.response.autonomy.get(&kind) {
            mode = stricter(mode, *m);
        }
        mode
    }

    /// When an action lapses (waiting for approval) or is rolled back (executed).
    fn expiry(
        &self,
        kind: ActionKind,
        status: ActionStatus,
        now: chrono::DateTime<Utc>,
    ) -> Option<chrono::DateTime<Utc>> {
        let r = &self.def.response;
        match status {
            ActionStatus::PendingApproval => Some(now + Duration::seconds(r.approval_timeout_secs as i64)),
            _ if kind.rollback().is_none() || r.permanent.contains(&kind) => None,
            _ => Some(now + Duration::seconds(r.block_ttl_secs as i64)),
        }
    }

    /// Runs one step of an incident's playbook (and routes the next). A step that is
    /// not the run's next one (a redelivery of a committed step) does nothing.
    async fn playbook_step(
        &mut self,
        env: &Envelope,
        r: &PlaybookStepRef,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        use crate::tools::response::playbook::{Condition, OnFailure, Selector, StepKind};
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let Some(inc) = self.incidents.get(&r.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let Some(run) = inc.playbook.as_ref() else { return Ok(fx) };
        if run.status != RunStatus::Running || run.next != r.step {
            return Ok(fx); // Done before (idempotent), or waiting.
        }
        let Some(pb) = self.def.playbooks.iter().find(|p| p.name == run.playbook).cloned() else {
            let inc = Arc::make_mut(self.incidents.get_mut(&r.incident_id).expect("checked"));
            let run = inc.playbook.as_mut().expect("checked");
            run.status = RunStatus::Aborted;
            inc.notes.push(format!("playbook `{}` is no longer defined: run aborted", run.playbook));
            self.dirty.insert(r.incident_id);
            return Ok(fx);
        };
        let now = Utc::now();
        let Some(step) = pb.steps.get(r.step) else {
            let inc = Arc::make_mut(self.incidents.get_mut(&r.incident_id).expect("checked"));
            inc.playbook.as_mut().expect("checked").status = RunStatus::Done;
            self.dirty.insert(r.incident_id);
            return Ok(fx);
        };
        let key = Uuid::new_v5(&r.incident_id, format!("playbook/{}/{}", pb.name, step.id).as_bytes());
        let asset_crit = inc
            .triage
            .as_ref()
            .and_then(|t| t.asset.as_ref())
            .and_then(|a| self.def.assets.assets.iter().find(|x| &x.name == a))
            .map(|a| a.criticality)
            .unwrap_or(self.def.assets.default.criticality);
        let skip = step
            .when
            .as_deref()
            .is_some_and(|w| Condition::parse(w).map(|c| !c.holds(inc, asset_crit)).unwrap_or(true));
        // Evidence is collected by the tool (asynchronously) before the step is recorded.
        let mut collected = None;
        if !skip
            && step.kind == StepKind::CollectEvidence
            && self.def.tools.contains(&crate::definitions::ToolName::CollectEvidence)
        {
            let call = ToolCall::CollectEvidence {
                incident: inc.clone(),
                files: step.files.iter().map(std::path::PathBuf::from).collect(),
                snapshot: step.snapshot.unwrap_or(true),
            };
            collected = Some(tools.call(call).await);
        }
        let Some(inc) = self.incidents.get(&r.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", r.incident_id)));
        };
        let mut evidence_items = Vec::new();
        // (outcome, detail, advance, failed)
        let (outcome, detail, advance, failed): (&str, String, bool, bool) = if skip {
            ("skipped", format!("condition `{}` does not hold", step.when.clone().unwrap_or_default()), true, false)
        } else {
            match step.kind {
                StepKind::Contain => {
                    let target = match step.target {
                        Some(Selector::AttackerIp) => {
                            inc.entities.iter().find_map(|e| e.parse::<IpAddr>().ok()).map(|ip| ip.to_string())
                        }
                        Some(Selector::CompromisedAccount) => inc
                            .findings
                            .iter()
                            .filter(|f| {
                                f.rule.contains("success_after_failures")
                                    || f.techniques.iter().any(|t| t.starts_with("T1078"))
                            })
                            .find_map(|f| f.users.first().cloned()),
                        Some(Selector::LocalHost) => Some("local".to_string()),
                        None => None,
                    };
                    match (step.action, target) {
                        (Some(action), Some(target)) => {
                            let mut e = Envelope::caused_by(
                                env,
                                &name,
                                Payload::Containment(ContainmentRequest {
                                    incident_id: inc.id,
                                    action,
                                    target: target.clone(),
                                    reason: format!("playbook {} step {}", pb.name, step.id),
                                    requested_by: None,
                                }),
                                1,
                            );
                            e.id = key;
                            fx.route.push(e);
                            ("requested", format!("{action} {}", crate::text::sanitize(&target, 128)), true, false)
                        }
                        _ => ("failed", "no target for this step in the incident".into(), true, true),
                    }
                }
                StepKind::Approval => ("waiting", format!("approve with `warden approve {key}`"), false, false),
                StepKind::Notify => {
                    let msg = step
                        .message
                        .clone()
                        .unwrap_or_default()
                        .replace("{title}", &inc.title)
                        .replace("{type}", &inc.kind)
                        .replace("{severity}", &inc.severity.to_string())
                        .replace("{priority}", &format!("{:?}", inc.priority));
                    ("done", crate::text::sanitize(&msg, 1024), true, false)
                }
                StepKind::Handoff => {
                    let to = step.to.clone().unwrap_or_default();
                    let mut e = Envelope::caused_by(
                        env,
                        &name,
                        Payload::Handoff(crate::messages::Handoff {
                            from: name.clone(),
                            to: to.clone(),
                            incident_id: Some(inc.id),
                            context: serde_json::json!({ "playbook": pb.name, "step": step.id, "type": inc.kind,
                                "severity": inc.severity, "title": inc.title, "entities": inc.entities,
                                "hosts": inc.findings.iter().map(|f| f.host.as_str()).filter(|h| !h.is_empty())
                                    .collect::<std::collections::BTreeSet<_>>(),
                                "cves": inc.findings.iter().flat_map(|f| f.cves.iter().map(String::as_str))
                                    .collect::<std::collections::BTreeSet<_>>() }),
                        }),
                        1,
                    );
                    e.id = key;
                    fx.route.push(e);
                    ("done", format!("handed over to {to}"), true, false)
                }
                StepKind::Report if self.def.tools.contains(&crate::definitions::ToolName::GenerateReport) => {
                    use crate::tools::response::report::{self, Audience, Format};
                    use sha2::Digest;
                    let md = report::render(&report::build(inc, Audience::Technical), Format::Markdown);
                    let digest = format!("{:x}", sha2::Sha256::digest(md.as_bytes()));
                    (
                        "done",
                        format!(
                            "technical report generated ({} bytes, sha256 {digest}); `warden report {}` renders it",
                            md.len(),
                            inc.id
                        ),
                        true,
                        false,
                    )
                }
                StepKind::CollectEvidence if collected.is_some() => match collected.take() {
                    Some(ToolOutcome::Succeeded(ToolOutput::Evidence { items, problems })) => {
                        let detail = format!(
                            "{} item(s) stored{}",
                            items.len(),
                            if problems.is_empty() {
                                String::new()
                            } else {
                                format!("; not collected: {}", problems.join("; "))
                            }
                        );
                        let failed = items.is_empty();
                        evidence_items = items;
                        (if failed { "failed" } else { "done" }, detail, true, failed)
                    }
                    other => ("failed", other.map(|o| o.summary()).unwrap_or_default(), true, true),
                },
                StepKind::CollectEvidence | StepKind::Report => (
                    "unavailable",
                    format!("{:?} is not available in this build of warden", step.kind).to_lowercase(),
                    true,
                    true,
                ),
            }
        };
        let abort = failed && step.on_failure == OnFailure::Abort;
        let inc = Arc::make_mut(self.incidents.get_mut(&r.incident_id).expect("checked"));
        for item in evidence_items {
            // Custody: collected, by whom, when, with the content's hash.
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::Custody,
                &item.sha256,
                serde_json::json!({ "event": "collected", "incident": inc.id, "item": item }),
            ));
            if !inc.evidence.iter().any(|e| e.sha256 == item.sha256) {
                inc.evidence.push(item);
            }
        }
        let run = inc.playbook.as_mut().expect("checked");
        run.steps.push(StepRecord {
            id: step.id.clone(),
            key,
            outcome: outcome.into(),
            detail: detail.clone(),
            at: now,
        });
        if abort {
            run.status = RunStatus::Aborted;
        } else if !advance {
            run.status = RunStatus::Waiting;
            run.gate = Some(key);
            run.gate_deadline = Some(now + Duration::seconds(step.timeout_secs.unwrap_or(3600) as i64));
            inc.notes.push(format!("playbook `{}` waits for approval of step `{}`: {detail}", pb.name, step.id));
        } else {
            run.next = r.step + 1;
            if run.next < pb.steps.len() {
                fx.route.push(Envelope::caused_by(
                    env,
                    &name,
                    Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: run.next }),
                    0,
                ));
            } else {
                run.status = RunStatus::Done;
            }
        }
        let run_status = run.status;
        if (step.kind == StepKind::Notify && !skip) || (!advance && !abort) {
            if step.kind == StepKind::Notify {
                inc.notes.push(format!("notification: {detail}"));
            }
            // Queued, never awaited: a slow or dead webhook does not hold the run up.
            if let Some(n) = &self.env.notifier {
                let text = if step.kind == StepKind::Notify {
                    detail.clone()
                } else {
                    format!("playbook {} waits for approval of step {}: {detail}", pb.name, step.id)
                };
                fx.writes.push(n.queue(&crate::outbox::Notification::about(inc, text, now)));
            }
        }
        inc.updated_at = now;
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "execute_playbook",
            serde_json::json!({ "incident": inc.id, "playbook": pb.name, "step": step.id, "key": key,
                "outcome": outcome, "detail": detail, "run": run_status }),
        ));
        self.dirty.insert(r.incident_id);
        Ok(fx)
    }

    /// A handoff back to this agent: vulnerability management scheduled remediations of
    /// an incident's root cause, or verified them. Verified throughout → resolved;
    /// a failed verification → the incident stays (or is again) open, one priority
    /// level up, and people are told.
    fn handoff(&mut self, h: &crate::messages::Handoff) -> Effects {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let Some(inc) = h.incident_id.and_then(|id| self.incidents.get_mut(&id)).map(Arc::make_mut) else {
            return fx;
        };
        let now = Utc::now();
        let entries = |v: Option<&serde_json::Value>| -> Vec<crate::messages::RemediationEntry> {
            v.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
        };
        let scheduled = entries(h.context.get("scheduled"));
        let verified = entries(h.context.get("verified"));
        if scheduled.is_empty() && verified.is_empty() {
            inc.notes.push(format!("handoff from {}: {}", h.from, crate::text::sanitize(&h.context.to_string(), 1024)));
        }
        for e in scheduled.into_iter().chain(verified.iter().cloned()) {
            match inc.remediation.iter_mut().find(|r| r.plan == e.plan) {
                Some(r) => *r = e,
                None => inc.remediation.push(e),
            }
        }
        if let Some(note) = h.context.get("note").and_then(|n| n.as_str()) {
            inc.notes.push(format!("{}: {}", h.from, crate::text::sanitize(note, 1024)));
        }
        let mut notify = None;
        if !verified.is_empty() {
            use crate::messages::RemediationStatus as R;
            let failed: Vec<&crate::messages::RemediationEntry> =
                inc.remediation.iter().filter(|r| r.status == R::Failed).collect();
            if !failed.is_empty() {
                let before = inc.priority;
                inc.priority = match inc.priority {
                    crate::messages::Priority::P4 => crate::messages::Priority::P3,
                    crate::messages::Priority::P3 => crate::messages::Priority::P2,
                    _ => crate::messages::Priority::P1,
                };
                let reopened = matches!(inc.status, IncidentStatus::Closed | IncidentStatus::Resolved);
                if reopened {
                    inc.status = IncidentStatus::Open;
                }
                let what =
                    failed.iter().map(|r| format!("{} {}", r.package, r.installed)).collect::<Vec<_>>().join(", ");
                let text = format!(
                    "remediation failure: patch verification failed for {what}; priority {before:?} → {:?}{}",
                    inc.priority,
                    if reopened { ", incident reopened" } else { ", incident stays open" }
                );
                inc.notes.push(text.clone());
                notify = Some(text);
            } else if inc.remediation.iter().all(|r| r.status == R::Verified) {
                inc.status = IncidentStatus::Resolved;
                let text = format!(
                    "resolved: root cause remediated and verified ({})",
                    inc.remediation
                        .iter()
                        .map(|r| format!("{} → {}", r.package, r.target.as_deref().unwrap_or("-")))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                inc.notes.push(text.clone());
                notify = Some(text);
            }
        }
        inc.updated_at = now;
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Handoff,
            inc.id,
            serde_json::json!({ "from": h.from, "status": inc.status, "priority": inc.priority,
                "remediation": inc.remediation.iter().map(|r| (&r.package, r.status)).collect::<Vec<_>>() }),
        ));
        if let (Some(text), Some(n)) = (notify, &self.env.notifier) {
            fx.writes.push(n.queue(&crate::outbox::Notification::about(inc, text, now)));
        }
        self.dirty.insert(inc.id);
        fx
    }

    /// An operator's answer to a playbook waiting for approval.
    fn playbook_gate(&mut self, d: &ApprovalDecision) -> Option<Effects> {
        let incident_id = self
            .incidents
            .values()
            .find(|i| {
                i.playbook.as_ref().is_some_and(|r| r.gate == Some(d.action_id) && r.status == RunStatus::Waiting)
            })?
            .id;
        Some(self.resume_gate(incident_id, if d.approve { "approved" } else { "rejected" }, &d.by, d.approve))
    }

    /// Ends a run's wait: approved (or timed out with `continue`), the run goes on.
    fn resume_gate(&mut self, incident_id: Uuid, outcome: &str, by: &str, go_on: bool) -> Effects {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let now = Utc::now();
        let len = self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.playbook.as_ref())
            .and_then(|r| self.def.playbooks.iter().find(|p| p.name == r.playbook))
            .map(|p| p.steps.len())
            .unwrap_or(0);
        let inc = Arc::make_mut(self.incidents.get_mut(&incident_id).expect("found by the caller"));
        let run = inc.playbook.as_mut().expect("found by the caller");
        let key = run.gate.take().unwrap_or_default();
        run.gate_deadline = None;
        let step_id = run.steps.last().map(|s| s.id.clone()).unwrap_or_default();
        let by = crate::text::sanitize(by, 64);
        run.steps.push(StepRecord {
            id: step_id.clone(),
            key,
            outcome: outcome.into(),
            detail: format!("by {by}"),
            at: now,
        });
        if go_on {
            run.status = RunStatus::Running;
            run.next += 1;
            if run.next < len {
                let mut e =
                    Envelope::new(name.clone(), Payload::PlaybookStep(PlaybookStepRef { incident_id, step: run.next }));
                e.id = Uuid::new_v5(&key, b"next");
                fx.route.push(e);
            } else {
                run.status = RunStatus::Done;
            }
        } else {
            run.status = RunStatus::Aborted;
        }
        inc.notes.push(format!("playbook `{}` step `{step_id}` {outcome} by {by}", run.playbook));
        inc.updated_at = now;
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Approval,
            key,
            serde_json::json!({ "incident": incident_id, "playbook": run.playbook, "step": step_id, "outcome": outcome, "by": by, "at": now }),
        ));
        self.dirty.insert(incident_id);
        fx
    }

    /// An operator closes an incident: later findings open a new one, a waiting
    /// playbook is aborted, and the next tick rolls its actions back.
    fn close(&mut self, c: &crate::messages::CloseRequest) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let Some(inc) = self.incidents.get_mut(&c.incident_id).map(Arc::make_mut) else {
            return Err(AgentError::Rejected(format!("no incident {}", c.incident_id)));
        };
        let mut fx = Effects::default();
        if inc.status == IncidentStatus::Closed {
            return Ok(fx);
        }
        let by = crate::text::sanitize(&c.by, 64);
        let now = Utc::now();
        inc.status = IncidentStatus::Closed;
        if let Some(run) = inc.playbook.as_mut()
            && matches!(run.status, RunStatus::Running | RunStatus::Waiting)
        {
            run.status = RunStatus::Aborted;
            run.gate = None;
        }
        inc.notes.push(format!("closed by {by}: {}", crate::text::sanitize(&c.reason, 512)));
        inc.updated_at = now;
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            inc.id,
            serde_json::json!({ "closed": true, "by": by, "at": now, "reason": c.reason }),
        ));
        for e in inc.entities.clone() {
            if self.by_entity.get(&e) == Some(&c.incident_id) {
                self.by_entity.remove(&e);
            }
        }
        self.dirty.insert(c.incident_id);
        Ok(fx)
    }

    fn find_action(&self, action_id: Uuid) -> Option<(Uuid, usize)> {
        self.incidents.values().find_map(|i| i.actions.iter().position(|a| a.id == action_id).map(|p| (i.id, p)))
    }

    /// An operator's answer to an action waiting for approval: approved, it runs now
    /// (through the same checks as any containment); rejected, it is recorded as such.
    async fn approval(&mut self, d: &ApprovalDecision, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        if let Some(fx) = self.playbook_gate(d) {
            return Ok(fx);
        }
        let Some((incident_id, pos)) = self.find_action(d.action_id) else {
            return Err(AgentError::Rejected(format!("no action {} waiting for a decision", d.action_id)));
        };
        let action = self.incidents[&incident_id].actions[pos].clone();
        let by = crate::text::sanitize(&d.by, 64);
        let comment = crate::text::sanitize(&d.comment, 512);
        let now = Utc::now();
        let mut fx = Effects::default();
        if action.status != ActionStatus::PendingApproval {
            return Err(AgentError::Rejected(format!(
                "action {} is {:?}, not waiting for approval",
                action.id, action.status
            )));
        }
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Approval,
            action.id,
            serde_json::json!({ "incident": incident_id, "approved": d.approve, "by": by, "at": now, "comment": comment,
                "kind": action.kind, "target": action.target }),
        ));
        let mut updated = action.clone();
        updated.decision = Some(Decision { approved: d.approve, by, at: now, comment });
        if d.approve {
            let spec = ContainSpec {
                kind: action.kind,
                target: action.target.clone(),
                ttl_secs: self.def.response.block_ttl_secs,
                mode: ResponseMode::Enforce,
            };
            let outcome = tools.call(ToolCall::ContainThreat(spec.clone())).await;
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::ToolCall,
                "contain_threat",
                serde_json::json!({ "incident": incident_id, "spec": spec, "outcome": outcome.summary(), "approved": true }),
            ));
            match outcome {
                ToolOutcome::Succeeded(ToolOutput::Executed { argv, output, undo }) => {
                    updated.undo_target = undo;
                    updated.status = ActionStatus::Executed;
                    updated.argv = argv;
                    updated.output = Some(output);
                    updated.expires_at = self.expiry(action.kind, ActionStatus::Executed, now);
                    fx.flush = true;
                }
                other => {
                    updated.status = ActionStatus::Failed;
                    updated.output = Some(other.summary());
                }
            }
        } else {
            updated.status = ActionStatus::Rejected;
            updated.expires_at = None;
        }
        let inc = Arc::make_mut(self.incidents.get_mut(&incident_id).expect("found above"));
        if updated.status == ActionStatus::Executed {
            inc.status = IncidentStatus::Contained;
        }
        inc.actions[pos] = updated.clone();
        inc.updated_at = now;
        inc.version += 1;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            updated.id,
            serde_json::to_value(&updated).unwrap_or_default(),
        ));
        fx.writes.push(Write::Action { incident_id, action: updated });
        self.dirty.insert(incident_id);
        Ok(fx)
    }

    /// Time passing: executed actions whose time is up are rolled back (unless
    /// permanent), actions nobody approved in time lapse.
    async fn tick(&mut self, now: chrono::DateTime<Utc>, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let mut due: Vec<(Uuid, usize)> = Vec::new();
        for inc in self.incidents.values() {
            for (pos, a) in inc.actions.iter().enumerate() {
                let expired = a.expires_at.is_some_and(|e| e <= now);
                let closed = inc.status == IncidentStatus::Closed;
                match a.status {
                    ActionStatus::PendingApproval if expired || closed => due.push((inc.id, pos)),
                    ActionStatus::Executed if !a.permanent && a.rollback.is_none() && (expired || closed) => {
                        due.push((inc.id, pos))
                    }
                    _ => {}
                }
            }
        }
        // Playbooks waiting past their approval timeout: the step's on_failure decides.
        let gates: Vec<(Uuid, bool)> = self
            .incidents
            .values()
            .filter_map(|i| {
                let r = i.playbook.as_ref()?;
                (r.status == RunStatus::Waiting && r.gate_deadline.is_some_and(|d| d <= now)).then(|| {
                    let go_on = self
                        .def
                        .playbooks
                        .iter()
                        .find(|p| p.name == r.playbook)
                        .and_then(|p| p.steps.get(r.next))
                        .is_none_or(|s| s.on_failure == crate::tools::response::playbook::OnFailure::Continue);
                    (i.id, go_on)
                })
            })
            .collect();
        for (incident_id, go_on) in gates {
            let more = self.resume_gate(incident_id, "timed_out", "nobody", go_on);
            fx.writes.extend(more.writes);
            fx.audit.extend(more.audit);
            fx.route.extend(more.route);
        }
        for (incident_id, pos) in due {
            let inc = &self.incidents[&incident_id];
            let mut a = inc.actions[pos].clone();
            let why = if inc.status == IncidentStatus::Closed { "incident closed" } else { "expired" };
            if a.status == ActionStatus::PendingApproval {
                a.status = ActionStatus::Expired;
                a.output = Some(format!("nobody approved it before {}", a.expires_at.unwrap_or(now)));
            } else if let Some(undo) = a.kind.rollback() {
                let spec = ContainSpec {
                    kind: undo,
                    target: a.undo_target.clone().unwrap_or_else(|| a.target.clone()),
                    ttl_secs: 0,
                    mode: ResponseMode::Enforce,
                };
                let outcome = tools.call(ToolCall::ContainThreat(spec)).await;
                let (ok, argv, output) = match outcome {
                    ToolOutcome::Succeeded(ToolOutput::Executed { argv, output, .. }) => (true, argv, output),
                    other => (false, Vec::new(), other.summary()),
                };
                a.rollback = Some(Rollback { at: now, why: why.into(), argv, ok, output });
                if ok {
                    a.status = ActionStatus::RolledBack;
                }
                fx.flush = true;
                fx.audit.push(AuditEntry::new(
                    &name,
                    AuditKind::Rollback,
                    a.id,
                    serde_json::json!({ "incident": incident_id, "kind": a.kind, "undo": undo, "target": a.target, "why": why, "ok": ok }),
                ));
            }
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::Action,
                a.id,
                serde_json::to_value(&a).unwrap_or_default(),
            ));
            let inc = Arc::make_mut(self.incidents.get_mut(&incident_id).expect("listed above"));
            inc.actions[pos] = a.clone();
            inc.updated_at = now;
            inc.version += 1;
            fx.writes.push(Write::Action { incident_id, action: a });
            self.dirty.insert(incident_id);
        }
        Ok(fx)
    }
}

impl AgentLogic for IncidentResponse {
    fn on_tick<'a>(
        &'a mut self,
        now: chrono::DateTime<Utc>,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(self.tick(now, tools))
    }

    fn pending_writes(&mut self) -> Vec<Write> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().filter_map(|id| self.incidents.get(&id).map(|i| Write::Incident(i.clone()))).collect()
    }

    fn on_envelope<'a>(
        &'a mut self,
        env: &'a Envelope,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            match &env.payload {
                Payload::Detection(f) => self.detection(env, f),
                Payload::Triage(r) => self.triage(env, r, tools).await,
                Payload::Containment(c) => self.containment(c, tools).await,
                Payload::Handoff(h) => Ok(self.handoff(h)),
                Payload::Instruction(i) => {
                    let snap = super::reasoning::Snapshot::default();
                    let (fx, answer) = super::reasoning::instruction(&self.env, &self.def, env, i, tools, snap).await;
                    if let (Some(id), Ok(text)) = (i.incident_id, &answer)
                        && let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut)
                    {
                        inc.notes.push(format!("model ({}): {}", self.def.name, crate::text::sanitize(text, 2000)));
                        inc.version += 1;
                        self.dirty.insert(id);
                    }
                    Ok(fx)
                }
                Payload::Approval(d) => self.approval(d, tools).await,
                Payload::PlaybookStep(r) => self.playbook_step(env, r, tools).await,
                Payload::Close(c) => self.close(c),
                Payload::PatchVerification(_) | Payload::Scan(_) => {
                    Err(AgentError::Rejected(format!("incident-response does not handle `{}`", env.payload.kind())))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! Envelopes in, effects out: the logic with a mocked toolbelt (mockall) and a real
    //! knowledge base on a temporary sled database.

    use super::*;
    use crate::agents::MockTools;
    use crate::definitions::{ActorsDir, load};
    use crate::kb::{Kb, KnowledgeBase};
    use crate::messages::{Priority, Severity};
    use crate::routing::RoutingTable;
    use crate::tools::response::{Protected, TriageResult};
    use actix::Actor;

    fn setup(mode: ResponseMode) -> IncidentResponse {
        setup_with(mode, None)
    }

    fn setup_with(mode: ResponseMode, autonomy: Option<ResponseMode>) -> IncidentResponse {
        let defs = load(&ActorsDir::Disk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("actors"))).unwrap();
        let store = crate::store::Store::temporary(1 << 20).unwrap();
        let kb = Kb { addr: KnowledgeBase::new(store).unwrap().start() };
        let env = Arc::new(AgentEnv {
            kb,
            routes: Arc::new(RoutingTable::new(&defs).unwrap()),
            protected: Arc::new(Protected::new(&["10.0.0.0/8".parse().unwrap()])),
            policy: Default::default(),
            response_mode: mode,
            metrics: Default::default(),
            durable: true,
            intel: Default::default(),
            notifier: None,
            data_dir: std::env::temp_dir(),
            reasoner: None,
        });
        let mut def = defs.agents["incident-response"].clone();
        if let Some(a) = autonomy {
            def.autonomy = a;
        }
        IncidentResponse::new(Arc::new(def), env, Vec::new())
    }

    fn finding(ip: &str, secs: i64) -> Finding {
        let t = chrono::DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        Finding {
            id: Finding::derive_id("ssh_brute_force", ip, t),
            rule: "ssh_brute_force".into(),
            title: format!("brute force from {ip}"),
            severity: Severity::Medium,
            confidence: 0.9,
            src_ip: Some(ip.into()),
            users: vec!["root".into()],
            host: "h".into(),
            first_seen: t,
            last_seen: t,
            event_count: 5,
            techniques: vec![],
            evidence: vec![],
            ..Default::default()
        }
    }

    /// The incident an effect writes.
    fn written(fx: &Effects) -> &Incident {
        fx.writes
            .iter()
            .find_map(|w| if let Write::Incident(i) = w { Some(i) } else { None })
            .expect("an incident write")
    }

    /// The action an effect writes.
    fn action_written(fx: &Effects) -> Action {
        fx.writes
            .iter()
            .find_map(|w| if let Write::Action { action, .. } = w { Some(action.clone()) } else { None })
            .expect("an action write")
    }

    /// Handles one envelope and collects the incident writes it left pending.
    async fn handle(ir: &mut IncidentResponse, env: &Envelope, tools: &MockTools) -> Effects {
        let mut fx = ir.on_envelope(env, tools).await.unwrap();
        fx.writes.extend(ir.pending_writes());
        fx
    }

    fn triage_tools() -> MockTools {
        let mut tools = MockTools::new();
        tools.expect_call().returning(|call| {
            let out = match call {
                ToolCall::TriageIncident { .. } => ToolOutcome::Succeeded(ToolOutput::Triage(TriageResult {
                    kind: "ssh_brute_force".into(),
                    severity: Severity::High,
                    priority: Priority::P2,
                    deadline: None,
                    asset: None,
                    reasons: vec!["test".into()],
                })),
                ToolCall::ContainThreat(spec) => {
                    ToolOutcome::DryRun { argv: vec!["nft".into(), spec.target.clone()], steps: vec![] }
                }
                _ => ToolOutcome::Failed("not here".into()),
            };
            Box::pin(async move { out })
        });
        tools
    }

    /// Incident response with a mocked model (within the real budget/timeout guard).
    fn setup_llm(model: crate::llm::MockReasoner) -> IncidentResponse {
        let mut ir = setup(ResponseMode::Enforce);
        let cfg = crate::agents::test_support::llm_config();
        let mut env = (*ir.env).clone_for_test();
        env.reasoner = Some(Arc::new(crate::llm::Guarded::new(Arc::new(model), &cfg)));
        ir.env = Arc::new(env);
        ir
    }

    use crate::agents::test_support::model as mock_model;

    /// The incident id a prompt names (`… incident <uuid>…`).
    fn incident_in(prompt: &str) -> String {
        let at = prompt.find("incident ").unwrap() + "incident ".len();
        prompt[at..at + 36].to_string()
    }

    #[actix_rt::test]
    async fn the_model_explains_the_triage_and_its_containment_request_meets_the_policy() {
        // The model explains, and asks (through its contain_threat tool) to block a
        // protected address.
        let model = mock_model(|req| {
            Box::pin(async move {
                let tool =
                    req.tools.iter().find(|t| t.name == "contain_threat").expect("contain_threat offered").clone();
                let id = incident_in(&req.prompt);
                let decision =
                    (tool.call)(serde_json::json!({ "incident_id": id, "action": "block_ip", "target": "10.1.2.3" }))
                        .await;
                assert!(decision.unwrap().contains("requested"));
                Ok(crate::llm::ReasonAnswer {
                    text: "Password guessing; block the source.".into(),
                    tool_uses: vec![],
                    tokens: 10,
                })
            })
        });
        let mut ir = setup_llm(model);
        let mut tools = triage_tools();
        tools.expect_executor().returning(|| None);
        let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        let i = written(&fx);
        assert!(
            i.notes.iter().any(|n| n == "triage explained by the model: Password guessing; block the source."),
            "{:?}",
            i.notes
        );
        assert!(fx.audit.iter().any(|a| a.kind == AuditKind::ModelCall));
        // The model's request is routed like any other, marked as the model's.
        let from_model = fx
            .route
            .iter()
            .find_map(|e| match &e.payload {
                Payload::Containment(c) if c.requested_by.as_deref() == Some("model") => Some(e.clone()),
                _ => None,
            })
            .expect("the model's request is routed");
        // Incident response's policy refuses it: the address is protected.
        let fx = handle(&mut ir, &from_model, &tools).await;
        assert!(written(&fx).notes.iter().any(|n| n.contains("10.1.2.3 refused: the address is protected")));
        assert!(fx.writes.iter().all(|w| !matches!(w, Write::Action { .. })), "no action for it");
    }

    #[actix_rt::test]
    async fn a_failing_or_slow_model_leaves_the_rules_decision_and_says_so() {
        for (model, why) in [
            (
                mock_model(|_| Box::pin(async { Err(crate::llm::LlmError::Provider("connection refused".into())) })),
                "connection refused",
            ),
            (
                mock_model(|_| {
                    Box::pin(async {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        Ok(crate::llm::ReasonAnswer::default())
                    })
                }),
                "did not answer within 1 s",
            ),
            (
                mock_model(|_| {
                    Box::pin(async { Ok(crate::llm::ReasonAnswer { text: " ".into(), tool_uses: vec![], tokens: 1 }) })
                }),
                "malformed answer",
            ),
        ] {
            let mut ir = setup_llm(model);
            let mut tools = triage_tools();
            tools.expect_executor().returning(|| None);
            let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
            let fx = handle(&mut ir, &d, &tools).await;
            let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
            let i = written(&fx);
            // Triaged and contained by the rules all the same.
            assert_eq!((i.priority, i.status), (Priority::P2, IncidentStatus::Triaged));
            assert!(fx.route.iter().any(|e| matches!(&e.payload, Payload::Containment(c) if c.requested_by.is_none())));
            assert!(
                i.notes.iter().any(|n| n.starts_with("language model unavailable")
                    && n.contains(why)
                    && n.ends_with("the rules' triage stands")),
                "{why}: {:?}",
                i.notes
            );
        }
    }

    #[actix_rt::test]
    async fn an_instruction_gets_the_models_answer_on_the_incident() {
        let model = mock_model(|req| {
            Box::pin(async move {
                assert!(
                    req.prompt.contains("An operator asks: what now?") && req.prompt.contains("UNTRUSTED INCIDENT")
                );
                assert!(req.system.starts_with("You are Warden's incident responder."));
                Ok(crate::llm::ReasonAnswer {
                    text: "Keep the block; reset admin's password.".into(),
                    tool_uses: vec![],
                    tokens: 5,
                })
            })
        });
        let mut ir = setup(ResponseMode::Enforce);
        let tools = triage_tools();
        let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let id = written(&fx).id;
        let store = Arc::clone(&ir.env);
        // The incident is in the knowledge base for the model's prompt.
        store.kb.commit(crate::kb::Commit { writes: fx.writes.clone(), audit: vec![], flush: false }).await.unwrap();
        let mut ir2 = setup_llm(model);
        ir2.env = {
            let mut e = (*ir2.env).clone_for_test();
            e.kb = store.kb.clone();
            Arc::new(e)
        };
        ir2.incidents = ir.incidents.clone();
        let mut tools = MockTools::new();
        tools.expect_executor().returning(|| None);
        let ask = Envelope::new(
            "admin",
            Payload::Instruction(crate::messages::Instruction { text: "what now?".into(), incident_id: Some(id) }),
        );
        let fx = handle(&mut ir2, &ask, &tools).await;
        assert!(
            written(&fx)
                .notes
                .iter()
                .any(|n| n == "model (incident-response): Keep the block; reset admin's password.")
        );
        let answer = fx.writes.iter().find_map(|w| match w {
            Write::State { key, value } if *key == super::super::reasoning::answer_key(ask.id) => Some(value.clone()),
            _ => None,
        });
        assert_eq!(answer.unwrap()["answer"], "Keep the block; reset admin's password.");
    }

    #[actix_rt::test]
    async fn detection_triage_containment() {
        let mut ir = setup(ResponseMode::Enforce);
        let tools = triage_tools();
        let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let Payload::Triage(r) = &fx.route[0].payload else { panic!("expected a triage: {:?}", fx.route) };
        let i = written(&fx);
        assert!(i.id == r.incident_id && i.status == IncidentStatus::Open);

        let t = fx.route[0].clone();
        let fx = handle(&mut ir, &t, &tools).await;
        let i = written(&fx);
        assert!(i.priority == Priority::P2 && i.status == IncidentStatus::Triaged);
        let Payload::Containment(c) = &fx.route[0].payload else { panic!("expected containment") };
        assert_eq!(c.target, "203.0.113.9");

        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        let action = action_written(&fx);
        // The agent's autonomy (observe) is stricter than the configured enforce.
        assert_eq!(action.mode, ResponseMode::Observe);
        assert_eq!(action.status, ActionStatus::DryRun);
        assert_eq!(action.argv, ["nft", "203.0.113.9"]);

        // A later finding from the same address attaches to the same incident.
        let d2 = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 900)));
        let fx = handle(&mut ir, &d2, &tools).await;
        let i = written(&fx);
        assert!(i.id == r.incident_id && i.findings.len() == 2);
        // Handling the same detection again changes nothing.
        assert!(handle(&mut ir, &d2, &tools).await.writes.is_empty());
    }

    #[actix_rt::test]
    async fn protected_addresses_get_no_proposal() {
        let mut ir = setup(ResponseMode::Observe);
        let tools = triage_tools();
        let d = Envelope::new("test", Payload::Detection(finding("10.1.2.3", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        assert!(fx.route.is_empty(), "no containment proposed");
        assert!(written(&fx).notes[0].contains("protected"));
        // An injected containment against it is refused by the logic as well.
        let inc = written(&fx);
        let req = ContainmentRequest {
            incident_id: inc.id,
            action: ActionKind::BlockIp,
            target: "10.1.2.3".into(),
            reason: String::new(),
            requested_by: None,
        };
        let mut denying = MockTools::new();
        let env = Envelope::new("admin", Payload::Containment(req));
        denying.expect_call().times(0);
        let fx = handle(&mut ir, &env, &denying).await;
        assert!(!fx.writes.iter().any(|w| matches!(w, Write::Action { .. })));
        assert!(written(&fx).notes.iter().any(|n| n.contains("refused")));
    }

    #[actix_rt::test]
    async fn approve_mode_stores_the_action_as_pending() {
        let mut ir = setup_with(ResponseMode::Approve, Some(ResponseMode::Enforce));
        let tools = triage_tools();
        let d = Envelope::new("test", Payload::Detection(finding("203.0.113.10", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        let action = action_written(&fx);
        assert_eq!(action.mode, ResponseMode::Approve);
        assert_eq!(action.status, ActionStatus::PendingApproval);
    }
}
