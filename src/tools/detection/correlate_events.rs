//! `correlate_events`: links findings that share an entity into groups over time; a
//! group spanning enough ATT&CK tactics is a campaign.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::Intel;
use super::correlate::{Correlator, STATE_PREFIX};
use crate::llm::Refusal;
use crate::messages::Finding;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct CorrelateEvents {
    correlator: Correlator,
    keep_delta: bool,
}

/// Nothing: the tool runs on every batch's findings by itself.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {}

impl Tool for CorrelateEvents {
    const NAME: &'static str = "correlate_events";
    const DESCRIPTION: &'static str =
        "Runs on every log batch as it arrives (the model cannot feed it); its findings are in the knowledge base.";
    const STATE_PREFIX: Option<&'static str> = Some(STATE_PREFIX);
    /// The batch's findings, to link with the earlier ones.
    type Args = Vec<Finding>;
    type Output = Intel;
    type Request = Request;

    fn build(setup: &ToolSetup, state: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        let cap = setup.detection.limits.campaigns;
        let mut correlator = Correlator::with_cap(setup.detection.correlation.clone(), cap);
        correlator.restore(state)?;
        Ok(CorrelateEvents { correlator, keep_delta: setup.durable })
    }

    fn run(&mut self, mut findings: Vec<Finding>) -> Run<Intel> {
        let added = self.correlator.correlate(&mut findings);
        let keyed = if self.keep_delta { self.correlator.take_delta() } else { self.correlator.discard_delta() };
        let evicted = std::mem::take(&mut self.correlator.evicted);
        ToolOutcome::Succeeded(Intel { enriched: findings, added, keyed, evicted }).into()
    }

    fn answer(_: ModelCx, _: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        let why = format!("{} runs on every log batch by itself; its findings are in the knowledge base", Self::NAME);
        futures_util::future::ready(Err(Refusal(why))).boxed()
    }
}
