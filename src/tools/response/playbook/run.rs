//! The playbook interpreter: a pure state machine over an incident's run.
//!
//! Nothing here calls a tool, reads the clock or touches storage: time comes in as
//! `now`, what other tools produced for a step (evidence, a report) comes in as
//! [`Gathered`], and everything a transition asks for comes back as data — envelopes to
//! route ([`Request`]), a notification text, evidence items. Incident response turns
//! that into effects and commits them with the step's acknowledgement.
//!
//! A run is `Running` (its `next` step is due), `Waiting` (for an operator at a gate),
//! `Done` or `Aborted`. Each step's key is derived from the incident, the playbook and
//! the step, so a step decided again after a crash asks for the same envelopes.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{Condition, OnFailure, Playbook, Selector, Step, StepKind};
use crate::messages::{
    ContainmentRequest, EvidenceItem, Handoff, Incident, Payload, PlaybookRun, PlaybookStepRef, RunStatus, StepRecord,
};
use crate::tools::response::triage::{Assets, Criticality};

/// How long an approval step waits when its playbook says nothing.
const DEFAULT_GATE_SECS: u64 = 3600;

/// An envelope a transition asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub payload: Payload,
    /// Its id when it must be the step's key (a containment or handoff asked for again
    /// after a crash is the same envelope); `None`: derived from the cause.
    pub id: Option<Uuid>,
    /// Which of the cause's envelopes it is (for a derived id).
    pub n: u32,
}

/// What starting a playbook did to the incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// A run started: its first step is to be routed.
    Started { playbook: String, first: Box<Request> },
    /// A run of this playbook exists already (or one that can no longer be replaced).
    Running,
    /// No playbook applies, and none ran before.
    None,
}

/// Starts `pb` on the incident. A run of another playbook still going is superseded
/// (aborted and kept in `earlier_playbooks`): the incident turned out to be something
/// else, say a brute force that succeeded.
pub fn begin(inc: &mut Incident, pb: Option<&Playbook>, now: DateTime<Utc>) -> Begin {
    if let (Some(pb), Some(run)) = (pb, inc.playbook.as_ref())
        && run.playbook != pb.name
        && let Some(mut old) = inc.playbook.take()
    {
        if matches!(old.status, RunStatus::Running | RunStatus::Waiting) {
            old.status = RunStatus::Aborted;
            old.gate = None;
            inc.notes.push(format!("playbook `{}` superseded by `{}` (now {})", old.playbook, pb.name, inc.kind));
        }
        inc.earlier_playbooks.push(old);
    }
    match (inc.playbook.is_some(), pb) {
        (true, _) => Begin::Running,
        (false, None) => Begin::None,
        (false, Some(pb)) => {
            inc.playbook = Some(PlaybookRun {
                playbook: pb.name.clone(),
                status: RunStatus::Running,
                next: 0,
                steps: Vec::new(),
                gate: None,
                gate_deadline: None,
                started_at: now,
            });
            inc.notes.push(format!("playbook `{}` started", pb.name));
            let first = Request {
                payload: Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: 0 }),
                id: None,
                n: 1,
            };
            Begin::Started { playbook: pb.name.clone(), first: Box::new(first) }
        }
    }
}

/// Where a step stands before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Due<'a> {
    /// Not the run's next step, or the run is not running: done before, or waiting.
    Stale,
    /// The run's playbook is no longer defined: the run is to be aborted.
    Gone,
    /// Past the last step: the run is done.
    Finished,
    /// The step to decide; `skip` when its condition does not hold.
    Step { step: &'a Step, key: Uuid, skip: bool },
}

/// The step `index` of the incident's run, if it is due.
pub fn due<'a>(inc: &Incident, playbooks: &'a [Playbook], assets: &Assets, index: usize) -> Due<'a> {
    let Some(run) = inc.playbook.as_ref() else { return Due::Stale };
    if run.status != RunStatus::Running || run.next != index {
        return Due::Stale;
    }
    let Some(pb) = playbooks.iter().find(|p| p.name == run.playbook) else { return Due::Gone };
    let Some(step) = pb.steps.get(index) else { return Due::Finished };
    let key = Uuid::new_v5(&inc.id, format!("playbook/{}/{}", pb.name, step.id).as_bytes());
    let crit = asset_criticality(inc, assets);
    // A condition that does not parse (lint reports it) never lets its step run.
    let skip = step.when.as_deref().is_some_and(|w| Condition::parse(w).map(|c| !c.holds(inc, crit)).unwrap_or(true));
    Due::Step { step, key, skip }
}

/// The criticality of the asset triage scored the incident against.
fn asset_criticality(inc: &Incident, assets: &Assets) -> Criticality {
    inc.triage
        .as_ref()
        .and_then(|t| t.asset.as_ref())
        .and_then(|a| assets.assets.iter().find(|x| &x.name == a))
        .map(|a| a.criticality)
        .unwrap_or(assets.default.criticality)
}

/// What other tools produced for a step before it is decided.
#[derive(Debug, Default)]
pub enum Gathered {
    #[default]
    Nothing,
    /// `collect_evidence` ran: what it stored, and what it could not.
    Evidence { items: Vec<EvidenceItem>, problems: Vec<String> },
    /// `collect_evidence` failed as a whole (its outcome's summary).
    EvidenceFailed(String),
    /// `generate_report` rendered the technical report (Markdown).
    Report(String),
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `done`, `skipped`, `requested`, `waiting`, `failed`, `unavailable`.
    pub outcome: &'static str,
    pub detail: String,
    /// The run goes on to the next step (else it waits at a gate).
    pub advance: bool,
    pub failed: bool,
    /// What the step asks for (a containment, a handoff), under the step's key.
    pub request: Option<Request>,
    /// Evidence the step stored.
    pub evidence: Vec<EvidenceItem>,
}

impl Decision {
    fn new(outcome: &'static str, detail: String, advance: bool, failed: bool) -> Decision {
        Decision { outcome, detail, advance, failed, request: None, evidence: Vec::new() }
    }
}

/// Decides a due step of `pb` on the incident, given what was gathered for it; `from`
/// is the agent running the playbook (a handoff's sender).
pub fn decide(
    inc: &Incident,
    pb: &Playbook,
    step: &Step,
    key: Uuid,
    skip: bool,
    gathered: Gathered,
    from: &str,
) -> Decision {
    if skip {
        let when = step.when.clone().unwrap_or_default();
        return Decision::new("skipped", format!("condition `{when}` does not hold"), true, false);
    }
    match step.kind {
        StepKind::Contain => match (step.action, target(inc, step.target)) {
            (Some(action), Some(target)) => {
                let detail = format!("{action} {}", crate::text::sanitize(&target, 128));
                let payload = Payload::Containment(ContainmentRequest {
                    incident_id: inc.id,
                    action,
                    target,
                    reason: format!("playbook {} step {}", pb.name, step.id),
                    requested_by: None,
                });
                Decision {
                    request: Some(Request { payload, id: Some(key), n: 1 }),
                    ..Decision::new("requested", detail, true, false)
                }
            }
            // A client known only by a host name: names are never resolved (an attacker
            // controls its own reverse DNS), so there is nothing to act on — said so.
            _ if let Some(name) = inc.entities.iter().find_map(|e| e.strip_prefix("client:")) => Decision::new(
                "skipped",
                format!(
                    "the client is known only by the name {}, never resolved: nothing to act on",
                    crate::text::sanitize(name, 128)
                ),
                true,
                false,
            ),
            // A destination known only by name, reached through a web proxy: an address
            // block would hit the proxy (every client cut off) — said so.
            _ if step.target == Some(Selector::AttackerIp)
                && let Some(name) = inc.entities.iter().find_map(|e| e.strip_prefix("domain:")) =>
            {
                Decision::new(
                    "skipped",
                    format!(
                        "the destination is the name {}, with no address of its own to block (reached through a proxy, on an address that serves other names, or never resolved): block the name at the proxy or the resolver",
                        crate::text::sanitize(name, 128)
                    ),
                    true,
                    false,
                )
            }
            _ => Decision::new("failed", "no target for this step in the incident".into(), true, true),
        },
        StepKind::Approval => Decision::new("waiting", format!("approve with `warden approve {key}`"), false, false),
        StepKind::Notify => {
            let msg = step
                .message
                .clone()
                .unwrap_or_default()
                .replace("{title}", &inc.title)
                .replace("{type}", &inc.kind)
                .replace("{severity}", &inc.severity.to_string())
                .replace("{priority}", &format!("{:?}", inc.priority))
                .replace("{containment}", &containment(inc));
            Decision::new("done", crate::text::sanitize(&msg, 1024), true, false)
        }
        StepKind::Handoff => {
            let to = step.to.clone().unwrap_or_default();
            let payload = Payload::Handoff(Handoff {
                from: from.to_string(),
                to: to.clone(),
                incident_id: Some(inc.id),
                context: serde_json::json!({ "playbook": pb.name, "step": step.id, "type": inc.kind,
                    "severity": inc.severity, "title": inc.title, "entities": inc.entities,
                    "hosts": inc.findings.iter().map(|f| f.host.as_str()).filter(|h| !h.is_empty())
                        .collect::<std::collections::BTreeSet<_>>(),
                    "cves": inc.findings.iter().flat_map(|f| f.cves.iter().map(String::as_str))
                        .collect::<std::collections::BTreeSet<_>>() }),
            });
            let request = Some(Request { payload, id: Some(key), n: 1 });
            Decision { request, ..Decision::new("done", format!("handed over to {to}"), true, false) }
        }
        StepKind::Report => match gathered {
            Gathered::Report(md) => {
                use sha2::Digest;
                let digest = format!("{:x}", sha2::Sha256::digest(md.as_bytes()));
                let detail = format!(
                    "technical report generated ({} bytes, sha256 {digest}); `warden report {}` renders it",
                    md.len(),
                    inc.id
                );
                Decision::new("done", detail, true, false)
            }
            _ => unavailable(step.kind),
        },
        StepKind::CollectEvidence => match gathered {
            Gathered::Evidence { items, problems } => {
                let not = if problems.is_empty() {
                    String::new()
                } else {
                    format!("; not collected: {}", problems.join("; "))
                };
                let failed = items.is_empty();
                let detail = format!("{} item(s) stored{not}", items.len());
                Decision {
                    evidence: items,
                    ..Decision::new(if failed { "failed" } else { "done" }, detail, true, failed)
                }
            }
            Gathered::EvidenceFailed(summary) => Decision::new("failed", summary, true, true),
            _ => unavailable(step.kind),
        },
    }
}

fn unavailable(kind: StepKind) -> Decision {
    Decision::new(
        "unavailable",
        format!("{kind:?} is not available in this build of warden").to_lowercase(),
        true,
        true,
    )
}

/// The incident's entity a containment step acts on.
fn target(inc: &Incident, selector: Option<Selector>) -> Option<String> {
    match selector? {
        Selector::AttackerIp => {
            inc.entities.iter().find_map(|e| e.parse::<std::net::IpAddr>().ok()).map(|ip| ip.to_string())
        }
        Selector::CompromisedAccount => inc
            .findings
            .iter()
            .filter(|f| {
                f.rule.contains("success_after_failures") || f.techniques.iter().any(|t| t.starts_with("T1078"))
            })
            .find_map(|f| f.users.first().cloned()),
        Selector::LocalHost => Some("local".to_string()),
    }
}

/// What recording a step did to the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub status: RunStatus,
    /// The next step to route, if the run goes on.
    pub next: Option<Request>,
    /// A notification to send: the step's message, or that the run waits for approval.
    pub notify: Option<String>,
}

/// Records a decided step on the incident's run: its evidence, the step record, and
/// where the run goes — on to the next step, to a gate, done, or aborted (a failed step
/// whose playbook says `abort`).
#[allow(clippy::too_many_arguments)]
fn record(
    inc: &mut Incident,
    pb: &Playbook,
    index: usize,
    step: &Step,
    key: Uuid,
    d: &Decision,
    skip: bool,
    now: DateTime<Utc>,
) -> Recorded {
    for item in &d.evidence {
        if !inc.evidence.iter().any(|e| e.sha256 == item.sha256) {
            inc.evidence.push(item.clone());
        }
    }
    let abort = d.failed && step.on_failure == OnFailure::Abort;
    let mut notes = Vec::new();
    let mut next = None;
    let Some(run) = inc.playbook.as_mut() else {
        return Recorded { status: RunStatus::Aborted, next, notify: None };
    };
    run.steps.push(StepRecord {
        id: step.id.clone(),
        key,
        outcome: d.outcome.into(),
        detail: d.detail.clone(),
        at: now,
    });
    if abort {
        run.status = RunStatus::Aborted;
    } else if !d.advance {
        run.status = RunStatus::Waiting;
        run.gate = Some(key);
        run.gate_deadline = Some(now + Duration::seconds(step.timeout_secs.unwrap_or(DEFAULT_GATE_SECS) as i64));
        notes.push(format!("playbook `{}` waits for approval of step `{}`: {}", pb.name, step.id, d.detail));
    } else {
        run.next = index + 1;
        if run.next < pb.steps.len() {
            let payload = Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: run.next });
            next = Some(Request { payload, id: None, n: 0 });
        } else {
            run.status = RunStatus::Done;
        }
    }
    let status = run.status;
    let notified = step.kind == StepKind::Notify && !skip;
    let notify = if notified {
        notes.push(format!("notification: {}", d.detail));
        Some(d.detail.clone())
    } else if !d.advance && !abort {
        Some(format!("playbook {} waits for approval of step {}: {}", pb.name, step.id, d.detail))
    } else {
        None
    };
    inc.notes.extend(notes);
    Recorded { status, next, notify }
}

/// One step of the incident's run, done: what it decided and how the run stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Stepped {
    /// The step was not due: nothing changed.
    Stale,
    /// The run ended without a step (its playbook is gone, or it is past its last step).
    Ended,
    Decided(Box<StepDone>),
}

/// A step decided and recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDone {
    pub step: String,
    pub key: Uuid,
    pub playbook: String,
    pub decision: Decision,
    pub recorded: Recorded,
}

/// Runs step `index` of the incident's run: decides it (with what was gathered for it)
/// and records it on the run.
pub fn step(
    inc: &mut Incident,
    playbooks: &[Playbook],
    assets: &Assets,
    index: usize,
    gathered: Gathered,
    from: &str,
    now: DateTime<Utc>,
) -> Stepped {
    let d = due(inc, playbooks, assets, index);
    let (step, key, skip) = match d {
        Due::Stale => return Stepped::Stale,
        Due::Gone | Due::Finished => {
            end(inc, &d);
            return Stepped::Ended;
        }
        Due::Step { step, key, skip } => (step, key, skip),
    };
    let Some(pb) = inc.playbook.as_ref().and_then(|r| playbooks.iter().find(|p| p.name == r.playbook)) else {
        return Stepped::Stale;
    };
    let decision = decide(inc, pb, step, key, skip, gathered, from);
    let recorded = record(inc, pb, index, step, key, &decision, skip, now);
    Stepped::Decided(Box::new(StepDone { step: step.id.clone(), key, playbook: pb.name.clone(), decision, recorded }))
}

/// Ends a run that cannot go on (its playbook is gone, or it is past its last step).
fn end(inc: &mut Incident, due: &Due) {
    let Some(run) = inc.playbook.as_mut() else { return };
    match due {
        Due::Gone => {
            run.status = RunStatus::Aborted;
            let note = format!("playbook `{}` is no longer defined: run aborted", run.playbook);
            inc.notes.push(note);
        }
        Due::Finished => run.status = RunStatus::Done,
        Due::Stale | Due::Step { .. } => {}
    }
}

/// What answering a gate did.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    pub key: Uuid,
    pub step: String,
    pub playbook: String,
    /// The next step to route (under an id derived from the gate's key).
    pub next: Option<Request>,
}

/// Ends a run's wait at its gate: approved (or timed out with `continue`), the run goes
/// on; otherwise it is aborted. `outcome` (`approved`, `rejected`, `timed_out`) and who
/// decided are recorded as a step.
pub fn resume(
    inc: &mut Incident,
    steps: usize,
    outcome: &str,
    by: &str,
    go_on: bool,
    now: DateTime<Utc>,
) -> Option<Resumed> {
    let incident_id = inc.id;
    let run = inc.playbook.as_mut()?;
    let key = run.gate.take().unwrap_or_default();
    run.gate_deadline = None;
    let step = run.steps.last().map(|s| s.id.clone()).unwrap_or_default();
    run.steps.push(StepRecord { id: step.clone(), key, outcome: outcome.into(), detail: format!("by {by}"), at: now });
    let mut next = None;
    if go_on {
        run.status = RunStatus::Running;
        run.next += 1;
        if run.next < steps {
            let payload = Payload::PlaybookStep(PlaybookStepRef { incident_id, step: run.next });
            next = Some(Request { payload, id: Some(Uuid::new_v5(&key, b"next")), n: 0 });
        } else {
            run.status = RunStatus::Done;
        }
    } else {
        run.status = RunStatus::Aborted;
    }
    let playbook = run.playbook.clone();
    inc.notes.push(format!("playbook `{playbook}` step `{step}` {outcome} by {by}"));
    Some(Resumed { key, step, playbook, next })
}

/// The gate a decision answers: the incident whose run waits at `gate`.
pub fn waits_at(inc: &Incident, gate: Uuid) -> bool {
    inc.playbook.as_ref().is_some_and(|r| r.gate == Some(gate) && r.status == RunStatus::Waiting)
}

/// A run waiting past its gate's deadline: whether it goes on (the step's `on_failure`
/// is `continue`, or the step is gone) — `None` when it is not overdue.
pub fn overdue(inc: &Incident, playbooks: &[Playbook], now: DateTime<Utc>) -> Option<bool> {
    let r = inc.playbook.as_ref()?;
    (r.status == RunStatus::Waiting && r.gate_deadline.is_some_and(|d| d <= now)).then(|| {
        playbooks
            .iter()
            .find(|p| p.name == r.playbook)
            .and_then(|p| p.steps.get(r.next))
            .is_none_or(|s| s.on_failure == OnFailure::Continue)
    })
}

/// The number of steps of the run's playbook (0 when it is gone).
pub fn steps_of(inc: &Incident, playbooks: &[Playbook]) -> usize {
    inc.playbook
        .as_ref()
        .and_then(|r| playbooks.iter().find(|p| p.name == r.playbook))
        .map(|p| p.steps.len())
        .unwrap_or(0)
}

/// What became of an incident's containment so far, in words that never claim more
/// than happened: a dry run is "recorded only", not "blocked".
fn containment(inc: &Incident) -> String {
    use crate::messages::ActionStatus as S;
    if inc.actions.is_empty() {
        return "none recorded yet".into();
    }
    let words = |s: S| match s {
        S::DryRun => "recorded only (dry run, not enforced)",
        S::PendingApproval => "waiting for approval",
        S::Executed => "in force",
        S::Published => "published to the fleet",
        S::Failed => "failed",
        S::Rejected => "rejected by an operator",
        S::Expired => "expired without a decision",
        S::RolledBack => "rolled back",
    };
    let said = |a: &crate::messages::Action| match a.status {
        // What the fleet's enforcers said, not what the deciding node hopes.
        S::Published => format!(
            "published to the fleet: in force on {} of the {} hosts that reported",
            a.enforcement.iter().filter(|e| e.outcome.in_force()).count(),
            a.enforcement.len()
        ),
        s => words(s).to_string(),
    };
    let mut parts: Vec<String> =
        inc.actions.iter().take(5).map(|a| format!("{} {} {}", a.kind, a.target, said(a))).collect();
    if inc.actions.len() > 5 {
        parts.push(format!("and {} more", inc.actions.len() - 5));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    //! The interpreter alone: an incident, a playbook, time and what was gathered in;
    //! the run's changes and what it asks for out.

    use super::*;
    use crate::messages::{ActionKind, Severity};

    const PLAYBOOK: &str = r#"
name = "test"
[trigger]
types = ["brute_force"]
[[step]]
id = "block"
kind = "contain"
action = "block_ip"
target = "attacker_ip"
[[step]]
id = "only-critical"
kind = "notify"
when = "severity >= critical"
message = "never"
[[step]]
id = "gate"
kind = "approval"
timeout_secs = 600
on_failure = "abort"
[[step]]
id = "evidence"
kind = "collect_evidence"
on_failure = "abort"
[[step]]
id = "tell"
kind = "notify"
message = "{severity} {type}: {title}"
"#;

    fn playbooks() -> Vec<Playbook> {
        let (ok, errs) = super::super::load(&[("test.toml".into(), PLAYBOOK.into())], &[]);
        assert!(errs.is_empty(), "{errs:?}");
        ok
    }

    fn incident() -> Incident {
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"incident");
        let entities = vec!["203.0.113.7".to_string()];
        Incident::open(id, "brute_force".into(), "guessing".into(), Severity::High, entities, vec![], t(0))
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn step(inc: &mut Incident, pbs: &[Playbook], index: usize, gathered: Gathered, now: DateTime<Utc>) -> Stepped {
        super::step(inc, pbs, &Assets::default(), index, gathered, "incident-response", now)
    }

    fn decided(s: Stepped) -> (Decision, Recorded) {
        match s {
            Stepped::Decided(done) => (done.decision, done.recorded),
            other => panic!("not decided: {other:?}"),
        }
    }

    #[test]
    fn begin_starts_a_run_and_a_different_type_supersedes_it() {
        let pbs = playbooks();
        let mut inc = incident();
        assert_eq!(begin(&mut inc, None, t(0)), Begin::None);
        let Begin::Started { playbook, first } = begin(&mut inc, Some(&pbs[0]), t(0)) else { panic!("not started") };
        assert_eq!(playbook, "test");
        assert_eq!(first.payload, Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: 0 }));
        assert_eq!(inc.notes, ["playbook `test` started"]);
        // The same playbook again: the run goes on.
        assert_eq!(begin(&mut inc, Some(&pbs[0]), t(1)), Begin::Running);
        // Another one takes over; the old run is kept, aborted.
        let other = Playbook { name: "other".into(), ..pbs[0].clone() };
        assert!(matches!(begin(&mut inc, Some(&other), t(2)), Begin::Started { .. }));
        assert_eq!(inc.earlier_playbooks[0].status, RunStatus::Aborted);
        assert_eq!(inc.playbook.as_ref().unwrap().playbook, "other");
        assert!(inc.notes.iter().any(|n| n == "playbook `test` superseded by `other` (now brute_force)"));
    }

    #[test]
    fn a_run_goes_step_by_step_under_deterministic_keys() {
        let pbs = playbooks();
        let mut inc = incident();
        begin(&mut inc, Some(&pbs[0]), t(0));
        // Not the run's next step (a redelivery): nothing happens.
        assert_eq!(step(&mut inc.clone(), &pbs, 3, Gathered::Nothing, t(1)), Stepped::Stale);
        let (d, r) = decided(step(&mut inc, &pbs, 0, Gathered::Nothing, t(1)));
        assert_eq!((d.outcome, d.detail.as_str()), ("requested", "block_ip 203.0.113.7"));
        let key = Uuid::new_v5(&inc.id, b"playbook/test/block");
        let req = d.request.expect("a containment request");
        assert_eq!(req.id, Some(key), "asked for again after a crash, it is the same envelope");
        let Payload::Containment(c) = req.payload else { panic!("{:?}", req.payload) };
        assert_eq!((c.action, c.target.as_str()), (ActionKind::BlockIp, "203.0.113.7"));
        assert_eq!(r.next.unwrap().payload, Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: 1 }));
        // A condition that does not hold: skipped, the run goes on, nobody is told.
        let (d, r) = decided(step(&mut inc, &pbs, 1, Gathered::Nothing, t(2)));
        assert_eq!((d.outcome, r.notify), ("skipped", None));
        assert_eq!(inc.playbook.as_ref().unwrap().next, 2);
    }

    #[test]
    fn a_gate_waits_and_is_answered_or_times_out() {
        let pbs = playbooks();
        let mut inc = incident();
        begin(&mut inc, Some(&pbs[0]), t(0));
        inc.playbook.as_mut().unwrap().next = 2;
        let (d, r) = decided(step(&mut inc, &pbs, 2, Gathered::Nothing, t(10)));
        let key = Uuid::new_v5(&inc.id, b"playbook/test/gate");
        assert_eq!((d.outcome, r.status, r.next), ("waiting", RunStatus::Waiting, None));
        assert_eq!(
            r.notify.as_deref(),
            Some(
                format!("playbook test waits for approval of step gate: approve with `warden approve {key}`").as_str()
            )
        );
        let run = inc.playbook.as_ref().unwrap();
        assert_eq!((run.gate, run.gate_deadline), (Some(key), Some(t(610))));
        assert!(waits_at(&inc, key));
        // Not overdue yet; then overdue, and its on_failure (abort) says the run stops.
        assert_eq!(overdue(&inc, &pbs, t(609)), None);
        assert_eq!(overdue(&inc, &pbs, t(610)), Some(false));
        // Approved: the next step, under an id derived from the gate.
        let mut approved = inc.clone();
        let res = resume(&mut approved, 5, "approved", "alice", true, t(20)).unwrap();
        let next = res.next.unwrap();
        assert_eq!(next.id, Some(Uuid::new_v5(&key, b"next")));
        assert_eq!(next.payload, Payload::PlaybookStep(PlaybookStepRef { incident_id: inc.id, step: 3 }));
        assert_eq!(approved.playbook.as_ref().unwrap().steps.last().unwrap().outcome, "approved");
        // Rejected: the run is aborted.
        let res = resume(&mut inc, 5, "rejected", "bob", false, t(20)).unwrap();
        assert!(res.next.is_none());
        assert_eq!(inc.playbook.as_ref().unwrap().status, RunStatus::Aborted);
        assert!(inc.notes.iter().any(|n| n == "playbook `test` step `gate` rejected by bob"));
    }

    #[test]
    fn evidence_steps_record_what_was_gathered() {
        let pbs = playbooks();
        let item = EvidenceItem {
            kind: "log_lines".into(),
            source: "s".into(),
            sha256: "ab".repeat(32),
            size: 3,
            collected_at: t(0),
            collector: "warden".into(),
            name: "x".into(),
        };
        let at_evidence = || {
            let mut inc = incident();
            begin(&mut inc, Some(&pbs[0]), t(0));
            inc.playbook.as_mut().unwrap().next = 3;
            inc
        };
        let mut inc = at_evidence();
        let gathered = Gathered::Evidence { items: vec![item.clone()], problems: vec!["/etc/x: gone".into()] };
        let (d, r) = decided(step(&mut inc, &pbs, 3, gathered, t(5)));
        assert_eq!((d.outcome, d.detail.as_str()), ("done", "1 item(s) stored; not collected: /etc/x: gone"));
        assert_eq!((inc.evidence.len(), r.status), (1, RunStatus::Running));
        // Nothing stored, the tool failing, or no tool: failed — and this step aborts.
        for gathered in [
            Gathered::Evidence { items: vec![], problems: vec![] },
            Gathered::EvidenceFailed("failed: disk full".into()),
            Gathered::Nothing,
        ] {
            let mut inc = at_evidence();
            let (d, r) = decided(step(&mut inc, &pbs, 3, gathered, t(5)));
            assert!(d.failed && matches!(d.outcome, "failed" | "unavailable"), "{d:?}");
            assert_eq!(r.status, RunStatus::Aborted);
        }
    }

    #[test]
    fn a_notification_says_what_became_of_containment_never_more() {
        use crate::messages::{Action, ActionStatus, ResponseMode};
        let mut inc = incident();
        assert_eq!(containment(&inc), "none recorded yet");
        let action = |target: &str, status| Action {
            id: Uuid::new_v5(&inc.id, target.as_bytes()),
            kind: ActionKind::BlockIp,
            target: target.into(),
            mode: ResponseMode::Observe,
            status,
            argv: vec![],
            reason: String::new(),
            created_at: t(0),
            expires_at: None,
            output: None,
            steps: vec![],
            decision: None,
            permanent: false,
            rollback: None,
            undo_target: None,
            enforcement: vec![],
        };
        inc.actions = vec![action("203.0.113.7", ActionStatus::DryRun), action("203.0.113.8", ActionStatus::Executed)];
        let said = containment(&inc);
        assert_eq!(said, "block_ip 203.0.113.7 recorded only (dry run, not enforced); block_ip 203.0.113.8 in force");
        let mut fleet = action("203.0.113.9", ActionStatus::Published);
        let report = |host: &str, outcome| crate::messages::EnforcementReport {
            host: host.into(),
            target: "203.0.113.9".into(),
            incident: None,
            revision: 1,
            outcome,
            reason: String::new(),
            at: t(1),
        };
        use crate::messages::EnforcementOutcome as O;
        fleet.enforcement = vec![report("a", O::Applied), report("b", O::Ineffective), report("c", O::Observed)];
        inc.actions = vec![fleet];
        assert_eq!(
            containment(&inc),
            "block_ip 203.0.113.9 published to the fleet: in force on 1 of the 3 hosts that reported"
        );
        assert!(!said.contains("blocked"));
    }

    #[test]
    fn the_last_step_ends_the_run_and_a_vanished_playbook_aborts_it() {
        let pbs = playbooks();
        let mut inc = incident();
        begin(&mut inc, Some(&pbs[0]), t(0));
        inc.playbook.as_mut().unwrap().next = 4;
        let (d, r) = decided(step(&mut inc, &pbs, 4, Gathered::Nothing, t(5)));
        assert_eq!(
            (d.detail.as_str(), r.notify.as_deref()),
            ("high brute_force: guessing", Some("high brute_force: guessing"))
        );
        assert_eq!((r.status, r.next), (RunStatus::Done, None));
        assert!(inc.notes.iter().any(|n| n == "notification: high brute_force: guessing"));
        let mut inc = incident();
        begin(&mut inc, Some(&pbs[0]), t(0));
        assert_eq!(step(&mut inc, &[], 0, Gathered::Nothing, t(1)), Stepped::Ended);
        assert_eq!(inc.playbook.as_ref().unwrap().status, RunStatus::Aborted);
        assert!(inc.notes.iter().any(|n| n == "playbook `test` is no longer defined: run aborted"));
    }
}
