//! The `ToolExecutor` actor: one per agent, its toolbelt.
//!
//! Owns: the agent's tool instances, including stateful ones (the authentication
//! detector's windows). Accepts: [`ExecuteTool`]. Emits: a [`ToolOutcome`] per call —
//! `Succeeded`, `Failed`, `Denied`, `TimedOut` or `DryRun`.
//! Survives a restart: nothing by itself. The detector state it returns with every
//! `analyze_logs` call is stored by the agent with the source checkpoint, and a new
//! executor is built from that stored state.
//!
//! A panic inside a tool is caught here and becomes `Failed`; a tool that panicked is
//! poisoned until the agent (and with it the executor) is rebuilt from durable state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use actix::prelude::*;

use crate::messages::{ActionKind, Event, Finding, Incident, ResponseMode};
use crate::tools::ToolName;
use crate::tools::detection::DetectionParams;
use crate::tools::detection::correlate::{self, Correlator};
use crate::tools::detection::ioc::{self, FeedStore, IocMatcher};
use crate::tools::detection::network::{self, NetworkAnalyzer};
use crate::tools::detection::{AuthDetector, AuthDetectorState};

/// The detection state an executor resumes from.
#[derive(Debug, Default)]
pub struct DetectionRestore {
    pub auth: Option<AuthDetectorState>,
    /// Keyed entries (network analytics, correlation), keys relative to the agent name.
    pub keyed: Vec<(String, serde_json::Value)>,
}
use crate::tools::response::actions::{self, ContainPolicy, Native, Plan};
use crate::tools::response::{self, ContainSpec, TriageResult};
use crate::tools::vuln;

/// How long an executed containment command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// One tool call.
#[derive(Debug, Clone)]
pub enum ToolCall {
    AnalyzeLogs {
        events: std::sync::Arc<Vec<Event>>,
        source: String,
        file_truncated: bool,
        /// The file the events were read from (evidence references).
        file: Option<String>,
    },
    AnalyzeNetworkTraffic {
        events: std::sync::Arc<Vec<Event>>,
    },
    /// Match the events against the threat-intel feeds and enrich these findings.
    DetectIoc {
        events: std::sync::Arc<Vec<Event>>,
        findings: Vec<Finding>,
    },
    /// Collect evidence for an incident: its log lines, these files, a host snapshot,
    /// and what the external collectors produce.
    CollectEvidence {
        incident: std::sync::Arc<Incident>,
        files: Vec<std::path::PathBuf>,
        snapshot: bool,
    },
    /// Link these findings with earlier ones into campaigns.
    CorrelateEvents {
        findings: Vec<Finding>,
    },
    TriageIncident {
        incident: std::sync::Arc<Incident>,
        /// The assets incident response knows (criticality, exposure, owner).
        assets: std::sync::Arc<response::triage::Assets>,
    },
    ContainThreat(ContainSpec),
    /// `analyze_logs` on lines a language model supplies: a fresh detector with the same
    /// parameters and rules, so nothing it sees touches the real detection state.
    ProbeLogs {
        lines: Vec<String>,
    },
    /// Inventory a target and match it against the advisory database.
    ScanVulnerabilities {
        target: std::path::PathBuf,
        db: std::sync::Arc<vuln::osv::AdvisoryDb>,
    },
    /// Score each vulnerable package (its matching advisories) in context.
    PrioritizeRisk {
        vulnerable: std::sync::Arc<Vec<Vec<vuln::osv::Match>>>,
        asset: vuln::risk::AssetContext,
        context: std::sync::Arc<vuln::risk::ThreatContext>,
        /// Per package: why it counts as attacked now, if it does.
        attacked: Vec<Option<String>>,
    },
    /// The remediation of each vulnerable package.
    RecommendRemediation {
        vulnerable: std::sync::Arc<Vec<Vec<vuln::osv::Match>>>,
        db: std::sync::Arc<vuln::osv::AdvisoryDb>,
        release: Option<String>,
    },
    /// Check that a remediation is in place.
    VerifyPatch {
        target: Box<vuln::verify::VerifyTarget>,
        db: std::sync::Arc<vuln::osv::AdvisoryDb>,
        /// The findings against the incident since the patch (`None`: no incident).
        findings_since: Option<(chrono::DateTime<chrono::Utc>, Vec<Finding>)>,
    },
    /// The posture over the latest scans.
    GenerateVulnReport {
        scans: std::sync::Arc<Vec<vuln::scan::ScanReport>>,
        format: response::report::Format,
    },
}

impl ToolCall {
    pub fn tool(&self) -> ToolName {
        match self {
            ToolCall::AnalyzeLogs { .. } => ToolName::AnalyzeLogs,
            ToolCall::AnalyzeNetworkTraffic { .. } => ToolName::AnalyzeNetworkTraffic,
            ToolCall::DetectIoc { .. } => ToolName::DetectIoc,
            ToolCall::CorrelateEvents { .. } => ToolName::CorrelateEvents,
            ToolCall::CollectEvidence { .. } => ToolName::CollectEvidence,
            ToolCall::TriageIncident { .. } => ToolName::TriageIncident,
            ToolCall::ContainThreat(_) => ToolName::ContainThreat,
            ToolCall::ProbeLogs { .. } => ToolName::AnalyzeLogs,
            ToolCall::ScanVulnerabilities { .. } => ToolName::ScanVulnerabilities,
            ToolCall::PrioritizeRisk { .. } => ToolName::PrioritizeRisk,
            ToolCall::RecommendRemediation { .. } => ToolName::RecommendRemediation,
            ToolCall::VerifyPatch { .. } => ToolName::VerifyPatch,
            ToolCall::GenerateVulnReport { .. } => ToolName::GenerateVulnReport,
        }
    }
}

#[derive(Message, Debug, Clone)]
#[rtype(result = "ToolOutcome")]
pub struct ExecuteTool(pub ToolCall);

/// What a successful tool call produced.
#[derive(Debug, Clone)]
pub enum ToolOutput {
    Findings {
        findings: Vec<Finding>,
        delta: crate::tools::detection::auth::StateDelta,
    },
    /// Findings and the keyed state entries that changed (`None`: deleted), keys
    /// relative to the agent's name.
    Detected {
        findings: Vec<Finding>,
        keyed: Vec<(String, Option<serde_json::Value>)>,
    },
    /// `detect_ioc` and `correlate_events`: the findings they were given, enriched (intel
    /// hits, campaign membership), and the ones they opened.
    Intel {
        enriched: Vec<Finding>,
        added: Vec<Finding>,
        keyed: Vec<(String, Option<serde_json::Value>)>,
    },
    Triage(TriageResult),
    /// `collect_evidence`: what was stored, and what could not be.
    Evidence {
        items: Vec<response::evidence::EvidenceItem>,
        problems: Vec<String>,
    },
    /// `undo`: the target its rollback needs when it is not the action's own (a
    /// quarantined file is restored by its SHA-256).
    Executed {
        argv: Vec<String>,
        output: String,
        undo: Option<String>,
    },
    Scanned(Box<vuln::scan::Matched>),
    Risks(Vec<vuln::risk::Risk>),
    Remediations(Vec<Option<vuln::remediate::Remediation>>),
    Verification(Box<vuln::verify::Verification>),
    Report(String),
}

/// The outcome of a tool call. Failure is a value.
#[derive(Debug, Clone)]
pub enum ToolOutcome {
    Succeeded(ToolOutput),
    Failed(String),
    Denied(String),
    TimedOut,
    /// The command that would have run, not run (observe and approve modes); `steps`
    /// lists every command and native step of the action.
    DryRun {
        argv: Vec<String>,
        steps: Vec<String>,
    },
}

impl ToolOutcome {
    pub fn summary(&self) -> String {
        match self {
            ToolOutcome::Succeeded(_) => "succeeded".into(),
            ToolOutcome::Failed(e) => format!("failed: {e}"),
            ToolOutcome::Denied(e) => format!("denied: {e}"),
            ToolOutcome::TimedOut => "timed out".into(),
            ToolOutcome::DryRun { .. } => "dry run".into(),
        }
    }
}

/// The toolbelt of one agent.
pub struct ToolExecutor {
    agent: String,
    allowed: Vec<ToolName>,
    detector: Option<AuthDetector>,
    detector_poisoned: bool,
    /// What a fresh detector for [`ToolCall::ProbeLogs`] is made of.
    probe: Option<(DetectionParams, Vec<(String, String)>)>,
    network: Option<NetworkAnalyzer>,
    ioc: Option<IocMatcher>,
    correlator: Option<Correlator>,
    policy: std::sync::Arc<ContainPolicy>,
    /// Whether the agent stores detector deltas (false for replay's throw-away database).
    keep_delta: bool,
}

impl ToolExecutor {
    /// An executor for an agent's declared tools, resuming the given detection state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        agent: &str,
        allowed: &[ToolName],
        detection: &DetectionParams,
        restored: DetectionRestore,
        feeds: Option<std::sync::Arc<FeedStore>>,
        rule_files: &[(String, String)],
        policy: std::sync::Arc<ContainPolicy>,
        keep_delta: bool,
    ) -> Self {
        let DetectionRestore { auth, keyed } = restored;
        let probe = allowed.contains(&ToolName::AnalyzeLogs).then(|| (detection.clone(), rule_files.to_vec()));
        let detector = allowed.contains(&ToolName::AnalyzeLogs).then(|| {
            let rules = (!rule_files.is_empty()).then(|| crate::tools::detection::sigma::load(rule_files));
            AuthDetector::with_rules(detection.clone(), auth.unwrap_or_default(), rules)
        });
        let mut poisoned = false;
        let (mut net_entries, mut ioc_entries, mut cor_entries) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in keyed {
            if let Some(rest) = key.strip_prefix(network::STATE_PREFIX) {
                net_entries.push((rest.to_string(), value));
            } else if let Some(rest) = key.strip_prefix(ioc::STATE_PREFIX) {
                ioc_entries.push((rest.to_string(), value));
            } else if let Some(rest) = key.strip_prefix(correlate::STATE_PREFIX) {
                cor_entries.push((rest.to_string(), value));
            }
        }
        let mut restore_failed = |what: &str, r: Result<(), String>| {
            if let Err(e) = r {
                tracing::error!(agent, error = %e, "cannot restore the {what} state");
                poisoned = true;
            }
        };
        let ioc = match (allowed.contains(&ToolName::DetectIoc), feeds) {
            (true, Some(store)) => {
                let mut m = IocMatcher::new(store);
                restore_failed("detect_ioc", m.restore(ioc_entries));
                Some(m)
            }
            _ => None,
        };
        let correlator = allowed.contains(&ToolName::CorrelateEvents).then(|| {
            let mut c = Correlator::new(detection.correlation.clone());
            restore_failed("correlate_events", c.restore(cor_entries));
            c
        });
        let network = allowed.contains(&ToolName::AnalyzeNetworkTraffic).then(|| {
            let mut n = NetworkAnalyzer::new(detection.network.clone());
            restore_failed("analyze_network_traffic", n.restore(net_entries));
            n
        });
        ToolExecutor {
            agent: agent.to_string(),
            allowed: allowed.to_vec(),
            detector,
            detector_poisoned: poisoned,
            probe,
            network,
            ioc,
            correlator,
            policy,
            keep_delta,
        }
    }

    /// Runs a synchronous tool call; an enforced containment comes back as the plan to
    /// run.
    pub fn run_sync(&mut self, call: ToolCall) -> Result<ToolOutcome, Box<Plan>> {
        if !self.allowed.contains(&call.tool()) {
            return Ok(ToolOutcome::Denied(format!(
                "agent `{}` does not declare tool `{}`",
                self.agent,
                call.tool().as_str()
            )));
        }
        Ok(match call {
            ToolCall::AnalyzeLogs { events, source, file_truncated, file } => {
                if self.detector_poisoned {
                    return Ok(ToolOutcome::Failed(
                        "detector state lost after a panic; the agent must be rebuilt".into(),
                    ));
                }
                let Some(det) = self.detector.as_mut() else {
                    return Ok(ToolOutcome::Failed("analyze_logs has no detector".into()));
                };
                match catch_unwind(AssertUnwindSafe(|| {
                    det.set_file(file);
                    let mut findings = det.check_log_integrity(&events, &source, file_truncated);
                    findings.extend(det.analyze(&events));
                    findings.iter_mut().for_each(crate::tools::detection::attack::complete);
                    let delta = if self.keep_delta {
                        det.take_delta()
                    } else {
                        det.discard_delta();
                        Default::default()
                    };
                    (findings, delta)
                })) {
                    Ok((findings, delta)) => ToolOutcome::Succeeded(ToolOutput::Findings { findings, delta }),
                    Err(p) => {
                        self.detector_poisoned = true;
                        ToolOutcome::Failed(format!("analyze_logs panicked: {}", panic_text(&p)))
                    }
                }
            }
            ToolCall::AnalyzeNetworkTraffic { events } => {
                if self.detector_poisoned {
                    return Ok(ToolOutcome::Failed(
                        "detector state lost after a panic; the agent must be rebuilt".into(),
                    ));
                }
                let Some(net) = self.network.as_mut() else {
                    return Ok(ToolOutcome::Failed("analyze_network_traffic has no analyser".into()));
                };
                let keep = self.keep_delta;
                match catch_unwind(AssertUnwindSafe(|| {
                    let findings = net.analyze(&events);
                    let keyed = if keep {
                        let delta = net.take_delta();
                        delta.into_iter().map(|(k, v)| (format!("{}{k}", network::STATE_PREFIX), v)).collect()
                    } else {
                        net.discard_delta();
                        Vec::new()
                    };
                    (findings, keyed)
                })) {
                    Ok((findings, keyed)) => ToolOutcome::Succeeded(ToolOutput::Detected { findings, keyed }),
                    Err(p) => {
                        self.detector_poisoned = true;
                        ToolOutcome::Failed(format!("analyze_network_traffic panicked: {}", panic_text(&p)))
                    }
                }
            }
            ToolCall::DetectIoc { events, mut findings } => {
                let keep = self.keep_delta;
                let Some(m) = self.ioc.as_mut() else {
                    // No feeds configured: nothing to match, the findings pass unchanged.
                    return Ok(ToolOutcome::Succeeded(ToolOutput::Intel {
                        enriched: findings,
                        added: Vec::new(),
                        keyed: Vec::new(),
                    }));
                };
                match catch_unwind(AssertUnwindSafe(|| {
                    let added = m.run(&events, &mut findings);
                    let keyed = if keep { m.take_delta() } else { m.discard_delta() };
                    (findings, added, keyed)
                })) {
                    Ok((enriched, added, keyed)) => {
                        ToolOutcome::Succeeded(ToolOutput::Intel { enriched, added, keyed })
                    }
                    Err(p) => ToolOutcome::Failed(format!("detect_ioc panicked: {}", panic_text(&p))),
                }
            }
            ToolCall::CorrelateEvents { mut findings } => {
                if self.detector_poisoned {
                    return Ok(ToolOutcome::Failed(
                        "detector state lost after a panic; the agent must be rebuilt".into(),
                    ));
                }
                let keep = self.keep_delta;
                let Some(c) = self.correlator.as_mut() else {
                    return Ok(ToolOutcome::Failed("correlate_events has no correlator".into()));
                };
                match catch_unwind(AssertUnwindSafe(|| {
                    let added = c.correlate(&mut findings);
                    let keyed = if keep { c.take_delta() } else { c.discard_delta() };
                    (findings, added, keyed)
                })) {
                    Ok((enriched, added, keyed)) => {
                        ToolOutcome::Succeeded(ToolOutput::Intel { enriched, added, keyed })
                    }
                    Err(p) => {
                        self.detector_poisoned = true;
                        ToolOutcome::Failed(format!("correlate_events panicked: {}", panic_text(&p)))
                    }
                }
            }
            ToolCall::CollectEvidence { .. } => {
                return Ok(ToolOutcome::Failed("collect_evidence runs asynchronously".into()));
            }
            ToolCall::TriageIncident { incident, assets } => {
                match catch_unwind(AssertUnwindSafe(|| response::triage(&incident, &assets))) {
                    Ok(t) => ToolOutcome::Succeeded(ToolOutput::Triage(t)),
                    Err(p) => ToolOutcome::Failed(format!("triage_incident panicked: {}", panic_text(&p))),
                }
            }
            ToolCall::ProbeLogs { lines } => {
                let Some((params, rule_files)) = self.probe.clone() else {
                    return Ok(ToolOutcome::Failed("analyze_logs has no detector".into()));
                };
                guarded("analyze_logs", move || {
                    let rules = (!rule_files.is_empty()).then(|| crate::tools::detection::sigma::load(&rule_files));
                    let mut det = AuthDetector::with_rules(params, Default::default(), rules);
                    let mut b = crate::ingest::BatchBuilder::new(crate::config::LogFormat::Auto, chrono::Utc::now());
                    for l in lines {
                        b.parser.parse(crate::text::sanitize(&l, 4096), &mut b.stats, &mut b.events);
                    }
                    let mut findings = det.analyze(&b.events);
                    findings.iter_mut().for_each(crate::tools::detection::attack::complete);
                    ToolOutput::Findings { findings, delta: Default::default() }
                })
            }
            ToolCall::PrioritizeRisk { vulnerable, asset, context, attacked } => guarded("prioritize_risk", || {
                let now = chrono::Utc::now();
                let risks = vulnerable
                    .iter()
                    .enumerate()
                    .map(|(i, ms)| {
                        vuln::risk::prioritize(ms, &asset, &context, attacked.get(i).cloned().flatten().as_deref(), now)
                    })
                    .collect();
                ToolOutput::Risks(risks)
            }),
            ToolCall::RecommendRemediation { vulnerable, db, release } => guarded("recommend_remediation", || {
                ToolOutput::Remediations(
                    vulnerable.iter().map(|ms| vuln::remediate::recommend(&db, ms, release.as_deref())).collect(),
                )
            }),
            ToolCall::GenerateVulnReport { scans, format } => guarded("generate_vuln_report", || {
                ToolOutput::Report(vuln::scan::render_posture(&vuln::scan::posture(&scans, chrono::Utc::now()), format))
            }),
            ToolCall::ScanVulnerabilities { .. } | ToolCall::VerifyPatch { .. } => {
                ToolOutcome::Failed("this tool runs asynchronously".into())
            }
            ToolCall::ContainThreat(spec) => {
                let plan = match actions::plan(spec.kind, &spec.target, spec.ttl_secs, &self.policy) {
                    Ok(p) => p,
                    Err(why) => return Ok(ToolOutcome::Denied(why)),
                };
                match spec.mode {
                    ResponseMode::Observe | ResponseMode::Approve => {
                        ToolOutcome::DryRun { argv: plan.primary_argv(), steps: plan.display() }
                    }
                    ResponseMode::Enforce => return Err(Box::new(plan)),
                }
            }
        })
    }
}

/// Runs a stateless tool, turning a panic into a failure.
fn guarded(name: &str, f: impl FnOnce() -> ToolOutput) -> ToolOutcome {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(out) => ToolOutcome::Succeeded(out),
        Err(p) => ToolOutcome::Failed(format!("{name} panicked: {}", panic_text(&p))),
    }
}

/// How long a scan or a verification may take.
const VULN_TIMEOUT: Duration = Duration::from_secs(600);

/// `scan_vulnerabilities` and `verify_patch`: file system and `/proc` work off the actor
/// thread, with a timeout; a panic is a failure.
async fn vuln_io(call: ToolCall) -> ToolOutcome {
    let work = async move {
        match call {
            ToolCall::ScanVulnerabilities { target, db } => {
                match tokio::task::spawn_blocking(move || vuln::scan::inventory_and_match(&target, &db)).await {
                    Ok(m) => ToolOutcome::Succeeded(ToolOutput::Scanned(Box::new(m))),
                    Err(e) => ToolOutcome::Failed(format!("scan_vulnerabilities panicked: {e}")),
                }
            }
            ToolCall::VerifyPatch { target, db, findings_since } => {
                let v = futures_util::FutureExt::catch_unwind(AssertUnwindSafe(vuln::verify::verify(
                    &target,
                    &db,
                    findings_since,
                    std::path::Path::new("/proc"),
                )))
                .await;
                match v {
                    Ok(v) => ToolOutcome::Succeeded(ToolOutput::Verification(Box::new(v))),
                    Err(p) => ToolOutcome::Failed(format!("verify_patch panicked: {}", panic_text(&p))),
                }
            }
            _ => ToolOutcome::Failed("not an asynchronous tool".into()),
        }
    };
    match tokio::time::timeout(VULN_TIMEOUT, work).await {
        Ok(o) => o,
        Err(_) => ToolOutcome::TimedOut,
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an argv (never through a shell) with a timeout: its exit code and output.
pub async fn run_cmd(argv: &[String], stdin: Option<&str>) -> Result<(i32, String), ToolOutcome> {
    use tokio::io::AsyncWriteExt;
    let Some((prog, args)) = argv.split_first() else {
        return Err(ToolOutcome::Failed("empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ToolOutcome::Failed(format!("cannot run {prog}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes()).await;
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Err(_) => Err(ToolOutcome::TimedOut),
        Ok(Err(e)) => Err(ToolOutcome::Failed(format!("{prog}: {e}"))),
        Ok(Ok(out)) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            Ok((out.status.code().unwrap_or(-1), text))
        }
    }
}

/// Runs an argv and calls anything but exit 0 a failure.
async fn run_argv(argv: &[String], stdin: Option<&str>) -> ToolOutcome {
    match run_cmd(argv, stdin).await {
        Ok((0, output)) => ToolOutcome::Succeeded(ToolOutput::Executed { argv: argv.to_vec(), output, undo: None }),
        Ok((code, output)) => ToolOutcome::Failed(format!("{} exited with {code}: {}", argv[0], output.trim())),
        Err(o) => o,
    }
}

/// Runs a containment plan: its commands in order (stopping at the first failure; an
/// exit code the plan lists as "nothing to do" is not one), then its native step.
pub async fn execute_plan(plan: &Plan, policy: &ContainPolicy) -> ToolOutcome {
    let mut log = Vec::new();
    if plan.kind == ActionKind::BlockIp {
        // Warden's table, sets and drop rules, created on first use.
        let list = ["nft", "list", "table", "inet", response::contain::NFT_TABLE].map(String::from);
        if !matches!(run_argv(&list, None).await, ToolOutcome::Succeeded(_)) {
            let setup = ["nft", "-f", "-"].map(String::from);
            if let o @ (ToolOutcome::Failed(_) | ToolOutcome::TimedOut) = run_argv(&setup, Some(NFT_SETUP)).await {
                return o;
            }
            log.push(format!("created table inet {}", response::contain::NFT_TABLE));
        }
    }
    for (i, argv) in plan.argv.iter().enumerate() {
        let stdin = (argv.len() == 3 && argv[0] == "nft" && argv[1] == "-f" && argv[2] == "-")
            .then(|| actions::isolate_script(&policy.management));
        match run_cmd(argv, stdin.as_deref()).await {
            Ok((0, out)) => log.push(format!("$ {}\n{}", argv.join(" "), out.trim())),
            Ok((code, out)) if plan.ok_codes.get(i).is_some_and(|c| c.contains(&code)) => {
                log.push(format!("$ {} (exit {code}: nothing to do)\n{}", argv.join(" "), out.trim()))
            }
            Ok((code, out)) => {
                return ToolOutcome::Failed(format!("{} exited with {code}: {}", argv.join(" "), out.trim()));
            }
            Err(o) => return o,
        }
    }
    let mut undo = None;
    let native = match &plan.native {
        None => Ok(None),
        Some(Native::Kill { pid, start_time, exe }) => {
            actions::kill_checked(*pid, *start_time, exe.as_deref()).map(Some)
        }
        Some(Native::Quarantine { path, dir }) => actions::quarantine(path, dir).map(|r| {
            undo = Some(r.sha256.clone());
            Some(format!("quarantined {} as {} ({} bytes, mode {:o})", r.original.display(), r.sha256, r.size, r.mode))
        }),
        Some(Native::Restore { sha256, dir }) => actions::restore(sha256, dir)
            .map(|r| Some(format!("restored {} (mode {:o})", r.original.display(), r.mode))),
    };
    match native {
        Ok(Some(line)) => log.push(line),
        Ok(None) => {}
        Err(e) => return ToolOutcome::Denied(e),
    }
    ToolOutcome::Succeeded(ToolOutput::Executed { argv: plan.primary_argv(), output: log.join("\n"), undo })
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
) -> ToolOutcome {
    use response::evidence;
    let dir = &policy.evidence_dir;
    let mut results: Vec<Result<evidence::EvidenceItem, String>> = Vec::new();
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
            Err(e) => keep(Err(format!("host snapshot: {e}"))),
        }
    }
    for c in &policy.collectors {
        match run_cmd(&c.argv, None).await {
            Ok((0, out)) if (out.len() as u64) <= EVIDENCE_MAX => keep(evidence::store(
                dir,
                inc.id,
                "external",
                &format!("{} ({})", c.name, c.argv.join(" ")),
                out.as_bytes(),
            )),
            Ok((0, _)) => keep(Err(format!("collector {}: output over {EVIDENCE_MAX} bytes", c.name))),
            Ok((code, out)) => keep(Err(format!("collector {} exited with {code}: {}", c.name, out.trim()))),
            Err(o) => keep(Err(format!("collector {}: {}", c.name, o.summary()))),
        }
    }
    let (mut items, mut problems) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(i) => items.push(i),
            Err(e) => problems.push(e),
        }
    }
    ToolOutcome::Succeeded(ToolOutput::Evidence { items, problems })
}

/// The nftables table, sets and drop rules Warden's blocks go into, created once.
const NFT_SETUP: &str = "table inet warden {
  set blocklist_v4 { type ipv4_addr; flags timeout; }
  set blocklist_v6 { type ipv6_addr; flags timeout; }
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr @blocklist_v4 drop
    ip6 saddr @blocklist_v6 drop
  }
}
";

impl Actor for ToolExecutor {
    type Context = Context<Self>;
}

impl Handler<ExecuteTool> for ToolExecutor {
    type Result = ResponseActFuture<Self, ToolOutcome>;

    fn handle(&mut self, msg: ExecuteTool, _: &mut Self::Context) -> Self::Result {
        if matches!(msg.0.tool(), ToolName::ScanVulnerabilities | ToolName::VerifyPatch) {
            if !self.allowed.contains(&msg.0.tool()) {
                let why = format!("agent `{}` does not declare tool `{}`", self.agent, msg.0.tool().as_str());
                return Box::pin(fut::ready(ToolOutcome::Denied(why)));
            }
            return Box::pin(vuln_io(msg.0).into_actor(self));
        }
        if let ToolCall::CollectEvidence { incident, files, snapshot } = msg.0 {
            if !self.allowed.contains(&ToolName::CollectEvidence) {
                let why = format!("agent `{}` does not declare tool `collect_evidence`", self.agent);
                return Box::pin(fut::ready(ToolOutcome::Denied(why)));
            }
            let policy = self.policy.clone();
            return Box::pin(async move { collect(&incident, &files, snapshot, &policy).await }.into_actor(self));
        }
        match self.run_sync(msg.0) {
            Ok(outcome) => Box::pin(fut::ready(outcome)),
            Err(plan) => {
                let policy = self.policy.clone();
                Box::pin(async move { execute_plan(&plan, &policy).await }.into_actor(self))
            }
        }
    }
}
