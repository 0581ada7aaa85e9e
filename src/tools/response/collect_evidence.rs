//! `collect_evidence`: an incident's log lines (with where each was read and its
//! SHA-256), named files, a host snapshot and the external collectors' output, each
//! stored by its content hash in the evidence store.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::actions::ContainPolicy;
use super::evidence;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::llm::Refusal;
use crate::messages::{EvidenceItem, Incident};
use crate::tools::{ModelCx, Run, StateError, Tool, ToolOutcome, ToolSetup};

pub struct CollectEvidence {
    policy: Arc<ContainPolicy>,
}

/// What to collect for an incident.
pub struct EvidenceArgs {
    pub incident: Arc<Incident>,
    /// Files to store besides the log lines.
    pub files: Vec<std::path::PathBuf>,
    /// Take a host snapshot (processes, sockets, sessions).
    pub snapshot: bool,
}

/// What was stored, and what could not be.
#[derive(Debug, Default)]
pub struct Evidence {
    pub items: Vec<EvidenceItem>,
    pub problems: Vec<String>,
}

/// The incident whose log lines to collect.
#[derive(Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// A stored incident's id (UUID).
    incident_id: Uuid,
}

impl Tool for CollectEvidence {
    const NAME: &'static str = "collect_evidence";
    const DESCRIPTION: &'static str =
        "Collect an incident's log lines into the evidence store (content-hashed, with custody records).";
    type Args = EvidenceArgs;
    type Output = Evidence;
    type Request = Request;

    fn build(setup: &ToolSetup, _: Vec<(String, serde_json::Value)>) -> Result<Self, StateError> {
        Ok(CollectEvidence { policy: setup.policy.clone() })
    }

    fn run(&mut self, a: EvidenceArgs) -> Run<Evidence> {
        let policy = self.policy.clone();
        Run::Later(async move { collect(&a.incident, &a.files, a.snapshot, &policy).await }.boxed_local())
    }

    fn answer(cx: ModelCx, r: Request) -> BoxFuture<'static, Result<String, Refusal>> {
        async move {
            let incident = Arc::new(cx.incident(r.incident_id).await?);
            let got = cx.call::<Self>(EvidenceArgs { incident, files: Vec::new(), snapshot: false }).await;
            let Evidence { items, problems } = got.output().map_err(|o| o.summary())?;
            for item in &items {
                cx.sinks.audit(AuditEntry::new(
                    cx.agent(),
                    AuditKind::Custody,
                    &item.sha256,
                    serde_json::json!({ "event": "collected", "by": "model", "incident": r.incident_id, "item": item }),
                ));
            }
            Ok(format!(
                "{} items stored ({}){}",
                items.len(),
                items.iter().map(|i| format!("{} sha256:{}", i.kind, i.sha256)).collect::<Vec<_>>().join(", "),
                if problems.is_empty() { String::new() } else { format!("; problems: {}", problems.join("; ")) }
            ))
        }
        .boxed()
    }
}

/// Largest file or collector output stored as one evidence item.
const EVIDENCE_MAX: u64 = 256 << 20;

/// `collect_evidence`: the log lines of the incident's findings, named files, a host
/// snapshot, and each external collector's output — each stored by its hash. A piece
/// that cannot be collected is reported, the others are kept.
pub async fn collect(
    inc: &Incident,
    files: &[std::path::PathBuf],
    snapshot: bool,
    policy: &ContainPolicy,
) -> ToolOutcome<Evidence> {
    let dir = &policy.evidence_dir;
    // What was stored, or why a piece could not be (said as a problem; the rest is kept).
    let mut results: Vec<Result<evidence::EvidenceItem, evidence::EvidenceError>> = Vec::new();
    let mut keep = |r| results.push(r);
    // One line per evidence line: where it was read (file:offset and the line's
    // SHA-256) when known, then the line.
    let mut lines = String::new();
    for f in &inc.findings {
        let row =
            |at: &str, text: &str| format!("{}\t{}\t{}\t{at}\t{text}\n", f.first_seen.to_rfc3339(), f.host, f.rule);
        let mut quoted = std::collections::HashSet::new();
        for e in &f.evidence {
            use sha2::Digest;
            let hash = <[u8; 32]>::from(sha2::Sha256::digest(e.as_bytes()));
            quoted.insert(hash);
            let at = f
                .evidence_refs
                .iter()
                .find(|r| r.sha256 == hash)
                .map(|r| format!("{}:{} sha256:{}", r.file, r.offset, r.sha256_hex()))
                .unwrap_or_else(|| "-".into());
            lines.push_str(&row(&at, e));
        }
        // Lines the finding points at but does not quote (a correlation's earlier
        // lines): read back from where they were read, and checked against their hash.
        for r in f.evidence_refs.iter().filter(|r| !quoted.contains(&r.sha256)) {
            let r2 = r.clone();
            let at = format!("{}:{} sha256:{}", r.file, r.offset, r.sha256_hex());
            let text = match tokio::task::spawn_blocking(move || evidence::reread_line(&r2)).await {
                Ok(Ok(line)) => crate::text::sanitize(&line, 4096),
                Ok(Err(why)) => format!("(not available: {why})"),
                Err(e) => format!("(not available: {e})"),
            };
            lines.push_str(&row(&at, &text));
        }
    }
    if !lines.is_empty() {
        let rules: std::collections::BTreeSet<&str> = inc.findings.iter().map(|f| f.rule.as_str()).collect();
        let source = format!("log lines of findings ({})", rules.into_iter().collect::<Vec<_>>().join(", "));
        keep(evidence::store(dir, inc.id, "log_lines", &source, lines.as_bytes()));
    }
    for f in files {
        keep(evidence::collect_file(dir, inc.id, f, EVIDENCE_MAX));
    }
    if snapshot {
        let snap = tokio::task::spawn_blocking(evidence::snapshot).await;
        match snap {
            Ok(s) => {
                let json = serde_json::to_vec_pretty(&s).unwrap_or_default();
                keep(evidence::store(dir, inc.id, "host_snapshot", "/proc and utmp", &json));
            }
            Err(e) => keep(Err(evidence::EvidenceError::Invalid(format!("host snapshot: {e}")))),
        }
    }
    let problem = |why: String| Err(evidence::EvidenceError::Invalid(why));
    for c in &policy.collectors {
        match crate::tools::command::run(&c.argv, None).await {
            Ok((0, out)) if (out.len() as u64) <= EVIDENCE_MAX => keep(evidence::store(
                dir,
                inc.id,
                "external",
                &format!("{} ({})", c.name, c.argv.join(" ")),
                out.as_bytes(),
            )),
            Ok((0, _)) => keep(problem(format!("collector {}: output over {EVIDENCE_MAX} bytes", c.name))),
            Ok((code, out)) => keep(problem(format!("collector {} exited with {code}: {}", c.name, out.trim()))),
            Err(e) => keep(problem(format!("collector {}: {}", c.name, e.summary()))),
        }
    }
    let (mut items, mut problems) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(i) => items.push(i),
            Err(e) => problems.push(e.to_string()),
        }
    }
    ToolOutcome::Succeeded(Evidence { items, problems })
}
