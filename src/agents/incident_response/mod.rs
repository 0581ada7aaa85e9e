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
mod entities;
mod held;
mod incidents;
mod playbooks;
mod triage;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{AgentEnv, AgentError, AgentLogic, Effects, Tools};
use crate::definitions::AgentDefinition;
use crate::kb::{KbError, Write};
use crate::messages::{Envelope, Incident, IncidentStatus, Payload};
use entities::Entities;
use held::Held;
use watch::{Watch, watch_of};

pub struct IncidentResponse {
    def: Arc<AgentDefinition>,
    env: Arc<AgentEnv>,
    /// The incidents in memory: recently used ones up to a cap, and every one changed
    /// since the last commit. Shared with the pending writes: once a commit has dropped
    /// them, changing an incident does not copy it (`Arc::make_mut`).
    held: Held,
    /// Entity (address, campaign) → the active incident its findings attach to.
    entities: Entities,
    /// Findings attached since the last commit → their incident (committed ones are
    /// read from the knowledge base's links).
    linked: HashMap<Uuid, Uuid>,
    /// Incidents time still has work for.
    watch: HashMap<Uuid, Watch>,
    /// A knowledge-base read that failed while handling the current input: the input
    /// fails with it (the agent is rebuilt and the input delivered again), never
    /// handled as if the incident did not exist.
    failed: Option<KbError>,
}

impl IncidentResponse {
    /// Builds the logic from the knowledge base, one incident at a time: what time still
    /// has work for is watched, and the open incidents still active (within
    /// `incident_active_secs` of the newest activity) index their entities and are held,
    /// up to the cap. Nothing else is read into memory.
    pub fn new(def: Arc<AgentDefinition>, env: Arc<AgentEnv>) -> Result<Self, KbError> {
        let metrics = env.metrics.clone();
        let active = Duration::seconds(def.response.incident_active_secs as i64);
        let mut watch = HashMap::new();
        let mut entities = Entities::new(env.memory.incident_entities, metrics.clone());
        let mut held = Held::new(env.kb.reader.clone(), env.memory.incidents_held, metrics);
        let mut newest = DateTime::<Utc>::MIN_UTC;
        let attachable = |i: &Incident| i.status != IncidentStatus::Closed && i.kind != "agent_failed";
        env.kb.reader.scan_incidents(
            |head| {
                if let Some(w) = watch_of(head) {
                    watch.insert(head.id, w);
                }
                newest = newest.max(head.last_activity);
                attachable(head) && newest.checked_sub_signed(active).is_none_or(|h| head.last_activity >= h)
            },
            |i| {
                // What findings attach by: their own entities and the incident's
                // campaigns (not every account listed — a guessed `root` must not pull
                // findings in). The more recently active incident of an entity wins.
                for f in &i.findings {
                    entities.set_if_later(f.entity(), i.id, i.last_activity);
                }
                for e in i.entities.iter().filter(|e| e.starts_with("campaign:")) {
                    entities.set_if_later(e.clone(), i.id, i.last_activity);
                }
                held.insert(Arc::new(i));
                held.trim();
            },
        )?;
        entities.sweep_now(active);
        Ok(IncidentResponse { def, env, held, entities, linked: HashMap::new(), watch, failed: None })
    }

    fn name(&self) -> &str {
        &self.def.name
    }

    /// Remembers a failed read for the end of the current input (see `failed`).
    fn note_failure<T>(&mut self, r: Result<T, KbError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.failed.get_or_insert(e);
                None
            }
        }
    }

    /// The incident, held or read back.
    fn incident(&mut self, id: Uuid) -> Option<Arc<Incident>> {
        let r = self.held.get(id).map(|i| i.cloned());
        self.note_failure(r).flatten()
    }

    /// The incident a finding is attached to.
    fn incident_of_finding(&mut self, finding: Uuid) -> Option<Uuid> {
        if let Some(id) = self.linked.get(&finding) {
            return Some(*id);
        }
        let r = self.env.kb.reader.incident_of_finding(finding);
        self.note_failure(r).flatten()
    }

    /// The incident to change: copied out of a pending write if it is shared
    /// (`Arc::make_mut`), its version bumped, and marked to be written with the next
    /// commit.
    fn edit(&mut self, id: Uuid) -> Option<&mut Incident> {
        match self.held.get(id) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                self.failed.get_or_insert(e);
                return None;
            }
        }
        self.held.dirty.insert(id);
        let inc = Arc::make_mut(self.held.get_mut(id).ok().flatten()?);
        inc.version += 1;
        Some(inc)
    }

    /// Like [`Self::edit`], for an incident the caller knows exists (or why not).
    fn edit_known(&mut self, id: Uuid) -> Result<&mut Incident, AgentError> {
        if let Err(e) = self.held.get(id) {
            return Err(e.into());
        }
        self.edit(id).ok_or_else(|| AgentError::Rejected(format!("no incident {id}")))
    }

    /// Holds a new or changed incident, to be written with the next commit.
    fn hold_changed(&mut self, incident: Incident) {
        self.held.dirty.insert(incident.id);
        self.held.insert(Arc::new(incident));
    }

    fn declares<T: crate::tools::Tool>(&self) -> bool {
        self.def.tools.contains(&crate::tools::ToolName::of::<T>())
    }

    /// The result of handling an input, failed if a read failed meanwhile.
    fn checked(&mut self, r: Result<Effects, AgentError>) -> Result<Effects, AgentError> {
        match self.failed.take() {
            Some(e) => Err(e.into()),
            None => r,
        }
    }
}

impl AgentLogic for IncidentResponse {
    fn on_tick<'a>(
        &'a mut self,
        now: chrono::DateTime<chrono::Utc>,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            let due: Vec<Uuid> = self.watch.iter().filter(|(_, w)| w.is_due(now)).map(|(id, _)| *id).collect();
            let mut fx = self.overdue_gates(now, &due);
            let more = self.expire_actions(now, &due, tools).await;
            let more = self.checked(more)?;
            fx.writes.extend(more.writes);
            fx.audit.extend(more.audit);
            fx.route.extend(more.route);
            fx.flush |= more.flush;
            Ok(fx)
        })
    }

    /// The incidents changed since the last commit (their watch updated), after which
    /// the least recently used beyond the cap are let go and entities no longer active
    /// forgotten: what is committed can be read back.
    fn pending_writes(&mut self) -> Vec<Write> {
        let dirty = std::mem::take(&mut self.held.dirty);
        self.linked.clear();
        let mut out = Vec::with_capacity(dirty.len());
        for id in dirty {
            let Some(inc) = self.held.peek(&id) else { continue };
            match watch_of(inc) {
                Some(w) => self.watch.insert(id, w),
                None => self.watch.remove(&id),
            };
            out.push(Write::Incident(inc.clone()));
        }
        self.held.trim();
        self.entities.sweep(Duration::seconds(self.def.response.incident_active_secs as i64));
        let m = &self.env.metrics;
        m.state_table("incidents_held", Some(self.held.len()), 0);
        m.state_table("incident_entities", Some(self.entities.len()), 0);
        out
    }

    fn on_envelope<'a>(
        &'a mut self,
        env: &'a Envelope,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            let r = self.handle(env, tools).await;
            self.checked(r)
        })
    }
}

impl IncidentResponse {
    async fn handle(&mut self, env: &Envelope, tools: &dyn Tools) -> Result<Effects, AgentError> {
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
            Payload::Enforcement(r) => self.enforcement(r),
            Payload::PatchVerification(_) | Payload::Scan(_) => {
                Err(AgentError::Rejected(format!("incident-response does not handle `{}`", env.payload.kind())))
            }
        }
    }
}

#[cfg(test)]
mod tests;
