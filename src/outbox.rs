//! Notifications: a webhook (generic JSON, or a Slack-compatible payload) with retries
//! and exponential backoff. Sending never blocks a playbook: a notification is a record
//! in a durable outbox (the `state` tree, `outbox/<time-ordered id>`), written in the
//! same commit as the decision that raised it; a background task delivers the outbox in
//! order and deletes each record once delivered or once its retries are exhausted
//! (counted on `/metrics` and logged). A crash loses nothing: after a restart the
//! outbox is delivered again — at least once (a notification delivered just before a
//! crash, whose deletion was not yet committed, is sent a second time).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::telemetry::Metrics;

pub use crate::config::{NotifyConfig, WebhookFormat};

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub incident: uuid::Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: String,
    pub priority: String,
    pub title: String,
    pub text: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Notification {
    /// A notification about an incident as it stands.
    pub fn about(inc: &crate::messages::Incident, text: String, at: chrono::DateTime<chrono::Utc>) -> Notification {
        Notification {
            incident: inc.id,
            kind: inc.kind.clone(),
            severity: inc.severity.to_string(),
            priority: format!("{:?}", inc.priority),
            title: inc.title.clone(),
            text,
            at,
        }
    }

    /// The body for the configured format.
    pub fn body(&self, format: WebhookFormat) -> serde_json::Value {
        match format {
            WebhookFormat::Generic => {
                let mut v = serde_json::to_value(self).unwrap_or_default();
                v["source"] = "warden".into();
                v
            }
            WebhookFormat::Slack => {
                // Slack reads `<…>` as links and mentions: escape them (its own rules).
                let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                serde_json::json!({ "text": format!(
                    "*[{}] {}* ({}, {}, incident {})\n{}",
                    esc(&self.severity), esc(&self.title), esc(&self.kind), esc(&self.priority), self.incident, esc(&self.text)
                ) })
            }
        }
    }
}

/// Why notifications cannot be delivered at all.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("[notify] webhook `{0}` is not an http(s) URL")]
    Url(String),
    #[error("cannot build the webhook client: {0}")]
    Client(reqwest::Error),
}

/// The sending side, cloned into whoever notifies.
#[derive(Debug, Clone)]
pub struct Notifier {
    wake: Arc<tokio::sync::Notify>,
}

/// The outbox's key prefix in the state tree.
pub const OUTBOX: &str = "outbox/";

/// How often the outbox is read when nothing wakes the delivery task.
const OUTBOX_POLL: Duration = Duration::from_secs(1);

impl Notifier {
    /// The outbox record for a notification, to commit with the decision that raised
    /// it; the delivery task is woken to look (it also looks every second).
    pub fn queue(&self, n: &Notification) -> crate::kb::Write {
        self.wake.notify_one();
        crate::kb::Write::State {
            key: format!("{OUTBOX}{}", uuid::Uuid::now_v7()),
            value: serde_json::to_value(n).unwrap_or_default(),
        }
    }

    /// Starts the delivery task on the current (actix) runtime.
    pub fn start(cfg: NotifyConfig, metrics: Arc<Metrics>, kb: crate::kb::Kb) -> Result<Notifier, OutboxError> {
        if !(cfg.webhook.starts_with("http://") || cfg.webhook.starts_with("https://")) {
            return Err(OutboxError::Url(crate::text::sanitize(&cfg.webhook, 256)));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(OutboxError::Client)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = wake.clone();
        let m = metrics.clone();
        actix_rt::spawn(async move {
            loop {
                let _ = tokio::time::timeout(OUTBOX_POLL, woken.notified()).await;
                let pending = match kb.states(OUTBOX).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the notification outbox");
                        continue;
                    }
                };
                for (key, value) in pending {
                    deliver(&cfg, &client, &m, &key, value).await;
                    let done = crate::kb::Commit {
                        writes: vec![crate::kb::Write::StateDelete { key }],
                        audit: Vec::new(),
                        flush: false,
                    };
                    if let Err(e) = kb.commit(done).await {
                        tracing::error!(error = %e, "cannot remove a notification from the outbox");
                    }
                }
            }
        });
        Ok(Notifier { wake })
    }
}

/// One outbox record to the webhook, with retries; counted either way.
async fn deliver(cfg: &NotifyConfig, client: &reqwest::Client, m: &Metrics, key: &str, value: serde_json::Value) {
    let n: Notification = match serde_json::from_value(value) {
        Ok(n) => n,
        Err(e) => {
            m.notifications_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(key, error = %e, "unreadable notification in the outbox: dropped");
            return;
        }
    };
    let body = n.body(cfg.format);
    let mut wait = Duration::from_millis(cfg.backoff_ms);
    let mut delivered = false;
    for attempt in 0..=cfg.retries {
        match client.post(&cfg.webhook).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                delivered = true;
                break;
            }
            Ok(r) => tracing::warn!(attempt, status = %r.status(), "webhook refused a notification"),
            Err(e) => tracing::warn!(attempt, error = %e, "webhook unreachable"),
        }
        if attempt < cfg.retries {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
    let c = if delivered { &m.notifications_sent } else { &m.notifications_failed };
    c.fetch_add(1, Ordering::Relaxed);
    if !delivered {
        tracing::error!(incident = %n.incident, "notification not delivered after all retries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let n = Notification {
            incident: uuid::Uuid::nil(),
            kind: "brute_force".into(),
            severity: "high".into(),
            priority: "P2".into(),
            title: "login as <@channel> & co".into(),
            text: "blocked".into(),
            at: "2026-03-01T10:00:00Z".parse().unwrap(),
        };
        let g = n.body(WebhookFormat::Generic);
        assert_eq!((g["source"].as_str(), g["type"].as_str()), (Some("warden"), Some("brute_force")));
        let s = n.body(WebhookFormat::Slack);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("&lt;@channel&gt; &amp; co") && !text.contains("<@channel>"), "{text}");
    }
}
