//! The `Supervisor` actor: Warden's orchestrator.
//!
//! Owns: the registry of agents (definition, state, address, restart history), the
//! routing table (built by [`crate::routing`]), and a bounded queue per agent (at most
//! 4,096 envelopes; the rest wait in the durable inbox) with one delivery of up to 256
//! envelopes in flight. Accepts: [`Route`] (an envelope from outside, persisted here),
//! [`Dispatch`] (envelopes an agent already persisted), [`AgentExited`], [`ListAgents`],
//! [`LogBatch`] (the sources' sink: handed to the running threat-detection agent),
//! [`ReaderUp`], [`InjectFault`], [`Shutdown`], [`Idle`]. Emits: `Deliver` to agents,
//! audit records, the "agent failed" incident.
//! Survives a restart: the durable inbox. On start, and whenever an agent is rebuilt,
//! every unacknowledged envelope routed to it is delivered again.
//!
//! Routed envelopes are persisted before delivery and acknowledged by the agent in the
//! same commit as their effects: delivery is at least once, effects exactly once.

pub mod backoff;
pub mod fleet;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use crate::agents::shell::{ExitGuard, StopAgent};
use crate::agents::{self, AgentActor, AgentEnv, AgentExited, ArmFault, Deliver, Dispatch, ExecutorTools, Fault};
use crate::definitions::{AgentDefinition, Definitions};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::kb::{Commit, Write};
use crate::messages::{BatchAck, BatchError, Envelope, InboxEntry, Incident, LogBatch, Priority, Severity};
use crate::routing::RouteError;
use backoff::{RestartHistory, Verdict};

/// How often an agent stopped by a database that cannot write is started again.
const STORAGE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Envelopes queued in memory per agent before further ones wait in the durable inbox.
const MAX_QUEUED: usize = 4096;
/// Most envelopes handed to an agent at once (it commits them in one transaction).
const MAX_BATCH: usize = 256;
/// Deliveries of one envelope without acknowledgement before it is dead-lettered.
const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Starting,
    Running,
    Restarting,
    Failed,
    Stopped,
}

/// What `warden agents` shows.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub kind: String,
    pub state: AgentState,
    pub restarts: u64,
    pub generation: u64,
    /// Envelopes routed to it and not yet acknowledged.
    pub mailbox_depth: usize,
    pub mailbox_capacity: usize,
    pub handles: Vec<String>,
    pub tools: Vec<String>,
    pub last_error: Option<String>,
}

/// An inbox entry's identity: creation time and id. Two entries may share an id (an
/// envelope derived again from the same cause after a restart); both must be delivered
/// so that both get acknowledged.
type EntryKey = (i64, Uuid);

fn entry_key(e: &Envelope) -> EntryKey {
    (e.created_at.timestamp_nanos_opt().unwrap_or(0), e.id)
}

/// Envelopes waiting for one agent; one delivery (a batch) in flight at a time.
#[derive(Default)]
struct AgentQueue {
    pending: std::collections::VecDeque<(InboxEntry, bool)>,
    /// The generation of the agent a batch is in flight to, and the batch's ids.
    busy: Option<u64>,
    in_flight: Vec<EntryKey>,
    /// Entries were left in the durable inbox because the queue was full.
    backlog: bool,
}

struct Slot {
    def: Arc<AgentDefinition>,
    arbiter: ArbiterHandle,
    addr: Option<Addr<AgentActor>>,
    state: AgentState,
    generation: u64,
    history: RestartHistory,
    last_error: Option<String>,
}

/// Routes an envelope from outside the agents (the admin API): persisted, then delivered.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Uuid, SupervisorError>")]
pub struct Route {
    pub envelope: Envelope,
    pub to: Option<String>,
}

/// A delivery finished (the agent handled the envelope, or did not).
#[derive(Message)]
#[rtype(result = "()")]
struct Delivered {
    agent: String,
    generation: u64,
    ids: Vec<EntryKey>,
    outcome: Result<(), DeliveryError>,
}

/// Why a delivery did not end in an acknowledgement.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("delivery failed: {0}")]
    Failed(crate::agents::AgentError),
    #[error("agent went away during delivery: {0}")]
    Gone(actix::MailboxError),
}

#[derive(Message)]
#[rtype(result = "Vec<AgentStatus>")]
pub struct ListAgents;

/// True when a threat-detection agent is running and can take log batches.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ReaderUp;

#[derive(Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct InjectFault(pub String, pub Fault);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// True when no delivery is in flight and the durable inbox is empty.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Idle;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("cannot persist the envelope: {0}")]
    Store(String),
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    #[error("agent `{0}` is not running")]
    NotRunning(String),
}

pub struct Supervisor {
    env: Arc<AgentEnv>,
    slots: BTreeMap<String, Slot>,
    queues: HashMap<String, AgentQueue>,
    /// Ids queued or being delivered, so a redelivery scan does not queue them twice.
    known: HashSet<EntryKey>,
    attempts: HashMap<EntryKey, u32>,
    shutting_down: bool,
    /// With `[cluster]`: the agent whose detections go to the leader, and what wakes
    /// their relay.
    relay: Option<(String, Arc<tokio::sync::Notify>)>,
}

impl Supervisor {
    /// One arbiter (thread) per agent, kept across restarts.
    pub fn new(defs: &Definitions, env: Arc<AgentEnv>) -> Supervisor {
        let slots = defs
            .agents
            .iter()
            .map(|(name, def)| {
                let arbiter = Arbiter::new().handle();
                (
                    name.clone(),
                    Slot {
                        def: Arc::new(def.clone()),
                        arbiter,
                        addr: None,
                        state: AgentState::Starting,
                        generation: 0,
                        history: RestartHistory::default(),
                        last_error: None,
                    },
                )
            })
            .collect();
        Supervisor {
            env,
            slots,
            queues: HashMap::new(),
            known: HashSet::new(),
            attempts: HashMap::new(),
            shutting_down: false,
            relay: None,
        }
    }

    /// Detections for `target` go to the fleet's leader through the relay `wake` wakes,
    /// not to the agent here.
    pub fn relaying(mut self, target: String, wake: Arc<tokio::sync::Notify>) -> Supervisor {
        self.relay = Some((target, wake));
        self
    }

    fn spawn_agent(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        slot.state = AgentState::Starting;
        slot.generation += 1;
        let generation = slot.generation;
        let def = slot.def.clone();
        let env = self.env.clone();
        let name = name.to_string();
        let fut = async move { agents::restore(&def, &env).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let restored = match res {
                Ok(r) => r,
                Err(e) => {
                    act.on_exit(&name, generation, Some(format!("cannot restore durable state: {e}")), ctx);
                    return;
                }
            };
            let Some(slot) = act.slots.get_mut(&name) else {
                return;
            };
            if slot.generation != generation || act.shutting_down {
                return;
            }
            let def = slot.def.clone();
            let env = act.env.clone();
            let dispatch = ctx.address().recipient::<Dispatch>();
            let exited = ctx.address().recipient::<AgentExited>();
            let agent_name = name.clone();
            let addr = AgentActor::start_in_arbiter(&slot.arbiter, move |_| {
                let (logic, executor) = agents::build(&def, restored, &env);
                let exec = executor.start();
                let guard = ExitGuard { name: agent_name, generation, supervisor: exited, clean: false, fatal: None };
                AgentActor::new(logic, ExecutorTools(exec), env, dispatch, guard, def.mailbox)
            });
            slot.addr = Some(addr);
            slot.state = AgentState::Running;
            act.redeliver(name.clone(), ctx);
        }));
    }

    /// Queues an agent's pending inbox entries, oldest first, as many as its queue takes:
    /// the rest stay in the durable inbox (a backlog read again when the queue drains),
    /// so a flood's backlog costs disk, not memory.
    fn redeliver(&mut self, target: String, ctx: &mut Context<Self>) {
        let kb = self.env.kb.clone();
        // The oldest entries may be those already queued or in flight: read past them.
        let queued = self.queues.get(&target).map_or(0, |q| q.pending.len() + q.in_flight.len());
        let limit = queued + MAX_QUEUED;
        let agent = target.clone();
        ctx.spawn(async move { kb.inbox(&target, limit).await }.into_actor(self).map(move |res, act, ctx| match res {
            Ok(entries) => {
                let more = entries.len() >= limit;
                // All queued first, then delivered a cause at a time (see `pump`).
                for e in entries {
                    if !act.known.contains(&entry_key(&e.envelope)) {
                        act.env.metrics.inc(&act.env.metrics.redeliveries);
                        act.enqueue(e, true);
                    }
                }
                if more {
                    act.queues.entry(agent.clone()).or_default().backlog = true;
                }
                act.pump(&agent, ctx);
            }
            Err(e) => tracing::error!(error = %e, "cannot read the inbox for redelivery"),
        }));
    }

    /// Queues an envelope for its agent and starts a delivery if none is in flight.
    fn deliver(&mut self, entry: InboxEntry, verify: bool, ctx: &mut Context<Self>) {
        if let Some(target) = self.enqueue(entry, verify) {
            self.pump(&target, ctx);
        }
    }

    /// Queues an envelope for its agent; returns the agent when it was queued.
    fn enqueue(&mut self, entry: InboxEntry, verify: bool) -> Option<String> {
        let id = entry.envelope.id;
        let key = entry_key(&entry.envelope);
        if !self.slots.contains_key(&entry.target) {
            tracing::error!(target = %entry.target, envelope = %id, "envelope routed to an unknown agent stays in the inbox");
            return None;
        }
        if self.known.contains(&key) {
            return None;
        }
        if let Some((relayed, wake)) = &self.relay
            && fleet::for_the_leader(&entry, relayed)
        {
            wake.notify_one(); // The relay reads it from the durable inbox.
            return None;
        }
        let target = entry.target.clone();
        let q = self.queues.entry(target.clone()).or_default();
        if q.pending.len() >= MAX_QUEUED {
            q.backlog = true; // It is in the durable inbox; a later scan picks it up.
            return None;
        }
        self.known.insert(key);
        q.pending.push_back((entry, verify));
        Some(target)
    }

    /// Hands the next batch of queued envelopes to a running agent.
    fn pump(&mut self, agent: &str, ctx: &mut Context<Self>) {
        let Some(slot) = self.slots.get(agent) else { return };
        let Some(addr) = slot.addr.clone().filter(|_| slot.state == AgentState::Running) else {
            return; // Delivered when the agent is running again.
        };
        let generation = slot.generation;
        let Some(q) = self.queues.get_mut(agent) else { return };
        if q.busy.is_some() {
            return;
        }
        let mut batch = Vec::new();
        let mut ids = Vec::new();
        let mut dead = Vec::new();
        // One cause per delivery (a detection batch's findings, say): what an agent
        // decides then depends on what it was sent, never on how far behind it was —
        // a replay gives the same incidents, playbook outcomes and notes every time.
        let Some(cause) = q.pending.front().map(|(e, _)| e.envelope.causation_id) else { return };
        while batch.len() < MAX_BATCH {
            // An envelope whose delivery failed before goes alone: if it is the one that
            // kills the agent, the others must not share its fate (and its dead letter).
            let retried = |e: &InboxEntry| self.attempts.get(&entry_key(&e.envelope)).is_some_and(|n| *n > 0);
            match q.pending.front() {
                None => break,
                Some((e, _)) if !batch.is_empty() && (retried(e) || e.envelope.causation_id != cause) => break,
                Some(_) => {}
            }
            let Some((entry, verify)) = q.pending.pop_front() else { break };
            let solo = retried(&entry);
            let id = entry_key(&entry.envelope);
            let attempts = self.attempts.entry(id).or_insert(0);
            *attempts += 1;
            if *attempts > MAX_ATTEMPTS {
                self.attempts.remove(&id);
                self.known.remove(&id);
                dead.push(entry);
            } else {
                ids.push(id);
                batch.push((entry.envelope, verify));
                if solo {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            q.busy = Some(generation);
            q.in_flight = ids.clone();
            // The delivery runs as its own task, not inside this actor's context: actix
            // polls every future spawned in a context on each wake-up.
            let me = ctx.address();
            let agent = agent.to_string();
            actix_rt::spawn(async move {
                let outcome = match addr.send(Deliver { envelopes: batch }).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(DeliveryError::Failed(e)),
                    Err(e) => Err(DeliveryError::Gone(e)),
                };
                let _ = me.send(Delivered { agent, generation, ids, outcome }).await;
            });
        }
        for entry in dead {
            self.dead_letter(entry, "delivered too often without acknowledgement", ctx);
        }
    }

    fn dead_letter(&mut self, entry: InboxEntry, reason: &str, ctx: &mut Context<Self>) {
        let e = &entry.envelope;
        tracing::error!(envelope = %e.id, target = %entry.target, reason, "dead letter");
        self.env.metrics.inc(&self.env.metrics.dead_letters);
        let commit = Commit {
            writes: vec![
                Write::InboxAck { created_at: e.created_at, id: e.id },
                Write::Meta {
                    key: format!("dead_letter/{}", e.id),
                    value: serde_json::to_value(&entry).unwrap_or_default(),
                },
            ],
            audit: vec![AuditEntry::new(
                "supervisor",
                AuditKind::DeadLetter,
                e.id,
                serde_json::json!({ "reason": reason, "target": entry.target }),
            )],
            flush: false,
        };
        let kb = self.env.kb.clone();
        ctx.spawn(
            async move {
                if let Err(err) = kb.commit(commit).await {
                    tracing::error!(error = %err, "cannot record a dead letter");
                }
            }
            .into_actor(self),
        );
    }

    fn on_exit(&mut self, name: &str, generation: u64, reason: Option<String>, ctx: &mut Context<Self>) {
        let shutting_down = self.shutting_down;
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.generation != generation {
            return; // A notice from an older incarnation.
        }
        slot.addr = None;
        // What was queued for it is in the durable inbox; the rebuilt agent gets it by a scan.
        if let Some(q) = self.queues.remove(name) {
            for (e, _) in q.pending {
                self.known.remove(&entry_key(&e.envelope));
            }
            for id in q.in_flight {
                self.known.remove(&id);
            }
        }
        let Some(reason) = reason else {
            slot.state = AgentState::Stopped;
            return;
        };
        if shutting_down {
            slot.state = AgentState::Stopped;
            return;
        }
        slot.last_error = Some(reason.clone());
        if self.env.kb.health.failure().is_some() {
            // Not the agent's fault and not its restart budget's: it waits for the
            // database, which comes back when the daemon restarts in place.
            slot.state = AgentState::Restarting;
            tracing::warn!(agent = %name, %reason, "agent stopped: the knowledge base cannot write; retrying while storage is down");
            let name = name.to_string();
            ctx.run_later(STORAGE_RETRY, move |act, ctx| {
                if !act.shutting_down {
                    act.spawn_agent(&name, ctx);
                }
            });
            return;
        }
        let verdict = slot.history.on_exit(&slot.def.restart, Instant::now(), fastrand::f64());
        let restarts = slot.history.total;
        let kb = self.env.kb.clone();
        match verdict {
            Verdict::RestartAfter(delay) => {
                slot.state = AgentState::Restarting;
                self.env.metrics.inc(&self.env.metrics.agent_restarts);
                tracing::warn!(agent = %name, %reason, restarts, delay_ms = delay.as_millis() as u64, "agent exited; restarting");
                let audit = AuditEntry::new(
                    "supervisor",
                    AuditKind::AgentRestarted,
                    name,
                    serde_json::json!({ "reason": reason, "restarts": restarts, "delay_ms": delay.as_millis() as u64 }),
                );
                ctx.spawn(
                    async move {
                        let _ = kb.commit(Commit { audit: vec![audit], ..Commit::default() }).await;
                    }
                    .into_actor(self),
                );
                let name = name.to_string();
                ctx.run_later(delay, move |act, ctx| {
                    if !act.shutting_down {
                        act.spawn_agent(&name, ctx);
                    }
                });
            }
            Verdict::GiveUp => {
                slot.state = AgentState::Failed;
                let budget = slot.def.restart;
                tracing::error!(agent = %name, %reason, "agent exhausted its restart budget; marked failed");
                let now = Utc::now();
                let id = Uuid::new_v5(
                    &Uuid::NAMESPACE_OID,
                    format!("agent_failed/{name}/{}", now.timestamp_nanos_opt().unwrap_or(0)).as_bytes(),
                );
                let title = format!(
                    "agent failed: {name} exceeded its restart budget ({} restarts in {} s)",
                    budget.max_restarts, budget.within_secs
                );
                let entities = vec![format!("agent:{name}")];
                let incident = Incident {
                    priority: Priority::P1,
                    notes: vec![format!("last error: {reason}")],
                    ..Incident::open(id, "agent_failed".into(), title, Severity::High, entities, Vec::new(), now)
                };
                let audit = AuditEntry::new(
                    "supervisor",
                    AuditKind::AgentFailed,
                    name,
                    serde_json::json!({ "reason": reason, "incident": id }),
                );
                ctx.spawn(
                    async move {
                        if let Err(e) = kb
                            .commit(Commit {
                                writes: vec![Write::Incident(std::sync::Arc::new(incident))],
                                audit: vec![audit],
                                flush: true,
                            })
                            .await
                        {
                            tracing::error!(error = %e, "cannot store the agent-failed incident");
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for n in names {
            self.spawn_agent(&n, ctx);
        }
    }
}

impl Handler<Route> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Uuid, SupervisorError>>;

    fn handle(&mut self, msg: Route, _: &mut Self::Context) -> Self::Result {
        let crate::routing::Routed { entry, writes, audit } =
            match self.env.routes.route("supervisor", msg.envelope, msg.to.as_deref()) {
                Ok(r) => r,
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            };
        let kb = self.env.kb.clone();
        let id = entry.envelope.id;
        Box::pin(async move { kb.commit(Commit { writes, audit, flush: true }).await }.into_actor(self).map(
            move |res, act, ctx| {
                res.map_err(|e| SupervisorError::Store(e.to_string()))?;
                act.env.metrics.inc(&act.env.metrics.envelopes_routed);
                act.deliver(entry, false, ctx);
                Ok(id)
            },
        ))
    }
}

impl Handler<Dispatch> for Supervisor {
    type Result = ();

    fn handle(&mut self, Dispatch(entries): Dispatch, ctx: &mut Self::Context) {
        // All of them queued before any is delivered: what one commit routed to an
        // agent reaches it together (see `pump`), not its first envelope alone.
        let mut targets: Vec<String> = Vec::new();
        for e in entries {
            self.env.metrics.inc(&self.env.metrics.envelopes_routed);
            if let Some(t) = self.enqueue(e, false)
                && !targets.contains(&t)
            {
                targets.push(t);
            }
        }
        for t in targets {
            self.pump(&t, ctx);
        }
    }
}

impl Handler<Delivered> for Supervisor {
    type Result = ();

    fn handle(&mut self, Delivered { agent, generation, ids, outcome }: Delivered, ctx: &mut Self::Context) {
        let current = self.queues.get(&agent).is_some_and(|q| q.busy == Some(generation));
        if !current {
            return; // A batch to an incarnation that is gone; its queue was already reset.
        }
        for id in &ids {
            self.known.remove(id);
        }
        match outcome {
            Ok(()) => {
                for id in &ids {
                    self.attempts.remove(id);
                }
            }
            // The agent died or failed: its restart redelivers from the durable inbox.
            Err(e) => {
                tracing::warn!(%agent, envelopes = ids.len(), error = %e, "envelopes stay in the inbox for redelivery")
            }
        }
        let Some(q) = self.queues.get_mut(&agent) else { return };
        q.busy = None;
        q.in_flight.clear();
        if q.backlog && q.pending.len() < MAX_QUEUED / 2 {
            q.backlog = false;
            self.redeliver(agent.clone(), ctx);
        }
        self.pump(&agent, ctx);
    }
}

impl Handler<AgentExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AgentExited, ctx: &mut Self::Context) {
        self.on_exit(&msg.name, msg.generation, msg.reason, ctx);
    }
}

impl Handler<ListAgents> for Supervisor {
    type Result = ResponseActFuture<Self, Vec<AgentStatus>>;

    fn handle(&mut self, _: ListAgents, _: &mut Self::Context) -> Self::Result {
        let kb = self.env.kb.clone();
        Box::pin(async move { kb.inbox_depths().await.unwrap_or_default() }.into_actor(self).map(|depths, act, _| {
            act.slots
                .iter()
                .map(|(name, s)| AgentStatus {
                    name: name.clone(),
                    kind: s.def.kind.as_str().to_string(),
                    state: s.state,
                    restarts: s.history.total,
                    generation: s.generation,
                    mailbox_depth: depths.get(name).copied().unwrap_or(0),
                    mailbox_capacity: s.def.mailbox,
                    handles: s.def.handles.iter().map(|k| k.to_string()).collect(),
                    tools: s.def.tools.iter().map(|t| t.as_str().to_string()).collect(),
                    last_error: s.last_error.clone(),
                })
                .collect()
        }))
    }
}

impl Supervisor {
    /// The running threat-detection agent, which reads the log batches.
    fn reader(&self) -> Option<Addr<AgentActor>> {
        self.slots
            .values()
            .filter(|s| s.def.kind == crate::definitions::AgentKind::ThreatDetection && s.state == AgentState::Running)
            .find_map(|s| s.addr.clone())
    }
}

/// Sources hold the supervisor as their log sink: a batch goes to the threat-detection
/// agent running now (a restart gives it a new address), or is refused as unavailable
/// for the source to send again.
impl Handler<LogBatch> for Supervisor {
    type Result = ResponseFuture<Result<BatchAck, BatchError>>;

    fn handle(&mut self, batch: LogBatch, _: &mut Self::Context) -> Self::Result {
        let reader = self.reader();
        Box::pin(async move {
            let Some(reader) = reader else {
                return Err(BatchError::Unavailable("no threat-detection agent is running".into()));
            };
            reader
                .send(batch)
                .await
                .unwrap_or_else(|e| Err(BatchError::Unavailable(format!("the reader went away: {e}"))))
        })
    }
}

impl Handler<ReaderUp> for Supervisor {
    type Result = bool;

    fn handle(&mut self, _: ReaderUp, _: &mut Self::Context) -> bool {
        self.reader().is_some()
    }
}

impl Handler<InjectFault> for Supervisor {
    type Result = Result<(), SupervisorError>;

    fn handle(&mut self, InjectFault(name, fault): InjectFault, _: &mut Self::Context) -> Self::Result {
        let slot = self.slots.get(&name).ok_or_else(|| SupervisorError::UnknownAgent(name.clone()))?;
        let addr =
            slot.addr.clone().filter(|_| slot.state == AgentState::Running).ok_or(SupervisorError::NotRunning(name))?;
        addr.try_send(ArmFault(fault)).map_err(|e| SupervisorError::Store(e.to_string()))
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) {
        self.shutting_down = true;
        for s in self.slots.values_mut() {
            if let Some(a) = s.addr.take() {
                let _ = a.try_send(StopAgent);
            }
            s.state = AgentState::Stopped;
        }
    }
}

impl Handler<Idle> for Supervisor {
    type Result = ResponseActFuture<Self, bool>;

    fn handle(&mut self, _: Idle, _: &mut Self::Context) -> Self::Result {
        let kb = self.env.kb.clone();
        Box::pin(
            async move { kb.inbox_empty().await.unwrap_or(false) }
                .into_actor(self)
                .map(|empty, act, _| empty && act.known.is_empty()),
        )
    }
}
