//! The admin API's clients: status, agents, incidents, injections, decisions, reports,
//! evidence bundles, questions to agents, the ledger's verification.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use warden::admin::{self, client};
use warden::config::Config;
use warden::store::Store;

use warden::messages::Incident;

use super::replay::print_incidents;
use crate::ClientOpts;

/// The admin endpoint and token of the daemon the CLI talks to: the configured address
/// (loopback when it listens on every address), over TLS when the daemon serves TLS —
/// trusting exactly its configured certificate.
pub fn client_target(o: &ClientOpts) -> Result<(client::Endpoint, String)> {
    let cfg = Config::load(o.config.as_deref())?;
    let dir = cfg.data_dir(o.data_dir.as_deref());
    let token = admin::token::read(&dir)?;
    let mut addr = cfg.admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    let tls = match &cfg.admin.tls_cert {
        None => None,
        Some(cert) => {
            let identity = o.client_cert.as_deref().zip(o.client_key.as_deref());
            Some(admin::tls::ClientTls::new(cert, identity).context("the admin API's TLS")?)
        }
    };
    Ok((client::Endpoint { addr, tls }, token))
}

pub fn call(o: &ClientOpts, method: &str, path: &str, body: Option<&str>) -> Result<client::Response> {
    let (to, token) = client_target(o)?;
    Ok(client::request(to, method, path, Some(&token), body)?)
}

pub fn check(r: client::Response) -> Result<client::Response> {
    if r.status >= 400 {
        let msg = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or(r.body);
        bail!("admin API answered {}: {msg}", r.status);
    }
    Ok(r)
}

pub fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_string())
}

pub fn print_get(o: &ClientOpts, path: &str) -> Result<i32> {
    let r = check(call(o, "GET", path, None)?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}

pub fn agents(o: &ClientOpts) -> Result<i32> {
    let r = check(call(o, "GET", "/v1/agents", None)?)?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&r.body)?;
    println!("{:<26} {:<10} {:>8} {:>8}  last error", "AGENT", "STATE", "RESTARTS", "PENDING");
    for a in list {
        println!(
            "{:<26} {:<10} {:>8} {:>8}  {}",
            a["name"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            a["restarts"].as_u64().unwrap_or(0),
            a["mailbox_depth"].as_u64().unwrap_or(0),
            a["last_error"].as_str().unwrap_or("-")
        );
    }
    Ok(0)
}

pub fn incidents(o: &ClientOpts, json: bool) -> Result<i32> {
    let r = check(call(o, "GET", "/v1/incidents", None)?)?;
    if json {
        println!("{}", pretty(&r.body));
    } else {
        let list: Vec<Incident> = serde_json::from_str(&r.body)?;
        print_incidents(&list);
    }
    Ok(0)
}

pub fn inject(
    o: &ClientOpts,
    to: Option<String>,
    payload: Option<String>,
    source: Option<String>,
    lines: Vec<String>,
) -> Result<i32> {
    let body = match (payload, source) {
        (Some(p), None) => {
            let payload: serde_json::Value = serde_json::from_str(&p).context("--payload is not valid JSON")?;
            serde_json::json!({ "to": to, "payload": payload })
        }
        (None, Some(s)) => serde_json::json!({ "source": s, "lines": lines }),
        _ => bail!("give either --payload JSON or --source NAME LINE..."),
    };
    let r = check(call(o, "POST", "/v1/inject", Some(&body.to_string()))?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}

pub fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

pub fn evidence_export(o: &ClientOpts, incident: &str, out: Option<PathBuf>, by: Option<String>) -> Result<i32> {
    let by = operator(by);
    let path = format!(
        "/v1/incidents/{incident}/evidence/bundle?by={}",
        by.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.', "_")
    );
    let r = check(call(o, "GET", &path, None)?)?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("incident-{incident}.tar")));
    std::fs::write(&out, &r.bytes).with_context(|| format!("cannot write {}", out.display()))?;
    let v = warden::tools::response::evidence::verify(&out).map_err(|e| anyhow::anyhow!(e))?;
    println!("wrote {} ({} items, {} bytes)", out.display(), v.items, r.bytes.len());
    Ok(if v.ok { 0 } else { 1 })
}

pub fn evidence_verify(o: &ClientOpts, bundle: &Path, by: Option<String>) -> Result<i32> {
    use sha2::Digest;
    let v = warden::tools::response::evidence::verify(bundle).map_err(|e| anyhow::anyhow!(e))?;
    let sha = format!("{:x}", sha2::Sha256::digest(std::fs::read(bundle)?));
    if v.ok {
        println!("{}: OK, {} items match their SHA-256 (bundle sha256 {sha})", bundle.display(), v.items);
    } else {
        for p in &v.problems {
            println!("{}: {p}", bundle.display());
        }
    }
    if let Some(m) = &v.manifest {
        let body = serde_json::json!({ "incident": m.incident, "bundle_sha256": sha, "ok": v.ok, "problems": v.problems, "by": operator(by) });
        match call(o, "POST", "/v1/evidence/verified", Some(&body.to_string())) {
            Ok(r) if r.status == 202 => println!("recorded in the audit ledger"),
            _ => eprintln!("not recorded in the audit ledger: the daemon is not reachable"),
        }
    }
    Ok(if v.ok { 0 } else { 1 })
}

/// Sends an approval or rejection, then waits (up to 15 s) for the action's new status.
pub fn decide(o: &ClientOpts, id: &str, by: Option<String>, comment: String, approve: bool) -> Result<i32> {
    let by = operator(by);
    let verb = if approve { "approve" } else { "reject" };
    let body = serde_json::json!({ "by": by, "comment": comment });
    check(call(o, "POST", &format!("/v1/actions/{id}/{verb}"), Some(&body.to_string()))?)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = check(call(o, "GET", "/v1/incidents", None)?)?;
        let incidents: Vec<serde_json::Value> = serde_json::from_str(&r.body).context("unreadable incidents")?;
        let action = incidents
            .iter()
            .flat_map(|i| i["actions"].as_array().cloned().unwrap_or_default())
            .find(|a| a["id"].as_str() == Some(id));
        // A playbook's approval gate: decided once a step record with its key says so.
        let gate = incidents.iter().find_map(|i| {
            let steps = i["playbook"]["steps"].as_array()?;
            steps.iter().any(|s| s["key"].as_str() == Some(id)).then(|| {
                let done = steps
                    .iter()
                    .rev()
                    .find(|s| s["key"].as_str() == Some(id) && s["outcome"] != "waiting")
                    .map(|s| s["outcome"].as_str().unwrap_or("").to_string());
                (i["playbook"]["playbook"].as_str().unwrap_or("").to_string(), done)
            })
        });
        if let Some((playbook, done)) = gate {
            match done {
                Some(outcome) => {
                    println!("playbook {playbook}: step {verb}: {outcome}");
                    return Ok(0);
                }
                None if Instant::now() > deadline => bail!("the decision was sent but the playbook still waits"),
                None => {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
        }
        match action {
            Some(a) if a["status"] != "pending_approval" => {
                println!(
                    "{} {} {}: {}",
                    a["kind"].as_str().unwrap_or(""),
                    a["target"].as_str().unwrap_or(""),
                    verb,
                    a["status"].as_str().unwrap_or("")
                );
                if let Some(out) = a["output"].as_str() {
                    println!("{out}");
                }
                return Ok(if a["status"] == "failed" { 1 } else { 0 });
            }
            None => bail!("no action {id}"),
            Some(_) if Instant::now() > deadline => bail!("the decision was sent but the action is still pending"),
            Some(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Opens a database the daemon must not be using (a process that just exited may hold
/// its lock for a moment longer).
fn open_offline(db: &Path) -> Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(db, 16 << 20) {
            Ok(s) => return Ok(s),
            Err(e @ warden::store::StoreError::Damaged { .. }) => return Err(e.into()),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e).with_context(|| format!("cannot open {} (stop the daemon first)", db.display())),
        }
    }
}

/// `warden backup DIR`: the daemon writes the copy (it is the database's only writer).
pub fn backup(o: &ClientOpts, dir: &Path) -> Result<i32> {
    let dir = std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let body = serde_json::json!({ "dir": dir }).to_string();
    let r: serde_json::Value = serde_json::from_str(&check(call(o, "POST", "/v1/backup", Some(&body))?)?.body)?;
    println!(
        "backup written to {}: {} records, audit ledger of {} records (head {})",
        dir.display(),
        r["records"],
        r["audit_records"],
        r["audit_head"].as_str().unwrap_or("?")
    );
    Ok(0)
}

/// `warden restore DIR`: offline, into an empty data directory.
pub fn restore(o: &ClientOpts, dir: &Path) -> Result<i32> {
    if !dir.join("db").is_file() && !dir.join("conf").is_file() {
        anyhow::bail!("{} is not a Warden backup (no database in it)", dir.display());
    }
    let cfg = Config::load(o.config.as_deref())?;
    let data_dir = cfg.data_dir(o.data_dir.as_deref());
    super::data_dir::prepare(&data_dir)?;
    let from = open_offline(dir)?;
    let to = open_offline(&data_dir.join("db"))?;
    let n = to.restore_from(&from, &data_dir.join("db")).with_context(|| "restore refused".to_string())?;
    println!("restored {n} records into {}; check it with `warden audit verify --offline`", data_dir.display());
    Ok(0)
}

pub fn audit_verify(o: &ClientOpts, offline: bool) -> Result<i32> {
    let report: warden::kb::audit::AuditReport = if offline {
        let cfg = Config::load(o.config.as_deref())?;
        let dir = cfg.data_dir(o.data_dir.as_deref());
        let store = open_offline(&dir.join("db"))?;
        warden::kb::KnowledgeBase::new(store)?.verify_audit()?
    } else {
        serde_json::from_str(&check(call(o, "GET", "/v1/audit/verify", None)?)?.body)?
    };
    match &report.first_broken {
        None => {
            println!("audit ledger OK: {} records, head {}", report.records, report.head);
            Ok(0)
        }
        Some(b) => {
            println!("audit ledger BROKEN at record {}: {}", b.seq, b.reason);
            Ok(2)
        }
    }
}

/// `warden report`: an incident's report, as the daemon renders it.
pub fn report(opts: &ClientOpts, id: &str, audience: &str, format: &str) -> Result<i32> {
    let r = check(call(opts, "GET", &format!("/v1/incidents/{id}/report?audience={audience}&format={format}"), None)?)?;
    print!("{}", r.body);
    Ok(0)
}

/// `warden close`: routed to incident response like any decision.
pub fn close(d: crate::Decision) -> Result<i32> {
    let body = serde_json::json!({ "by": operator(d.by), "comment": d.comment });
    let r = check(call(&d.opts, "POST", &format!("/v1/incidents/{}/close", d.id), Some(&body.to_string()))?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}

/// `warden ask`: an instruction to an agent, and its answer once it is stored (exit 2
/// with the reason when the agent has none).
pub fn ask(
    opts: &ClientOpts,
    to: Option<String>,
    incident: Option<String>,
    wait: u64,
    text: Vec<String>,
) -> Result<i32> {
    let incident_id: Option<uuid::Uuid> = match incident {
        Some(i) => Some(i.parse().context("the incident id is a UUID")?),
        None => None,
    };
    let body = serde_json::json!({ "to": to, "payload": { "kind": "instruction", "text": text.join(" "),
        "incident_id": incident_id } });
    let r = check(call(opts, "POST", "/v1/inject", Some(&body.to_string()))?)?;
    let id =
        serde_json::from_str::<serde_json::Value>(&r.body)?["envelope_id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let r = call(opts, "GET", &format!("/v1/answers/{id}"), None)?;
        if r.status == 200 {
            let v: serde_json::Value = serde_json::from_str(&r.body)?;
            return Ok(match v["answer"].as_str() {
                Some(a) => {
                    println!("{a}");
                    0
                }
                None => {
                    eprintln!("no answer: {}", v["fallback"].as_str().unwrap_or("unknown"));
                    2
                }
            });
        }
        if Instant::now() > deadline {
            bail!("no answer to {id} within {wait} s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
