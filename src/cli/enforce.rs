//! `warden enforce`: on each host of a fleet, the cluster's containment decisions
//! applied to the host's own nftables table (`[enforce]`), each outcome reported.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use warden::cluster::Cluster;
use warden::config::Config;
use warden::tools::response::Protected;
use warden::tools::response::enforce::{Settings, run};

use crate::ClientOpts;

pub fn enforce(opts: ClientOpts) -> Result<i32> {
    warden::telemetry::init_tracing("info");
    let cfg = Config::load(opts.config.as_deref())?;
    let Some(cluster_cfg) = cfg.cluster.clone() else {
        bail!("`warden enforce` needs a [cluster] section with nats_url in the configuration")
    };
    let settings = Settings {
        host: cfg.enforce.host_name(),
        mode: cfg.enforce.mode,
        table: cfg.enforce.table.clone(),
        protected: Arc::new(Protected::new(&cfg.response.protected)),
        tally: Arc::default(),
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        // A host that starts before the servers waits for them.
        let cluster = Cluster::connect(&cluster_cfg, &settings.host, Duration::from_secs(u64::MAX >> 2)).await?;
        // A busy or restarting server: keep asking rather than leave the host unenforced.
        let (decisions, presence) = loop {
            match tokio::try_join!(cluster.decisions(), cluster.presence()) {
                Ok(d) => break d,
                Err(e) => {
                    tracing::warn!(error = %e, "the decisions bucket is not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        tracing::info!(host = %settings.host, mode = ?settings.mode, table = %settings.table, "enforcing the fleet's decisions");
        tokio::select! {
            _ = run(decisions, presence, settings) => {}
            _ = super::daemon::wait_for_signal() => {}
        }
        Ok::<_, anyhow::Error>(0)
    })
}
