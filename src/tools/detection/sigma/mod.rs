//! Sigma rules: loading with `file:line` errors, compiling, and the per-file report.
//!
//! Parsing and evaluation build on `rsigma-parser`/`rsigma-eval` (pinned): they cover
//! detection selections, keyword lists, the field modifiers (`contains`, `startswith`,
//! `endswith`, `re`, `cidr`, `all`, `base64`, `base64offset`, `windash`, …), conditions
//! (`and`/`or`/`not`, `1 of`/`all of`, wildcards) and correlation rules (`event_count`,
//! `value_count`, `temporal`, …) with `group-by` and `timespan`, evaluated on event time.
//!
//! Loading is per file and per rule: a file that does not parse, or a rule that does not
//! compile, is reported with its file, line (where the parser gives one) and the reason,
//! and every other rule still loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use rsigma_eval::result::ResultBody;
use rsigma_eval::{CorrelationConfig, CorrelationEngine, CorrelationSnapshot, Engine, EvaluationResult};
use rsigma_parser::{Level, LogSource, SigmaCollection, parse_sigma_yaml};
use serde::{Deserialize, Serialize};

use crate::messages::{Event, Finding, Service, Severity};
use crate::text::sanitize;

mod lane;
mod tally;
mod view;

pub use lane::{Matches, SigmaLanes};
pub use view::SigmaView;
use view::{json_logsource, parse_reference};

/// A problem in a file, reported as `file:line: message` (line 0: the whole file or
/// folder). One rule that could not be loaded, or one lint error of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    /// 0 when the parser gives no position.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// What loading a set of rule files did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Files whose every rule loaded.
    pub files_loaded: usize,
    pub detection_rules: usize,
    pub correlation_rules: usize,
    pub errors: Vec<RuleError>,
}

/// The compiled rules of one agent.
pub struct RuleSet {
    pub engine: CorrelationEngine,
    pub report: LoadReport,
    /// One prebuilt logsource per (service, category) pair, then the web server's (see
    /// [`logsource_index`]), so evaluation allocates none.
    logsources: Vec<LogSource>,
    /// Whether any detection rule admits `logsources[i]` (lines no rule can match are
    /// not evaluated).
    admitted: Vec<bool>,
    /// The logsources of the Zeek logs met so far (`product: zeek`, `service: <log>`),
    /// `None` when no rule admits it; at most [`ZEEK_LOGS`] remembered.
    zeek: Vec<(String, Option<LogSource>)>,
    /// Who these rules are: a digest of their files (a lane's matches are used only by
    /// the rules that made them).
    id: u64,
    /// Whether the correlation windows took an event since the last
    /// [`RuleSet::snapshot_if_changed`] (rsigma's windows).
    changed: bool,
    /// The correlations when Warden counts them itself (every shipped one; see
    /// `tally.rs`), else rsigma's engine does.
    tally: Option<tally::Tally>,
}

/// Zeek logs whose logsource is remembered (a JSON record's `_path` is its writer's).
const ZEEK_LOGS: usize = 64;

/// Sigma's logsource matching: each of the rule's `category`, `product` and `service`
/// is absent or the event's (any case), as rsigma matches them.
fn admits(rule: &LogSource, event: &LogSource) -> bool {
    let ok = |r: &Option<String>, e: &Option<String>| match (r, e) {
        (None, _) => true,
        (Some(r), Some(e)) => r.eq_ignore_ascii_case(e),
        (Some(_), None) => false,
    };
    ok(&rule.category, &event.category) && ok(&rule.product, &event.product) && ok(&rule.service, &event.service)
}

/// The line a parser message points at (`... at line 12 column 3`), if any.
fn line_in(message: &str) -> usize {
    let lower = message.to_ascii_lowercase();
    lower
        .find("line ")
        .and_then(|i| lower[i + 5..].split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The line an error is about: the parser's position, else the first line of the file
/// that contains the quoted name the message complains about (`Unknown modifier 'x'`).
fn locate(message: &str, text: &str) -> usize {
    let line = line_in(message);
    if line > 0 {
        return line;
    }
    let quoted = message.split(['\'', '`']).nth(1).filter(|q| !q.is_empty());
    quoted.and_then(|q| text.lines().position(|l| l.contains(q))).map(|i| i + 1).unwrap_or(0)
}

/// The line of `title: <title>` in a file, to point a compile error at its rule.
fn line_of_title(text: &str, title: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start().strip_prefix("title:").is_some_and(|t| t.trim().trim_matches(['\'', '"']) == title)
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// Every `*.yml`/`*.yaml` file below `dir`, sorted.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads rule files given as `(name, text)`.
pub fn load(files: &[(String, String)]) -> RuleSet {
    load_with(files, GROUPS)
}

/// Like [`load`], keeping at most `groups` correlation groups.
pub fn load_with(files: &[(String, String)], groups: usize) -> RuleSet {
    let mut report = LoadReport { files: files.len(), ..LoadReport::default() };
    let mut good = SigmaCollection::new();
    for (name, text) in files {
        let err = |line: usize, message: String| RuleError { file: name.clone(), line, message };
        let parsed = match parse_sigma_yaml(text) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                report.errors.push(err(locate(&msg, text), msg));
                continue;
            }
        };
        let mut ok = parsed.errors.is_empty();
        for msg in &parsed.errors {
            report.errors.push(err(locate(msg, text), msg.clone()));
        }
        for rule in parsed.rules {
            // Compile alone first, so one unsupported rule cannot poison the set.
            let mut probe = Engine::new();
            match probe.add_rules(std::iter::once(&rule)).into_iter().next() {
                None => {
                    report.detection_rules += 1;
                    good.rules.push(rule);
                }
                Some((_, e)) => {
                    ok = false;
                    report.errors.push(err(line_of_title(text, &rule.title), format!("rule `{}`: {e}", rule.title)));
                }
            }
        }
        good.filters.extend(parsed.filters);
        for c in parsed.correlations {
            good.correlations.push(c);
            report.correlation_rules += 1;
        }
        if ok {
            report.files_loaded += 1;
        }
    }
    let mut engine = CorrelationEngine::new(correlation_config(groups));
    // A bloom filter over each rule's literals skips most rules for most lines.
    engine.set_bloom_prefilter(true);
    if let Err(e) = engine.add_collection(&good) {
        // A correlation that references a missing rule fails the whole collection:
        // report it and keep the detection rules.
        report.errors.push(RuleError { file: "<correlations>".into(), line: 0, message: e.to_string() });
        report.correlation_rules = 0;
        good.correlations.clear();
        engine = CorrelationEngine::new(correlation_config(groups));
        if let Err(e) = engine.add_collection(&good) {
            report.errors.push(RuleError { file: "<rules>".into(), line: 0, message: e.to_string() });
        }
    }
    // Every (service, category) pair a syslog line can have, built once.
    let mut logsources: Vec<LogSource> = Vec::with_capacity(SERVICES.len() * (Service::ALL.len() + 1) + 1);
    for svc in SERVICES {
        for cat in std::iter::once(None).chain(Service::ALL.iter().map(|c| Some(c.as_str()))) {
            logsources.push(LogSource {
                product: Some("linux".into()),
                service: Some(svc.into()),
                category: cat.map(String::from),
                ..LogSource::default()
            });
        }
    }
    logsources.push(LogSource { category: Some("webserver".into()), ..LogSource::default() });
    let rules = engine.engine().rules();
    let admitted = logsources.iter().map(|ls| rules.iter().any(|r| admits(&r.logsource, ls))).collect();
    let id = crate::tools::detection::tracked::process_digest(files);
    let tally = tally::Tally::compile(&good, groups);
    RuleSet { engine, report, logsources, admitted, zeek: Vec::new(), id, changed: false, tally }
}

/// Correlations remember where their last events were read (a reference each, at most
/// [`CORRELATION_REFS`] per group), so their findings point at the lines that made them.
/// Each group keeps at most [`GROUP_ENTRIES`] events of its window, and at most
/// `groups` groups are kept (rsigma evicts the stalest tenth when full).
fn correlation_config(groups: usize) -> CorrelationConfig {
    CorrelationConfig {
        correlation_event_mode: rsigma_eval::CorrelationEventMode::Refs,
        max_correlation_events: CORRELATION_REFS,
        max_group_entries: Some(GROUP_ENTRIES),
        max_state_entries: groups.max(16),
        ..CorrelationConfig::default()
    }
}

/// Correlation groups kept by default (one per rule and group key: per address for most
/// rules); `[detection.limits] correlation_groups` and the memory budget set it.
pub const GROUPS: usize = 16_384;

/// The most recent events a correlation group keeps in its window. A `value_count`
/// re-counts its group's distinct values at every event, so an uncapped window made a
/// spray of a million addresses at one account cost O(window) per line (740 µs/line at
/// one million distinct sources); 128 is far above every shipped threshold (≤ 20) and
/// leaves room for a flood of repeats before distinct values are pushed out.
pub const GROUP_ENTRIES: usize = 128;

/// How many contributing lines a correlation finding points at (the most recent ones).
pub const CORRELATION_REFS: usize = 5;

/// Loads every rule file below `dir`; paths in errors are as found.
pub fn load_dir(dir: &Path) -> std::io::Result<RuleSet> {
    let mut files = Vec::new();
    for p in rule_files(dir)? {
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| format!("# unreadable: {e}\n"));
        files.push((p.display().to_string(), text));
    }
    Ok(load(&files))
}

/// The Sigma service of a syslog line (its logsource is `product: linux` with it): the
/// program's service, named as Sigma names it where it does, else `syslog`. Rules that
/// span programs use the logsource category instead: the event's service class
/// (`category: mail` is postfix, dovecot, exim, courier and cyrus; see [`logsource_index`]).
pub fn service_of(ev: &Event) -> &'static str {
    let p: &str = &ev.program;
    match p.split('/').next().unwrap_or(p) {
        "sshd" | "sshd-session" | "sshd-auth" | "dropbear" => "sshd",
        "sudo" => "sudo",
        "su" => "su",
        "cron" | "CRON" | "crond" => "cron",
        "vsftpd" => "vsftpd",
        "proftpd" => "proftpd",
        "pure-ftpd" => "pure-ftpd",
        "clamd" | "freshclam" | "clamav" => "clamav",
        "auditd" | "audit" | "audispd" | "audisp-syslog" => "auditd",
        "guacd" | "guacamole" => "guacamole",
        "dovecot" | "dovecot-auth" | "imap-login" | "pop3-login" | "submission-login" | "managesieve-login" => {
            "dovecot"
        }
        "exim" | "exim4" => "exim",
        "mysqld" | "mysqld_safe" | "mariadbd" | "mariadb" | "mysql" => "mysql",
        "postgres" | "postgresql" | "postmaster" => "postgresql",
        "httpd" | "apache2" | "apache" => "apache",
        "nginx" => "nginx",
        b if b.starts_with("postfix") => "postfix",
        b if b.starts_with("courier") => "courier",
        "imapd" | "pop3d" | "imapd-ssl" | "pop3d-ssl" => "courier",
        "cyrus" | "imap" | "imaps" | "pop3" | "pop3s" | "lmtpunix" => "cyrus",
        _ => "syslog",
    }
}

/// The index of a line's logsource in [`RuleSet::logsources`]: its Sigma service and,
/// for an authentication event, the category of its service class (Warden's taxonomy,
/// [`Service`]), so one rule covers every program of a class.
fn logsource_index(ev: &Event) -> usize {
    let per_service = Service::ALL.len() + 1;
    if ev.web.is_some() {
        return SERVICES.len() * per_service;
    }
    let svc = service_of(ev);
    let s = SERVICES.iter().position(|x| *x == svc).unwrap_or(SERVICES.len() - 1);
    s * per_service + ev.auth.as_ref().map_or(0, |a| a.service as usize + 1)
}

const SERVICES: [&str; 20] = [
    "sshd",
    "sudo",
    "su",
    "cron",
    "vsftpd",
    "proftpd",
    "pure-ftpd",
    "clamav",
    "auditd",
    "guacamole",
    "dovecot",
    "exim",
    "mysql",
    "postgresql",
    "apache",
    "nginx",
    "postfix",
    "courier",
    "cyrus",
    "syslog",
];

/// Below the detector's state key: Warden's correlation groups, one key each.
pub const GROUPS_KEY: &str = "/corr/";

/// Below the detector's state key: rsigma's correlation windows, whole.
pub const SNAPSHOT_KEY: &str = "/correlation";

/// State that must survive a restart: per rule and entity, the event time of the last
/// finding (one finding per window), and the correlation windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SigmaState {
    /// Per `rule|entity`: event time of the last finding and how many there were; each
    /// doubles the wait before the next one (capped at a day), like the brute-force
    /// detector, so a persistent source extends its incident without flooding it.
    #[serde(default)]
    pub last: BTreeMap<String, (DateTime<Utc>, u32)>,
    /// rsigma's windows, whole (read from the head where it was stored before they had a
    /// key of their own, then from [`SNAPSHOT_KEY`]).
    #[serde(default)]
    pub correlation: Option<serde_json::Value>,
    /// Warden's correlation groups as stored (keys below [`GROUPS_KEY`]): read at a
    /// restart, never part of the head.
    #[serde(skip)]
    pub groups: Vec<(String, serde_json::Value)>,
}

fn severity(level: Option<Level>) -> Option<Severity> {
    match level {
        Some(Level::Informational) => None,
        Some(Level::Low) => Some(Severity::Low),
        None | Some(Level::Medium) => Some(Severity::Medium),
        Some(Level::High) => Some(Severity::High),
        Some(Level::Critical) => Some(Severity::Critical),
    }
}

/// CVE ids from Sigma tags (`cve.2021-44228` or `cve.2021.44228` → `CVE-2021-44228`).
pub fn cves(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("cve."))
        .filter_map(|t| {
            let (year, num) = t.split_once(['-', '.'])?;
            let ok = year.len() == 4
                && num.len() >= 4
                && year.bytes().all(|b| b.is_ascii_digit())
                && num.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| format!("CVE-{year}-{num}"))
        })
        .collect()
}

/// ATT&CK technique ids from Sigma tags (`attack.t1110.001` → `T1110.001`).
pub fn techniques(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("attack.t"))
        .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|t| format!("T{}", t.to_ascii_uppercase()))
        .collect()
}

impl RuleSet {
    /// Restores the correlation windows: Warden's groups stored one by one, or a
    /// snapshot of rsigma's engine (what was stored before Warden counted the shipped
    /// correlations itself, and still is for rule sets rsigma counts).
    pub fn restore(&mut self, state: &SigmaState) {
        let snap = state.correlation.as_ref().map(|v| serde_json::from_value::<CorrelationSnapshot>(v.clone()));
        if let Some(Err(e)) = &snap {
            tracing::warn!(error = %e, "stored correlation state cannot be read; starting empty");
        }
        let snap = snap.and_then(Result::ok);
        match &mut self.tally {
            Some(t) => {
                for (key, value) in &state.groups {
                    if let Err(e) = t.load(key, value.clone()) {
                        tracing::warn!(error = %e, "a stored correlation group cannot be read; it starts empty");
                    }
                }
                // rsigma's snapshot is converted, stored again as groups and deleted.
                if let Some(snap) = snap {
                    t.import(snap);
                    self.changed = true;
                }
            }
            None => {
                if let Some(snap) = snap
                    && !self.engine.import_state(snap)
                {
                    tracing::warn!("stored correlation state is from an incompatible version; starting empty");
                }
                // Stored again once, wherever it was read from.
                self.changed = true;
            }
        }
    }

    /// What changed in the correlation windows since the last call, as state keys below
    /// the detector's (`None`: delete): Warden's groups one by one
    /// (`/corr/<group key>`), or rsigma's whole snapshot (`/correlation`) when an event
    /// reached its windows. A snapshot of rsigma's that Warden converted is deleted.
    pub fn correlation_changes(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        let changed = std::mem::take(&mut self.changed);
        match &mut self.tally {
            Some(t) => {
                t.drain(GROUPS_KEY, &mut out);
                if changed {
                    out.push((SNAPSHOT_KEY.to_string(), None));
                }
            }
            None => {
                if changed && let Some(v) = self.snapshot() {
                    out.push((SNAPSHOT_KEY.to_string(), Some(v)));
                }
            }
        }
        out
    }

    /// Stops remembering which groups changed (nothing stores them: a replay).
    pub fn untracked(&mut self) {
        if let Some(t) = &mut self.tally {
            t.untracked();
        }
    }

    /// Correlation groups Warden counts now, and those evicted at the cap since the last
    /// call (`None` when rsigma counts them).
    pub fn groups(&mut self) -> Option<(usize, u64)> {
        self.tally.as_mut().map(tally::Tally::take_evicted)
    }

    /// The correlation windows, when there are correlation rules.
    /// The references to contributing lines are left out: they are only evidence
    /// pointers, and storing them with every batch's state would cost more than they
    /// are worth (after a restart a correlation points at the lines read since).
    pub fn snapshot(&self) -> Option<serde_json::Value> {
        if self.engine.correlation_rule_count() == 0 {
            return None;
        }
        let mut snap = self.engine.export_state();
        snap.event_ref_buffers.clear();
        serde_json::to_value(snap)
            .inspect_err(|e| tracing::error!(error = %e, "cannot encode the correlation windows; they are not stored"))
            .ok()
    }

    /// Where a Zeek log's logsource is in `zeek` (`product: zeek`, `service: <log>`, as
    /// Sigma names it), remembered; past [`ZEEK_LOGS`] the last one is replaced.
    fn zeek_logsource(&mut self, path: &str) -> usize {
        if let Some(i) = self.zeek.iter().position(|(p, _)| p == path) {
            return i;
        }
        let ls = LogSource { product: Some("zeek".into()), service: Some(path.into()), ..LogSource::default() };
        let admitted = self.engine.engine().rules().iter().any(|r| admits(&r.logsource, &ls)).then_some(ls);
        if self.zeek.len() == ZEEK_LOGS {
            self.zeek.pop();
        }
        self.zeek.push((path.to_string(), admitted));
        self.zeek.len() - 1
    }

    /// Runs the rules over one event and returns the findings it opens; a rule fires at
    /// most once per `window` for the same entity (address, else host).
    pub fn evaluate(
        &mut self,
        ev: &Event,
        file: Option<&str>,
        state: &mut SigmaState,
        window: Duration,
    ) -> Vec<Finding> {
        self.evaluate_matched(ev, file, state, window, None)
    }

    /// The detection rules' matches of one event (the stateless part of evaluation);
    /// `None` when no rule admits its logsource.
    pub(super) fn detections(&mut self, ev: &Event, view: &SigmaView<'_>) -> Option<Vec<EvaluationResult>> {
        if self.engine.detection_rule_count() == 0 {
            return None;
        }
        Some(if let Some(m) = &ev.fields {
            match ev.program.strip_prefix("zeek:") {
                Some(path) => {
                    let i = self.zeek_logsource(path);
                    let ls = self.zeek[i].1.as_ref()?;
                    self.engine.engine().evaluate_with_logsource(view, ls)
                }
                None => self.engine.engine().evaluate_with_logsource(view, &json_logsource(m)),
            }
        } else {
            let i = logsource_index(ev);
            let ls = self.logsources.get(i).filter(|_| self.admitted[i])?;
            self.engine.engine().evaluate_with_logsource(view, ls)
        })
    }

    /// Like [`RuleSet::evaluate`], with the event's matches found before (by a source's
    /// lane, from these rules: see [`RuleSet::accepts`]) when `matched` is given.
    pub fn evaluate_matched(
        &mut self,
        ev: &Event,
        file: Option<&str>,
        state: &mut SigmaState,
        window: Duration,
        matched: Option<Matches>,
    ) -> Vec<Finding> {
        let view = SigmaView::new(ev, file);
        let detections = match matched {
            Some(m) => m.0,
            None => self.detections(ev, &view),
        };
        let Some(detections) = detections else { return Vec::new() };
        let results = match &mut self.tally {
            Some(t) => {
                let counted = t.process(&view, &detections, ev.time.timestamp());
                let mut all = detections;
                all.extend(counted);
                all
            }
            None if self.engine.correlation_rule_count() > 0 => {
                self.changed |= !detections.is_empty();
                self.engine.process_with_detections(&view, detections, ev.time.timestamp())
            }
            None => detections,
        };
        let mut out = Vec::new();
        let mut file_name: Option<std::sync::Arc<str>> = None;
        for r in results {
            let h = &r.header;
            let Some(sev) = severity(h.level) else { continue };
            // A correlation is about its group (`group-by`), not about the event that
            // completed it: an address in the group is the entity, else an account.
            let mut client = None;
            let (src_ip, users, event_count, first_seen) = match &r.body {
                ResultBody::Correlation(c) => {
                    let ip = c.group_key.iter().find_map(|(_, v)| v.parse::<std::net::IpAddr>().ok());
                    // A client known only by name: named, never resolved, never blocked.
                    client = c.group_key.iter().find(|(f, _)| f == "src_name").map(|(_, v)| sanitize(v, 255));
                    let users = c
                        .group_key
                        .iter()
                        .filter(|(f, _)| matches!(f.as_str(), "user" | "User" | "TargetUserName" | "cs-username"))
                        .map(|(_, v)| sanitize(v, 64))
                        .collect::<Vec<_>>();
                    let start = ev.time - Duration::seconds(c.timespan_secs.min(i64::MAX as u64) as i64);
                    (ip.map(|i| i.to_string()), users, c.aggregated_value.max(1.0) as u64, start)
                }
                ResultBody::Detection(_) => (
                    ev.src_ip().map(|ip| ip.to_string()),
                    view.user().map(|u| vec![sanitize(u, 64)]).unwrap_or_default(),
                    1,
                    ev.time,
                ),
            };
            let entity = match (&src_ip, &client, users.first()) {
                (Some(ip), _, _) => ip.clone(),
                (None, Some(name), _) => format!("client:{name}"),
                (None, None, Some(u)) if r.is_correlation() => format!("user:{u}"),
                _ => format!("host:{}", ev.host),
            };
            // A correlation's title names its group: whom it is about.
            let title = match (&r.body, &src_ip, &client, users.first()) {
                (ResultBody::Detection(_), ..) => h.rule_title.clone(),
                (_, Some(ip), ..) => format!("{} from {ip}", h.rule_title),
                (_, None, Some(name), _) => format!("{} from {name}", h.rule_title),
                (_, None, None, Some(u)) => format!("{} against account {u}", h.rule_title),
                _ => h.rule_title.clone(),
            };
            let src_ip_is_none = src_ip.is_none();
            let rule_key = format!("sigma:{}", h.rule_id.clone().unwrap_or_else(|| h.rule_title.clone()));
            let key = format!("{rule_key}|{entity}");
            let count = match state.last.get(&key) {
                Some((l, n)) => {
                    let wait = (window * 2i32.pow(n.saturating_sub(1).min(7))).min(Duration::days(1));
                    if ev.time < *l + wait && ev.time >= *l {
                        continue;
                    }
                    n + 1
                }
                None => 1,
            };
            state.last.insert(key, (ev.time, count));
            // The lines a correlation points at, read only for what is reported (a
            // brute force completes its correlation again on every further attempt).
            let refs = match (&r.body, file) {
                (ResultBody::Correlation(c), Some(file)) => {
                    let file: &std::sync::Arc<str> = file_name.get_or_insert_with(|| file.into());
                    c.event_refs.iter().flatten().filter_map(|r| parse_reference(r.id.as_deref()?, file)).collect()
                }
                _ => Vec::new(),
            };
            out.push(Finding {
                id: Finding::derive_id(&rule_key, &entity, ev.time),
                rule: slug(&h.rule_title),
                title: sanitize(&title, 256),
                severity: sev,
                confidence: if sev >= Severity::High { 0.7 } else { 0.5 },
                src_ip,
                users,
                host: sanitize(&ev.host, 255),
                first_seen,
                last_seen: ev.time,
                event_count,
                techniques: techniques(&h.tags),
                evidence: vec![sanitize(&ev.raw, 512)],
                // Without an address, the account or host is named explicitly.
                entity: src_ip_is_none.then(|| entity.clone()),
                tactics: h.tags.iter().filter_map(|t| super::attack::tactic_of_tag(t)).map(String::from).collect(),
                evidence_refs: refs,
                cves: cves(&h.tags),
                ..Default::default()
            });
        }
        out
    }
}

/// A rule title as an identifier: `Sudo Authentication Failure` → `sudo_authentication_failure`.
pub fn slug(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').chars().take(64).collect()
}

/// Forgets suppression entries older than `window` before `newest`.
pub fn prune(state: &mut SigmaState, newest: DateTime<Utc>, window: Duration) {
    // Entries live as long as their longest wait (a day), so the backoff holds.
    let horizon = window.max(Duration::days(1));
    state.last.retain(|_, (t, _)| newest - *t <= horizon);
}

#[cfg(test)]
mod tests {
    use super::view::{b64, unb64};
    use super::*;

    const GOOD: &str = "title: Test rule\nid: 5d6a5c1e-1111-4c3b-9a8e-000000000001\nlogsource:\n  product: linux\n  service: sshd\ndetection:\n  keywords:\n    - 'Corrupted MAC on input'\n  condition: keywords\nlevel: medium\n";

    #[test]
    fn broken_files_are_reported_and_the_rest_loads() {
        let files = vec![
            ("good.yml".to_string(), GOOD.to_string()),
            ("bad-yaml.yml".to_string(), "title: x\ndetection:\n  sel: [unclosed\n".to_string()),
            (
                "bad-condition.yml".to_string(),
                "title: Bad condition\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a: b\n  condition: sel and and\n".to_string(),
            ),
            (
                "bad-modifier.yml".to_string(),
                "title: Bad modifier\nlogsource:\n  product: linux\ndetection:\n  sel:\n    a|frobnicate: b\n  condition: sel\n".to_string(),
            ),
        ];
        let set = load(&files);
        let r = &set.report;
        assert_eq!((r.files, r.files_loaded, r.detection_rules), (4, 1, 1), "{:#?}", r.errors);
        assert_eq!(r.errors.len(), 3, "{:#?}", r.errors);
        let text: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|e| e.starts_with("bad-yaml.yml:")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("bad-condition.yml") && e.contains("and")), "{text:?}");
        assert!(text.iter().any(|e| e.starts_with("bad-modifier.yml:6:") && e.contains("frobnicate")), "{text:?}");
        assert_eq!(set.engine.detection_rule_count(), 1);
    }

    fn line(raw: &str) -> Event {
        let years = crate::ingest::parse::YearInference::with_offset(
            "2026-11-26T12:00:00Z".parse().unwrap(),
            chrono::FixedOffset::east_opt(0).unwrap(),
        );
        crate::ingest::parse::auth::parse_line(raw.to_string(), &years, &mut Default::default()).unwrap().0
    }

    #[test]
    fn keyword_rules_fire_once_per_window_on_their_logsource() {
        let mut set = load(&[("good.yml".to_string(), GOOD.to_string())]);
        let mut st = SigmaState::default();
        let w = Duration::seconds(600);
        let hit = line("Nov 26 10:00:00 h1 sshd[1]: Corrupted MAC on input. [preauth]");
        let f = set.evaluate(&hit, None, &mut st, w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "test_rule");
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].host, "h1");
        // Same rule, same host, inside the window: suppressed.
        assert!(
            set.evaluate(&line("Nov 26 10:05:00 h1 sshd[1]: Corrupted MAC on input."), None, &mut st, w).is_empty()
        );
        // Another host is another entity.
        assert_eq!(
            set.evaluate(&line("Nov 26 10:05:00 h2 sshd[1]: Corrupted MAC on input."), None, &mut st, w).len(),
            1
        );
        // The keyword in a line of another service does not match an sshd rule.
        assert!(set.evaluate(&line("Nov 26 10:06:00 h3 cron[1]: Corrupted MAC on input"), None, &mut st, w).is_empty());
        assert_eq!(techniques(&["attack.t1110.001".into(), "attack.credential-access".into()]), ["T1110.001"]);
        assert_eq!(
            cves(&["cve.2021-44228".into(), "cve.2023.1234".into(), "cve.x".into()]),
            ["CVE-2021-44228", "CVE-2023-1234"]
        );
    }

    #[test]
    fn json_records_match_fields_as_given() {
        let rule = "title: Json rule\nid: 5d6a5c1e-1111-4c3b-9a8e-000000000002\nlogsource:\n  product: myapp\ndetection:\n  sel:\n    source.ip|cidr: 203.0.113.0/24\n    event.action: login_failed\n  condition: sel\nlevel: high\n";
        let mut set = load(&[("j.yml".to_string(), rule.to_string())]);
        let now = "2026-11-26T12:00:00Z".parse().unwrap();
        let ev = |text: &str| crate::ingest::parse::json::parse_line(text.to_string(), now).unwrap();
        let mut st = SigmaState::default();
        let w = Duration::seconds(600);
        let hit = ev(r#"{"product":"myapp","source":{"ip":"203.0.113.7"},"event":{"action":"login_failed"}}"#);
        let f = set.evaluate(&hit, None, &mut st, w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].src_ip.as_deref(), Some("203.0.113.7"));
        let other_net = ev(r#"{"product":"myapp","source":{"ip":"198.51.100.7"},"event":{"action":"login_failed"}}"#);
        assert!(set.evaluate(&other_net, None, &mut st, w).is_empty());
        let other_product = ev(r#"{"product":"else","source":{"ip":"203.0.113.8"},"event":{"action":"login_failed"}}"#);
        assert!(set.evaluate(&other_product, None, &mut st, w).is_empty());
    }

    /// Zeek TSV records (typed fields) meet Sigma's Zeek logsource: a rule for
    /// `service: conn` fires on a conn record, on field values and keywords alike, and
    /// not on another log's record; a rule set with no Zeek rule evaluates none.
    #[test]
    fn zeek_records_meet_zeek_rules() {
        let rule = "title: Zeek rule\nid: 5d6a5c1e-1111-4c3b-9a8e-000000000003\nlogsource:\n  product: zeek\n  service: conn\ndetection:\n  sel:\n    id.resp_p: '4444'\n    id.orig_h|cidr: 10.0.0.0/8\n  condition: sel\nlevel: high\n";
        let mut set = load(&[("z.yml".to_string(), rule.to_string())]);
        let now = "2026-11-26T12:00:00Z".parse().unwrap();
        let record = |path: &str, port: &str| {
            let mut z = crate::ingest::parse::zeek::ZeekHeader::default();
            for h in [format!("#path\t{path}"), "#fields\tts\tid.orig_h\tid.resp_h\tid.resp_p".into()] {
                assert!(z.header(&h));
            }
            z.record(format!("1764158400.5\t10.1.2.3\t198.51.100.9\t{port}"), now).unwrap()
        };
        let (mut st, w) = (SigmaState::default(), Duration::seconds(600));
        let f = set.evaluate(&record("conn", "4444"), None, &mut st, w);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].src_ip.as_deref(), Some("10.1.2.3"));
        assert!(set.evaluate(&record("conn", "443"), None, &mut SigmaState::default(), w).is_empty());
        let other_log = set.evaluate(&record("dns", "4444"), None, &mut SigmaState::default(), w);
        assert!(other_log.is_empty(), "another log");
        let keyword = GOOD
            .replace("product: linux\n  service: sshd", "product: zeek")
            .replace("Corrupted MAC on input", "198.51.100.9");
        let mut set = load(&[("k.yml".to_string(), keyword)]);
        let by_keyword = set.evaluate(&record("ssl", "443"), None, &mut SigmaState::default(), w);
        assert_eq!(by_keyword.len(), 1, "keywords search the values");
        let mut linux_only = load(&[("good.yml".to_string(), GOOD.to_string())]);
        assert!(linux_only.evaluate(&record("conn", "4444"), None, &mut SigmaState::default(), w).is_empty());
        assert_eq!(linux_only.zeek, [("conn".to_string(), None)], "no rule admits zeek:conn");
    }
    #[test]
    fn a_correlation_points_at_the_lines_that_made_it() {
        let text = include_str!("../../../../actors/threat-detection/rules/ssh_invalid_user_enumeration.yml");
        let mut set = load(&[("enum.yml".to_string(), text.to_string())]);
        assert_eq!(set.report.correlation_rules, 1, "{:#?}", set.report.errors);
        let mut st = SigmaState::default();
        let w = Duration::seconds(600);
        let mut lines = Vec::new();
        let mut found = Vec::new();
        for (i, user) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
            let raw = format!("Nov 26 10:00:0{i} h1 sshd[9]: Invalid user {user} from 203.0.113.9 port 4000");
            let mut ev = line(&raw);
            ev.offset = Some(100 * i as u64);
            lines.push(raw);
            found.extend(set.evaluate(&ev, Some("/var/log/auth.log"), &mut st, w));
        }
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.rule, "ssh_invalid_user_enumeration");
        // All five contributing lines, earlier ones included, by where they were read.
        let offsets: Vec<u64> = f.evidence_refs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 100, 200, 300, 400]);
        for (r, raw) in f.evidence_refs.iter().zip(&lines) {
            assert_eq!(&*r.file, "/var/log/auth.log");
            assert_eq!(r, &crate::messages::EvidenceRef::new("/var/log/auth.log".into(), r.offset, raw));
        }
        assert!(parse_reference("w1.zz", &"/f".into()).is_none());
        assert!(parse_reference("something-else", &"/f".into()).is_none());
        let sha = [7u8; 32];
        assert_eq!(unb64(&b64(&sha)), Some(sha));
    }

    #[test]
    fn lines_are_found_in_messages() {
        assert_eq!(line_in("YAML parse error: did not find expected node content at line 3 column 9"), 3);
        assert_eq!(line_in("no position"), 0);
        assert_eq!(line_of_title(GOOD, "Test rule"), 1);
    }
}
