//! `triage_incident`: an incident's type, severity and priority (with a response
//! deadline), and the reasons for each.
//!
//! - Type: from what the findings show, the most serious first — ransomware, data
//!   exfiltration, credential compromise (a login that worked), malware/C2, privilege
//!   abuse, vulnerability exploitation, phishing, web attack, brute force,
//!   reconnaissance; an agent failure is its own type.
//! - Severity: the worst finding's, one level lower when every finding at that level is
//!   of low confidence (< 0.5); at least high once the attack succeeded (a login worked,
//!   data left, an implant calls out, files are encrypted); one level higher on a
//!   critical asset, one lower on a low-criticality one; critical when it succeeded
//!   on a critical or internet-exposed high asset.
//! - Priority from the severity and the ATT&CK stage reached: P1 (respond within 1 h)
//!   … P4 (72 h).
//!
//! Assets (`actors/incident-response/assets.toml`) are matched by the incident's hosts,
//! the internal addresses its findings name, and the accounts involved; an unknown
//! asset gets the file's stated default.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::Duration;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use crate::messages::TriageResult;
use crate::messages::{Finding, Incident, Priority, Severity};

/// How much an asset matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

/// Who can reach it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exposure {
    Internet,
    #[default]
    Internal,
    Isolated,
}

/// One asset: hosts by name, networks, accounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default, deserialize_with = "crate::config::cidr::list")]
    pub cidrs: Vec<IpNet>,
    #[serde(default)]
    pub accounts: Vec<String>,
    #[serde(default)]
    pub criticality: Criticality,
    #[serde(default)]
    pub exposure: Exposure,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What an unknown asset is taken to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetDefault {
    #[serde(default)]
    pub criticality: Criticality,
    #[serde(default)]
    pub exposure: Exposure,
}

impl Default for AssetDefault {
    fn default() -> Self {
        AssetDefault { criticality: Criticality::Medium, exposure: Exposure::Internal }
    }
}

/// The `assets.toml` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assets {
    #[serde(default)]
    pub default: AssetDefault,
    #[serde(default, rename = "asset")]
    pub assets: Vec<Asset>,
}

impl Assets {
    /// The most critical asset the incident touches, or `None` (the default applies).
    pub fn for_incident(&self, inc: &Incident) -> Option<&Asset> {
        let mut hosts: BTreeSet<&str> = BTreeSet::new();
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        for f in &inc.findings {
            if !f.host.is_empty() {
                hosts.insert(f.host.as_str());
                if let Ok(ip) = f.host.parse() {
                    ips.push(ip);
                }
            }
            accounts.extend(f.users.iter().map(|u| u.as_str()));
        }
        for e in &inc.entities {
            if let Some(h) = e.strip_prefix("host:") {
                hosts.insert(h);
            }
            if let Some(u) = e.strip_prefix("user:") {
                accounts.insert(u);
            }
        }
        self.assets
            .iter()
            .filter(|a| {
                a.hosts.iter().any(|h| hosts.contains(h.as_str()))
                    || a.cidrs.iter().any(|n| ips.iter().any(|ip| n.contains(ip)))
                    || a.accounts.iter().any(|u| accounts.contains(u.as_str()))
            })
            .max_by_key(|a| a.criticality)
    }
}

/// The incident types, most serious first, and what a finding shows each by.
const TYPES: [(&str, &str); 11] = [
    ("ransomware", "files are being encrypted (T1486)"),
    ("data_exfiltration", "data left the network (exfiltration)"),
    ("credential_compromise", "a login succeeded with guessed or stolen credentials"),
    ("malware_c2", "a host talks to command-and-control infrastructure"),
    ("privilege_abuse", "privileges were raised or accounts created"),
    ("vulnerability_exploitation", "a vulnerability was exploited"),
    ("phishing", "phishing (T1566)"),
    ("web_attack", "attacks against a web application"),
    ("brute_force", "password guessing (T1110)"),
    ("reconnaissance", "scanning and probing"),
    // Not in the usual list, but log tampering is neither of the above.
    ("defense_evasion", "logs were tampered with (defense evasion)"),
];

/// Whether one finding shows an incident type.
fn shows(kind: &str, f: &Finding) -> bool {
    let tech = |p: &str| f.techniques.iter().any(|t| t.starts_with(p));
    let tactic = |t: &str| f.tactics.iter().any(|x| x == t);
    let rule = |r: &str| f.rule.contains(r);
    match kind {
        "ransomware" => tech("T1486") || rule("ransom"),
        "data_exfiltration" => rule("exfiltration") || tactic("TA0010"),
        "credential_compromise" => rule("success_after_failures") || tech("T1078"),
        "malware_c2" => rule("beaconing") || rule("dns_tunnelling") || tactic("TA0011"),
        "privilege_abuse" => tactic("TA0004") || tech("T1136") || tech("T1098"),
        "vulnerability_exploitation" => tech("T1068") || tech("T1203") || tech("T1210"),
        "phishing" => tech("T1566"),
        // Password guessing at a web server's login is a brute force, not an exploit.
        "web_attack" => rule("web_") && !tech("T1110") || tech("T1190") || tech("T1189"),
        "brute_force" => tech("T1110"),
        "reconnaissance" => tactic("TA0043") || tactic("TA0007"),
        "defense_evasion" => tactic("TA0005"),
        _ => false,
    }
}

/// The incident types, most serious first, and what shows each.
fn classify(inc: &Incident) -> (&'static str, String) {
    if inc.kind == "agent_failed" {
        return ("agent_failure", "an agent failed past its restart budget".into());
    }
    for (kind, why) in TYPES {
        if inc.findings.iter().any(|f| shows(kind, f)) {
            return (kind, why.to_string());
        }
    }
    ("reconnaissance", format!("no stronger sign than `{}`", inc.kind))
}

/// The finding that shows an incident's type best: the first one of it that is not a
/// campaign's summary (a campaign lists every technique of its members), else any.
pub fn defining_finding<'a>(inc: &'a Incident, kind: &str) -> Option<&'a Finding> {
    let of_kind = || inc.findings.iter().filter(move |f| shows(kind, f));
    of_kind().find(|f| f.rule != "campaign").or_else(|| of_kind().next())
}

fn up(s: Severity) -> Severity {
    match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        _ => Severity::Critical,
    }
}

fn down(s: Severity) -> Severity {
    match s {
        Severity::Critical => Severity::High,
        Severity::High => Severity::Medium,
        _ => Severity::Low,
    }
}

/// How long a priority gives to respond.
pub fn response_window(p: Priority) -> Duration {
    match p {
        Priority::P1 => Duration::hours(1),
        Priority::P2 => Duration::hours(4),
        Priority::P3 => Duration::hours(24),
        Priority::P4 => Duration::hours(72),
    }
}

/// Triage an incident against the known assets.
pub fn triage(inc: &Incident, assets: &Assets) -> TriageResult {
    let mut reasons = Vec::new();
    let (kind, why) = classify(inc);
    reasons.push(format!("type {kind}: {why}"));

    // Severity from the findings, weighed by confidence.
    let worst = inc.findings.iter().map(|f| f.severity).max().unwrap_or(inc.severity);
    let mut severity = worst;
    let at_worst: Vec<f32> = inc.findings.iter().filter(|f| f.severity == worst).map(|f| f.confidence).collect();
    if !at_worst.is_empty() && at_worst.iter().all(|c| *c < 0.5) {
        severity = down(severity);
        reasons.push(format!("worst findings ({worst}) all of low confidence: {severity}"));
    } else {
        reasons.push(format!("worst finding severity {worst}"));
    }
    // Signs of success.
    let succeeded = matches!(kind, "ransomware" | "data_exfiltration" | "credential_compromise" | "malware_c2");
    if succeeded && severity < Severity::High {
        severity = Severity::High;
        reasons.push("the attack succeeded: at least high".into());
    } else if succeeded {
        reasons.push("the attack succeeded".into());
    }
    // The asset.
    let asset = assets.for_incident(inc);
    let (crit, exposure) = match asset {
        Some(a) => {
            reasons.push(format!(
                "asset `{}` ({:?} criticality, {:?} exposure{})",
                a.name,
                a.criticality,
                a.exposure,
                if a.owner.is_empty() { String::new() } else { format!(", owner {}", a.owner) }
            ));
            (a.criticality, a.exposure)
        }
        None => {
            reasons.push(format!(
                "unknown asset: default {:?} criticality, {:?} exposure",
                assets.default.criticality, assets.default.exposure
            ));
            (assets.default.criticality, assets.default.exposure)
        }
    };
    match crit {
        Criticality::Critical => {
            severity = up(severity);
            reasons.push(format!("critical asset: raised to {severity}"));
        }
        Criticality::Low if severity > Severity::Low => {
            severity = down(severity);
            reasons.push(format!("low-criticality asset: lowered to {severity}"));
        }
        _ => {}
    }
    if succeeded
        && (crit == Criticality::Critical || (crit == Criticality::High && exposure == Exposure::Internet))
        && severity < Severity::Critical
    {
        severity = Severity::Critical;
        reasons.push("succeeded on a critical (or exposed high) asset: critical".into());
    }
    // Priority: severity and the stage reached.
    let stages: BTreeSet<&str> = inc.findings.iter().flat_map(|f| f.tactics.iter().map(|t| t.as_str())).collect();
    let late = stages.iter().any(|t| {
        matches!(
            *t,
            "TA0001" | "TA0002" | "TA0003" | "TA0004" | "TA0005" | "TA0008" | "TA0009" | "TA0010" | "TA0011" | "TA0040"
        )
    });
    let mut score = match severity {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    };
    if late {
        score += 1;
        reasons.push(format!("ATT&CK stage reached beyond reconnaissance and credential access ({})", stages.len()));
    }
    if inc.findings.len() >= 3 {
        reasons.push(format!("{} findings: the attack persists", inc.findings.len()));
    }
    let priority = match score {
        s if s >= 5 => Priority::P1,
        4 => Priority::P2,
        3 => Priority::P3,
        _ => Priority::P4,
    };
    let deadline = inc.created_at + response_window(priority);
    reasons.push(format!("priority {priority:?}: respond by {}", deadline.to_rfc3339()));
    TriageResult {
        kind: kind.to_string(),
        severity,
        priority,
        deadline: Some(deadline),
        asset: asset.map(|a| a.name.clone()),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Finding;
    use chrono::{DateTime, Utc};

    fn inc(findings: Vec<Finding>) -> Incident {
        let now: DateTime<Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
        Incident::open(uuid::Uuid::nil(), findings[0].rule.clone(), "t".into(), Severity::Low, vec![], findings, now)
    }

    fn f(rule: &str, sev: Severity, conf: f32, techniques: &[&str], tactics: &[&str], host: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity: sev,
            confidence: conf,
            techniques: techniques.iter().map(|t| t.to_string()).collect(),
            tactics: tactics.iter().map(|t| t.to_string()).collect(),
            host: host.into(),
            ..Default::default()
        }
    }

    fn assets() -> Assets {
        toml::from_str(
            r#"
            [default]
            criticality = "medium"
            exposure = "internet"
            [[asset]]
            name = "payments-db"
            hosts = ["db1"]
            cidrs = ["10.20.0.0/16"]
            criticality = "critical"
            exposure = "internal"
            owner = "payments team"
            [[asset]]
            name = "lab"
            hosts = ["lab1"]
            criticality = "low"
        "#,
        )
        .unwrap()
    }

    #[test]
    fn types_follow_what_the_findings_show() {
        let a = assets();
        let bf = f("ssh_brute_force", Severity::Medium, 0.8, &["T1110.001"], &["TA0006"], "web1");
        assert_eq!(triage(&inc(vec![bf.clone()]), &a).kind, "brute_force");
        let login =
            f("ssh_success_after_failures", Severity::High, 0.8, &["T1110", "T1078"], &["TA0006", "TA0001"], "web1");
        let t = triage(&inc(vec![bf.clone(), login]), &a);
        assert_eq!(t.kind, "credential_compromise");
        assert_eq!(t.priority, Priority::P2, "{:?}", t.reasons);
        let scan = f("port_scan_vertical", Severity::Medium, 0.8, &["T1046"], &["TA0007"], "");
        assert_eq!(triage(&inc(vec![scan]), &a).kind, "reconnaissance");
        let web = f("web_sql_injection_attempt", Severity::High, 0.7, &["T1190"], &["TA0001"], "web1");
        assert_eq!(triage(&inc(vec![web]), &a).kind, "web_attack");
        let c2 = f("c2_beaconing", Severity::High, 0.9, &["T1071"], &["TA0011"], "10.20.3.4");
        let t = triage(&inc(vec![c2]), &a);
        assert_eq!(
            (t.kind.as_str(), t.severity, t.asset.as_deref()),
            ("malware_c2", Severity::Critical, Some("payments-db"))
        );
        assert_eq!(t.priority, Priority::P1);
        let exfil = f("data_exfiltration", Severity::High, 0.6, &["T1041"], &["TA0010"], "10.1.1.1");
        assert_eq!(triage(&inc(vec![exfil]), &a).kind, "data_exfiltration");
        let ransom = f("mass_encryption", Severity::Critical, 0.9, &["T1486"], &["TA0040"], "");
        assert_eq!(triage(&inc(vec![ransom]), &a).kind, "ransomware");
    }

    #[test]
    fn confidence_assets_and_defaults_move_the_score_with_reasons() {
        let a = assets();
        let weak = f("sudo_authentication_failure", Severity::Medium, 0.3, &["T1548.003"], &["TA0004"], "web1");
        let t = triage(&inc(vec![weak]), &a);
        assert_eq!(t.severity, Severity::Low);
        assert!(t.reasons.iter().any(|r| r.contains("low confidence")), "{:?}", t.reasons);
        assert!(t.reasons.iter().any(|r| r.contains("unknown asset: default Medium criticality, Internet exposure")));
        let lab = f("ssh_brute_force", Severity::Medium, 0.8, &["T1110"], &["TA0006"], "lab1");
        let t = triage(&inc(vec![lab]), &a);
        assert_eq!(t.severity, Severity::Low, "{:?}", t.reasons);
        assert_eq!(t.asset.as_deref(), Some("lab"));
        let db = f("ssh_brute_force", Severity::Medium, 0.8, &["T1110"], &["TA0006"], "db1");
        let t = triage(&inc(vec![db]), &a);
        assert_eq!(t.severity, Severity::High);
        assert!(t.reasons.iter().any(|r| r.contains("owner payments team")));
        assert_eq!(
            t.deadline.unwrap() - inc(vec![f("x", Severity::Low, 1.0, &[], &[], "")]).created_at,
            response_window(t.priority)
        );
    }
}
