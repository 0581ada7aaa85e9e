//! Incident-response logic: findings become incidents, incidents are triaged, and
//! containment is requested and carried out through the `contain_threat` tool.
//!
//! Decision state: the incidents (rebuilt from the knowledge base on every start) and
//! an index from entity (the attacker's address, a campaign) to its active incident.
//! Flow: `Detection` opens or extends an incident and routes `Triage`; `Triage` sets
//! severity and priority and starts a playbook or routes `Containment` unless the target
//! is protected; `Containment` records the action with its exact argv (dry run unless
//! enforcing); `PlaybookStep`s run the playbook; `Approval` decides a waiting action or
//! gate; `Close` ends the incident; time rolls actions back and lapses approvals.
//!
//! By concern: `incidents` (opening, attaching, merging, closing, handoffs back),
//! `triage`, `containment` (policy, approvals, rollback), `playbooks` (running a
//! playbook through `execute_playbook`, its gates).

mod containment;
mod incidents;
mod playbooks;
mod triage;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{AgentEnv, AgentError, AgentLogic, Effects, Tools};
use crate::definitions::AgentDefinition;
use crate::kb::Write;
use crate::messages::{Envelope, Incident, IncidentStatus, Payload};

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
        let mut incidents = incidents;
        // The newest incident of an entity is the one its findings attach to.
        incidents.sort_by_key(|i| (i.created_at, i.id));
        for i in incidents {
            // What findings attach by: their own entities and the incident's campaigns
            // (not every account listed — a guessed `root` must not pull findings in).
            if i.status != IncidentStatus::Closed && i.kind != "agent_failed" {
                for f in &i.findings {
                    me.by_entity.insert(f.entity(), i.id);
                }
                for e in i.entities.iter().filter(|e| e.starts_with("campaign:")) {
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

    /// The incident to change: copied out of a pending write if it is shared
    /// (`Arc::make_mut`), its version bumped, and marked to be written with the next
    /// commit.
    fn edit(&mut self, id: Uuid) -> Option<&mut Incident> {
        let inc = Arc::make_mut(self.incidents.get_mut(&id)?);
        inc.version += 1;
        self.dirty.insert(id);
        Some(inc)
    }

    /// Like [`Self::edit`], for an incident the caller knows exists (or why not).
    fn edit_known(&mut self, id: Uuid) -> Result<&mut Incident, AgentError> {
        self.edit(id).ok_or_else(|| AgentError::Rejected(format!("no incident {id}")))
    }

    fn declares<T: crate::tools::Tool>(&self) -> bool {
        self.def.tools.contains(&crate::tools::ToolName::of::<T>())
    }
}

impl AgentLogic for IncidentResponse {
    fn on_tick<'a>(
        &'a mut self,
        now: chrono::DateTime<chrono::Utc>,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            let mut fx = self.overdue_gates(now);
            let more = self.expire_actions(now, tools).await?;
            fx.writes.extend(more.writes);
            fx.audit.extend(more.audit);
            fx.route.extend(more.route);
            fx.flush |= more.flush;
            Ok(fx)
        })
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
                Payload::Containment(c) => self.containment(env, c, tools).await,
                Payload::Handoff(h) => Ok(self.handoff(h)),
                Payload::Instruction(i) => {
                    let snap = crate::tools::Snapshot::default();
                    let (fx, answer) = super::reasoning::instruction(&self.env, &self.def, env, i, tools, snap).await;
                    if let (Some(id), Ok(text)) = (i.incident_id, &answer) {
                        let note = format!("model ({}): {}", self.def.name, crate::text::sanitize(text, 2000));
                        if let Some(inc) = self.edit(id) {
                            inc.notes.push(note);
                        }
                    }
                    Ok(fx)
                }
                Payload::Approval(d) => match self.playbook_gate(d) {
                    Some(fx) => Ok(fx),
                    None => self.approval(d, tools).await,
                },
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
mod tests;
