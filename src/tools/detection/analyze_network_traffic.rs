//! `analyze_network_traffic`: scans, beaconing, exfiltration and DNS tunnelling over
//! the flows and DNS queries of a batch (Zeek records, pcap flows), on event time.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::Detected;
use super::network::{NetworkAnalyzer, STATE_PREFIX};
use crate::llm::Refusal;
use crate::messages::Event;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct AnalyzeNetworkTraffic {
    analyzer: NetworkAnalyzer,
    keep_delta: bool,
}

/// Nothing: the tool runs on every batch by itself.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {}

impl Tool for AnalyzeNetworkTraffic {
    const NAME: &'static str = "analyze_network_traffic";
    const DESCRIPTION: &'static str =
        "Runs on every log batch as it arrives (the model cannot feed it); its findings are in the knowledge base.";
    const STATE_PREFIX: Option<&'static str> = Some(STATE_PREFIX);
    type Args = Arc<Vec<Event>>;
    type Output = Detected;
    type Request = Request;

    fn build(setup: &ToolSetup, state: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        let mut analyzer =
            NetworkAnalyzer::new(setup.detection.network.clone()).with_cap(setup.detection.limits.network_keys);
        if !setup.durable {
            analyzer = analyzer.untracked();
        }
        analyzer.restore(state)?;
        Ok(AnalyzeNetworkTraffic { analyzer, keep_delta: setup.durable })
    }

    fn run(&mut self, events: Arc<Vec<Event>>) -> Run<Detected> {
        let findings = self.analyzer.analyze(&events);
        let keyed = if self.keep_delta {
            self.analyzer.take_delta().into_iter().map(|(k, v)| (format!("{STATE_PREFIX}{k}"), v)).collect()
        } else {
            self.analyzer.discard_delta();
            Vec::new()
        };
        let evicted = std::mem::take(&mut self.analyzer.evicted);
        ToolOutcome::Succeeded(Detected { findings, keyed, evicted }).into()
    }

    fn answer(_: ModelCx, _: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        let why = format!("{} runs on every log batch by itself; its findings are in the knowledge base", Self::NAME);
        futures_util::future::ready(Err(Refusal(why))).boxed()
    }
}
