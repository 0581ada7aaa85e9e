//! Who leads: incident response runs on one analysis node at a time, the holder of a
//! lease kept as the key `lease` of the decisions bucket.
//!
//! The leader renews the lease every third of `[cluster] lease_secs`, each renewal a
//! compare-and-set on the key's last revision. A standby reads the key as often; when it
//! has seen the same revision for `lease_secs` (by its own clock: no clocks are
//! compared), the leader is gone and it takes the lease with a compare-and-set on that
//! revision — of two standbys, one wins. A node that restarts takes its own lease back
//! at once. The lease's revision when a node took it is its *fencing token*: every
//! decision carries it, and since the lease lives in the decisions bucket, one stream
//! orders both — a decision written after a newer token's lease with an older token
//! comes from a leader that does not know it was replaced, and enforcers ignore it.
//! A leader that cannot renew stops acting a third of the lease before anyone may take
//! over.
//!
//! Every analysis node also says it is alive in the `warden_nodes` bucket (one key per
//! node, gone `lease_secs` after its last renewal): the live nodes share the shipping
//! hosts between them ([`super::source`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError};

/// The lease's key in the decisions bucket.
pub const LEASE_KEY: &str = "lease";

/// The live analysis nodes.
pub const NODES_BUCKET: &str = "warden_nodes";

/// The lease's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    /// The holder's token; `None` in the write that took the lease (its own revision).
    #[serde(default)]
    pub term: Option<u64>,
    pub renewed_at: DateTime<Utc>,
}

/// An analysis node's presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub leader: bool,
    /// Whether it reads shipped logs (has a `kind = "nats"` source): the hosts are
    /// shared among the nodes that do.
    #[serde(default)]
    pub analyses: bool,
}

/// The holder and token a lease entry says, if it is a lease.
pub fn token_of(e: &kv::Entry) -> Option<(String, u64)> {
    if !matches!(e.operation, kv::Operation::Put) {
        return None;
    }
    let l: Lease = serde_json::from_slice(&e.value).ok()?;
    Some((l.holder, l.term.unwrap_or(e.revision)))
}

/// This node's view of the leadership, shared with whoever acts as leader.
#[derive(Debug, Default)]
pub struct Leadership {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// This node's token while it holds the lease, and until when it may act on it.
    held: Option<(u64, Instant)>,
    /// The holder as last read.
    leader: Option<String>,
}

impl Leadership {
    /// This node's fencing token, while it leads.
    pub fn token(&self) -> Option<u64> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.held.filter(|(_, until)| Instant::now() < *until).map(|(t, _)| t)
    }

    /// The leader as this node last saw it.
    pub fn leader(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).leader.clone()
    }

    fn set(&self, held: Option<(u64, Instant)>, leader: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.held = held;
        s.leader = leader;
    }
}

impl Cluster {
    /// The live nodes bucket (a key lasts `lease_secs` after its last renewal).
    pub async fn nodes(&self) -> Result<kv::Store, ClusterError> {
        self.bucket(NODES_BUCKET, 1, Duration::from_secs(self.cfg.lease_secs)).await
    }
}

/// The live analysis nodes, by name.
pub async fn live_nodes(nodes: &kv::Store) -> Result<Vec<NodeInfo>, ClusterError> {
    super::values(nodes, NODES_BUCKET).await
}

/// Keeps this node in the nodes bucket and competes for the lease, for as long as the
/// process runs, through the node's connection (made again while it cannot be).
pub async fn hold(fleet: Arc<super::fleet::Fleet>, analyses: bool) {
    let started_at = Utc::now();
    loop {
        let Err(e) = session(&fleet, analyses, started_at).await;
        tracing::warn!(node = %fleet.node(), error = %e, "leadership: cluster unreachable; trying again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Renews this node's presence and takes a step for the lease every third of the lease,
/// until the cluster fails to answer.
async fn session(
    fleet: &super::fleet::Fleet,
    analyses: bool,
    started_at: DateTime<Utc>,
) -> Result<std::convert::Infallible, ClusterError> {
    let c = fleet.connected().await?;
    let node = fleet.node().to_string();
    let lease = Duration::from_secs(fleet.config().lease_secs);
    let leadership = fleet.leadership();
    let mut contender = Contender { node: node.clone(), lease, seen: None, mine: None };
    let mut tick = tokio::time::interval(lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let step = contender.step(&c.decisions.store, &leadership).await;
        let info = NodeInfo {
            node: node.clone(),
            started_at,
            seen_at: Utc::now(),
            leader: contender.mine.is_some(),
            analyses,
        };
        let body = serde_json::to_vec(&info).unwrap_or_default();
        let put = c.nodes.put(&node, body.into()).await;
        step?;
        put.map_err(|e| ClusterError::Stream { stream: NODES_BUCKET.into(), error: e.to_string() })?;
    }
}

/// One node's side of the lease.
struct Contender {
    node: String,
    lease: Duration,
    /// The lease's revision as last read, and since when (this node's clock).
    seen: Option<(u64, Instant)>,
    /// While leading: the lease's last revision and this node's token.
    mine: Option<(u64, u64)>,
}

impl Contender {
    async fn step(&mut self, store: &kv::Store, leadership: &Leadership) -> Result<(), ClusterError> {
        let err = |e: &dyn std::fmt::Display| ClusterError::Stream { stream: LEASE_KEY.into(), error: e.to_string() };
        let now = Instant::now();
        // May act until a third of the lease before anyone may take it.
        let until = now + self.lease - self.lease / 3;
        if let Some((rev, token)) = self.mine {
            let renewal = self.value(Some(token));
            match store.update(LEASE_KEY, renewal.into(), rev).await {
                Ok(rev) => {
                    self.mine = Some((rev, token));
                    leadership.set(Some((token, until)), Some(self.node.clone()));
                    return Ok(());
                }
                Err(e) => {
                    // Renewed but the answer was lost, or replaced: the key says which.
                    let entry = store.entry(LEASE_KEY).await.map_err(|e| err(&e))?;
                    match entry.as_ref().and_then(|e| token_of(e).map(|t| (t, e.revision))) {
                        Some(((holder, t), rev)) if holder == self.node && t == token => {
                            self.mine = Some((rev, token));
                            return Ok(());
                        }
                        other => {
                            let holder = other.map(|((h, _), _)| h);
                            tracing::warn!(node = %self.node, error = %e, new = ?holder, "leadership lost");
                            self.mine = None;
                            leadership.set(None, holder);
                        }
                    }
                }
            }
        }
        let entry = store.entry(LEASE_KEY).await.map_err(|e| err(&e))?;
        let current = entry.as_ref().and_then(|e| token_of(e).map(|(h, _)| (h, e.revision)));
        let taken = match &current {
            None => store.create(LEASE_KEY, self.value(None).into()).await.ok(),
            Some((holder, rev)) => {
                let expired = match self.seen {
                    Some((seen, since)) if seen == *rev => now.duration_since(since) >= self.lease,
                    _ => {
                        self.seen = Some((*rev, now));
                        false
                    }
                };
                if expired || *holder == self.node {
                    store.update(LEASE_KEY, self.value(None).into(), *rev).await.ok()
                } else {
                    None
                }
            }
        };
        match taken {
            Some(rev) => {
                tracing::info!(node = %self.node, token = rev, previous = ?current.map(|c| c.0), "leadership taken");
                self.mine = Some((rev, rev));
                leadership.set(Some((rev, until)), Some(self.node.clone()));
            }
            None => leadership.set(None, current.map(|c| c.0)),
        }
        Ok(())
    }

    fn value(&self, term: Option<u64>) -> Vec<u8> {
        let l = Lease { holder: self.node.clone(), term, renewed_at: Utc::now() };
        serde_json::to_vec(&l).unwrap_or_default()
    }
}

/// The lease as it stands: holder and token.
pub async fn current(decisions: &super::decisions::Decisions) -> Result<Option<(String, u64)>, ClusterError> {
    let e = decisions
        .store
        .entry(LEASE_KEY)
        .await
        .map_err(|e| ClusterError::Stream { stream: LEASE_KEY.into(), error: e.to_string() })?;
    Ok(e.as_ref().and_then(token_of))
}
