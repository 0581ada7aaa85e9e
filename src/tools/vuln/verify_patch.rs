//! `verify_patch`: a remediation checked after the patch — re-inventory, re-match, no
//! process still mapping an old file, the attack gone from the logs since, and the
//! package's own check. For a model, a request vulnerability management decides.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::osv::AdvisoryDb;
use super::scan_vulnerabilities::VULN_TIMEOUT;
use super::verify::{Verification, VerifyTarget, verify};
use crate::llm::Refusal;
use crate::messages::{Finding, Payload, VerifyRequest};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct VerifyPatch;

/// What to verify.
pub struct VerifyArgs {
    pub target: Box<VerifyTarget>,
    pub db: Arc<AdvisoryDb>,
    /// The findings against the incident since the patch (`None`: no incident).
    pub findings_since: Option<(DateTime<Utc>, Vec<Finding>)>,
}

/// The incident whose remediation a model asks to verify.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
    /// The package (default: every remediation of the incident).
    #[serde(default)]
    package: Option<String>,
}

impl Tool for VerifyPatch {
    const NAME: &'static str = "verify_patch";
    const DESCRIPTION: &'static str =
        "Ask vulnerability management to verify an incident's remediation (after the patch).";
    type Args = VerifyArgs;
    type Output = Box<Verification>;
    type Request = Request;

    fn build(_: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(VerifyPatch)
    }

    fn run(&mut self, a: VerifyArgs) -> Run<Box<Verification>> {
        Run::Later(
            async move {
                let work = verify(&a.target, &a.db, a.findings_since, std::path::Path::new("/proc"));
                match tokio::time::timeout(VULN_TIMEOUT, work).await {
                    Ok(v) => ToolOutcome::Succeeded(Box::new(v)),
                    Err(_) => ToolOutcome::TimedOut,
                }
            }
            .boxed_local(),
        )
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        let package = crate::text::sanitize(r.package.as_deref().unwrap_or_default(), 128);
        cx.request(Payload::PatchVerification(VerifyRequest {
            incident_id: Some(r.incident_id),
            package,
            fixed_version: None,
        }));
        cx.audit(
            Self::NAME,
            serde_json::json!({ "by": "model", "incident": r.incident_id, "decision": "verification requested" }),
        );
        futures_util::future::ready(Ok("verification requested; its checks are recorded on the incident".into()))
            .boxed()
    }
}
