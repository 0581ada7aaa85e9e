//! How an agent thinks with a language model: its prompt file as the system prompt,
//! its definition's tools as the model's tools (each forwarding to its executor, or
//! routing a request through the supervisor for incident response or vulnerability
//! management to decide with their usual checks), and one audit record per call.
//!
//! Everything a tool does while the model runs lands in [`Sinks`] (audit entries,
//! envelopes to route) and becomes part of the handling envelope's effects — committed
//! with its acknowledgement like any deterministic decision.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AgentEnv, Effects};
use crate::definitions::{AgentDefinition, ToolName};
use crate::kb::audit::{AuditEntry, AuditKind};
use crate::llm::{LlmTool, ReasonRequest};
use crate::messages::{Envelope, Payload};
use crate::tools::{ExecuteTool, ToolCall, ToolExecutor, ToolOutcome, ToolOutput};

/// What the model's tools did, collected while it runs.
#[derive(Clone, Default)]
pub struct Sinks {
    pub audit: Arc<Mutex<Vec<AuditEntry>>>,
    pub route: Arc<Mutex<Vec<Envelope>>>,
}

impl Sinks {
    fn audit(&self, e: AuditEntry) {
        self.audit.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
    fn route(&self, e: Envelope) {
        self.route.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
    /// Moves what was collected into the effects.
    pub fn drain_into(&self, fx: &mut Effects) {
        fx.audit.append(&mut self.audit.lock().unwrap_or_else(|p| p.into_inner()));
        fx.route.append(&mut self.route.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// What else a tool needs from the agent at the moment of the call.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Vulnerability management: its advisory database and latest scans.
    pub db: Option<Arc<crate::tools::vuln::osv::AdvisoryDb>>,
    pub scans: Arc<Vec<crate::tools::vuln::scan::ScanReport>>,
    /// Its targets' assets and the threat context (KEV, EPSS).
    pub assets: Arc<Vec<(std::path::PathBuf, crate::tools::vuln::risk::AssetContext)>>,
    pub context: Arc<crate::tools::vuln::risk::ThreatContext>,
}

/// Asks the model; the answer, or why the agent fell back to its deterministic
/// behaviour. The call's ledger record and everything its tools did go into `fx`.
pub async fn ask(
    env: &AgentEnv,
    def: &AgentDefinition,
    prompt: String,
    tools: Vec<LlmTool>,
    sinks: &Sinks,
    fx: &mut Effects,
) -> Result<String, String> {
    let Some(reasoner) = &env.reasoner else {
        return Err("no language model configured".into());
    };
    let system = def.prompt.clone().unwrap_or_else(|| format!("You are Warden's {} agent.", def.name));
    let (answer, record) = reasoner.ask(ReasonRequest { agent: def.name.clone(), system, prompt, tools }).await;
    sinks.drain_into(fx);
    fx.audit.push(AuditEntry::new(
        &def.name,
        AuditKind::ModelCall,
        &record.model,
        serde_json::to_value(&record).unwrap_or_default(),
    ));
    answer.map(|a| a.text).map_err(|e| e.to_string())
}

fn tool(
    name: ToolName,
    description: &str,
    parameters: Value,
    f: impl Fn(Value) -> BoxFuture<'static, Result<String, String>> + Send + Sync + 'static,
) -> LlmTool {
    LlmTool { name: name.as_str().into(), description: description.into(), parameters, call: Arc::new(f) }
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required })
}

fn uuid_arg(args: &Value, key: &str) -> Result<Uuid, String> {
    args.get(key).and_then(|v| v.as_str()).and_then(|s| s.parse().ok()).ok_or_else(|| format!("`{key}` must be a UUID"))
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(|v| v.as_str())
}

/// Runs a tool call on the executor (from whatever task the model runs on).
async fn execute(exec: &Option<actix::Addr<ToolExecutor>>, call: ToolCall) -> ToolOutcome {
    let Some(exec) = exec else {
        return ToolOutcome::Failed("the tool executor is not reachable here".into());
    };
    match exec.send(ExecuteTool(call)).await {
        Ok(o) => o,
        Err(e) => ToolOutcome::Failed(format!("tool executor unavailable: {e}")),
    }
}

/// Inventory and matching of the configured scan target the model names (`target`;
/// default: the first): its path, the database used, and the executor's outcome.
async fn scan_named(
    exec: &Option<actix::Addr<ToolExecutor>>,
    snap: &Snapshot,
    targets: &[crate::tools::vuln::scan::Target],
    args: &Value,
) -> Result<(std::path::PathBuf, Arc<crate::tools::vuln::osv::AdvisoryDb>, ToolOutcome), String> {
    let db = snap.db.clone().ok_or("no advisory database loaded")?;
    let want = str_arg(args, "target");
    let t = targets
        .iter()
        .find(|t| want.is_none_or(|w| t.path.display().to_string() == w))
        .ok_or("not a configured scan target")?;
    let outcome = execute(exec, ToolCall::ScanVulnerabilities { target: t.path.clone(), db: db.clone() }).await;
    Ok((t.path.clone(), db, outcome))
}

/// The model's tools for this agent: exactly the tools its definition declares.
pub fn tools_for(
    def: &AgentDefinition,
    env: &Arc<AgentEnv>,
    exec: Option<actix::Addr<ToolExecutor>>,
    sinks: &Sinks,
    snap: Snapshot,
) -> Vec<LlmTool> {
    let mut out = Vec::new();
    for &t in &def.tools {
        let (env, exec, sinks, snap) = (env.clone(), exec.clone(), sinks.clone(), snap.clone());
        let agent = def.name.clone();
        let assets = def.assets.clone();
        let playbooks = def.playbooks.clone();
        let targets = def.vuln.targets.clone();
        let built = match t {
            ToolName::TriageIncident => Some(tool(
                t,
                "Triage a stored incident: its type, severity, priority, deadline and the reasons.",
                object(json!({ "incident_id": { "type": "string" } }), &["incident_id"]),
                move |args| {
                    let (env, exec, assets, sinks, agent) =
                        (env.clone(), exec.clone(), assets.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let id = uuid_arg(&args, "incident_id")?;
                        let inc =
                            env.kb.incident(id).await.map_err(|e| e.to_string())?.ok_or(format!("no incident {id}"))?;
                        let outcome =
                            execute(&exec, ToolCall::TriageIncident { incident: Arc::new(inc), assets }).await;
                        sinks.audit(AuditEntry::new(
                            &agent,
                            AuditKind::ToolCall,
                            "triage_incident",
                            json!({ "by": "model", "incident": id, "outcome": outcome.summary() }),
                        ));
                        match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Triage(t)) => {
                                Ok(serde_json::to_string(&t).unwrap_or_default())
                            }
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::ContainThreat => Some(tool(
                t,
                "Request a containment action on an incident (block_ip, unblock_ip, isolate_host, disable_account, \
                 enable_account, kill_process, quarantine_file). Incident response decides with its policy: \
                 autonomy, protected entities, approvals, time to live. Nothing runs from this call alone.",
                object(
                    json!({ "incident_id": { "type": "string" }, "action": { "type": "string" },
                            "target": { "type": "string" }, "reason": { "type": "string" } }),
                    &["incident_id", "action", "target"],
                ),
                move |args| {
                    let (sinks, agent) = (sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let incident_id = uuid_arg(&args, "incident_id")?;
                        let action: crate::messages::ActionKind =
                            serde_json::from_value(args.get("action").cloned().unwrap_or_default())
                                .map_err(|_| "unknown action".to_string())?;
                        let target = crate::text::sanitize(str_arg(&args, "target").unwrap_or_default(), 256);
                        let reason = format!(
                            "requested by the language model: {}",
                            crate::text::sanitize(str_arg(&args, "reason").unwrap_or_default(), 256)
                        );
                        let env = Envelope::new(
                            &agent,
                            Payload::Containment(crate::messages::ContainmentRequest {
                                incident_id,
                                action,
                                target: target.clone(),
                                reason,
                                requested_by: Some("model".into()),
                            }),
                        );
                        sinks.audit(AuditEntry::new(&agent, AuditKind::ToolCall, "contain_threat", json!({ "by": "model", "incident": incident_id, "action": action, "target": target, "decision": "routed to incident response's policy" })));
                        sinks.route(env);
                        Ok(format!(
                            "{action} {target} requested; incident response applies its policy (it may refuse, wait for approval or run in observe mode)"
                        ))
                    })
                },
            )),
            ToolName::ExecutePlaybook => Some(tool(
                t,
                "Propose a playbook for an incident; it is checked against the shipped playbooks and the incident's type. \
                 Playbooks start only through Warden's own triggers.",
                object(
                    json!({ "incident_id": { "type": "string" }, "playbook": { "type": "string" } }),
                    &["incident_id", "playbook"],
                ),
                move |args| {
                    let (env, playbooks, sinks, agent) = (env.clone(), playbooks.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let id = uuid_arg(&args, "incident_id")?;
                        let name = str_arg(&args, "playbook").unwrap_or_default().to_string();
                        let inc =
                            env.kb.incident(id).await.map_err(|e| e.to_string())?.ok_or(format!("no incident {id}"))?;
                        let decision = match playbooks.iter().find(|p| p.name == name) {
                            None => Err(format!("no playbook named `{}`", crate::text::sanitize(&name, 64))),
                            Some(p) if !p.trigger.types.contains(&inc.kind) => {
                                Err(format!("playbook `{}` is not for incidents of type `{}`", p.name, inc.kind))
                            }
                            Some(p) => Ok(format!(
                                "playbook `{}` fits incident {id} ({}); steps: {}",
                                p.name,
                                inc.kind,
                                p.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                            )),
                        };
                        sinks.audit(AuditEntry::new(&agent, AuditKind::ToolCall, "execute_playbook", json!({ "by": "model", "incident": id, "proposal": name, "decision": decision.as_ref().map_or_else(|e| format!("refused: {e}"), |_| "valid proposal".into()) })));
                        decision
                    })
                },
            )),
            ToolName::CollectEvidence => Some(tool(
                t,
                "Collect an incident's log lines into the evidence store (content-hashed, with custody records).",
                object(json!({ "incident_id": { "type": "string" } }), &["incident_id"]),
                move |args| {
                    let (env, exec, sinks, agent) = (env.clone(), exec.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let id = uuid_arg(&args, "incident_id")?;
                        let inc =
                            env.kb.incident(id).await.map_err(|e| e.to_string())?.ok_or(format!("no incident {id}"))?;
                        let outcome = execute(
                            &exec,
                            ToolCall::CollectEvidence { incident: Arc::new(inc), files: Vec::new(), snapshot: false },
                        )
                        .await;
                        match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Evidence { items, problems }) => {
                                for item in &items {
                                    sinks.audit(AuditEntry::new(
                                        &agent,
                                        AuditKind::Custody,
                                        &item.sha256,
                                        json!({ "event": "collected", "by": "model", "incident": id, "item": item }),
                                    ));
                                }
                                Ok(format!(
                                    "{} items stored ({}){}",
                                    items.len(),
                                    items
                                        .iter()
                                        .map(|i| format!("{} sha256:{}", i.kind, i.sha256))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    if problems.is_empty() {
                                        String::new()
                                    } else {
                                        format!("; problems: {}", problems.join("; "))
                                    }
                                ))
                            }
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::GenerateReport => Some(tool(
                t,
                "The technical or executive report of an incident, as Markdown.",
                object(
                    json!({ "incident_id": { "type": "string" }, "audience": { "type": "string", "enum": ["technical", "executive"] } }),
                    &["incident_id"],
                ),
                move |args| {
                    let env = env.clone();
                    Box::pin(async move {
                        use crate::tools::response::report;
                        let id = uuid_arg(&args, "incident_id")?;
                        let audience = str_arg(&args, "audience").unwrap_or("technical").parse::<report::Audience>()?;
                        let inc =
                            env.kb.incident(id).await.map_err(|e| e.to_string())?.ok_or(format!("no incident {id}"))?;
                        let md = report::render(&report::build(&inc, audience), report::Format::Markdown);
                        Ok(crate::text::sanitize(&md, 8000))
                    })
                },
            )),
            ToolName::ScanVulnerabilities => Some(tool(
                t,
                "Inventory a configured scan target and match it against the advisory database.",
                object(
                    json!({ "target": { "type": "string", "description": "a configured target path; default: the first" } }),
                    &[],
                ),
                move |args| {
                    let (exec, snap, targets, sinks, agent) =
                        (exec.clone(), snap.clone(), targets.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let (path, _, outcome) = scan_named(&exec, &snap, &targets, &args).await?;
                        sinks.audit(AuditEntry::new(
                            &agent,
                            AuditKind::ToolCall,
                            "scan_vulnerabilities",
                            json!({ "by": "model", "target": path, "outcome": outcome.summary() }),
                        ));
                        match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Scanned(m)) => Ok(format!(
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
                            )),
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::PrioritizeRisk | ToolName::RecommendRemediation => Some(tool(
                t,
                if t == ToolName::PrioritizeRisk {
                    "Score the vulnerable packages of a scan target in context (score, priority, deadline, reasons)."
                } else {
                    "The remediation of the vulnerable packages of a scan target (target version, command, mitigation)."
                },
                object(
                    json!({ "target": { "type": "string", "description": "a configured target path; default: the first" },
                            "package": { "type": "string" } }),
                    &[],
                ),
                move |args| {
                    let (exec, snap, targets, sinks, agent) =
                        (exec.clone(), snap.clone(), targets.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        // The same steps as a scan: inventory and matching, then this tool.
                        let (path, db, outcome) = scan_named(&exec, &snap, &targets, &args).await?;
                        let m = match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Scanned(m)) => *m,
                            o => return Err(o.summary()),
                        };
                        let pkg = str_arg(&args, "package");
                        let vulnerable: Vec<Vec<crate::tools::vuln::osv::Match>> = m
                            .vulnerable
                            .into_iter()
                            .filter(|ms| pkg.is_none_or(|p| ms[0].package.name == p))
                            .take(20)
                            .collect();
                        if vulnerable.is_empty() {
                            return Err("no vulnerable package of that name on that target".into());
                        }
                        let names: Vec<String> = vulnerable
                            .iter()
                            .map(|ms| format!("{} {}", ms[0].package.name, ms[0].package.version))
                            .collect();
                        let vulnerable = Arc::new(vulnerable);
                        let call = if t == ToolName::PrioritizeRisk {
                            let asset = snap
                                .assets
                                .iter()
                                .find(|(p, _)| *p == path)
                                .map(|(_, a)| a.clone())
                                .ok_or("no asset for that target")?;
                            let attacked = vec![None; vulnerable.len()];
                            ToolCall::PrioritizeRisk { vulnerable, asset, context: snap.context.clone(), attacked }
                        } else {
                            ToolCall::RecommendRemediation { vulnerable, db, release: m.release.clone() }
                        };
                        let outcome = execute(&exec, call).await;
                        sinks.audit(AuditEntry::new(
                            &agent,
                            AuditKind::ToolCall,
                            t.as_str(),
                            json!({ "by": "model", "target": path, "outcome": outcome.summary() }),
                        ));
                        match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Risks(risks)) => Ok(names
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
                                .join("\n")),
                            ToolOutcome::Succeeded(ToolOutput::Remediations(rems)) => Ok(names
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
                                .join("\n")),
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::VerifyPatch => Some(tool(
                t,
                "Ask vulnerability management to verify an incident's remediation (after the patch).",
                object(
                    json!({ "incident_id": { "type": "string" }, "package": { "type": "string" } }),
                    &["incident_id"],
                ),
                move |args| {
                    let (sinks, agent) = (sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let id = uuid_arg(&args, "incident_id")?;
                        let package = crate::text::sanitize(str_arg(&args, "package").unwrap_or_default(), 128);
                        sinks.route(Envelope::new(
                            &agent,
                            Payload::PatchVerification(crate::messages::VerifyRequest {
                                incident_id: Some(id),
                                package,
                                fixed_version: None,
                            }),
                        ));
                        sinks.audit(AuditEntry::new(
                            &agent,
                            AuditKind::ToolCall,
                            "verify_patch",
                            json!({ "by": "model", "incident": id, "decision": "verification requested" }),
                        ));
                        Ok("verification requested; its checks are recorded on the incident".into())
                    })
                },
            )),
            ToolName::GenerateVulnReport => Some(tool(
                t,
                "The vulnerability posture over the latest scans, as Markdown.",
                object(json!({}), &[]),
                move |_| {
                    let (exec, snap) = (exec.clone(), snap.clone());
                    Box::pin(async move {
                        let format = crate::tools::response::report::Format::Markdown;
                        match execute(&exec, ToolCall::GenerateVulnReport { scans: snap.scans.clone(), format }).await {
                            ToolOutcome::Succeeded(ToolOutput::Report(r)) => Ok(crate::text::sanitize(&r, 8000)),
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::DetectIoc => Some(tool(
                t,
                "Look up addresses, domains, URLs, hashes and e-mail addresses in the loaded threat-intel feeds.",
                object(json!({ "text": { "type": "string" } }), &["text"]),
                move |args| {
                    let (env, agent) = (env.clone(), agent.clone());
                    Box::pin(async move {
                        let store = env.intel.get(&agent).ok_or("no threat-intel feeds configured")?;
                        let hits = store.index().match_text(str_arg(&args, "text").unwrap_or_default());
                        Ok(if hits.is_empty() {
                            "no indicator matches".into()
                        } else {
                            hits.iter()
                                .map(|h| {
                                    format!(
                                        "{} ({}) in feed {}: {}",
                                        h.indicator,
                                        h.kind,
                                        h.feed,
                                        h.label.as_deref().unwrap_or("-")
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("\n")
                        })
                    })
                },
            )),
            ToolName::AnalyzeLogs => Some(tool(
                t,
                "Run Warden's detectors and rules over log lines (a dry run on a fresh detector: nothing is \
                 stored, no incident opens). Up to 200 lines.",
                object(json!({ "lines": { "type": "array", "items": { "type": "string" } } }), &["lines"]),
                move |args| {
                    let (exec, sinks, agent) = (exec.clone(), sinks.clone(), agent.clone());
                    Box::pin(async move {
                        let lines: Vec<String> = args
                            .get("lines")
                            .and_then(|l| l.as_array())
                            .ok_or("`lines` must be a list of strings")?
                            .iter()
                            .filter_map(|l| l.as_str().map(String::from))
                            .take(200)
                            .collect();
                        let n = lines.len();
                        let outcome = execute(&exec, ToolCall::ProbeLogs { lines }).await;
                        sinks.audit(AuditEntry::new(
                            &agent,
                            AuditKind::ToolCall,
                            "analyze_logs",
                            json!({ "by": "model", "lines": n, "dry_run": true, "outcome": outcome.summary() }),
                        ));
                        match outcome {
                            ToolOutcome::Succeeded(ToolOutput::Findings { findings, .. }) => {
                                Ok(if findings.is_empty() {
                                    format!("{n} lines: no detection")
                                } else {
                                    findings
                                        .iter()
                                        .map(|f| format!("{} ({}): {}", f.rule, f.severity, f.title))
                                        .collect::<Vec<_>>()
                                        .join("\n")
                                })
                            }
                            o => Err(o.summary()),
                        }
                    })
                },
            )),
            ToolName::AnalyzeNetworkTraffic | ToolName::CorrelateEvents => Some(tool(
                t,
                "Runs on every log batch as it arrives (the model cannot feed it); its findings are in the knowledge base.",
                object(json!({}), &[]),
                move |_| {
                    Box::pin(async move {
                        Err(format!(
                            "{} runs on every log batch by itself; its findings are in the knowledge base",
                            t.as_str()
                        ))
                    })
                },
            )),
        };
        out.extend(built);
    }
    out
}

/// The key of an instruction's answer in the state tree.
pub fn answer_key(envelope: Uuid) -> String {
    format!("answers/{envelope}")
}

/// An operator's instruction: the model investigates with the agent's tools and
/// answers; the answer (or why there is none) is stored under the envelope's id for
/// the caller (`GET /v1/answers/{id}`, `warden ask`). Returns the answer for the agent
/// to note on the incident.
pub async fn instruction(
    env: &Arc<AgentEnv>,
    def: &AgentDefinition,
    envelope: &Envelope,
    i: &crate::messages::Instruction,
    tools: &dyn super::Tools,
    snap: Snapshot,
) -> (Effects, Result<String, String>) {
    let mut fx = Effects::default();
    let question = crate::text::sanitize(&i.text, 2000);
    let answer = match &env.reasoner {
        Some(_) => {
            let sinks = Sinks::default();
            let llm_tools = tools_for(def, env, tools.executor(), &sinks, snap);
            let mut prompt = format!("An operator asks: {question}\n");
            if let Some(id) = i.incident_id {
                match env.kb.incident(id).await {
                    Ok(Some(inc)) => {
                        let summary = json!({ "id": inc.id, "type": inc.kind, "title": inc.title, "severity": inc.severity,
                            "priority": inc.priority, "status": inc.status, "entities": inc.entities,
                            "findings": inc.findings.iter().map(|f| json!({ "rule": f.rule, "title": f.title, "evidence": f.evidence })).collect::<Vec<_>>() });
                        prompt.push_str(&format!(
                            "It concerns incident {id}:\n{}\n",
                            crate::llm::fence_untrusted("INCIDENT", &summary.to_string(), 6000)
                        ));
                    }
                    _ => prompt.push_str(&format!("It names incident {id}, which does not exist.\n")),
                }
            }
            prompt.push_str("Use your tools to investigate, then answer in plain language: what you found and what you did or recommend.");
            ask(env, def, prompt, llm_tools, &sinks, &mut fx).await
        }
        None => Err("no language model configured; instruction recorded".into()),
    };
    let record = json!({ "agent": def.name, "question": question, "incident_id": i.incident_id,
        "answer": answer.as_ref().ok(), "fallback": answer.as_ref().err(), "at": chrono::Utc::now() });
    fx.writes.push(crate::kb::Write::State { key: answer_key(envelope.id), value: record.clone() });
    fx.audit.push(AuditEntry::new(
        &def.name,
        AuditKind::EnvelopeHandled,
        envelope.id,
        json!({ "instruction": question,
        "answered": answer.is_ok(), "fallback": answer.as_ref().err() }),
    ));
    (fx, answer)
}

/// Asks the model about something the agent just decided (`None` without a model): its
/// answer, or why there is none — the deterministic decision stands either way.
pub async fn consult(
    env: &Arc<AgentEnv>,
    def: &AgentDefinition,
    tools: &dyn super::Tools,
    snap: Snapshot,
    prompt: String,
    fx: &mut Effects,
) -> Option<Result<String, String>> {
    env.reasoner.as_ref()?;
    let sinks = Sinks::default();
    let llm_tools = tools_for(def, env, tools.executor(), &sinks, snap);
    Some(ask(env, def, prompt, llm_tools, &sinks, fx).await)
}
