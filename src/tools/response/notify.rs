//! Notifications: a webhook (generic JSON, or a Slack-compatible payload) with retries
//! and exponential backoff. Sending never blocks a playbook: notifications go into a
//! bounded queue that a background task drains; a full queue and a delivery that
//! exhausts its retries are counted (`/metrics`) and logged, and the run goes on.
//!
//! Delivery is at least once while the process runs: a notification queued just
//! before a crash is lost, one sent just before a crash may be sent again when its
//! playbook step is redelivered.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::telemetry::Metrics;

/// The webhook's payload shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"source":"warden","incident":…,"type":…,"severity":…,"priority":…,"title":…,"text":…,"at":…}`
    #[default]
    Generic,
    /// `{"text": "…"}` (Slack incoming webhooks, Mattermost, Rocket.Chat).
    Slack,
}

/// `[notify]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// `http://` or `https://` URL.
    pub webhook: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Attempts after the first.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First wait between attempts; doubled each time.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_retries() -> u32 {
    5
}
fn default_backoff() -> u64 {
    500
}
fn default_timeout() -> u64 {
    5
}

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

/// The sending side, cloned into whoever notifies.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: tokio::sync::mpsc::Sender<Notification>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// Queues a notification; never waits. A full queue drops it (counted).
    pub fn send(&self, n: Notification) {
        if self.tx.try_send(n).is_err() {
            self.metrics.notifications_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("notification queue full: notification dropped");
        }
    }

    /// Starts the delivery task on the current (actix) runtime.
    pub fn start(cfg: NotifyConfig, metrics: Arc<Metrics>) -> Result<Notifier, String> {
        if !(cfg.webhook.starts_with("http://") || cfg.webhook.starts_with("https://")) {
            return Err(format!("[notify] webhook `{}` is not an http(s) URL", cfg.webhook));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Notification>(1024);
        let m = metrics.clone();
        actix_rt::spawn(async move {
            while let Some(n) = rx.recv().await {
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
        });
        Ok(Notifier { tx, metrics })
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
