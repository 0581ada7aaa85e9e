//! `scan_vulnerabilities`: a target's inventory (OS packages, lockfiles) matched
//! offline against the advisory database, off the actor thread, with a time limit.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::osv::AdvisoryDb;
use super::scan::{Matched, inventory_and_match};
use crate::llm::Refusal;
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

/// How long a scan or a verification may take.
pub const VULN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

pub struct ScanVulnerabilities;

/// What to scan, against which advisories.
pub struct ScanArgs {
    pub target: PathBuf,
    pub db: Arc<AdvisoryDb>,
}

/// The scan target a model names.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A configured target path; default: the first.
    #[serde(default)]
    pub target: Option<String>,
}

impl Tool for ScanVulnerabilities {
    const NAME: &'static str = "scan_vulnerabilities";
    const DESCRIPTION: &'static str = "Inventory a configured scan target and match it against the advisory database.";
    type Args = ScanArgs;
    type Output = Box<Matched>;
    type Request = Request;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(ScanVulnerabilities)
    }

    fn run(&mut self, ScanArgs { target, db }: ScanArgs) -> Run<Box<Matched>> {
        Run::Later(
            async move {
                let work = tokio::task::spawn_blocking(move || inventory_and_match(&target, &db));
                match tokio::time::timeout(VULN_TIMEOUT, work).await {
                    Ok(Ok(m)) => ToolOutcome::Succeeded(Box::new(m)),
                    Ok(Err(e)) => ToolOutcome::Failed(format!("scan_vulnerabilities panicked: {e}")),
                    Err(_) => ToolOutcome::TimedOut,
                }
            }
            .boxed_local(),
        )
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let (path, _, outcome) = super::scan_named(&cx, r.target.as_deref()).await?;
            cx.audit(Self::NAME, serde_json::json!({ "by": "model", "target": path, "outcome": outcome.summary() }));
            let m = outcome.output().map_err(|o| o.summary())?;
            Ok(format!(
                "{} packages, {} vulnerable: {}",
                m.inventory.packages.len(),
                m.vulnerable.len(),
                m.vulnerable
                    .iter()
                    .take(30)
                    .map(|ms| format!(
                        "{} {} ({})",
                        ms[0].package.name,
                        ms[0].package.version,
                        ms.iter().map(|x| x.advisory.as_str()).collect::<Vec<_>>().join(",")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        }
        .boxed()
    }
}
