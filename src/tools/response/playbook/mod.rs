//! Playbooks as data: `actors/incident-response/playbooks/*.toml`.
//!
//! A playbook names the incident types it is for and lists steps. A step is one of
//! `contain` (an action of `contain_threat` on a target chosen from the incident by a
//! selector, never by free text), `approval` (wait for an operator), `notify`,
//! `handoff` (to another agent), `collect_evidence`, `report`. A step may have a `when`
//! condition, a timeout and what to do when it fails (`continue`, `abort`).
//!
//! A run's state lives on its incident and is stored in the same commit as the step it
//! records; each step is its own routed message with an id derived from the run and the
//! step (its idempotency key), so a crash in the middle resumes at the step that was not
//! committed, and a step that was is never run again.

pub mod run;

use serde::{Deserialize, Serialize};

use super::triage::Criticality;
use crate::messages::{ActionKind, Incident, Priority, Severity};
use crate::tools::detection::sigma::RuleError;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Contain,
    Approval,
    Notify,
    Handoff,
    CollectEvidence,
    Report,
}

/// Which of the incident's entities a containment step acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// The attacker's address (the incident's first address entity).
    AttackerIp,
    /// The account a successful login used (findings that show a login that worked).
    CompromisedAccount,
    /// The host Warden runs on.
    LocalHost,
}

/// On failure (or timeout) of a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Continue,
    Abort,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// `contain`: the action and its target.
    #[serde(default)]
    pub action: Option<ActionKind>,
    #[serde(default)]
    pub target: Option<Selector>,
    /// `notify`: the message (`{title}`, `{type}`, `{severity}`, `{priority}` are filled in,
    /// and `{containment}`: each action with what became of it — `recorded only (dry run)`,
    /// `waiting for approval`, `in force` …).
    #[serde(default)]
    pub message: Option<String>,
    /// `handoff`: the agent to hand over to.
    #[serde(default)]
    pub to: Option<String>,
    /// `collect_evidence`: files to copy (absolute paths), and whether to take a host
    /// snapshot (default yes).
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub snapshot: Option<bool>,
    /// A condition on the incident, e.g. `severity >= high and type == credential_compromise`.
    #[serde(default)]
    pub when: Option<String>,
    /// `approval`: how long to wait for an operator.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// Which incidents a playbook is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Incident types (as triage names them).
    pub types: Vec<String>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

/// A playbook file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub trigger: Trigger,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// The types triage gives incidents.
pub const INCIDENT_TYPES: [&str; 12] = [
    "brute_force",
    "credential_compromise",
    "web_attack",
    "malware_c2",
    "ransomware",
    "phishing",
    "data_exfiltration",
    "privilege_abuse",
    "vulnerability_exploitation",
    "reconnaissance",
    "defense_evasion",
    "agent_failure",
];

/// One comparison of a condition.
#[derive(Debug, Clone, PartialEq)]
struct Cmp {
    field: String,
    op: String,
    value: String,
}

/// A parsed condition: comparisons joined by `or` of `and`s (no parentheses).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    any: Vec<Vec<Cmp>>,
}

const FIELDS: [&str; 5] = ["severity", "type", "priority", "asset_criticality", "finding"];

/// What is wrong with a step's `when` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("`{0}` is not `field op value`")]
    Shape(String),
    #[error("unknown field `{field}` (one of {})", FIELDS.join(", "))]
    Field { field: String },
    #[error("unknown operator `{0}`")]
    Operator(String),
    #[error("`{0}` takes only == and !=")]
    Unordered(String),
    #[error("`{value}` is not a value of `{field}`")]
    Value { field: String, value: String },
}

impl Condition {
    /// Parses `field op value [and|or …]`; fields: severity, type, priority,
    /// asset_criticality (`== != >= <= > <`), finding (`== RULE`: the incident has a
    /// finding of that rule).
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let mut any = Vec::new();
        for alt in text.split(" or ") {
            let mut all = Vec::new();
            for part in alt.split(" and ") {
                let t: Vec<&str> = part.split_whitespace().collect();
                let [field, op, value] = t[..] else {
                    return Err(ConditionError::Shape(part.trim().to_string()));
                };
                if !FIELDS.contains(&field) {
                    return Err(ConditionError::Field { field: field.to_string() });
                }
                if !["==", "!=", ">=", "<=", ">", "<"].contains(&op) {
                    return Err(ConditionError::Operator(op.to_string()));
                }
                let ordered = matches!(field, "severity" | "priority" | "asset_criticality");
                if !ordered && !matches!(op, "==" | "!=") {
                    return Err(ConditionError::Unordered(field.to_string()));
                }
                let ok = match field {
                    "severity" | "asset_criticality" => rank_level(value).is_some(),
                    "priority" => rank_priority(value).is_some(),
                    "type" => INCIDENT_TYPES.contains(&value),
                    _ => !value.is_empty(),
                };
                if !ok {
                    return Err(ConditionError::Value { field: field.to_string(), value: value.to_string() });
                }
                all.push(Cmp { field: field.into(), op: op.into(), value: value.into() });
            }
            any.push(all);
        }
        Ok(Condition { any })
    }

    /// Whether the incident satisfies it (`asset` is the criticality triage used).
    pub fn holds(&self, inc: &Incident, asset: Criticality) -> bool {
        self.any.iter().any(|all| all.iter().all(|c| c.holds(inc, asset)))
    }
}

/// Severities and criticalities share their four levels.
fn rank_level(v: &str) -> Option<i32> {
    Some(match v {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        "critical" => 4,
        _ => return None,
    })
}

/// Priorities compare by their number: `priority <= P2` is P1 or P2.
fn rank_priority(v: &str) -> Option<i32> {
    Some(match v {
        "P1" => 1,
        "P2" => 2,
        "P3" => 3,
        "P4" => 4,
        _ => return None,
    })
}

impl Cmp {
    fn holds(&self, inc: &Incident, asset: Criticality) -> bool {
        let ord = |a: i32, b: i32| match self.op.as_str() {
            "==" => a == b,
            "!=" => a != b,
            ">=" => a >= b,
            "<=" => a <= b,
            ">" => a > b,
            _ => a < b,
        };
        match self.field.as_str() {
            // The enums list their levels in the order rank_level and rank_priority number
            // them (Low… Critical, P1… P4).
            "severity" => ord(inc.severity as i32 + 1, rank_level(&self.value).unwrap_or(0)),
            "priority" => ord(inc.priority as i32 + 1, rank_priority(&self.value).unwrap_or(0)),
            "asset_criticality" => ord(asset as i32 + 1, rank_level(&self.value).unwrap_or(0)),
            "type" => (inc.kind == self.value) == (self.op == "=="),
            _ => inc.findings.iter().any(|f| f.rule == self.value) == (self.op == "=="),
        }
    }
}

/// A priority as written in conditions.
pub fn priority_name(p: Priority) -> String {
    format!("{p:?}")
}

/// Loads and validates playbook files: `(path, text)`. Errors are `file:line: message`;
/// a broken playbook is left out, the others load.
pub fn load(files: &[(String, String)], agents: &[String]) -> (Vec<Playbook>, Vec<RuleError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (path, text) in files {
        let line_of = |needle: &str| {
            text.find(needle).map(|i| text[..i].bytes().filter(|b| *b == b'\n').count() + 1).unwrap_or(0)
        };
        let pb: Playbook = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                let line =
                    e.span().map(|s| text[..s.start.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1);
                errors.push(RuleError {
                    file: path.clone(),
                    line: line.unwrap_or(0),
                    message: e.message().to_string(),
                });
                continue;
            }
        };
        let before = errors.len();
        let mut err = |line: usize, message: String| errors.push(RuleError { file: path.clone(), line, message });
        for t in &pb.trigger.types {
            if !INCIDENT_TYPES.contains(&t.as_str()) {
                err(line_of(&format!("\"{t}\"")), format!("unknown incident type `{t}`"));
            }
        }
        if pb.steps.is_empty() {
            err(0, "a playbook needs at least one step".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &pb.steps {
            let line = line_of(&format!("id = \"{}\"", s.id));
            if !seen.insert(s.id.as_str()) {
                err(line, format!("step id `{}` is used twice", s.id));
            }
            if let Some(w) = &s.when
                && let Err(e) = Condition::parse(w)
            {
                err(line_of(w), format!("step `{}`: when: {e}", s.id));
            }
            match s.kind {
                StepKind::Contain => {
                    let Some(a) = s.action else {
                        err(line, format!("step `{}`: a contain step needs `action`", s.id));
                        continue;
                    };
                    match (a, s.target) {
                        (_, None) => err(line, format!("step `{}`: a contain step needs `target`", s.id)),
                        (ActionKind::BlockIp, Some(Selector::AttackerIp))
                        | (ActionKind::DisableAccount, Some(Selector::CompromisedAccount))
                        | (ActionKind::IsolateHost, Some(Selector::LocalHost)) => {}
                        (a, Some(t)) => err(line, format!("step `{}`: `{a}` cannot act on `{t:?}`", s.id)),
                    }
                }
                StepKind::Handoff => match &s.to {
                    Some(to) if agents.contains(to) => {}
                    Some(to) => err(line, format!("step `{}`: no agent `{to}`", s.id)),
                    None => err(line, format!("step `{}`: a handoff needs `to`", s.id)),
                },
                StepKind::Notify if s.message.is_none() => {
                    err(line, format!("step `{}`: a notify step needs `message`", s.id))
                }
                StepKind::CollectEvidence if s.files.iter().any(|f| !f.starts_with('/')) => {
                    err(line, format!("step `{}`: evidence files must be absolute paths", s.id))
                }
                StepKind::Approval if s.timeout_secs.is_none() => {
                    err(line, format!("step `{}`: an approval step needs `timeout_secs`", s.id))
                }
                _ => {}
            }
        }
        if errors.len() == before {
            out.push(pb);
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let c = Condition::parse("severity >= high and type == credential_compromise or finding == x").unwrap();
        let kind = "credential_compromise".into();
        let mut inc = Incident {
            priority: Priority::P2,
            ..Incident::open(uuid::Uuid::nil(), kind, String::new(), Severity::High, vec![], vec![], chrono::Utc::now())
        };
        assert!(c.holds(&inc, Criticality::Medium));
        inc.severity = Severity::Medium;
        assert!(!c.holds(&inc, Criticality::Medium));
        assert!(Condition::parse("priority <= P2").unwrap().holds(&inc, Criticality::Low), "P2 is P1 or P2");
        inc.priority = Priority::P3;
        assert!(!Condition::parse("priority <= P2").unwrap().holds(&inc, Criticality::Low));
        assert!(Condition::parse("asset_criticality >= high").unwrap().holds(&inc, Criticality::Critical));
        for bad in ["severity >= huge", "colour == red", "type >= brute_force", "severity", "type == nonsense"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lint_reports_file_and_line() {
        let text = "name = \"x\"\n[trigger]\ntypes = [\"brute_force\", \"nope\"]\n[[step]]\nid = \"a\"\nkind = \"contain\"\naction = \"disable_account\"\ntarget = \"attacker_ip\"\n[[step]]\nid = \"b\"\nkind = \"notify\"\nwhen = \"severity >= huge\"\nmessage = \"m\"\n";
        let (ok, errs) = load(&[("pb.toml".into(), text.into())], &[]);
        assert!(ok.is_empty());
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "pb.toml:3: unknown incident type `nope`",
                "pb.toml:5: step `a`: `disable_account` cannot act on `AttackerIp`",
                "pb.toml:12: step `b`: when: `huge` is not a value of `severity`",
            ]
        );
        let (_, errs) = load(&[("bad.toml".into(), "name = \n".into())], &[]);
        assert!(errs[0].to_string().starts_with("bad.toml:1: "), "{}", errs[0]);
    }
}
