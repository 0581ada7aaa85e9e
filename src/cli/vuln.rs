//! Vulnerability management from the command line: a scan in this process, the
//! advisory import, and the daemon's scans, reports and verifications.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use warden::config::Config;
use warden::definitions;

use super::daemon::load_defs;

use super::client::{call, check, pretty};
use crate::ClientOpts;

/// `warden scan`: the same steps as the agent's scan, in this process, without the
/// knowledge base (so without "under attack now" context).
pub fn scan(o: &ClientOpts, target: Option<PathBuf>, json: bool, actors: Option<&Path>) -> Result<i32> {
    use warden::tools::vuln::{osv::AdvisoryDb, risk::ThreatContext, scan as vscan};
    let cfg = Config::load(o.config.as_deref())?;
    let data_dir = cfg.data_dir(o.data_dir.as_deref());
    let defs = load_defs(actors)?;
    let vm = defs.agents.values().find(|d| d.kind == definitions::AgentKind::VulnerabilityManagement);
    let params = vm.map(|d| d.vuln.clone()).unwrap_or_default();
    let db = AdvisoryDb::open(&data_dir.join("osv"))?;
    if db.is_empty() {
        eprintln!(
            "warden: no advisories in {} — import some first: `warden vuln db import PATH` (OSV records or an osv.dev all.zip)",
            data_dir.join("osv").display()
        );
        return Ok(1);
    }
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { data_dir.join(p) }
    };
    let ctx = ThreatContext::load(Some(&resolve(&params.kev)), Some(&resolve(&params.epss)))?;
    let targets: Vec<vscan::Target> = match target {
        Some(path) => vec![vscan::Target { asset: path.display().to_string(), path, hosts: Vec::new() }],
        None => params.targets.clone(),
    };
    let assets = vm.map(|d| d.assets.clone()).unwrap_or_default();
    let now = chrono::Utc::now();
    let scans: Vec<vscan::ScanReport> = targets
        .iter()
        .map(|t| {
            let a = assets.assets.iter().find(|a| a.name == t.asset);
            let asset = warden::tools::vuln::risk::AssetContext {
                name: t.asset.clone(),
                criticality: a.map_or(assets.default.criticality, |a| a.criticality),
                exposure: a.map_or(assets.default.exposure, |a| a.exposure),
                known: a.is_some(),
            };
            let mut r = vscan::scan_target(t, asset, &db, &ctx, &Default::default(), &params.checks, now);
            vscan::diff(None, &mut r);
            r
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&scans)?);
    } else {
        let p = vscan::posture(&scans, now);
        print!("{}", vscan::render_posture(&p, warden::tools::response::report::Format::Markdown));
    }
    for s in &scans {
        for e in &s.errors {
            eprintln!("warning: {e}");
        }
    }
    Ok(0)
}

/// `warden vuln db import`: OSV records into `<data_dir>/osv` (works while the daemon
/// runs: it reloads on its next scan).
pub fn import(opts: &ClientOpts, path: &Path) -> Result<i32> {
    let cfg = Config::load(opts.config.as_deref())?;
    let dir = cfg.data_dir(opts.data_dir.as_deref()).join("osv");
    let (report, stored) = warden::tools::vuln::osv::AdvisoryDb::import(&dir, path)?;
    println!(
        "read {} files: {} records ({} withdrawn, {} for ecosystems Warden does not inventory); {} advisories now in {}",
        report.files,
        report.records,
        report.withdrawn,
        report.other_ecosystems,
        stored,
        dir.display()
    );
    for e in report.errors.iter().take(20) {
        eprintln!("skipped: {e}");
    }
    if report.errors.len() > 20 {
        eprintln!("… and {} more files skipped", report.errors.len() - 20);
    }
    Ok(if report.records == 0 { 1 } else { 0 })
}

/// `warden vuln report`: the daemon's posture report.
pub fn report(opts: &ClientOpts, format: &str) -> Result<i32> {
    let r = check(call(opts, "GET", &format!("/v1/vulns/report?format={format}"), None)?)?;
    print!("{}", r.body);
    Ok(0)
}

/// `warden vuln scan`: asks the daemon to scan now.
pub fn scan_now(opts: &ClientOpts, target: Option<String>) -> Result<i32> {
    let body = serde_json::json!({ "target": target });
    let r = check(call(opts, "POST", "/v1/scan", Some(&body.to_string()))?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}

/// `warden vuln verify`: verification of an incident's remediation, routed.
pub fn verify(opts: &ClientOpts, incident: &str, package: String, fixed: Option<String>) -> Result<i32> {
    let incident_id: uuid::Uuid = incident.parse().context("the incident id is a UUID")?;
    let body = serde_json::json!({ "payload": { "kind": "patch_verification", "incident_id": incident_id,
        "package": package, "fixed_version": fixed } });
    let r = check(call(opts, "POST", "/v1/inject", Some(&body.to_string()))?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}
