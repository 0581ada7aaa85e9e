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
use crate::messages::EnforcementReport;
use crate::messages::{
    Action, ActionKind, ActionStatus, ApprovalDecision, ContainmentRequest, Decision, Envelope, Incident,
    IncidentStatus, Payload, ResponseMode, Rollback,
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

    /// Blocks for the incident's attackers that have none: every address a finding at or
    /// above `contain_min_severity` names, whatever incident it was opened in — merging,
    /// campaigns and playbooks never leave one out. With `again`, only that address, also
    /// when its earlier block failed, lapsed or was rolled back (a new finding shows it
    /// back). Protected addresses are noted instead. Envelopes numbered from `n`.
    pub(super) fn contain_attackers(
        &mut self,
        cause: &Envelope,
        incident_id: Uuid,
        again: Option<IpAddr>,
        n: u32,
    ) -> Vec<Envelope> {
        let min = self.def.response.contain_min_severity;
        let name = self.def.name.clone();
        let protected = self.env.protected.clone();
        let Some(inc) = self.incident(incident_id) else { return Vec::new() };
        let mut seen: Vec<IpAddr> = Vec::new();
        let mut out = Vec::new();
        let mut notes = Vec::new();
        for f in inc.findings.iter().filter(|f| f.severity >= min) {
            let Some(ip) = f.src_addr() else { continue };
            if seen.contains(&ip) || again.is_some_and(|a| a != ip) {
                continue;
            }
            seen.push(ip);
            let target = ip.to_string();
            let mut blocks = inc.actions.iter().filter(|a| a.kind == ActionKind::BlockIp && a.target == target);
            let wanted = match blocks.clone().next() {
                None => again.is_none(),
                Some(_) => again.is_some() && !blocks.any(|a| a.stands()),
            };
            if !wanted {
                continue;
            }
            if protected.contains(ip) {
                let note = format!("{ip} is protected: no containment proposed");
                if !inc.notes.contains(&note) && !notes.contains(&note) {
                    notes.push(note);
                }
                continue;
            }
            let reason = format!("{} ({}: {})", inc.title, f.rule, f.title);
            let req = ContainmentRequest {
                incident_id,
                action: ActionKind::BlockIp,
                target,
                reason: crate::text::sanitize(&reason, 1024),
                requested_by: None,
            };
            out.push(Envelope::caused_by(cause, &name, Payload::Containment(req), n + out.len() as u32));
        }
        drop(inc);
        if !notes.is_empty()
            && let Some(inc) = self.edit(incident_id)
        {
            inc.notes.extend(notes);
        }
        out
    }

    pub(super) async fn containment(
        &mut self,
        env: &Envelope,
        req: &ContainmentRequest,
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let Some(inc) = self.incident(req.incident_id) else {
            return Err(AgentError::Rejected(format!("no incident {}", req.incident_id)));
        };
        let mut fx = Effects::default();
        // Addresses are normalised here (and refused when protected, whatever asked);
        // every other target is validated by contain_threat itself.
        let ip: Option<IpAddr> = req.target.trim().parse::<IpAddr>().ok().map(|i| i.to_canonical());
        if let Some(why) = Self::refusal(req, ip) {
            drop(inc);
            let what = format!("{} {}", req.action, crate::text::sanitize(&req.target, 64));
            if req.requested_by.as_deref() != Some("model") {
                return Err(AgentError::Rejected(format!("containment `{what}` refused: {why}")));
            }
            let note = format!("containment request from the language model `{what}` refused: {why}");
            let detail = serde_json::json!({ "refused": what, "requested_by": "model", "reason": why });
            return Ok(self.refuse(req.incident_id, note, detail));
        }
        let target = ip.map(|i| i.to_string()).unwrap_or_else(|| req.target.trim().to_string());
        let earlier = inc.actions.iter().filter(|a| a.kind == req.action && a.target == target);
        if earlier.clone().any(|a| a.stands()) {
            return Ok(fx); // Already requested.
        }
        let nth = earlier.count();
        // Let go of the shared copy: changing the incident below must not copy it.
        drop(inc);
        if let Some(ip) = ip
            && req.action == ActionKind::BlockIp
            && self.env.protected.contains(ip)
        {
            let note = format!("containment of {target} refused: the address is protected");
            let detail = serde_json::json!({ "refused": target, "reason": "protected" });
            return Ok(self.refuse(req.incident_id, note, detail));
        }
        let mode = self.mode_for(req.action);
        let spec = ContainSpec {
            kind: req.action,
            target: target.clone(),
            ttl_secs: self.def.response.block_ttl_secs,
            mode,
            incident: Some(req.incident_id),
        };
        let outcome = tools.call::<ContainThreat>(spec.clone()).await;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::ToolCall,
            "contain_threat",
            serde_json::json!({ "incident": req.incident_id, "spec": spec, "outcome": outcome.summary() }),
        ));
        let now = Utc::now();
        let Carried { status, argv, output, steps, undo_target } = match carried(outcome, mode) {
            Ok(c) => c,
            Err(reason) => {
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
        };
        let action = Action {
            id: action_id(req.incident_id, req.action, &target, nth),
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
            enforcement: Vec::new(),
        };
        self.env.metrics.inc(&self.env.metrics.actions);
        let inc = self.edit_known(req.incident_id)?;
        if status == ActionStatus::Executed {
            inc.status = IncidentStatus::Contained;
            fx.flush = true;
        }
        // The incident's first block: every other attacker of it is blocked too (later
        // ones as triage sees them).
        let first_block =
            req.action == ActionKind::BlockIp && !inc.actions.iter().any(|a| a.kind == ActionKind::BlockIp);
        inc.actions.push(action.clone());
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            action.id,
            serde_json::to_value(&action).unwrap_or_default(),
        ));
        fx.writes.push(Write::Action { incident_id: inc.id, action });
        if first_block {
            let more = self.contain_attackers(env, req.incident_id, None, 1);
            fx.route.extend(more);
        }
        Ok(fx)
    }

    /// The incident holding an action, and where: among the incidents held, else the
    /// one its stored record names.
    fn find_action(&mut self, action_id: Uuid) -> Option<(Uuid, usize)> {
        let at = |i: &Incident| i.actions.iter().position(|a| a.id == action_id).map(|p| (i.id, p));
        if let Some(found) = self.held.iter().find_map(|i| at(i)) {
            return Some(found);
        }
        let r = self.env.kb.reader.incident_of_action(action_id);
        let id = self.note_failure(r).flatten()?;
        at(self.incident(id)?.as_ref())
    }

    /// An operator's answer to an action waiting for approval: approved, it runs now
    /// (through the same checks as any containment); rejected, it is recorded as such.
    pub(super) async fn approval(&mut self, d: &ApprovalDecision, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let Some((incident_id, pos)) = self.find_action(d.action_id) else {
            return Err(AgentError::Rejected(format!("no action {} waiting for a decision", d.action_id)));
        };
        let Some(action) = self.held.peek(&incident_id).and_then(|i| i.actions.get(pos).cloned()) else {
            return Err(AgentError::Rejected(format!("no action {} waiting for a decision", d.action_id)));
        };
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
                incident: Some(incident_id),
            };
            let outcome = tools.call::<ContainThreat>(spec.clone()).await;
            fx.audit.push(AuditEntry::new(
                &name,
                AuditKind::ToolCall,
                "contain_threat",
                serde_json::json!({ "incident": incident_id, "spec": spec, "outcome": outcome.summary(), "approved": true }),
            ));
            match outcome {
                ToolOutcome::Succeeded(Executed { argv, output, undo, published }) => {
                    updated.undo_target = undo;
                    updated.status = done_status(published);
                    updated.argv = argv;
                    updated.output = Some(output);
                    updated.expires_at = self.expiry(action.kind, updated.status, now);
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
        watched: &[Uuid],
        tools: &dyn Tools,
    ) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let mut due: Vec<(Uuid, usize)> = Vec::new();
        for id in watched {
            let Some(inc) = self.incident(*id) else { continue };
            for (pos, a) in inc.actions.iter().enumerate() {
                let expired = a.expires_at.is_some_and(|e| e <= now);
                let closed = inc.status == IncidentStatus::Closed;
                match a.status {
                    ActionStatus::PendingApproval if expired || closed => due.push((inc.id, pos)),
                    ActionStatus::Executed | ActionStatus::Published
                        if !a.permanent && a.rollback.is_none() && (expired || closed) =>
                    {
                        due.push((inc.id, pos))
                    }
                    _ => {}
                }
            }
        }
        for (incident_id, pos) in due {
            let Some((mut a, closed)) =
                self.held.peek(&incident_id).map(|i| (i.actions[pos].clone(), i.status == IncidentStatus::Closed))
            else {
                continue;
            };
            let why = if closed { "incident closed" } else { "expired" };
            if a.status == ActionStatus::PendingApproval {
                a.status = ActionStatus::Expired;
                a.output = Some(format!("nobody approved it before {}", a.expires_at.unwrap_or(now)));
            } else if let Some(undo) = a.kind.rollback() {
                let spec = ContainSpec {
                    kind: undo,
                    target: a.undo_target.clone().unwrap_or_else(|| a.target.clone()),
                    ttl_secs: 0,
                    mode: ResponseMode::Enforce,
                    incident: Some(incident_id),
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

impl IncidentResponse {
    /// A fleet host's enforcer said what it did with a decision: noted on the block the
    /// decision came from (a host's latest word replaces its earlier one); the first host
    /// to have it in force makes the incident contained. A report about no published
    /// block known here is dropped (logged).
    pub(super) fn enforcement(&mut self, r: &EnforcementReport) -> Result<Effects, AgentError> {
        let mut fx = Effects::default();
        let target = crate::text::sanitize(&r.target, 64);
        let Some(id) = r.incident.or_else(|| self.entities.get(&target)) else {
            tracing::warn!(%target, host = %r.host, "an enforcement report about no incident: dropped");
            return Ok(fx);
        };
        let mut report = r.clone();
        report.host = crate::text::sanitize(&r.host, 64);
        report.reason = crate::text::sanitize(&r.reason, 512);
        report.target = target.clone();
        let name = self.def.name.clone();
        let Some(inc) = self.edit(id) else { return Ok(fx) };
        let Some(pos) = inc.actions.iter().rposition(|a| {
            a.kind == ActionKind::BlockIp
                && a.target == target
                && matches!(a.status, ActionStatus::Published | ActionStatus::RolledBack)
        }) else {
            tracing::warn!(%target, incident = %id, "an enforcement report about no published block: dropped");
            return Ok(fx);
        };
        let a = &mut inc.actions[pos];
        let room = a.enforcement.len() < MAX_HOSTS_PER_ACTION;
        match a.enforcement.iter_mut().find(|e| e.host == report.host) {
            Some(e) if e.at > report.at => return Ok(fx),
            Some(e) => *e = report.clone(),
            // Bounded: one entry per host of the fleet.
            None if room => a.enforcement.push(report.clone()),
            None => return Ok(fx),
        }
        let action = a.clone();
        if report.outcome.in_force()
            && action.status == ActionStatus::Published
            && !matches!(inc.status, IncidentStatus::Contained | IncidentStatus::Closed)
        {
            inc.status = IncidentStatus::Contained;
        }
        inc.updated_at = Utc::now();
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            action.id,
            serde_json::json!({ "incident": id, "enforcement": report }),
        ));
        fx.writes.push(Write::Action { incident_id: id, action });
        Ok(fx)
    }
}

/// Hosts whose word on one action is kept.
const MAX_HOSTS_PER_ACTION: usize = 4096;

/// An action carried out: executed here, or published for the fleet's enforcers.
fn done_status(published: Option<u64>) -> ActionStatus {
    if published.is_some() { ActionStatus::Published } else { ActionStatus::Executed }
}

/// What a containment tool call left to record.
struct Carried {
    status: ActionStatus,
    argv: Vec<String>,
    output: Option<String>,
    steps: Vec<String>,
    undo_target: Option<String>,
}

/// The record of a `contain_threat` outcome in `mode`; `Err`: denied, and why.
fn carried(outcome: ToolOutcome<Executed>, mode: ResponseMode) -> Result<Carried, String> {
    let c = |status, argv, output, steps| Carried { status, argv, output, steps, undo_target: None };
    Ok(match outcome {
        ToolOutcome::DryRun { argv, steps } if mode == ResponseMode::Approve => {
            c(ActionStatus::PendingApproval, argv, None, steps)
        }
        ToolOutcome::DryRun { argv, steps } => c(ActionStatus::DryRun, argv, None, steps),
        ToolOutcome::Succeeded(Executed { argv, output, undo, published }) => {
            Carried { undo_target: undo, ..c(done_status(published), argv, Some(output), Vec::new()) }
        }
        ToolOutcome::Denied(reason) => return Err(reason),
        ToolOutcome::Failed(e) => c(ActionStatus::Failed, Vec::new(), Some(e), Vec::new()),
        ToolOutcome::TimedOut => c(ActionStatus::Failed, Vec::new(), Some("timed out".into()), Vec::new()),
    })
}

/// The id of the `nth` action of a kind on a target in an incident: the first keeps the
/// plain id, a later one (the earlier failed, lapsed or was rolled back) is numbered.
fn action_id(incident: Uuid, kind: ActionKind, target: &str, nth: usize) -> Uuid {
    let name = match nth {
        0 => format!("{kind}/{target}"),
        n => format!("{kind}/{target}/{n}"),
    };
    Uuid::new_v5(&incident, name.as_bytes())
}
