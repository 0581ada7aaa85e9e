//! `execute_playbook`: one step of an incident's playbook run, through the pure
//! interpreter in [`super::playbook::run`]; for a model, a proposal checked against the
//! playbooks and the incident's type (a model never starts a run).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::playbook::Playbook;
use super::playbook::run::{self, Gathered, Stepped};
use super::triage::Assets;
use crate::llm::Refusal;
use crate::messages::Incident;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct ExecutePlaybook {
    agent: String,
    playbooks: Arc<Vec<Playbook>>,
    assets: Arc<Assets>,
}

/// Which step of which incident's run, with what other tools gathered for it.
pub struct StepArgs {
    pub incident: Arc<Incident>,
    pub index: usize,
    pub gathered: Gathered,
    pub now: DateTime<Utc>,
}

/// The incident after the step (unchanged when the step was not due), and the step.
pub struct StepResult {
    pub incident: Incident,
    pub stepped: Stepped,
}

/// A playbook a model proposes for an incident.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
    /// The playbook's name.
    playbook: String,
}

impl Tool for ExecutePlaybook {
    const NAME: &'static str = "execute_playbook";
    const DESCRIPTION: &'static str = "Propose a playbook for an incident; it is checked against the shipped \
        playbooks and the incident's type. Playbooks start only through Warden's own triggers.";
    type Args = StepArgs;
    type Output = StepResult;
    type Request = Request;

    fn build(setup: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(ExecutePlaybook {
            agent: setup.agent.clone(),
            playbooks: setup.playbooks.clone(),
            assets: setup.assets.clone(),
        })
    }

    fn run(&mut self, a: StepArgs) -> Run<StepResult> {
        let mut incident = Arc::unwrap_or_clone(a.incident);
        let stepped = run::step(&mut incident, &self.playbooks, &self.assets, a.index, a.gathered, &self.agent, a.now);
        ToolOutcome::Succeeded(StepResult { incident, stepped }).into()
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let inc = cx.incident(r.incident_id).await?;
            let id = r.incident_id;
            let decision = match cx.setup.playbooks.iter().find(|p| p.name == r.playbook) {
                None => Err(format!("no playbook named `{}`", crate::text::sanitize(&r.playbook, 64))),
                Some(p) if !p.trigger.types.contains(&inc.kind) => {
                    Err(format!("playbook `{}` is not for incidents of type `{}`", p.name, inc.kind))
                }
                Some(p) => Ok(format!(
                    "playbook `{}` fits incident {id} ({}); steps: {}",
                    p.name,
                    inc.kind,
                    p.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                )),
            };
            let verdict = decision.as_ref().map_or_else(|e| format!("refused: {e}"), |_| "valid proposal".into());
            cx.audit(
                Self::NAME,
                serde_json::json!({ "by": "model", "incident": id, "proposal": r.playbook, "decision": verdict }),
            );
            decision.map_err(Refusal)
        }
        .boxed()
    }
}
