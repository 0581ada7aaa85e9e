//! What a tool's answer to a language model may use: the agent's setup, its executor,
//! reads of the knowledge base, and [`Sinks`] where the call's audit records and the
//! envelopes it requests are collected — they become part of the handling envelope's
//! effects, committed with its acknowledgement like any deterministic decision.

use std::sync::{Arc, Mutex};

use actix::Addr;
use uuid::Uuid;

use super::{Call, Tool, ToolExecutor, ToolOutcome, ToolSetup, typed};
use crate::kb::Kb;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::llm::Refusal;
use crate::messages::{Envelope, Incident, Payload};

/// What a model's tool calls did, collected while it runs.
#[derive(Clone, Default)]
pub struct Sinks {
    pub audit: Arc<Mutex<Vec<AuditEntry>>>,
    pub route: Arc<Mutex<Vec<Envelope>>>,
}

impl Sinks {
    pub fn audit(&self, e: AuditEntry) {
        self.audit.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    pub fn route(&self, e: Envelope) {
        self.route.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// Takes what was collected: audit records, then envelopes to route.
    pub fn drain(&self) -> (Vec<AuditEntry>, Vec<Envelope>) {
        (
            std::mem::take(&mut *self.audit.lock().unwrap_or_else(|p| p.into_inner())),
            std::mem::take(&mut *self.route.lock().unwrap_or_else(|p| p.into_inner())),
        )
    }
}

/// What vulnerability management knows at the moment of a model's call.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Its advisory database and latest scans.
    pub db: Option<Arc<super::vuln::osv::AdvisoryDb>>,
    pub scans: Arc<Vec<super::vuln::scan::ScanReport>>,
    /// Its targets' assets and the threat context (KEV, EPSS).
    pub assets: Arc<Vec<(std::path::PathBuf, super::vuln::risk::AssetContext)>>,
    pub context: Arc<super::vuln::risk::ThreatContext>,
}

/// The context of one model request, cloned into every tool the model is offered.
#[derive(Clone)]
pub struct ModelCx {
    pub setup: Arc<ToolSetup>,
    /// The agent's executor (absent in tests that do not run one).
    pub executor: Option<Addr<ToolExecutor>>,
    pub kb: Kb,
    pub sinks: Sinks,
    pub snapshot: Snapshot,
}

impl ModelCx {
    pub fn agent(&self) -> &str {
        &self.setup.agent
    }

    /// Runs tool `T` on the agent's executor, from whatever task the model runs on.
    pub async fn call<T: Tool>(&self, args: T::Args) -> ToolOutcome<T::Output> {
        let Some(exec) = &self.executor else {
            return ToolOutcome::Failed("the tool executor is not reachable here".into());
        };
        match exec.send(super::ExecuteTool(Call::new::<T>(args))).await {
            Ok(o) => typed::<T>(o),
            Err(e) => ToolOutcome::Failed(format!("tool executor unavailable: {e}")),
        }
    }

    /// A stored incident, or why the model cannot have it.
    pub async fn incident(&self, id: Uuid) -> Result<Incident, Refusal> {
        match self.kb.incident(id).await {
            Ok(Some(inc)) => Ok(inc),
            Ok(None) => Err(Refusal(format!("no incident {id}"))),
            Err(e) => Err(Refusal(e.to_string())),
        }
    }

    /// A ledger record of a model's call of `tool`.
    pub fn audit(&self, tool: &str, detail: serde_json::Value) {
        self.sinks.audit(AuditEntry::new(self.agent(), AuditKind::ToolCall, tool, detail));
    }

    /// Requests an envelope from this agent, routed once the handling commits.
    pub fn request(&self, payload: Payload) {
        self.sinks.route(Envelope::new(self.agent(), payload));
    }
}
