//! The `warden` command line: the daemon, replay, lint, and clients of the admin API.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use warden::admin::{self, client};
use warden::config::{Config, LogFormat};
use warden::definitions::{self, ActorsDir};
use warden::messages::Incident;
use warden::runtime::Runtime;
use warden::store::Store;

#[derive(Parser)]
#[command(name = "warden", version, about = "An autonomous Security Operations Center in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClientOpts {
    /// The daemon's configuration file (for its admin address and data directory).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The daemon's data directory (holds admin.token).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: tail the configured sources, detect, respond, serve the admin API.
    Run {
        #[command(flatten)]
        opts: ClientOpts,
        /// Folder of agent definitions (default: ./actors if present, else the built-in copy).
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Run log files through the agents as fast as possible and print what they found.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the incidents as JSON.
        #[arg(long)]
        json: bool,
        /// Also print the process's peak memory (resident set).
        #[arg(long)]
        stats: bool,
        /// Print every finding (JSON) instead of the incidents.
        #[arg(long)]
        findings: bool,
        /// The files' format: auth (syslog auth.log), web (access log) or auto.
        #[arg(long, default_value = "auto")]
        format: String,
        #[arg(long)]
        actors: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check agent definitions; prints every error as file:line: message.
    Lint {
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Show the daemon's health.
    Status(ClientOpts),
    /// List agents with their state and restarts.
    Agents(ClientOpts),
    /// List incidents.
    Incidents {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        json: bool,
    },
    /// Show one incident as JSON.
    Incident {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// An incident's report: `--audience executive|technical --format markdown|html|json`.
    Report {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long, default_value = "technical")]
        audience: String,
        #[arg(long, default_value = "markdown")]
        format: String,
    },
    /// Approve an action waiting for approval: it runs now, recorded with who and when.
    Approve(Decision),
    /// Close an incident: its actions are rolled back (unless permanent).
    Close(Decision),
    /// Reject an action waiting for approval.
    Reject(Decision),
    /// Inject an envelope (`--payload JSON [--to AGENT]`) or raw log lines (`--source NAME LINE...`).
    Inject {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        to: Option<String>,
        /// The payload as JSON, tagged by "kind", e.g. '{"kind":"instruction","text":"hi"}'.
        #[arg(long, conflicts_with = "source")]
        payload: Option<String>,
        /// The configured source the lines belong to.
        #[arg(long)]
        source: Option<String>,
        /// Lines (with --source).
        lines: Vec<String>,
    },
    /// Evidence: export an incident's bundle, verify a bundle.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Audit ledger commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Scan for vulnerable packages now, offline, and print the result (no daemon
    /// needed): the configured targets, or `--target PATH` (a host root, an image, a
    /// project directory or one lockfile).
    Scan {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        target: Option<PathBuf>,
        /// Print the scans as JSON instead of the posture report.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        actors: Option<PathBuf>,
    },
    /// Ask an agent (with a language model configured) to investigate and answer:
    /// `warden ask --to incident-response --incident ID "what happened?"`.
    Ask {
        #[command(flatten)]
        opts: ClientOpts,
        /// The agent (default: the first that handles instructions).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        incident: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Vulnerability management: the advisory database, the posture report, patch
    /// verification.
    Vuln {
        #[command(subcommand)]
        command: VulnCommand,
    },
}

#[derive(Subcommand)]
enum VulnCommand {
    /// The offline OSV advisory database.
    Db {
        #[command(subcommand)]
        command: VulnDbCommand,
    },
    /// The posture over the daemon's latest scans: `--format markdown|html|json`.
    Report {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long, default_value = "markdown")]
        format: String,
    },
    /// Ask the daemon to scan now (one configured target, or all).
    Scan {
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        target: Option<String>,
    },
    /// Ask the daemon to verify an incident's remediation (after the patch is applied).
    Verify {
        incident: String,
        #[command(flatten)]
        opts: ClientOpts,
        /// Only this package's remediation.
        #[arg(long, default_value = "")]
        package: String,
        /// The version that was installed, when it is not the recommended one.
        #[arg(long)]
        fixed: Option<String>,
    },
}

#[derive(Subcommand)]
enum VulnDbCommand {
    /// Import OSV records (a directory of JSON/YAML records, or an osv.dev `all.zip`).
    Import {
        path: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

/// An operator's decision about an action, a playbook gate or an incident.
#[derive(Args)]
struct Decision {
    id: String,
    #[command(flatten)]
    opts: ClientOpts,
    /// Who decides (default: $SUDO_USER or $USER).
    #[arg(long)]
    by: Option<String>,
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Write an incident's evidence bundle (tar: manifest.json + items by hash).
    Export {
        incident: String,
        #[command(flatten)]
        opts: ClientOpts,
        /// Where to write it (default: ./incident-ID.tar).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Check a bundle: every item present with its size and SHA-256. Recorded in the
    /// ledger when the daemon is reachable.
    Verify {
        bundle: PathBuf,
        #[command(flatten)]
        opts: ClientOpts,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and name the first broken record.
    Verify {
        #[command(flatten)]
        opts: ClientOpts,
        /// Open the database directly instead of asking the daemon (it must be stopped).
        #[arg(long)]
        offline: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run { opts, actors } => run(opts, actors),
        Command::Replay { files, json, stats, findings, format, actors, config } => {
            let format = match format.as_str() {
                "auth" => LogFormat::Auth,
                "web" => LogFormat::Web,
                "json" => LogFormat::Json,
                "zeek" => LogFormat::Zeek,
                "auto" => LogFormat::Auto,
                other => bail!("unknown format `{other}` (expected auth, web, json, zeek or auto)"),
            };
            replay(files, ReplayOutput { json, stats, findings, format }, actors, config)
        }
        Command::Lint { actors } => lint(actors),
        Command::Status(o) => print_get(&o, "/v1/health"),
        Command::Agents(o) => agents(&o),
        Command::Incidents { opts, json } => incidents(&opts, json),
        Command::Incident { id, opts } => print_get(&opts, &format!("/v1/incidents/{id}")),
        Command::Inject { opts, to, payload, source, lines } => inject(&opts, to, payload, source, lines),
        Command::Approve(d) => decide(&d.opts, &d.id, d.by, d.comment, true),
        Command::Report { id, opts, audience, format } => {
            let r = check(call(
                &opts,
                "GET",
                &format!("/v1/incidents/{id}/report?audience={audience}&format={format}"),
                None,
            )?)?;
            print!("{}", r.body);
            Ok(0)
        }
        Command::Reject(d) => decide(&d.opts, &d.id, d.by, d.comment, false),
        Command::Close(d) => {
            let body = serde_json::json!({ "by": operator(d.by), "comment": d.comment });
            let r = check(call(&d.opts, "POST", &format!("/v1/incidents/{}/close", d.id), Some(&body.to_string()))?)?;
            println!("{}", pretty(&r.body));
            Ok(0)
        }
        Command::Audit { command: AuditCommand::Verify { opts, offline } } => audit_verify(&opts, offline),
        Command::Scan { opts, target, json, actors } => scan(&opts, target, json, actors.as_deref()),
        Command::Ask { opts, to, incident, wait, text } => {
            let incident_id: Option<uuid::Uuid> = match incident {
                Some(i) => Some(i.parse().context("the incident id is a UUID")?),
                None => None,
            };
            let body = serde_json::json!({ "to": to, "payload": { "kind": "instruction", "text": text.join(" "),
                "incident_id": incident_id } });
            let r = check(call(&opts, "POST", "/v1/inject", Some(&body.to_string()))?)?;
            let id = serde_json::from_str::<serde_json::Value>(&r.body)?["envelope_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let deadline = Instant::now() + Duration::from_secs(wait);
            loop {
                let r = call(&opts, "GET", &format!("/v1/answers/{id}"), None)?;
                if r.status == 200 {
                    let v: serde_json::Value = serde_json::from_str(&r.body)?;
                    match v["answer"].as_str() {
                        Some(a) => {
                            println!("{a}");
                            return Ok(0);
                        }
                        None => {
                            eprintln!("no answer: {}", v["fallback"].as_str().unwrap_or("unknown"));
                            return Ok(2);
                        }
                    }
                }
                if Instant::now() > deadline {
                    bail!("no answer to {id} within {wait} s");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Command::Vuln { command: VulnCommand::Db { command: VulnDbCommand::Import { path, opts } } } => {
            let cfg = Config::load(opts.config.as_deref())?;
            let dir = cfg.data_dir(opts.data_dir.as_deref()).join("osv");
            let (report, stored) =
                warden::tools::vuln::osv::AdvisoryDb::import(&dir, &path).map_err(anyhow::Error::msg)?;
            println!(
                "read {} files: {} records ({} withdrawn, {} for ecosystems Warden does not inventory); {} advisories now in {}",
                report.files,
                report.records,
                report.withdrawn,
                report.other_ecosystems,
                stored,
                dir.display()
            );
            for e in report.errors.iter().take(20) {
                eprintln!("skipped: {e}");
            }
            if report.errors.len() > 20 {
                eprintln!("… and {} more files skipped", report.errors.len() - 20);
            }
            Ok(if report.records == 0 { 1 } else { 0 })
        }
        Command::Vuln { command: VulnCommand::Report { opts, format } } => {
            let r = check(call(&opts, "GET", &format!("/v1/vulns/report?format={format}"), None)?)?;
            print!("{}", r.body);
            Ok(0)
        }
        Command::Vuln { command: VulnCommand::Scan { opts, target } } => {
            let body = serde_json::json!({ "target": target });
            let r = check(call(&opts, "POST", "/v1/scan", Some(&body.to_string()))?)?;
            println!("{}", pretty(&r.body));
            Ok(0)
        }
        Command::Vuln { command: VulnCommand::Verify { incident, opts, package, fixed } } => {
            let incident_id: uuid::Uuid = incident.parse().context("the incident id is a UUID")?;
            let body = serde_json::json!({ "payload": { "kind": "patch_verification", "incident_id": incident_id,
                "package": package, "fixed_version": fixed } });
            let r = check(call(&opts, "POST", "/v1/inject", Some(&body.to_string()))?)?;
            println!("{}", pretty(&r.body));
            Ok(0)
        }
        Command::Evidence { command: EvidenceCommand::Export { incident, opts, out, by } } => {
            evidence_export(&opts, &incident, out, by)
        }
        Command::Evidence { command: EvidenceCommand::Verify { bundle, opts, by } } => {
            evidence_verify(&opts, &bundle, by)
        }
    }
}

fn load_defs(actors: Option<&Path>) -> Result<definitions::Definitions> {
    let dir = ActorsDir::resolve(actors);
    let defs = definitions::load(&dir).map_err(|e| anyhow::anyhow!("invalid agent definitions:\n{e}"))?;
    for w in &defs.warnings {
        tracing::warn!(%w, "rule not loaded");
    }
    Ok(defs)
}

fn lint(actors: Option<PathBuf>) -> Result<i32> {
    let dir = ActorsDir::resolve(actors.as_deref());
    match definitions::load(&dir) {
        Ok(d) => {
            // Feeds are checked entry by entry; a broken entry is reported like a rule.
            let mut feed_errors = Vec::new();
            let mut indicators = 0;
            for a in d.agents.values().filter(|a| !a.feeds.is_empty()) {
                let idx = warden::tools::detection::ioc::IocIndex::load(&a.feeds);
                indicators += idx.len();
                feed_errors.extend(idx.errors);
            }
            if d.warnings.is_empty() && feed_errors.is_empty() {
                let rules: usize = d.agents.values().map(|a| a.rule_files.len()).sum();
                let names = d.agents.keys().cloned().collect::<Vec<_>>().join(", ");
                println!(
                    "{}: {} agents OK ({names}), {rules} rule files, {indicators} threat-intel indicators",
                    d.origin,
                    d.agents.len()
                );
                return Ok(0);
            }
            for w in d.warnings.iter().chain(&feed_errors) {
                println!("{w}");
            }
            if !d.warnings.is_empty() {
                eprintln!("{} rule(s) would not load; the agents run without them", d.warnings.len());
            }
            if !feed_errors.is_empty() {
                eprintln!("{} feed entr(ies) would not load; the others do", feed_errors.len());
            }
            Ok(1)
        }
        Err(e) => {
            for err in &e.errors {
                println!("{err}");
            }
            eprintln!("{} error(s)", e.errors.len());
            Ok(1)
        }
    }
}

/// Creates the data directory (0700) and checks that it is usable.
fn prepare_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| {
            format!("cannot create the data directory {} (choose another with --data-dir)", dir.display())
        })?;
    }
    if !dir.is_dir() {
        bail!("data directory {} is not a directory", dir.display());
    }
    let probe = dir.join(".warden-write-test");
    std::fs::write(&probe, b"ok").with_context(|| {
        format!("data directory {} is not writable (choose another with --data-dir)", dir.display())
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn run(opts: ClientOpts, actors: Option<PathBuf>) -> Result<i32> {
    warden::telemetry::init_tracing("info");
    let mut cfg = Config::load(opts.config.as_deref())?;
    let defs = load_defs(actors.as_deref())?;
    let data_dir = cfg.data_dir(opts.data_dir.as_deref());
    prepare_data_dir(&data_dir)?;
    // Everything below (quarantine, tokens) resolves paths from this one.
    cfg.data_dir = Some(data_dir.clone());
    let store = Store::open(&data_dir.join("db"), cfg.storage.cache_mb << 20)
        .with_context(|| format!("unusable data directory {} (is another warden using it?)", data_dir.display()))?;
    let token = admin::token::ensure(&data_dir)?;
    let sys = actix::System::new();
    sys.block_on(async move {
        let mut rt = Runtime::start(&cfg, &defs, store)?;
        // Sources first: once the admin API answers, every listener is bound.
        for (source, addr) in rt.start_sources(&cfg).map_err(anyhow::Error::msg)? {
            tracing::info!(%source, %addr, "syslog source listening");
        }
        let state = admin::AdminState {
            handles: admin::Handles::of(&rt.supervisor),
            kb: rt.kb.clone(),
            metrics: rt.metrics.clone(),
            token: Arc::new(token),
            sources: Arc::new(cfg.sources.iter().map(|s| (s.name.clone(), s.format)).collect()),
            fault_injection: cfg.testing.fault_injection,
            max_body: cfg.admin.max_body_bytes,
            max_line_bytes: cfg.ingest.max_line_bytes,
            started: Instant::now(),
            detector_state_key: rt.detector_state_key.clone(),
            evidence_dir: cfg.response.evidence_dir.clone().unwrap_or_else(|| data_dir.join("evidence")),
        };
        let admin = admin::start(cfg.admin.listen, state)?;
        if cfg.testing.fault_injection {
            tracing::warn!("fault injection is ON: never use this configuration in production");
        }
        tracing::info!(admin = %cfg.admin.listen, data_dir = %data_dir.display(), mode = %cfg.response.mode, actors = %defs.origin, "warden running");
        wait_for_signal().await;
        tracing::info!("stopping");
        drop(admin);
        rt.shutdown().await?;
        tracing::info!("stopped; knowledge base flushed");
        anyhow::Ok(())
    })?;
    Ok(0)
}

async fn wait_for_signal() {
    use actix_rt::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = actix_rt::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// What `warden replay` prints.
struct ReplayOutput {
    json: bool,
    stats: bool,
    findings: bool,
    format: LogFormat,
}

fn replay(files: Vec<PathBuf>, out: ReplayOutput, actors: Option<PathBuf>, config: Option<PathBuf>) -> Result<i32> {
    let ReplayOutput { json, stats, findings: want_findings, format } = out;
    warden::telemetry::init_tracing("warn");
    let cfg = Config::load(config.as_deref())?;
    let defs = load_defs(actors.as_deref())?;
    for f in &files {
        std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
    }
    // A replay's database is thrown away at the end: a small page cache is enough.
    let store = Store::temporary(cfg.storage.cache_mb.min(8) << 20)?;
    // Replay reads whole files: larger batches mean fewer commits.
    let mut cfg = cfg;
    cfg.ingest.batch_lines = cfg.ingest.batch_lines.max(8_192);
    let sys = actix::System::new();
    let (incidents, findings, lines, elapsed, read_secs) = sys.block_on(async move {
        let rt = Runtime::start_with(&cfg, &defs, store, false)?;
        rt.ready().await;
        let progress = warden::ingest::replay::progress();
        let started = Instant::now();
        let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let ticker = std::io::stderr().is_terminal().then(|| {
            let p = progress.clone();
            actix_rt::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let (b, l) = (p.bytes.load(Ordering::Relaxed), p.lines.load(Ordering::Relaxed));
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    eprint!("\r{:5.1}%  {l} lines  {:.0} lines/s   ", 100.0 * b as f64 / total_bytes.max(1) as f64, l as f64 / secs);
                }
            })
        });
        let mut lines = 0u64;
        for (i, f) in files.iter().enumerate() {
            let source = format!("replay-{i}");
            let stats = warden::ingest::replay::replay_file(f, &source, format, &cfg.ingest, &rt.supervisor.clone().recipient(), &progress).await?;
            lines += stats.lines;
            if stats.invalid_utf8 + stats.truncated > 0 {
                tracing::warn!(file = %f.display(), invalid_utf8 = stats.invalid_utf8, truncated = stats.truncated, "damaged lines");
            }
        }
        let read_secs = started.elapsed().as_secs_f64();
        rt.quiesce().await;
        let elapsed = started.elapsed();
        if let Some(t) = ticker {
            t.abort();
            eprint!("\r\x1b[2K");
        }
        let incidents = rt.kb.incidents().await?;
        let findings = if want_findings { rt.kb.findings().await? } else { Vec::new() };
        rt.shutdown().await?;
        anyhow::Ok((incidents, findings, lines, elapsed, read_secs))
    })?;
    if want_findings {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if json {
        println!("{}", serde_json::to_string_pretty(&incidents)?);
    } else {
        print_incidents(&incidents);
        let actions: usize = incidents.iter().map(|i| i.actions.len()).sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        println!(
            "replayed {lines} lines in {:.3} s ({:.0} lines/s): {} incidents, {actions} actions",
            secs,
            lines as f64 / secs,
            incidents.len()
        );
    }
    if stats {
        // Reading, parsing, detection and committing every batch were done at `read_secs`;
        // the rest is incident response working through the findings.
        println!(
            "lines read, parsed and analysed in {read_secs:.3} s ({:.0} lines/s)",
            lines as f64 / read_secs.max(1e-9)
        );
        // VmHWM: the peak resident set size of this process, in kB.
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok());
        match kb {
            Some(kb) => println!("peak RSS: {:.1} MB", kb as f64 / 1024.0),
            None => println!("peak RSS: unknown (no /proc/self/status)"),
        }
    }
    Ok(0)
}

fn print_incidents(incidents: &[Incident]) {
    for i in incidents {
        println!(
            "{}  {:<28} {:<8} {}  {:<9} {}",
            i.id,
            i.kind,
            i.severity.to_string(),
            serde_json::to_value(i.priority).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            serde_json::to_value(i.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            i.entities.join(",")
        );
        for a in &i.actions {
            let status =
                serde_json::to_value(a.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            println!("    {} {} mode={} status={}: {}", a.kind, a.target, a.mode, status, a.argv.join(" "));
            if a.status == warden::messages::ActionStatus::PendingApproval {
                println!("      waiting for approval: warden approve {} (or reject)", a.id);
            }
        }
        if let Some(run) = &i.playbook {
            let status =
                serde_json::to_value(run.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            println!("    playbook {} {status}, {} step(s) recorded", run.playbook, run.steps.len());
            if let Some(g) = run.gate {
                println!("      waiting for approval: warden approve {g} (or reject)");
            }
        }
        for n in &i.notes {
            println!("    note: {n}");
        }
    }
}

/// The admin address and token of the daemon the CLI talks to.
fn client_target(o: &ClientOpts) -> Result<(SocketAddr, String)> {
    let cfg = Config::load(o.config.as_deref())?;
    let dir = cfg.data_dir(o.data_dir.as_deref());
    let token = admin::token::read(&dir)?;
    Ok((cfg.admin.listen, token))
}

fn call(o: &ClientOpts, method: &str, path: &str, body: Option<&str>) -> Result<client::Response> {
    let (addr, token) = client_target(o)?;
    Ok(client::request(addr, method, path, Some(&token), body)?)
}

fn check(r: client::Response) -> Result<client::Response> {
    if r.status >= 400 {
        let msg = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or(r.body);
        bail!("admin API answered {}: {msg}", r.status);
    }
    Ok(r)
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_string())
}

fn print_get(o: &ClientOpts, path: &str) -> Result<i32> {
    let r = check(call(o, "GET", path, None)?)?;
    println!("{}", pretty(&r.body));
    Ok(0)
}

fn agents(o: &ClientOpts) -> Result<i32> {
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

fn incidents(o: &ClientOpts, json: bool) -> Result<i32> {
    let r = check(call(o, "GET", "/v1/incidents", None)?)?;
    if json {
        println!("{}", pretty(&r.body));
    } else {
        let list: Vec<Incident> = serde_json::from_str(&r.body)?;
        print_incidents(&list);
    }
    Ok(0)
}

fn inject(
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

fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn evidence_export(o: &ClientOpts, incident: &str, out: Option<PathBuf>, by: Option<String>) -> Result<i32> {
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

fn evidence_verify(o: &ClientOpts, bundle: &Path, by: Option<String>) -> Result<i32> {
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
fn decide(o: &ClientOpts, id: &str, by: Option<String>, comment: String, approve: bool) -> Result<i32> {
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

/// `warden scan`: the same steps as the agent's scan, in this process, without the
/// knowledge base (so without "under attack now" context).
fn scan(o: &ClientOpts, target: Option<PathBuf>, json: bool, actors: Option<&Path>) -> Result<i32> {
    use warden::tools::vuln::{osv::AdvisoryDb, risk::ThreatContext, scan as vscan};
    let cfg = Config::load(o.config.as_deref())?;
    let data_dir = cfg.data_dir(o.data_dir.as_deref());
    let defs = load_defs(actors)?;
    let vm = defs.agents.values().find(|d| d.kind == definitions::AgentKind::VulnerabilityManagement);
    let params = vm.map(|d| d.vuln.clone()).unwrap_or_default();
    let db = AdvisoryDb::open(&data_dir.join("osv")).map_err(anyhow::Error::msg)?;
    if db.is_empty() {
        eprintln!(
            "warden: no advisories in {} — import some first: `warden vuln db import PATH` (OSV records or an osv.dev all.zip)",
            data_dir.join("osv").display()
        );
        return Ok(1);
    }
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { data_dir.join(p) }
    };
    let ctx =
        ThreatContext::load(Some(&resolve(&params.kev)), Some(&resolve(&params.epss))).map_err(anyhow::Error::msg)?;
    let targets: Vec<vscan::Target> = match target {
        Some(path) => vec![vscan::Target { asset: path.display().to_string(), path, hosts: Vec::new() }],
        None => params.targets.clone(),
    };
    let assets = vm.map(|d| d.assets.clone()).unwrap_or_default();
    let now = chrono::Utc::now();
    let scans: Vec<vscan::ScanReport> = targets
        .iter()
        .map(|t| {
            let a = assets.assets.iter().find(|a| a.name == t.asset);
            let asset = warden::tools::vuln::risk::AssetContext {
                name: t.asset.clone(),
                criticality: a.map_or(assets.default.criticality, |a| a.criticality),
                exposure: a.map_or(assets.default.exposure, |a| a.exposure),
                known: a.is_some(),
            };
            let mut r = vscan::scan_target(t, asset, &db, &ctx, &Default::default(), &params.checks, now);
            vscan::diff(None, &mut r);
            r
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&scans)?);
    } else {
        let p = vscan::posture(&scans, now);
        print!("{}", vscan::render_posture(&p, warden::tools::response::report::Format::Markdown));
    }
    for s in &scans {
        for e in &s.errors {
            eprintln!("warning: {e}");
        }
    }
    Ok(0)
}

fn audit_verify(o: &ClientOpts, offline: bool) -> Result<i32> {
    let report: warden::kb::audit::AuditReport = if offline {
        let cfg = Config::load(o.config.as_deref())?;
        let dir = cfg.data_dir(o.data_dir.as_deref());
        // A process that just exited may hold the database lock for a moment longer.
        let deadline = Instant::now() + Duration::from_secs(5);
        let store = loop {
            match Store::open(&dir.join("db"), 16 << 20) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot open {} (stop the daemon first)", dir.display()));
                }
            }
        };
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
