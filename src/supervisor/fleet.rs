//! An analysis node's part in the fleet (`[cluster]` on `warden run`), around the
//! supervisor:
//! - every node relays its findings (detections routed to an agent) to the findings
//!   stream instead of delivering them here: the relay reads them from the durable inbox
//!   in order, and acknowledges each inbox entry once JetStream stored it;
//! - the leader (the lease's holder) reads the findings stream and the enforcers'
//!   reports through the consumers the leaders share, and routes each to its agents
//!   (stored in their durable inboxes) before acknowledging it. A node that stops
//!   leading stops reading; what it had not acknowledged goes to the next leader.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;

use super::{Route, Supervisor};
use crate::cluster::fleet::{FLEET_ORIGIN, Fleet};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::kb::{Commit, Kb, Write};
use crate::messages::{Envelope, InboxEntry, Payload};

/// Whether an inbox entry goes to the leader rather than to this node's agents: a
/// detection made here for `relayed` (the agent detections are routed to by default;
/// one from the findings stream, or addressed to another agent, is delivered here).
pub fn for_the_leader(entry: &InboxEntry, relayed: &str) -> bool {
    entry.target == relayed
        && matches!(entry.envelope.payload, Payload::Detection(_))
        && !entry.envelope.origin.starts_with(FLEET_ORIGIN)
}

/// How many inbox entries the relay reads at a time.
const RELAY_BATCH: usize = 256;

/// Relays this node's findings for `target` (see [`for_the_leader`]), for as long as
/// the node runs: woken by `wake` when one is routed, and every second (a relay that
/// failed is tried again).
pub async fn relay(fleet: Arc<Fleet>, kb: Kb, target: String, wake: Arc<tokio::sync::Notify>) {
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        loop {
            let entries = match kb.inbox(&target, RELAY_BATCH).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "relay: cannot read the inbox");
                    break;
                }
            };
            let mut relayed = 0;
            for e in entries.iter().filter(|e| for_the_leader(e, &target)) {
                if let Err(err) = fleet.relay(&e.envelope).await {
                    tracing::warn!(error = %err, envelope = %e.envelope.id, "finding not relayed to the leader yet; trying again");
                    break;
                }
                let env = &e.envelope;
                let writes = vec![Write::InboxAck { created_at: env.created_at, id: env.id }];
                let audit = vec![AuditEntry::new(
                    "supervisor",
                    AuditKind::EnvelopeHandled,
                    env.id,
                    serde_json::json!({ "kind": env.payload.kind(), "relayed_to": "warden.findings", "node": fleet.node() }),
                )];
                if let Err(err) = kb.commit(Commit { writes, audit, flush: false }).await {
                    tracing::error!(error = %err, "relay: cannot record a relayed finding (it will be relayed again, stored once)");
                    break;
                }
                relayed += 1;
            }
            if relayed < RELAY_BATCH {
                break;
            }
        }
    }
}

/// While this node leads: the fleet's findings and the enforcers' reports routed to its
/// agents. For as long as the node runs.
pub async fn lead(fleet: Arc<Fleet>, supervisor: Addr<Supervisor>) {
    let leadership = fleet.leadership();
    loop {
        while leadership.token().is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tracing::info!(node = %fleet.node(), "leading the fleet's incident response");
        let findings = async {
            let s = fleet.findings().await?;
            forward(s, &supervisor, |d| {
                let mut e = d.item.clone();
                // Delivered here, never relayed again.
                e.origin = format!("{FLEET_ORIGIN}{}", e.origin);
                e
            })
            .await;
            Ok::<_, crate::cluster::ClusterError>(())
        };
        let reports = async {
            let s = fleet.reports().await?;
            forward(s, &supervisor, |d| {
                let r = d.item.clone();
                // The same report twice (delivered again) is one envelope.
                let name = format!("{}/{}/{}/{:?}/{}", r.host, r.target, r.revision, r.outcome, r.at);
                let mut e = Envelope::new("fleet", Payload::Enforcement(r));
                e.id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes());
                e.correlation_id = e.id;
                e
            })
            .await;
            Ok(())
        };
        let lost = async {
            while leadership.token().is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        // Either consumer ending (a lost connection, a deleted consumer) sets both up
        // again: what was not acknowledged comes again.
        let ended = tokio::select! {
            r = findings => r,
            r = reports => r,
            () = lost => {
                tracing::warn!(node = %fleet.node(), "no longer leading: the fleet's findings are left to the leader");
                continue;
            }
        };
        if let Err(e) = ended {
            tracing::warn!(error = %e, "the leader's consumers are unavailable; trying again");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Routes each delivery (stored in an agent's durable inbox) and then acknowledges it;
/// returns when the consumer ends or the supervisor is gone.
async fn forward<T, S>(
    deliveries: S,
    supervisor: &Addr<Supervisor>,
    envelope: impl Fn(&crate::cluster::Delivery<T>) -> Envelope,
) where
    S: futures_util::Stream<Item = Result<crate::cluster::Delivery<T>, crate::cluster::ClusterError>>,
{
    let mut deliveries = std::pin::pin!(deliveries);
    while let Some(d) = deliveries.next().await {
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "a leader's consumer failed");
                return;
            }
        };
        match supervisor.send(Route { envelope: envelope(&d), to: None }).await {
            Ok(Ok(_)) => d.ack().await,
            Ok(Err(e)) => tracing::warn!(error = %e, "a message from the fleet was not routed; it will come again"),
            Err(_) => return,
        }
    }
}
