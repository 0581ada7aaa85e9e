//! `AgentActor`: the generic actor shell around an agent's logic.
//!
//! Owns: the agent's logic (a plain struct), the address of its `ToolExecutor`, and an
//! exit guard. Accepts: [`Deliver`] (a routed envelope), [`LogBatch`] (threat detection
//! only), [`ArmFault`] (fault injection). Emits: tool calls to its executor, one atomic
//! knowledge-base commit per input (effects + acknowledgement + routed envelopes), then
//! [`Dispatch`] of the routed envelopes to the supervisor.
//! Survives a restart: nothing in memory. The supervisor rebuilds the agent from its
//! definition and durable state; unacknowledged envelopes are delivered again.
//!
//! Inputs are handled one at a time (`AtomicResponse`), and an envelope whose inbox entry
//! is already gone was handled before: it is skipped, so redelivery is harmless.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;

use super::{AgentEnv, AgentError, AgentLogic, Effects, ExecutorTools};
use crate::ingest::{BatchAck, LogBatch};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::kb::{Commit, Write};
use crate::messages::{Envelope, InboxEntry};
use crate::supervisor::{AgentExited, Dispatch};

/// Delivers a routed envelope to an agent. `verify` asks the agent to check the durable
/// inbox first: set for redeliveries, whose envelope may have been handled meanwhile.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), AgentError>")]
pub struct Deliver {
    pub envelope: Envelope,
    pub verify: bool,
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
        tracing::info!(agent = %self.name, generation = self.guard.generation, "agent started");
    }
}

/// Commits effects together with the acknowledgement of what caused them and the inbox
/// entries of what they route; returns the entries to dispatch.
async fn commit(
    name: &str,
    env: &AgentEnv,
    mut effects: Effects,
    ack: Option<&Envelope>,
) -> Result<Vec<InboxEntry>, AgentError> {
    let mut writes = std::mem::take(&mut effects.writes);
    let mut audit = std::mem::take(&mut effects.audit);
    if let Some(e) = ack {
        writes.push(Write::InboxAck { created_at: e.created_at, id: e.id });
        audit.push(AuditEntry::new(
            name,
            AuditKind::EnvelopeHandled,
            e.id,
            serde_json::json!({ "kind": e.payload.kind(), "correlation_id": e.correlation_id }),
        ));
    }
    let mut entries = Vec::new();
    for envelope in effects.route {
        match env.routes.target_for(&envelope, None) {
            Ok(target) => {
                let entry = InboxEntry { target, envelope, attempts: 0 };
                let (w, a) = crate::supervisor::persist_entry(name, &entry);
                writes.extend(w);
                audit.extend(a);
                entries.push(entry);
            }
            Err(e) => {
                tracing::error!(agent = %name, envelope = %envelope.id, error = %e, "cannot route an envelope; recorded as dead letter");
                audit.push(AuditEntry::new(
                    name,
                    AuditKind::DeadLetter,
                    envelope.id,
                    serde_json::json!({ "error": e.to_string() }),
                ));
            }
        }
    }
    env.kb.commit(Commit { writes, audit, flush: effects.flush }).await?;
    Ok(entries)
}

async fn handle_envelope(
    name: String,
    env: Arc<AgentEnv>,
    logic: &mut dyn AgentLogic,
    tools: &ExecutorTools,
    supervisor: Recipient<Dispatch>,
    envelope: Envelope,
    verify: bool,
) -> Result<(), AgentError> {
    // Handled before (the acknowledgement removed the inbox entry): skip.
    if verify && !env.kb.inbox_contains(envelope.created_at, envelope.id).await? {
        env.metrics.inc(&env.metrics.duplicates_skipped);
        return Ok(());
    }
    let effects = match logic.on_envelope(&envelope, tools).await {
        Ok(e) => e,
        Err(AgentError::Rejected(reason)) => {
            tracing::warn!(agent = %name, envelope = %envelope.id, %reason, "envelope rejected; recorded as dead letter");
            Effects {
                audit: vec![AuditEntry::new(
                    &name,
                    AuditKind::DeadLetter,
                    envelope.id,
                    serde_json::json!({ "reason": reason }),
                )],
                ..Effects::default()
            }
        }
        Err(e) => return Err(e),
    };
    let entries = commit(&name, &env, effects, Some(&envelope)).await?;
    env.metrics.inc(&env.metrics.envelopes_handled);
    if !entries.is_empty() {
        let _ = supervisor.send(Dispatch(entries)).await;
    }
    Ok(())
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
    let entries = commit(&name, &env, effects, None).await?;
    if !entries.is_empty() {
        let _ = supervisor.send(Dispatch(entries)).await;
    }
    Ok(BatchAck::Applied { findings })
}

impl Handler<Deliver> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), AgentError>>;

    fn handle(&mut self, Deliver { envelope, verify }: Deliver, _: &mut Self::Context) -> Self::Result {
        let id = envelope.id;
        if self.handled.set.contains(&id) {
            self.env.metrics.inc(&self.env.metrics.duplicates_skipped);
            return AtomicResponse::new(Box::pin(fut::ready(Ok(()))));
        }
        match self.fault_next.take() {
            Some(Fault::Panic) => panic!("fault injection: agent `{}` panics on envelope {}", self.name, envelope.id),
            Some(Fault::Fatal) => {
                let reason = format!("fault injection: agent `{}` fails on envelope {}", self.name, envelope.id);
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
                Some(l) => handle_envelope(name, env, l.as_mut(), &tools, sup, envelope, verify).await,
                None => Err(AgentError::Fatal("agent logic missing".into())),
            };
            (logic, res)
        };
        AtomicResponse::new(Box::pin(fut.into_actor(self).map(move |(logic, res), act, ctx| {
            act.logic = logic;
            if res.is_ok() {
                act.handled.insert(id);
            }
            finish(act, ctx, res)
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
    type Result = AtomicResponse<Self, Result<BatchAck, AgentError>>;

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
            finish(act, ctx, res)
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
