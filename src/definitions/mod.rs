//! Agent definitions: loading and linting the `actors/` folder.
//!
//! Each agent is a folder `actors/<name>/` with an `agent.toml`. Definitions are strict:
//! unknown keys, unknown kinds, unknown tools and unknown payload kinds are errors, each
//! reported as `file:line: message`. Loading fails unless every payload kind has a handler.
//!
//! Architecture invariant: a folder loads only if every payload kind has a handler and
//! a threat-detection agent reads the logs.

mod agent;
mod embedded;
mod folder;
mod params;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::messages::{PayloadKind, ResponseMode};
pub use crate::tools::ToolName;
pub use crate::tools::detection::DetectionParams;
pub use folder::ActorsDir;
pub use params::{ResponseParams, RestartBudget, VulnParams};

/// The kinds of agent this build can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    ThreatDetection,
    IncidentResponse,
    VulnerabilityManagement,
    /// An agent made from its folder alone: a prompt, the tools it declares, and a
    /// language model to reason with. It handles instructions and handoffs.
    Custom,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::ThreatDetection => "threat-detection",
            AgentKind::IncidentResponse => "incident-response",
            AgentKind::VulnerabilityManagement => "vulnerability-management",
            AgentKind::Custom => "custom",
        }
    }

    /// Whether an agent of this kind may declare `tool`: a built-in kind its own
    /// toolbelt (its logic uses those), a custom agent any registered tool.
    pub fn may_declare(self, tool: ToolName) -> bool {
        use crate::tools::detection::{analyze_logs, analyze_network_traffic, correlate_events, detect_ioc};
        use crate::tools::response::triage_incident;
        use crate::tools::response::{collect_evidence, contain_threat, execute_playbook, generate_report};
        use crate::tools::vuln::{generate_vuln_report, prioritize_risk, recommend_remediation};
        use crate::tools::vuln::{scan_vulnerabilities, verify_patch};
        const DETECTION: [ToolName; 4] = [
            ToolName::of::<analyze_logs::AnalyzeLogs>(),
            ToolName::of::<analyze_network_traffic::AnalyzeNetworkTraffic>(),
            ToolName::of::<detect_ioc::DetectIoc>(),
            ToolName::of::<correlate_events::CorrelateEvents>(),
        ];
        const RESPONSE: [ToolName; 5] = [
            ToolName::of::<triage_incident::TriageIncident>(),
            ToolName::of::<execute_playbook::ExecutePlaybook>(),
            ToolName::of::<contain_threat::ContainThreat>(),
            ToolName::of::<collect_evidence::CollectEvidence>(),
            ToolName::of::<generate_report::GenerateReport>(),
        ];
        const VULN: [ToolName; 5] = [
            ToolName::of::<scan_vulnerabilities::ScanVulnerabilities>(),
            ToolName::of::<prioritize_risk::PrioritizeRisk>(),
            ToolName::of::<recommend_remediation::RecommendRemediation>(),
            ToolName::of::<verify_patch::VerifyPatch>(),
            ToolName::of::<generate_vuln_report::GenerateVulnReport>(),
        ];
        match self {
            AgentKind::ThreatDetection => DETECTION.contains(&tool),
            AgentKind::IncidentResponse => RESPONSE.contains(&tool),
            AgentKind::VulnerabilityManagement => VULN.contains(&tool),
            AgentKind::Custom => crate::tools::registry::spec(tool).is_some(),
        }
    }
}

/// A validated agent definition.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentDefinition {
    pub name: String,
    pub kind: AgentKind,
    pub description: String,
    pub handles: Vec<PayloadKind>,
    pub tools: Vec<ToolName>,
    /// The prompt text (used only with an LLM).
    pub prompt: Option<String>,
    /// Sigma rule files: (path for messages, text).
    pub rule_files: std::sync::Arc<Vec<(String, String)>>,
    /// Threat-intel feeds (`detect_ioc`).
    pub feeds: Vec<crate::tools::detection::ioc::Feed>,
    /// Assets (`triage_incident`); the default only when none are listed.
    pub assets: std::sync::Arc<crate::tools::response::triage::Assets>,
    /// Playbooks (`execute_playbook`), in file-name order.
    pub playbooks: std::sync::Arc<Vec<crate::tools::response::playbook::Playbook>>,
    /// A restriction of the configured mode for this agent's actions, if its definition
    /// says so.
    pub autonomy: Option<ResponseMode>,
    pub mailbox: usize,
    pub restart: RestartBudget,
    pub detection: DetectionParams,
    pub response: ResponseParams,
    pub vuln: VulnParams,
    /// Where it was loaded from, for messages.
    pub path: String,
}

impl AgentDefinition {
    pub fn handles(&self, kind: PayloadKind) -> bool {
        self.handles.contains(&kind)
    }

    /// The mode an action of this agent runs in under the configured `[response] mode`:
    /// that mode, unless the definition restricts it — by its `autonomy`, or by the
    /// action's own line in `[response.autonomy]` — and what restricted it. A definition
    /// can only make it stricter, never looser.
    pub fn effective_mode(&self, configured: ResponseMode, kind: crate::messages::ActionKind) -> EffectiveMode {
        let mut mode = configured;
        let mut restricted_by = Vec::new();
        let mut restrict = |m: ResponseMode, by: String| {
            if m.stricter(mode) != mode {
                mode = m.stricter(mode);
                restricted_by.push(by);
            }
        };
        if let Some(a) = self.autonomy {
            restrict(a, format!("{}: autonomy = \"{a}\"", self.path));
        }
        if let Some(m) = self.response.autonomy.get(&kind) {
            restrict(*m, format!("{}: [response.autonomy] {kind} = \"{m}\"", self.path));
        }
        EffectiveMode { mode, restricted_by }
    }
}

/// The mode each containment action runs in: as the agent that decides containment
/// requests makes of the configured mode. Logged at start and shown by `/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainmentModes {
    pub configured: ResponseMode,
    /// The agent deciding containment.
    pub agent: String,
    pub actions: BTreeMap<crate::messages::ActionKind, EffectiveMode>,
}

impl ContainmentModes {
    pub fn of(def: &AgentDefinition, configured: ResponseMode) -> ContainmentModes {
        let actions =
            crate::messages::ActionKind::ALL.iter().map(|k| (*k, def.effective_mode(configured, *k))).collect();
        ContainmentModes { configured, agent: def.name.clone(), actions }
    }
}

/// The mode an action really runs in, and the definition lines that made it stricter
/// than the configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveMode {
    pub mode: ResponseMode,
    pub restricted_by: Vec<String>,
}

/// One lint error, `file:line: message` — the same shape as a Sigma rule's load error,
/// which lint reports too.
pub use crate::tools::detection::sigma::RuleError as LintError;

/// Every error found while loading a folder of definitions.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LintErrors {
    pub errors: Vec<LintError>,
}

/// The agent definitions of one folder, keyed by name.
#[derive(Debug, Clone)]
pub struct Definitions {
    pub agents: BTreeMap<String, AgentDefinition>,
    /// Where they came from (`<embedded>` for the copy built into the binary).
    pub origin: String,
    /// Problems that do not stop the agents (rules that did not load).
    pub warnings: Vec<LintError>,
}

/// Loads and validates every agent definition; returns every error found.
pub fn load(dir: &ActorsDir) -> Result<Definitions, LintErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut agents = BTreeMap::new();
    let files = dir.agent_files().map_err(|e| LintErrors { errors: vec![e] })?;
    // Playbooks hand over to agents by name: every agent folder is one.
    let agent_names: Vec<String> = files.iter().map(|(folder, _, _)| folder.clone()).collect();
    for (folder, file, text) in files {
        let loaded = agent::load(dir, &folder, &file, &text, &agent_names);
        errors.extend(loaded.errors);
        warnings.extend(loaded.warnings);
        if let Some(def) = loaded.definition {
            agents.insert(folder, def);
        }
    }
    let whole = |message: String| LintError { file: dir.display(), line: 0, message };
    if agents.is_empty() && errors.is_empty() {
        errors.push(whole("no agent definitions found (expected <name>/agent.toml)".into()));
    }
    if errors.is_empty() {
        for kind in PayloadKind::ALL {
            if !agents.values().any(|a| a.handles(kind)) {
                errors.push(whole(format!("no agent handles payload kind `{kind}`")));
            }
        }
        if !agents.values().any(|a| a.kind == AgentKind::ThreatDetection) {
            errors.push(whole("no threat-detection agent: log sources would have no reader".into()));
        }
    }
    if errors.is_empty() {
        Ok(Definitions { agents, origin: dir.display(), warnings })
    } else {
        Err(LintErrors { errors })
    }
}
