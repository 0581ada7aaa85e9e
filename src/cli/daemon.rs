//! `warden run` (the daemon, with its data directory and signals) and `warden lint`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use warden::admin;
use warden::config::Config;
use warden::definitions::{self, ActorsDir};
use warden::runtime::Runtime;
use warden::store::Store;

use crate::ClientOpts;

pub fn load_defs(actors: Option<&Path>) -> Result<definitions::Definitions> {
    let dir = ActorsDir::resolve(actors);
    let defs = definitions::load(&dir).map_err(|e| anyhow::anyhow!("invalid agent definitions:\n{e}"))?;
    for w in &defs.warnings {
        tracing::warn!(%w, "rule not loaded");
    }
    Ok(defs)
}

pub fn lint(actors: Option<PathBuf>) -> Result<i32> {
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

/// Set in the environment of a daemon that restarted itself after a write failure: the
/// failure (JSON), for the `visibility` incident it opens.
pub const RECOVERED_ENV: &str = "WARDEN_STORAGE_RECOVERED";

/// How long stopping may take before the process exits anyway.
const STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

pub fn run(opts: ClientOpts, actors: Option<PathBuf>) -> Result<i32> {
    super::memory::tune();
    warden::telemetry::init_tracing("info");
    let mut cfg = Config::load(opts.config.as_deref())?;
    let defs = load_defs(actors.as_deref())?;
    let data_dir = cfg.data_dir(opts.data_dir.as_deref());
    super::data_dir::prepare(&data_dir)?;
    // Everything below (quarantine, tokens) resolves paths from this one.
    cfg.data_dir = Some(data_dir.clone());
    // Each error says what is wrong and what to do (a lock held, damage, the cause).
    let shares = cfg.storage.memory_shares();
    if shares.cache_bytes < cfg.storage.cache_mb << 20 {
        tracing::warn!(
            cache_mb = cfg.storage.cache_mb,
            memory_budget_mb = cfg.storage.memory_budget_mb,
            used_mb = shares.cache_bytes >> 20,
            "[storage] cache_mb is more than a sixteenth of memory_budget_mb (sled's pages take about twice their size in memory): the page cache is capped at a sixteenth"
        );
    }
    let store = Store::open(&data_dir.join("db"), shares.cache_bytes)?;
    let token = admin::token::ensure(&data_dir)?;
    let sys = actix::System::new();
    let restart = sys.block_on(async move {
        let mut rt = Runtime::start(&cfg, &defs, store)?;
        // Memory freed after a burst goes back to the kernel instead of staying resident.
        let trimmer = actix_rt::spawn(async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                super::memory::trim();
            }
        });
        // Sources first: once the admin API answers, every listener is bound.
        for (source, addr) in rt.start_sources(&cfg)? {
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
            containment: rt.containment.clone(),
            fleet: rt.fleet.clone(),
        };
        let admin = admin::start(&cfg.admin, state)?;
        if cfg.testing.fault_injection {
            tracing::warn!("fault injection is ON: never use this configuration in production");
        }
        tracing::info!(admin = %cfg.admin.listen, data_dir = %data_dir.display(), mode = %cfg.response.mode, actors = %defs.origin, "warden running");
        if let Some(c) = &rt.containment {
            log_containment(c);
        }
        actix_rt::spawn(super::storage::watch_free_space(
            rt.kb.clone(),
            rt.metrics.clone(),
            data_dir.join("db"),
            cfg.storage.min_free_mb << 20,
        ));
        let sources = cfg.sources.iter().map(|s| s.name.clone()).collect();
        actix_rt::spawn(warden::ingest::visibility::run(
            rt.kb.clone(),
            rt.metrics.clone(),
            cfg.visibility.clone(),
            sources,
        ));
        if let Ok(text) = std::env::var(RECOVERED_ENV) {
            super::storage::open_recovered_incident(&rt.kb, &text, &data_dir).await;
        }
        let restart = tokio::select! {
            _ = wait_for_signal() => None,
            f = super::storage::writable_again(rt.kb.health.clone(), data_dir.join("db")) => Some(f),
        };
        match &restart {
            None => tracing::info!("stopping"),
            Some(f) => tracing::warn!(
                since = %f.since, error = %f.error,
                "storage takes writes again: restarting in place to reopen the database"
            ),
        }
        drop(admin);
        // Everything acknowledged is durable already: a stop that hangs (a database that
        // cannot write) is cut short rather than ignoring SIGTERM.
        trimmer.abort();
        match tokio::time::timeout(STOP_DEADLINE, rt.shutdown()).await {
            Ok(Ok(())) => tracing::info!("stopped; knowledge base flushed"),
            Ok(Err(e)) if restart.is_some() => tracing::warn!(error = %e, "final flush failed (expected after a write failure)"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::error!("stopping took longer than {}s; exiting", STOP_DEADLINE.as_secs()),
        }
        anyhow::Ok(restart)
    })?;
    if let Some(f) = restart {
        return Err(super::storage::restart_in_place(&f));
    }
    Ok(0)
}

/// Says in which mode each containment action runs, and loudly when a definition made
/// it stricter than the configuration.
fn log_containment(c: &warden::definitions::ContainmentModes) {
    let modes: Vec<String> = c.actions.iter().map(|(k, e)| format!("{k}={}", e.mode)).collect();
    tracing::info!(configured = %c.configured, agent = %c.agent, actions = %modes.join(" "), "containment modes");
    for (kind, e) in &c.actions {
        if !e.restricted_by.is_empty() {
            tracing::warn!(
                action = %kind, mode = %e.mode, configured = %c.configured, restricted_by = %e.restricted_by.join("; "),
                "a definition holds this action to a stricter mode than the configuration"
            );
        }
    }
}

pub async fn wait_for_signal() {
    use actix_rt::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = actix_rt::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
