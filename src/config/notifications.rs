//! `[notify]`: where notifications go (a webhook), and how hard delivery tries.

use serde::{Deserialize, Serialize};

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
