//! The [`Reasoner`] that talks to a provider through rig-core's HTTP clients and
//! rig-agent's agent loop. The only module that imports rig.
//!
//! Each request builds an agent whose preamble is the agent's prompt file and whose
//! tools are exactly the [`LlmTool`]s the calling agent passes (its definition's tools,
//! each forwarding to its executor); `default_max_turns` lets the model call a tool and
//! then answer. The API key is read from the environment variable the configuration
//! names, when the reasoner is built; it is never logged.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use rig_agent::AgentBuilder;
use rig_core::DynModel;
use rig_core::operation::Completion;
use rig_core::tool::{DynamicTool, ToolExecutionError, ToolOutput};

use super::{LlmConfig, LlmError, LlmTool, Provider, ReasonAnswer, ReasonRequest, Reasoner, ToolUse};

/// A `[llm]` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmConfigError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("[llm] environment variable {0} is not set")]
    KeyUnset(String),
}

pub struct RigReasoner {
    cfg: LlmConfig,
    model: DynModel<Completion>,
}

impl RigReasoner {
    /// Builds the provider's client; fails on a configuration that cannot work (an
    /// unset key variable, a bad URL).
    pub fn new(cfg: &LlmConfig) -> Result<RigReasoner, LlmConfigError> {
        let problems = cfg.problems();
        if !problems.is_empty() {
            return Err(LlmConfigError::Invalid(problems));
        }
        let key = match &cfg.api_key_env {
            Some(var) => std::env::var(var).map_err(|_| LlmConfigError::KeyUnset(var.clone()))?,
            None => String::new(),
        };
        let model: DynModel<Completion> = match cfg.provider {
            Provider::Openai | Provider::OpenaiCompatible => {
                let mut c = rig_core::providers::openai::OpenAIConfig::new(key)
                    .with_route(rig_core::providers::openai::Route::Chat);
                if let Some(u) = &cfg.base_url {
                    c = c.with_base_url(u.trim_end_matches('/'));
                }
                c.client().completion(cfg.model.clone()).into()
            }
            Provider::Anthropic => {
                let mut c = rig_core::providers::anthropic::wire::AnthropicConfig::new(key);
                if let Some(u) = &cfg.base_url {
                    c = c.with_base_url(u);
                }
                c.client().completion(cfg.model.clone()).into()
            }
            Provider::Ollama => {
                let mut c = rig_core::providers::ollama::wire::OllamaConfig::new();
                if let Some(u) = &cfg.base_url {
                    c = c.with_base_url(u);
                }
                c.client().completion(cfg.model.clone()).into()
            }
        };
        Ok(RigReasoner { cfg: cfg.clone(), model })
    }
}

/// Wraps one of our tools as a rig tool that records what it was asked and decided.
fn rig_tool(t: LlmTool, log: Arc<Mutex<Vec<ToolUse>>>) -> Result<DynamicTool, LlmError> {
    let name = rig_core::completion::message::ToolName::new(t.name.clone())
        .map_err(|e| LlmError::Malformed(format!("tool name: {e:?}")))?;
    let call = t.call.clone();
    let tool_name = t.name.clone();
    Ok(DynamicTool::new(name, t.description.clone(), t.parameters.clone(), move |args: serde_json::Value| {
        let call = call.clone();
        let log = log.clone();
        let tool_name = tool_name.clone();
        Box::pin(async move {
            let result = call(args.clone()).await;
            let decision = match &result {
                Ok(out) => format!("ok: {}", crate::text::sanitize(out, 200)),
                Err(why) => format!("refused: {}", crate::text::sanitize(&why.0, 200)),
            };
            log.lock().unwrap_or_else(|p| p.into_inner()).push(ToolUse { tool: tool_name, arguments: args, decision });
            match result {
                Ok(out) => Ok(ToolOutput::text(out)),
                Err(why) => Err(ToolExecutionError::refused(why.0)),
            }
        }) as BoxFuture<'static, Result<ToolOutput, ToolExecutionError>>
    }))
}

impl Reasoner for RigReasoner {
    fn provider(&self) -> String {
        self.cfg.provider.as_str().to_string()
    }

    fn model(&self) -> String {
        self.cfg.model.clone()
    }

    fn reason(&self, req: ReasonRequest) -> BoxFuture<'static, Result<ReasonAnswer, LlmError>> {
        let model = self.model.clone();
        let turns = self.cfg.max_turns.max(2);
        Box::pin(async move {
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut tools = Vec::with_capacity(req.tools.len());
            for t in req.tools {
                tools.push(rig_tool(t, log.clone())?);
            }
            let builder = AgentBuilder::new(model).preamble(req.system).default_max_turns(turns);
            let agent = if tools.is_empty() { builder.build() } else { builder.dynamic_tools(tools).build() };
            let response = agent.prompt(req.prompt).await.map_err(|e| LlmError::Provider(e.to_string()))?;
            let usage = response.usage();
            let text = response.output();
            let tokens = usage
                .total_tokens
                .or_else(|| Some(usage.input_tokens? + usage.output_tokens?))
                .unwrap_or((text.len() / 4) as u64);
            let tool_uses = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
            Ok(ReasonAnswer { text, tool_uses, tokens })
        })
    }
}
