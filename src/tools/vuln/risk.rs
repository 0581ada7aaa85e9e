//! `prioritize_risk`: a contextual score and priority for each vulnerable package.
//!
//! - CVSS base scores are computed from the vector strings (v3.0/v3.1 and v4.0, with the
//!   `cvss` crate's implementation of the specifications), never copied from a field.
//! - Threat context from files, when present: CISA's Known Exploited Vulnerabilities
//!   catalog (its JSON feed) and FIRST's EPSS scores (its CSV); and from the knowledge
//!   base: findings that show the asset or the package under attack now.
//! - The score: the CVSS base (5.0 when no vector is published, 2.0 for informational
//!   advisories only — RustSec "unmaintained", "unsound" — said so) × asset
//!   criticality (low 0.85, medium 1.0, high 1.15, critical 1.3) × exposure (internet
//!   1.2, internal 1.0, isolated 0.8) × 0.7 for a development-only dependency, plus 2.0
//!   when in KEV, plus 2 × the EPSS probability, plus 2.5 when the asset or package is
//!   being attacked; capped at 10. Priority: P1 ≥ 9 (or KEV and attacked), P2 ≥ 7, P3 ≥
//!   4, else P4; deadlines 3, 7, 30 and 90 days, or KEV's due date when sooner.
//!
//! Every step adds a reason, so the number can be checked by hand.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::osv::Match;
use crate::messages::Priority;
use crate::tools::response::triage::{Criticality, Exposure};

/// A CVSS base score computed from a vector, with the version that scored it.
pub fn cvss_base(vector: &str) -> Option<(f64, &'static str)> {
    let v = vector.trim();
    if v.starts_with("CVSS:4.0/") {
        let parsed = cvss::v4::Vector::from_str(v).ok()?;
        return Some((parsed.score().value(), "4.0"));
    }
    if v.starts_with("CVSS:3.") {
        let parsed = cvss::v3::Vector::from_str(v).ok()?;
        return Some((parsed.score().value(), if v.starts_with("CVSS:3.0/") { "3.0" } else { "3.1" }));
    }
    None
}

/// One KEV entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KevEntry {
    #[serde(rename = "cveID")]
    pub cve: String,
    #[serde(rename = "dateAdded", default)]
    pub date_added: String,
    #[serde(rename = "dueDate", default)]
    pub due_date: String,
    #[serde(rename = "knownRansomwareCampaignUse", default)]
    pub ransomware: String,
    #[serde(rename = "requiredAction", default)]
    pub required_action: String,
}

#[derive(Deserialize)]
struct KevCatalog {
    vulnerabilities: Vec<KevEntry>,
}

/// Threat context: KEV and EPSS by CVE id.
#[derive(Debug, Default, Clone)]
pub struct ThreatContext {
    pub kev: HashMap<String, KevEntry>,
    /// CVE → (probability, percentile).
    pub epss: HashMap<String, (f64, f64)>,
    /// What was loaded, for the scan's record.
    pub notes: Vec<String>,
}

/// Why the threat context cannot be read (a missing file is only noted).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {reason}", path.display())]
    Format { path: std::path::PathBuf, reason: ContextFormatError },
}

/// What is wrong inside a KEV catalog or an EPSS file.
#[derive(Debug, thiserror::Error)]
pub enum ContextFormatError {
    #[error("not a KEV catalog: {0}")]
    Kev(serde_json::Error),
    #[error("line {line}: {reason}")]
    Epss { line: usize, reason: String },
    #[error("no EPSS header (cve,epss,percentile)")]
    NoHeader,
}

fn bad(path: &Path) -> impl FnOnce(ContextFormatError) -> ContextError + '_ {
    move |reason| ContextError::Format { path: path.to_path_buf(), reason }
}

impl ThreatContext {
    /// Loads the KEV catalog and EPSS scores when the files exist; a file that exists
    /// and cannot be read is an error, a missing one is noted.
    pub fn load(kev: Option<&Path>, epss: Option<&Path>) -> Result<ThreatContext, ContextError> {
        let mut ctx = ThreatContext::default();
        if let Some(p) = kev {
            match std::fs::read(p) {
                Ok(bytes) => {
                    ctx.kev = parse_kev(&bytes).map_err(bad(p))?;
                    ctx.notes.push(format!("KEV: {} entries from {}", ctx.kev.len(), p.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    ctx.notes.push(format!("KEV: {} not present", p.display()))
                }
                Err(source) => return Err(ContextError::Read { path: p.to_path_buf(), source }),
            }
        }
        if let Some(p) = epss {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    ctx.epss = parse_epss(&text).map_err(bad(p))?;
                    ctx.notes.push(format!("EPSS: {} scores from {}", ctx.epss.len(), p.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    ctx.notes.push(format!("EPSS: {} not present", p.display()))
                }
                Err(source) => return Err(ContextError::Read { path: p.to_path_buf(), source }),
            }
        }
        Ok(ctx)
    }
}

/// CISA's `known_exploited_vulnerabilities.json`.
pub fn parse_kev(bytes: &[u8]) -> Result<HashMap<String, KevEntry>, ContextFormatError> {
    let cat: KevCatalog = serde_json::from_slice(bytes).map_err(ContextFormatError::Kev)?;
    Ok(cat.vulnerabilities.into_iter().map(|e| (e.cve.trim().to_ascii_uppercase(), e)).collect())
}

/// A bad line `n` (0-based) of an EPSS file.
fn epss_error(n: usize, reason: String) -> ContextFormatError {
    ContextFormatError::Epss { line: n + 1, reason }
}

/// FIRST's EPSS CSV: an optional `#model_version:…` line, a `cve,epss,percentile` header,
/// then one row per CVE.
pub fn parse_epss(text: &str) -> Result<HashMap<String, (f64, f64)>, ContextFormatError> {
    let mut out = HashMap::new();
    let mut header: Option<(usize, usize, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((c, e, p)) = header else {
            let pos = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
            match (pos("cve"), pos("epss"), pos("percentile")) {
                (Some(c), Some(e), Some(p)) => header = Some((c, e, p)),
                _ => return Err(epss_error(n, "not an EPSS header (cve,epss,percentile)".into())),
            }
            continue;
        };
        let (Some(cve), Some(epss), Some(pct)) = (cols.get(c), cols.get(e), cols.get(p)) else {
            return Err(epss_error(n, format!("{} columns", cols.len())));
        };
        let (Ok(epss), Ok(pct)) = (epss.parse::<f64>(), pct.parse::<f64>()) else {
            return Err(epss_error(n, format!("not numbers: {epss}, {pct}")));
        };
        if !(0.0..=1.0).contains(&epss) || !(0.0..=1.0).contains(&pct) {
            return Err(epss_error(n, "scores outside 0..1".into()));
        }
        out.insert(cve.to_ascii_uppercase(), (epss, pct));
    }
    if header.is_none() {
        return Err(ContextFormatError::NoHeader);
    }
    Ok(out)
}

/// The asset a scan target is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetContext {
    pub name: String,
    pub criticality: Criticality,
    pub exposure: Exposure,
    /// Whether it is a known asset (else the stated default applies).
    pub known: bool,
}

/// The contextual risk of one vulnerable package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// The highest CVSS base score among its advisories, with the vector that gave it.
    pub cvss: Option<f64>,
    pub vector: Option<String>,
    pub score: f64,
    pub priority: Priority,
    pub deadline: DateTime<Utc>,
    pub kev: bool,
    pub epss: Option<f64>,
    pub attacked: bool,
    pub reasons: Vec<String>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Scores the advisories affecting one package (`matches`, all of one package).
pub fn prioritize(
    matches: &[Match],
    asset: &AssetContext,
    ctx: &ThreatContext,
    attacked: Option<&str>,
    now: DateTime<Utc>,
) -> Risk {
    let mut reasons = Vec::new();
    let mut best: Option<(f64, String, String)> = None;
    for m in matches {
        for s in &m.severity {
            if let Some((score, version)) = cvss_base(&s.score)
                && best.as_ref().is_none_or(|b| score > b.0)
            {
                best = Some((score, s.score.clone(), format!("{} (CVSS {version})", m.advisory)));
            }
        }
    }
    let notices: Vec<String> =
        matches.iter().filter_map(|m| m.informational.as_ref().map(|i| format!("{} ({i})", m.advisory))).collect();
    let base = match &best {
        Some((score, vector, from)) => {
            reasons.push(format!("CVSS base {score:.1} computed from {vector} of {from}"));
            *score
        }
        None if !matches.is_empty() && notices.len() == matches.len() => {
            reasons.push(format!("informational advisories only ({}), no vulnerability: base 2.0", notices.join(", ")));
            2.0
        }
        None => {
            reasons.push("no CVSS v3/v4 vector published: base taken as 5.0".into());
            5.0
        }
    };
    let crit = match asset.criticality {
        Criticality::Low => 0.85,
        Criticality::Medium => 1.0,
        Criticality::High => 1.15,
        Criticality::Critical => 1.3,
    };
    let expo = match asset.exposure {
        Exposure::Internet => 1.2,
        Exposure::Internal => 1.0,
        Exposure::Isolated => 0.8,
    };
    reasons.push(format!(
        "{} asset `{}`: criticality {:?} ×{crit}, exposure {:?} ×{expo}",
        if asset.known { "known" } else { "unlisted (default)" },
        asset.name,
        asset.criticality,
        asset.exposure
    ));
    let mut score = base * crit * expo;
    if matches.iter().all(|m| m.package.dev) && !matches.is_empty() {
        score *= 0.7;
        reasons.push("development dependency only ×0.7".into());
    }
    let cves: Vec<&str> = matches
        .iter()
        .flat_map(|m| std::iter::once(m.advisory.as_str()).chain(m.aliases.iter().map(String::as_str)))
        .filter(|a| a.starts_with("CVE-"))
        .collect();
    let kev: Vec<&KevEntry> = cves.iter().filter_map(|c| ctx.kev.get(*c)).collect();
    if let Some(k) = kev.first() {
        score += 2.0;
        let ransomware = if k.ransomware.eq_ignore_ascii_case("known") { ", used in ransomware campaigns" } else { "" };
        reasons.push(format!("{} is in CISA KEV (added {}, due {}{ransomware}) +2.0", k.cve, k.date_added, k.due_date));
    }
    let epss = cves.iter().filter_map(|c| ctx.epss.get(*c).map(|e| (*c, e.0, e.1))).max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((cve, p, pct)) = epss {
        score += 2.0 * p;
        reasons.push(format!("EPSS {p:.3} for {cve} (percentile {pct:.3}) +{:.2}", 2.0 * p));
    }
    if let Some(why) = attacked {
        score += 2.5;
        reasons.push(format!("under attack now: {why} +2.5"));
    }
    let score = round1(score.clamp(0.0, 10.0));
    let priority = if score >= 9.0 || (!kev.is_empty() && attacked.is_some()) {
        Priority::P1
    } else if score >= 7.0 {
        Priority::P2
    } else if score >= 4.0 {
        Priority::P3
    } else {
        Priority::P4
    };
    let mut deadline = now + remediation_window(priority);
    for k in &kev {
        if let Ok(d) = NaiveDate::parse_from_str(&k.due_date, "%Y-%m-%d")
            && let Some(due) = d.and_hms_opt(23, 59, 59).map(|t| t.and_utc())
            && due < deadline
        {
            deadline = due;
            reasons.push(format!("deadline set to KEV due date {}", k.due_date));
        }
    }
    reasons.push(format!("score {score:.1} → {priority:?}, remediate by {}", deadline.format("%Y-%m-%d %H:%M UTC")));
    Risk {
        cvss: best.as_ref().map(|b| b.0),
        vector: best.map(|b| b.1),
        score,
        priority,
        deadline,
        kev: !kev.is_empty(),
        epss: epss.map(|e| e.1),
        attacked: attacked.is_some(),
        reasons,
    }
}

/// How long a priority leaves to remediate.
pub fn remediation_window(p: Priority) -> Duration {
    match p {
        Priority::P1 => Duration::days(3),
        Priority::P2 => Duration::days(7),
        Priority::P3 => Duration::days(30),
        Priority::P4 => Duration::days(90),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_scores_from_vectors() {
        // Reference values from the FIRST calculators.
        assert_eq!(cvss_base("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), Some((9.8, "3.1")));
        assert_eq!(cvss_base("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"), Some((8.1, "3.0")));
        assert_eq!(cvss_base("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H"), Some((8.8, "3.1")));
        assert_eq!(cvss_base("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"), Some((9.3, "4.0")));
        assert_eq!(
            cvss_base("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N").map(|s| s.0),
            Some(6.8)
        );
        assert_eq!(cvss_base("AV:N/AC:L/Au:N/C:P/I:P/A:P"), None);
        assert_eq!(cvss_base("CVSS:3.1/AV:Z"), None);
    }

    #[test]
    fn epss_and_kev_files() {
        let e = parse_epss("#model_version:v2023.03.01,score_date:2026-11-25T00:00:00+0000\ncve,epss,percentile\nCVE-2021-44228,0.97565,0.99996\n").unwrap();
        assert_eq!(e["CVE-2021-44228"], (0.97565, 0.99996));
        assert!(parse_epss("cve,epss,percentile\nCVE-1,2.0,0.5\n").is_err());
        assert!(parse_epss("a,b\n").is_err());
        let k = parse_kev(br#"{"title":"x","vulnerabilities":[{"cveID":"CVE-2021-44228","dateAdded":"2021-12-10","dueDate":"2021-12-24","knownRansomwareCampaignUse":"Known","requiredAction":"apply"}]}"#).unwrap();
        assert_eq!(k["CVE-2021-44228"].due_date, "2021-12-24");
        assert!(parse_kev(b"[]").is_err());
    }
}
