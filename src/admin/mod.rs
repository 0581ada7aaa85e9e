//! The `Admin` actor and its HTTP API (actix-web) on loopback, or on any address over TLS
//! (`tls.rs`), behind a bearer token.
//!
//! Owns: the HTTP server and the token. Accepts: HTTP requests. Emits, through the
//! [`Handles`] it is given at start: `Route`d envelopes, raw log batches, agent listings
//! and fault injection; queries and custody records to the knowledge base.
//! Survives a restart: the token file; everything else is read from the knowledge base.
//!
//! Every endpoint requires `Authorization: Bearer <token>` (401 otherwise); malformed
//! JSON is a 400 with the parser's message; a body over the limit is a 413.

pub mod client;
mod metrics;
pub mod tls;
pub mod token;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::error::{InternalError, JsonPayloadError, PayloadError};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::agents::Fault;
use crate::config::LogFormat;
use crate::ingest::{BatchBuilder, LogSink, send_batch};
use crate::kb::Kb;
use crate::messages::{BatchAck, Envelope, Payload};
use crate::supervisor::{InjectFault, ListAgents, Route, Supervisor, SupervisorError};
use crate::telemetry::Metrics;
use crate::text::sanitize;

/// What the API sends into the running Warden, handed over once at start.
#[derive(Clone)]
pub struct Handles {
    /// Envelopes from outside (injections, approvals, closes, scans), persisted and routed.
    pub route: Recipient<Route>,
    pub agents: Recipient<ListAgents>,
    pub faults: Recipient<InjectFault>,
    /// Raw lines injected into a source, parsed and sent like read ones.
    pub logs: LogSink,
}

impl Handles {
    /// The supervisor's handles.
    pub fn of(supervisor: &Addr<Supervisor>) -> Handles {
        Handles {
            route: supervisor.clone().recipient(),
            agents: supervisor.clone().recipient(),
            faults: supervisor.clone().recipient(),
            logs: supervisor.clone().recipient().into(),
        }
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub handles: Handles,
    pub kb: Kb,
    pub metrics: Arc<Metrics>,
    pub token: Arc<String>,
    pub sources: Arc<BTreeMap<String, LogFormat>>,
    pub fault_injection: bool,
    pub max_body: usize,
    /// Injected lines are cut where read ones are (`[ingest] max_line_bytes`).
    pub max_line_bytes: usize,
    pub started: Instant,
    pub detector_state_key: Option<String>,
    /// The evidence store (bundles are built from it).
    pub evidence_dir: std::path::PathBuf,
    /// The mode each containment action runs in.
    pub containment: Option<crate::definitions::ContainmentModes>,
    /// With `[cluster]`: the fleet, for `warden status`.
    pub fleet: Option<Arc<crate::cluster::fleet::Fleet>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

fn error(status: actix_web::http::StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.to_string() }))
}

fn authorized(req: &actix_web::dev::ServiceRequest, token: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .is_some_and(|t| token::equal(t.as_bytes(), token.as_bytes()))
}

/// The credentials of an `Authorization` value whose scheme is `Bearer` (RFC 9110: the
/// scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::http::StatusCode;
    let resp = match &err {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {limit} bytes"))
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
        }
        JsonPayloadError::ContentType => error(StatusCode::BAD_REQUEST, "expected Content-Type: application/json"),
        JsonPayloadError::Deserialize(e) => error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
        other => error(StatusCode::BAD_REQUEST, format!("bad request body: {other}")),
    };
    InternalError::from_response(err, resp).into()
}

/// Binds the API and runs it in the background; returns the actor that owns it.
pub fn start(cfg: &crate::config::AdminConfig, state: AdminState) -> Result<Addr<Admin>, AdminError> {
    let listen = cfg.listen;
    let tls = tls::server_config(cfg)?;
    let max_body = state.max_body;
    let fault = state.fault_injection;
    let token = state.token.clone();
    let server = HttpServer::new(move || {
        let token = token.clone();
        let mut app = App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
            .app_data(web::PayloadConfig::new(max_body))
            .wrap_fn(
                move |req, srv| -> Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>> {
                    if authorized(&req, &token) {
                        let fut = srv.call(req);
                        Box::pin(async move { fut.await.map(|r| r.map_into_boxed_body()) })
                    } else {
                        let resp = req.into_response(error(
                            actix_web::http::StatusCode::UNAUTHORIZED,
                            "missing or wrong bearer token (see <data-dir>/admin.token)",
                        ));
                        Box::pin(async move { Ok(resp.map_into_boxed_body()) })
                    }
                },
            )
            .route("/v1/health", web::get().to(health))
            .route("/v1/agents", web::get().to(agents))
            .route("/v1/incidents", web::get().to(incidents))
            .route("/v1/incidents/{id}", web::get().to(incident))
            .route("/v1/incidents/{id}/report", web::get().to(report))
            .route("/v1/incidents/{id}/evidence/bundle", web::get().to(evidence_bundle))
            .route("/v1/evidence/verified", web::post().to(evidence_verified))
            .route("/v1/findings", web::get().to(findings))
            .route("/v1/inject", web::post().to(inject))
            .route("/v1/actions/{id}/approve", web::post().to(approve))
            .route("/v1/incidents/{id}/close", web::post().to(close))
            .route("/v1/actions/{id}/reject", web::post().to(reject))
            .route("/v1/audit/verify", web::get().to(audit_verify))
            .route("/v1/backup", web::post().to(backup))
            .route("/v1/scan", web::post().to(scan))
            .route("/v1/answers/{id}", web::get().to(answer))
            .route("/v1/vulns", web::get().to(vulns))
            .route("/v1/vulns/report", web::get().to(vuln_report))
            .route("/metrics", web::get().to(metrics::metrics));
        if fault {
            app = app
                .route("/v1/testing/agents/{name}/panic", web::post().to(panic_agent))
                .route("/v1/testing/agents/{name}/fail", web::post().to(fail_agent));
        }
        app.default_service(web::to(|| async { error(actix_web::http::StatusCode::NOT_FOUND, "no such endpoint") }))
    })
    .workers(1)
    .disable_signals();
    let server = match tls {
        None => server.bind(listen),
        Some(tls) => server.bind_rustls_0_23(listen, tls),
    };
    let server = server.map_err(|source| AdminError::Bind { addr: listen, source })?.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(Admin { handle }.start())
}

/// Owns the running HTTP server; stopping the actor stops the server.
pub struct Admin {
    handle: actix_web::dev::ServerHandle,
}

impl Actor for Admin {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        let h = self.handle.clone();
        actix_rt::spawn(async move { h.stop(true).await });
    }
}

async fn health(st: web::Data<AdminState>) -> HttpResponse {
    let agents = st.handles.agents.send(ListAgents).await.unwrap_or_default();
    let failed: Vec<&str> =
        agents.iter().filter(|a| a.state == crate::supervisor::AgentState::Failed).map(|a| a.name.as_str()).collect();
    let storage = st.kb.health.failure();
    let blind = st.metrics.blind_spots.open();
    // Over the memory budget: the caps derived from it are too large for this load (or
    // something is not capped) — the operator must know before the kernel does.
    let budget = st.metrics.memory_budget_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let resident = crate::telemetry::resident_bytes().unwrap_or(0);
    let within = budget == 0 || resident <= budget;
    let cluster = match &st.fleet {
        None => serde_json::Value::Null,
        Some(f) => match tokio::time::timeout(std::time::Duration::from_secs(5), f.status()).await {
            Ok(Ok(s)) => json!(s),
            Ok(Err(e)) => json!({ "node": f.node(), "error": e.to_string() }),
            Err(_) => json!({ "node": f.node(), "error": "the cluster did not answer within 5 s" }),
        },
    };
    HttpResponse::Ok().json(json!({
        "cluster": cluster,
        "status": if failed.is_empty() && storage.is_none() && blind.is_empty() && within { "ok" } else { "degraded" },
        "blind_spots": blind,
        "memory": { "ok": within, "resident_bytes": resident, "budget_bytes": budget },
        "storage": match &storage {
            None => json!({ "ok": true }),
            Some(f) => json!({ "ok": false, "since": f.since, "error": f.error }),
        },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": st.started.elapsed().as_secs(),
        "agents": agents.len(),
        "failed_agents": failed,
        "containment": st.containment,
    }))
}

async fn agents(st: web::Data<AdminState>) -> HttpResponse {
    match st.handles.agents.send(ListAgents).await {
        Ok(a) => HttpResponse::Ok().json(a),
        Err(e) => error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Every stored incident, oldest first: a JSON array written one incident at a time as
/// it is read, so a large knowledge base is never all in memory. (A read failing after
/// the first bytes cuts the response short: the client sees a broken body, not a
/// shorter list.)
async fn incidents(st: web::Data<AdminState>) -> HttpResponse {
    let reader = st.kb.reader.clone();
    let order = match web::block({
        let reader = reader.clone();
        move || reader.incident_order()
    })
    .await
    {
        Ok(Ok(order)) => order,
        Ok(Err(e)) => return error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<web::Bytes>>(16);
    actix_web::rt::task::spawn_blocking(move || {
        let send = |b: std::io::Result<Vec<u8>>| tx.blocking_send(b.map(web::Bytes::from)).is_ok();
        let mut first = true;
        if !send(Ok(b"[".to_vec())) {
            return;
        }
        for (_, id) in order {
            let chunk = match reader.incident(id) {
                Ok(Some(i)) => serde_json::to_vec(&i).map_err(std::io::Error::other),
                Ok(None) => continue, // Gone since the listing began.
                Err(e) => {
                    tracing::error!(incident = %id, error = %e, "cannot read an incident; the listing is cut short");
                    Err(std::io::Error::other(e))
                }
            };
            let failed = chunk.is_err();
            let chunk = chunk.map(|c| if std::mem::take(&mut first) { c } else { [&b","[..], &c].concat() });
            if !send(chunk) || failed {
                return;
            }
        }
        send(Ok(b"]".to_vec()));
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    HttpResponse::Ok().content_type("application/json").streaming(body)
}

async fn findings(st: web::Data<AdminState>) -> HttpResponse {
    match st.kb.findings().await {
        Ok(f) => HttpResponse::Ok().json(f),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn incident(st: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "incident id must be a UUID");
    };
    match st.kb.incident(id).await {
        Ok(Some(i)) => HttpResponse::Ok().json(i),
        Ok(None) => error(actix_web::http::StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    #[serde(default = "default_audience")]
    audience: String,
    #[serde(default = "default_report_format")]
    format: String,
}

fn default_audience() -> String {
    "technical".into()
}

fn default_report_format() -> String {
    "markdown".into()
}

/// `generate_report` on demand: `?audience=executive|technical&format=markdown|html|json`.
async fn report(st: web::Data<AdminState>, id: web::Path<String>, q: web::Query<ReportQuery>) -> HttpResponse {
    use crate::tools::response::report::{self, Audience, Format};
    use actix_web::http::StatusCode;
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, "incident id must be a UUID");
    };
    let (audience, format) = match (q.audience.parse::<Audience>(), q.format.parse::<Format>()) {
        (Ok(a), Ok(f)) => (a, f),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    match st.kb.incident(id).await {
        Ok(Some(i)) => {
            let body = report::render(&report::build(&i, audience), format);
            let ct = match format {
                Format::Markdown => "text/markdown; charset=utf-8",
                Format::Html => "text/html; charset=utf-8",
                Format::Json => "application/json",
            };
            HttpResponse::Ok().content_type(ct).body(body)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleQuery {
    #[serde(default)]
    by: String,
}

/// An incident's evidence as a bundle (tar: manifest + items); the export is a custody
/// event in the ledger, with the bundle's hash.
async fn evidence_bundle(st: web::Data<AdminState>, id: web::Path<String>, q: web::Query<BundleQuery>) -> HttpResponse {
    use crate::tools::response::evidence;
    use actix_web::http::StatusCode;
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, "incident id must be a UUID");
    };
    let inc = match st.kb.incident(id).await {
        Ok(Some(i)) => i,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if inc.evidence.is_empty() {
        return error(StatusCode::NOT_FOUND, format!("incident {id} has no evidence"));
    }
    let by = sanitize(if q.by.trim().is_empty() { "admin API" } else { q.by.trim() }, 64);
    let manifest =
        evidence::Manifest { incident: id, exported_at: Utc::now(), exported_by: by.clone(), items: inc.evidence };
    let tmp = st.evidence_dir.join(format!(".bundle-{}.tar", Uuid::new_v4()));
    let dir = st.evidence_dir.clone();
    let m = manifest.clone();
    let t = tmp.clone();
    let built = web::block(move || {
        let sha = evidence::export(&dir, &m, &t)?;
        let bytes =
            std::fs::read(&t).map_err(|source| evidence::EvidenceError::Io { path: t.display().to_string(), source });
        let _ = std::fs::remove_file(&t);
        bytes.map(|b| (sha, b))
    })
    .await;
    let (sha, bytes) = match built {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let entry = crate::kb::audit::AuditEntry::new(
        "admin",
        crate::kb::audit::AuditKind::Custody,
        &sha,
        json!({ "event": "exported", "incident": id, "by": by, "bundle_sha256": sha, "items": manifest.items.len() }),
    );
    if let Err(e) = st.kb.commit(crate::kb::Commit { writes: Vec::new(), audit: vec![entry], flush: true }).await {
        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
    }
    HttpResponse::Ok().content_type("application/x-tar").insert_header(("X-Bundle-Sha256", sha)).body(bytes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifiedBody {
    incident: Uuid,
    bundle_sha256: String,
    ok: bool,
    #[serde(default)]
    problems: Vec<String>,
    by: String,
}

/// A bundle was verified (by `warden evidence verify`): a custody event.
async fn evidence_verified(st: web::Data<AdminState>, body: web::Json<VerifiedBody>) -> HttpResponse {
    let b = body.into_inner();
    let entry = crate::kb::audit::AuditEntry::new(
        "admin",
        crate::kb::audit::AuditKind::Custody,
        sanitize(&b.bundle_sha256, 64),
        json!({ "event": "verified", "incident": b.incident, "ok": b.ok,
            "problems": b.problems.iter().map(|p| sanitize(p, 256)).collect::<Vec<_>>(),
            "by": sanitize(&b.by, 64) }),
    );
    match st.kb.commit(crate::kb::Commit { writes: Vec::new(), audit: vec![entry], flush: true }).await {
        Ok(()) => HttpResponse::Accepted().json(json!({ "recorded": true })),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Who decides, and why.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    by: String,
    #[serde(default)]
    comment: String,
}

/// Closes an incident (routed to incident response, like any message).
async fn close(st: web::Data<AdminState>, id: web::Path<String>, body: web::Json<DecisionBody>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Ok(incident_id) = Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, "incident id must be a UUID");
    };
    let body = body.into_inner();
    if body.by.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "say who closes it: {\"by\": NAME}");
    }
    let payload = Payload::Close(crate::messages::CloseRequest {
        incident_id,
        by: sanitize(body.by.trim(), 64),
        reason: sanitize(&body.comment, 512),
    });
    match st.handles.route.send(Route { envelope: Envelope::new("admin", payload), to: None }).await {
        Ok(Ok(id)) => HttpResponse::Accepted().json(json!({ "envelope_id": id, "incident_id": incident_id })),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScanBody {
    #[serde(default)]
    target: Option<String>,
}

/// Asks vulnerability management to scan now (one configured target, or all). No body
/// means every target; a body that is not a valid request is refused, never read as
/// "everything".
async fn scan(st: web::Data<AdminState>, body: web::Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    let target = if body.trim_ascii().is_empty() {
        None
    } else if !body.trim_ascii().starts_with(b"{") {
        return error(StatusCode::BAD_REQUEST, "the body is a JSON object: {\"target\": \"NAME\"} or {}");
    } else {
        match serde_json::from_slice::<ScanBody>(&body) {
            Ok(b) => b.target,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
        }
    };
    let payload = Payload::Scan(crate::messages::ScanRequest { target });
    match st.handles.route.send(Route { envelope: Envelope::new("admin", payload), to: None }).await {
        Ok(Ok(id)) => HttpResponse::Accepted().json(json!({ "envelope_id": id })),
        Ok(Err(e @ SupervisorError::Route(_))) => error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// The answer to an instruction (`POST /v1/inject` with an `instruction` payload), by
/// its envelope id; 404 until the agent has handled it.
async fn answer(st: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, "the id is an envelope id (UUID)");
    };
    match st.kb.state(&crate::agents::reasoning::answer_key(id)).await {
        Ok(Some(v)) => HttpResponse::Ok().json(v),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no answer to {id} yet")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The latest scan of every target, from the knowledge base.
async fn latest_scans(st: &AdminState) -> Result<Vec<crate::tools::vuln::scan::ScanReport>, crate::kb::KbError> {
    let records = st.kb.vulns("").await?;
    Ok(records
        .into_iter()
        .filter(|(k, _)| k.split('/').nth(1) == Some("scan"))
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect())
}

async fn vulns(st: web::Data<AdminState>) -> HttpResponse {
    match latest_scans(&st).await {
        Ok(scans) => HttpResponse::Ok().json(scans),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VulnReportQuery {
    #[serde(default = "default_report_format")]
    format: String,
}

/// The posture report over the latest scans (`generate_vuln_report`).
async fn vuln_report(st: web::Data<AdminState>, q: web::Query<VulnReportQuery>) -> HttpResponse {
    use crate::tools::response::report::Format;
    use actix_web::http::StatusCode;
    let format = match q.format.parse::<Format>() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match latest_scans(&st).await {
        Ok(scans) => {
            let p = crate::tools::vuln::scan::posture(&scans, Utc::now());
            let body = crate::tools::vuln::scan::render_posture(&p, format);
            let ct = match format {
                Format::Markdown => "text/markdown; charset=utf-8",
                Format::Html => "text/html; charset=utf-8",
                Format::Json => "application/json",
            };
            HttpResponse::Ok().content_type(ct).body(body)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn approve(st: web::Data<AdminState>, id: web::Path<String>, body: web::Json<DecisionBody>) -> HttpResponse {
    decide(st, &id, body.into_inner(), true).await
}

async fn reject(st: web::Data<AdminState>, id: web::Path<String>, body: web::Json<DecisionBody>) -> HttpResponse {
    decide(st, &id, body.into_inner(), false).await
}

/// Routes an operator's decision to incident response, like any other message: it is
/// in the inbox (and the ledger) before it is acted on.
async fn decide(st: web::Data<AdminState>, id: &str, body: DecisionBody, approve: bool) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Ok(action_id) = id.parse::<uuid::Uuid>() else {
        return error(StatusCode::BAD_REQUEST, format!("`{}` is not an action id", sanitize(id, 64)));
    };
    if body.by.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "say who decides: {\"by\": NAME}");
    }
    let payload = Payload::Approval(crate::messages::ApprovalDecision {
        action_id,
        approve,
        by: sanitize(body.by.trim(), 64),
        comment: sanitize(&body.comment, 512),
    });
    match st.handles.route.send(Route { envelope: Envelope::new("admin", payload), to: None }).await {
        Ok(Ok(id)) => {
            HttpResponse::Accepted().json(json!({ "envelope_id": id, "action_id": action_id, "approve": approve }))
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// `POST /v1/inject`: an envelope to route, or raw lines for a source's parser.
#[derive(Debug)]
enum InjectRequest {
    Envelope { to: Option<String>, payload: Box<Payload> },
    Lines { source: String, lines: Vec<String> },
}

/// The body as sent; which fields it has says which request it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInject {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    lines: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for InjectRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match RawInject::deserialize(d)? {
            RawInject { to, payload: Some(payload), source: None, lines: None } => {
                Ok(InjectRequest::Envelope { to, payload: Box::new(payload) })
            }
            RawInject { to: None, payload: None, source: Some(source), lines: Some(lines) } => {
                Ok(InjectRequest::Lines { source, lines })
            }
            RawInject { source: Some(_), lines: None, .. } => Err(D::Error::missing_field("lines")),
            _ => Err(D::Error::custom(
                "expected {\"payload\": {...}} (with optional \"to\") or {\"source\": NAME, \"lines\": [...]}",
            )),
        }
    }
}

async fn inject(st: web::Data<AdminState>, body: web::Json<InjectRequest>) -> HttpResponse {
    match body.into_inner() {
        InjectRequest::Envelope { to, payload } => inject_envelope(&st, to, *payload).await,
        InjectRequest::Lines { source, lines } => inject_lines(&st, &source, &lines).await,
    }
}

async fn inject_envelope(st: &AdminState, to: Option<String>, payload: Payload) -> HttpResponse {
    use actix_web::http::StatusCode;
    let envelope = Envelope::new("admin", payload);
    match st.handles.route.send(Route { envelope, to }).await {
        Ok(Ok(id)) => HttpResponse::Accepted().json(json!({ "envelope_id": id })),
        Ok(Err(e @ SupervisorError::Route(_))) => error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn inject_lines(st: &AdminState, source: &str, lines: &[String]) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(format) = st.sources.get(source) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("no source named `{}` in the configuration", sanitize(source, 64)),
        );
    };
    let mut b = BatchBuilder::new(*format, Utc::now());
    let max = st.max_line_bytes.max(1);
    for l in lines {
        // Injected lines get the same limits as read ones.
        let mut cut = l.as_str();
        if cut.len() > max {
            let mut end = max;
            while !cut.is_char_boundary(end) {
                end -= 1;
            }
            cut = &cut[..end];
            b.stats.truncated += 1;
        }
        for part in cut.split('\n') {
            b.line(part.strip_suffix('\r').unwrap_or(part).to_string());
        }
    }
    let batch = b.take(source, None, None);
    let id = batch.id;
    let lines = batch.stats.lines;
    match send_batch(&st.handles.logs, batch).await {
        Ok(BatchAck::Applied { findings }) => {
            HttpResponse::Accepted().json(json!({ "envelope_id": id, "lines": lines, "findings": findings }))
        }
        Ok(BatchAck::AlreadyApplied) => {
            HttpResponse::Accepted().json(json!({ "envelope_id": id, "lines": lines, "findings": 0 }))
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    /// An absolute path on the daemon's host, absent or empty.
    dir: std::path::PathBuf,
}

/// Writes a consistent copy of the knowledge base and ledger while the daemon runs.
async fn backup(st: web::Data<AdminState>, body: web::Json<BackupBody>) -> HttpResponse {
    let dir = body.into_inner().dir;
    if !dir.is_absolute() {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "the backup directory must be an absolute path");
    }
    match st.kb.backup(dir.clone()).await {
        Ok((records, audit_records, audit_head)) => {
            tracing::info!(dir = %dir.display(), records, "knowledge base backed up");
            HttpResponse::Ok().json(
                json!({ "dir": dir, "records": records, "audit_records": audit_records, "audit_head": audit_head }),
            )
        }
        Err(e) if e.is_not_empty() => error(actix_web::http::StatusCode::CONFLICT, e),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn audit_verify(st: web::Data<AdminState>) -> HttpResponse {
    match st.kb.verify_audit().await {
        Ok(r) => HttpResponse::Ok().json(r),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn panic_agent(st: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    arm_fault(st, name.into_inner(), Fault::Panic).await
}

async fn fail_agent(st: web::Data<AdminState>, name: web::Path<String>) -> HttpResponse {
    arm_fault(st, name.into_inner(), Fault::Fatal).await
}

async fn arm_fault(st: web::Data<AdminState>, name: String, fault: Fault) -> HttpResponse {
    use actix_web::http::StatusCode;
    match st.handles.faults.send(InjectFault(name, fault)).await {
        Ok(Ok(())) => HttpResponse::Accepted().json(json!({ "armed": true })),
        Ok(Err(e @ SupervisorError::UnknownAgent(_))) => error(StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Decodes a request body as the API does, as the body of endpoint `which` (modulo 5:
/// inject, approve/reject/close, evidence verified, backup, scan) — for the fuzz
/// targets: whatever the bytes, an error or a body, never a panic.
pub fn decode_body(which: u8, bytes: &[u8]) -> Result<(), String> {
    let e = |e: serde_json::Error| e.to_string();
    match which % 5 {
        0 => serde_json::from_slice::<InjectRequest>(bytes).map(drop).map_err(e),
        1 => serde_json::from_slice::<DecisionBody>(bytes).map(drop).map_err(e),
        2 => serde_json::from_slice::<VerifiedBody>(bytes).map(drop).map_err(e),
        3 => serde_json::from_slice::<BackupBody>(bytes).map(drop).map_err(e),
        _ => serde_json::from_slice::<ScanBody>(bytes).map(drop).map_err(e),
    }
}
