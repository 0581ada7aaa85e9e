//! Containment decisions as state, not events: one key per target address in a
//! JetStream key-value bucket. A block is the key's value with its end time; an unblock
//! deletes the key (the block's history stays in the bucket for the record). Every
//! enforcer watches the bucket: at start (and whenever its watch is set up again) it is given the last
//! value of every key — the whole current state — and then each change as it happens,
//! pushed by the server (no polling).
//!
//! Enforcers report what they did with each decision on `warden.enforcement.<host>`.

use std::net::IpAddr;
use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, Delivery};

/// The decisions bucket.
pub const BUCKET: &str = "warden_decisions";

/// The stream that keeps enforcers' reports for the deciding node.
pub const REPORTS_STREAM: &str = "WARDEN_ENFORCEMENT";

/// How long a decision's key outlives its last change in the bucket (the longest block
/// a decision can carry).
pub const MAX_DECISION_AGE: Duration = Duration::from_secs(30 * 86_400);

/// One containment decision for the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The address blocked.
    pub target: IpAddr,
    /// When the block ends (enforcers apply the time that remains).
    pub expires_at: DateTime<Utc>,
    /// The incident it contains, when one asked for it.
    #[serde(default)]
    pub incident: Option<uuid::Uuid>,
    pub reason: String,
    /// The node that decided.
    pub origin: String,
    pub decided_at: DateTime<Utc>,
    /// The deciding leader's fencing token: its lease's revision when it took the lease.
    /// An enforcer ignores a decision written after a newer leader took over by a
    /// leader whose token is older (see [`super::lease`]).
    #[serde(default)]
    pub fence: u64,
}

/// A change of the decisions as an enforcer sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `target` is to be blocked (until the decision's end).
    Block(Decision),
    /// `target` is not to be blocked any more.
    Unblock(IpAddr),
    /// The leader's lease changed hands or was renewed: decisions written after this
    /// revision with an older token than `token` come from a stale leader.
    Lease { holder: String, token: u64 },
    /// A key that is not a decision (written by something else): reported, ignored.
    Unreadable { key: String, why: String },
}

/// A change with where it stands in the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub change: Change,
    pub revision: u64,
    /// Changes still to come before the watcher is current (0: the state as of now is
    /// complete — what a re-sync waits for).
    pub pending: u64,
}

/// The key of an address: `ip.` and the address, `:` written `_` (keys allow no `:`).
pub fn key(ip: IpAddr) -> String {
    format!("ip.{}", ip.to_canonical().to_string().replace(':', "_"))
}

/// The address of a key.
pub fn target_of(key: &str) -> Option<IpAddr> {
    key.strip_prefix("ip.")?.replace('_', ":").parse().ok()
}

/// The outcome of one decision on one host.
pub use crate::messages::EnforcementOutcome as Outcome;
/// What an enforcer did with a decision, reported on `warden.enforcement.<host>`.
pub use crate::messages::EnforcementReport as Report;

/// The decisions bucket of a cluster.
#[derive(Clone)]
pub struct Decisions {
    pub(super) store: kv::Store,
    pub(super) cluster: Cluster,
}

impl Cluster {
    /// The decisions bucket and the enforcers' reports stream, created if absent.
    pub async fn decisions(&self) -> Result<Decisions, ClusterError> {
        let store = self.bucket(BUCKET, 5, MAX_DECISION_AGE).await?;
        // Enforcers' reports are kept until the deciding node has stored them: one that
        // was down, or subscribed late, misses none.
        self.week_stream(REPORTS_STREAM, "warden.enforcement.>").await?;
        Ok(Decisions { store, cluster: self.clone() })
    }
}

impl Decisions {
    /// Writes a block; returns its revision.
    pub async fn block(&self, d: &Decision) -> Result<u64, ClusterError> {
        let value = serde_json::to_vec(d).map_err(|e| self.err(&e))?;
        self.store.put(key(d.target), value.into()).await.map_err(|e| self.err(&e))
    }

    /// Lifts the block of `ip`.
    pub async fn unblock(&self, ip: IpAddr) -> Result<(), ClusterError> {
        self.store.delete(key(ip)).await.map_err(|e| self.err(&e))
    }

    /// Every decision as it stands, then every change: the last value of each key
    /// first (`pending` counts down to 0 when the state is complete), then each change
    /// as the server pushes it. Ends when the connection's watch ends.
    pub async fn watch(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<Update, ClusterError>> + use<>, ClusterError> {
        let w = self.store.watch_with_history(">").await.map_err(|e| self.err(&e))?;
        Ok(w.map(|e| {
            let e = e.map_err(|e| ClusterError::Stream { stream: BUCKET.into(), error: e.to_string() })?;
            Ok(Update { change: change_of(&e), revision: e.revision, pending: e.delta })
        }))
    }

    /// How many decisions are in force (address keys with a value).
    pub async fn live_keys(&self) -> Result<usize, ClusterError> {
        let keys = self.store.keys().await.map_err(|e| self.err(&e))?;
        Ok(keys.filter(|k| futures_util::future::ready(k.as_ref().is_ok_and(|k| target_of(k).is_some()))).count().await)
    }

    /// Every enforcer's reports, through the durable consumer `consumer`.
    pub async fn reports(
        &self,
        consumer: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<Delivery<Report>, ClusterError>> + use<>, ClusterError> {
        // A report not stored (routing failed) comes again soon.
        self.cluster.pull(REPORTS_STREAM, consumer, Duration::from_secs(5)).await
    }

    /// Publishes an enforcer's report.
    pub async fn report(&self, r: &Report) -> Result<(), ClusterError> {
        let subject = format!("warden.enforcement.{}", r.host);
        let body = serde_json::to_vec(r).map_err(|e| self.err(&e))?;
        let client = self.cluster.js.client();
        client
            .publish(subject.clone(), body.into())
            .await
            .map_err(|e| ClusterError::Publish { subject, error: e.to_string() })
    }

    fn err(&self, e: &dyn std::fmt::Display) -> ClusterError {
        ClusterError::Stream { stream: BUCKET.into(), error: e.to_string() }
    }
}

fn change_of(e: &kv::Entry) -> Change {
    if e.key == super::lease::LEASE_KEY {
        return match super::lease::token_of(e) {
            Some((holder, token)) => Change::Lease { holder, token },
            None => Change::Unreadable { key: e.key.clone(), why: "not a lease".into() },
        };
    }
    match e.operation {
        kv::Operation::Delete | kv::Operation::Purge => match target_of(&e.key) {
            Some(ip) => Change::Unblock(ip),
            None => Change::Unreadable { key: e.key.clone(), why: "not an address key".into() },
        },
        kv::Operation::Put => match serde_json::from_slice::<Decision>(&e.value) {
            // The key is the truth about the target: a value naming another address is
            // not applied to either.
            Ok(d) if target_of(&e.key) == Some(d.target.to_canonical()) => Change::Block(d),
            Ok(d) => Change::Unreadable {
                key: e.key.clone(),
                why: format!("the value names {} under another key", d.target),
            },
            Err(err) => Change::Unreadable { key: e.key.clone(), why: err.to_string() },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_address_and_back() {
        for ip in ["203.0.113.7", "2001:db8::7", "::ffff:198.51.100.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let k = key(ip);
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{k}");
            assert_eq!(target_of(&k), Some(ip.to_canonical()));
        }
        assert_eq!(key("::ffff:198.51.100.1".parse().unwrap()), "ip.198.51.100.1");
        assert_eq!(target_of("ip.not-an-address"), None);
        assert_eq!(target_of("other.1.2.3.4"), None);
    }
}
