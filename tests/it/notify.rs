//! Webhook notifications with the real daemon and a webhook receiver on 127.0.0.1:
//! retried with backoff until it answers, counted; a dead webhook never holds a
//! playbook up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::*;

/// Answers 500 to the first `failures` requests, 200 after; records every body.
fn receiver(failures: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    receiver_on(0, failures)
}

fn receiver_on(port: u16, failures: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let n = {
                let mut b = seen.lock().unwrap();
                b.push(String::from_utf8_lossy(&body).to_string());
                b.len()
            };
            let status = if n <= failures { "500 Internal Server Error" } else { "200 OK" };
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
        }
    });
    (port, bodies)
}

fn brute_force(d: &Daemon, ip: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let body = serde_json::json!({ "payload": {
        "kind": "detection", "id": uuid::Uuid::new_v4(), "rule": "ssh_brute_force", "title": "SSH brute force <@channel>",
        "severity": "high", "src_ip": ip, "first_seen": now, "last_seen": now, "event_count": 9,
        "techniques": ["T1110.001"], "tactics": ["TA0006"],
    }});
    assert_eq!(d.post("/v1/inject", &body.to_string()).unwrap().status, 202);
}

#[test]
fn notifications_are_retried_until_delivered() {
    let (port, bodies) = receiver(2);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[notify]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nformat = \"slack\"\nretries = 4\nbackoff_ms = 20\n"
    );
    let d = Daemon::start(tmp.path(), "", &cfg, None);
    brute_force(&d, "198.18.9.30");
    eventually(30, "the notification delivered", || {
        (d.metric("warden_notifications_sent_total") == Some(1)).then_some(())
    });
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "two refusals, then delivered: {bodies:?}");
    let v: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("*[high] SSH brute force &lt;@channel&gt;*"), "{text}");
    assert_eq!(d.metric("warden_notifications_failed_total"), Some(0));
}

#[test]
fn a_dead_webhook_is_counted_and_does_not_block_the_playbook() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!("[notify]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nretries = 2\nbackoff_ms = 10\n");
    let d = Daemon::start(tmp.path(), "", &cfg, None);
    brute_force(&d, "198.18.9.31");
    let inc = eventually(30, "the playbook to finish", || {
        d.incidents().into_iter().find(|i| i["entities"][0] == "198.18.9.31" && i["playbook"]["status"] == "done")
    });
    assert!(
        inc["playbook"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "notify-oncall" && s["outcome"] == "done")
    );
    eventually(30, "the failure counted", || (d.metric("warden_notifications_failed_total") == Some(1)).then_some(()));
}

/// A notification raised while the webhook is down is in the durable outbox: killed
/// with `kill -9` and restarted, Warden delivers it once the webhook answers.
#[test]
fn a_pending_notification_survives_kill_9() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!("[notify]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nretries = 1000\nbackoff_ms = 100\n");
    let mut d = Daemon::start(tmp.path(), "", &cfg, None);
    brute_force(&d, "198.18.9.32");
    let inc = eventually(30, "the notify step done (its notification queued)", || {
        d.incidents().into_iter().find(|i| {
            i["entities"][0] == "198.18.9.32"
                && i["playbook"]["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["id"] == "notify-oncall" && s["outcome"] == "done"))
        })
    });
    d.kill9();
    // Nothing was delivered: nothing listened. Now the webhook is up, and Warden again.
    let (_, bodies) = receiver_on(port, 0);
    d.spawn();
    eventually(30, "the notification delivered after the restart", || {
        (d.metric("warden_notifications_sent_total").unwrap_or(0) >= 1).then_some(())
    });
    let bodies = bodies.lock().unwrap().clone();
    let id = inc["id"].as_str().unwrap();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains(id)
                && b.contains("containment: block_ip 198.18.9.32 recorded only (dry run, not enforced)")),
        "{bodies:?}"
    );
}
