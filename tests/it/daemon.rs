//! End-to-end tests with the real binary: tailing through rotations, crash safety,
//! supervision with fault injection, and the admin API's error cases.

use std::path::Path;

use crate::support::*;

fn file_source(log: &Path) -> String {
    format!(
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        log.display().to_string()
    )
}

fn lines_processed(d: &Daemon) -> u64 {
    d.metric("warden_source_lines_total{source=\"auth\"}").unwrap_or(0)
}

/// An injected Detection envelope for `ip`, with a fresh finding id.
fn detection(ip: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({ "payload": {
        "kind": "detection", "id": uuid::Uuid::new_v4(), "rule": "ssh_brute_force", "title": "injected",
        "severity": "high", "src_ip": ip, "first_seen": now, "last_seen": now, "event_count": 5,
    }})
    .to_string()
}

fn block_action(incident: &serde_json::Value) -> Option<&serde_json::Value> {
    incident["actions"].as_array()?.iter().find(|a| a["kind"] == "block_ip")
}

#[test]
fn brute_force_through_rotations_becomes_a_dry_run_block() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    // The file does not exist yet: the tail waits for it.
    let d = Daemon::start(tmp.path(), &file_source(&log), "", None);

    // Attacker A: three failures, then a rename+create rotation, then two more.
    let a = "203.0.113.10";
    let first: String = (0..3).map(|i| failed(a, "root", i)).collect();
    append(&log, &first);
    eventually(20, "first lines read", || (lines_processed(&d) == 3).then_some(()));
    std::fs::rename(&log, tmp.path().join("auth.log.1")).unwrap();
    append(&log, &(3..5).map(|i| failed(a, "root", i)).collect::<String>());

    // Attacker B: three failures, then copytruncate, then two more.
    let b = "198.51.100.20";
    append(&log, &(10..13).map(|i| failed(b, "admin", i)).collect::<String>());
    eventually(20, "lines before copytruncate read", || (lines_processed(&d) == 8).then_some(()));
    std::fs::copy(&log, tmp.path().join("auth.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    eventually(20, "truncation noticed", || {
        (d.metric("warden_file_truncations_total{source=\"auth\"}").unwrap_or(0) == 1).then_some(())
    });
    append(&log, &(13..15).map(|i| failed(b, "admin", i)).collect::<String>());

    let incidents = eventually(20, "both incidents with their dry-run blocks", || {
        let all = d.incidents();
        let ok = [a, b].iter().all(|ip| incident_for(&all, ip).and_then(block_action).is_some());
        ok.then_some(all)
    });
    assert_eq!(incidents.len(), 2, "{incidents:#?}");
    for ip in [a, b] {
        let inc = incident_for(&incidents, ip).unwrap();
        assert_eq!(inc["type"], "brute_force");
        assert_eq!(inc["triage"]["kind"], "brute_force");
        assert!(inc["triage"]["deadline"].is_string(), "{inc:#}");
        assert!(
            inc["triage"]["reasons"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().contains("unknown asset"))
        );
        assert_eq!(inc["status"], "triaged");
        assert!(inc["severity"].is_string() && inc["priority"].is_string());
        assert_eq!(inc["findings"].as_array().unwrap().len(), 1);
        assert_eq!(inc["findings"][0]["event_count"], 5);
        let act = block_action(inc).unwrap();
        assert_eq!(act["target"], ip);
        assert_eq!(act["mode"], "observe");
        assert_eq!(act["status"], "dry_run");
        let argv: Vec<&str> = act["argv"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(
            argv,
            ["nft", "add", "element", "inet", "warden", "blocklist_v4", &format!("{{ {ip} timeout 3600s }}")]
        );
    }
    assert_eq!(d.metric("warden_file_rotations_total{source=\"auth\"}"), Some(1));
    // The in-place truncation is also recorded as a (low) log-tampering finding.
    let findings: Vec<serde_json::Value> = serde_json::from_str(&d.get("/v1/findings").unwrap().body).unwrap();
    assert_eq!(findings.iter().filter(|f| f["rule"] == "log_file_truncated").count(), 1, "{findings:#?}");
    assert_eq!(lines_processed(&d), 10);

    // The CLI reads the same incidents through the API.
    let out = d.cli(&["incidents", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli.len(), 2);
    let id = cli[0]["id"].as_str().unwrap();
    let one = d.cli(&["incident", id]);
    assert!(String::from_utf8_lossy(&one.stdout).contains(id));
}

#[test]
fn kill_9_while_appending_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let mut d = Daemon::start(tmp.path(), &file_source(&log), "", None);

    // 30 attackers (198.18.0.0/15 is for testing; none of these is this host's own
    // address, which would be protected) with 6 failures each, interleaved with benign lines; written in
    // small chunks so the kill lands while lines are being appended and read.
    let mut lines = Vec::new();
    for round in 0..6u32 {
        for n in 0..30u32 {
            // One account per attacker: 30 addresses failing as the same account would
            // (rightly) add a distributed brute-force incident.
            lines.push(failed(&format!("198.18.7.{}", n + 1), &format!("user{n}"), round * 40 + n));
            lines.push(auth_line(round * 40 + n, "pam_unix(sshd:session): session closed for user deploy"));
            lines.push(
                auth_line(round * 40 + n, "x")
                    .replace("sshd[", "CRON[")
                    .replace(": x", ": (root) CMD (run-parts /etc/cron.hourly)"),
            );
        }
    }
    let total = lines.len() as u64;
    // Kill after the fifth failure of half of the attackers: findings, incidents and
    // actions are being handled when the process dies.
    let half = 4 * 90 + 45;
    for chunk in lines[..half].chunks(7) {
        append(&log, &chunk.concat());
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    d.kill9();
    // More lines arrive while Warden is down.
    for chunk in lines[half..].chunks(7) {
        append(&log, &chunk.concat());
    }
    d.spawn();

    eventually(30, "every line processed after restart", || (lines_processed(&d) == total).then_some(()));
    let incidents = eventually(30, "30 incidents with actions", || {
        let all = d.incidents();
        (all.len() == 30 && all.iter().all(|i| block_action(i).is_some())).then_some(all)
    });
    assert_eq!(d.metric("warden_auth_events_total{kind=\"failure\"}"), Some(180), "each failure counted exactly once");
    for n in 1..=30 {
        let ip = format!("198.18.7.{n}");
        let matching: Vec<_> =
            incidents.iter().filter(|i| i["entities"].as_array().unwrap().iter().any(|e| e == ip.as_str())).collect();
        assert_eq!(matching.len(), 1, "exactly one incident for {ip}");
        assert_eq!(matching[0]["findings"].as_array().unwrap().len(), 1, "one finding for {ip}");
        assert_eq!(matching[0]["actions"].as_array().unwrap().len(), 1, "one action for {ip}");
    }
    // Nothing is left unacknowledged, and the ledger is intact.
    eventually(10, "inbox drained", || (d.metric("warden_inbox_depth") == Some(0)).then_some(()));
    let verify: serde_json::Value = serde_json::from_str(&d.get("/v1/audit/verify").unwrap().body).unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn a_panicking_agent_is_restarted_and_its_message_redelivered_until_the_budget_is_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let actors = copy_actors(tmp.path());
    let ir = actors.join("incident-response/agent.toml");
    let text = std::fs::read_to_string(&ir).unwrap().replace("max_restarts = 5", "max_restarts = 2\nbackoff_ms = 20");
    std::fs::write(&ir, text).unwrap();
    let d = Daemon::start(tmp.path(), "", "[testing]\nfault_injection = true\n", Some(actors));

    let restarts = |d: &Daemon| {
        d.agents()
            .into_iter()
            .find(|a| a["name"] == "incident-response")
            .map(|a| (a["state"].as_str().unwrap().to_string(), a["restarts"].as_u64().unwrap()))
    };
    let arm = |d: &Daemon, fault: &str| {
        eventually(10, "incident-response running", || (restarts(d).unwrap().0 == "running").then_some(()));
        let r = d.post(&format!("/v1/testing/agents/incident-response/{fault}"), "").unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    };

    // 1. Panic while handling a detection: restarted, and the detection is delivered again.
    arm(&d, "panic");
    let r = d.post("/v1/inject", &detection("203.0.113.50")).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let inc = eventually(20, "incident after redelivery", || incident_for(&d.incidents(), "203.0.113.50").cloned());
    assert_eq!(inc["findings"].as_array().unwrap().len(), 1);
    assert_eq!(restarts(&d).unwrap().1, 1);
    assert!(d.stderr().contains("fault injection: agent `incident-response` panics"));

    // 2. A fatal error (rather than a panic) is handled the same way, within the budget of 2.
    arm(&d, "fail");
    d.post("/v1/inject", &detection("203.0.113.51")).unwrap();
    eventually(20, "second incident", || incident_for(&d.incidents(), "203.0.113.51").cloned());
    assert_eq!(restarts(&d).unwrap().1, 2);
    let ir = d.agents().into_iter().find(|a| a["name"] == "incident-response").unwrap();
    assert!(ir["last_error"].as_str().unwrap().contains("fails on envelope"), "{ir}");

    // 3. The third exhausts it: the agent is failed and an incident says so.
    arm(&d, "panic");
    d.post("/v1/inject", &detection("203.0.113.52")).unwrap();
    eventually(20, "agent marked failed", || (restarts(&d).unwrap().0 == "failed").then_some(()));
    let failed =
        eventually(10, "agent-failed incident", || d.incidents().into_iter().find(|i| i["type"] == "agent_failed"));
    assert!(failed["title"].as_str().unwrap().contains("incident-response"));
    // The undelivered detection is kept, not lost.
    let ir = d.agents().into_iter().find(|a| a["name"] == "incident-response").unwrap();
    assert_eq!(ir["mailbox_depth"], 1);
    let out = d.cli(&["agents"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("incident-response") && l.contains("failed")), "{text}");
    let health: serde_json::Value = serde_json::from_str(&d.get("/v1/health").unwrap().body).unwrap();
    assert_eq!(health["status"], "degraded");
}

#[test]
fn fault_injection_is_off_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(tmp.path(), "", "", None);
    assert_eq!(d.post("/v1/testing/agents/incident-response/panic", "").unwrap().status, 404);
    assert_eq!(d.post("/v1/testing/agents/incident-response/fail", "").unwrap().status, 404);
}

#[test]
fn admin_rejects_bad_requests_and_routes_injected_envelopes() {
    use warden::admin::client::request;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let mut d = Daemon::start(tmp.path(), &file_source(&log), "", None);

    // The token file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data_dir.join("admin.token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // 401: missing or wrong token, on every endpoint.
    for path in ["/v1/health", "/v1/incidents", "/metrics", "/v1/agents"] {
        assert_eq!(request(d.addr, "GET", path, None, None).unwrap().status, 401, "{path}");
        assert_eq!(request(d.addr, "GET", path, Some("wrong"), None).unwrap().status, 401, "{path}");
    }
    assert_eq!(request(d.addr, "POST", "/v1/inject", None, Some("{not json")).unwrap().status, 401);
    // The scheme is case-insensitive (RFC 9110): `bearer` and `BEARER` are `Bearer`.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(d.addr).unwrap();
        write!(
            s,
            "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nauthorization: {scheme}  {}\r\n\r\n",
            d.token
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{scheme}: {answer}");
    }
    // 400: malformed JSON, unknown payload kind, unknown fields, unknown agent.
    let r = d.post("/v1/inject", "{not json").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("malformed JSON"), "{}", r.body);
    let r = d.post("/v1/inject", r#"{"payload": {"kind": "nonsense"}}"#).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nonsense"), "{}", r.body);
    let r = d.post("/v1/inject", r#"{"payload": {"kind": "instruction", "text": "x"}, "to": "nobody"}"#).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("nobody"), "{}", r.body);
    // A scan request that is not a valid body is refused — it used to scan everything.
    for body in ["{not json", r#"{"targets": "web-1"}"#, r#"["web-1"]"#] {
        let r = d.post("/v1/scan", body).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = d.post("/v1/inject", r#"{"source": "nope", "lines": []}"#).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(d.post("/v1/inject", r#"{"hello": 1}"#).unwrap().status, 400);
    assert_eq!(d.get("/v1/incidents/not-a-uuid").unwrap().status, 400);
    assert_eq!(d.get(&format!("/v1/incidents/{}", uuid::Uuid::new_v4())).unwrap().status, 404);
    // 413: a body over the configured 64 KiB limit.
    let big = format!(r#"{{"source": "auth", "lines": ["{}"]}}"#, "a".repeat(70_000));
    assert_eq!(d.post("/v1/inject", &big).unwrap().status, 413);

    // An injected Detection envelope becomes a triaged incident with a dry-run block.
    let r = d.post("/v1/inject", &detection("198.51.100.77")).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    let id: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(uuid::Uuid::parse_str(id["envelope_id"].as_str().unwrap()).is_ok());
    let inc = eventually(20, "injected incident", || {
        incident_for(&d.incidents(), "198.51.100.77").cloned().filter(|i| block_action(i).is_some())
    });
    assert_eq!(inc["status"], "triaged");

    // A Detection against a protected address opens an incident but proposes nothing.
    assert_eq!(d.post("/v1/inject", &detection("127.0.0.1")).unwrap().status, 202);
    let inc = eventually(20, "protected incident triaged", || {
        incident_for(&d.incidents(), "127.0.0.1").cloned().filter(|i| i["status"] == "triaged")
    });
    assert!(inc["actions"].as_array().unwrap().is_empty(), "{inc:#}");
    assert!(inc["notes"][0].as_str().unwrap().contains("protected"));

    // Raw lines for a named source go through detection like read ones.
    let lines: Vec<String> = (0..5).map(|i| failed("203.0.113.99", "oracle", i).trim_end().to_string()).collect();
    let r = d.post("/v1/inject", &serde_json::json!({ "source": "auth", "lines": lines }).to_string()).unwrap();
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["findings"], 1);
    eventually(20, "incident from injected lines", || incident_for(&d.incidents(), "203.0.113.99").cloned());

    // The CLI inject, status and audit verify work against the same daemon.
    let out =
        d.cli(&["inject", "--payload", r#"{"kind":"instruction","text":"hello"}"#, "--to", "vulnerability-management"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(d.cli(&["status"]).status.success());
    let out = d.cli(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit ledger OK"), "{out:?}");
    let metrics = d.get("/metrics").unwrap();
    assert!(metrics.body.contains("# TYPE warden_findings_total counter"));

    // SIGTERM stops it cleanly.
    assert_eq!(d.terminate(), Some(0));
    assert!(d.stderr().contains("knowledge base flushed"));
}

#[test]
fn hostile_input_is_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, b"").unwrap(); // An empty file to start with.
    let d = Daemon::start(tmp.path(), &file_source(&log), "", None);
    let mut garbage: Vec<u8> =
        (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).filter(|b| *b != b'\n').collect();
    garbage.push(b'\n');
    let mut data = Vec::new();
    data.extend_from_slice(b"\xff\xfe invalid utf-8 \xc3\x28\n");
    data.extend_from_slice(&garbage);
    data.extend(std::iter::repeat_n(b'A', 10 * 1024 * 1024)); // 10 MB without a newline...
    data.extend_from_slice(b"\n"); // ...finally ended.
    for i in 0..5 {
        data.extend_from_slice(failed("203.0.113.77", "root\u{1b}[31m", i).as_bytes());
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
        .unwrap();
    let inc = eventually(30, "incident after garbage", || incident_for(&d.incidents(), "203.0.113.77").cloned());
    assert!(d.metric("warden_lines_invalid_utf8_total{source=\"auth\"}").unwrap() >= 2);
    assert_eq!(d.metric("warden_lines_truncated_total{source=\"auth\"}"), Some(1));
    // Control characters from the log never reach the record raw.
    assert!(!inc.to_string().contains('\u{1b}'));
    // The tailed file is deleted: counted, logged, and a new file is picked up.
    std::fs::remove_file(&log).unwrap();
    eventually(20, "missing file counted", || {
        (d.metric("warden_file_missing_total{source=\"auth\"}").unwrap_or(0) >= 1).then_some(())
    });
    append(&log, &(0..5).map(|i| failed("203.0.113.78", "root", 100 + i)).collect::<String>());
    eventually(20, "incident from the new file", || incident_for(&d.incidents(), "203.0.113.78").cloned());
    assert!(d.stderr().contains("line too long, cut"));
    assert!(d.stderr().contains("tailed file was removed"));
    assert!(!d.stderr().contains("panicked"));
}

/// `GET /v1/health` says in which mode each containment action runs: the configured
/// one, unless a definition restricts it — and then which line does.
#[test]
fn health_shows_the_effective_mode_of_each_containment_action() {
    let tmp = tempfile::tempdir().unwrap();
    let actors = copy_actors(tmp.path());
    let ir = actors.join("incident-response/agent.toml");
    let def = std::fs::read_to_string(&ir).unwrap();
    std::fs::write(&ir, format!("{def}\n[response.autonomy]\ndisable_account = \"approve\"\n")).unwrap();
    let d = Daemon::start(tmp.path(), "", "[response]\nmode = \"enforce\"\n", Some(actors));
    let health: serde_json::Value = serde_json::from_str(&d.get("/v1/health").unwrap().body).unwrap();
    let c = &health["containment"];
    assert_eq!(
        (c["configured"].as_str(), c["agent"].as_str()),
        (Some("enforce"), Some("incident-response")),
        "{health:#}"
    );
    assert_eq!(c["actions"]["block_ip"]["mode"], "enforce");
    assert_eq!(c["actions"]["block_ip"]["restricted_by"], serde_json::json!([]));
    assert_eq!(c["actions"]["disable_account"]["mode"], "approve");
    let why = c["actions"]["disable_account"]["restricted_by"][0].as_str().unwrap();
    assert!(why.ends_with("incident-response/agent.toml: [response.autonomy] disable_account = \"approve\""), "{why}");
    assert!(d.stderr().contains("a definition holds this action to a stricter mode than the configuration"));
}
