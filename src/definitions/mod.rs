//! Agent definitions: loading and linting the `actors/` folder.
//!
//! Each agent is a folder `actors/<name>/` with an `agent.toml`. Definitions are strict:
//! unknown keys, unknown kinds, unknown tools and unknown payload kinds are errors, each
//! reported as `file:line: message`. Loading fails unless every payload kind has a handler.

mod embedded;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::messages::{PayloadKind, ResponseMode};
pub use crate::tools::ToolName;
pub use crate::tools::detection::DetectionParams;

/// The kinds of agent this build can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    ThreatDetection,
    IncidentResponse,
    VulnerabilityManagement,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::ThreatDetection => "threat-detection",
            AgentKind::IncidentResponse => "incident-response",
            AgentKind::VulnerabilityManagement => "vulnerability-management",
        }
    }

    /// The tools an agent of this kind may declare.
    pub fn toolbelt(self) -> &'static [ToolName] {
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
            AgentKind::ThreatDetection => &DETECTION,
            AgentKind::IncidentResponse => &RESPONSE,
            AgentKind::VulnerabilityManagement => &VULN,
        }
    }
}

/// How often an agent may be restarted before it is marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartBudget {
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_within_secs")]
    pub within_secs: u64,
    /// First backoff delay; doubles per restart inside the window, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

fn default_max_restarts() -> u32 {
    5
}
fn default_within_secs() -> u64 {
    60
}
fn default_backoff_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_mailbox_spanned() -> Spanned<usize> {
    Spanned::new(0..0, 64)
}

impl Default for RestartBudget {
    fn default() -> Self {
        RestartBudget {
            max_restarts: default_max_restarts(),
            within_secs: default_within_secs(),
            backoff_ms: default_backoff_ms(),
            backoff_max_ms: default_backoff_max_ms(),
        }
    }
}

/// Parameters of the incident-response agent.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseParams {
    /// An incident stays active (later findings attach to it) this long after its last
    /// finding, in log time.
    #[serde(default = "default_active_secs")]
    pub incident_active_secs: u64,
    /// How long a block lasts before it expires.
    #[serde(default = "default_block_ttl")]
    pub block_ttl_secs: u64,
    /// Lowest finding severity that gets a containment action.
    #[serde(default = "default_contain_min")]
    pub contain_min_severity: crate::messages::Severity,
    /// Lowest finding severity that opens an incident on its own; weaker findings are
    /// stored, and attach to an incident its entity already has.
    #[serde(default = "default_open_min")]
    pub open_min_severity: crate::messages::Severity,
    /// How long an action waits for approval before it lapses.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
    /// Autonomy per action (`block_ip = "enforce"`, `disable_account = "approve"`); the
    /// stricter of it, the agent's `autonomy` and `[response] mode` wins.
    #[serde(default)]
    pub autonomy: std::collections::BTreeMap<crate::messages::ActionKind, crate::messages::ResponseMode>,
    /// Actions that are not rolled back when they expire.
    #[serde(default)]
    pub permanent: Vec<crate::messages::ActionKind>,
}

/// Parameters of the vulnerability-management agent (`[vuln]`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VulnParams {
    /// Seconds between scheduled scans of every target (0: on demand only).
    #[serde(default = "default_scan_interval")]
    pub scan_interval_secs: u64,
    /// CISA KEV catalog (JSON); absolute, or relative to the data directory.
    #[serde(default = "default_kev")]
    pub kev: String,
    /// FIRST EPSS scores (CSV); absolute, or relative to the data directory.
    #[serde(default = "default_epss")]
    pub epss: String,
    /// What to scan.
    #[serde(default)]
    pub targets: Vec<crate::tools::vuln::scan::Target>,
    /// A check command (argv) per package name, run by `verify_patch` after patching.
    #[serde(default)]
    pub checks: BTreeMap<String, Vec<String>>,
}

impl Default for VulnParams {
    fn default() -> Self {
        VulnParams {
            scan_interval_secs: default_scan_interval(),
            kev: default_kev(),
            epss: default_epss(),
            targets: Vec::new(),
            checks: BTreeMap::new(),
        }
    }
}

fn default_scan_interval() -> u64 {
    86_400
}
fn default_kev() -> String {
    "intel/known_exploited_vulnerabilities.json".into()
}
fn default_epss() -> String {
    "intel/epss_scores-current.csv".into()
}

fn default_approval_timeout() -> u64 {
    3_600
}

fn default_open_min() -> crate::messages::Severity {
    crate::messages::Severity::Medium
}

fn default_active_secs() -> u64 {
    86_400
}
fn default_block_ttl() -> u64 {
    3_600
}
fn default_contain_min() -> crate::messages::Severity {
    crate::messages::Severity::Medium
}

impl Default for ResponseParams {
    fn default() -> Self {
        ResponseParams {
            incident_active_secs: default_active_secs(),
            block_ttl_secs: default_block_ttl(),
            contain_min_severity: default_contain_min(),
            open_min_severity: default_open_min(),
            approval_timeout_secs: default_approval_timeout(),
            autonomy: Default::default(),
            permanent: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: Spanned<String>,
    kind: Spanned<AgentKind>,
    #[serde(default)]
    description: String,
    handles: Vec<Spanned<PayloadKind>>,
    #[serde(default)]
    tools: Vec<Spanned<ToolName>>,
    #[serde(default)]
    prompt: Option<Spanned<String>>,
    /// Folder of Sigma rules (threat detection), relative to the agent's folder.
    #[serde(default)]
    rules: Option<Spanned<String>>,
    /// List of threat-intel feeds (`feeds.toml`), relative to the agent's folder.
    #[serde(default)]
    feeds: Option<Spanned<String>>,
    /// The assets incident response scores incidents against (`assets.toml`).
    #[serde(default)]
    assets: Option<Spanned<String>>,
    /// Folder of playbooks (incident response), relative to the agent's folder.
    #[serde(default)]
    playbooks: Option<Spanned<String>>,
    #[serde(default)]
    autonomy: ResponseMode,
    #[serde(default = "default_mailbox_spanned")]
    mailbox: Spanned<usize>,
    #[serde(default)]
    restart: RestartBudget,
    #[serde(default)]
    detection: Option<Spanned<DetectionParams>>,
    #[serde(default)]
    response: Option<Spanned<ResponseParams>>,
    #[serde(default)]
    vuln: Option<Spanned<VulnParams>>,
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
    pub autonomy: ResponseMode,
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

/// Where definitions are read from.
#[derive(Debug, Clone)]
pub enum ActorsDir {
    Disk(PathBuf),
    /// The `actors/` folder of the source tree, built into the binary.
    Embedded,
}

impl ActorsDir {
    /// `dir` if given, else `./actors` if it exists, else the embedded copy.
    pub fn resolve(dir: Option<&Path>) -> ActorsDir {
        match dir {
            Some(d) => ActorsDir::Disk(d.to_path_buf()),
            None if Path::new("actors").is_dir() => ActorsDir::Disk(PathBuf::from("actors")),
            None => ActorsDir::Embedded,
        }
    }

    fn display(&self) -> String {
        match self {
            ActorsDir::Disk(p) => p.display().to_string(),
            ActorsDir::Embedded => "<embedded>/actors".to_string(),
        }
    }

    /// `(agent folder name, agent.toml path for messages, its text)` for every agent.
    fn agent_files(&self) -> Result<Vec<(String, String, String)>, LintError> {
        match self {
            ActorsDir::Embedded => Ok(embedded::FILES
                .iter()
                .filter_map(|(p, text)| {
                    let agent = p.strip_suffix("/agent.toml")?;
                    (!agent.contains('/'))
                        .then(|| (agent.to_string(), format!("<embedded>/actors/{p}"), text.to_string()))
                })
                .collect()),
            ActorsDir::Disk(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|e| LintError {
                    file: dir.display().to_string(),
                    line: 0,
                    message: format!("cannot read the actors folder: {e}"),
                })?;
                let mut out = Vec::new();
                let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                names.sort();
                for sub in names.into_iter().filter(|p| p.is_dir()) {
                    let file = sub.join("agent.toml");
                    let name = sub.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    match std::fs::read_to_string(&file) {
                        Ok(text) => out.push((name, file.display().to_string(), text)),
                        Err(e) => {
                            return Err(LintError {
                                file: file.display().to_string(),
                                line: 0,
                                message: format!("cannot read agent definition: {e}"),
                            });
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Every `*.yml`/`*.yaml` file below `rel` in an agent's folder: (path, text).
    fn read_tree(&self, agent: &str, rel: &str) -> Option<Vec<(String, String)>> {
        match self {
            ActorsDir::Disk(dir) => {
                let root = dir.join(agent).join(rel);
                let files = crate::tools::detection::sigma::rule_files(&root).ok()?;
                Some(
                    files
                        .into_iter()
                        .map(|p| {
                            let text = std::fs::read_to_string(&p).unwrap_or_default();
                            (p.display().to_string(), text)
                        })
                        .collect(),
                )
            }
            ActorsDir::Embedded => {
                let prefix = format!("{agent}/{}/", rel.trim_end_matches('/'));
                let files: Vec<_> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix) && (p.ends_with(".yml") || p.ends_with(".yaml")))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(files)
            }
        }
    }

    /// Reads a file of an agent's folder (its prompt, rules, ...).
    /// How a file of an agent's folder is named in messages.
    fn display_path(&self, agent: &str, rel: &str) -> String {
        match self {
            ActorsDir::Disk(dir) => dir.join(agent).join(rel).display().to_string(),
            ActorsDir::Embedded => format!("<embedded>/actors/{agent}/{rel}"),
        }
    }

    /// Where a feed's files are: an absolute path as is (it may not exist yet), a
    /// relative one inside the agent's folder (it must exist).
    fn feed_source(&self, agent: &str, rel: &str) -> Option<crate::tools::detection::ioc::FeedSource> {
        use crate::tools::detection::ioc::FeedSource;
        if Path::new(rel).is_absolute() {
            return Some(FeedSource::Path(PathBuf::from(rel)));
        }
        match self {
            ActorsDir::Disk(dir) => {
                let p = dir.join(agent).join(rel);
                p.exists().then_some(FeedSource::Path(p))
            }
            ActorsDir::Embedded => {
                let want = format!("{agent}/{}", rel.trim_end_matches('/'));
                let files: Vec<(String, String)> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| *p == want || p.starts_with(&format!("{want}/")))
                    .filter(|(p, _)| !p.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(FeedSource::Embedded(files))
            }
        }
    }

    /// Every `.toml` file below a folder of an agent's: (path for messages, text).
    fn read_toml_tree(&self, agent: &str, rel: &str) -> Option<Vec<(String, String)>> {
        match self {
            ActorsDir::Disk(dir) => {
                let root = dir.join(agent).join(rel);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                Some(
                    files
                        .into_iter()
                        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()))
                        .collect(),
                )
            }
            ActorsDir::Embedded => {
                let prefix = format!("{agent}/{}/", rel.trim_end_matches('/'));
                let files: Vec<_> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix) && p.ends_with(".toml"))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(files)
            }
        }
    }

    fn read(&self, agent: &str, rel: &str) -> Option<String> {
        match self {
            ActorsDir::Disk(dir) => std::fs::read_to_string(dir.join(agent).join(rel)).ok(),
            ActorsDir::Embedded => {
                // `../other-agent/file` names a sibling agent's file.
                let want = match rel.strip_prefix("../") {
                    Some(sibling) => sibling.to_string(),
                    None => format!("{agent}/{rel}"),
                };
                embedded::FILES.iter().find(|(p, _)| *p == want).map(|(_, t)| t.to_string())
            }
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
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
        let err = |span: std::ops::Range<usize>, message: String| LintError {
            file: file.clone(),
            line: line_of(&text, span.start),
            message,
        };
        let raw: RawDefinition = match toml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
                let message = e.message().trim().replace('\n', " ");
                errors.push(LintError { file: file.clone(), line, message });
                continue;
            }
        };
        let kind = *raw.kind.get_ref();
        if raw.name.get_ref() != &folder {
            errors.push(err(
                raw.name.span(),
                format!("agent name `{}` must match its folder name `{folder}`", raw.name.get_ref()),
            ));
        }
        if raw.handles.is_empty() {
            errors.push(err(0..0, "`handles` is empty: an agent must handle at least one payload kind".into()));
        }
        let mut handles = Vec::new();
        for h in &raw.handles {
            if handles.contains(h.get_ref()) {
                errors.push(err(h.span(), format!("payload kind `{}` is listed twice", h.get_ref())));
            } else {
                handles.push(*h.get_ref());
            }
        }
        let mut tools = Vec::new();
        for t in &raw.tools {
            let tool = *t.get_ref();
            if !kind.toolbelt().contains(&tool) {
                errors.push(err(
                    t.span(),
                    format!("tool `{}` is not in the toolbelt of a `{}` agent", tool.as_str(), kind.as_str()),
                ));
            } else if tools.contains(&tool) {
                errors.push(err(t.span(), format!("tool `{}` is listed twice", tool.as_str())));
            } else {
                tools.push(tool);
            }
        }
        let prompt = match &raw.prompt {
            Some(p) => match dir.read(&folder, p.get_ref()) {
                Some(text) => Some(text),
                None => {
                    errors
                        .push(err(p.span(), format!("prompt file `{}` not found in the agent's folder", p.get_ref())));
                    None
                }
            },
            None => None,
        };
        let mut rule_files = Vec::new();
        if let Some(r) = &raw.rules {
            if kind != AgentKind::ThreatDetection {
                errors.push(err(
                    r.span(),
                    format!("`rules` applies only to threat-detection agents, not `{}`", kind.as_str()),
                ));
            } else {
                match dir.read_tree(&folder, r.get_ref()) {
                    Some(files) => {
                        // A broken rule is a warning: `warden lint` fails on it, but the
                        // agent still runs with every rule that loads.
                        let set = crate::tools::detection::sigma::load(&files);
                        warnings.extend(set.report.errors);
                        rule_files = files;
                    }
                    None => errors
                        .push(err(r.span(), format!("rules folder `{}` not found in the agent's folder", r.get_ref()))),
                }
            }
        }
        let mut feeds = Vec::new();
        if let Some(fl) = &raw.feeds {
            if kind != AgentKind::ThreatDetection {
                errors.push(err(
                    fl.span(),
                    format!("`feeds` applies only to threat-detection agents, not `{}`", kind.as_str()),
                ));
            } else {
                match dir.read(&folder, fl.get_ref()) {
                    Some(text) => {
                        let list_file = dir.display_path(&folder, fl.get_ref());
                        match toml::from_str::<crate::tools::detection::ioc::FeedList>(&text) {
                            Ok(list) => {
                                for spec in list.feeds {
                                    match dir.feed_source(&folder, &spec.path) {
                                        Some(source) => feeds.push(crate::tools::detection::ioc::Feed { spec, source }),
                                        None => errors.push(LintError {
                                            file: list_file.clone(),
                                            line: 0,
                                            message: format!(
                                                "feed `{}`: `{}` not found in the agent's folder",
                                                spec.name, spec.path
                                            ),
                                        }),
                                    }
                                }
                            }
                            Err(e) => errors.push(LintError {
                                file: list_file,
                                line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
                                message: e.message().to_string(),
                            }),
                        }
                    }
                    None => errors
                        .push(err(fl.span(), format!("feeds list `{}` not found in the agent's folder", fl.get_ref()))),
                }
            }
        }
        let mut playbooks = Vec::new();
        if let Some(p) = &raw.playbooks {
            if kind != AgentKind::IncidentResponse {
                errors.push(err(
                    p.span(),
                    format!("`playbooks` applies only to incident-response agents, not `{}`", kind.as_str()),
                ));
            } else {
                match dir.read_toml_tree(&folder, p.get_ref()) {
                    Some(files) => {
                        // Like rules: a broken playbook fails lint, the others run.
                        let (ok, errs) = crate::tools::response::playbook::load(&files, &agent_names);
                        warnings.extend(errs);
                        playbooks = ok;
                    }
                    None => errors.push(err(
                        p.span(),
                        format!("playbooks folder `{}` not found in the agent's folder", p.get_ref()),
                    )),
                }
            }
        }
        let mut assets = crate::tools::response::triage::Assets::default();
        if let Some(a) = &raw.assets {
            if kind == AgentKind::ThreatDetection {
                errors.push(err(
                    a.span(),
                    format!(
                        "`assets` applies only to incident-response and vulnerability-management agents, not `{}`",
                        kind.as_str()
                    ),
                ));
            } else {
                match dir.read(&folder, a.get_ref()) {
                    Some(text) => match toml::from_str::<crate::tools::response::triage::Assets>(&text) {
                        Ok(list) => assets = list,
                        Err(e) => errors.push(LintError {
                            file: dir.display_path(&folder, a.get_ref()),
                            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
                            message: e.message().to_string(),
                        }),
                    },
                    None => errors
                        .push(err(a.span(), format!("assets file `{}` not found in the agent's folder", a.get_ref()))),
                }
            }
        }
        if *raw.mailbox.get_ref() == 0 {
            errors.push(err(raw.mailbox.span(), "`mailbox` must be at least 1".into()));
        }
        if raw.restart.within_secs == 0 {
            errors.push(err(0..0, "`restart.within_secs` must be at least 1".into()));
        }
        if let Some(d) = &raw.detection {
            if kind != AgentKind::ThreatDetection {
                errors.push(err(
                    d.span(),
                    format!("`[detection]` applies only to threat-detection agents, not `{}`", kind.as_str()),
                ));
            }
            let p = d.get_ref();
            if p.brute_force.failures == 0 || p.brute_force.window_secs == 0 {
                errors
                    .push(err(d.span(), "`detection.brute_force` needs failures and window_secs of at least 1".into()));
            }
            let n = &p.network;
            for cidr in n.internal_networks.iter().chain(&n.ignore_sources).chain(&n.ignore_destinations) {
                if cidr.parse::<ipnet::IpNet>().is_err() {
                    errors.push(err(d.span(), format!("`detection.network`: `{cidr}` is not a CIDR")));
                }
            }
            if [n.scan_window_secs, n.beacon_window_secs, n.exfil_window_secs, n.dns_window_secs].contains(&0)
                || p.correlation.window_secs == 0
            {
                errors.push(err(d.span(), "detection windows must be at least 1 second".into()));
            }
            if n.beacon_min_connections < 3 {
                errors.push(err(d.span(), "`detection.network.beacon_min_connections` must be at least 3".into()));
            }
        }
        let detection = raw.detection.as_ref().map(|d| d.get_ref().clone()).unwrap_or_default();
        if let Some(r) = &raw.response
            && kind != AgentKind::IncidentResponse
        {
            errors.push(err(
                r.span(),
                format!("`[response]` applies only to incident-response agents, not `{}`", kind.as_str()),
            ));
        }
        if let Some(v) = &raw.vuln {
            if kind != AgentKind::VulnerabilityManagement {
                errors.push(err(
                    v.span(),
                    format!("`[vuln]` applies only to vulnerability-management agents, not `{}`", kind.as_str()),
                ));
            }
            for t in &v.get_ref().targets {
                if t.asset.trim().is_empty() || t.path.as_os_str().is_empty() {
                    errors.push(err(v.span(), "every `[[vuln.targets]]` needs a `path` and an `asset`".into()));
                }
            }
            for (pkg, argv) in &v.get_ref().checks {
                if argv.is_empty() || argv[0].trim().is_empty() {
                    errors.push(err(v.span(), format!("`vuln.checks.{pkg}` must be a non-empty argv")));
                }
            }
        }
        agents.insert(
            folder.clone(),
            AgentDefinition {
                name: raw.name.into_inner(),
                kind,
                description: raw.description,
                handles,
                tools,
                prompt,
                rule_files: std::sync::Arc::new(rule_files),
                feeds,
                assets: std::sync::Arc::new(assets),
                playbooks: std::sync::Arc::new(playbooks),
                autonomy: raw.autonomy,
                mailbox: raw.mailbox.into_inner().max(1),
                restart: raw.restart,
                detection,
                response: raw.response.map(|r| r.into_inner()).unwrap_or_default(),
                vuln: raw.vuln.map(|v| v.into_inner()).unwrap_or_default(),
                path: file,
            },
        );
    }
    if agents.is_empty() && errors.is_empty() {
        errors.push(LintError {
            file: dir.display(),
            line: 0,
            message: "no agent definitions found (expected <name>/agent.toml)".into(),
        });
    }
    if errors.is_empty() {
        for kind in PayloadKind::ALL {
            if !agents.values().any(|a| a.handles(kind)) {
                errors.push(LintError {
                    file: dir.display(),
                    line: 0,
                    message: format!("no agent handles payload kind `{kind}`"),
                });
            }
        }
        if !agents.values().any(|a| a.kind == AgentKind::ThreatDetection) {
            errors.push(LintError {
                file: dir.display(),
                line: 0,
                message: "no threat-detection agent: log sources would have no reader".into(),
            });
        }
    }
    if errors.is_empty() {
        Ok(Definitions { agents, origin: dir.display(), warnings })
    } else {
        Err(LintErrors { errors })
    }
}
