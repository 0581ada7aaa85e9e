//! How an agent thinks with a language model: its prompt file as the system prompt,
//! its definition's tools as the model's tools (each forwarding to its executor, or
//! routing a request through the supervisor for incident response or vulnerability
//! management to decide with their usual checks), and one audit record per call.
//!
//! Everything a tool does while the model runs lands in [`Sinks`] (audit entries,
//! envelopes to route) and becomes part of the handling envelope's effects — committed
//! with its acknowledgement like any deterministic decision.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::{AgentEnv, Effects};
use crate::definitions::AgentDefinition;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::llm::{LlmTool, ReasonRequest};
use crate::messages::Envelope;
use crate::tools::{ModelCx, Sinks, Snapshot, ToolExecutor, registry};

/// Why there is no answer from the model: the agent keeps its deterministic decision
/// and says so.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoAnswer {
    /// No model is configured: the input is recorded, nothing more.
    #[error("no language model configured; {0} recorded")]
    NotConfigured(&'static str),
    /// The model failed, timed out, is over its budget or answered nonsense.
    #[error(transparent)]
    Model(#[from] crate::llm::LlmError),
}

/// Asks the model; the answer, or why the agent fell back to its deterministic
/// behaviour. The call's ledger record and everything its tools did go into `fx`.
async fn ask(
    reasoner: &crate::llm::Guarded,
    def: &AgentDefinition,
    prompt: String,
    tools: Vec<LlmTool>,
    sinks: &Sinks,
    fx: &mut Effects,
) -> Result<String, NoAnswer> {
    let system = def.prompt.clone().unwrap_or_else(|| format!("You are Warden's {} agent.", def.name));
    let (answer, record) = reasoner.ask(ReasonRequest { agent: def.name.clone(), system, prompt, tools }).await;
    let (mut audit, mut route) = sinks.drain();
    fx.audit.append(&mut audit);
    fx.route.append(&mut route);
    fx.audit.push(AuditEntry::new(
        &def.name,
        AuditKind::ModelCall,
        &record.model,
        serde_json::to_value(&record).unwrap_or_default(),
    ));
    Ok(answer?.text)
}

/// The model's tools for this agent: exactly the tools its definition declares, each
/// with the registry's description and schema, answering through the tool's own
/// [`answer`](crate::tools::Tool::answer).
pub fn tools_for(
    def: &AgentDefinition,
    env: &Arc<AgentEnv>,
    exec: Option<actix::Addr<ToolExecutor>>,
    sinks: &Sinks,
    snapshot: Snapshot,
) -> Vec<LlmTool> {
    let cx = ModelCx {
        setup: Arc::new(super::tool_setup(def, env)),
        executor: exec,
        kb: env.kb.clone(),
        sinks: sinks.clone(),
        snapshot,
    };
    def.tools
        .iter()
        .filter_map(|t| registry::spec(*t))
        .map(|spec| {
            let cx = cx.clone();
            LlmTool {
                name: spec.name.as_str().into(),
                description: spec.description.into(),
                parameters: spec.schema(),
                call: Arc::new(move |args| spec.answer(cx.clone(), args)),
            }
        })
        .collect()
}

/// The key of an instruction's answer in the state tree.
pub fn answer_key(envelope: Uuid) -> String {
    format!("answers/{envelope}")
}

/// An operator's instruction: the model investigates with the agent's tools and
/// answers; the answer (or why there is none) is stored under the envelope's id for
/// the caller (`GET /v1/answers/{id}`, `warden ask`). Returns the answer for the agent
/// to note on the incident.
pub async fn instruction(
    env: &Arc<AgentEnv>,
    def: &AgentDefinition,
    envelope: &Envelope,
    i: &crate::messages::Instruction,
    tools: &dyn super::Tools,
    snap: Snapshot,
) -> (Effects, Result<String, NoAnswer>) {
    let mut fx = Effects::default();
    let question = crate::text::sanitize(&i.text, 2000);
    let answer = match &env.reasoner {
        Some(reasoner) => {
            let sinks = Sinks::default();
            let llm_tools = tools_for(def, env, tools.executor(), &sinks, snap);
            let mut prompt = format!("An operator asks: {question}\n");
            if let Some(id) = i.incident_id {
                match env.kb.incident(id).await {
                    Ok(Some(inc)) => {
                        let summary = json!({ "id": inc.id, "type": inc.kind, "title": inc.title, "severity": inc.severity,
                            "priority": inc.priority, "status": inc.status, "entities": inc.entities,
                            "findings": inc.findings.iter().map(|f| json!({ "rule": f.rule, "title": f.title, "evidence": f.evidence })).collect::<Vec<_>>() });
                        prompt.push_str(&format!(
                            "It concerns incident {id}:\n{}\n",
                            crate::llm::fence_untrusted("INCIDENT", &summary.to_string(), 6000)
                        ));
                    }
                    _ => prompt.push_str(&format!("It names incident {id}, which does not exist.\n")),
                }
            }
            prompt.push_str("Use your tools to investigate, then answer in plain language: what you found and what you did or recommend.");
            ask(reasoner, def, prompt, llm_tools, &sinks, &mut fx).await
        }
        None => Err(NoAnswer::NotConfigured("instruction")),
    };
    let fallback = answer.as_ref().err().map(|e| e.to_string());
    let record = json!({ "agent": def.name, "question": question, "incident_id": i.incident_id,
        "answer": answer.as_ref().ok(), "fallback": fallback, "at": chrono::Utc::now() });
    fx.writes.push(crate::kb::Write::State { key: answer_key(envelope.id), value: record.clone() });
    fx.audit.push(AuditEntry::new(
        &def.name,
        AuditKind::EnvelopeHandled,
        envelope.id,
        json!({ "instruction": question, "answered": answer.is_ok(), "fallback": fallback }),
    ));
    (fx, answer)
}

/// Asks the model about something the agent just decided (`None` without a model): its
/// answer, or why there is none — the deterministic decision stands either way.
pub async fn consult(
    env: &Arc<AgentEnv>,
    def: &AgentDefinition,
    tools: &dyn super::Tools,
    snap: Snapshot,
    prompt: String,
    fx: &mut Effects,
) -> Option<Result<String, NoAnswer>> {
    let reasoner = env.reasoner.as_ref()?;
    let sinks = Sinks::default();
    let llm_tools = tools_for(def, env, tools.executor(), &sinks, snap);
    Some(ask(reasoner, def, prompt, llm_tools, &sinks, fx).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::test_support;

    /// Every agent's model is offered exactly its definition's tools, in order, each
    /// with the registry's description and the JSON schema of its request type.
    #[actix_rt::test]
    async fn the_model_is_offered_exactly_the_declared_tools_with_their_schemas() {
        let defs = test_support::definitions();
        let env = test_support::env(&defs, None);
        for def in defs.agents.values() {
            let offered = tools_for(def, &env, None, &Sinks::default(), Snapshot::default());
            let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
            let declared: Vec<&str> = def.tools.iter().map(|t| t.as_str()).collect();
            assert_eq!(names, declared, "{}", def.name);
            for (tool, name) in offered.iter().zip(&def.tools) {
                let spec = registry::spec(*name).unwrap();
                assert_eq!(tool.description, spec.description);
                assert_eq!(tool.parameters, spec.schema());
            }
        }
        // An agent that declares two tools is offered those two.
        let mut def = defs.agents["incident-response"].clone();
        def.tools = vec![def.tools[2], def.tools[0]];
        let offered = tools_for(&def, &env, None, &Sinks::default(), Snapshot::default());
        assert_eq!(offered.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["contain_threat", "triage_incident"]);
        assert_eq!(offered[0].parameters["required"], json!(["incident_id", "action", "target"]));
    }
}
