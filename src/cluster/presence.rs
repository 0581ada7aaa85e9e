//! Where enforcers say they are alive and what they hold: one key per host in the
//! `warden_enforcers` bucket, written every ten seconds and after each change it makes
//! (kept a week after the last: a host that went quiet shows when it was last seen).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError};

pub const ENFORCERS_BUCKET: &str = "warden_enforcers";

/// How often an enforcer says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// An enforcer as it last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnforcerInfo {
    pub host: String,
    /// `observe` or `enforce`.
    pub mode: String,
    pub table: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Blocks in force on the host now (none in observe mode).
    pub in_force: usize,
    /// Decisions applied since it started (applied or found present).
    pub applied: u64,
    /// Decisions refused (protected here), failed, ineffective or stale since it started.
    pub not_applied: u64,
}

/// An enforcer's handle on the bucket.
#[derive(Clone)]
pub struct Presence {
    store: async_nats::jetstream::kv::Store,
}

impl Cluster {
    pub async fn presence(&self) -> Result<Presence, ClusterError> {
        Ok(Presence { store: self.bucket(ENFORCERS_BUCKET, 1, Duration::from_secs(7 * 86_400)).await? })
    }
}

impl Presence {
    pub async fn say(&self, info: &EnforcerInfo) -> Result<(), ClusterError> {
        let body = serde_json::to_vec(info).unwrap_or_default();
        self.store
            .put(&info.host, body.into())
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Stream { stream: ENFORCERS_BUCKET.into(), error: e.to_string() })
    }
}

impl Presence {
    /// Every enforcer seen within the week, by host.
    pub async fn enforcers(&self) -> Result<Vec<EnforcerInfo>, ClusterError> {
        super::values(&self.store, ENFORCERS_BUCKET).await
    }
}
