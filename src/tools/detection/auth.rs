//! Built-in authentication detectors: SSH brute force (a true sliding window over log
//! time, counting what fail2ban's `sshd` filter counts in the configured mode) and a
//! successful login, to any service, that follows failures from the same address.
//! The other services' brute forces are Sigma correlations (the shipped rules).
//!
//! The detector's whole state is plain serde data so that the agent stores it in the
//! same transaction as the source checkpoint that produced it: after a crash the
//! windows are exactly as they were when the last committed line was read.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DetectionParams;
use crate::messages::{AuthEvent, AuthEventKind, Event, Finding, Prematched, Service, Severity};
use crate::text::sanitize;

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceParams {
    /// Failures from one address that open a finding.
    pub failures: u32,
    /// Sliding window, in seconds of log time.
    pub window_secs: u64,
}

impl Default for BruteForceParams {
    fn default() -> Self {
        BruteForceParams { failures: 5, window_secs: 600 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessAfterFailuresParams {
    /// Failures from the same address that make a later success suspicious.
    pub min_failures: u32,
    /// How far back (log time) failures count.
    pub lookback_secs: u64,
}

impl Default for SuccessAfterFailuresParams {
    fn default() -> Self {
        SuccessAfterFailuresParams { min_failures: 3, lookback_secs: 86_400 }
    }
}

/// Which sshd lines count as failures, like fail2ban's `sshd` filter `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshMode {
    /// Failed and refused logins, invalid users, too many attempts.
    #[default]
    Normal,
    /// Also connections that never identify or that close before authenticating: a
    /// monitoring host's TCP checks look exactly like that, so only when asked for.
    Aggressive,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SshParams {
    #[serde(default)]
    pub mode: SshMode,
}

impl SshParams {
    /// Whether an sshd event counts toward the brute-force window.
    pub fn counts(&self, a: &crate::messages::AuthEvent) -> bool {
        a.service == Service::Ssh
            && (a.kind.is_failure()
                || self.mode == SshMode::Aggressive
                    && matches!(a.kind, AuthEventKind::NoIdentification | AuthEventKind::PreauthClose))
    }
}

/// Lines kept as evidence per address, and how much of each.
const SAMPLES: usize = 4;
const SAMPLE_CHARS: usize = 512;

/// Per-address state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AddrState {
    /// Failures inside the brute-force window: (event time, count), time-ordered.
    window: VecDeque<(DateTime<Utc>, u32)>,
    /// Sum of the counts in `window`.
    in_window: u64,
    /// Event time of the last brute-force finding; at most one per window.
    last_alert: Option<DateTime<Utc>>,
    /// Brute-force findings for this address so far; each doubles the wait before the
    /// next one, so a persistent attacker extends its incident without flooding it.
    #[serde(default)]
    alerts: u32,
    /// Failures since the last success, and when the latest of them happened.
    streak: u64,
    streak_first: Option<DateTime<Utc>>,
    streak_last: Option<DateTime<Utc>>,
    users: Vec<String>,
    samples: Vec<String>,
    /// Where the samples (and later lines of a finding) were read, when from a file.
    #[serde(default)]
    sample_refs: Vec<crate::messages::EvidenceRef>,
    last_seen: Option<DateTime<Utc>>,
}

/// Everything the detector remembers, persisted with the source checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuthDetectorState {
    pub addrs: HashMap<IpAddr, AddrState>,
    #[serde(flatten)]
    pub head: StateHead,
}

/// The part of the state that is not per address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateHead {
    /// Newest event time seen; drives pruning.
    pub newest: Option<DateTime<Utc>>,
    /// Events seen, by kind (durable counters, exposed on `/metrics`).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Sigma rules' suppression and correlation state.
    #[serde(default)]
    pub sigma: super::sigma::SigmaState,
    /// Per source and host, the newest event time seen (log tampering: time going back).
    #[serde(default)]
    pub newest_by_stream: std::collections::BTreeMap<String, DateTime<Utc>>,
}

/// What changed since the last delta: stored instead of the whole state, so the cost of
/// persisting a batch follows the addresses it touched, not all that are tracked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDelta {
    /// The [`StateHead`] as stored (`Null` when nothing stores it: a replay).
    pub head: serde_json::Value,
    /// What changed in the Sigma correlation windows, as keys below the detector's
    /// (`None`: deleted): see `RuleSet::correlation_changes`.
    pub correlation: Vec<(String, Option<serde_json::Value>)>,
    /// Correlation groups held, and evicted at their cap since the previous delta (when
    /// Warden counts them).
    pub groups: Option<(usize, u64)>,
    pub upserts: Vec<(IpAddr, AddrState)>,
    pub removed: Vec<IpAddr>,
    /// Addresses evicted since the previous delta (over `limits.addresses`), and how
    /// many are tracked now.
    pub evicted: u64,
    pub tracked: usize,
}

/// The detector: parameters, state, and the agent's Sigma rules.
pub struct AuthDetector {
    params: DetectionParams,
    pub state: AuthDetectorState,
    dirty: std::collections::HashSet<IpAddr>,
    removed: Vec<IpAddr>,
    rules: Option<super::sigma::RuleSet>,
    /// The file the current batch was read from (evidence references).
    file: Option<std::sync::Arc<str>>,
    /// When the next sweep of expired addresses is due (event time): sweeping after
    /// every batch made a line's cost grow with the addresses tracked.
    next_sweep: Option<DateTime<Utc>>,
    /// Addresses evicted to stay within `limits.addresses` (least recently seen first),
    /// since the last delta.
    evicted: u64,
}

impl std::fmt::Debug for AuthDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthDetector").field("tracked", &self.state.addrs.len()).finish_non_exhaustive()
    }
}

impl AuthDetector {
    pub fn new(params: DetectionParams, state: AuthDetectorState) -> Self {
        Self::with_rules(params, state, None)
    }

    /// A detector that also evaluates Sigma rules, resuming their saved state.
    pub fn with_rules(
        params: DetectionParams,
        state: AuthDetectorState,
        mut rules: Option<super::sigma::RuleSet>,
    ) -> Self {
        let mut state = state;
        if let Some(r) = rules.as_mut() {
            r.restore(&state.head.sigma);
            // The engine holds them now (`take_delta` exports them again).
            state.head.sigma.correlation = None;
            state.head.sigma.groups = Vec::new();
        }
        AuthDetector {
            params,
            state,
            dirty: Default::default(),
            removed: Vec::new(),
            rules,
            file: None,
            next_sweep: None,
            evicted: 0,
        }
    }

    /// Log tampering: a tailed file truncated in place, or a stream whose timestamps go
    /// back by more than the window (lines inserted or a log rewritten). Truncation is
    /// also what `copytruncate` rotation does, so it is a low finding that only adds to
    /// an incident its host already has.
    pub fn check_log_integrity(&mut self, events: &[Event], source: &str, file_truncated: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        let window = Duration::seconds(self.params.brute_force.window_secs as i64);
        if file_truncated && let Some(first) = events.first() {
            let host = if first.host.is_empty() { source.to_string() } else { sanitize(&first.host, 255) };
            out.push(Finding {
                id: Finding::derive_id("log_file_truncated", &format!("{source}/{host}"), first.time),
                rule: "log_file_truncated".into(),
                title: format!("Log source {source} was truncated in place"),
                severity: Severity::Low,
                confidence: 0.3,
                src_ip: None,
                users: Vec::new(),
                host,
                first_seen: first.time,
                last_seen: first.time,
                event_count: 1,
                techniques: vec!["T1070.002".into()],
                evidence: vec![format!("source {source} restarted from offset 0 with a smaller size")],
                entity: None,
                ..Default::default()
            });
        }
        let mut key = String::new();
        for ev in events {
            // Syslog lines only: a line without a header has no time of its own, and web
            // servers log a request when it ends with the time it began, so their lines
            // are out of order by design.
            if ev.host.is_empty() || ev.web.is_some() {
                continue;
            }
            // One reused buffer: this runs for every line.
            key.clear();
            key.push_str(source);
            key.push('/');
            key.push_str(&ev.host);
            if !self.state.head.newest_by_stream.contains_key(key.as_str()) {
                self.state.head.newest_by_stream.insert(key.clone(), ev.time);
            }
            let Some(newest) = self.state.head.newest_by_stream.get_mut(key.as_str()) else { continue };
            if ev.time < *newest - window {
                let behind = *newest - ev.time;
                let rule_key = format!("builtin:log_time_backwards|{key}");
                let due = self.state.head.sigma.last.get(&rule_key).is_none_or(|(l, _)| *l != *newest);
                if due {
                    self.state.head.sigma.last.insert(rule_key, (*newest, 1));
                    out.push(Finding {
                        id: Finding::derive_id("log_timestamps_backwards", &key, ev.time),
                        rule: "log_timestamps_backwards".into(),
                        title: format!("Log timestamps went back {} minutes in {source}", behind.num_minutes()),
                        severity: Severity::Medium,
                        confidence: 0.5,
                        src_ip: None,
                        users: Vec::new(),
                        host: sanitize(&ev.host, 255),
                        first_seen: ev.time,
                        last_seen: *newest,
                        event_count: 1,
                        techniques: vec!["T1070".into()],
                        evidence: vec![sanitize(&ev.raw, 512)],
                        entity: None,
                        ..Default::default()
                    });
                }
            } else if ev.time > *newest {
                *newest = ev.time;
            }
        }
        out
    }

    /// Forgets the changes since the previous delta (when nothing stores them).
    pub fn discard_delta(&mut self) -> StateDelta {
        self.dirty.clear();
        self.removed.clear();
        let groups = self.rules.as_mut().and_then(|r| r.groups());
        StateDelta {
            evicted: std::mem::take(&mut self.evicted),
            tracked: self.state.addrs.len(),
            groups,
            ..StateDelta::default()
        }
    }

    /// Stops remembering which correlation groups changed (nothing stores the state).
    pub fn untracked(&mut self) {
        if let Some(r) = self.rules.as_mut() {
            r.untracked();
        }
    }

    /// The changes since the previous call, the head encoded as stored.
    pub fn take_delta(&mut self) -> Result<StateDelta, serde_json::Error> {
        let head = serde_json::to_value(&self.state.head)?;
        // The correlation windows live in the engine: only what an event changed.
        let correlation = self.rules.as_mut().map(|r| r.correlation_changes()).unwrap_or_default();
        let groups = self.rules.as_mut().and_then(|r| r.groups());
        let upserts = self.dirty.drain().filter_map(|ip| self.state.addrs.get(&ip).map(|s| (ip, s.clone()))).collect();
        Ok(StateDelta {
            head,
            correlation,
            upserts,
            removed: std::mem::take(&mut self.removed),
            evicted: std::mem::take(&mut self.evicted),
            tracked: self.state.addrs.len(),
            groups,
        })
    }

    /// Sets the file the next batch comes from (`None`: not a file).
    pub fn set_file(&mut self, file: Option<String>) {
        // One shared name per file: every reference into it points here.
        if self.file.as_deref() != file.as_deref() {
            self.file = file.map(|f| f.into());
        }
    }

    /// Runs every event through the detectors and returns the findings they opened.
    pub fn analyze(&mut self, events: &[Event]) -> Vec<Finding> {
        self.analyze_matched(events, None)
    }

    /// Like [`AuthDetector::analyze`], with the Sigma matches a source's lane found in
    /// the batch (used when they are of these rules).
    pub fn analyze_matched(&mut self, events: &[Event], matched: Option<&Prematched>) -> Vec<Finding> {
        let mut findings = Vec::new();
        let window = Duration::seconds(self.params.brute_force.window_secs as i64);
        for (i, ev) in events.iter().enumerate() {
            self.one(ev, &mut findings);
            if let Some(phrase) = super::injection::check(&ev.raw) {
                self.prompt_injection(ev, &phrase, window, &mut findings);
            }
            if let Some(r) = self.rules.as_mut() {
                let pre = r.matches(matched, i, events.len());
                let file = ev.file.as_deref().or(self.file.as_deref());
                findings.extend(r.evaluate_matched(ev, file, &mut self.state.head.sigma, window, pre));
            }
        }
        self.prune();
        if let Some(newest) = self.state.head.newest {
            super::sigma::prune(&mut self.state.head.sigma, newest, window);
        }
        findings
    }

    /// A line that tries to instruct a language model: reported once per window per
    /// entity (the sender's address, else the host).
    fn prompt_injection(&mut self, ev: &Event, phrase: &str, window: Duration, findings: &mut Vec<Finding>) {
        let src = ev.src_ip();
        let entity = match src {
            Some(ip) => ip.to_string(),
            None => format!("host:{}", ev.host),
        };
        let key = format!("prompt_injection_attempt|{entity}");
        if let Some((last, _)) = self.state.head.sigma.last.get(&key)
            && ev.time >= *last
            && ev.time < *last + window
        {
            return;
        }
        self.state.head.sigma.last.insert(key, (ev.time, 1));
        findings.push(Finding {
            id: Finding::derive_id("prompt_injection_attempt", &entity, ev.time),
            rule: "prompt_injection_attempt".into(),
            title: format!("Log data tries to instruct a language model (\"{phrase}\")"),
            severity: Severity::Medium,
            confidence: 0.8,
            src_ip: src.map(|ip| ip.to_string()),
            users: Vec::new(),
            host: sanitize(&ev.host, 255),
            first_seen: ev.time,
            last_seen: ev.time,
            event_count: 1,
            techniques: Vec::new(),
            evidence: vec![sanitize(&ev.raw, 512)],
            entity: src.is_none().then(|| entity.clone()),
            ..Default::default()
        });
    }

    fn one(&mut self, ev: &Event, findings: &mut Vec<Finding>) {
        let Some(a) = &ev.auth else { return };
        // Counted without allocating a key for every event (only a kind's first).
        match self.state.head.counts.get_mut(a.kind.as_str()) {
            Some(n) => *n += a.count as u64,
            None => {
                self.state.head.counts.insert(a.kind.as_str().to_string(), a.count as u64);
            }
        }
        let Some(ip) = a.src_ip else { return };
        let windowed = self.params.ssh.counts(a);
        let failed = windowed || a.kind.is_failure();
        let success = a.kind == AuthEventKind::Success;
        if failed || success && self.state.addrs.contains_key(&ip) {
            self.dirty.insert(ip);
        }
        let t = ev.time;
        self.state.head.newest = Some(self.state.head.newest.map_or(t, |n| n.max(t)));
        if failed {
            self.failure(ip, a, ev, windowed, findings);
        } else if success {
            self.success(ip, a, ev, findings);
        }
    }

    /// A failed login (any service) lengthens the address's streak; an sshd one that
    /// counts goes into its sliding window, a brute force once the window holds enough
    /// (then again after a growing wait).
    fn failure(&mut self, ip: IpAddr, a: &AuthEvent, ev: &Event, windowed: bool, findings: &mut Vec<Finding>) {
        let t = ev.time;
        let horizon = self.horizon();
        let newest = self.state.head.newest.unwrap_or(t);
        let st = self.state.addrs.entry(ip).or_default();
        // Expired but not swept yet: as if it had been forgotten.
        if st.last_seen.is_some_and(|l| newest - l > horizon) {
            *st = AddrState::default();
        }
        st.last_seen = Some(st.last_seen.map_or(t, |l| l.max(t)));
        if a.kind.is_failure() {
            st.streak += a.count as u64;
            st.streak_first.get_or_insert(t);
            st.streak_last = Some(st.streak_last.map_or(t, |l| l.max(t)));
            if let Some(u) = &a.user
                && st.users.len() < 16
                && !st.users.contains(u)
            {
                st.users.push(sanitize(u, 64));
            }
        }
        if !windowed {
            return;
        }
        let bf = &self.params.brute_force;
        let window = Duration::seconds(bf.window_secs as i64);
        // Insert in time order: merged streams may be slightly out of order.
        let pos = st.window.partition_point(|(wt, _)| *wt <= t);
        st.window.insert(pos, (t, a.count));
        st.in_window += a.count as u64;
        let newest = st.window.back().map(|(wt, _)| *wt).unwrap_or(t);
        while let Some((wt, c)) = st.window.front().copied() {
            if wt <= newest - window {
                st.window.pop_front();
                st.in_window -= c as u64;
            } else {
                break;
            }
        }
        if st.samples.len() < SAMPLES - 1 {
            st.samples.push(sanitize(&ev.raw, SAMPLE_CHARS));
            st.sample_refs.extend(line_ref(self.file.as_ref(), ev));
        }
        let backoff = (window * 2i32.pow(st.alerts.saturating_sub(1).min(7))).min(Duration::days(1));
        let due = st.last_alert.is_none_or(|l| t >= l + backoff);
        if st.in_window >= bf.failures as u64 && due {
            st.last_alert = Some(t);
            st.alerts += 1;
            let first = st.window.front().map(|(wt, _)| *wt).unwrap_or(t);
            let mut evidence = std::mem::take(&mut st.samples);
            evidence.push(sanitize(&ev.raw, SAMPLE_CHARS));
            let mut evidence_refs = std::mem::take(&mut st.sample_refs);
            evidence_refs.extend(line_ref(self.file.as_ref(), ev));
            let n = st.in_window;
            let severity = if st.users.iter().any(|u| u == "root") || n >= 4 * bf.failures as u64 {
                Severity::High
            } else {
                Severity::Medium
            };
            let what = match self.params.ssh.mode {
                SshMode::Normal => "failed logins",
                SshMode::Aggressive => "failed logins and pre-authentication probes",
            };
            findings.push(Finding {
                id: Finding::derive_id("ssh_brute_force", &ip.to_string(), t),
                rule: "ssh_brute_force".into(),
                title: format!("SSH brute force from {ip}: {n} {what} within {}s", bf.window_secs),
                severity,
                confidence: 0.9,
                src_ip: Some(ip.to_string()),
                users: st.users.clone(),
                host: sanitize(&ev.host, 255),
                first_seen: first,
                last_seen: t,
                event_count: n,
                techniques: vec!["T1110.001".into()],
                evidence,
                evidence_refs,
                entity: None,
                ..Default::default()
            });
        }
    }

    /// A successful login: suspicious after enough recent failures from the address;
    /// it ends the streak either way.
    fn success(&mut self, ip: IpAddr, a: &AuthEvent, ev: &Event, findings: &mut Vec<Finding>) {
        let t = ev.time;
        let saf = &self.params.success_after_failures;
        let Some(st) = self.state.addrs.get_mut(&ip) else {
            return;
        };
        let lookback = Duration::seconds(saf.lookback_secs as i64);
        let recent = st.streak_last.is_some_and(|l| t - l <= lookback && l <= t);
        if st.streak >= saf.min_failures as u64 && recent {
            let user = a.user.clone().unwrap_or_default();
            let (rule, service) = match a.service {
                Service::Ssh => ("ssh_success_after_failures".to_string(), String::new()),
                s => (format!("{}_success_after_failures", s.as_str()), format!(" to {}", s.as_str())),
            };
            let mut evidence = st.samples.clone();
            evidence.push(sanitize(&ev.raw, SAMPLE_CHARS));
            let mut evidence_refs = st.sample_refs.clone();
            evidence_refs.extend(line_ref(self.file.as_ref(), ev));
            findings.push(Finding {
                id: Finding::derive_id(&rule, &ip.to_string(), t),
                rule,
                title: format!(
                    "Credential compromise: {ip} logged in{service} as {} after {} failed attempts",
                    sanitize(&user, 64),
                    st.streak
                ),
                severity: Severity::High,
                confidence: 0.75,
                src_ip: Some(ip.to_string()),
                users: vec![sanitize(&user, 64)],
                host: sanitize(&ev.host, 255),
                first_seen: st.streak_first.unwrap_or(t),
                last_seen: t,
                event_count: st.streak + 1,
                techniques: vec!["T1110".into(), "T1078".into()],
                evidence,
                evidence_refs,
                entity: None,
                ..Default::default()
            });
        }
        st.streak = 0;
        st.streak_first = None;
        st.streak_last = None;
    }

    /// Forgets addresses with no failure within the longest horizon — swept every
    /// eighth of the horizon (event time), not after every batch — and, past
    /// `limits.addresses`, evicts the least recently seen down to 90 % of the cap (one
    /// sort per tenth of the cap: the cost per line stays flat).
    fn prune(&mut self) {
        let Some(newest) = self.state.head.newest else {
            return;
        };
        let horizon = self.horizon();
        let cap = self.params.limits.addresses.max(1);
        let due = self.next_sweep.is_none_or(|t| newest >= t);
        if !due && self.state.addrs.len() <= cap {
            return;
        }
        let removed = &mut self.removed;
        let dirty = &mut self.dirty;
        if due {
            self.next_sweep = Some(newest + (horizon / 8).max(Duration::seconds(1)));
            self.state.addrs.retain(|ip, st| {
                let keep = st.last_seen.is_some_and(|l| newest - l <= horizon);
                if !keep {
                    dirty.remove(ip);
                    removed.push(*ip);
                }
                keep
            });
        }
        if self.state.addrs.len() > cap {
            let keep = cap - cap / 10;
            let mut by_age: Vec<(Option<DateTime<Utc>>, IpAddr)> =
                self.state.addrs.iter().map(|(ip, st)| (st.last_seen, *ip)).collect();
            let cut = by_age.len() - keep;
            by_age.select_nth_unstable(cut - 1);
            for (_, ip) in &by_age[..cut] {
                self.state.addrs.remove(ip);
                dirty.remove(ip);
                removed.push(*ip);
            }
            self.evicted += cut as u64;
            tracing::debug!(evicted = cut, cap, "authentication detector: least recently seen addresses evicted");
        }
    }

    /// How long an address is remembered after its last failure.
    fn horizon(&self) -> Duration {
        let p = &self.params;
        Duration::seconds(p.brute_force.window_secs.max(p.success_after_failures.lookback_secs) as i64)
    }

    /// Addresses currently tracked (for memory accounting and tests).
    pub fn tracked(&self) -> usize {
        self.state.addrs.len()
    }
}

/// Where an event's line was read, when it came from a file.
fn line_ref(file: Option<&std::sync::Arc<str>>, ev: &Event) -> Option<crate::messages::EvidenceRef> {
    Some(crate::messages::EvidenceRef::new(ev.file.as_ref().or(file)?.clone(), ev.offset?, &ev.raw))
}

#[cfg(test)]
mod tests {
    use super::super::{BruteForceParams, SuccessAfterFailuresParams};
    use super::*;
    use crate::messages::AuthEvent;

    fn params() -> DetectionParams {
        DetectionParams {
            brute_force: BruteForceParams { failures: 5, window_secs: 600 },
            success_after_failures: SuccessAfterFailuresParams { min_failures: 3, lookback_secs: 86_400 },
            ..Default::default()
        }
    }

    fn ev(kind: AuthEventKind, ip: &str, secs: i64) -> Event {
        let time = DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        Event {
            time,
            host: "h".into(),
            program: "sshd".into(),
            auth: Some(Box::new(AuthEvent {
                kind,
                src_ip: ip.parse().ok(),
                src_name: None,
                service: crate::messages::Service::Ssh,
                user: Some("root".into()),
                method: None,
                count: 1,
                target_user: None,
                command: None,
            })),
            web: None,
            fields: None,
            raw: format!("line at {secs}"),
            message_at: 0,
            offset: None,
            file: None,
        }
    }

    fn fail(ip: &str, secs: i64) -> Event {
        ev(AuthEventKind::Failure, ip, secs)
    }

    #[test]
    fn evidence_lines_keep_where_they_were_read_across_batches() {
        let mut d = AuthDetector::new(params(), AuthDetectorState::default());
        let at = |secs: i64, off: u64| {
            let mut e = fail("203.0.113.9", secs);
            e.offset = Some(off);
            e
        };
        d.set_file(Some("/var/log/auth.log".into()));
        assert!(d.analyze(&[at(0, 0), at(1, 40)]).is_empty());
        d.set_file(Some("/var/log/auth.log".into()));
        let f = d.analyze(&[at(2, 80), at(3, 120), at(4, 160)]);
        assert_eq!(f.len(), 1);
        let offsets: Vec<u64> = f[0].evidence_refs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 40, 80, 160], "three samples (first batch included) and the last line");
        assert!(f[0].evidence_refs.iter().all(|r| &*r.file == "/var/log/auth.log" && r.sha256_hex().len() == 64));
    }

    #[test]
    fn five_failures_within_the_window_open_one_finding() {
        let mut d = AuthDetector::new(params(), Default::default());
        let evs: Vec<_> = (0..4).map(|i| fail("1.2.3.4", i * 100)).collect();
        assert!(d.analyze(&evs).is_empty());
        let f = d.analyze(&[fail("1.2.3.4", 450)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "ssh_brute_force");
        assert_eq!(f[0].event_count, 5);
        assert_eq!(f[0].src_ip.as_deref(), Some("1.2.3.4"));
        // More failures inside the same window do not open another finding.
        assert!(d.analyze(&[fail("1.2.3.4", 460), fail("1.2.3.4", 470)]).is_empty());
    }

    #[test]
    fn the_window_slides_on_log_time() {
        let mut d = AuthDetector::new(params(), Default::default());
        // Five failures spread over more than ten minutes never fill the window.
        let evs: Vec<_> = (0..5).map(|i| fail("1.2.3.4", i * 151)).collect();
        assert!(d.analyze(&evs).is_empty());
        // A sixth makes the last five fit in 600 s (151..=755 spans 604 s: still not).
        assert!(d.analyze(&[fail("1.2.3.4", 755)]).is_empty());
        assert_eq!(d.analyze(&[fail("1.2.3.4", 760)]).len(), 1);
    }

    #[test]
    fn addresses_are_counted_separately() {
        let mut d = AuthDetector::new(params(), Default::default());
        let evs: Vec<_> = (0..8).map(|i| fail(if i % 2 == 0 { "1.1.1.1" } else { "2.2.2.2" }, i)).collect();
        assert!(d.analyze(&evs).is_empty());
    }

    #[test]
    fn success_after_failures_is_high_even_when_slow() {
        let mut d = AuthDetector::new(params(), Default::default());
        let evs: Vec<_> = (0..3).map(|i| fail("9.9.9.9", i * 3600)).collect();
        assert!(d.analyze(&evs).is_empty());
        let f = d.analyze(&[ev(AuthEventKind::Success, "9.9.9.9", 3 * 3600)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "ssh_success_after_failures");
        assert_eq!(f[0].severity, Severity::High);
        // A success with no failures before it is not suspicious.
        assert!(d.analyze(&[ev(AuthEventKind::Success, "9.9.9.9", 3 * 3600 + 5)]).is_empty());
    }

    fn with_service(kind: AuthEventKind, service: Service, ip: &str, secs: i64) -> Event {
        let mut e = ev(kind, ip, secs);
        if let Some(a) = e.auth.as_mut() {
            a.service = service;
        }
        e
    }

    #[test]
    fn pre_auth_probes_count_only_in_aggressive_mode() {
        let probes: Vec<Event> = (0..6)
            .map(|i| {
                ev(
                    if i % 2 == 0 { AuthEventKind::PreauthClose } else { AuthEventKind::NoIdentification },
                    "10.0.0.5",
                    i,
                )
            })
            .collect();
        let mut normal = AuthDetector::new(params(), Default::default());
        assert!(normal.analyze(&probes).is_empty(), "a monitoring host's checks are not a brute force");
        assert_eq!(normal.tracked(), 0);
        let mut p = params();
        p.ssh.mode = SshMode::Aggressive;
        let mut aggressive = AuthDetector::new(p, Default::default());
        let f = aggressive.analyze(&probes);
        assert_eq!(f.len(), 1);
        assert!(f[0].title.contains("failed logins and pre-authentication probes"), "{}", f[0].title);
        // A rejected key of an existing account counts in neither.
        let keys: Vec<Event> = (0..6).map(|i| ev(AuthEventKind::KeyRejected, "192.0.2.9", i)).collect();
        assert!(aggressive.analyze(&keys).is_empty());
    }

    #[test]
    fn other_services_feed_the_compromise_streak_but_not_the_ssh_window() {
        let mut d = AuthDetector::new(params(), Default::default());
        let mail: Vec<Event> =
            (0..6).map(|i| with_service(AuthEventKind::Failure, Service::Mail, "198.51.100.48", i)).collect();
        assert!(d.analyze(&mail).is_empty(), "a mail brute force is the mail rule's, not ssh_brute_force");
        let f = d.analyze(&[with_service(AuthEventKind::Success, Service::Mail, "198.51.100.48", 10)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "mail_success_after_failures");
        assert_eq!(
            f[0].title,
            "Credential compromise: 198.51.100.48 logged in to mail as root after 6 failed attempts"
        );
        // Invalid users and refusals are failures too; an SSH success is named as such.
        let evs = [
            ev(AuthEventKind::InvalidUser, "198.51.100.49", 0),
            ev(AuthEventKind::Refused, "198.51.100.49", 1),
            ev(AuthEventKind::MaxAttempts, "198.51.100.49", 2),
            ev(AuthEventKind::Success, "198.51.100.49", 3),
        ];
        let f = d.analyze(&evs);
        assert_eq!((f.len(), f[0].rule.as_str()), (1, "ssh_success_after_failures"));
    }

    #[test]
    fn state_round_trips_and_gives_the_same_finding_id() {
        let mut a = AuthDetector::new(params(), Default::default());
        let evs: Vec<_> = (0..3).map(|i| fail("1.2.3.4", i)).collect();
        a.analyze(&evs);
        let saved: AuthDetectorState = serde_json::from_value(serde_json::to_value(&a.state).unwrap()).unwrap();
        let mut b = AuthDetector::new(params(), saved);
        let rest = [fail("1.2.3.4", 3), fail("1.2.3.4", 4)];
        let fa = a.analyze(&rest);
        let fb = b.analyze(&rest);
        assert_eq!(fa.len(), 1);
        assert_eq!(fa, fb);
    }

    #[test]
    fn idle_addresses_are_pruned() {
        let mut d = AuthDetector::new(params(), Default::default());
        d.analyze(&[fail("1.2.3.4", 0)]);
        assert_eq!(d.tracked(), 1);
        d.analyze(&[fail("5.6.7.8", 90_000)]);
        assert_eq!(d.tracked(), 1);
    }

    /// A spray of single failures from more addresses than the cap: the table stays
    /// within it by evicting the least recently seen, counted, and a brute forcer
    /// active in the middle of the spray is still found.
    #[test]
    fn a_spray_of_addresses_is_capped_and_the_active_attacker_still_found() {
        let mut p = params();
        p.limits.addresses = 1000;
        let mut d = AuthDetector::new(p, AuthDetectorState::default());
        let mut found = Vec::new();
        let mut evicted = 0;
        for batch in 0..50u32 {
            let mut evs: Vec<Event> =
                (0..100u32).map(|i| fail(&format!("2001:db8::{:x}", batch * 100 + i), batch as i64)).collect();
            evs.push(fail("198.51.100.9", batch as i64));
            found.extend(d.analyze(&evs));
            let delta = d.take_delta().unwrap();
            evicted += delta.evicted;
            assert!(delta.tracked <= 1000 && d.tracked() <= 1000, "batch {batch}: {}", d.tracked());
        }
        assert!(evicted >= 4000, "{evicted}");
        assert!(found.iter().any(|f| f.src_ip.as_deref() == Some("198.51.100.9")), "{found:?}");
        assert!(d.state.addrs.contains_key(&"198.51.100.9".parse().unwrap()), "the active one is kept");
        assert!(!d.state.addrs.contains_key(&"2001:db8::1".parse().unwrap()), "the oldest went first");
    }

    /// The default memory budget gives the detectors' default caps (a default start
    /// lowers nothing); a smaller one lowers every cap, never raises one.
    #[test]
    fn the_memory_budget_lowers_the_caps_and_the_default_lowers_nothing() {
        let limits = crate::tools::detection::StateLimits::default();
        assert_eq!(limits.within(&crate::config::MemoryShares::default()), limits);
        let small = crate::config::Config::parse("[storage]\nmemory_budget_mb = 192\n", "w").unwrap();
        let lowered = limits.within(&small.storage.memory_shares());
        assert_eq!((lowered.addresses, lowered.correlation_groups, lowered.campaigns), (3072, 3072, 3072));
        assert_eq!(lowered.network_keys, 20_971, "an eighth of 96 MiB at 600 bytes a pair");
        let big = crate::config::Config::parse("[storage]\nmemory_budget_mb = 65536\n", "w").unwrap();
        assert_eq!(limits.within(&big.storage.memory_shares()), limits);
    }

    /// The stored head carries the Sigma correlation windows (exported at each delta,
    /// not kept beside the engine): a detector built from it completes a correlation
    /// begun before, as after a restart.
    #[test]
    fn correlation_windows_survive_a_restart_through_the_stored_head() {
        let text = include_str!("../../../actors/threat-detection/rules/ssh_invalid_user_enumeration.yml");
        let files = vec![("enum.yml".to_string(), text.to_string())];
        let batch = |raw: Vec<String>| {
            let mut b = crate::ingest::BatchBuilder::new(crate::config::LogFormat::Auto, chrono::Utc::now());
            raw.into_iter().for_each(|l| b.line(l));
            std::sync::Arc::try_unwrap(b.take("auth", None, None).events).unwrap()
        };
        let lines = |users: &[&str], from: usize| {
            let raw = users.iter().enumerate();
            batch(
                raw.map(|(i, u)| {
                    format!("Nov 26 10:00:0{} h1 sshd[9]: Invalid user {u} from 203.0.113.9 port 4000", from + i)
                })
                .collect(),
            )
        };
        let params = DetectionParams::default();
        let rules = || Some(super::super::sigma::load(&files));
        let mut d = AuthDetector::with_rules(params.clone(), AuthDetectorState::default(), rules());
        assert!(d.analyze(&lines(&["alice", "bob", "carol"], 0)).is_empty());
        let delta = d.take_delta().unwrap();
        // Each group touched is a key of its own: the enumeration's group of 203.0.113.9.
        let groups: Vec<(String, serde_json::Value)> = delta
            .correlation
            .iter()
            .map(|(k, v)| (k.strip_prefix("/corr/").unwrap().to_string(), v.clone().expect("stored, not deleted")))
            .collect();
        assert_eq!(groups.len(), 1, "{:?}", delta.correlation);
        assert!(groups[0].0.contains("203.0.113.9"), "{groups:?}");
        assert!(d.state.head.sigma.groups.is_empty(), "not kept beside the engine");
        // Benign lines leave them as they were: nothing stored again.
        assert!(d.analyze(&batch(vec!["Nov 26 10:00:08 h1 cron[7]: (root) CMD (true)".into()])).is_empty());
        assert!(d.take_delta().unwrap().correlation.is_empty());
        let mut head: StateHead = serde_json::from_value(delta.head).unwrap();
        head.sigma.groups = groups;
        let restored = AuthDetectorState { head, ..Default::default() };
        let mut after = AuthDetector::with_rules(params, restored, rules());
        let found = after.analyze(&lines(&["dave", "erin"], 3));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].rule, "ssh_invalid_user_enumeration");
        assert_eq!(found[0].event_count, 5, "three users before the restart, two after");
        assert!(after.state.head.sigma.groups.is_empty());
    }
}
