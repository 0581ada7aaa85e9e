//! The vulnerability-management toolbelt: `scan_vulnerabilities`, `prioritize_risk`,
//! `recommend_remediation`, `verify_patch` and `generate_vuln_report`, with what they
//! are made of — inventory, offline OSV advisories and each ecosystem's version order,
//! risk, remediation, patch verification.

pub mod generate_vuln_report;
pub mod inventory;
pub mod osv;
pub mod prioritize_risk;
pub mod recommend_remediation;
pub mod remediate;
pub mod risk;
pub mod scan;
pub mod scan_vulnerabilities;
pub mod verify;
pub mod verify_patch;
pub mod version;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::llm::Refusal;
use crate::tools::{ModelCx, ToolOutcome};
use osv::{AdvisoryDb, Match};
use scan::Matched;
use scan_vulnerabilities::{ScanArgs, ScanVulnerabilities};

/// The packages of a scan target a model asks about.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct PackagesRequest {
    /// A configured target path; default: the first.
    #[serde(default)]
    pub target: Option<String>,
    /// One package's name (default: every vulnerable package, at most 20).
    #[serde(default)]
    pub package: Option<String>,
}

/// Inventory and matching of the configured scan target a model names (default: the
/// first): its path, the database used, and the scan's outcome.
async fn scan_named(
    cx: &ModelCx,
    want: Option<&str>,
) -> Result<(PathBuf, Arc<AdvisoryDb>, ToolOutcome<Box<Matched>>), Refusal> {
    let db = cx.snapshot.db.clone().ok_or("no advisory database loaded")?;
    let t = cx
        .setup
        .targets
        .iter()
        .find(|t| want.is_none_or(|w| t.path.display().to_string() == w))
        .ok_or("not a configured scan target")?;
    let outcome = cx.call::<ScanVulnerabilities>(ScanArgs { target: t.path.clone(), db: db.clone() }).await;
    Ok((t.path.clone(), db, outcome))
}

/// The vulnerable packages a model asks about, scanned afresh.
struct Picked {
    path: PathBuf,
    db: Arc<AdvisoryDb>,
    release: Option<String>,
    vulnerable: Arc<Vec<Vec<Match>>>,
    /// `name version` of each.
    names: Vec<String>,
}

async fn vulnerable_named(cx: &ModelCx, r: &PackagesRequest) -> Result<Picked, Refusal> {
    let (path, db, outcome) = scan_named(cx, r.target.as_deref()).await?;
    let m = *outcome.output().map_err(|o| o.summary())?;
    let vulnerable: Vec<Vec<Match>> = m
        .vulnerable
        .into_iter()
        .filter(|ms| r.package.as_deref().is_none_or(|p| ms[0].package.name == p))
        .take(20)
        .collect();
    if vulnerable.is_empty() {
        return Err(Refusal::from("no vulnerable package of that name on that target"));
    }
    let names = vulnerable.iter().map(|ms| format!("{} {}", ms[0].package.name, ms[0].package.version)).collect();
    Ok(Picked { path, db, release: m.release, vulnerable: Arc::new(vulnerable), names })
}
