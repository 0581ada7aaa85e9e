//! A fourth agent made from a folder alone (`kind = "custom"`): a phishing analyst with
//! `detect_ioc`, `collect_evidence`, `generate_report` and `contain_threat`, added to a
//! copy of `actors/` and driven through rig's real client against the fake model
//! server. It is linted, registered, listed and restarted like the built-in agents; its
//! model is offered exactly its tools with their schemas; its containment is a request
//! incident response decides; a playbook's handoff step reaches it and its answer comes
//! back on the incident.

use std::path::{Path, PathBuf};

use crate::llm::{FakeModel, Reply};
use crate::support::*;

const AGENT: &str = r#"name = "phishing-analyst"
kind = "custom"
description = "Reads reported messages and links, checks them against threat intel, keeps evidence."
handles = ["instruction", "handoff"]
tools = ["detect_ioc", "collect_evidence", "generate_report", "contain_threat"]
prompt = "prompt.md"
feeds = "feeds.toml"
"#;

const PROMPT: &str = "You are Warden's phishing analyst. Check links and senders against threat intel.\n";

/// The shipped folder plus the analyst, whose answer the brute-force playbook now asks
/// for as its last step.
fn analyst_actors(root: &Path) -> PathBuf {
    let actors = copy_actors(root);
    let dir = actors.join("phishing-analyst");
    std::fs::create_dir_all(dir.join("feeds")).unwrap();
    std::fs::write(dir.join("agent.toml"), AGENT).unwrap();
    std::fs::write(dir.join("prompt.md"), PROMPT).unwrap();
    std::fs::write(
        dir.join("feeds.toml"),
        "[[feed]]\nname = \"phish\"\npath = \"feeds/phish.txt\"\nformat = \"plain\"\nconfidence = 0.9\ntechniques = [\"T1566\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("feeds/phish.txt"), "login-verify.example.net\n").unwrap();
    let pb = actors.join("incident-response/playbooks/brute-force.toml");
    append(&pb, "\n[[step]]\nid = \"ask-analyst\"\nkind = \"handoff\"\nto = \"phishing-analyst\"\n");
    actors
}

fn llm_toml(base_url: &str) -> String {
    format!("[llm]\nprovider = \"openai-compatible\"\nmodel = \"fake\"\nbase_url = \"{base_url}\"\ntimeout_secs = 10\n")
}

fn detection(ip: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({ "payload": {
        "kind": "detection", "id": uuid::Uuid::new_v4(), "rule": "ssh_brute_force", "title": "injected",
        "severity": "high", "src_ip": ip, "first_seen": now, "last_seen": now, "event_count": 5,
        "techniques": ["T1110.001"], "tactics": ["TA0006"],
    }})
    .to_string()
}

fn notes(inc: &serde_json::Value) -> Vec<String> {
    inc["notes"].as_array().map(|n| n.iter().filter_map(|n| n.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[test]
fn a_custom_agent_from_a_folder_is_linted_registered_and_reasons_with_its_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let actors = analyst_actors(tmp.path());
    let lint = std::process::Command::new(BIN).args(["lint", "--actors"]).arg(&actors).output().unwrap();
    assert!(lint.status.success(), "{}", String::from_utf8_lossy(&lint.stdout));
    assert!(String::from_utf8_lossy(&lint.stdout).contains("4 agents OK"), "{}", String::from_utf8_lossy(&lint.stdout));

    let fake = FakeModel::start(vec![
        Reply::Tool {
            name: "detect_ioc",
            arguments: serde_json::json!({ "text": "http://login-verify.example.net/reset" }),
        },
        Reply::Text("Phishing: the link's domain is in the phish feed.".into()),
    ]);
    let extra = format!("{}[testing]\nfault_injection = true\n", llm_toml(&fake.base_url));
    let d = Daemon::start(tmp.path(), "", &extra, Some(actors));

    // Registered and listed like the others.
    let me = eventually(10, "the analyst running", || {
        d.agents().into_iter().find(|a| a["name"] == "phishing-analyst" && a["state"] == "running")
    });
    assert_eq!(me["kind"], "custom");
    assert_eq!(me["handles"], serde_json::json!(["instruction", "handoff"]));
    assert_eq!(me["tools"], serde_json::json!(["detect_ioc", "collect_evidence", "generate_report", "contain_threat"]));

    // An instruction: the model looks the link up through the analyst's detect_ioc.
    let out = d.cli(&["ask", "--to", "phishing-analyst", "Is http://login-verify.example.net/reset phishing?"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), d.stderr());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Phishing: the link's domain is in the phish feed.");
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].to_string().contains("You are Warden's phishing analyst."), "its prompt is the system prompt");
    // Exactly its declared tools, each with the registry's description and schema.
    let offered = reqs[0]["tools"].as_array().unwrap();
    let names: Vec<&str> = offered.iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["detect_ioc", "collect_evidence", "generate_report", "contain_threat"]);
    for t in offered {
        let name = warden::tools::ToolName::parse(t["function"]["name"].as_str().unwrap()).unwrap();
        let spec = warden::tools::registry::spec(name).unwrap();
        assert_eq!(t["function"]["description"], spec.description);
        assert_eq!(t["function"]["parameters"], spec.schema(), "{name}");
    }
    assert!(reqs[1].to_string().contains("login-verify.example.net (domain) in feed phish"), "{}", reqs[1]);

    // A brute force: the playbook's last step hands the incident to the analyst, whose
    // answer comes back as a note on it.
    fake.script(vec![Reply::Text("Not phishing: password guessing. Keep the block.".into())]);
    assert_eq!(d.post("/v1/inject", &detection("203.0.113.60")).unwrap().status, 202);
    let inc = eventually(30, "the analyst's note on the incident", || {
        incident_for(&d.incidents(), "203.0.113.60")
            .filter(|i| {
                notes(i).iter().any(|n| n == "phishing-analyst: Not phishing: password guessing. Keep the block.")
            })
            .cloned()
    });
    let id = inc["id"].as_str().unwrap().to_string();
    let steps = &inc["playbook"]["steps"];
    assert!(steps.as_array().unwrap().iter().any(|s| s["id"] == "ask-analyst" && s["outcome"] == "done"), "{steps}");

    // Its containment is a request: incident response decides (observe mode: a dry run).
    fake.script(vec![
        Reply::Tool {
            name: "contain_threat",
            arguments: serde_json::json!({ "incident_id": id, "action": "block_ip", "target": "198.51.100.23",
                "reason": "the phishing page's host" }),
        },
        Reply::Text("Requested a block of the page's host.".into()),
    ]);
    let out = d.cli(&["ask", "--to", "phishing-analyst", "--incident", &id, "Block the phishing host."]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let action = eventually(20, "incident response's decision on the analyst's request", || {
        let incs = d.incidents();
        let inc = incs.iter().find(|i| i["id"] == id.as_str())?;
        inc["actions"].as_array()?.iter().find(|a| a["target"] == "198.51.100.23").cloned()
    });
    assert_eq!((action["kind"].as_str(), action["status"].as_str()), (Some("block_ip"), Some("dry_run")));
    assert!(action["reason"].as_str().unwrap().starts_with("requested by the language model"), "{action}");

    // Supervised like the others: a panic restarts it.
    assert_eq!(d.post("/v1/testing/agents/phishing-analyst/panic", "").unwrap().status, 202);
    fake.script(vec![Reply::Text("still here".into())]);
    let _ = d.cli(&["ask", "--to", "phishing-analyst", "are you there?"]);
    let me = eventually(20, "the analyst restarted", || {
        d.agents()
            .into_iter()
            .find(|a| a["name"] == "phishing-analyst" && a["restarts"] == 1 && a["state"] == "running")
    });
    assert_eq!(me["kind"], "custom");
}

#[test]
fn lint_refuses_what_a_custom_agent_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let actors = analyst_actors(tmp.path());
    let bad = AGENT
        .replace("handles = [\"instruction\", \"handoff\"]", "handles = [\"instruction\", \"detection\"]")
        .replace("prompt = \"prompt.md\"\n", "rules = \"rules\"\n");
    std::fs::write(actors.join("phishing-analyst/agent.toml"), bad).unwrap();
    let out = std::process::Command::new(BIN).args(["lint", "--actors"]).arg(&actors).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "phishing-analyst/agent.toml:4: a custom agent handles `instruction` and `handoff` only, not `detection`",
        "phishing-analyst/agent.toml:1: a custom agent needs a `prompt` file: it is the agent",
        "phishing-analyst/agent.toml:6: `rules` applies only to threat-detection agents, not `custom`",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}
