//! `AgentActor`: the generic actor shell around an agent's logic.
//!
//! Owns: the agent's logic (a plain struct), the address of its `ToolExecutor`, and an
//! exit guard. Accepts: [`Deliver`] (routed envelopes, in order), [`LogBatch`] (threat
//! detection only), [`ArmFault`] (fault injection). Emits: tool calls to its executor, one
//! atomic knowledge-base commit per delivery or log batch (effects + acknowledgements +
//! routed envelopes), then [`Dispatch`] of the routed envelopes to the supervisor.
//! Survives a restart: nothing in memory. The supervisor rebuilds the agent from its
//! definition and durable state; unacknowledged envelopes are delivered again.
//!
//! Inputs are handled one at a time (`AtomicResponse`), and an envelope whose inbox entry
//! is already gone was handled before: it is skipped, so redelivery is harmless.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::{AgentEnv, AgentError, AgentLogic, Effects, ExecutorTools};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::kb::{Commit, Write};
use crate::messages::{BatchAck, BatchError, Envelope, InboxEntry, LogBatch};
use crate::routing::Routed;

/// Delivers routed envelopes to an agent, in routing order. `verify` asks the agent to
/// check the durable inbox first: set for redeliveries, whose envelope may have been
/// handled meanwhile. The agent handles them in order and commits all their effects and
/// acknowledgements in one transaction.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), AgentError>")]
pub struct Deliver {
    pub envelopes: Vec<(Envelope, bool)>,
}

/// Ids of envelopes this incarnation handled, bounded: catches a live delivery that
/// races a redelivery of the same envelope without a knowledge-base read per envelope.
#[derive(Default)]
struct Handled {
    set: std::collections::HashSet<uuid::Uuid>,
    order: std::collections::VecDeque<uuid::Uuid>,
}

impl Handled {
    const CAP: usize = 65_536;

    fn insert(&mut self, id: uuid::Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > Self::CAP
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Delivers envelopes an agent already persisted in its commit.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Dispatch(pub Vec<InboxEntry>);

/// An agent went away. `reason` is `None` for a requested stop.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct AgentExited {
    pub name: String,
    pub generation: u64,
    pub reason: Option<String>,
}

/// Makes the agent fail on its next envelope (fault injection for chaos tests).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ArmFault(pub Fault);

/// How an armed agent fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the handler.
    Panic,
    /// Return a fatal error from the handler.
    Fatal,
}

/// Stops the agent without a restart (shutdown).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StopAgent;

/// Tells the supervisor when the agent goes away, however that happens — including a
/// panic in a handler, after which actix drops the actor without restarting it.
pub struct ExitGuard {
    pub name: String,
    pub generation: u64,
    pub supervisor: Recipient<AgentExited>,
    pub clean: bool,
    pub fatal: Option<String>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let reason = if self.clean { None } else { Some(self.fatal.take().unwrap_or_else(|| "panicked".to_string())) };
        // One notice per agent death cannot grow a mailbox; do_send is safe here and the
        // only send that works from a destructor.
        self.supervisor.do_send(AgentExited { name: self.name.clone(), generation: self.generation, reason });
    }
}

pub struct AgentActor {
    name: String,
    logic: Option<Box<dyn AgentLogic>>,
    tools: Rc<ExecutorTools>,
    env: Arc<AgentEnv>,
    supervisor: Recipient<Dispatch>,
    guard: ExitGuard,
    fault_next: Option<Fault>,
    mailbox: usize,
    handled: Handled,
}

impl AgentActor {
    pub fn new(
        logic: Box<dyn AgentLogic>,
        tools: ExecutorTools,
        env: Arc<AgentEnv>,
        supervisor: Recipient<Dispatch>,
        guard: ExitGuard,
        mailbox: usize,
    ) -> Self {
        AgentActor {
            name: guard.name.clone(),
            logic: Some(logic),
            tools: Rc::new(tools),
            env,
            supervisor,
            guard,
            fault_next: None,
            mailbox,
            handled: Handled::default(),
        }
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
        // Time-driven work (expiring actions, lapsing approvals) runs between deliveries.
        ctx.run_interval(TICK, |_, ctx| ctx.notify(Tick));
        tracing::info!(agent = %self.name, generation = self.guard.generation, "agent started");
    }
}

/// Commits effects together with the acknowledgement of what caused them and the inbox
/// entries of what they route; returns the entries to dispatch.
async fn commit(
    name: &str,
    env: &AgentEnv,
    mut effects: Effects,
    acks: &[Envelope],
) -> Result<Vec<InboxEntry>, AgentError> {
    let mut writes = dedupe_incidents(std::mem::take(&mut effects.writes));
    let mut audit = std::mem::take(&mut effects.audit);
    for e in acks {
        writes.push(Write::InboxAck { created_at: e.created_at, id: e.id });
        audit.push(handled_record(name, e));
    }
    let mut entries = Vec::new();
    for envelope in effects.route {
        if let Some(routed) = route(name, env, envelope, &mut audit) {
            writes.extend(routed.writes);
            audit.extend(routed.audit);
            entries.push(routed.entry);
        }
    }
    env.kb.commit(Commit { writes, audit, flush: effects.flush }).await?;
    Ok(entries)
}

fn handled_record(name: &str, e: &Envelope) -> AuditEntry {
    AuditEntry::new(
        name,
        AuditKind::EnvelopeHandled,
        e.id,
        serde_json::json!({ "kind": e.payload.kind(), "correlation_id": e.correlation_id }),
    )
}

/// Routes one envelope; an envelope that cannot be routed is recorded as a dead letter.
fn route(name: &str, env: &AgentEnv, envelope: Envelope, audit: &mut Vec<AuditEntry>) -> Option<Routed> {
    let id = envelope.id;
    match env.routes.route(name, envelope, None) {
        Ok(routed) => Some(routed),
        Err(e) => {
            tracing::error!(agent = %name, envelope = %id, error = %e, "cannot route an envelope; recorded as dead letter");
            audit.push(AuditEntry::new(name, AuditKind::DeadLetter, id, serde_json::json!({ "error": e.to_string() })));
            None
        }
    }
}

/// Several envelopes in one commit may rewrite the same incident: only its last version
/// needs writing.
fn dedupe_incidents(writes: Vec<Write>) -> Vec<Write> {
    let last: std::collections::HashMap<uuid::Uuid, usize> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            Write::Incident(inc) => Some((inc.id, i)),
            _ => None,
        })
        .collect();
    writes
        .into_iter()
        .enumerate()
        .filter(|(i, w)| !matches!(w, Write::Incident(inc) if last[&inc.id] != *i))
        .map(|(_, w)| w)
        .collect()
}

/// How many rounds of envelopes an agent routes to itself are handled within the
/// delivery that caused them (see [`handle_envelopes`]); later rounds go through the inbox.
const CHAIN_ROUNDS: usize = 8;

/// Handles envelopes in order and commits everything they decided at once; returns the
/// ids handled.
///
/// Envelopes the agent routes to itself (a detection's triage, the next playbook step)
/// are handled in the same delivery, round after round — each round in routing order,
/// as the inbox would deliver them next — and committed with their cause: their routing
/// and handling are audited as before, but no inbox entry is written for them, since
/// none would outlive the commit. A crash before the commit redelivers the cause, which
/// derives the same envelopes (same ids) again.
async fn handle_envelopes(
    name: String,
    env: Arc<AgentEnv>,
    logic: &mut dyn AgentLogic,
    tools: &ExecutorTools,
    supervisor: Recipient<Dispatch>,
    envelopes: Vec<(Envelope, bool, bool)>,
) -> Result<Vec<uuid::Uuid>, AgentError> {
    let mut all = Effects::default();
    let mut acks = Vec::with_capacity(envelopes.len());
    let mut handled = Vec::with_capacity(envelopes.len());
    let mut round = envelopes;
    for depth in 0..=CHAIN_ROUNDS {
        let mut next = Vec::new();
        for (envelope, verify, duplicate) in round {
            if duplicate {
                env.metrics.inc(&env.metrics.duplicates_skipped);
                acks.push(envelope);
                continue;
            }
            // Handled before (the acknowledgement removed the inbox entry): skip.
            if verify && !env.kb.inbox_contains(envelope.created_at, envelope.id).await? {
                env.metrics.inc(&env.metrics.duplicates_skipped);
                continue;
            }
            match logic.on_envelope(&envelope, tools).await {
                Ok(mut fx) => {
                    all.writes.append(&mut fx.writes);
                    all.audit.append(&mut fx.audit);
                    all.flush |= fx.flush;
                    for e in fx.route {
                        match route(&name, &env, e, &mut all.audit) {
                            Some(r) if r.entry.target == name && depth < CHAIN_ROUNDS => {
                                all.audit.extend(r.audit);
                                all.writes.extend(r.writes.into_iter().filter(|w| !matches!(w, Write::InboxPut(_))));
                                next.push((r.entry.envelope, false, false));
                            }
                            // Routed with the commit, like every other agent's envelopes.
                            Some(r) => all.route.push(r.entry.envelope),
                            None => {}
                        }
                    }
                }
                Err(AgentError::Rejected(reason)) => {
                    tracing::warn!(agent = %name, envelope = %envelope.id, %reason, "envelope rejected; recorded as dead letter");
                    env.metrics.inc(&env.metrics.dead_letters);
                    all.audit.push(AuditEntry::new(
                        &name,
                        AuditKind::DeadLetter,
                        envelope.id,
                        serde_json::json!({ "reason": reason }),
                    ));
                }
                Err(e) => return Err(e),
            }
            if depth == 0 {
                acks.push(envelope);
            } else {
                all.audit.push(handled_record(&name, &envelope));
                handled.push(envelope.id);
            }
        }
        if next.is_empty() {
            break;
        }
        round = next;
    }
    all.writes.extend(logic.pending_writes());
    let entries = commit(&name, &env, all, &acks).await?;
    for _ in 0..acks.len() + handled.len() {
        env.metrics.inc(&env.metrics.envelopes_handled);
    }
    if !entries.is_empty() {
        let _ = supervisor.send(Dispatch(entries)).await;
    }
    handled.extend(acks.iter().map(|e| e.id));
    Ok(handled)
}

async fn handle_batch(
    name: String,
    env: Arc<AgentEnv>,
    logic: &mut dyn AgentLogic,
    tools: &ExecutorTools,
    supervisor: Recipient<Dispatch>,
    batch: LogBatch,
) -> Result<BatchAck, AgentError> {
    let effects = logic.on_batch(batch, tools).await?;
    if effects.stale {
        return Ok(BatchAck::AlreadyApplied);
    }
    let findings = effects.findings;
    let entries = commit(&name, &env, effects, &[]).await?;
    if !entries.is_empty() {
        let _ = supervisor.send(Dispatch(entries)).await;
    }
    Ok(BatchAck::Applied { findings })
}

impl Handler<Deliver> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), AgentError>>;

    fn handle(&mut self, Deliver { envelopes }: Deliver, _: &mut Self::Context) -> Self::Result {
        // An envelope this incarnation already handled (the same id again, e.g. derived
        // anew from the same cause), or that came earlier in this delivery, is
        // acknowledged without being handled twice.
        let mut here = std::collections::HashSet::with_capacity(envelopes.len());
        let envelopes: Vec<(Envelope, bool, bool)> = envelopes
            .into_iter()
            .map(|(e, verify)| {
                let duplicate = self.handled.set.contains(&e.id) || !here.insert(e.id);
                (e, verify, duplicate)
            })
            .collect();
        let Some((first, _, _)) = envelopes.first() else {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        };
        match self.fault_next.take() {
            Some(Fault::Panic) => panic!("fault injection: agent `{}` panics on envelope {}", self.name, first.id),
            Some(Fault::Fatal) => {
                let reason = format!("fault injection: agent `{}` fails on envelope {}", self.name, first.id);
                return AtomicResponse::new(Box::pin(
                    fut::ready(Err(AgentError::Fatal(reason))).map(|res, act, ctx| finish(act, ctx, res)),
                ));
            }
            None => {}
        }
        let logic = self.logic.take();
        let (tools, env, name, sup) =
            (self.tools.clone(), self.env.clone(), self.name.clone(), self.supervisor.clone());
        let fut = async move {
            let mut logic = logic;
            let res = match logic.as_mut() {
                Some(l) => handle_envelopes(name, env, l.as_mut(), &tools, sup, envelopes).await,
                None => Err(AgentError::Fatal("agent logic missing".into())),
            };
            (logic, res)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |(logic, res), act, ctx| {
            act.logic = logic;
            finish(act, ctx, res).map(|ids| {
                for id in ids {
                    act.handled.insert(id);
                }
            })
        })))
    }
}

fn finish<T>(act: &mut AgentActor, ctx: &mut Context<AgentActor>, res: Result<T, AgentError>) -> Result<T, AgentError> {
    if let Err(AgentError::Fatal(reason)) = &res {
        tracing::error!(agent = %act.name, %reason, "agent failed; stopping for a restart");
        act.guard.fatal = Some(reason.clone());
        ctx.stop();
    }
    res
}

impl Handler<LogBatch> for AgentActor {
    type Result = AtomicResponse<Self, Result<BatchAck, BatchError>>;

    fn handle(&mut self, batch: LogBatch, _: &mut Self::Context) -> Self::Result {
        let logic = self.logic.take();
        let (tools, env, name, sup) =
            (self.tools.clone(), self.env.clone(), self.name.clone(), self.supervisor.clone());
        let fut = async move {
            let mut logic = logic;
            let res = match logic.as_mut() {
                Some(l) => handle_batch(name, env, l.as_mut(), &tools, sup, batch).await,
                None => Err(AgentError::Fatal("agent logic missing".into())),
            };
            (logic, res)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|(logic, res), act, ctx| {
            act.logic = logic;
            finish(act, ctx, res).map_err(|e| match e {
                AgentError::Rejected(r) => BatchError::Rejected(r),
                e => BatchError::Unavailable(e.to_string()),
            })
        })))
    }
}

/// How often agents look at time-driven work.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

impl Handler<Tick> for AgentActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        let logic = self.logic.take();
        let (tools, env, name, sup) =
            (self.tools.clone(), self.env.clone(), self.name.clone(), self.supervisor.clone());
        let fut = async move {
            let mut logic = logic;
            let res = match logic.as_mut() {
                Some(l) => match l.on_tick(chrono::Utc::now(), tools.as_ref()).await {
                    Ok(mut fx) if !(fx.writes.is_empty() && fx.audit.is_empty() && fx.route.is_empty()) => {
                        fx.writes.extend(l.pending_writes());
                        match commit(&name, &env, fx, &[]).await {
                            Ok(entries) if !entries.is_empty() => {
                                let _ = sup.send(Dispatch(entries)).await;
                                Ok(())
                            }
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            };
            (logic, res)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(|(logic, res), act, ctx| {
            act.logic = logic;
            let _ = finish(act, ctx, res);
        })))
    }
}

impl Handler<ArmFault> for AgentActor {
    type Result = ();

    fn handle(&mut self, ArmFault(fault): ArmFault, _: &mut Self::Context) {
        tracing::warn!(agent = %self.name, ?fault, "fault injection armed for the next envelope");
        self.fault_next = Some(fault);
    }
}

impl Handler<StopAgent> for AgentActor {
    type Result = ();

    fn handle(&mut self, _: StopAgent, ctx: &mut Self::Context) {
        self.guard.clean = true;
        ctx.stop();
    }
}
