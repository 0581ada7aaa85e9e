//! `Fleet`: an analysis node's handle on the cluster (`warden run` with `[cluster]`).
//!
//! It connects on first use (the node starts whether or not the servers are up) and
//! keeps the connection. Through it the node
//! - holds or waits for the leader's lease ([`super::lease`]), and knows its fencing token;
//! - relays its findings to the `warden.findings` stream, where the leader reads them
//!   (every node's, its own included) through one durable consumer shared by whichever
//!   node leads, so a new leader goes on where the old one stopped;
//! - as leader, writes containment decisions (each with its fencing token) and reads the
//!   enforcers' reports, again through a consumer shared by the leaders.

use std::sync::Arc;
use std::time::Duration;

use super::decisions::{Decision, Decisions, Report};
use super::lease::Leadership;
use super::{Cluster, ClusterError, Delivery};
use crate::config::ClusterConfig;
use crate::messages::Envelope;

/// The stream of findings for the leader.
pub const FINDINGS_STREAM: &str = "WARDEN_FINDINGS";

/// The leaders' consumers (one name, whichever node leads).
const LEADER_FINDINGS: &str = "warden-leader-findings";
const LEADER_REPORTS: &str = "warden-leader-enforcement";

/// The origin of an envelope that came from the findings stream (`fleet:<node>`): not
/// relayed again.
pub const FLEET_ORIGIN: &str = "fleet:";

pub struct Fleet {
    cfg: ClusterConfig,
    node: String,
    leadership: Arc<Leadership>,
    connected: tokio::sync::OnceCell<Connected>,
}

/// The node's one connection and the buckets it uses, made once.
pub(super) struct Connected {
    pub(super) decisions: Decisions,
    pub(super) nodes: async_nats::jetstream::kv::Store,
    presence: super::presence::Presence,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Fleet {
    pub fn new(cfg: ClusterConfig) -> Fleet {
        let node = cfg.node_name();
        Fleet { cfg, node, leadership: Arc::default(), connected: tokio::sync::OnceCell::new() }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// This node's view of who leads.
    pub fn leadership(&self) -> Arc<Leadership> {
        self.leadership.clone()
    }

    /// The connection and its buckets, made the first time (within ten seconds; a
    /// failure is tried again at the next use).
    pub(super) async fn connected(&self) -> Result<&Connected, ClusterError> {
        self.connected
            .get_or_try_init(|| async {
                let cluster = Cluster::connect(&self.cfg, &self.node, Duration::from_secs(10)).await?;
                // Everything hosts use, made by the analysis node: hosts' credentials
                // need not create anything.
                cluster.logs_stream().await?;
                cluster.findings_stream().await?;
                Ok(Connected {
                    presence: cluster.presence().await?,
                    nodes: cluster.nodes().await?,
                    decisions: cluster.decisions().await?,
                })
            })
            .await
    }

    /// The decisions bucket.
    pub async fn decisions(&self) -> Result<&Decisions, ClusterError> {
        Ok(&self.connected().await?.decisions)
    }

    /// Writes a block for the fleet, with this node's fencing token; refused unless this
    /// node leads. Returns the decision's revision.
    pub async fn block(&self, mut d: Decision) -> Result<u64, ClusterError> {
        d.fence = self.token()?;
        self.decisions().await?.block(&d).await
    }

    /// Lifts a block for the fleet; refused unless this node leads.
    pub async fn unblock(&self, ip: std::net::IpAddr) -> Result<(), ClusterError> {
        self.token()?;
        self.decisions().await?.unblock(ip).await
    }

    fn token(&self) -> Result<u64, ClusterError> {
        self.leadership.token().ok_or_else(|| ClusterError::NotLeader {
            node: self.node.clone(),
            leader: self.leadership.leader().unwrap_or_else(|| "none yet".into()),
        })
    }

    /// Publishes a finding's envelope for the leader; `Ok` once JetStream stored it. The
    /// envelope's id is the message's id: published again within ten minutes (a crash
    /// before the relay was recorded), it is stored once.
    pub async fn relay(&self, e: &Envelope) -> Result<(), ClusterError> {
        let cluster = &self.decisions().await?.cluster;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, e.id.to_string().as_str());
        let body = serde_json::to_vec(e)
            .map_err(|err| ClusterError::Publish { subject: "warden.findings".into(), error: err.to_string() })?;
        cluster.publish_acked(format!("warden.findings.{}", self.node), headers, body).await
    }

    /// The fleet's findings, for the leader.
    pub async fn findings(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<Delivery<Envelope>, ClusterError>> + use<>, ClusterError> {
        let cluster = &self.decisions().await?.cluster;
        cluster.pull(FINDINGS_STREAM, LEADER_FINDINGS, Duration::from_secs(10)).await
    }

    /// The enforcers' reports, for the leader.
    pub async fn reports(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<Delivery<Report>, ClusterError>> + use<>, ClusterError> {
        self.decisions().await?.reports(LEADER_REPORTS).await
    }
}

/// The cluster as `warden status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetStatus {
    pub node: String,
    /// Whether this node holds the lease (and may decide).
    pub leading: bool,
    pub leader: Option<String>,
    /// The leader's fencing token.
    pub token: Option<u64>,
    /// The live analysis nodes.
    pub nodes: Vec<super::lease::NodeInfo>,
    /// Every enforcer that reported within the bucket's week, with when it last did.
    pub enforcers: Vec<super::presence::EnforcerInfo>,
    /// Blocks in force in the decisions bucket.
    pub decisions: usize,
}

impl Fleet {
    /// The cluster as it stands.
    pub async fn status(&self) -> Result<FleetStatus, ClusterError> {
        let c = self.connected().await?;
        // Read before the lease: a node that took it meanwhile is not said to lead
        // under its predecessor's token.
        let mine = self.leadership.token();
        let lease = super::lease::current(&c.decisions).await?;
        let nodes = super::lease::live_nodes(&c.nodes).await?;
        let enforcers = c.presence.enforcers().await?;
        Ok(FleetStatus {
            node: self.node.clone(),
            leading: mine.is_some()
                && lease.as_ref().is_some_and(|(holder, token)| *holder == self.node && mine == Some(*token)),
            leader: lease.as_ref().map(|l| l.0.clone()),
            token: lease.map(|l| l.1),
            nodes,
            enforcers,
            decisions: c.decisions.live_keys().await?,
        })
    }
}

impl Cluster {
    /// The findings stream, created if absent (a finding relayed twice within ten
    /// minutes is stored once).
    pub async fn findings_stream(&self) -> Result<(), ClusterError> {
        self.week_stream(FINDINGS_STREAM, "warden.findings.>").await
    }
}
