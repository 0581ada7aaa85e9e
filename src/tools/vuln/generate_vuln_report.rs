//! `generate_vuln_report`: the posture over the latest scans — counts by severity and
//! priority, deadlines missed, top risks with their reasons, per asset, changes.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::scan::{ScanReport, posture, render_posture};
use crate::llm::Refusal;
use crate::tools::response::report::Format;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct GenerateVulnReport;

/// Which scans, in which format.
pub struct PostureArgs {
    pub scans: Arc<Vec<ScanReport>>,
    pub format: Format,
}

/// Nothing: the report covers the latest scan of every target.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {}

impl Tool for GenerateVulnReport {
    const NAME: &'static str = "generate_vuln_report";
    const DESCRIPTION: &'static str = "The vulnerability posture over the latest scans, as Markdown.";
    type Args = PostureArgs;
    type Output = String;
    type Request = Request;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(GenerateVulnReport)
    }

    fn run(&mut self, a: PostureArgs) -> Run<String> {
        ToolOutcome::Succeeded(render_posture(&posture(&a.scans, chrono::Utc::now()), a.format)).into()
    }

    fn answer(cx: ModelCx, _: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let scans = cx.snapshot.scans.clone();
            let report = cx.call::<Self>(PostureArgs { scans, format: Format::Markdown }).await;
            report.output().map(|r| crate::text::sanitize(&r, 8000)).map_err(|o| Refusal(o.summary()))
        }
        .boxed()
    }
}
