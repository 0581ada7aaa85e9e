//! Envelopes in, effects out: the logic with a mocked toolbelt (mockall) and a real
//! knowledge base on a temporary sled database.

use super::*;
use crate::agents::AgentLogic;
use crate::agents::MockTools;
use crate::definitions::{ActorsDir, load};
use crate::kb::Kb;
use crate::kb::audit::AuditKind;
use crate::messages::{
    Action, ActionKind, ActionStatus, ContainmentRequest, Finding, Incident, Priority, ResponseMode, Severity,
    TriageResult,
};
use crate::routing::RoutingTable;
use crate::tools::response::Protected;
use crate::tools::response::contain_threat::ContainThreat;
use crate::tools::response::triage_incident::TriageIncident;
use crate::tools::{ToolOutcome, reply};
use chrono::Utc;

fn setup(mode: ResponseMode) -> IncidentResponse {
    setup_with(mode, None)
}

fn setup_with(mode: ResponseMode, autonomy: Option<ResponseMode>) -> IncidentResponse {
    let defs = load(&ActorsDir::Disk(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("actors"))).unwrap();
    let kb = Kb::temporary();
    let env = Arc::new(AgentEnv {
        kb,
        routes: Arc::new(RoutingTable::new(&defs).unwrap()),
        protected: Arc::new(Protected::new(&["10.0.0.0/8".parse().unwrap()])),
        policy: Default::default(),
        response_mode: mode,
        metrics: Default::default(),
        durable: true,
        intel: Default::default(),
        notifier: None,
        data_dir: std::env::temp_dir(),
        reasoner: None,
        memory: Default::default(),
    });
    let mut def = defs.agents["incident-response"].clone();
    if let Some(a) = autonomy {
        def.autonomy = Some(a);
    }
    IncidentResponse::new(Arc::new(def), env).unwrap()
}

fn finding(ip: &str, secs: i64) -> Finding {
    let t = chrono::DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 0).unwrap();
    Finding {
        id: Finding::derive_id("ssh_brute_force", ip, t),
        rule: "ssh_brute_force".into(),
        title: format!("brute force from {ip}"),
        severity: Severity::Medium,
        confidence: 0.9,
        src_ip: Some(ip.into()),
        users: vec!["root".into()],
        host: "h".into(),
        first_seen: t,
        last_seen: t,
        event_count: 5,
        techniques: vec![],
        evidence: vec![],
        ..Default::default()
    }
}

/// The incident an effect writes.
fn written(fx: &Effects) -> &Incident {
    fx.writes.iter().find_map(|w| if let Write::Incident(i) = w { Some(i) } else { None }).expect("an incident write")
}

/// The action an effect writes.
fn action_written(fx: &Effects) -> Action {
    fx.writes
        .iter()
        .find_map(|w| if let Write::Action { action, .. } = w { Some(action.clone()) } else { None })
        .expect("an action write")
}

/// Handles one envelope and collects the incident writes it left pending.
/// Handles one envelope and commits what it decided, as the agent's shell does.
async fn handle(ir: &mut IncidentResponse, env: &Envelope, tools: &MockTools) -> Effects {
    let mut fx = ir.on_envelope(env, tools).await.unwrap();
    fx.writes.extend(ir.pending_writes());
    commit(ir, &fx).await;
    fx
}

/// Time passes, and what it decided is committed.
async fn tick(ir: &mut IncidentResponse, now: chrono::DateTime<Utc>, tools: &MockTools) -> Effects {
    let mut fx = ir.on_tick(now, tools).await.unwrap();
    fx.writes.extend(ir.pending_writes());
    commit(ir, &fx).await;
    fx
}

async fn commit(ir: &IncidentResponse, fx: &Effects) {
    let c = crate::kb::Commit { writes: fx.writes.clone(), audit: fx.audit.clone(), flush: false };
    ir.env.kb.commit(c).await.unwrap();
}

/// Every incident stored (a commit follows each input in these tests).
async fn stored(ir: &IncidentResponse) -> Vec<Incident> {
    ir.env.kb.incidents().await.unwrap()
}

fn triage_tools() -> MockTools {
    brute_force_tools(Priority::P2, false)
}

/// Tools that triage as a brute force at `priority` and carry out every containment
/// (`execute`), or record it as a dry run.
fn brute_force_tools(priority: Priority, execute: bool) -> MockTools {
    tools_carrying_out(priority, move |_| execute)
}

/// Tools that triage as a brute force at `priority` and carry out the containments
/// `carry_out` chooses; the others are dry runs.
fn tools_carrying_out(
    priority: Priority,
    carry_out: impl Fn(&crate::tools::response::ContainSpec) -> bool + Send + Sync + 'static,
) -> MockTools {
    let mut tools = MockTools::new();
    tools.expect_execute().returning(move |call| {
        let out = if call.args::<TriageIncident>().is_some() {
            reply::<TriageIncident>(ToolOutcome::Succeeded(TriageResult {
                kind: "ssh_brute_force".into(),
                severity: Severity::High,
                priority,
                deadline: None,
                asset: None,
                reasons: vec!["test".into()],
            }))
        } else if let Some(spec) = call.args::<ContainThreat>() {
            if carry_out(spec) {
                let argv = vec!["nft".into(), format!("{}", spec.kind), spec.target.clone()];
                reply::<ContainThreat>(ToolOutcome::Succeeded(crate::tools::response::contain_threat::Executed {
                    argv,
                    output: String::new(),
                    undo: None,
                    published: None,
                }))
            } else {
                ToolOutcome::DryRun { argv: vec!["nft".into(), spec.target.clone()], steps: vec![] }
            }
        } else {
            ToolOutcome::Failed("not here".into())
        };
        Box::pin(async move { out })
    });
    tools
}

/// Incident response with a mocked model (within the real budget/timeout guard).
fn setup_llm(model: crate::llm::MockReasoner) -> IncidentResponse {
    let mut ir = setup(ResponseMode::Enforce);
    let cfg = crate::agents::test_support::llm_config();
    let mut env = (*ir.env).clone_for_test();
    env.reasoner = Some(Arc::new(crate::llm::Guarded::new(Arc::new(model), &cfg)));
    ir.env = Arc::new(env);
    ir
}

use crate::agents::test_support::model as mock_model;

/// The incident id a prompt names (`… incident <uuid>…`).
fn incident_in(prompt: &str) -> String {
    let at = prompt.find("incident ").unwrap() + "incident ".len();
    prompt[at..at + 36].to_string()
}

#[actix_rt::test]
async fn the_model_explains_the_triage_and_its_containment_request_meets_the_policy() {
    // The model explains, and asks (through its contain_threat tool) to block a
    // protected address.
    let model = mock_model(|req| {
        Box::pin(async move {
            let tool = req.tools.iter().find(|t| t.name == "contain_threat").expect("contain_threat offered").clone();
            let id = incident_in(&req.prompt);
            let decision =
                (tool.call)(serde_json::json!({ "incident_id": id, "action": "block_ip", "target": "10.1.2.3" })).await;
            assert!(decision.unwrap().contains("requested"));
            Ok(crate::llm::ReasonAnswer {
                text: "Password guessing; block the source.".into(),
                tool_uses: vec![],
                tokens: 10,
            })
        })
    });
    let mut ir = setup_llm(model);
    let mut tools = triage_tools();
    tools.expect_executor().returning(|| None);
    let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
    let fx = handle(&mut ir, &d, &tools).await;
    let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
    let i = written(&fx);
    assert!(
        i.notes.iter().any(|n| n == "triage explained by the model: Password guessing; block the source."),
        "{:?}",
        i.notes
    );
    assert!(fx.audit.iter().any(|a| a.kind == AuditKind::ModelCall));
    // The model's request is routed like any other, marked as the model's.
    let from_model = fx
        .route
        .iter()
        .find_map(|e| match &e.payload {
            Payload::Containment(c) if c.requested_by.as_deref() == Some("model") => Some(e.clone()),
            _ => None,
        })
        .expect("the model's request is routed");
    // Incident response's policy refuses it: the address is protected.
    let fx = handle(&mut ir, &from_model, &tools).await;
    assert!(written(&fx).notes.iter().any(|n| n.contains("10.1.2.3 refused: the address is protected")));
    assert!(fx.writes.iter().all(|w| !matches!(w, Write::Action { .. })), "no action for it");
}

#[actix_rt::test]
async fn a_failing_or_slow_model_leaves_the_rules_decision_and_says_so() {
    for (model, why) in [
        (
            mock_model(|_| Box::pin(async { Err(crate::llm::LlmError::Provider("connection refused".into())) })),
            "connection refused",
        ),
        (
            mock_model(|_| {
                Box::pin(async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    Ok(crate::llm::ReasonAnswer::default())
                })
            }),
            "did not answer within 1 s",
        ),
        (
            mock_model(|_| {
                Box::pin(async { Ok(crate::llm::ReasonAnswer { text: " ".into(), tool_uses: vec![], tokens: 1 }) })
            }),
            "malformed answer",
        ),
    ] {
        let mut ir = setup_llm(model);
        let mut tools = triage_tools();
        tools.expect_executor().returning(|| None);
        let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
        let fx = handle(&mut ir, &d, &tools).await;
        let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
        let i = written(&fx);
        // Triaged and contained by the rules all the same.
        assert_eq!((i.priority, i.status), (Priority::P2, IncidentStatus::Triaged));
        assert!(fx.route.iter().any(|e| matches!(&e.payload, Payload::Containment(c) if c.requested_by.is_none())));
        assert!(
            i.notes.iter().any(|n| n.starts_with("language model unavailable")
                && n.contains(why)
                && n.ends_with("the rules' triage stands")),
            "{why}: {:?}",
            i.notes
        );
    }
}

#[actix_rt::test]
async fn an_instruction_gets_the_models_answer_on_the_incident() {
    let model = mock_model(|req| {
        Box::pin(async move {
            assert!(req.prompt.contains("An operator asks: what now?") && req.prompt.contains("UNTRUSTED INCIDENT"));
            assert!(req.system.starts_with("You are Warden's incident responder."));
            Ok(crate::llm::ReasonAnswer {
                text: "Keep the block; reset admin's password.".into(),
                tool_uses: vec![],
                tokens: 5,
            })
        })
    });
    let mut ir = setup(ResponseMode::Enforce);
    let tools = triage_tools();
    let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
    let fx = handle(&mut ir, &d, &tools).await;
    let id = written(&fx).id;
    // The incident is in the knowledge base (committed by `handle`), for the model's
    // prompt; the agent with the model is built from it.
    let mut ir2 = {
        let with_model = setup_llm(model);
        let mut e = (*with_model.env).clone_for_test();
        e.kb = ir.env.kb.clone();
        IncidentResponse::new(with_model.def.clone(), Arc::new(e)).unwrap()
    };
    let mut tools = MockTools::new();
    tools.expect_executor().returning(|| None);
    let ask = Envelope::new(
        "admin",
        Payload::Instruction(crate::messages::Instruction { text: "what now?".into(), incident_id: Some(id) }),
    );
    let fx = handle(&mut ir2, &ask, &tools).await;
    assert!(
        written(&fx).notes.iter().any(|n| n == "model (incident-response): Keep the block; reset admin's password.")
    );
    let answer = fx.writes.iter().find_map(|w| match w {
        Write::State { key, value } if *key == crate::agents::reasoning::answer_key(ask.id) => Some(value.clone()),
        _ => None,
    });
    assert_eq!(answer.unwrap()["answer"], "Keep the block; reset admin's password.");
}

#[actix_rt::test]
async fn detection_triage_containment() {
    let mut ir = setup_with(ResponseMode::Enforce, Some(ResponseMode::Observe));
    let tools = triage_tools();
    let d = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 0)));
    let fx = handle(&mut ir, &d, &tools).await;
    let Payload::Triage(r) = &fx.route[0].payload else { panic!("expected a triage: {:?}", fx.route) };
    let i = written(&fx);
    assert!(i.id == r.incident_id && i.status == IncidentStatus::Open);

    let t = fx.route[0].clone();
    let fx = handle(&mut ir, &t, &tools).await;
    let i = written(&fx);
    assert!(i.priority == Priority::P2 && i.status == IncidentStatus::Triaged);
    let Payload::Containment(c) = &fx.route[0].payload else { panic!("expected containment") };
    assert_eq!(c.target, "203.0.113.9");

    let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
    let action = action_written(&fx);
    // An agent's explicit autonomy (observe) is stricter than the configured enforce.
    assert_eq!(action.mode, ResponseMode::Observe);
    assert_eq!(action.status, ActionStatus::DryRun);
    assert_eq!(action.argv, ["nft", "203.0.113.9"]);

    // A later finding from the same address attaches to the same incident.
    let d2 = Envelope::new("test", Payload::Detection(finding("203.0.113.9", 900)));
    let fx = handle(&mut ir, &d2, &tools).await;
    let i = written(&fx);
    assert!(i.id == r.incident_id && i.findings.len() == 2);
    // Handling the same detection again changes nothing.
    assert!(handle(&mut ir, &d2, &tools).await.writes.is_empty());
}

#[actix_rt::test]
async fn protected_addresses_get_no_proposal() {
    let mut ir = setup(ResponseMode::Observe);
    let tools = triage_tools();
    let d = Envelope::new("test", Payload::Detection(finding("10.1.2.3", 0)));
    let fx = handle(&mut ir, &d, &tools).await;
    let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
    assert!(fx.route.is_empty(), "no containment proposed");
    assert!(written(&fx).notes[0].contains("protected"));
    // An injected containment against it is refused by the logic as well.
    let inc = written(&fx);
    let req = ContainmentRequest {
        incident_id: inc.id,
        action: ActionKind::BlockIp,
        target: "10.1.2.3".into(),
        reason: String::new(),
        requested_by: None,
    };
    let mut denying = MockTools::new();
    let env = Envelope::new("admin", Payload::Containment(req));
    denying.expect_execute().times(0);
    let fx = handle(&mut ir, &env, &denying).await;
    assert!(!fx.writes.iter().any(|w| matches!(w, Write::Action { .. })));
    assert!(written(&fx).notes.iter().any(|n| n.contains("refused")));
}

#[actix_rt::test]
async fn approve_mode_stores_the_action_as_pending() {
    let mut ir = setup_with(ResponseMode::Approve, Some(ResponseMode::Enforce));
    let tools = triage_tools();
    let d = Envelope::new("test", Payload::Detection(finding("203.0.113.10", 0)));
    let fx = handle(&mut ir, &d, &tools).await;
    let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
    let fx = handle(&mut ir, &fx.route[0].clone(), &tools).await;
    let action = action_written(&fx);
    assert_eq!(action.mode, ResponseMode::Approve);
    assert_eq!(action.status, ActionStatus::PendingApproval);
}

/// Tools that triage as a brute force and carry out every containment.
fn enforcing_tools() -> MockTools {
    brute_force_tools(Priority::P3, true)
}

/// Handles envelopes (and everything they route) until nothing is left; the actions
/// written, in order.
async fn settle(ir: &mut IncidentResponse, first: Vec<Envelope>, tools: &MockTools) -> Vec<Action> {
    let mut queue: std::collections::VecDeque<Envelope> = first.into();
    let mut actions = Vec::new();
    while let Some(env) = queue.pop_front() {
        let fx = handle(ir, &env, tools).await;
        actions.extend(fx.writes.iter().filter_map(|w| match w {
            Write::Action { action, .. } => Some(action.clone()),
            _ => None,
        }));
        queue.extend(fx.route);
    }
    actions
}

/// The addresses with a block in force, over every incident.
async fn blocked(ir: &IncidentResponse) -> std::collections::BTreeSet<String> {
    stored(ir)
        .await
        .iter()
        .flat_map(|i| i.actions.iter())
        .filter(|a| a.kind == ActionKind::BlockIp && a.stands())
        .map(|a| a.target.clone())
        .collect()
}

#[actix_rt::test]
async fn every_attacker_keeps_its_own_block_through_merges_campaigns_and_time() {
    let mut ir = setup(ResponseMode::Enforce);
    let tools = enforcing_tools();
    let det = |f: Finding| Envelope::new("test", Payload::Detection(f));
    // Two attackers, two incidents, each blocked.
    let (a, b) = (finding("198.51.100.1", 0), finding("198.51.100.2", 10));
    settle(&mut ir, vec![det(a.clone()), det(b.clone())], &tools).await;
    assert_eq!(blocked(&ir).await, ["198.51.100.1", "198.51.100.2"].map(String::from).into());
    // A campaign links them: B's incident is merged into A's, its block moves along.
    let c = Uuid::new_v4();
    let mut camp = finding("198.51.100.1", 20);
    camp.rule = "campaign".into();
    camp.id = Finding::derive_id("campaign", "c", camp.last_seen);
    camp.related = vec![a.id, b.id];
    camp.campaign = Some(c);
    settle(&mut ir, vec![det(camp)], &tools).await;
    let all = stored(&ir).await;
    let open: Vec<&Incident> = all.iter().filter(|i| i.status != IncidentStatus::Closed).collect();
    assert_eq!(open.len(), 1, "one campaign incident");
    assert_eq!(open[0].actions.len(), 2, "both blocks are on it");
    // A third attacker joins the campaign: its own block.
    let mut joiner = finding("198.51.100.3", 30);
    joiner.campaign = Some(c);
    settle(&mut ir, vec![det(joiner)], &tools).await;
    assert_eq!(blocked(&ir).await.len(), 3);
    // A low finding from a fourth address (below the containment threshold) gets none.
    let mut low = finding("198.51.100.4", 35);
    low.severity = Severity::Low;
    low.campaign = Some(c);
    settle(&mut ir, vec![det(low)], &tools).await;
    assert_eq!(blocked(&ir).await.len(), 3);
    // Time passes within the blocks' life: the merged incident's block is not undone.
    let fx = tick(&mut ir, Utc::now(), &tools).await;
    assert!(fx.writes.is_empty(), "nothing to roll back: {:?}", fx.writes);
    // Their life ends: all rolled back. B comes back: blocked again, as a new action.
    let later = Utc::now() + chrono::Duration::seconds(ir.def.response.block_ttl_secs as i64 + 1);
    tick(&mut ir, later, &tools).await;
    assert!(blocked(&ir).await.is_empty());
    let acts = settle(&mut ir, vec![det(finding("198.51.100.2", 4000))], &tools).await;
    assert_eq!(acts.len(), 1);
    assert_eq!((acts[0].target.as_str(), acts[0].status), ("198.51.100.2", ActionStatus::Executed));
    assert_eq!(blocked(&ir).await, ["198.51.100.2".to_string()].into());
}

/// Tools that carry out a containment only when enforcing (an approved action);
/// otherwise it is a dry run.
fn approving_tools() -> MockTools {
    tools_carrying_out(Priority::P2, |spec| spec.mode == ResponseMode::Enforce)
}

/// The agent rebuilt from the knowledge base (as after a restart), holding at most
/// `cap` incidents in memory.
fn rebuilt(ir: &IncidentResponse, cap: usize) -> IncidentResponse {
    let mut env = (*ir.env).clone_for_test();
    env.memory.incidents_held = cap;
    IncidentResponse::new(ir.def.clone(), Arc::new(env)).unwrap()
}

#[actix_rt::test]
async fn incidents_past_the_cap_live_in_the_knowledge_base_and_are_read_back_when_needed() {
    let mut ir = rebuilt(&setup(ResponseMode::Approve), 8);
    let tools = approving_tools();
    let det = |f: Finding| Envelope::new("test", Payload::Detection(f));
    let attackers: Vec<Finding> = (0..40).map(|i| finding(&format!("198.51.100.{}", i + 1), i * 10)).collect();
    let proposed = settle(&mut ir, attackers.iter().cloned().map(det).collect(), &tools).await;
    assert_eq!(proposed.len(), 40);
    assert!(proposed.iter().all(|a| a.status == ActionStatus::PendingApproval));
    assert!(ir.held.len() <= 8, "{} incidents held", ir.held.len());
    assert_eq!(stored(&ir).await.len(), 40);
    let of = |all: &[Incident], ip: &str| all.iter().find(|i| i.entities[0] == ip).cloned().unwrap();

    // A finding delivered again attaches nowhere twice (its link is in the store).
    let fx = handle(&mut ir, &det(attackers[0].clone()), &tools).await;
    assert!(fx.writes.is_empty() && fx.route.is_empty(), "{:?}", fx.writes);
    // The first attacker is back: its incident, long out of memory, gets the finding.
    let loaded = ir.env.metrics.incidents_loaded.load(std::sync::atomic::Ordering::Relaxed);
    settle(&mut ir, vec![det(finding("198.51.100.1", 300))], &tools).await;
    assert!(ir.env.metrics.incidents_loaded.load(std::sync::atomic::Ordering::Relaxed) > loaded);
    let all = stored(&ir).await;
    assert_eq!(all.len(), 40, "no second incident for a returning attacker");
    assert_eq!(of(&all, "198.51.100.1").findings.len(), 2);

    // An operator approves the second attacker's block: found in the store, carried out.
    let waiting = of(&all, "198.51.100.2").actions[0].clone();
    let approve = crate::messages::ApprovalDecision {
        action_id: waiting.id,
        approve: true,
        by: "alice".into(),
        comment: String::new(),
    };
    settle(&mut ir, vec![Envelope::new("admin", Payload::Approval(approve))], &tools).await;
    let all = stored(&ir).await;
    assert_eq!(of(&all, "198.51.100.2").actions[0].status, ActionStatus::Executed);

    // After a restart, time still reaches every incident it has work for: nobody approved
    // the others in time, and the approved block's life ends.
    let mut ir = rebuilt(&ir, 8);
    assert!(ir.held.len() <= 8);
    let r = &ir.def.response;
    let later = Utc::now() + chrono::Duration::seconds(r.approval_timeout_secs.max(r.block_ttl_secs) as i64 + 1);
    tick(&mut ir, later, &tools).await;
    let all = stored(&ir).await;
    assert_eq!(of(&all, "198.51.100.2").actions[0].status, ActionStatus::RolledBack);
    let lapsed = all.iter().flat_map(|i| &i.actions).filter(|a| a.status == ActionStatus::Expired).count();
    assert_eq!(lapsed, 39, "every other proposal lapsed");
    // And a returning attacker still finds its incident.
    settle(&mut ir, vec![det(finding("198.51.100.7", 400))], &tools).await;
    let all = stored(&ir).await;
    assert_eq!((all.len(), of(&all, "198.51.100.7").findings.len()), (40, 2));
}
