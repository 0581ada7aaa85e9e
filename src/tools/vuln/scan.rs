//! One scan of one target — inventory, matching, risk, remediation — and the posture
//! report over the latest scans (`generate_vuln_report`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::inventory::{self, Distro, Package};
use super::osv::{AdvisoryDb, Match};
use super::remediate::{self, Remediation};
use super::risk::{self, AssetContext, Risk, ThreatContext};
use crate::tools::response::report::{Format, Section, render_document};

/// A scan target from the agent's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A host root (`/`), a mounted image, a project directory or one lockfile.
    pub path: PathBuf,
    /// The asset it is (matched against `assets.toml` by name or host).
    pub asset: String,
    /// Host names its logs carry (to find it from an incident).
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// One advisory, as a vulnerable item shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryBrief {
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub fixed: Vec<String>,
}

/// One vulnerable package on one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnItem {
    /// `asset|ecosystem|name|location`: stable across scans (the version may change).
    pub key: String,
    pub asset: String,
    pub package: Package,
    pub advisories: Vec<AdvisoryBrief>,
    pub risk: Risk,
    pub remediation: Remediation,
    /// When a scan first found this package vulnerable.
    pub first_seen: DateTime<Utc>,
}

impl VulnItem {
    /// CVSS severity band of its worst advisory.
    pub fn severity(&self) -> &'static str {
        match self.risk.cvss {
            Some(s) if s >= 9.0 => "critical",
            Some(s) if s >= 7.0 => "high",
            Some(s) if s >= 4.0 => "medium",
            Some(s) if s > 0.0 => "low",
            _ => "unscored",
        }
    }
}

/// What changed since the previous scan of the same target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    pub previous_at: Option<DateTime<Utc>>,
    pub new: Vec<String>,
    pub resolved: Vec<String>,
    /// Same package still vulnerable, but its version changed.
    pub changed: Vec<String>,
}

/// One scan of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub target: String,
    pub asset: AssetContext,
    #[serde(default)]
    pub distro: Option<Distro>,
    pub packages: usize,
    pub sources: Vec<(String, usize)>,
    pub errors: Vec<String>,
    /// Skipped records, first 50, and how many in all.
    pub warnings: Vec<String>,
    pub warning_count: usize,
    pub advisories_in_db: usize,
    pub context: Vec<String>,
    pub items: Vec<VulnItem>,
    pub changes: Changes,
}

/// What `scan_vulnerabilities` found: the inventory and, per vulnerable package, the
/// advisories matching it.
#[derive(Debug, Clone, Default)]
pub struct Matched {
    pub inventory: inventory::Inventory,
    /// The release advisories were matched for (`12` for Debian 12).
    pub release: Option<String>,
    pub vulnerable: Vec<Vec<Match>>,
}

/// Inventories `path` and matches every package against the database.
pub fn inventory_and_match(path: &std::path::Path, db: &AdvisoryDb) -> Matched {
    let inventory = inventory::scan(path);
    let release = inventory.distro.as_ref().map(|d| d.osv_release());
    let vulnerable =
        inventory.packages.iter().map(|p| db.matches(p, release.as_deref())).filter(|m| !m.is_empty()).collect();
    Matched { inventory, release, vulnerable }
}

/// Why each vulnerable package counts as attacked now, if it does: a finding naming one
/// of its CVEs (`cves`: CVE → description), or an exploitation incident on the asset
/// (`asset_attacked`).
pub fn attacked(
    vulnerable: &[Vec<Match>],
    cves: &BTreeMap<String, String>,
    asset_attacked: Option<&str>,
) -> Vec<Option<String>> {
    vulnerable
        .iter()
        .map(|ms| {
            let named =
                ms.iter().flat_map(|m| std::iter::once(&m.advisory).chain(&m.aliases)).find_map(|id| cves.get(id));
            named.cloned().or_else(|| asset_attacked.map(String::from))
        })
        .collect()
}

/// Puts a scan's pieces together: one item per vulnerable package that has a risk and
/// a remediation.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    target: &Target,
    asset: AssetContext,
    m: Matched,
    db_len: usize,
    context: Vec<String>,
    risks: Vec<Risk>,
    remediations: Vec<Option<Remediation>>,
    checks: &BTreeMap<String, Vec<String>>,
    now: DateTime<Utc>,
) -> ScanReport {
    let mut context = context;
    if m.inventory.distro.is_none()
        && m.inventory.packages.iter().any(|p| p.location.ends_with("status") || p.location.ends_with("installed"))
    {
        context.push("no os-release: OS packages matched only against advisories that name no release".into());
    }
    let mut items = Vec::new();
    for ((matches, risk), remediation) in m.vulnerable.iter().zip(risks).zip(remediations) {
        let (Some(pkg), Some(mut remediation)) = (matches.first().map(|x| &x.package), remediation) else { continue };
        remediation.check = checks.get(&pkg.name).cloned().unwrap_or_default();
        items.push(VulnItem {
            key: format!("{}|{}|{}|{}", asset.name, pkg.ecosystem, pkg.name, pkg.location),
            asset: asset.name.clone(),
            package: pkg.clone(),
            advisories: matches
                .iter()
                .map(|x| AdvisoryBrief {
                    id: x.advisory.clone(),
                    aliases: x.aliases.clone(),
                    summary: x.summary.clone(),
                    fixed: x.fixed.clone(),
                })
                .collect(),
            risk,
            remediation,
            first_seen: now,
        });
    }
    items.sort_by(|a, b| b.risk.score.total_cmp(&a.risk.score).then_with(|| a.key.cmp(&b.key)));
    let inv = m.inventory;
    let warning_count = inv.warnings.len();
    ScanReport {
        id: uuid::Uuid::now_v7(),
        at: now,
        target: target.path.display().to_string(),
        asset,
        distro: inv.distro,
        packages: inv.packages.len(),
        sources: inv.sources,
        errors: inv.errors,
        warnings: inv.warnings.into_iter().take(50).collect(),
        warning_count,
        advisories_in_db: db_len,
        context,
        items,
        changes: Changes::default(),
    }
}

/// A whole scan in one call (the CLI's `warden scan`; the agent runs the same steps as
/// separate, audited tool calls).
pub fn scan_target(
    target: &Target,
    asset: AssetContext,
    db: &AdvisoryDb,
    ctx: &ThreatContext,
    cves_attacked: &BTreeMap<String, String>,
    checks: &BTreeMap<String, Vec<String>>,
    now: DateTime<Utc>,
) -> ScanReport {
    let m = inventory_and_match(&target.path, db);
    let why = attacked(&m.vulnerable, cves_attacked, None);
    let risks =
        m.vulnerable.iter().zip(&why).map(|(ms, w)| risk::prioritize(ms, &asset, ctx, w.as_deref(), now)).collect();
    let rems = m.vulnerable.iter().map(|ms| remediate::recommend(db, ms, m.release.as_deref())).collect();
    assemble(target, asset, m, db.len(), ctx.notes.clone(), risks, rems, checks, now)
}

/// Fills `cur.changes` from the previous scan of the same target and carries each
/// item's first sighting over.
pub fn diff(prev: Option<&ScanReport>, cur: &mut ScanReport) {
    let Some(prev) = prev else {
        cur.changes = Changes { new: cur.items.iter().map(|i| i.key.clone()).collect(), ..Changes::default() };
        return;
    };
    let before: BTreeMap<&str, &VulnItem> = prev.items.iter().map(|i| (i.key.as_str(), i)).collect();
    let now: BTreeSet<String> = cur.items.iter().map(|i| i.key.clone()).collect();
    let mut ch = Changes { previous_at: Some(prev.at), ..Changes::default() };
    for item in &mut cur.items {
        match before.get(item.key.as_str()) {
            Some(old) => {
                item.first_seen = old.first_seen;
                if old.package.version != item.package.version {
                    ch.changed.push(format!("{} ({} → {})", item.key, old.package.version, item.package.version));
                }
            }
            None => ch.new.push(item.key.clone()),
        }
    }
    ch.resolved = before.keys().filter(|k| !now.contains(**k)).map(|k| k.to_string()).collect();
    cur.changes = ch;
}

/// The organisation's posture over the latest scan of each target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posture {
    pub generated_at: DateTime<Utc>,
    pub targets: usize,
    pub vulnerable_packages: usize,
    pub by_severity: BTreeMap<String, usize>,
    pub by_priority: BTreeMap<String, usize>,
    /// Items whose remediation deadline has passed.
    pub overdue: Vec<String>,
    pub top: Vec<VulnItem>,
    pub assets: Vec<AssetView>,
    pub changes: Vec<(String, Changes)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetView {
    pub asset: String,
    pub target: String,
    pub scanned_at: DateTime<Utc>,
    pub packages: usize,
    pub vulnerable: usize,
    pub worst: Option<String>,
    pub errors: Vec<String>,
}

pub fn posture(scans: &[ScanReport], now: DateTime<Utc>) -> Posture {
    let mut by_severity = BTreeMap::new();
    let mut by_priority = BTreeMap::new();
    let mut overdue = Vec::new();
    let mut all: Vec<&VulnItem> = Vec::new();
    for s in scans {
        for i in &s.items {
            *by_severity.entry(i.severity().to_string()).or_insert(0) += 1;
            *by_priority.entry(format!("{:?}", i.risk.priority)).or_insert(0) += 1;
            // The deadline runs from the first sighting, not from the latest scan (a KEV
            // due date that comes sooner still wins).
            let due = (i.first_seen + risk::remediation_window(i.risk.priority)).min(i.risk.deadline);
            if due < now {
                overdue.push(format!("{} — due {}", i.key, due.format("%Y-%m-%d")));
            }
            all.push(i);
        }
    }
    all.sort_by(|a, b| b.risk.score.total_cmp(&a.risk.score).then_with(|| a.key.cmp(&b.key)));
    Posture {
        generated_at: now,
        targets: scans.len(),
        vulnerable_packages: all.len(),
        by_severity,
        by_priority,
        overdue,
        top: all.iter().take(10).map(|i| (*i).clone()).collect(),
        assets: scans
            .iter()
            .map(|s| AssetView {
                asset: s.asset.name.clone(),
                target: s.target.clone(),
                scanned_at: s.at,
                packages: s.packages,
                vulnerable: s.items.len(),
                worst: s.items.first().map(|i| {
                    format!("{} {} ({:?}, {:.1})", i.package.name, i.package.version, i.risk.priority, i.risk.score)
                }),
                errors: s.errors.clone(),
            })
            .collect(),
        changes: scans.iter().map(|s| (s.target.clone(), s.changes.clone())).collect(),
    }
}

/// The posture as Markdown, HTML or JSON.
pub fn render_posture(p: &Posture, format: Format) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(p).unwrap_or_default();
    }
    let count = |m: &BTreeMap<String, usize>, keys: &[&str]| {
        keys.iter().map(|k| format!("{k}: {}", m.get(*k).copied().unwrap_or(0))).collect::<Vec<_>>().join(", ")
    };
    let mut sections = vec![Section {
        heading: "Summary".into(),
        items: vec![
            format!("{} vulnerable packages on {} scanned targets.", p.vulnerable_packages, p.targets),
            format!("By severity — {}.", count(&p.by_severity, &["critical", "high", "medium", "low", "unscored"])),
            format!("By priority — {}.", count(&p.by_priority, &["P1", "P2", "P3", "P4"])),
            format!("{} past their remediation deadline.", p.overdue.len()),
        ],
        verbatim: false,
    }];
    if !p.overdue.is_empty() {
        sections.push(Section { heading: "Deadlines missed".into(), items: p.overdue.clone(), verbatim: false });
    }
    sections.push(Section {
        heading: "Top risks".into(),
        items: p
            .top
            .iter()
            .map(|i| {
                format!(
                    "{:?} {:.1} — {} {} on {} ({}): {}. Fix: {}. Why: {}",
                    i.risk.priority,
                    i.risk.score,
                    i.package.name,
                    i.package.version,
                    i.asset,
                    i.advisories.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", "),
                    i.advisories.first().map(|a| a.summary.as_str()).unwrap_or_default(),
                    match (&i.remediation.target, i.remediation.command.is_empty()) {
                        (Some(t), false) => format!("{t} with `{}`", i.remediation.command_line()),
                        (Some(t), true) => format!("upgrade to {t}"),
                        (None, _) => i.remediation.mitigation.clone().unwrap_or_default(),
                    },
                    i.risk.reasons.join("; ")
                )
            })
            .collect(),
        verbatim: false,
    });
    sections.push(Section {
        heading: "Assets".into(),
        items: p
            .assets
            .iter()
            .map(|a| {
                format!(
                    "{} ({}), scanned {}: {} packages, {} vulnerable{}{}",
                    a.asset,
                    a.target,
                    a.scanned_at.format("%Y-%m-%d %H:%M UTC"),
                    a.packages,
                    a.vulnerable,
                    a.worst.as_ref().map(|w| format!("; worst: {w}")).unwrap_or_default(),
                    if a.errors.is_empty() {
                        String::new()
                    } else {
                        format!("; {} unreadable inventory files", a.errors.len())
                    }
                )
            })
            .collect(),
        verbatim: false,
    });
    sections.push(Section {
        heading: "Changes since the previous scan".into(),
        items: p
            .changes
            .iter()
            .map(|(t, c)| match c.previous_at {
                None => format!("{t}: first scan ({} vulnerable)", c.new.len()),
                Some(at) => format!(
                    "{t} (since {}): {} new{}, {} resolved{}, {} changed version",
                    at.format("%Y-%m-%d %H:%M UTC"),
                    c.new.len(),
                    if c.new.is_empty() { String::new() } else { format!(" ({})", c.new.join(", ")) },
                    c.resolved.len(),
                    if c.resolved.is_empty() { String::new() } else { format!(" ({})", c.resolved.join(", ")) },
                    c.changed.len()
                ),
            })
            .collect(),
        verbatim: false,
    });
    let subtitle = format!("Generated {}", p.generated_at.to_rfc3339());
    render_document("Vulnerability posture", &format!("{} targets", p.targets), &subtitle, &sections, format)
}
