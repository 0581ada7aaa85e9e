//! The runtime in-process (a real actix system and a real sled database): handoffs and
//! the stdin source.

use std::io::Write;
use std::process::{Command, Stdio};

use warden::config::Config;
use warden::definitions::{ActorsDir, load};
use warden::kb::audit::AuditKind;
use warden::messages::{Envelope, Handoff, Payload};
use warden::runtime::Runtime;
use warden::store::Store;
use warden::supervisor::Route;

use crate::support::{BIN, actors_dir, eventually, failed, free_port};

/// The runtime of the shipped agents on the default configuration and a temporary store
/// of `cache` bytes, ready.
async fn started(cache: u64) -> Runtime {
    let defs = load(&ActorsDir::Disk(actors_dir())).unwrap();
    let cfg = Config::parse("", "test").unwrap();
    let rt = Runtime::start(&cfg, &defs, Store::temporary(cache).unwrap()).unwrap();
    rt.ready().await;
    rt
}

#[actix_rt::test]
async fn a_handoff_is_stored_before_its_target_receives_it() {
    let rt = started(8 << 20).await;
    let context = serde_json::json!({ "root_cause": "sshd accepts passwords", "package": "openssh-server" });
    let handoff = Handoff {
        from: "incident-response".into(),
        to: "vulnerability-management".into(),
        incident_id: None,
        context: context.clone(),
    };
    let env = Envelope::new("incident-response", Payload::Handoff(handoff));
    let id = rt.supervisor.send(Route { envelope: env, to: None }).await.unwrap().unwrap();
    rt.quiesce().await;

    let stored = rt.kb.handoffs().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["context"], context);
    assert_eq!(stored[0]["to"], "vulnerability-management");
    // In the ledger the handoff comes before the target's handling of it.
    let records = rt.kb.audit_records().await.unwrap();
    let pos = |kind: AuditKind, actor: &str| {
        records.iter().position(|r| r.entry.kind == kind && r.entry.actor == actor && r.entry.subject == id.to_string())
    };
    let stored_at = pos(AuditKind::Handoff, "supervisor").expect("handoff audited");
    let handled_at = pos(AuditKind::EnvelopeHandled, "vulnerability-management").expect("handoff handled");
    assert!(stored_at < handled_at);

    // A handoff to an agent that does not declare `handoff` is refused.
    let bad =
        Handoff { from: "x".into(), to: "threat-detection".into(), incident_id: None, context: serde_json::json!({}) };
    let err =
        rt.supervisor.send(Route { envelope: Envelope::new("test", Payload::Handoff(bad)), to: None }).await.unwrap();
    assert!(err.unwrap_err().to_string().contains("does not handle `handoff`"));
    rt.shutdown().await.unwrap();
}

#[test]
fn the_stdin_source_feeds_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = tmp.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[[sources]]\nname = \"in\"\nkind = \"stdin\"\nformat = \"auth\"\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = (0..5).map(|i| failed("203.0.113.123", "root", i)).collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin); // End of input: the last batch is flushed and applied.
    let token_path = tmp.path().join("data/admin.token");
    let token = eventually(30, "token", || std::fs::read_to_string(&token_path).ok().filter(|t| !t.is_empty()));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let found = eventually(30, "incident from stdin", || {
        let r = warden::admin::client::request(addr, "GET", "/v1/incidents", Some(&token), None).ok()?;
        let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).ok()?;
        crate::support::incident_for(&list, "203.0.113.123").cloned()
    });
    assert_eq!(found["findings"][0]["event_count"], 5);
    let _ = child.kill();
    let _ = child.wait();
}

/// More envelopes than the supervisor queues in memory (4,096 per agent): the rest wait
/// in the durable inbox and are picked up by a scan as the queue drains. Every one is
/// handled exactly once.
#[actix_rt::test]
async fn a_flood_of_envelopes_is_queued_in_bounds_and_all_handled() {
    use warden::agents::Dispatch;
    use warden::kb::{Commit, Write};
    use warden::messages::{InboxEntry, Instruction};

    let rt = started(32 << 20).await;
    let entries: Vec<InboxEntry> = (0..6000)
        .map(|i| InboxEntry {
            target: "vulnerability-management".into(),
            envelope: Envelope::new(
                "test",
                Payload::Instruction(Instruction { text: format!("n{i}"), incident_id: None }),
            ),
            attempts: 0,
        })
        .collect();
    let writes = entries.iter().cloned().map(Write::InboxPut).collect();
    rt.kb.commit(Commit { writes, ..Commit::default() }).await.unwrap();
    rt.supervisor.send(Dispatch(entries.clone())).await.unwrap();
    rt.quiesce().await;
    assert!(rt.kb.inbox_empty().await.unwrap());
    let records = rt.kb.audit_records().await.unwrap();
    let handled: std::collections::HashSet<String> = records
        .iter()
        .filter(|r| r.entry.kind == AuditKind::EnvelopeHandled && r.entry.actor == "vulnerability-management")
        .map(|r| r.entry.subject.clone())
        .collect();
    let handled_records = records
        .iter()
        .filter(|r| r.entry.kind == AuditKind::EnvelopeHandled && r.entry.actor == "vulnerability-management")
        .count();
    assert_eq!(handled.len(), 6000, "every envelope handled");
    // The logic records one entry and the shell one acknowledgement per envelope.
    assert_eq!(handled_records, 2 * 6000, "none handled twice");
    rt.shutdown().await.unwrap();
}

/// Regression: an envelope derived again from the same cause has the same id but a new
/// creation time, so it is a second inbox entry. Both entries must be acknowledged (the
/// second without being handled again); the runtime used to skip the second and never
/// become idle. Dispatched together, they reach the agent in one delivery (one cause),
/// where the second is a duplicate of the first: a shell that checked only what it had
/// handled in earlier deliveries ran the logic twice.
#[actix_rt::test]
async fn two_inbox_entries_with_one_id_are_both_acknowledged() {
    use warden::agents::Dispatch;
    use warden::kb::{Commit, Write};
    use warden::messages::{InboxEntry, Instruction};

    let rt = started(8 << 20).await;
    let first = Envelope::new("test", Payload::Instruction(Instruction { text: "same".into(), incident_id: None }));
    let mut second = first.clone();
    second.created_at += chrono::Duration::nanoseconds(1);
    let entries: Vec<InboxEntry> = [first, second]
        .into_iter()
        .map(|envelope| InboxEntry { target: "vulnerability-management".into(), envelope, attempts: 0 })
        .collect();
    let writes = entries.iter().cloned().map(Write::InboxPut).collect();
    rt.kb.commit(Commit { writes, ..Commit::default() }).await.unwrap();
    rt.supervisor.send(Dispatch(entries)).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), rt.quiesce()).await.expect("the runtime becomes idle");
    assert!(rt.kb.inbox_empty().await.unwrap());
    let handled_by_logic = rt
        .kb
        .audit_records()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.entry.kind == AuditKind::EnvelopeHandled && r.entry.actor == "vulnerability-management")
        .count();
    // The logic's own record once, plus one acknowledgement per entry.
    assert_eq!(handled_by_logic, 3);
    rt.shutdown().await.unwrap();
}

/// An agent's envelopes to itself (a detection's triage, its playbook's steps) are
/// handled in the delivery that caused them and committed with it: no inbox entries, no
/// second round through the supervisor — and still audited as routed and handled.
#[actix_rt::test]
async fn envelopes_an_agent_routes_to_itself_are_committed_with_their_cause() {
    use warden::messages::{Finding, Severity};

    let rt = started(8 << 20).await;
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap();
    let finding = Finding {
        id: Finding::derive_id("ssh_brute_force", "203.0.113.9", t),
        rule: "ssh_brute_force".into(),
        title: "SSH brute force from 203.0.113.9".into(),
        severity: Severity::High,
        confidence: 0.9,
        src_ip: Some("203.0.113.9".into()),
        users: vec!["root".into()],
        host: "web1".into(),
        first_seen: t,
        last_seen: t,
        event_count: 6,
        ..Default::default()
    };
    let id = rt
        .supervisor
        .send(Route { envelope: Envelope::new("test", Payload::Detection(finding)), to: None })
        .await
        .unwrap()
        .unwrap();
    rt.quiesce().await;
    assert!(rt.kb.inbox_empty().await.unwrap());

    let incidents = rt.kb.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1);
    assert!(incidents[0].triage.is_some(), "triaged: {:?}", incidents[0]);
    assert!(!incidents[0].actions.is_empty(), "contained: {:?}", incidents[0]);

    let records = rt.kb.audit_records().await.unwrap();
    let detection_handled = records
        .iter()
        .find(|r| {
            r.entry.kind == AuditKind::EnvelopeHandled
                && r.entry.actor == "incident-response"
                && r.entry.subject == id.to_string()
        })
        .expect("the detection is handled");
    let to_itself: Vec<_> = records
        .iter()
        .filter(|r| {
            r.entry.kind == AuditKind::EnvelopeRouted
                && r.entry.actor == "incident-response"
                && r.entry.detail["to"] == "incident-response"
        })
        .collect();
    let kinds: Vec<&str> = to_itself.iter().filter_map(|r| r.entry.detail["kind"].as_str()).collect();
    assert!(kinds.contains(&"triage"), "{kinds:?}");
    for routed in &to_itself {
        let handled = records
            .iter()
            .find(|r| r.entry.kind == AuditKind::EnvelopeHandled && r.entry.subject == routed.entry.subject)
            .unwrap_or_else(|| panic!("{} routed but not handled", routed.entry.subject));
        // One commit stamps all its audit records with one time.
        assert_eq!(routed.at, detection_handled.at, "{:?} committed apart from its cause", routed.entry.detail);
        assert_eq!(handled.at, detection_handled.at);
    }
    rt.shutdown().await.unwrap();
}
