//! `[llm]`: the language model the agents may reason with (off when absent).

use serde::{Deserialize, Serialize};

/// `[llm]` in the configuration. Off unless `provider` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub provider: Provider,
    pub model: String,
    /// The API's base URL (required for `openai-compatible`; optional otherwise).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The name of the environment variable holding the API key (never the key).
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_calls_per_minute")]
    pub calls_per_minute: u32,
    #[serde(default = "default_tokens_per_day")]
    pub tokens_per_day: u64,
    /// Model turns per request (a tool call and the answer after it take two).
    #[serde(default = "default_max_turns")]
    pub max_turns: usize,
}

fn default_timeout() -> u64 {
    30
}
fn default_calls_per_minute() -> u32 {
    10
}
fn default_tokens_per_day() -> u64 {
    200_000
}
fn default_max_turns() -> usize {
    4
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Openai,
    Anthropic,
    Ollama,
    OpenaiCompatible,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Ollama => "ollama",
            Provider::OpenaiCompatible => "openai-compatible",
        }
    }
}

impl LlmConfig {
    /// Problems that make the configuration unusable, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.model.trim().is_empty() {
            out.push("[llm] model must be set".into());
        }
        if self.provider == Provider::OpenaiCompatible && self.base_url.is_none() {
            out.push("[llm] provider openai-compatible needs base_url".into());
        }
        if let Some(u) = &self.base_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            out.push(format!("[llm] base_url `{u}` is not an http(s) URL"));
        }
        if let Some(v) = &self.api_key_env
            && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            out.push("[llm] api_key_env names an environment variable (letters, digits, _), not a key".into());
        }
        if matches!(self.provider, Provider::Openai | Provider::Anthropic) && self.api_key_env.is_none() {
            out.push(format!("[llm] provider {} needs api_key_env", self.provider.as_str()));
        }
        if self.max_turns < 2 {
            out.push("[llm] max_turns must be at least 2 (a tool call and the answer after it)".into());
        }
        if self.timeout_secs == 0 || self.calls_per_minute == 0 {
            out.push("[llm] timeout_secs and calls_per_minute must be at least 1".into());
        }
        out
    }
}
