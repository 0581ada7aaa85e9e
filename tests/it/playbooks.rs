//! Playbooks through the whole daemon: a compromised account runs its playbook up to
//! the approval gate, the daemon is killed (`kill -9`) while it waits, and after the
//! restart an approval resumes the run at the next step — no step runs twice. A
//! rejected gate aborts the run.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn file_source(log: &Path) -> String {
    format!(
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        log.display().to_string()
    )
}

/// Six failures then a success for `nobody` (an account every Linux has; in observe
/// mode nothing is done to it) from `ip`.
fn compromise(log: &Path, ip: &str) {
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&failed(ip, "nobody", i));
    }
    text.push_str(&auth_line(7, &format!("Accepted password for nobody from {ip} port 40007 ssh2")));
    append(log, &text);
}

fn run_of(d: &Daemon, ip: &str) -> Option<serde_json::Value> {
    let all = d.incidents();
    let inc = incident_for(&all, ip)?;
    Some(inc.clone())
}

fn outcomes(inc: &serde_json::Value) -> Vec<String> {
    inc["playbook"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}:{}", s["id"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_playbook_resumes_after_kill_9_without_repeating_a_step() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let mut d = Daemon::start(tmp.path(), &file_source(&log), "", None);
    let ip = "198.18.9.9";
    compromise(&log, ip);
    let inc = eventually(30, "the playbook to wait for approval", || {
        run_of(&d, ip).filter(|i| i["playbook"]["status"] == "waiting")
    });
    assert_eq!(inc["type"], "credential_compromise");
    assert_eq!(inc["playbook"]["playbook"], "compromised-account");
    assert_eq!(outcomes(&inc), ["block-attacker:requested", "collect-evidence:done", "approve-account-lock:waiting"]);
    assert_eq!(inc["evidence"].as_array().unwrap().len(), 2, "log lines and a host snapshot: {inc:#}");
    // Evidence lines point back into the file: at each offset is that very line.
    let text = std::fs::read(&log).unwrap();
    let mut refs = 0;
    for f in inc["findings"].as_array().unwrap() {
        for r in f["evidence_refs"].as_array().into_iter().flatten() {
            assert_eq!(r["file"], log.display().to_string());
            let at = r["offset"].as_u64().unwrap() as usize;
            let end = at + text[at..].iter().position(|b| *b == b'\n').unwrap();
            let line = std::str::from_utf8(&text[at..end]).unwrap();
            use sha2::Digest;
            assert_eq!(r["sha256"], format!("{:x}", sha2::Sha256::digest(line.as_bytes())));
            assert!(f["evidence"].as_array().unwrap().iter().any(|e| e == line));
            refs += 1;
        }
    }
    assert!(refs >= 2, "{inc:#}");
    let gate = inc["playbook"]["gate"].as_str().unwrap().to_string();
    eventually(20, "the block action", || run_of(&d, ip).filter(|i| i["actions"].as_array().unwrap().len() == 1));
    // Make the state durable (an injected line is flushed with everything before it),
    // then crash.
    let r = d.post(
        "/v1/inject",
        &serde_json::json!({ "source": "auth", "lines": ["Mar  1 00:00:00 h x: flush"] }).to_string(),
    );
    assert_eq!(r.unwrap().status, 202);
    d.kill9();
    d.spawn();

    let out = d.cli(&["approve", &gate, "--by", "carol"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inc = eventually(30, "the run to finish", || run_of(&d, ip).filter(|i| i["playbook"]["status"] == "done"));
    assert_eq!(
        outcomes(&inc),
        [
            "block-attacker:requested",
            "collect-evidence:done",
            "approve-account-lock:waiting",
            "approve-account-lock:approved",
            "disable-account:requested",
            "notify-owner:done",
            "report:done"
        ]
    );
    let actions = inc["actions"].as_array().unwrap();
    let kinds: Vec<&str> = actions.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["block_ip", "disable_account"], "the block was not repeated: {inc:#}");
    assert_eq!(actions[1]["target"], "nobody");
    assert_eq!(actions[1]["status"], "dry_run", "observe mode: recorded, not run");
    assert_eq!(actions[1]["argv"], serde_json::json!(["usermod", "--lock", "--expiredate", "1", "--", "nobody"]));
    assert!(inc["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("approved by carol")));
    let verify: serde_json::Value = serde_json::from_str(&d.get("/v1/audit/verify").unwrap().body).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");

    // Reports, both audiences, every format, from the CLI.
    let id = inc["id"].as_str().unwrap();
    let md = d.cli(&["report", id, "--audience", "executive", "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout).to_string();
    assert!(md.contains("## What happened") && md.contains("account compromise") && md.contains("198.18.9.9"), "{md}");
    let html = String::from_utf8_lossy(&d.cli(&["report", id, "--format", "html"]).stdout).to_string();
    assert!(html.contains("<h2>Actions</h2>") && html.contains("usermod --lock --expiredate 1 -- nobody"), "{html}");
    let json = d.cli(&["report", id, "--audience", "technical", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["incident"], id);
    assert!(json["sections"].as_array().unwrap().iter().any(|s| s["heading"] == "ATT&CK"));
    assert_eq!(d.get(&format!("/v1/incidents/{id}/report?format=pdf")).unwrap().status, 400);

    // Evidence: exported as a bundle (a custody event), verified, and a tampered copy
    // is caught with the item named.
    let bundle = tmp.path().join("bundle.tar");
    let out = d.cli(&["evidence", "export", id, "--out", bundle.to_str().unwrap(), "--by", "erin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = d.cli(&["evidence", "verify", bundle.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("OK, 2 items") && text.contains("recorded in the audit ledger"),
        "{text}"
    );
    let log_item = inc["evidence"].as_array().unwrap().iter().find(|e| e["kind"] == "log_lines").unwrap();
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes.windows(6).position(|w| w == b"nobody").expect("the log lines are in the bundle");
    bytes[at] = b'N';
    std::fs::write(&bundle, &bytes).unwrap();
    let out = d.cli(&["evidence", "verify", bundle.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(log_item["sha256"].as_str().unwrap()) && text.contains("does not match"), "{text}");
    let verify: serde_json::Value = serde_json::from_str(&d.get("/v1/audit/verify").unwrap().body).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_rejected_gate_aborts_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let d = Daemon::start(tmp.path(), &file_source(&log), "", None);
    let ip = "198.18.9.10";
    compromise(&log, ip);
    let inc = eventually(30, "the gate", || run_of(&d, ip).filter(|i| i["playbook"]["status"] == "waiting"));
    let gate = inc["playbook"]["gate"].as_str().unwrap();
    let listed = String::from_utf8_lossy(&d.cli(&["incidents"]).stdout).to_string();
    assert!(listed.contains(&format!("waiting for approval: warden approve {gate}")), "{listed}");
    let out = Command::new(BIN).args(["reject", gate, "--by", "dave"]).arg("--config").arg(&d.config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("step reject: rejected"), "{out:?}");
    let inc = eventually(30, "the run to abort", || run_of(&d, ip).filter(|i| i["playbook"]["status"] == "aborted"));
    assert_eq!(outcomes(&inc).last().unwrap(), "approve-account-lock:rejected");
    assert_eq!(inc["actions"].as_array().unwrap().len(), 1, "no account was touched");
}

/// An attacker-chosen account name with shell metacharacters and an option-like start
/// reaches the playbook's `disable_account` step: it is refused before any command is
/// built (no action recorded for it), and the reports stay well-formed.
#[test]
fn a_hostile_account_name_changes_no_command() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let d = Daemon::start(tmp.path(), &file_source(&log), "", None);
    let ip = "198.18.9.11";
    let user = "--expiredate;reboot`id`";
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&failed(ip, user, i));
    }
    text.push_str(&auth_line(7, &format!("Accepted password for {user} from {ip} port 40007 ssh2")));
    append(&log, &text);
    let inc = eventually(30, "the gate", || run_of(&d, ip).filter(|i| i["playbook"]["status"] == "waiting"));
    let gate = inc["playbook"]["gate"].as_str().unwrap().to_string();
    assert!(d.cli(&["approve", &gate, "--by", "carol"]).status.success());
    let inc = eventually(30, "the run to finish", || run_of(&d, ip).filter(|i| i["playbook"]["status"] == "done"));
    let actions = inc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "only the block: {inc:#}");
    assert_eq!(actions[0]["kind"], "block_ip");
    let notes: Vec<&str> = inc["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(
        notes.iter().any(|n| n.contains("disable_account") && n.contains("not a valid account name")),
        "{notes:#?}"
    );
    let id = inc["id"].as_str().unwrap();
    let html = String::from_utf8_lossy(&d.cli(&["report", id, "--format", "html"]).stdout).to_string();
    assert!(html.contains("--expiredate;reboot`id`"), "shown as text: {html}");
    let md = String::from_utf8_lossy(&d.cli(&["report", id, "--audience", "executive"]).stdout).to_string();
    assert!(
        md.lines().filter(|l| l.starts_with('#')).all(|l| l.starts_with("# Incident report") || l.starts_with("## "))
    );
}

/// An injected detection of the given rule, techniques and tactics from `ip`.
fn detect(d: &Daemon, ip: &str, rule: &str, techniques: &[&str], tactics: &[&str]) {
    let now = chrono::Utc::now().to_rfc3339();
    let body = serde_json::json!({ "payload": {
        "kind": "detection", "id": uuid::Uuid::new_v4(), "rule": rule, "title": format!("injected {rule}"),
        "severity": "critical", "src_ip": ip, "first_seen": now, "last_seen": now, "event_count": 1,
        "techniques": techniques, "tactics": tactics, "host": "files1",
    }});
    assert_eq!(d.post("/v1/inject", &body.to_string()).unwrap().status, 202);
}

/// The ransomware and phishing playbooks, from an injected detection to the end of the
/// run (the detectors in this build do not produce those types from logs).
#[test]
fn ransomware_and_phishing_playbooks_run_through_the_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), "", "", None);
    detect(&d, "198.18.9.20", "mass_file_encryption", &["T1486"], &["TA0040"]);
    let inc = eventually(30, "the ransomware run to wait", || {
        run_of(&d, "198.18.9.20").filter(|i| i["playbook"]["status"] == "waiting")
    });
    assert_eq!(inc["type"], "ransomware");
    assert_eq!(inc["playbook"]["playbook"], "ransomware");
    assert!(d.cli(&["approve", inc["playbook"]["gate"].as_str().unwrap(), "--by", "frank"]).status.success());
    let inc = eventually(30, "the ransomware run to finish", || {
        run_of(&d, "198.18.9.20").filter(|i| i["playbook"]["status"] == "done")
    });
    assert_eq!(
        outcomes(&inc),
        [
            "notify-now:done",
            "approve-isolation:waiting",
            "approve-isolation:approved",
            "isolate-host:requested",
            "collect-evidence:done",
            "report:done"
        ]
    );
    // No management network is configured: isolating this host is refused, and said.
    let notes = inc["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("isolate_host of local denied")), "{notes:#?}");

    detect(&d, "198.18.9.21", "phishing_sender", &["T1566.001"], &["TA0001"]);
    let inc =
        eventually(30, "the phishing run", || run_of(&d, "198.18.9.21").filter(|i| i["playbook"]["status"] == "done"));
    assert_eq!(inc["type"], "phishing");
    assert_eq!(outcomes(&inc), ["block-sender:requested", "notify-users:done", "report:done"]);
}

/// A Sigma correlation (five non-existent accounts from one address) completed in a
/// later batch than its first lines: its finding points at all five lines by file,
/// offset and hash, `collect_evidence` reads them back from the file, and a line
/// rewritten since is reported as such, not passed off as the original.
#[test]
fn a_correlation_names_its_earlier_lines_and_evidence_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let d = Daemon::start(tmp.path(), &file_source(&log), "", None);
    let ip = "198.18.7.7";
    let invalid = |i: u32, user: &str| auth_line(i, &format!("Invalid user {user} from {ip} port {}", 41000 + i));
    append(&log, &(0..3).map(|i| invalid(i, ["zeus", "hera", "ares"][i as usize])).collect::<String>());
    eventually(20, "the first three lines to be read", || {
        (d.metric("warden_source_lines_total{source=\"auth\"}").unwrap_or(0) >= 3).then_some(())
    });
    append(&log, &(3..5).map(|i| invalid(i, ["hermes", "apollo"][i as usize - 3])).collect::<String>());
    let inc = eventually(30, "the enumeration finding", || {
        d.incidents()
            .into_iter()
            .find(|i| i["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "ssh_invalid_user_enumeration"))
    });
    let f = inc["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "ssh_invalid_user_enumeration").unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let starts: Vec<u64> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1)).take(5).collect();
    let offsets: Vec<u64> =
        f["evidence_refs"].as_array().unwrap().iter().map(|r| r["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, starts, "{f:#}");

    let incident: warden::messages::Incident = serde_json::from_value(inc.clone()).unwrap();
    let mut policy = warden::tools::response::actions::ContainPolicy::new(std::sync::Arc::new(
        warden::tools::response::Protected::new(&[]),
    ));
    policy.evidence_dir = tmp.path().join("evidence");
    let collect = |policy: &warden::tools::response::actions::ContainPolicy| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match rt.block_on(warden::tools::response::collect_evidence::collect(&incident, &[], false, policy)) {
            warden::tools::ToolOutcome::Succeeded(warden::tools::response::collect_evidence::Evidence {
                items,
                ..
            }) => {
                let item = items.iter().find(|i| i.kind == "log_lines").expect("log lines collected");
                std::fs::read_to_string(policy.evidence_dir.join(incident.id.to_string()).join(&item.name)).unwrap()
            }
            other => panic!("{}", other.summary()),
        }
    };
    let lines = collect(&policy);
    for (user, at) in ["zeus", "hera", "ares", "hermes", "apollo"].iter().zip(&starts) {
        let row = lines
            .lines()
            .find(|l| l.contains(&format!("{}:{at} sha256:", log.display())))
            .unwrap_or_else(|| panic!("no line at {at}:\n{lines}"));
        assert!(
            row.ends_with(&format!(
                "Invalid user {user} from {ip} port {}",
                41000 + starts.iter().position(|s| s == at).unwrap()
            )),
            "{row}"
        );
    }
    // The first line rewritten in place (same length): no longer the line that was read.
    let mut bytes = text.into_bytes();
    let at = bytes.windows(4).position(|w| w == b"zeus").unwrap();
    bytes[at..at + 4].copy_from_slice(b"ZEUS");
    std::fs::write(&log, &bytes).unwrap();
    policy.evidence_dir = tmp.path().join("evidence2");
    let lines = collect(&policy);
    // The enumeration's reference (a brute-force finding over the same lines quotes the
    // line as it was read, with its hash: that copy stays what was read).
    let row = lines
        .lines()
        .find(|l| l.contains("\tssh_invalid_user_enumeration\t") && l.contains(&format!("{}:0 sha256:", log.display())))
        .unwrap();
    assert!(row.contains("not available") && row.contains("hash differs") && !row.contains("ZEUS"), "{row}");
}
