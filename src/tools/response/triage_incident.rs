//! `triage_incident`: an incident's type, severity, priority and response deadline,
//! scored against the agent's assets, with every reason.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::triage::{Assets, triage};
use crate::llm::Refusal;
use crate::messages::{Incident, TriageResult};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct TriageIncident {
    assets: Arc<Assets>,
}

/// The incident to triage.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
}

impl Tool for TriageIncident {
    const NAME: &'static str = "triage_incident";
    const DESCRIPTION: &'static str =
        "Triage a stored incident: its type, severity, priority, deadline and the reasons.";
    type Args = Arc<Incident>;
    type Output = TriageResult;
    type Request = Request;

    fn build(setup: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(TriageIncident { assets: setup.assets.clone() })
    }

    fn run(&mut self, incident: Arc<Incident>) -> Run<TriageResult> {
        ToolOutcome::Succeeded(triage(&incident, &self.assets)).into()
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let inc = cx.incident(r.incident_id).await?;
            let outcome = cx.call::<Self>(Arc::new(inc)).await;
            cx.audit(
                Self::NAME,
                serde_json::json!({ "by": "model", "incident": r.incident_id, "outcome": outcome.summary() }),
            );
            let t = outcome.output().map_err(|o| o.summary())?;
            Ok(serde_json::to_string(&t).unwrap_or_default())
        }
        .boxed()
    }
}
