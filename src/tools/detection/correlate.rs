//! `correlate_events`: links findings that share an entity within a time window, and
//! turns a linked group that spans several ATT&CK tactics into a campaign — one
//! escalated finding with the timeline of the findings it links.
//!
//! Entities that link: the attacker's address, the finding's entity (an attacked
//! account, a domain), threat-intel indicators, and the accounts of findings where an
//! account *did* something (a login, a sudo) rather than was guessed at — two unrelated
//! attackers guessing `root` are not one campaign. The host links only post-compromise
//! activity: once a group has a foothold on a host (initial access, privilege
//! escalation), later execution, persistence or defence evasion there joins it.
//!
//! State: the groups alive in the window, stored per group (`g/<root id>`); the entity
//! index is rebuilt from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::attack;
use crate::messages::{Finding, Severity};

/// Parameters of `correlate_events`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationParams {
    /// Findings sharing an entity within this window are linked.
    pub window_secs: u64,
    /// Distinct ATT&CK tactics a linked group must span to become a campaign.
    pub min_tactics: usize,
}

impl Default for CorrelationParams {
    fn default() -> Self {
        CorrelationParams { window_secs: 86_400, min_tactics: 2 }
    }
}

/// The prefix of the stored correlation state, below the agent's name.
pub const STATE_PREFIX: &str = "correlate_events/";
/// The rule name of campaign findings.
pub const CAMPAIGN: &str = "campaign";
/// Members kept per group (the timeline); later ones are counted — except a finding
/// that brings a new tactic, which is always kept (at most one per tactic).
const MAX_MEMBERS: usize = 16;

/// Tactics that show an attacker got in.
const FOOTHOLD: [&str; 3] = ["TA0001", "TA0004", "TA0011"];
/// Tactics of activity that happens after getting in.
const POST_COMPROMISE: [&str; 9] =
    ["TA0002", "TA0003", "TA0004", "TA0005", "TA0007", "TA0008", "TA0009", "TA0010", "TA0040"];

/// One finding of a group, as the timeline shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: Uuid,
    pub rule: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub tactics: Vec<String>,
    pub severity: Severity,
    pub entity: String,
    pub src_ip: Option<String>,
    pub users: Vec<String>,
    pub host: String,
}

/// Findings linked through shared entities.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub members: Vec<Member>,
    pub overflow: u64,
    pub entities: BTreeSet<String>,
    /// ATT&CK techniques of every finding linked so far.
    #[serde(default)]
    pub techniques: BTreeSet<String>,
    /// Tactics the last campaign finding covered: a new one (with the longer timeline)
    /// is emitted when the campaign reaches a new tactic — at most one per tactic.
    /// Findings that join a formed campaign are tagged with it.
    pub emitted: Option<usize>,
    pub last: DateTime<Utc>,
}

impl super::tracked::Recency for Group {
    fn recency(&self) -> f64 {
        self.last.timestamp() as f64
    }
}

impl Group {
    fn tactics(&self) -> BTreeSet<&str> {
        self.members.iter().flat_map(|m| m.tactics.iter().map(|t| t.as_str())).collect()
    }

    fn foothold(&self) -> bool {
        self.members.iter().any(|m| m.tactics.iter().any(|t| FOOTHOLD.contains(&t.as_str())))
    }
}

/// The correlator.
#[derive(Debug, Default)]
pub struct Correlator {
    params: CorrelationParams,
    /// Most groups kept (`[detection.limits] campaigns`, lowered by the memory budget).
    max_groups: usize,
    groups: super::tracked::Tracked<Uuid, Group>,
    index: HashMap<String, Uuid>,
    newest: Option<DateTime<Utc>>,
    /// Groups evicted (least recent first) because the table was full.
    pub evicted: u64,
}

impl Correlator {
    pub fn new(params: CorrelationParams) -> Self {
        Self::with_cap(params, super::StateLimits::default().campaigns)
    }

    /// A correlator keeping at most `max_groups` groups.
    pub fn with_cap(params: CorrelationParams, max_groups: usize) -> Self {
        Correlator { params, max_groups: max_groups.max(16), ..Default::default() }
    }

    /// Resumes from stored groups (keys relative to [`STATE_PREFIX`]).
    pub fn restore(&mut self, entries: Vec<(String, serde_json::Value)>) -> Result<(), crate::tools::StateError> {
        for (key, value) in entries {
            let Some(id) = key.strip_prefix("g/") else { continue };
            let Ok(root) = id.parse::<Uuid>() else { continue };
            let g = self.groups.load(id, value)?;
            for e in &g.entities {
                self.index.insert(e.clone(), root);
            }
            self.newest = self.newest.max(Some(g.last));
        }
        Ok(())
    }

    /// Forgets what changed (when nothing stores it); returns no entries.
    pub fn discard_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        self.groups.discard();
        Vec::new()
    }

    /// The groups changed since the last call (`None`: deleted).
    pub fn take_delta(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        self.groups.drain(&format!("{STATE_PREFIX}g/"), &mut out);
        out
    }

    /// Links the findings into groups; tags those that belong to a campaign and returns
    /// the campaign findings that formed or escalated.
    pub fn correlate(&mut self, findings: &mut [Finding]) -> Vec<Finding> {
        let mut out = Vec::new();
        for f in findings.iter_mut() {
            if f.rule == CAMPAIGN {
                continue;
            }
            if let Some(c) = self.one(f) {
                out.push(c);
            }
        }
        self.prune();
        out
    }

    fn window(&self) -> Duration {
        Duration::seconds(self.params.window_secs as i64)
    }

    fn one(&mut self, f: &mut Finding) -> Option<Finding> {
        self.newest = self.newest.max(Some(f.last_seen));
        let (strong, weak) = keys(f);
        let window = self.window();
        let alive = |g: &Group| f.first_seen - g.last <= window;
        let post = f.tactics.iter().any(|t| POST_COMPROMISE.contains(&t.as_str()));
        let mut linked: Vec<Uuid> = Vec::new();
        for k in &strong {
            if let Some(root) = self.index.get(k)
                && self.groups.map.get(root).is_some_and(alive)
                && !linked.contains(root)
            {
                linked.push(*root);
            }
        }
        if post
            && let Some(k) = &weak
            && let Some(root) = self.index.get(k)
            && self.groups.map.get(root).is_some_and(|g| alive(g) && g.foothold())
            && !linked.contains(root)
        {
            linked.push(*root);
        }
        // The oldest group absorbs the others.
        linked.sort_by_key(|r| (self.groups.map[r].members.first().map(|m| m.first_seen), *r));
        let root = match linked.first() {
            Some(r) => *r,
            None => {
                if self.groups.map.len() >= self.max_groups {
                    // Full: the least recent tenth of the groups makes room.
                    for (root, group) in self.groups.evict_least_recent(self.max_groups / 10) {
                        self.unindex(root, &group);
                        self.evicted += 1;
                    }
                }
                self.groups.insert(f.id, Group { last: f.last_seen, ..Default::default() });
                f.id
            }
        };
        for other in linked.iter().skip(1) {
            if let Some(g) = self.groups.remove(other) {
                let target = self.groups.map.get_mut(&root).expect("root group exists");
                for m in g.members {
                    let known = target.tactics();
                    let adds = m.tactics.iter().any(|t| !known.contains(t.as_str()));
                    if target.members.len() < MAX_MEMBERS || adds {
                        target.members.push(m);
                    } else {
                        target.overflow += 1;
                    }
                }
                target.overflow += g.overflow;
                target.techniques.extend(g.techniques);
                target.last = target.last.max(g.last);
                for e in g.entities {
                    self.index.insert(e.clone(), root);
                    target.entities.insert(e);
                }
            }
        }
        let g = self.groups.map.get_mut(&root).expect("root group exists");
        if g.members.iter().any(|m| m.id == f.id) {
            return None; // Seen before (a re-read): nothing new.
        }
        let adds_tactic = {
            let known = g.tactics();
            f.tactics.iter().any(|t| !known.contains(t.as_str()))
        };
        if g.members.len() < MAX_MEMBERS || adds_tactic {
            g.members.push(Member {
                id: f.id,
                rule: f.rule.clone(),
                first_seen: f.first_seen,
                last_seen: f.last_seen,
                tactics: f.tactics.clone(),
                severity: f.severity,
                entity: f.entity(),
                src_ip: f.src_ip.clone(),
                users: f.users.iter().take(2).cloned().collect(),
                host: f.host.clone(),
            });
        } else {
            g.overflow += 1;
        }
        g.last = g.last.max(f.last_seen);
        g.techniques.extend(f.techniques.iter().take(8).cloned());
        for k in strong {
            g.entities.insert(k.clone());
            self.index.insert(k, root);
        }
        if let Some(k) = weak
            && g.foothold()
        {
            g.entities.insert(k.clone());
            self.index.insert(k, root);
        }
        self.groups.mark(&root);
        let g = &self.groups.map[&root];
        if g.emitted.is_some() {
            f.campaign = Some(root);
        }
        // Linked findings must span the tactics: one finding that names two tactics
        // (a scan is discovery and reconnaissance), repeated, is not a campaign.
        let tactics = g.tactics();
        let one_covers_all = g.members.iter().any(|m| tactics.iter().all(|t| m.tactics.iter().any(|x| x == t)));
        if g.members.len() < 2 || tactics.len() < self.params.min_tactics || one_covers_all {
            return None;
        }
        let n = g.tactics().len();
        if g.emitted.is_some_and(|e| e >= n) {
            return None;
        }
        let c = campaign(root, g, f.last_seen);
        f.campaign = Some(root);
        self.groups.map.get_mut(&root).expect("root group exists").emitted = Some(n);
        Some(c)
    }

    fn prune(&mut self) {
        let Some(newest) = self.newest else { return };
        let window = self.window();
        let gone: Vec<Uuid> =
            self.groups.map.iter().filter(|(_, g)| newest - g.last > window).map(|(r, _)| *r).collect();
        for root in gone {
            if let Some(g) = self.groups.remove(&root) {
                self.unindex(root, &g);
            }
        }
    }

    /// Forgets the links to a group that is gone.
    fn unindex(&mut self, root: Uuid, g: &Group) {
        for e in &g.entities {
            if self.index.get(e) == Some(&root) {
                self.index.remove(e);
            }
        }
    }
}

/// The linking keys of a finding: strong ones, and the host (weak).
fn keys(f: &Finding) -> (Vec<String>, Option<String>) {
    let mut strong = Vec::new();
    if let Some(ip) = &f.src_ip {
        strong.push(format!("ip:{ip}"));
    }
    // Accounts link only when the finding shows the account in use — a login that
    // worked, a sudo, a session — never when it was merely guessed at: every address on
    // the Internet guesses `root`, and that does not make them one attacker.
    let used = shows_use(f);
    if let Some(e) = &f.entity
        && !e.starts_with("host:")
        && (used || !e.starts_with("user:"))
    {
        strong.push(e.clone());
    }
    if used && f.users.len() <= 2 {
        for u in &f.users {
            strong.push(format!("user:{u}"));
        }
    }
    for hit in &f.intel {
        strong.push(format!("ioc:{}", hit.indicator));
    }
    strong.sort();
    strong.dedup();
    let weak = (!f.host.is_empty()).then(|| format!("host:{}", f.host));
    (strong, weak)
}

/// Whether a finding shows its accounts in use: valid accounts (T1078), or activity
/// that needs a foothold (initial access, execution, persistence, privilege escalation,
/// defence evasion, lateral movement, collection, exfiltration, C2, impact). Guessing,
/// probing and enumerating (credential access, reconnaissance, discovery) do not.
fn shows_use(f: &Finding) -> bool {
    const USE: [&str; 10] =
        ["TA0001", "TA0002", "TA0003", "TA0004", "TA0005", "TA0008", "TA0009", "TA0010", "TA0011", "TA0040"];
    f.techniques.iter().any(|t| t.starts_with("T1078")) || f.tactics.iter().any(|t| USE.contains(&t.as_str()))
}

fn tactic_name(id: &str) -> &'static str {
    match id {
        "TA0043" => "reconnaissance",
        "TA0042" => "resource development",
        "TA0001" => "initial access",
        "TA0002" => "execution",
        "TA0003" => "persistence",
        "TA0004" => "privilege escalation",
        "TA0005" => "defense evasion",
        "TA0006" => "credential access",
        "TA0007" => "discovery",
        "TA0008" => "lateral movement",
        "TA0009" => "collection",
        "TA0010" => "exfiltration",
        "TA0011" => "command and control",
        "TA0040" => "impact",
        _ => "other",
    }
}

/// The campaign finding of a group.
fn campaign(root: Uuid, g: &Group, at: DateTime<Utc>) -> Finding {
    let mut members: Vec<&Member> = g.members.iter().collect();
    members.sort_by_key(|m| (m.first_seen, m.id));
    // Tactics in the order the timeline reached them (kill-chain order within a finding).
    let mut tactics: Vec<&str> = Vec::new();
    for m in &members {
        let mut ts: Vec<&str> = m.tactics.iter().map(|t| t.as_str()).collect();
        ts.sort_by_key(|t| attack::stage(t));
        for t in ts {
            if !tactics.contains(&t) {
                tactics.push(t);
            }
        }
    }
    // The address most members share is the campaign's entity (what gets contained).
    let mut ips: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &members {
        if let Some(ip) = &m.src_ip {
            *ips.entry(ip).or_default() += 1;
        }
    }
    let primary = ips.iter().max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip))).map(|(ip, _)| ip.to_string());
    let entity = primary.clone().unwrap_or_else(|| members[0].entity.clone());
    let max = members.iter().map(|m| m.severity).max().unwrap_or_default();
    let has = |t: &str| tactics.contains(&t);
    // Escalation follows the stage reached, not the number of findings: probing and
    // password guessing (reconnaissance, credential access, discovery) are what every
    // server on the Internet sees — a campaign of only those keeps its findings'
    // severity. A foothold (initial access, privilege escalation, C2) makes it at least
    // high; a foothold followed by post-compromise activity, or four tactics, critical.
    let foothold = tactics.iter().any(|t| FOOTHOLD.contains(t));
    let post = tactics.iter().any(|t| POST_COMPROMISE.contains(t) && *t != "TA0007" && *t != "TA0004");
    let severity = if foothold && (post || has("TA0004")) && tactics.len() >= 3 || tactics.len() >= 4 {
        Severity::Critical
    } else if foothold {
        max.max(Severity::High)
    } else {
        max
    };
    let chain = tactics.iter().map(|t| tactic_name(t)).collect::<Vec<_>>().join(" → ");
    let mut users: Vec<String> = members.iter().flat_map(|m| m.users.iter().cloned()).collect();
    users.sort();
    users.dedup();
    users.truncate(16);
    let techniques: Vec<String> = g.techniques.iter().cloned().collect();
    let first = members[0].first_seen;
    let last = members.iter().map(|m| m.last_seen).max().unwrap_or(at);
    // The timeline: every finding that reached a new tactic, and the first and last few.
    let line = |m: &Member| {
        let ts = m.tactics.iter().map(|t| tactic_name(t)).collect::<Vec<_>>().join("/");
        format!("{} [{ts}] {} ({})", m.first_seen.to_rfc3339(), m.rule, m.entity)
    };
    let mut seen_tactics: BTreeSet<&str> = BTreeSet::new();
    let mut evidence = Vec::new();
    let mut left_out = g.overflow;
    for (i, m) in members.iter().enumerate() {
        let new_tactic = m.tactics.iter().any(|t| !seen_tactics.contains(t.as_str()));
        seen_tactics.extend(m.tactics.iter().map(|t| t.as_str()));
        if new_tactic || i < 3 || i + 3 >= members.len() {
            evidence.push(crate::text::sanitize(&line(m), 300));
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        evidence.push(format!("… and {left_out} more findings of the same tactics"));
    }
    let mut numbers = BTreeMap::new();
    numbers.insert("findings".into(), (g.members.len() as u64 + g.overflow) as f64);
    numbers.insert("tactics".into(), tactics.len() as f64);
    numbers.insert("span_secs".into(), (last - first).num_seconds() as f64);
    Finding {
        id: Finding::derive_id(CAMPAIGN, &format!("{root}/{}", tactics.len()), at),
        rule: CAMPAIGN.into(),
        title: format!("Campaign against {}: {chain} ({} findings)", members[0].host_or(&entity), members.len()),
        severity,
        confidence: 0.9,
        src_ip: primary,
        users,
        host: members.iter().find(|m| !m.host.is_empty()).map(|m| m.host.clone()).unwrap_or_default(),
        first_seen: first,
        last_seen: last,
        event_count: members.len() as u64,
        techniques,
        evidence,
        entity: Some(entity),
        tactics: tactics.iter().map(|t| t.to_string()).collect(),
        numbers,
        intel: Vec::new(),
        related: members.iter().map(|m| m.id).collect(),
        campaign: Some(root),
        evidence_refs: Vec::new(),
        cves: Vec::new(),
        narrative: None,
    }
}

impl Member {
    fn host_or<'a>(&'a self, other: &'a str) -> &'a str {
        if self.host.is_empty() { other } else { &self.host }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rule: &str, ip: Option<&str>, users: &[&str], tactics: &[&str], minute: i64) -> Finding {
        let t: DateTime<Utc> = "2026-03-01T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minute);
        Finding {
            id: Finding::derive_id(rule, ip.unwrap_or("-"), t),
            rule: rule.into(),
            title: rule.into(),
            severity: Severity::Medium,
            src_ip: ip.map(String::from),
            users: users.iter().map(|u| u.to_string()).collect(),
            host: "web1".into(),
            first_seen: t,
            last_seen: t,
            tactics: tactics.iter().map(|t| t.to_string()).collect(),
            entity: ip.is_none().then(|| format!("user:{}", users[0])),
            ..Default::default()
        }
    }

    #[test]
    fn a_kill_chain_becomes_one_growing_campaign() {
        let mut c = Correlator::new(CorrelationParams::default());
        let ip = Some("203.0.113.9");
        assert!(c.correlate(&mut [f("scan", ip, &[], &["TA0043"], 0)]).is_empty(), "one tactic");
        let mut brute = [f("brute", ip, &["root", "admin", "bob"], &["TA0006"], 5)];
        let out = c.correlate(&mut brute);
        assert_eq!(out.len(), 1, "two tactics, two findings");
        assert_eq!(out[0].related.len(), 2);
        assert_eq!(out[0].severity, Severity::Medium, "probing and guessing alone are not escalated");
        assert_eq!(out[0].entity.as_deref(), Some("203.0.113.9"));
        assert_eq!(brute[0].campaign, out[0].campaign);
        // A new tactic: a campaign finding with the longer timeline.
        let mut login = [f("login", ip, &["bob"], &["TA0001", "TA0006"], 6)];
        assert_eq!(c.correlate(&mut login).len(), 1);
        assert_eq!(login[0].campaign, Some(out[0].campaign.unwrap()));
        // No new tactic: tagged, no campaign finding.
        let mut again = [f("brute2", ip, &["x"], &["TA0006"], 6)];
        assert!(c.correlate(&mut again).is_empty());
        assert_eq!(again[0].campaign, login[0].campaign);
        // sudo by bob (no address) joins through the account the login used, and the
        // campaign escalates to critical (initial access + privilege escalation).
        let out = c.correlate(&mut [f("sudo", None, &["bob"], &["TA0004"], 7)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].related.len(), 5);
        assert_eq!(out[0].severity, Severity::Critical);
        assert_eq!(out[0].tactics, ["TA0043", "TA0006", "TA0001", "TA0004"]);
        assert!(out[0].evidence[0].contains("[reconnaissance] scan"), "{:?}", out[0].evidence);
        // A new account on the host joins through the host once the group has a foothold.
        let mut useradd = [f("useradd", None, &["backdoor"], &["TA0003"], 8)];
        let last = c.correlate(&mut useradd);
        assert_eq!(useradd[0].campaign, out[0].campaign);
        assert_eq!(last[0].related.len(), 6);
        assert_eq!(last[0].tactics, ["TA0043", "TA0006", "TA0001", "TA0004", "TA0003"]);
        // The state survives a restore.
        let delta = c.take_delta();
        let mut d = Correlator::new(CorrelationParams::default());
        d.restore(delta.into_iter().filter_map(|(k, v)| Some((k[STATE_PREFIX.len()..].to_string(), v?))).collect())
            .unwrap();
        assert_eq!(d.groups.map, c.groups.map);
    }

    #[test]
    fn unrelated_attackers_and_guessed_accounts_do_not_link() {
        let mut c = Correlator::new(CorrelationParams::default());
        assert!(c.correlate(&mut [f("brute", Some("198.51.100.1"), &["root"], &["TA0006"], 0)]).is_empty());
        assert!(c.correlate(&mut [f("scan", Some("198.51.100.2"), &["root"], &["TA0043"], 1)]).is_empty());
        // Enumerating accounts (discovery) and a distributed guess at `root` (an account
        // entity, guessed at) do not link to anything through `root` either.
        assert!(c.correlate(&mut [f("enum", Some("198.51.100.3"), &["root"], &["TA0006", "TA0007"], 1)]).is_empty());
        let mut dbf = f("dbf", None, &["root"], &["TA0006"], 1);
        assert_eq!(dbf.entity.as_deref(), Some("user:root"));
        assert!(c.correlate(std::slice::from_mut(&mut dbf)).is_empty());
        // Post-compromise activity on the host without a foothold there stays alone.
        assert!(c.correlate(&mut [f("useradd", None, &["svc"], &["TA0003"], 2)]).is_empty());
        // One of them gets in as root: its own group (its address) — not the others'.
        let mut login = [f("login", Some("198.51.100.4"), &["root"], &["TA0001", "TA0006"], 3)];
        assert!(c.correlate(&mut login).is_empty());
        assert_eq!(c.groups.map.len(), 6, "six findings, six groups");
        // Outside the window: a new group.
        let late = f("login", Some("198.51.100.1"), &["root"], &["TA0001"], 60 * 48);
        assert!(c.correlate(&mut [late]).is_empty());
    }
}
