//! Warden's own counting of the correlation rules whose shape it knows: `event_count`
//! and `value_count` over a sliding `timespan`, grouped by fields (`group-by`), with a
//! threshold condition — every shipped correlation. Rule sets with another shape
//! (temporal, numeric aggregates, tumbling or session windows, aliases, chained
//! correlations, `rsigma.*` options) are counted by rsigma's engine instead, whole.
//!
//! Why not rsigma's: its `value_count` rebuilds a hash set of the window's values at
//! every event, and its state can only be exported whole — the daemon stored every
//! group of every rule after each batch under attack. Here a group is one entry of a
//! [`Tracked`] table: the distinct values are counted as they come and go, and a batch
//! stores the groups it touched (`<agent>/analyze_logs/corr/<key>`), each alone.
//!
//! The semantics are rsigma's, step for step (`update_correlation`, sliding window, the
//! reference mode): a group's events are kept in arrival order; an event first drops
//! from the front those older than its time minus the timespan, then is added (a
//! `value_count` event only when every counted field has a value), the oldest go past
//! [`GROUP_ENTRIES`], and the condition is checked on the event count or the number of
//! distinct values. A group lives until the cap, as in rsigma: events arrive out of
//! order (several sources, clocks that step back), and an event older than a group's
//! newest still counts against what its own window holds; dropping groups on the time
//! of the newest event would also let one forged future timestamp clear every window.
//! What differs: at the cap the least recently seen tenth is evicted (counted on
//! `/metrics`; rsigma first drops what is outside the windows at the current event's
//! time, then the stalest to 90 %), and a contributing line is remembered only by
//! Warden's own reference (an event's `id` field is never taken for one).

use std::collections::VecDeque;
use std::sync::Arc;

use rsigma_eval::{CorrelationBody, EvaluationResult, Event as _, EventRef, EventValue, ResultBody, RuleHeader};
use rsigma_parser::{
    ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, SigmaCollection, WindowMode,
};
use serde::{Deserialize, Serialize};

use super::view::SigmaView;
use super::{CORRELATION_REFS, GROUP_ENTRIES};
use crate::tools::detection::tracked::{FastMap, Recency, StateKey, Tracked};

/// The correlation rules, their groups, and what was evicted since it was last asked.
pub(super) struct Tally {
    rules: Vec<Counted>,
    /// A detection rule's id → the correlations counting it, ascending (by its id or
    /// its name, as rsigma indexes them).
    by_detection: FastMap<String, Vec<usize>>,
    /// A rule reference (id or name) → the correlations naming it: for a detection whose
    /// id is not one of the collection's rules (rsigma's fallback).
    by_ref: FastMap<String, Vec<usize>>,
    groups: Tracked<GroupKey, Window>,
    /// Groups evicted at the cap since [`Tally::take_evicted`].
    evicted: u64,
}

/// One correlation rule, compiled.
struct Counted {
    /// Its stable name in stored keys: the id, else the name, else the title (rsigma's).
    ident: Arc<str>,
    header: RuleHeader,
    kind: CorrelationType,
    /// The fields a `value_count` counts the distinct values of.
    counted: Vec<String>,
    group_by: Vec<String>,
    timespan: u64,
    predicates: Vec<(ConditionOperator, f64)>,
}

impl Counted {
    fn holds(&self, value: f64) -> bool {
        self.predicates.iter().all(|(op, t)| match op {
            ConditionOperator::Lt => value < *t,
            ConditionOperator::Lte => value <= *t,
            ConditionOperator::Gt => value > *t,
            ConditionOperator::Gte => value >= *t,
            ConditionOperator::Eq => (value - *t).abs() < f64::EPSILON,
            ConditionOperator::Neq => (value - *t).abs() >= f64::EPSILON,
        })
    }
}

/// A group: its correlation (by [`Counted::ident`]) and the values of its `group-by`
/// fields (`None`: the event had none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    rule: Arc<str>,
    values: Box<[Option<Box<str>>]>,
}

/// Stored as JSON text: `["<rule>",["<value>",null]]`, whatever the values hold.
impl StateKey for GroupKey {
    fn encode(&self) -> String {
        serde_json::to_string(&(&*self.rule, &self.values)).unwrap_or_default()
    }
    fn decode(s: &str) -> Option<Self> {
        let (rule, values): (Box<str>, Box<[Option<Box<str>>]>) = serde_json::from_str(s).ok()?;
        Some(GroupKey { rule: rule.into(), values })
    }
}

/// A group's window: its events' times in arrival order and, for a `value_count`, each
/// one's value, with the distinct values counted; the references of its last events
/// (not stored: after a restart a correlation points at the lines read since).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "Stored")]
pub(super) struct Window {
    #[serde(rename = "t")]
    times: VecDeque<i64>,
    #[serde(rename = "v", default, skip_serializing_if = "VecDeque::is_empty")]
    values: VecDeque<Arc<str>>,
    #[serde(skip)]
    distinct: FastMap<Arc<str>, u32>,
    #[serde(skip)]
    refs: VecDeque<EventRef>,
}

#[derive(Deserialize)]
struct Stored {
    #[serde(rename = "t")]
    times: VecDeque<i64>,
    #[serde(rename = "v", default)]
    values: VecDeque<Arc<str>>,
}

impl TryFrom<Stored> for Window {
    type Error = &'static str;
    fn try_from(s: Stored) -> Result<Self, Self::Error> {
        if !s.values.is_empty() && s.values.len() != s.times.len() {
            return Err("a window's values and times differ in number");
        }
        let mut w = Window { times: s.times, values: VecDeque::new(), ..Window::default() };
        for v in s.values {
            w.count(v);
        }
        Ok(w)
    }
}

impl Recency for Window {
    fn recency(&self) -> f64 {
        self.times.back().map_or(f64::MIN, |t| *t as f64)
    }
}

impl Window {
    fn count(&mut self, v: Arc<str>) {
        *self.distinct.entry(v.clone()).or_default() += 1;
        self.values.push_back(v);
    }

    /// Drops the front event (and uncounts its value).
    fn pop(&mut self) {
        self.times.pop_front();
        if let Some(v) = self.values.pop_front()
            && let Some(n) = self.distinct.get_mut(&v)
        {
            *n -= 1;
            if *n == 0 {
                self.distinct.remove(&v);
            }
        }
    }

    /// rsigma's sliding eviction: from the front, while older than `cutoff`.
    fn evict(&mut self, cutoff: i64) {
        while self.times.front().is_some_and(|t| *t < cutoff) {
            self.pop();
        }
        while self.refs.front().is_some_and(|r| r.timestamp < cutoff) {
            self.refs.pop_front();
        }
    }
}

/// An event value as a group key's text (rsigma's `value_to_string`).
fn key_text(v: &EventValue) -> Option<Box<str>> {
    match v {
        EventValue::Str(s) => Some((**s).into()),
        EventValue::Int(n) => Some(n.to_string().into()),
        EventValue::Float(f) => Some(f.to_string().into()),
        EventValue::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

/// An event value as a counted value's text (rsigma's `value_to_string_for_count`).
fn count_text(v: &EventValue) -> Option<String> {
    match v {
        EventValue::Null => Some("null".into()),
        v => key_text(v).map(String::from),
    }
}

/// The value a `value_count` counts: its fields' texts joined by U+001F, `None` when
/// one is missing (rsigma's `composite_value_count_key`).
fn counted_value(view: &SigmaView<'_>, fields: &[String]) -> Option<Arc<str>> {
    let mut parts = Vec::with_capacity(fields.len());
    for f in fields {
        parts.push(count_text(&view.get_field(f)?)?);
    }
    Some(parts.join("\u{1f}").into())
}

/// Whether Warden counts this correlation itself (see the module's documentation).
fn supported(c: &CorrelationRule, detections: &FastMap<&str, ()>) -> bool {
    matches!(c.correlation_type, CorrelationType::EventCount | CorrelationType::ValueCount)
        && c.window == WindowMode::Sliding
        && c.gap.is_none()
        && c.aliases.is_empty()
        && !c.custom_attributes.keys().any(|k| k.starts_with("rsigma."))
        && matches!(c.condition, CorrelationCondition::Threshold { .. })
        && c.rules.iter().all(|r| detections.contains_key(r.as_str()))
}

impl Tally {
    /// The collection's correlations counted by Warden, when every one has a shape it
    /// knows and refers to detection rules only (else rsigma counts them all).
    pub(super) fn compile(c: &SigmaCollection, cap: usize) -> Option<Tally> {
        if c.correlations.is_empty() {
            return None;
        }
        let mut detections = FastMap::default();
        for r in &c.rules {
            detections.extend(r.id.as_deref().into_iter().chain(r.name.as_deref()).map(|k| (k, ())));
        }
        // A reference to a correlation (chaining) is not to a detection rule.
        for k in c.correlations.iter().flat_map(|k| k.id.iter().chain(k.name.iter())) {
            detections.remove(k.as_str());
        }
        if !c.correlations.iter().all(|k| supported(k, &detections)) {
            return None;
        }
        let rules: Vec<Counted> = c.correlations.iter().map(counted).collect();
        let mut by_ref: FastMap<String, Vec<usize>> = FastMap::default();
        for (i, k) in c.correlations.iter().enumerate() {
            for r in &k.rules {
                let v = by_ref.entry(r.clone()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        let mut by_detection = FastMap::default();
        for r in c.rules.iter().filter(|r| r.id.is_some()) {
            let mut v: Vec<usize> = [r.id.as_ref(), r.name.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(|k| by_ref.get(k).into_iter().flatten().copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            if !v.is_empty() {
                by_detection.insert(r.id.clone().unwrap_or_default(), v);
            }
        }
        let mut groups = Tracked::default();
        groups.cap = cap.max(16);
        Some(Tally { rules, by_detection, by_ref, groups, evicted: 0 })
    }

    /// Feeds one event's detections to the correlations counting them (in their order,
    /// each correlation ascending) and returns those whose condition holds now.
    pub(super) fn process(
        &mut self,
        view: &SigmaView<'_>,
        detections: &[EvaluationResult],
        time: i64,
    ) -> Vec<EvaluationResult> {
        let ts = time.clamp(0, i64::MAX / 2);
        let mut out = Vec::new();
        for det in detections {
            let Some(id) = det.header.rule_id.as_deref() else { continue };
            let Some(corrs) = self.by_detection.get(id).or_else(|| self.by_ref.get(id)) else { continue };
            for &i in corrs {
                let rule = &self.rules[i];
                if let Some(r) = update(rule, &mut self.groups, &mut self.evicted, view, ts) {
                    out.push(r);
                }
            }
        }
        out
    }

    /// The groups changed since the last call, as `(key, window)` (`None`: gone).
    pub(super) fn drain(&mut self, prefix: &str, out: &mut Vec<(String, Option<serde_json::Value>)>) {
        self.groups.drain(prefix, out);
    }

    /// Stops remembering changes (nothing stores the groups: a replay).
    pub(super) fn untracked(&mut self) {
        self.groups.untracked();
    }

    /// Groups held, and evicted at the cap since the last call.
    pub(super) fn take_evicted(&mut self) -> (usize, u64) {
        (self.groups.map.len(), std::mem::take(&mut self.evicted))
    }

    /// Restores one stored group (`key` as [`GroupKey::encode`] wrote it); a group of a
    /// correlation no longer loaded is dropped (and deleted with the next changes).
    pub(super) fn load(&mut self, key: &str, value: serde_json::Value) -> Result<(), String> {
        let k = GroupKey::decode(key).ok_or_else(|| format!("not a group key: {key:?}"))?;
        let w: Window = serde_json::from_value(value).map_err(|e| format!("group {key:?}: {e}"))?;
        let Some(rule) = self.rules.iter().find(|r| r.ident == k.rule) else {
            self.groups.insert(k.clone(), w);
            self.groups.remove(&k);
            return Ok(());
        };
        if k.values.len() != rule.group_by.len() {
            return Err(format!("group {key:?}: {} values for {} fields", k.values.len(), rule.group_by.len()));
        }
        self.groups.map.insert(GroupKey { rule: rule.ident.clone(), values: k.values }, w);
        Ok(())
    }

    /// Restores the windows of a snapshot rsigma's engine exported (what Warden stored
    /// before it counted them itself); each is stored again as a group of its own.
    pub(super) fn import(&mut self, snap: rsigma_eval::CorrelationSnapshot) {
        for (ident, groups) in snap.windows {
            let Some(rule) = self.rules.iter().find(|r| *r.ident == *ident) else { continue };
            for (gk, state) in groups {
                let values: Box<[Option<Box<str>>]> = gk.0.into_iter().map(|v| v.map(Into::into)).collect();
                if values.len() != rule.group_by.len() {
                    continue;
                }
                let mut w = Window::default();
                match state {
                    rsigma_eval::WindowState::EventCount { timestamps } => w.times = timestamps,
                    rsigma_eval::WindowState::ValueCount { entries } => {
                        for (t, v) in entries {
                            w.times.push_back(t);
                            w.count(v.into());
                        }
                    }
                    _ => continue,
                }
                self.groups.insert(GroupKey { rule: rule.ident.clone(), values }, w);
            }
        }
    }
}

fn counted(c: &CorrelationRule) -> Counted {
    let (predicates, counted) = match &c.condition {
        CorrelationCondition::Threshold { predicates, field, .. } => (
            predicates.iter().map(|(op, n)| (*op, *n as f64)).collect(),
            if c.correlation_type == CorrelationType::ValueCount { field.clone().unwrap_or_default() } else { vec![] },
        ),
        CorrelationCondition::Extended(_) => (Vec::new(), Vec::new()),
    };
    let ident = c.id.clone().or_else(|| c.name.clone()).unwrap_or_else(|| c.title.clone());
    Counted {
        ident: ident.into(),
        header: RuleHeader {
            rule_title: c.title.clone(),
            rule_id: c.id.clone(),
            level: c.level,
            tags: c.tags.clone(),
            // Warden reads none (and a rule with `rsigma.*` ones is rsigma's).
            custom_attributes: Arc::default(),
            enrichments: None,
        },
        kind: c.correlation_type,
        counted,
        group_by: c.group_by.clone(),
        timespan: c.timespan.seconds,
        predicates,
    }
}

/// One correlation's step for one event (rsigma's `update_correlation`, sliding window,
/// references kept): the result when its condition holds.
fn update(
    rule: &Counted,
    groups: &mut Tracked<GroupKey, Window>,
    evicted: &mut u64,
    view: &SigmaView<'_>,
    ts: i64,
) -> Option<EvaluationResult> {
    let values = rule.group_by.iter().map(|f| view.get_field(f).as_ref().and_then(key_text)).collect();
    let key = GroupKey { rule: rule.ident.clone(), values };
    let (w, _) = groups.entry(&key, evicted, |_, _| {})?;
    let cutoff = ts - rule.timespan.min(i64::MAX as u64 / 4) as i64;
    w.evict(cutoff);
    let value_count = rule.kind == CorrelationType::ValueCount;
    if !value_count {
        w.times.push_back(ts);
    } else if let Some(v) = counted_value(view, &rule.counted) {
        w.times.push_back(ts);
        w.count(v);
    }
    while w.times.len() > GROUP_ENTRIES {
        w.pop();
    }
    if w.refs.len() >= CORRELATION_REFS {
        w.refs.pop_front();
    }
    w.refs.push_back(EventRef { timestamp: ts, id: view.reference().map(String::from) });
    let count = if value_count { w.distinct.len() } else { w.times.len() } as f64;
    if !rule.holds(count) {
        return None;
    }
    let group_key = rule
        .group_by
        .iter()
        .zip(key.values.iter())
        .filter_map(|(f, v)| Some((f.clone(), v.as_deref()?.to_string())))
        .collect();
    Some(EvaluationResult {
        header: rule.header.clone(),
        body: ResultBody::Correlation(CorrelationBody {
            correlation_type: rule.kind,
            group_key,
            aggregated_value: count,
            timespan_secs: rule.timespan,
            events: None,
            event_refs: Some(w.refs.iter().cloned().collect()),
        }),
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::{RuleSet, SigmaState, load, load_with};
    use crate::messages::{Event, Finding};

    /// Every shipped rule file.
    fn shipped() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/threat-detection/rules");
        let files = super::super::rule_files(&dir).unwrap();
        files.iter().map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap())).collect()
    }

    /// rsigma's engine counting the same rules.
    fn by_rsigma(files: &[(String, String)]) -> RuleSet {
        let mut set = load(files);
        set.tally = None;
        set
    }

    /// Lines parsed as a tailed file's, each at its offset (so correlations keep
    /// references to them).
    fn events(lines: &[String]) -> Vec<Event> {
        let mut b =
            crate::ingest::BatchBuilder::new(crate::config::LogFormat::Auto, "2026-11-26T12:00:00Z".parse().unwrap());
        for (i, l) in lines.iter().enumerate() {
            b.line_at(l.clone(), 100 * i as u64);
        }
        std::sync::Arc::try_unwrap(b.take("auth", None, None).events).unwrap()
    }

    fn run(set: &mut RuleSet, evs: &[Event], st: &mut SigmaState) -> Vec<Finding> {
        let w = Duration::seconds(600);
        evs.iter().flat_map(|ev| set.evaluate(ev, Some("/var/log/auth.log"), st, w)).collect()
    }

    /// A deterministic mix of sshd, PAM and web failures from a dozen addresses against
    /// fifteen accounts, time mostly going forward with steps back.
    fn traffic(n: usize) -> Vec<String> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut t: i64 = 10 * 3600;
        (0..n)
            .map(|_| {
                // Steps of 5 s: events exactly one timespan apart are common.
                t += 5 * next(5) as i64 - if next(10) == 0 { 60 } else { 0 };
                let (h, m, s) = (t / 3600 % 24, t / 60 % 60, t % 60);
                let ip = format!("203.0.113.{}", next(12) + 1);
                let user = format!("user{}", next(15));
                match next(6) {
                    0 => format!("Nov 26 {h:02}:{m:02}:{s:02} h1 sshd[9]: Invalid user {user} from {ip} port 4000"),
                    1 => format!(
                        "Nov 26 {h:02}:{m:02}:{s:02} h1 sshd[9]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
                    ),
                    2 => format!(
                        "{ip} - - [26/Nov/2026:{h:02}:{m:02}:{s:02} +0000] \"GET /missing{} HTTP/1.1\" 404 12 \"-\" \"curl/8\"",
                        next(1000)
                    ),
                    3 => format!("Nov 26 {h:02}:{m:02}:{s:02} h1 sshd[9]: Connection closed by {ip} port 4000 [preauth]"),
                    _ => format!(
                        "Nov 26 {h:02}:{m:02}:{s:02} h1 sshd[9]: Failed password for {user} from {ip} port 4000 ssh2"
                    ),
                }
            })
            .collect()
    }

    /// Warden's counting gives what rsigma's gives, finding for finding (titles, counts,
    /// first times, the lines pointed at), over the shipped rules and hostile timing.
    #[test]
    fn counting_finds_what_rsigmas_engine_finds() {
        let files = shipped();
        let mut ours = load(&files);
        assert!(ours.tally.is_some(), "every shipped correlation is one Warden counts");
        let mut theirs = by_rsigma(&files);
        let evs = events(&traffic(4000));
        let a = run(&mut ours, &evs, &mut SigmaState::default());
        let b = run(&mut theirs, &evs, &mut SigmaState::default());
        let rules: std::collections::BTreeSet<&str> =
            a.iter().filter(|f| f.event_count > 1).map(|f| f.rule.as_str()).collect();
        assert!(rules.len() >= 3, "several correlations fired: {rules:?}");
        assert!(a.iter().any(|f| f.evidence_refs.len() == super::CORRELATION_REFS), "references kept");
        assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
    }

    /// Result by result, at every event: the same correlations fire with the same
    /// groups, counts and references as in rsigma's engine.
    #[test]
    fn every_count_is_rsigmas() {
        let files = shipped();
        let (mut ours, mut theirs) = (load(&files), by_rsigma(&files));
        let mut fired = 0;
        for ev in &events(&traffic(4000)) {
            let view = super::SigmaView::new(ev, Some("/var/log/auth.log"));
            let Some(detections) = ours.detections(ev, &view) else { continue };
            let ts = ev.time.timestamp();
            let a = ours.tally.as_mut().unwrap().process(&view, &detections, ts);
            let b: Vec<_> = theirs
                .engine
                .process_with_detections(&view, detections, ts)
                .into_iter()
                .filter(|r| r.is_correlation())
                .collect();
            assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap(), "{}", ev.raw);
            fired += a.len();
        }
        assert!(fired > 500, "{fired} results");
    }

    /// A batch stores the groups it touched, one key each; a restart from them counts on
    /// as if there had been none.
    #[test]
    fn groups_are_stored_one_by_one_and_resume() {
        let files = shipped();
        let evs = events(&traffic(3000));
        let (first, rest) = evs.split_at(1500);
        let whole = run(&mut load(&files), &evs, &mut SigmaState::default());
        let mut before = load(&files);
        let mut st = SigmaState::default();
        let mut found = run(&mut before, first, &mut st);
        let changes = before.correlation_changes();
        assert!(changes.iter().all(|(k, _)| k.starts_with("/corr/")), "{changes:?}");
        let held = before.groups().unwrap().0;
        let stored = changes.iter().filter(|(_, v)| v.is_some()).count();
        assert_eq!(stored, held, "every group held, once");
        assert!(before.correlation_changes().is_empty(), "nothing changed since");
        st.groups = changes.into_iter().filter_map(|(k, v)| Some((k["/corr/".len()..].to_string(), v?))).collect();
        let mut after = load(&files);
        after.restore(&st);
        st.groups.clear();
        found.extend(run(&mut after, rest, &mut st));
        // References are not stored: the first findings after the restart point at fewer
        // lines. Everything else is the same.
        let strip =
            |v: &[Finding]| v.iter().map(|f| Finding { evidence_refs: Vec::new(), ..f.clone() }).collect::<Vec<_>>();
        assert_eq!(serde_json::to_value(strip(&found)).unwrap(), serde_json::to_value(strip(&whole)).unwrap());
    }

    /// At the cap the least recently seen groups go, counted; what rsigma stored before
    /// is read, stored again as groups and its key deleted.
    #[test]
    fn groups_are_capped_and_rsigmas_snapshot_is_converted() {
        let files = shipped();
        let flood: Vec<String> = (0..40)
            .map(|i| format!("Nov 26 10:00:{i:02} h1 sshd[9]: Invalid user u{i} from 198.51.100.{i} port 4000"))
            .collect();
        let mut capped = load_with(&files, 16);
        run(&mut capped, &events(&flood), &mut SigmaState::default());
        let (held, evicted) = capped.groups().unwrap();
        assert!(held <= 16 && evicted >= 40, "{held} held, {evicted} evicted");
        assert_eq!(capped.groups().unwrap().1, 0, "counted once");

        let users = |from: usize, to: usize| -> Vec<String> {
            (from..to)
                .map(|i| format!("Nov 26 10:01:0{i} h1 sshd[9]: Invalid user n{i} from 203.0.113.9 port 4000"))
                .collect()
        };
        let mut old = by_rsigma(&files);
        assert!(run(&mut old, &events(&users(0, 3)), &mut SigmaState::default()).is_empty());
        let st = SigmaState { correlation: old.snapshot(), ..SigmaState::default() };
        let mut now = load(&files);
        now.restore(&st);
        let found = run(&mut now, &events(&users(3, 5)), &mut SigmaState::default());
        let rules: Vec<(&str, u64)> = found.iter().map(|f| (f.rule.as_str(), f.event_count)).collect();
        assert_eq!(rules, [("ssh_password_spraying", 5), ("ssh_invalid_user_enumeration", 5)]);
        let changes = now.correlation_changes();
        assert!(changes.contains(&("/correlation".to_string(), None)), "{changes:?}");
        assert!(changes.iter().any(|(k, v)| k.starts_with("/corr/") && k.contains("203.0.113.9") && v.is_some()));
    }

    /// A rule set with a correlation of another shape is counted by rsigma, whole.
    #[test]
    fn other_shapes_are_rsigmas() {
        let temporal = "title: Both\nname: both\ncorrelation:\n  type: temporal\n  rules:\n    - a\n    - b\n  group-by:\n    - src_ip\n  timespan: 5m\nlevel: high\n";
        let rule = |n: &str| {
            format!(
                "title: {n}\nname: {n}\nid: 5d6a5c1e-1111-4c3b-9a8e-00000000000{}\nlogsource:\n  product: linux\ndetection:\n  k:\n    - '{n}-word'\n  condition: k\nlevel: low\n",
                n.len()
            )
        };
        let files = vec![
            ("a.yml".to_string(), rule("a")),
            ("b.yml".to_string(), rule("bb")),
            ("t.yml".to_string(), temporal.replace("- b\n", "- bb\n")),
        ];
        let set = load(&files);
        assert_eq!(set.report.correlation_rules, 1, "{:?}", set.report.errors);
        assert!(set.tally.is_none());
        assert!(load(&shipped()).tally.is_some());
    }
}
