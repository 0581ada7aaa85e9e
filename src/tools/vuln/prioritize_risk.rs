//! `prioritize_risk`: each vulnerable package scored in context — CVSS from the vector,
//! the asset's criticality and exposure, KEV, EPSS and attacks seen — with a priority,
//! a deadline and every reason.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::osv::Match;
use super::risk::{AssetContext, Risk, ThreatContext, prioritize};
use crate::llm::Refusal;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct PrioritizeRisk;

/// What to score.
pub struct RiskArgs {
    /// Each vulnerable package's matching advisories.
    pub vulnerable: Arc<Vec<Vec<Match>>>,
    pub asset: AssetContext,
    pub context: Arc<ThreatContext>,
    /// Per package: why it counts as attacked now, if it does.
    pub attacked: Vec<Option<String>>,
}

impl Tool for PrioritizeRisk {
    const NAME: &'static str = "prioritize_risk";
    const DESCRIPTION: &'static str =
        "Score the vulnerable packages of a scan target in context (score, priority, deadline, reasons).";
    type Args = RiskArgs;
    type Output = Vec<Risk>;
    type Request = super::PackagesRequest;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(PrioritizeRisk)
    }

    fn run(&mut self, a: RiskArgs) -> Run<Vec<Risk>> {
        let now = chrono::Utc::now();
        let risks = a
            .vulnerable
            .iter()
            .enumerate()
            .map(|(i, ms)| prioritize(ms, &a.asset, &a.context, a.attacked.get(i).cloned().flatten().as_deref(), now))
            .collect();
        ToolOutcome::Succeeded(risks).into()
    }

    /// The same steps as a scan: inventory and matching, then the scoring.
    fn answer(cx: ModelCx, r: super::PackagesRequest) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let picked = super::vulnerable_named(&cx, &r).await?;
            let asset = cx
                .snapshot
                .assets
                .iter()
                .find(|(p, _)| *p == picked.path)
                .map(|(_, a)| a.clone())
                .ok_or("no asset for that target")?;
            let attacked = vec![None; picked.vulnerable.len()];
            let args =
                RiskArgs { vulnerable: picked.vulnerable, asset, context: cx.snapshot.context.clone(), attacked };
            let outcome = cx.call::<Self>(args).await;
            cx.audit(
                Self::NAME,
                serde_json::json!({ "by": "model", "target": picked.path, "outcome": outcome.summary() }),
            );
            let risks = outcome.output().map_err(|o| o.summary())?;
            Ok(picked
                .names
                .iter()
                .zip(risks)
                .map(|(n, r)| {
                    format!(
                        "{n}: {:?} {:.1}, by {} — {}",
                        r.priority,
                        r.score,
                        r.deadline.format("%Y-%m-%d"),
                        r.reasons.join("; ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        .boxed()
    }
}
