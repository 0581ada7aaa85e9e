//! Agents: the plain structs that decide, and the generic actor shell that performs
//! their decisions.
//!
//! An agent's logic implements [`AgentLogic`]: given an envelope (or, for threat
//! detection, a log batch) and access to its tools, it returns [`Effects`] — records to
//! write, audit entries, envelopes to route. It never writes the knowledge base or
//! routes anything itself, so it can be tested as "envelopes in, effects out".

pub mod custom;
pub mod incident_response;
pub mod reasoning;
pub mod shell;
pub mod threat_detection;
pub mod vulnerability_management;

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use crate::definitions::{AgentDefinition, AgentKind};
use crate::ingest::LogBatch;
use crate::kb::audit::AuditEntry;
use crate::kb::{Kb, KbError, Write};
use crate::messages::{Envelope, ResponseMode};
use crate::routing::RoutingTable;
use crate::telemetry::Metrics;
use crate::tools::response::Protected;
use crate::tools::{Call, ExecuteTool, Tool, ToolExecutor, ToolOutcome, ToolSetup, typed};

pub use shell::{AgentActor, AgentExited, ArmFault, Deliver, Dispatch, Fault};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The agent cannot go on; it is stopped and rebuilt from durable state.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The input cannot be handled (it is acknowledged and recorded as a dead letter).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The agent is not running (restarting or failed); try again later.
    #[error("agent `{0}` is not running")]
    Unavailable(String),
}

impl From<KbError> for AgentError {
    fn from(e: KbError) -> Self {
        AgentError::Fatal(format!("knowledge base: {e}"))
    }
}

/// What handling one input decided.
#[derive(Debug, Default)]
pub struct Effects {
    pub writes: Vec<Write>,
    pub audit: Vec<AuditEntry>,
    /// Envelopes to route; they are persisted in the same commit.
    pub route: Vec<Envelope>,
    /// Flush before acknowledging (something irreversible happened).
    pub flush: bool,
    /// Findings opened (for batch acknowledgements and metrics).
    pub findings: usize,
    /// The batch was applied before (a re-send after a restart): nothing to do.
    pub stale: bool,
}

/// Access to an agent's tools. The real one forwards to its `ToolExecutor`; tests may
/// substitute a mock.
#[cfg_attr(test, mockall::automock)]
pub trait Tools {
    /// Runs a call (with its types erased; [`call`](trait.Tools.html#method.call) is the
    /// typed way).
    fn execute(&self, call: Call) -> LocalBoxFuture<'_, ToolOutcome>;

    /// The executor itself, for tools a language model calls from other tasks.
    fn executor(&self) -> Option<actix::Addr<ToolExecutor>> {
        None
    }
}

impl dyn Tools + '_ {
    /// Runs tool `T` with these arguments.
    pub async fn call<T: Tool>(&self, args: T::Args) -> ToolOutcome<T::Output> {
        typed::<T>(self.execute(Call::new::<T>(args)).await)
    }
}

/// Forwards tool calls to the agent's executor actor.
pub struct ExecutorTools(pub actix::Addr<ToolExecutor>);

impl Tools for ExecutorTools {
    fn executor(&self) -> Option<actix::Addr<ToolExecutor>> {
        Some(self.0.clone())
    }

    fn execute(&self, call: Call) -> LocalBoxFuture<'_, ToolOutcome> {
        Box::pin(async move {
            match self.0.send(ExecuteTool(call)).await {
                Ok(o) => o,
                Err(e) => ToolOutcome::Failed(format!("tool executor unavailable: {e}")),
            }
        })
    }
}

/// The decision logic of one agent.
pub trait AgentLogic {
    fn on_envelope<'a>(
        &'a mut self,
        env: &'a Envelope,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>>;

    /// Records changed while handling envelopes that have not been written yet; the
    /// shell calls this once per delivered batch, so an incident touched by several
    /// envelopes is encoded once.
    fn pending_writes(&mut self) -> Vec<Write> {
        Vec::new()
    }

    /// Time passing (every second): actions that expire, approvals that lapse.
    fn on_tick<'a>(
        &'a mut self,
        now: chrono::DateTime<chrono::Utc>,
        _tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        let _ = now;
        Box::pin(async { Ok(Effects::default()) })
    }

    /// Log batches; only threat detection reads them.
    fn on_batch<'a>(
        &'a mut self,
        batch: LogBatch,
        _tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        let _ = batch;
        Box::pin(async { Err(AgentError::Rejected("this agent does not read log batches".into())) })
    }
}

/// What every agent shares: the knowledge base, the routing table, policy.
pub struct AgentEnv {
    pub kb: Kb,
    pub routes: Arc<RoutingTable>,
    pub protected: Arc<Protected>,
    /// What containment may touch and where it puts things.
    pub policy: Arc<crate::tools::response::actions::ContainPolicy>,
    /// The configured response mode; the stricter of it and the agent's autonomy wins.
    pub response_mode: ResponseMode,
    pub metrics: Arc<Metrics>,
    /// False for `warden replay`, whose database is thrown away: agents skip storing
    /// state that exists only to survive a restart (detector windows).
    pub durable: bool,
    /// Threat-intel feeds per threat-detection agent, loaded once and reloaded on change;
    /// they outlive agent restarts.
    pub intel: std::collections::HashMap<String, Arc<crate::tools::detection::ioc::FeedStore>>,
    /// Where notifications go (none configured: nowhere).
    pub notifier: Option<crate::outbox::Notifier>,
    /// The data directory (the advisory database is `<data_dir>/osv`).
    pub data_dir: std::path::PathBuf,
    /// The language model, when one is configured (within its budgets).
    pub reasoner: Option<Arc<crate::llm::Guarded>>,
    /// What the memory budget allows the agents' in-memory tables.
    pub memory: crate::config::MemoryShares,
}

#[cfg(test)]
impl AgentEnv {
    /// A copy to vary in a test (the notifier is dropped).
    pub fn clone_for_test(&self) -> AgentEnv {
        AgentEnv {
            kb: self.kb.clone(),
            routes: self.routes.clone(),
            protected: self.protected.clone(),
            policy: self.policy.clone(),
            response_mode: self.response_mode,
            metrics: self.metrics.clone(),
            durable: self.durable,
            intel: self.intel.clone(),
            notifier: None,
            data_dir: self.data_dir.clone(),
            reasoner: self.reasoner.clone(),
            memory: self.memory,
        }
    }
}

/// An agent's durable state, read from the knowledge base before it is (re)built.
pub struct Restored {
    /// What its stateful tools stored, keys relative to the agent's name.
    pub tools: Vec<(String, serde_json::Value)>,
    pub logic: RestoredLogic,
}

/// The durable decision state of an agent's logic.
pub enum RestoredLogic {
    /// Threat detection keeps its decision state in its tools.
    ThreatDetection,
    /// A custom agent keeps none.
    Custom,
    /// Incident response, built from the knowledge base (it reads its incidents one at
    /// a time and holds only those still in use).
    IncidentResponse(Box<incident_response::IncidentResponse>),
    VulnerabilityManagement {
        scans: Vec<crate::tools::vuln::scan::ScanReport>,
        plans: Vec<vulnerability_management::Plan>,
    },
}

/// Reads what an agent of this definition needs to resume.
pub async fn restore(def: &Arc<AgentDefinition>, env: &Arc<AgentEnv>) -> Result<Restored, KbError> {
    let kb = &env.kb;
    let base = format!("{}/", def.name);
    let mut tools = Vec::new();
    for spec in def.tools.iter().filter_map(|t| crate::tools::registry::spec(*t)) {
        let Some(prefix) = spec.state_prefix else { continue };
        for (key, value) in kb.states(&format!("{base}{prefix}")).await? {
            tools.push((key[base.len()..].to_string(), value));
        }
    }
    let logic = match def.kind {
        AgentKind::ThreatDetection => RestoredLogic::ThreatDetection,
        AgentKind::Custom => RestoredLogic::Custom,
        AgentKind::IncidentResponse => RestoredLogic::IncidentResponse(Box::new(
            incident_response::IncidentResponse::new(def.clone(), env.clone())?,
        )),
        AgentKind::VulnerabilityManagement => {
            let (scans, plans) = vulnerability_management::restore(&def.name, kb).await?;
            RestoredLogic::VulnerabilityManagement { scans, plans }
        }
    };
    Ok(Restored { tools, logic })
}

/// What an agent's tools are built from: its definition and the shared runtime.
pub fn tool_setup(def: &AgentDefinition, env: &AgentEnv) -> ToolSetup {
    ToolSetup {
        agent: def.name.clone(),
        detection: crate::tools::detection::DetectionParams {
            limits: def.detection.limits.within(&env.memory),
            ..def.detection.clone()
        },
        rule_files: def.rule_files.clone(),
        feeds: env.intel.get(&def.name).cloned(),
        assets: def.assets.clone(),
        playbooks: def.playbooks.clone(),
        targets: def.vuln.targets.clone(),
        policy: env.policy.clone(),
        durable: env.durable,
    }
}

/// Builds an agent's logic and its executor from its definition and restored state.
pub fn build(
    def: &Arc<AgentDefinition>,
    restored: Restored,
    env: &Arc<AgentEnv>,
) -> (Box<dyn AgentLogic>, ToolExecutor) {
    let executor = ToolExecutor::new(&tool_setup(def, env), &def.tools, restored.tools);
    let logic: Box<dyn AgentLogic> = match restored.logic {
        RestoredLogic::IncidentResponse(logic) => logic,
        RestoredLogic::VulnerabilityManagement { scans, plans } => {
            Box::new(vulnerability_management::VulnerabilityManagement::new(def.clone(), env.clone(), scans, plans))
        }
        RestoredLogic::ThreatDetection => Box::new(threat_detection::ThreatDetection::new(def.clone(), env.clone())),
        RestoredLogic::Custom => Box::new(custom::Custom::new(def.clone(), env.clone())),
    };
    (logic, executor)
}

/// What agents' unit tests share: an environment on a temporary database, and a
/// mocked language model behind the real guard.
#[cfg(test)]
pub mod test_support {
    use std::sync::Arc;

    use super::AgentEnv;
    use crate::definitions::{ActorsDir, Definitions, load};
    use crate::kb::Kb;
    use crate::llm::{LlmConfig, LlmError, MockReasoner, Provider, ReasonAnswer, ReasonRequest};

    pub fn definitions() -> Definitions {
        load(&ActorsDir::Disk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("actors"))).unwrap()
    }

    /// A model answering with `f`, as the provider "mock".
    pub fn model(
        f: impl Fn(ReasonRequest) -> futures_util::future::BoxFuture<'static, Result<ReasonAnswer, LlmError>>
        + Send
        + Sync
        + 'static,
    ) -> MockReasoner {
        let mut m = MockReasoner::new();
        m.expect_provider().return_const("mock".to_string());
        m.expect_model().return_const("mock".to_string());
        m.expect_reason().returning(f);
        m
    }

    /// The guard's limits in tests: a one-second timeout, generous budgets.
    pub fn llm_config() -> LlmConfig {
        LlmConfig {
            provider: Provider::OpenaiCompatible,
            model: "mock".into(),
            base_url: Some("http://127.0.0.1:1/v1".into()),
            api_key_env: None,
            timeout_secs: 1,
            calls_per_minute: 100,
            tokens_per_day: 1_000_000,
            max_turns: 2,
        }
    }

    /// An environment on a temporary database, with `model` if given. Its data directory
    /// is a fresh path that is not created (no test writes there; creating one per test
    /// left hundreds in the temporary directory).
    pub fn env(defs: &Definitions, model: Option<MockReasoner>) -> Arc<AgentEnv> {
        let data_dir = std::env::temp_dir().join(format!("warden-agent-test-{}", uuid::Uuid::now_v7()));
        Arc::new(AgentEnv {
            kb: Kb::temporary(),
            routes: Arc::new(crate::routing::RoutingTable::new(defs).unwrap()),
            protected: Arc::new(crate::tools::response::Protected::new(&[])),
            policy: Default::default(),
            response_mode: crate::messages::ResponseMode::Observe,
            metrics: Default::default(),
            durable: true,
            intel: Default::default(),
            notifier: None,
            data_dir,
            reasoner: model.map(|m| Arc::new(crate::llm::Guarded::new(Arc::new(m), &llm_config()))),
            memory: Default::default(),
        })
    }
}
