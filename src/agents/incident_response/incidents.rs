//! Incidents: one per attacker while it is active — a finding opens one or attaches to
//! its entity's (or its campaign's); incidents that turn out to be one campaign are
//! merged; an operator closes one; vulnerability management's handoffs back record the
//! root cause's remediation on it.

use chrono::{Duration, Utc};
use uuid::Uuid;

use super::IncidentResponse;
use crate::agents::{AgentError, Effects};
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{
    CloseRequest, Envelope, Finding, Handoff, Incident, IncidentRef, IncidentStatus, Payload, Priority,
    RemediationEntry, RemediationStatus, RunStatus,
};

/// Most entities an incident lists.
const MAX_ENTITIES: usize = 32;

impl IncidentResponse {
    fn active_for(&mut self, entity: &str, f: &Finding) -> Option<Uuid> {
        let id = self.entities.get(entity)?;
        let inc = self.incident(id)?;
        let active = Duration::seconds(self.def.response.incident_active_secs as i64);
        (inc.status != IncidentStatus::Closed && f.last_seen - inc.last_activity <= active).then_some(id)
    }

    /// The open incident holding the earliest of a campaign's findings.
    fn incident_of_related(&mut self, f: &Finding) -> Option<Uuid> {
        f.related.iter().find_map(|rid| {
            let id = self.incident_of_finding(*rid)?;
            self.incident(id).filter(|i| i.status != IncidentStatus::Closed).map(|i| i.id)
        })
    }

    /// Folds the other open incidents that hold findings of a campaign into the
    /// campaign's incident: their findings and containment actions move over (an
    /// attacker blocked stays blocked, an action waiting for approval still waits), their
    /// entities point to it, a playbook still running there is aborted, and they are
    /// closed with a note saying where they went.
    fn merge_related(&mut self, target: Uuid, f: &Finding, now: chrono::DateTime<Utc>, fx: &mut Effects) {
        let mut others: Vec<Uuid> = Vec::new();
        for rid in &f.related {
            let Some(id) = self.incident_of_finding(*rid) else { continue };
            if id != target
                && self.incident(id).is_some_and(|i| i.status != IncidentStatus::Closed && i.kind != "agent_failed")
            {
                others.push(id);
            }
        }
        others.sort();
        others.dedup();
        for oid in others {
            let Some(other) = self.edit(oid) else { continue };
            let moved = std::mem::take(&mut other.findings);
            let actions = std::mem::take(&mut other.actions);
            let entities = other.entities.clone();
            other.status = IncidentStatus::Closed;
            if let Some(run) = other.playbook.as_mut()
                && matches!(run.status, RunStatus::Running | RunStatus::Waiting)
            {
                run.status = RunStatus::Aborted;
                run.gate = None;
                other.notes.push(format!("playbook `{}` aborted: the incident was merged", run.playbook));
            }
            other.notes.push(format!("merged into campaign incident {target}"));
            other.updated_at = now;
            for m in &moved {
                self.linked.insert(m.id, target);
                fx.writes.push(Write::Link { finding: m.id, incident: target });
                self.entities.set(m.entity(), target, f.last_seen);
            }
            for e in entities.iter().filter(|e| e.starts_with("campaign:")) {
                self.entities.set(e.clone(), target, f.last_seen);
            }
            let Some(inc) = self.edit(target) else { continue };
            // An action the campaign's incident already has for the same target stays
            // with the merged incident; the others move, and their records say where.
            let mut kept = Vec::new();
            for a in actions {
                if inc.actions.iter().any(|x| x.id == a.id || (x.kind == a.kind && x.target == a.target)) {
                    kept.push(a);
                } else {
                    fx.writes.push(Write::Action { incident_id: target, action: a.clone() });
                    inc.actions.push(a);
                }
            }
            for m in moved {
                if !inc.findings.iter().any(|x| x.id == m.id) {
                    inc.severity = inc.severity.max(m.severity);
                    inc.findings.push(m);
                }
            }
            for e in entities {
                if !inc.entities.contains(&e) && inc.entities.len() < MAX_ENTITIES {
                    inc.entities.push(e);
                }
            }
            inc.notes.push(format!("incident {oid} merged in: its findings belong to this campaign"));
            inc.findings.sort_by_key(|x| (x.first_seen, x.id));
            if !kept.is_empty()
                && let Some(other) = self.edit(oid)
            {
                other.actions = kept;
            }
        }
    }

    pub(super) fn detection(&mut self, env: &Envelope, f: &Finding) -> Result<Effects, AgentError> {
        let mut fx = Effects::default();
        // What the detector says the finding is about: the attacker's address, an
        // attacked account, or the host whose logs showed it.
        let entity = f.entity();
        let now = Utc::now();
        if self.incident_of_finding(f.id).is_some() {
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
        let id = match existing.and_then(|id| self.edit(id)) {
            Some(inc) => {
                inc.findings.push(f.clone());
                inc.severity = inc.severity.max(f.severity);
                inc.last_activity = inc.last_activity.max(f.last_seen);
                inc.updated_at = now;
                for u in &f.users {
                    let e = format!("user:{u}");
                    if !inc.entities.contains(&e) && inc.entities.len() < MAX_ENTITIES {
                        inc.entities.push(e);
                    }
                }
                inc.id
            }
            None => {
                // Deterministic from the finding: re-handling cannot open a second one.
                let id = Uuid::new_v5(&f.id, b"incident");
                let mut entities = vec![entity.clone()];
                entities.extend(f.users.iter().take(16).map(|u| format!("user:{u}")).filter(|u| *u != entity));
                let inc = Incident {
                    last_activity: f.last_seen,
                    ..Incident::open(id, f.rule.clone(), f.title.clone(), f.severity, entities, vec![f.clone()], now)
                };
                self.entities.set(entity.clone(), id, f.last_seen);
                self.hold_changed(inc);
                self.env.metrics.inc(&self.env.metrics.incidents);
                tracing::info!(agent = %self.def.name, incident = %id, %entity, "incident opened");
                id
            }
        };
        self.linked.insert(f.id, id);
        fx.writes.push(Write::Link { finding: f.id, incident: id });
        self.entities.set(entity, id, f.last_seen);
        // An attacker back after its block failed, lapsed or was rolled back: asked again.
        if existing.is_some()
            && f.severity >= self.def.response.contain_min_severity
            && let Some(ip) = f.src_addr()
        {
            let again = self.contain_attackers(env, id, Some(ip), 100);
            fx.route.extend(again);
        }
        if let Some(key) = campaign_key {
            self.entities.set(key.clone(), id, f.last_seen);
            let Some(inc) = self.edit(id) else { return Ok(fx) };
            if !inc.entities.contains(&key) {
                inc.entities.push(key);
            }
            if !f.related.is_empty() {
                inc.title = f.title.clone();
                self.merge_related(id, f, now, &mut fx);
            }
        }
        fx.route.push(Envelope::caused_by(env, self.name(), Payload::Triage(IncidentRef { incident_id: id }), 0));
        Ok(fx)
    }

    /// An operator closes an incident: later findings open a new one, a waiting
    /// playbook is aborted, and the next tick rolls its actions back.
    pub(super) fn close(&mut self, c: &CloseRequest) -> Result<Effects, AgentError> {
        let mut fx = Effects::default();
        match self.incident(c.incident_id) {
            None => return Err(AgentError::Rejected(format!("no incident {}", c.incident_id))),
            Some(inc) if inc.status == IncidentStatus::Closed => return Ok(fx),
            Some(_) => {}
        }
        let name = self.def.name.clone();
        let by = crate::text::sanitize(&c.by, 64);
        let now = Utc::now();
        let inc = self.edit_known(c.incident_id)?;
        inc.status = IncidentStatus::Closed;
        if let Some(run) = inc.playbook.as_mut()
            && matches!(run.status, RunStatus::Running | RunStatus::Waiting)
        {
            run.status = RunStatus::Aborted;
            run.gate = None;
        }
        inc.notes.push(format!("closed by {by}: {}", crate::text::sanitize(&c.reason, 512)));
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Action,
            inc.id,
            serde_json::json!({ "closed": true, "by": by, "at": now, "reason": c.reason }),
        ));
        let entities = inc.entities.clone();
        for e in entities {
            self.entities.remove_if(&e, c.incident_id);
        }
        Ok(fx)
    }

    /// A handoff back to this agent: vulnerability management scheduled remediations of
    /// an incident's root cause, or verified them (or another agent answered with a
    /// note). Verified throughout → resolved; a failed verification → the incident stays
    /// (or is again) open, one priority level up, and people are told.
    pub(super) fn handoff(&mut self, h: &Handoff) -> Effects {
        let (name, notifier) = (self.def.name.clone(), self.env.notifier.clone());
        let mut fx = Effects::default();
        let Some(inc) = h.incident_id.and_then(|id| self.edit(id)) else {
            return fx;
        };
        let now = Utc::now();
        let entries = |v: Option<&serde_json::Value>| -> Vec<RemediationEntry> {
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
        let notify = if verified.is_empty() { None } else { verification_outcome(inc) };
        inc.updated_at = now;
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::Handoff,
            inc.id,
            serde_json::json!({ "from": h.from, "status": inc.status, "priority": inc.priority,
                "remediation": inc.remediation.iter().map(|r| (&r.package, r.status)).collect::<Vec<_>>() }),
        ));
        if let (Some(text), Some(n)) = (notify, &notifier) {
            fx.writes.push(n.queue(&crate::outbox::Notification::about(inc, text, now)));
        }
        fx
    }
}

/// What verified remediations mean for the incident: a failure raises its priority one
/// level and (re)opens it; every remediation verified resolves it. The note, also the
/// notification's text.
fn verification_outcome(inc: &mut Incident) -> Option<String> {
    use RemediationStatus as R;
    let failed: Vec<&RemediationEntry> = inc.remediation.iter().filter(|r| r.status == R::Failed).collect();
    let text = if !failed.is_empty() {
        let what = failed.iter().map(|r| format!("{} {}", r.package, r.installed)).collect::<Vec<_>>().join(", ");
        let before = inc.priority;
        inc.priority = match inc.priority {
            Priority::P4 => Priority::P3,
            Priority::P3 => Priority::P2,
            _ => Priority::P1,
        };
        let reopened = matches!(inc.status, IncidentStatus::Closed | IncidentStatus::Resolved);
        if reopened {
            inc.status = IncidentStatus::Open;
        }
        format!(
            "remediation failure: patch verification failed for {what}; priority {before:?} → {:?}{}",
            inc.priority,
            if reopened { ", incident reopened" } else { ", incident stays open" }
        )
    } else if inc.remediation.iter().all(|r| r.status == R::Verified) {
        inc.status = IncidentStatus::Resolved;
        format!(
            "resolved: root cause remediated and verified ({})",
            inc.remediation
                .iter()
                .map(|r| format!("{} → {}", r.package, r.target.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        return None;
    };
    inc.notes.push(text.clone());
    Some(text)
}
