//! A custom agent: made from its folder alone — `actors/<name>/agent.toml` (`kind =
//! "custom"`, the tools it declares) and `prompt.md` (who it is). It reasons with the
//! configured language model over its declared tools, each through its own executor
//! or, for containment and patch verification, as a request the deciding agent's
//! policy handles like any other.
//!
//! Decision state: none of its own (its tools keep theirs). It handles:
//! - `Instruction`: the model investigates with its tools and answers; the answer (or
//!   why there is none — no model configured, a failure, an exhausted budget) is stored
//!   for the caller, as with every agent;
//! - `Handoff` (from a playbook's `handoff` step, or another agent): the model continues
//!   the analysis from the handoff's context; its answer is stored and, when the
//!   handoff concerns an incident, handed back to the sender as a note on it.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::vulnerability_management::sources::Advisories;
use super::{AgentEnv, AgentError, AgentLogic, Effects, Tools, reasoning};
use crate::definitions::AgentDefinition;
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{Envelope, Handoff, Payload, PayloadKind};
use crate::tools::Snapshot;

pub struct Custom {
    def: Arc<AgentDefinition>,
    env: Arc<AgentEnv>,
    /// Advisories and threat context, for the vulnerability tools it may declare.
    advisories: Advisories,
}

impl Custom {
    pub fn new(def: Arc<AgentDefinition>, env: Arc<AgentEnv>) -> Self {
        Custom { advisories: Advisories::new(&def, &env.data_dir), def, env }
    }

    /// What its model's tools need at the moment of a call: the advisories, when it
    /// declares a vulnerability tool, and the latest scans stored.
    async fn snapshot(&mut self) -> Snapshot {
        let vuln =
            self.def.tools.iter().any(|t| crate::definitions::AgentKind::VulnerabilityManagement.may_declare(*t));
        if !vuln {
            return Snapshot::default();
        }
        let scans = match self.env.kb.vulns("").await {
            Ok(records) => records
                .into_iter()
                .filter(|(k, _)| k.split('/').nth(1) == Some("scan"))
                .filter_map(|(_, v)| serde_json::from_value(v).ok())
                .collect(),
            Err(e) => {
                tracing::warn!(agent = %self.def.name, error = %e, "cannot read the latest scans for the model");
                Vec::new()
            }
        };
        self.advisories.snapshot(&self.def, scans)
    }

    async fn handoff(&mut self, env: &Envelope, h: &Handoff, tools: &dyn Tools) -> Result<Effects, AgentError> {
        let name = self.def.name.clone();
        let mut fx = Effects::default();
        let snap = self.snapshot().await;
        let prompt = crate::llm::handoff_prompt(&h.from, &h.context);
        let answer = reasoning::consult(&self.env, &self.def, tools, snap, prompt, &mut fx)
            .await
            .unwrap_or(Err(reasoning::NoAnswer::NotConfigured("handoff")));
        let fallback = answer.as_ref().err().map(|e| e.to_string());
        let record = json!({ "agent": name, "handoff_from": h.from, "incident_id": h.incident_id,
            "answer": answer.as_ref().ok(), "fallback": fallback, "at": chrono::Utc::now() });
        fx.writes.push(Write::State { key: reasoning::answer_key(env.id), value: record });
        fx.audit.push(AuditEntry::new(
            &name,
            AuditKind::EnvelopeHandled,
            env.id,
            json!({ "handoff_from": h.from, "answered": answer.is_ok(), "fallback": fallback }),
        ));
        // The sender hears back on the incident — unless this handoff is itself an answer
        // (two agents must not hand a question back and forth for ever).
        let reply = h.context.get("in_reply_to").is_none()
            && h.from != name
            && self.env.routes.handles(&h.from).contains(&PayloadKind::Handoff);
        if let (true, Some(incident_id)) = (reply, h.incident_id) {
            let note = match &answer {
                Ok(text) => crate::text::sanitize(text, 2000),
                Err(why) => format!("no analysis: {why}"),
            };
            let back = Handoff {
                from: name.clone(),
                to: h.from.clone(),
                incident_id: Some(incident_id),
                context: json!({ "note": note, "in_reply_to": env.id }),
            };
            fx.route.push(Envelope::caused_by(env, &name, Payload::Handoff(back), 1));
        }
        Ok(fx)
    }
}

impl AgentLogic for Custom {
    fn on_envelope<'a>(
        &'a mut self,
        env: &'a Envelope,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            match &env.payload {
                Payload::Instruction(i) => {
                    let snap = self.snapshot().await;
                    Ok(reasoning::instruction(&self.env, &self.def, env, i, tools, snap).await.0)
                }
                Payload::Handoff(h) => self.handoff(env, h, tools).await,
                other => Err(AgentError::Rejected(format!(
                    "custom agent `{}` does not handle `{}`",
                    self.def.name,
                    other.kind()
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! A custom agent without a language model answers with a fallback that says so,
    //! and hands an incident's handoff back with that note; with a (mocked) model, its
    //! answer goes back instead.

    use super::*;
    use crate::agents::{MockTools, test_support};
    use crate::llm::ReasonAnswer;

    fn analyst(model: Option<crate::llm::MockReasoner>) -> Custom {
        let defs = test_support::definitions();
        let env = test_support::env(&defs, model);
        let def = AgentDefinition {
            name: "phishing-analyst".into(),
            kind: crate::definitions::AgentKind::Custom,
            handles: vec![PayloadKind::Instruction, PayloadKind::Handoff],
            prompt: Some("You are Warden's phishing analyst.".into()),
            ..defs.agents["threat-detection"].clone()
        };
        Custom::new(Arc::new(def), env)
    }

    fn tools() -> MockTools {
        let mut t = MockTools::new();
        t.expect_executor().returning(|| None);
        t
    }

    fn handoff(from: &str, context: serde_json::Value) -> Envelope {
        let h =
            Handoff { from: from.into(), to: "phishing-analyst".into(), incident_id: Some(uuid::Uuid::nil()), context };
        Envelope::new(from, Payload::Handoff(h))
    }

    fn answer_of(fx: &Effects, id: uuid::Uuid) -> serde_json::Value {
        fx.writes
            .iter()
            .find_map(|w| match w {
                Write::State { key, value } if *key == reasoning::answer_key(id) => Some(value.clone()),
                _ => None,
            })
            .expect("the answer is stored")
    }

    #[actix_rt::test]
    async fn without_a_model_it_says_so_and_hands_that_back() {
        let mut a = analyst(None);
        let ask = Envelope::new(
            "admin",
            Payload::Instruction(crate::messages::Instruction { text: "is this phishing?".into(), incident_id: None }),
        );
        let fx = a.on_envelope(&ask, &tools()).await.unwrap();
        assert_eq!(answer_of(&fx, ask.id)["fallback"], "no language model configured; instruction recorded");
        assert!(fx.route.is_empty());

        let h = handoff("incident-response", json!({ "type": "phishing" }));
        let fx = a.on_envelope(&h, &tools()).await.unwrap();
        assert_eq!(answer_of(&fx, h.id)["fallback"], "no language model configured; handoff recorded");
        let [back] = fx.route.as_slice() else { panic!("one handoff back: {:?}", fx.route) };
        let Payload::Handoff(back) = &back.payload else { panic!("{back:?}") };
        assert_eq!((back.from.as_str(), back.to.as_str()), ("phishing-analyst", "incident-response"));
        assert_eq!(back.context["note"], "no analysis: no language model configured; handoff recorded");
        assert_eq!(back.context["in_reply_to"], json!(h.id));
    }

    #[actix_rt::test]
    async fn with_a_model_its_answer_goes_back_once() {
        let model = test_support::model(|req| {
            assert!(req.prompt.starts_with("[HANDOFF from incident-response]"));
            assert_eq!(req.system, "You are Warden's phishing analyst.");
            Box::pin(async { Ok(ReasonAnswer { text: "A credential-phishing kit.".into(), ..Default::default() }) })
        });
        let mut a = analyst(Some(model));
        let h = handoff("incident-response", json!({ "type": "phishing" }));
        let fx = a.on_envelope(&h, &tools()).await.unwrap();
        assert_eq!(answer_of(&fx, h.id)["answer"], "A credential-phishing kit.");
        let Payload::Handoff(back) = &fx.route[0].payload else { panic!("{:?}", fx.route) };
        assert_eq!(back.context["note"], "A credential-phishing kit.");
        assert!(fx.audit.iter().any(|e| e.kind == AuditKind::ModelCall));
        // An answer handed to it is not answered again; other payloads are refused.
        let fx = a.on_envelope(&handoff("incident-response", json!({ "in_reply_to": h.id })), &tools()).await.unwrap();
        assert!(fx.route.is_empty());
        let close = Envelope::new(
            "admin",
            Payload::Close(crate::messages::CloseRequest {
                incident_id: uuid::Uuid::nil(),
                by: "x".into(),
                reason: String::new(),
            }),
        );
        assert!(matches!(a.on_envelope(&close, &tools()).await, Err(AgentError::Rejected(_))));
    }
}
