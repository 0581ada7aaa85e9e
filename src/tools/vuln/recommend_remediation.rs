//! `recommend_remediation`: the lowest fixed version that clears every matching
//! advisory and the command (argv) that applies it, or a mitigation when no fix exists.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::osv::{AdvisoryDb, Match};
use super::remediate::{Remediation, recommend};
use crate::llm::Refusal;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct RecommendRemediation;

/// What to remediate.
pub struct RemediationArgs {
    pub vulnerable: Arc<Vec<Vec<Match>>>,
    pub db: Arc<AdvisoryDb>,
    /// The distribution release the packages come from (`12` for Debian 12).
    pub release: Option<String>,
}

impl Tool for RecommendRemediation {
    const NAME: &'static str = "recommend_remediation";
    const DESCRIPTION: &'static str =
        "The remediation of the vulnerable packages of a scan target (target version, command, mitigation).";
    type Args = RemediationArgs;
    type Output = Vec<Option<Remediation>>;
    type Request = super::PackagesRequest;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(RecommendRemediation)
    }

    fn run(&mut self, a: RemediationArgs) -> Run<Vec<Option<Remediation>>> {
        let rems = a.vulnerable.iter().map(|ms| recommend(&a.db, ms, a.release.as_deref())).collect();
        ToolOutcome::Succeeded(rems).into()
    }

    /// The same steps as a scan: inventory and matching, then the remediation.
    fn answer(cx: ModelCx, r: super::PackagesRequest) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let picked = super::vulnerable_named(&cx, &r).await?;
            let args = RemediationArgs { vulnerable: picked.vulnerable, db: picked.db, release: picked.release };
            let outcome = cx.call::<Self>(args).await;
            cx.audit(
                Self::NAME,
                serde_json::json!({ "by": "model", "target": picked.path, "outcome": outcome.summary() }),
            );
            let rems = outcome.output().map_err(|o| o.summary())?;
            Ok(picked
                .names
                .iter()
                .zip(rems)
                .map(|(n, r)| match r {
                    Some(r) => format!(
                        "{n}: {} — {}",
                        r.target
                            .as_ref()
                            .map(|v| format!("to {v} with `{}`", r.command_line()))
                            .unwrap_or_else(|| "no fix".into()),
                        r.explanation
                    ),
                    None => format!("{n}: no remediation"),
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        .boxed()
    }
}
