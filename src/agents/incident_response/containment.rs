//! Containment policy: which requests are refused (protected targets, a model undoing a
//! containment), the effective mode of an action (the stricter of the configured mode,
//! the agent's autonomy and the action's own), operators' approvals, and time — actions
//! rolled back when their time is up, approvals that lapse.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::IncidentResponse;
use crate::agents::{AgentError, Effects, Tools};
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{
    Action, ActionKind, ActionStatus, ApprovalDecision, ContainmentRequest, Decision, IncidentStatus, ResponseMode,
    Rollback,
};
use crate::tools::ToolOutcome;
use crate::tools::response::ContainSpec;
use crate::tools::response::contain_threat::{ContainThreat, Executed};

impl IncidentResponse {
    /// The effective mode of an action: the configured mode, unless the definition
    /// restricts it.
    fn mode_for(&self, kind: ActionKind) -> ResponseMode {
        self.def.effective_mode(self.env.response_mode, kind).mode
    }

    /// When an action lapses (waiting for approval) or is rolled back (executed).
    fn expiry(&self, kind: ActionKind, status: ActionStatus, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let r = &self.def.response;
        match status {
            ActionStatus::PendingApproval => Some(now + Duration::seconds(r.approval_timeout_secs as i64)),
            _ if kind.rollback().is_none() || r.permanent.contains(&kind) => None,
            _ => Some(now + Duration::seconds(r.block_ttl_secs as i64)),
        }
    }

    /// A containment request refused: noted on the incident and in the ledger.
    fn refuse(&mut self, incident_id: Uuid, note: String, detail: serde_json::Value) -> Effects {
        let mut fx = Effects::default();
        let name = self.def.name.clone();
        let Some(inc) = self.edit(incident_id) else { return fx };
        inc.notes.push(note);
        fx.audit.push(AuditEntry::new(&name, AuditKind::Action, inc.id, detail));
        fx
    }

    /// Why a request cannot be carried out at all, if it cannot.
    fn refusal(req: &ContainmentRequest, ip: Option<IpAddr>) -> Option<String> {
        let from_model = req.requested_by.as_deref() == Some("model");
        if from_model && matches!(req.action, ActionKind::UnblockIp | ActionKind::EnableAccount) {
            Some("undoing a containment is an operator's decision, never a model's".to_string())
        } else if matches!(req.action, ActionKind::BlockIp | ActionKind::UnblockIp) && ip.is_none() {
            Some("the target is not an IP address".to_string())
        } else {
            None
        }
    }

    pub(super) async fn containment(
        &mut self,
        req: &ContainmentRequest,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let Some(inc) = self.incidents.get(&req.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", req.incident_id)));
        };
        let mut fx = Effects::default();
        // Addresses are normalised here (and refused when protected, whatever asked);
        // every other target is validated by contain_threat itself.
        let ip: Option<IpAddr> = req.target.trim().parse().ok();
        if let Some(why) = Self::refusal(req, ip) {
            let what = format!("{} {}", req.action, crate::text::sanitize(&req.target, 64));
            if req.requested_by.as_deref() != Some("model") {
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
            let detail = serde_json::json!({ "refused": target, "reason": "protected" });
            return Ok(self.refuse(req.incident_id, note, detail));
        }
        let mode = self.mode_for(req.action);
        let spec =
            ContainSpec { kind: req.action, target: target.clone(), ttl_secs: self.def.response.block_ttl_secs, mode };
        let outcome = tools.call::<ContainThreat>(spec.clone()).await;
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
            ToolOutcome::Succeeded(Executed { argv, output, undo }) => {
                undo_target = undo;
                (ActionStatus::Executed, argv, Some(output))
            }
            ToolOutcome::Denied(reason) => {
                let target = crate::text::sanitize(&target, 80);
                let inc = self.edit_known(req.incident_id)?;
                inc.notes.push(format!("{} of {target} denied: {reason}", req.action));
                fx.audit.push(AuditEntry::new(
                    &name,
                    AuditKind::Action,
                    inc.id,
                    serde_json::json!({ "refused": target, "action": req.action, "reason": reason }),
                ));
                return Ok(fx);
            }
            ToolOutcome::Failed(e) => (ActionStatus::Failed, Vec::new(), Some(e)),
            ToolOutcome::TimedOut => (ActionStatus::Failed, Vec::new(), Some("timed out".into())),
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
        self.env.metrics.inc(&self.env.metrics.actions);
        let inc = self.edit_known(req.incident_id)?;
        if status == ActionStatus::Executed {
            inc.status = IncidentStatus::Contained;
            fx.flush = true;
        }
        inc.actions.push(action.clone());
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            action.id,
            serde_json::to_value(&action).unwrap_or_default(),
        ));
        fx.writes.push(Write::Action { incident_id: inc.id, action });
        Ok(fx)
    }

    fn find_action(&self, action_id: Uuid) -> Option<(Uuid, usize)> {
        self.incidents.values().find_map(|i| i.actions.iter().position(|a| a.id == action_id).map(|p| (i.id, p)))
    }

    /// An operator's answer to an action waiting for approval: approved, it runs now
    /// (through the same checks as any containment); rejected, it is recorded as such.
    pub(super) async fn approval(&mut self, d: &ApprovalDecision, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
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
            let outcome = tools.call::<ContainThreat>(spec.clone()).await;
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::ToolCall,
                "contain_threat",
                serde_json::json!({ "incident": incident_id, "spec": spec, "outcome": outcome.summary(), "approved": true }),
            ));
            match outcome {
                ToolOutcome::Succeeded(Executed { argv, output, undo }) => {
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
        let inc = self.edit_known(incident_id)?;
        if updated.status == ActionStatus::Executed {
            inc.status = IncidentStatus::Contained;
        }
        inc.actions[pos] = updated.clone();
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            updated.id,
            serde_json::to_value(&updated).unwrap_or_default(),
        ));
        fx.writes.push(Write::Action { incident_id, action: updated });
        Ok(fx)
    }

    /// Time passing: executed actions whose time is up (or whose incident was closed)
    /// are rolled back, unless permanent; actions nobody approved in time lapse.
    pub(super) async fn expire_actions(
        &mut self,
        now: DateTime<Utc>,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
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
                let (ok, argv, output) = match tools.call::<ContainThreat>(spec).await {
                    ToolOutcome::Succeeded(Executed { argv, output, .. }) => (true, argv, output),
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
            let inc = self.edit_known(incident_id)?;
            inc.actions[pos] = a.clone();
            inc.updated_at = now;
            fx.writes.push(Write::Action { incident_id, action: a });
        }
        Ok(fx)
    }
}
