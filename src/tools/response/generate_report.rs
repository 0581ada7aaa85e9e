//! `generate_report`: an incident's executive or technical report, in Markdown, HTML
//! or JSON.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::report::{Audience, Format, build, render};
use crate::llm::Refusal;
use crate::messages::Incident;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct GenerateReport;

/// Which report of which incident.
pub struct ReportArgs {
    pub incident: Arc<Incident>,
    pub audience: Audience,
    pub format: Format,
}

/// The report a model asks for (always Markdown).
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
    /// Who it is for (default: technical).
    #[serde(default)]
    audience: Option<Audience>,
}

impl Tool for GenerateReport {
    const NAME: &'static str = "generate_report";
    const DESCRIPTION: &'static str = "The technical or executive report of an incident, as Markdown.";
    type Args = ReportArgs;
    type Output = String;
    type Request = Request;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(GenerateReport)
    }

    fn run(&mut self, a: ReportArgs) -> Run<String> {
        ToolOutcome::Succeeded(render(&build(&a.incident, a.audience), a.format)).into()
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let incident = Arc::new(cx.incident(r.incident_id).await?);
            let audience = r.audience.unwrap_or(Audience::Technical);
            let md = cx.call::<Self>(ReportArgs { incident, audience, format: Format::Markdown }).await;
            md.output().map(|md| crate::text::sanitize(&md, 8000)).map_err(|o| Refusal(o.summary()))
        }
        .boxed()
    }
}
