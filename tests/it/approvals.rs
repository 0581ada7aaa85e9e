//! Approvals and time to live, end to end with the real daemon: an action waiting for
//! approval runs when approved (`warden approve`), not when rejected, and lapses when
//! nobody answers; an executed action is rolled back when its time is up. The actions
//! used are harmless here (killing the test's own `sleep`, quarantining a temporary
//! file); the automatic `block_ip` stays in observe mode.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// A copy of the shipped actors with per-action autonomy for the tests (restricting the
/// configured mode), and the given approval timeout and action TTL.
fn actors(dir: &Path, approval_timeout: u64, ttl: u64) -> std::path::PathBuf {
    let actors = copy_actors(dir);
    let def = actors.join("incident-response/agent.toml");
    let mut text = std::fs::read_to_string(&def).unwrap().replace(
        "block_ttl_secs = 3600",
        &format!("block_ttl_secs = {ttl}\napproval_timeout_secs = {approval_timeout}"),
    );
    text.push_str(
        "\n[response.autonomy]\nblock_ip = \"observe\"\nkill_process = \"approve\"\nquarantine_file = \"enforce\"\n",
    );
    std::fs::write(&def, text).unwrap();
    actors
}

/// Opens an incident (an injected detection) and returns its id.
fn incident(d: &Daemon, ip: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let body = serde_json::json!({ "payload": {
        "kind": "detection", "id": uuid::Uuid::new_v4(), "rule": "ssh_brute_force", "title": "injected",
        "severity": "high", "src_ip": ip, "first_seen": now, "last_seen": now, "event_count": 5,
    }});
    assert_eq!(d.post("/v1/inject", &body.to_string()).unwrap().status, 202);
    eventually(20, "the incident", || {
        d.incidents().into_iter().find(|i| i["entities"][0] == ip).map(|i| i["id"].as_str().unwrap().to_string())
    })
}

fn contain(d: &Daemon, incident: &str, action: &str, target: &str) {
    let body = serde_json::json!({ "payload": {
        "kind": "containment", "incident_id": incident, "action": action, "target": target, "reason": "test",
    }});
    let r = d.post("/v1/inject", &body.to_string()).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
}

fn action(d: &Daemon, kind: &str, target_prefix: &str) -> Option<serde_json::Value> {
    d.incidents()
        .iter()
        .flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default())
        .find(|a| a["kind"] == kind && a["target"].as_str().unwrap_or("").starts_with(target_prefix))
}

fn config_args(d: &Daemon) -> Vec<String> {
    vec!["--config".into(), d.config.display().to_string()]
}

#[test]
fn approve_reject_and_roll_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), "", "[response]\nmode = \"enforce\"\n", Some(actors(tmp.path(), 600, 2)));
    let inc = incident(&d, "198.51.100.23");

    // Approved: it runs, with who and when recorded.
    let mut approved = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = approved.id().to_string();
    contain(&d, &inc, "kill_process", &pid);
    let a = eventually(20, "a pending kill", || action(&d, "kill_process", &pid));
    assert_eq!(a["status"], "pending_approval", "{a:#}");
    assert!(approved.try_wait().unwrap().is_none(), "nothing runs before approval");
    let id = a["id"].as_str().unwrap();
    let out = Command::new(BIN)
        .args(["approve", id, "--by", "alice", "--comment", "confirmed"])
        .args(config_args(&d))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = action(&d, "kill_process", &pid).unwrap();
    assert_eq!(a["status"], "executed", "{a:#}");
    assert_eq!(a["decision"]["by"], "alice");
    assert_eq!(a["decision"]["approved"], true);
    assert!(a["decision"]["at"].is_string());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(approved.wait().unwrap().signal(), Some(9));

    // Rejected: nothing runs.
    let mut rejected = Command::new("sleep").arg("300").spawn().unwrap();
    let pid2 = rejected.id().to_string();
    contain(&d, &inc, "kill_process", &pid2);
    let a = eventually(20, "a second pending kill", || action(&d, "kill_process", &pid2));
    let out = Command::new(BIN)
        .args(["reject", a["id"].as_str().unwrap(), "--by", "bob"])
        .args(config_args(&d))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = action(&d, "kill_process", &pid2).unwrap();
    assert_eq!(a["status"], "rejected");
    assert_eq!(a["decision"]["by"], "bob");
    assert!(rejected.try_wait().unwrap().is_none(), "a rejected action does not run");
    rejected.kill().unwrap();
    let _ = rejected.wait();
    // Deciding twice is refused (the action is no longer pending): the CLI says so.
    let again = Command::new(BIN)
        .args(["approve", a["id"].as_str().unwrap(), "--by", "eve"])
        .args(config_args(&d))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("rejected"), "{again:?}");
    assert_eq!(action(&d, "kill_process", &pid2).unwrap()["decision"]["by"], "bob");

    // Enforced with a 2 s time to live: quarantined, then put back by the rollback.
    let file = tmp.path().join("dropper.sh");
    std::fs::write(&file, "#!/bin/sh\necho pwned\n").unwrap();
    contain(&d, &inc, "quarantine_file", file.to_str().unwrap());
    let a = eventually(20, "the quarantine", || action(&d, "quarantine_file", file.to_str().unwrap()));
    assert_eq!(a["status"], "executed", "{a:#}");
    assert!(!file.exists() || a["status"] == "rolled_back");
    let a = eventually(30, "the rollback", || {
        action(&d, "quarantine_file", file.to_str().unwrap()).filter(|a| a["status"] == "rolled_back")
    });
    assert_eq!(a["rollback"]["why"], "expired");
    assert_eq!(a["rollback"]["ok"], true);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "#!/bin/sh\necho pwned\n");
    let verify: serde_json::Value = serde_json::from_str(&d.get("/v1/audit/verify").unwrap().body).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn an_unanswered_approval_lapses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), "", "[response]\nmode = \"enforce\"\n", Some(actors(tmp.path(), 1, 3600)));
    let inc = incident(&d, "198.51.100.24");
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = child.id().to_string();
    contain(&d, &inc, "kill_process", &pid);
    let a = eventually(30, "the approval to lapse", || {
        action(&d, "kill_process", &pid).filter(|a| a["status"] == "expired")
    });
    assert!(a["decision"].is_null());
    assert!(child.try_wait().unwrap().is_none(), "a lapsed action does not run");
    // Approving it afterwards is refused.
    let dead = d.metric("warden_dead_letters_total").unwrap_or(0);
    let r = d.post(&format!("/v1/actions/{}/approve", a["id"].as_str().unwrap()), r#"{"by":"late"}"#).unwrap();
    assert_eq!(r.status, 202);
    eventually(20, "the late approval refused", || {
        (d.metric("warden_dead_letters_total").unwrap_or(0) > dead).then_some(())
    });
    assert_eq!(action(&d, "kill_process", &pid).unwrap()["status"], "expired");
    child.kill().unwrap();
    let _ = child.wait();
    // Closing the incident rolls its executed actions back (here: a quarantine whose
    // time to live, an hour, is far away).
    let file = tmp.path().join("implant.bin");
    std::fs::write(&file, b"\x7fELF...").unwrap();
    contain(&d, &inc, "quarantine_file", file.to_str().unwrap());
    eventually(20, "the quarantine", || {
        action(&d, "quarantine_file", file.to_str().unwrap()).filter(|a| a["status"] == "executed")
    });
    assert!(!file.exists());
    let out = Command::new(BIN)
        .args(["close", &inc, "--by", "grace", "--comment", "false positive"])
        .args(config_args(&d))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = eventually(30, "the rollback on close", || {
        action(&d, "quarantine_file", file.to_str().unwrap()).filter(|a| a["status"] == "rolled_back")
    });
    assert_eq!(a["rollback"]["why"], "incident closed");
    assert!(file.exists(), "put back");
    let closed = d.incidents().into_iter().find(|i| i["id"] == inc.as_str()).unwrap();
    assert_eq!(closed["status"], "closed");
    assert!(closed["notes"].as_array().unwrap().iter().any(|n| n == "closed by grace: false positive"));
    // Bad requests: no `by`, not an id.
    assert_eq!(
        d.post(&format!("/v1/actions/{}/approve", a["id"].as_str().unwrap()), r#"{"by":" "}"#).unwrap().status,
        400
    );
    assert_eq!(d.post("/v1/actions/not-an-id/reject", r#"{"by":"x"}"#).unwrap().status, 400);
}
