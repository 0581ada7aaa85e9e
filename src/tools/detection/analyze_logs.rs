//! `analyze_logs`: the built-in authentication detectors and the Sigma rules over a
//! batch of parsed events, on event time; for a model, a dry run over lines it supplies.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::auth::{AuthDetector, AuthDetectorState, StateDelta};
use super::{DetectionParams, attack, sigma};
use crate::llm::Refusal;
use crate::messages::{Event, Finding, Prematched};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

/// The key of the detector state's head (counters, newest event time) in the `state`
/// tree; per-address records are below it, at `/addr/<ip>`.
pub fn head_key(agent: &str) -> String {
    format!("{agent}/analyze_logs")
}

/// The prefix of the per-address detector records.
pub fn addr_prefix(agent: &str) -> String {
    format!("{agent}/analyze_logs/addr/")
}

pub struct AnalyzeLogs {
    detector: AuthDetector,
    /// What a fresh detector for a dry run is made of.
    params: DetectionParams,
    rule_files: Arc<Vec<(String, String)>>,
    keep_delta: bool,
}

/// What to analyse.
pub enum LogsArgs {
    /// A batch from a source: findings, and the state it changed.
    Batch {
        events: Arc<Vec<Event>>,
        source: String,
        file_truncated: bool,
        file: Option<String>,
        /// What the source's lane matched (see `ingest::LogSink`).
        matched: Option<Prematched>,
    },
    /// Lines a model supplies: a fresh detector with the same parameters and rules, so
    /// nothing it sees touches the real detection state.
    Probe { lines: Vec<String> },
}

/// Findings, and the detector state they changed (empty for a dry run or replay).
pub struct LogFindings {
    pub findings: Vec<Finding>,
    pub delta: StateDelta,
}

/// Log lines to run the detectors over.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// Raw log lines (auth.log, web access log, JSON); at most 200 are used.
    lines: Vec<String>,
}

impl Tool for AnalyzeLogs {
    const NAME: &'static str = "analyze_logs";
    const DESCRIPTION: &'static str = "Run Warden's detectors and rules over log lines (a dry run on a fresh \
        detector: nothing is stored, no incident opens). Up to 200 lines.";
    const STATE_PREFIX: Option<&'static str> = Some("analyze_logs");
    type Args = LogsArgs;
    type Output = LogFindings;
    type Request = Request;

    /// The head is stored at the prefix itself, each address below it at `/addr/<ip>`,
    /// the Sigma correlation windows at `/correlation` (written when they change).
    fn build(setup: &ToolSetup, state: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        let mut restored = AuthDetectorState::default();
        let mut head = None;
        let mut correlation = None;
        let mut groups = Vec::new();
        let mut addrs = Vec::new();
        for (key, value) in state {
            if key.is_empty() {
                head = Some(value);
            } else if key == sigma::SNAPSHOT_KEY {
                correlation = Some(value);
            } else if let Some(group) = key.strip_prefix(sigma::GROUPS_KEY) {
                groups.push((group.to_string(), value));
            } else if let Some(ip) = key.strip_prefix("/addr/").and_then(|ip| ip.parse().ok()) {
                addrs.push((ip, value));
            }
        }
        // Per-address records without a head are leftovers of nothing: start afresh.
        if let Some(head) = head {
            let bad = |key: String| move |source| StateError::Value { key, source };
            restored.head = serde_json::from_value(head).map_err(bad(Self::NAME.to_string()))?;
            // Stored apart since the windows are written only when they change (a head
            // stored before that holds them itself).
            if correlation.is_some() {
                restored.head.sigma.correlation = correlation;
            }
            restored.head.sigma.groups = groups;
            for (ip, value) in addrs {
                let st = serde_json::from_value(value).map_err(bad(format!("{}/addr/{ip}", Self::NAME)))?;
                restored.addrs.insert(ip, st);
            }
        }
        let groups = setup.detection.limits.correlation_groups;
        let rules = (!setup.rule_files.is_empty()).then(|| sigma::load_with(&setup.rule_files, groups));
        let mut detector = AuthDetector::with_rules(setup.detection.clone(), restored, rules);
        if !setup.durable {
            detector.untracked();
        }
        Ok(AnalyzeLogs {
            detector,
            params: setup.detection.clone(),
            rule_files: setup.rule_files.clone(),
            keep_delta: setup.durable,
        })
    }

    fn run(&mut self, args: LogsArgs) -> Run<LogFindings> {
        let out = match args {
            LogsArgs::Batch { events, source, file_truncated, file, matched } => {
                let det = &mut self.detector;
                det.set_file(file);
                let mut findings = det.check_log_integrity(&events, &source, file_truncated);
                findings.extend(det.analyze_matched(&events, matched.as_ref()));
                findings.iter_mut().for_each(attack::complete);
                let delta = if self.keep_delta {
                    match det.take_delta() {
                        Ok(d) => d,
                        Err(e) => return ToolOutcome::Failed(format!("cannot encode detector state: {e}")).into(),
                    }
                } else {
                    det.discard_delta()
                };
                LogFindings { findings, delta }
            }
            LogsArgs::Probe { lines } => {
                let groups = self.params.limits.correlation_groups;
                let rules = (!self.rule_files.is_empty()).then(|| sigma::load_with(&self.rule_files, groups));
                let mut det = AuthDetector::with_rules(self.params.clone(), Default::default(), rules);
                let mut b = crate::ingest::BatchBuilder::new(crate::config::LogFormat::Auto, chrono::Utc::now());
                for l in lines {
                    b.line(crate::text::sanitize(&l, 4096));
                }
                let mut findings = det.analyze(&b.events);
                findings.iter_mut().for_each(attack::complete);
                LogFindings { findings, delta: StateDelta::default() }
            }
        };
        ToolOutcome::Succeeded(out).into()
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let lines: Vec<String> = r.lines.into_iter().take(200).collect();
            let n = lines.len();
            let outcome = cx.call::<Self>(LogsArgs::Probe { lines }).await;
            cx.audit(
                Self::NAME,
                serde_json::json!({ "by": "model", "lines": n, "dry_run": true, "outcome": outcome.summary() }),
            );
            let found = outcome.output().map_err(|o| o.summary())?;
            Ok(if found.findings.is_empty() {
                format!("{n} lines: no detection")
            } else {
                found
                    .findings
                    .iter()
                    .map(|f| format!("{} ({}): {}", f.rule, f.severity, f.title))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        .boxed()
    }
}
