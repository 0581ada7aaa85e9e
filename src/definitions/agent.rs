//! One agent's `agent.toml`: parsed strictly, checked section by section, and the files
//! it names (prompt, rules, feeds, playbooks, assets) read — every problem reported as
//! `file:line: message`.

use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::folder::{ActorsDir, line_of};
use super::{AgentDefinition, AgentKind, LintError, ResponseParams, RestartBudget, VulnParams};
use crate::messages::{PayloadKind, ResponseMode};
use crate::tools::ToolName;
use crate::tools::detection::DetectionParams;
use crate::tools::detection::ioc::{Feed, FeedList};
use crate::tools::response::playbook::{self, Playbook};
use crate::tools::response::triage::Assets;

fn default_mailbox_spanned() -> Spanned<usize> {
    Spanned::new(0..0, 64)
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
    /// The assets incidents and scan targets are scored against (`assets.toml`).
    #[serde(default)]
    assets: Option<Spanned<String>>,
    /// Folder of playbooks (incident response), relative to the agent's folder.
    #[serde(default)]
    playbooks: Option<Spanned<String>>,
    /// Restricts the configured `[response] mode` for this agent's actions (absent: the
    /// configured mode holds).
    #[serde(default)]
    autonomy: Option<ResponseMode>,
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

/// Checking one agent file: where its errors and warnings go.
struct Check<'a> {
    dir: &'a ActorsDir,
    folder: &'a str,
    file: &'a str,
    text: &'a str,
    errors: Vec<LintError>,
    warnings: Vec<LintError>,
}

impl Check<'_> {
    fn err(&mut self, span: Range<usize>, message: String) {
        self.errors.push(LintError { file: self.file.to_string(), line: line_of(self.text, span.start), message });
    }

    /// A section only some kinds may have.
    fn only_for(&mut self, kind: AgentKind, allowed: &[AgentKind], span: Range<usize>, what: &str) -> bool {
        if allowed.contains(&kind) {
            return true;
        }
        let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
        let whom = match names.as_slice() {
            [one] => format!("{one} agents"),
            [rest @ .., last] => format!("{} and {last} agents", rest.join(", ")),
            [] => "no agent".into(),
        };
        self.err(span, format!("`{what}` applies only to {whom}, not `{}`", kind.as_str()));
        false
    }

    fn handles(&mut self, kind: AgentKind, raw: &[Spanned<PayloadKind>]) -> Vec<PayloadKind> {
        if raw.is_empty() {
            self.err(0..0, "`handles` is empty: an agent must handle at least one payload kind".into());
        }
        let mut handles = Vec::new();
        for h in raw {
            let k = *h.get_ref();
            if handles.contains(&k) {
                self.err(h.span(), format!("payload kind `{k}` is listed twice"));
            } else if kind == AgentKind::Custom && !matches!(k, PayloadKind::Instruction | PayloadKind::Handoff) {
                self.err(h.span(), format!("a custom agent handles `instruction` and `handoff` only, not `{k}`"));
            } else {
                handles.push(k);
            }
        }
        // A fleet's enforcement reports go to whoever contains: an incident-response
        // agent takes them whether or not its definition (older than the fleet) says so.
        if kind == AgentKind::IncidentResponse && !handles.contains(&PayloadKind::Enforcement) {
            handles.push(PayloadKind::Enforcement);
        }
        handles
    }

    fn tools(&mut self, kind: AgentKind, raw: &[Spanned<ToolName>]) -> Vec<ToolName> {
        let mut tools = Vec::new();
        for t in raw {
            let tool = *t.get_ref();
            if !kind.may_declare(tool) {
                self.err(t.span(), format!("tool `{tool}` is not in the toolbelt of a `{}` agent", kind.as_str()));
            } else if tools.contains(&tool) {
                self.err(t.span(), format!("tool `{tool}` is listed twice"));
            } else {
                tools.push(tool);
            }
        }
        tools
    }

    fn prompt(&mut self, kind: AgentKind, raw: &Option<Spanned<String>>) -> Option<String> {
        let Some(p) = raw else {
            if kind == AgentKind::Custom {
                self.err(0..0, "a custom agent needs a `prompt` file: it is the agent".into());
            }
            return None;
        };
        let text = self.dir.read(self.folder, p.get_ref());
        if text.is_none() {
            self.err(p.span(), format!("prompt file `{}` not found in the agent's folder", p.get_ref()));
        }
        text
    }

    fn rules(&mut self, kind: AgentKind, raw: &Option<Spanned<String>>) -> Vec<(String, String)> {
        let Some(r) = raw else { return Vec::new() };
        if !self.only_for(kind, &[AgentKind::ThreatDetection], r.span(), "rules") {
            return Vec::new();
        }
        match self.dir.read_tree(self.folder, r.get_ref()) {
            Some(files) => {
                // A broken rule is a warning: `warden lint` fails on it, but the agent
                // still runs with every rule that loads.
                let set = crate::tools::detection::sigma::load(&files);
                self.warnings.extend(set.report.errors);
                files
            }
            None => {
                self.err(r.span(), format!("rules folder `{}` not found in the agent's folder", r.get_ref()));
                Vec::new()
            }
        }
    }

    fn feeds(&mut self, kind: AgentKind, raw: &Option<Spanned<String>>) -> Vec<Feed> {
        let Some(fl) = raw else { return Vec::new() };
        if !self.only_for(kind, &[AgentKind::ThreatDetection, AgentKind::Custom], fl.span(), "feeds") {
            return Vec::new();
        }
        let Some(text) = self.dir.read(self.folder, fl.get_ref()) else {
            self.err(fl.span(), format!("feeds list `{}` not found in the agent's folder", fl.get_ref()));
            return Vec::new();
        };
        let list_file = self.dir.display_path(self.folder, fl.get_ref());
        let list = match toml::from_str::<FeedList>(&text) {
            Ok(list) => list,
            Err(e) => {
                let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
                self.errors.push(LintError { file: list_file, line, message: e.message().to_string() });
                return Vec::new();
            }
        };
        let mut feeds = Vec::new();
        for spec in list.feeds {
            match self.dir.feed_source(self.folder, &spec.path) {
                Some(source) => feeds.push(Feed { spec, source }),
                None => self.errors.push(LintError {
                    file: list_file.clone(),
                    line: 0,
                    message: format!("feed `{}`: `{}` not found in the agent's folder", spec.name, spec.path),
                }),
            }
        }
        feeds
    }

    fn playbooks(&mut self, kind: AgentKind, raw: &Option<Spanned<String>>, agents: &[String]) -> Vec<Playbook> {
        let Some(p) = raw else { return Vec::new() };
        if !self.only_for(kind, &[AgentKind::IncidentResponse], p.span(), "playbooks") {
            return Vec::new();
        }
        match self.dir.read_toml_tree(self.folder, p.get_ref()) {
            Some(files) => {
                // Like rules: a broken playbook fails lint, the others run.
                let (ok, errs) = playbook::load(&files, agents);
                self.warnings.extend(errs);
                ok
            }
            None => {
                self.err(p.span(), format!("playbooks folder `{}` not found in the agent's folder", p.get_ref()));
                Vec::new()
            }
        }
    }

    fn assets(&mut self, kind: AgentKind, raw: &Option<Spanned<String>>) -> Assets {
        let Some(a) = raw else { return Assets::default() };
        let allowed = [AgentKind::IncidentResponse, AgentKind::VulnerabilityManagement, AgentKind::Custom];
        if !self.only_for(kind, &allowed, a.span(), "assets") {
            return Assets::default();
        }
        let Some(text) = self.dir.read(self.folder, a.get_ref()) else {
            self.err(a.span(), format!("assets file `{}` not found in the agent's folder", a.get_ref()));
            return Assets::default();
        };
        match toml::from_str::<Assets>(&text) {
            Ok(list) => list,
            Err(e) => {
                self.errors.push(LintError {
                    file: self.dir.display_path(self.folder, a.get_ref()),
                    line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
                    message: e.message().to_string(),
                });
                Assets::default()
            }
        }
    }

    fn detection(&mut self, kind: AgentKind, raw: &Option<Spanned<DetectionParams>>) -> DetectionParams {
        let Some(d) = raw else { return DetectionParams::default() };
        self.only_for(kind, &[AgentKind::ThreatDetection], d.span(), "[detection]");
        let p = d.get_ref();
        if p.brute_force.failures == 0 || p.brute_force.window_secs == 0 {
            self.err(d.span(), "`detection.brute_force` needs failures and window_secs of at least 1".into());
        }
        let n = &p.network;
        for cidr in n.internal_networks.iter().chain(&n.ignore_sources).chain(&n.ignore_destinations).chain(&n.proxies)
        {
            if let Err(e) = crate::config::cidr::parse(cidr) {
                self.err(d.span(), format!("`detection.network`: {e}"));
            }
        }
        if [n.scan_window_secs, n.beacon_window_secs, n.exfil_window_secs, n.dns_window_secs].contains(&0)
            || p.correlation.window_secs == 0
        {
            self.err(d.span(), "detection windows must be at least 1 second".into());
        }
        if n.beacon_min_connections < 3 {
            self.err(d.span(), "`detection.network.beacon_min_connections` must be at least 3".into());
        }
        if !(0.0..1.0).contains(&n.beacon_prevalence_floor) || !(0.0..=1.0).contains(&n.beacon_prevalence_weight) {
            self.err(
                d.span(),
                "`detection.network`: beacon_prevalence_floor must be in [0, 1) and beacon_prevalence_weight in [0, 1]"
                    .into(),
            );
        }
        if n.proxy_min_names == 0 {
            self.err(d.span(), "`detection.network.proxy_min_names` must be at least 1".into());
        }
        p.clone()
    }

    fn vuln(&mut self, kind: AgentKind, raw: &Option<Spanned<VulnParams>>) {
        let Some(v) = raw else { return };
        let allowed = [AgentKind::VulnerabilityManagement, AgentKind::Custom];
        self.only_for(kind, &allowed, v.span(), "[vuln]");
        for t in &v.get_ref().targets {
            if t.asset.trim().is_empty() || t.path.as_os_str().is_empty() {
                self.err(v.span(), "every `[[vuln.targets]]` needs a `path` and an `asset`".into());
            }
        }
        for (pkg, argv) in &v.get_ref().checks {
            if argv.is_empty() || argv[0].trim().is_empty() {
                self.err(v.span(), format!("`vuln.checks.{pkg}` must be a non-empty argv"));
            }
        }
    }
}

/// What loading one agent file found: the definition (when it parsed) and its problems.
pub(super) struct Loaded {
    pub definition: Option<AgentDefinition>,
    pub errors: Vec<LintError>,
    /// Rules and playbooks that did not load (the others run).
    pub warnings: Vec<LintError>,
}

/// Loads the agent of folder `folder` (its `agent.toml` is `file`, with `text`);
/// `agents` names every agent of the folder (playbooks hand over to them).
pub(super) fn load(dir: &ActorsDir, folder: &str, file: &str, text: &str, agents: &[String]) -> Loaded {
    let mut c = Check { dir, folder, file, text, errors: Vec::new(), warnings: Vec::new() };
    let raw: RawDefinition = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            let message = e.message().trim().replace('\n', " ");
            c.errors.push(LintError { file: file.to_string(), line, message });
            return Loaded { definition: None, errors: c.errors, warnings: c.warnings };
        }
    };
    let kind = *raw.kind.get_ref();
    if raw.name.get_ref() != folder {
        let message = format!("agent name `{}` must match its folder name `{folder}`", raw.name.get_ref());
        c.err(raw.name.span(), message);
    }
    let handles = c.handles(kind, &raw.handles);
    let tools = c.tools(kind, &raw.tools);
    let prompt = c.prompt(kind, &raw.prompt);
    let rule_files = c.rules(kind, &raw.rules);
    let feeds = c.feeds(kind, &raw.feeds);
    let playbooks = c.playbooks(kind, &raw.playbooks, agents);
    let assets = c.assets(kind, &raw.assets);
    if *raw.mailbox.get_ref() == 0 {
        c.err(raw.mailbox.span(), "`mailbox` must be at least 1".into());
    }
    if raw.restart.within_secs == 0 {
        c.err(0..0, "`restart.within_secs` must be at least 1".into());
    }
    let detection = c.detection(kind, &raw.detection);
    if let Some(r) = &raw.response {
        c.only_for(kind, &[AgentKind::IncidentResponse], r.span(), "[response]");
    }
    c.vuln(kind, &raw.vuln);
    let definition = AgentDefinition {
        name: raw.name.into_inner(),
        kind,
        description: raw.description,
        handles,
        tools,
        prompt,
        rule_files: Arc::new(rule_files),
        feeds,
        assets: Arc::new(assets),
        playbooks: Arc::new(playbooks),
        autonomy: raw.autonomy,
        mailbox: raw.mailbox.into_inner().max(1),
        restart: raw.restart,
        detection,
        response: raw.response.map(|r| r.into_inner()).unwrap_or_default(),
        vuln: raw.vuln.map(|v| v.into_inner()).unwrap_or_default(),
        path: file.to_string(),
    };
    Loaded { definition: Some(definition), errors: c.errors, warnings: c.warnings }
}
