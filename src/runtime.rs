//! Assembles a running Warden: knowledge base, supervisor with its agents, sources.
//! `warden run`, `warden replay` and the tests all start through here.

use std::sync::Arc;

use actix::prelude::*;

use crate::agents::AgentEnv;
use crate::cluster::source::NatsSource;
use crate::config::{Config, SourceKind};
use crate::definitions::{AgentKind, Definitions};
use crate::ingest::syslog::{Syslog, Transport};
use crate::kb::{Kb, KbError, KnowledgeBase};
use crate::routing::{RouteError, RoutingTable};
use crate::store::Store;
use crate::supervisor::Supervisor;
use crate::telemetry::Metrics;
use crate::tools::response::Protected;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("knowledge base: {0}")]
    Kb(#[from] KbError),
    #[error("agent definitions: {0}")]
    Routes(#[from] RouteError),
    #[error("notifications: {0}")]
    Notify(#[from] crate::outbox::OutboxError),
    #[error("language model: {0}")]
    Llm(#[from] crate::llm::rig::LlmConfigError),
    #[error("syslog source `{0}` has no listen address")]
    NoListen(String),
    #[error("syslog source `{0}` did not start")]
    NotStarted(String),
    #[error(transparent)]
    Bind(#[from] crate::ingest::syslog::BindError),
    #[error(transparent)]
    Journal(#[from] crate::ingest::journald::JournalError),
}

/// Handles to a running Warden.
pub struct Runtime {
    pub supervisor: Addr<Supervisor>,
    /// The mode each containment action runs in (the configured mode, unless the
    /// deciding agent's definition restricts it).
    pub containment: Option<crate::definitions::ContainmentModes>,
    pub kb: Kb,
    pub metrics: Arc<Metrics>,
    pub detector_state_key: Option<String>,
    /// With `[cluster]`: this node's handle on the fleet.
    pub fleet: Option<Arc<crate::cluster::fleet::Fleet>>,
    /// The lanes sources match their batches in (none without Sigma rules).
    lanes: Option<Arc<dyn crate::ingest::LaneMaker>>,
    arbiters: Vec<Arbiter>,
}

impl Runtime {
    /// Starts the knowledge base and the supervisor (which starts the agents). Must be
    /// called inside an actix system.
    pub fn start(cfg: &Config, defs: &Definitions, store: Store) -> Result<Runtime, RuntimeError> {
        Self::start_with(cfg, defs, store, true)
    }

    /// Like [`Runtime::start`]; `durable = false` for throw-away databases (replay).
    pub fn start_with(cfg: &Config, defs: &Definitions, store: Store, durable: bool) -> Result<Runtime, RuntimeError> {
        let routes = Arc::new(RoutingTable::new(defs)?);
        let containment = routes
            .default_handler(crate::messages::PayloadKind::Containment)
            .and_then(|a| defs.agents.get(a))
            .map(|d| crate::definitions::ContainmentModes::of(d, cfg.response.mode));
        let kb_state = KnowledgeBase::new(store)?;
        let kb_arbiter = Arbiter::new();
        let (health, reader) = (kb_state.health(), kb_state.reader());
        let kb = Kb { addr: KnowledgeBase::start_in_arbiter(&kb_arbiter.handle(), move |_| kb_state), health, reader };
        let metrics = Arc::new(Metrics::default());
        let protected = Arc::new(Protected::new(&cfg.response.protected));
        let r = &cfg.response;
        let policy = Arc::new(crate::tools::response::actions::ContainPolicy {
            protected: protected.clone(),
            protected_accounts: r.protected_accounts.clone(),
            management: r.management.clone(),
            quarantine_dir: r.quarantine_dir.clone().unwrap_or_else(|| cfg.data_dir(None).join("quarantine")),
            remote_isolate: r.isolate_command.clone(),
            remote_release: r.release_command.clone(),
            passwd: "/etc/passwd".into(),
            evidence_dir: r.evidence_dir.clone().unwrap_or_else(|| cfg.data_dir(None).join("evidence")),
            collectors: r.collectors.clone(),
            // A fleet's blocks are decisions for every host's enforcer (replays never
            // decide for a fleet).
            fleet: cfg.cluster.clone().filter(|_| durable).map(|c| Arc::new(crate::cluster::fleet::Fleet::new(c))),
        });
        let notifier = match &cfg.notify {
            Some(n) if durable => Some(crate::outbox::Notifier::start(n.clone(), metrics.clone(), kb.clone())?),
            _ => None,
        };
        // Replay's throw-away runs never spend the model's budget.
        let reasoner = match &cfg.llm {
            Some(l) if durable => {
                let r = crate::llm::rig::RigReasoner::new(l)?;
                tracing::info!(provider = l.provider.as_str(), model = %l.model, "language model configured");
                Some(Arc::new(crate::llm::Guarded::new(Arc::new(r), l)))
            }
            _ => None,
        };
        metrics.memory_budget_bytes.store(cfg.storage.memory_budget_mb << 20, std::sync::atomic::Ordering::Relaxed);
        let shares = cfg.storage.memory_shares();
        for d in defs.agents.values().filter(|d| d.kind == AgentKind::ThreatDetection) {
            let (asked, used) = (d.detection.limits, d.detection.limits.within(&shares));
            if asked != used {
                tracing::warn!(
                    agent = %d.name,
                    memory_budget_mb = cfg.storage.memory_budget_mb,
                    addresses = used.addresses,
                    correlation_groups = used.correlation_groups,
                    campaigns = used.campaigns,
                    network_keys = used.network_keys,
                    "the memory budget lowers the agent's [detection.limits] (asked: {} addresses, {} correlation groups, {} campaigns, {} network keys)",
                    asked.addresses,
                    asked.correlation_groups,
                    asked.campaigns,
                    asked.network_keys
                );
            }
        }
        let fleet = policy.fleet.clone();
        let env = Arc::new(AgentEnv {
            reasoner,
            memory: shares,
            notifier,
            data_dir: cfg.data_dir(None),
            kb: kb.clone(),
            routes,
            protected,
            policy,
            response_mode: cfg.response.mode,
            metrics: metrics.clone(),
            durable,
            intel: defs
                .agents
                .values()
                .filter(|d| !d.feeds.is_empty())
                .map(|d| {
                    let store = crate::tools::detection::ioc::FeedStore::new(d.feeds.clone(), Some(metrics.clone()));
                    if durable {
                        crate::ingest::feeds::watch(
                            &store,
                            std::time::Duration::from_secs(cfg.ingest.feed_poll_secs.max(1)),
                        );
                    }
                    (d.name.clone(), store)
                })
                .collect(),
        });
        let kb_relay = env.kb.clone();
        let relayed = env.routes.default_handler(crate::messages::PayloadKind::Detection).map(str::to_string);
        let supervisor = match (&fleet, relayed) {
            (Some(fleet), Some(relayed)) => {
                // Findings go to the leader; the lease says who leads.
                let wake = Arc::new(tokio::sync::Notify::new());
                let supervisor = Supervisor::new(defs, env).relaying(relayed.clone(), wake.clone()).start();
                let analyses = cfg.sources.iter().any(|s| s.kind == SourceKind::Nats);
                actix_rt::spawn(crate::cluster::lease::hold(fleet.clone(), analyses));
                actix_rt::spawn(crate::supervisor::fleet::relay(fleet.clone(), kb_relay, relayed, wake));
                actix_rt::spawn(crate::supervisor::fleet::lead(fleet.clone(), supervisor.clone()));
                supervisor
            }
            _ => Supervisor::new(defs, env).start(),
        };
        let reader = defs.agents.values().find(|d| d.kind == AgentKind::ThreatDetection);
        let detector_state_key = reader.map(|d| crate::tools::detection::analyze_logs::head_key(&d.name));
        let lanes = reader.and_then(lanes_of);
        Ok(Runtime {
            supervisor,
            containment,
            kb,
            metrics,
            detector_state_key,
            fleet,
            lanes,
            arbiters: vec![kb_arbiter],
        })
    }

    /// Where sources send their batches: the supervisor, each batch matched against the
    /// detection agent's Sigma rules on the source's own thread first (its lane).
    pub fn log_sink(&self) -> crate::ingest::LogSink {
        let to = self.supervisor.clone().recipient();
        match &self.lanes {
            Some(lanes) => crate::ingest::LogSink::with_lane(to, lanes.clone()),
            None => to.into(),
        }
    }

    /// Starts the configured sources, each on its own thread. Fails if a syslog source
    /// cannot listen on its address; returns the addresses the syslog sources listen on.
    pub fn start_sources(&mut self, cfg: &Config) -> Result<Vec<(String, std::net::SocketAddr)>, RuntimeError> {
        let mut listening = Vec::new();
        for s in &cfg.sources {
            let arbiter = Arbiter::new();
            let (source, format, ingest) = (s.name.clone(), s.format, cfg.ingest.clone());
            let (kb, sink, metrics) = (self.kb.clone(), self.log_sink(), self.metrics.clone());
            match s.kind {
                SourceKind::File | SourceKind::Journald | SourceKind::Stdin => {
                    crate::ingest::start_reader(&arbiter.handle(), s, ingest, kb, sink, metrics)?;
                }
                SourceKind::Nats => {
                    // Validated: a NATS source comes with `[cluster]`.
                    let Some(cluster) = cfg.cluster.clone() else { continue };
                    let subject =
                        s.subject.clone().unwrap_or_else(|| crate::config::cluster::LOGS_SUBJECTS.to_string());
                    let crash_before_ack = cfg.testing.crash_at == Some(crate::config::CrashPoint::BeforeAck);
                    NatsSource::start_in_arbiter(&arbiter.handle(), move |_| NatsSource {
                        source,
                        subject,
                        cluster,
                        kb,
                        sink,
                        metrics,
                        crash_before_ack,
                    });
                }
                SourceKind::SyslogUdp | SourceKind::SyslogTcp => {
                    let transport = if s.kind == SourceKind::SyslogUdp { Transport::Udp } else { Transport::Tcp };
                    let listen = s.listen.ok_or_else(|| RuntimeError::NoListen(s.name.clone()))?;
                    let limits = s.syslog_limits();
                    let (tx, rx) = std::sync::mpsc::channel();
                    let name = source.clone();
                    Syslog::start_in_arbiter(&arbiter.handle(), move |_| Syslog {
                        source,
                        listen,
                        transport,
                        format,
                        cfg: ingest,
                        limits,
                        sink,
                        metrics,
                        bound: Some(tx),
                    });
                    let addr = rx
                        .recv_timeout(std::time::Duration::from_secs(10))
                        .map_err(|_| RuntimeError::NotStarted(name.clone()))??;
                    listening.push((name, addr));
                }
            }
            self.arbiters.push(arbiter);
        }
        Ok(listening)
    }

    /// Waits until the threat-detection agent can take log batches.
    pub async fn ready(&self) {
        while !self.supervisor.send(crate::supervisor::ReaderUp).await.unwrap_or(false) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Waits until every routed envelope has been handled.
    pub async fn quiesce(&self) {
        loop {
            if self.supervisor.send(crate::supervisor::Idle).await.unwrap_or(true) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Stops agents and sources and makes the knowledge base durable.
    pub async fn shutdown(self) -> Result<(), KbError> {
        let _ = self.supervisor.send(crate::supervisor::Shutdown).await;
        let res = self.kb.flush().await;
        for a in &self.arbiters {
            a.stop();
        }
        res
    }
}

/// The lanes of the detection agent's Sigma rules (matched on each source's own thread),
/// when it analyses logs with rules.
fn lanes_of(reader: &crate::definitions::AgentDefinition) -> Option<Arc<dyn crate::ingest::LaneMaker>> {
    use crate::tools::detection::analyze_logs::AnalyzeLogs;
    if !reader.tools.contains(&crate::tools::ToolName::of::<AnalyzeLogs>()) {
        return None;
    }
    crate::tools::detection::sigma::SigmaLanes::new(reader.rule_files.clone())
}
