//! `warden ship`: on each host of a fleet, the configured sources (file, journald,
//! stdin) read as `warden run` reads them, their lines published to the cluster's logs
//! stream instead of analysed here. The checkpoints live in a small database in the
//! data directory and move only after JetStream acknowledged a batch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix::prelude::*;
use anyhow::{Result, bail};
use warden::cluster::Cluster;
use warden::cluster::ship::{Shipper, reconcile};
use warden::config::{Config, SourceKind};
use warden::kb::{Kb, KnowledgeBase};
use warden::store::Store;
use warden::telemetry::Metrics;

use crate::ClientOpts;

/// sled's page cache for the shipper's checkpoints (a few keys).
const CACHE_BYTES: u64 = 1 << 20;

pub fn ship(opts: ClientOpts) -> Result<i32> {
    super::memory::tune();
    warden::telemetry::init_tracing("info");
    let mut cfg = Config::load(opts.config.as_deref())?;
    let Some(cluster_cfg) = cfg.cluster.clone() else {
        bail!("`warden ship` needs a [cluster] section with nats_url in the configuration")
    };
    if let Some(s) =
        cfg.sources.iter().find(|s| !matches!(s.kind, SourceKind::File | SourceKind::Journald | SourceKind::Stdin))
    {
        bail!(
            "source `{}`: `warden ship` reads file, journald and stdin sources (a syslog or NATS source belongs on an analysis node)",
            s.name
        );
    }
    if cfg.sources.is_empty() {
        bail!("no [[sources]] to ship");
    }
    let host = cfg.ship.host_name();
    let data_dir = cfg.data_dir(opts.data_dir.as_deref());
    super::data_dir::prepare(&data_dir)?;
    let store = Store::open(&data_dir.join("ship"), CACHE_BYTES)?;
    cfg.ingest.ship = true;
    let sys = actix::System::new();
    sys.block_on(async move {
        let kb_state = KnowledgeBase::new(store)?;
        let (health, reader) = (kb_state.health(), kb_state.reader());
        let kb = Kb { addr: kb_state.start(), health, reader };
        // The host keeps reading while the servers are away: connecting waits for them.
        let cluster = Cluster::connect(&cluster_cfg, &host, Duration::from_secs(u64::MAX >> 2)).await?;
        let names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
        let moved = loop {
            match reconcile(&cluster, &host, &kb, &names).await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot compare the checkpoints with the stream yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let formats: HashMap<String, _> = cfg.sources.iter().map(|s| (s.name.clone(), s.format)).collect();
        let shipped = Arc::new(AtomicU64::new(0));
        let shipper = Shipper {
            cluster,
            host: host.clone(),
            kb: kb.clone(),
            formats: Arc::new(formats),
            shipped: shipped.clone(),
            crash_after_publish: cfg.testing.crash_at == Some(warden::config::CrashPoint::AfterPublish),
        }
        .start();
        let metrics = Arc::new(Metrics::default());
        let mut arbiters = Vec::new();
        for s in &cfg.sources {
            let arbiter = Arbiter::new();
            let sink = shipper.clone().recipient().into();
            warden::ingest::start_reader(&arbiter.handle(), s, cfg.ingest.clone(), kb.clone(), sink, metrics.clone())?;
            arbiters.push(arbiter);
        }
        tracing::info!(%host, sources = names.len(), resumed_from_stream = moved, "shipping");
        if let Some(rss) = warden::telemetry::resident_bytes() {
            tracing::info!(rss_mb = rss >> 20, "shipper started");
        }
        super::daemon::wait_for_signal().await;
        tracing::info!(lines = shipped.load(std::sync::atomic::Ordering::Relaxed), "stopping");
        let _ = kb.flush().await;
        Ok::<_, anyhow::Error>(0)
    })
}
