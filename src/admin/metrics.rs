//! `GET /metrics`: the process's counters and the knowledge base's durable totals in
//! Prometheus' text format.

use actix_web::{HttpResponse, web};

use super::AdminState;
use crate::supervisor::ListAgents;

pub(super) async fn metrics(st: web::Data<AdminState>) -> HttpResponse {
    let mut durable: Vec<(String, String, Vec<(String, String)>, u64)> = Vec::new();
    let health = &st.kb.health;
    durable.push((
        "warden_storage_ok".into(),
        "1 while the knowledge base takes writes, 0 once one failed (until the restart in place)".into(),
        vec![],
        u64::from(health.failure().is_none()),
    ));
    let free = health.free_bytes.load(std::sync::atomic::Ordering::Relaxed);
    if free != u64::MAX {
        durable.push((
            "warden_storage_free_bytes".into(),
            "Free bytes on the data directory's disk (measured every few seconds)".into(),
            vec![],
            free,
        ));
    }
    durable.push((
        "warden_storage_write_failures_total".into(),
        "Commits and flushes the database refused (a full disk, an I/O error); after the first, none is tried until the restart in place".into(),
        vec![],
        health.write_failures.load(std::sync::atomic::Ordering::Relaxed),
    ));
    if let Ok(cps) = st.kb.checkpoints().await {
        for (src, cp) in cps {
            durable.push((
                "warden_source_lines_total".into(),
                "Lines processed from a source since it was first read (durable)".into(),
                vec![("source".into(), src)],
                cp.lines_total,
            ));
        }
    }
    if let Some(key) = &st.detector_state_key
        && let Ok(Some(v)) = st.kb.state(key).await
        && let Some(counts) = v.get("counts").and_then(|c| c.as_object())
    {
        for (kind, n) in counts {
            durable.push((
                "warden_auth_events_total".into(),
                "Authentication events seen, by kind (durable)".into(),
                vec![("kind".into(), kind.clone())],
                n.as_u64().unwrap_or(0),
            ));
        }
    }
    if let Ok(s) = st.kb.stats().await {
        durable.push((
            "warden_incidents_stored".into(),
            "Incidents in the knowledge base".into(),
            vec![],
            s.incidents as u64,
        ));
        durable.push((
            "warden_findings_stored".into(),
            "Findings in the knowledge base".into(),
            vec![],
            s.findings as u64,
        ));
        durable.push((
            "warden_inbox_depth".into(),
            "Routed envelopes not yet acknowledged".into(),
            vec![],
            s.inbox as u64,
        ));
        durable.push(("warden_audit_records".into(), "Records in the audit ledger".into(), vec![], s.audit_records));
        durable.push(("warden_db_size_bytes".into(), "Size of the database on disk".into(), vec![], s.size_on_disk));
    }
    if let Ok(agents) = st.handles.agents.send(ListAgents).await {
        for a in agents {
            durable.push((
                "warden_agent_restarts".into(),
                "Restarts of an agent in this process".into(),
                vec![("agent".into(), a.name.clone())],
                a.restarts,
            ));
            durable.push((
                "warden_agent_up".into(),
                "1 when the agent is running".into(),
                vec![("agent".into(), a.name.clone())],
                (a.state == crate::supervisor::AgentState::Running) as u64,
            ));
        }
    }
    durable.sort_by(|a, b| a.0.cmp(&b.0));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(st.metrics.render(&durable))
}
