//! The fleet on NATS JetStream: the only module that names `async_nats`.
//!
//! Hosts run `warden ship` ([`ship`]): their sources' lines go, in batches, to the logs
//! stream (`[cluster] logs_stream`, subjects `warden.logs.<host>.<source>`), each batch
//! acknowledged by JetStream before the host's checkpoint moves past it. Analysis nodes
//! read the stream through a durable consumer ([`source`]): a message is acknowledged
//! only after the batch's effects and the consumer's checkpoint (the stream sequence)
//! are committed together, so a redelivery after `kill -9` is recognised and applied
//! once.
//!
//! Architecture invariant: nothing outside this module names NATS; without `[cluster]`
//! none of it runs.

pub mod decisions;
pub mod fleet;
pub mod lease;
pub mod presence;
pub mod ship;
pub mod source;
mod wire;

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv;

use crate::config::ClusterConfig;
use crate::config::cluster::LOGS_SUBJECTS;

/// Why the cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("[cluster] credentials: {0}")]
    Credentials(String),
    #[error("cannot connect to NATS at {url}: {error}")]
    Connect { url: String, error: String },
    #[error("JetStream stream `{stream}`: {error}")]
    Stream { stream: String, error: String },
    #[error("publishing to {subject}: {error}")]
    Publish { subject: String, error: String },
    #[error("JetStream consumer `{consumer}`: {error}")]
    Consumer { consumer: String, error: String },
    #[error("node {node} does not lead the fleet's incident response (the leader: {leader})")]
    NotLeader { node: String, leader: String },
}

/// A connection to the cluster's NATS servers, with JetStream.
#[derive(Clone)]
pub struct Cluster {
    js: jetstream::Context,
    cfg: ClusterConfig,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("nats_url", &self.cfg.nats_url).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects as `name` (the node or host: servers list it), with the configured
    /// credentials and TLS. Retries the first connection for `patience` (a host that
    /// starts before the central servers keeps trying after that, in the background).
    pub async fn connect(cfg: &ClusterConfig, name: &str, patience: Duration) -> Result<Cluster, ClusterError> {
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("warden {name}"))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        let env = |var: &str| {
            std::env::var(var).map_err(|_| ClusterError::Credentials(format!("environment variable {var} is not set")))
        };
        if let (Some(user), Some(var)) = (&cfg.user, &cfg.password_env) {
            opts = opts.user_and_password(user.clone(), env(var)?);
        }
        if let Some(var) = &cfg.token_env {
            opts = opts.token(env(var)?);
        }
        if let Some(path) = &cfg.creds_file {
            opts = opts
                .credentials_file(path)
                .await
                .map_err(|e| ClusterError::Credentials(format!("{}: {e}", path.display())))?;
        }
        if let Some(path) = &cfg.nkey_file {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| ClusterError::Credentials(format!("{}: {e}", path.display())))?;
            opts = opts.nkey(seed.trim().to_string());
        }
        if let Some(ca) = &cfg.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
            opts = opts.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> =
            cfg.nats_url.split(',').map(|u| u.trim().parse()).collect::<Result<_, _>>().map_err(
                |e: std::io::Error| ClusterError::Connect { url: cfg.nats_url.clone(), error: e.to_string() },
            )?;
        let deadline = tokio::time::Instant::now() + patience;
        let client = loop {
            match opts.clone().connect(urls.clone()).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(ClusterError::Connect { url: cfg.nats_url.clone(), error: e.to_string() });
                }
                Err(e) => {
                    tracing::warn!(url = %cfg.nats_url, error = %e, "NATS not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        Ok(Cluster { js: jetstream::new(client), cfg: cfg.clone() })
    }

    /// The logs stream, created with the configured limits if absent, its limits brought
    /// to the configuration if not (analysis nodes own the stream's settings).
    pub async fn logs_stream(&self) -> Result<jetstream::stream::Stream, ClusterError> {
        let want = self.logs_config();
        let mut stream = self.js.get_or_create_stream(want.clone()).await.map_err(|e| self.logs_err(&e))?;
        let info = stream.info().await.map_err(|e| self.logs_err(&e))?;
        let have = &info.config;
        if have.max_age != want.max_age
            || have.max_bytes != want.max_bytes
            || have.subjects != want.subjects
            || have.allow_direct != want.allow_direct
        {
            tracing::info!(stream = %want.name, "bringing the logs stream's settings to the configuration");
            self.js.update_stream(want).await.map_err(|e| self.logs_err(&e))?;
        }
        Ok(stream)
    }

    /// The logs stream as a shipping host reaches it: read as it is (created only if
    /// absent and the host may), never changed — a host's credentials need no more.
    pub async fn logs_stream_as_host(&self) -> Result<jetstream::stream::Stream, ClusterError> {
        self.js.get_or_create_stream(self.logs_config()).await.map_err(|e| self.logs_err(&e))
    }

    fn logs_config(&self) -> jetstream::stream::Config {
        let c = &self.cfg;
        jetstream::stream::Config {
            name: c.logs_stream.clone(),
            subjects: vec![LOGS_SUBJECTS.to_string()],
            max_age: Duration::from_secs(c.logs_max_age_secs),
            max_bytes: i64::try_from(c.logs_max_bytes).unwrap_or(i64::MAX),
            storage: jetstream::stream::StorageType::File,
            num_replicas: c.replicas,
            // A batch published again within this window (a shipper that died between
            // JetStream's acknowledgement and its own checkpoint) is stored once.
            duplicate_window: Duration::from_secs(600),
            // A host reads back its own last batch by subject
            // (`$JS.API.DIRECT.GET.<stream>.warden.logs.<host>.…`: a permission that
            // can be scoped to the host).
            allow_direct: true,
            ..Default::default()
        }
    }

    fn logs_err(&self, e: &dyn std::fmt::Display) -> ClusterError {
        ClusterError::Stream { stream: self.cfg.logs_stream.clone(), error: e.to_string() }
    }

    /// A stream of `subjects` kept a week (1 GiB at most), created if absent; a message
    /// published again with the same id within ten minutes is stored once.
    async fn week_stream(&self, name: &str, subjects: &str) -> Result<(), ClusterError> {
        use async_nats::jetstream::stream;
        self.js
            .get_or_create_stream(stream::Config {
                name: name.into(),
                subjects: vec![subjects.into()],
                max_age: Duration::from_secs(7 * 86_400),
                max_bytes: 1 << 30,
                storage: stream::StorageType::File,
                num_replicas: self.cfg.replicas,
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Stream { stream: name.into(), error: e.to_string() })
    }

    /// A key-value bucket, created if absent. Its stream is made here as a bucket's
    /// (ADR-8: `KV_<bucket>`, `$KV.<bucket>.>`, roll-ups, direct gets): the client's own
    /// bucket creation first reads the account's information, which it cannot parse
    /// from a 2.9 server (no `reserved_memory`). A key whose last change is older than
    /// `max_age` is gone.
    async fn bucket(&self, name: &str, history: i64, max_age: Duration) -> Result<kv::Store, ClusterError> {
        use async_nats::jetstream::stream;
        let err = |e: &dyn std::fmt::Display| ClusterError::Stream { stream: name.into(), error: e.to_string() };
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: history,
                max_age,
                storage: stream::StorageType::File,
                num_replicas: self.cfg.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                duplicate_window: max_age.min(Duration::from_secs(120)),
                ..Default::default()
            })
            .await
            .map_err(|e| err(&e))?;
        self.js.get_key_value(name).await.map_err(|e| err(&e))
    }

    /// Publishes and waits for JetStream's acknowledgement (the message is stored).
    async fn publish_acked(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        body: Vec<u8>,
    ) -> Result<(), ClusterError> {
        let err = |e: &dyn std::fmt::Display| ClusterError::Publish { subject: subject.clone(), error: e.to_string() };
        let ack = self.js.publish_with_headers(subject.clone(), headers, body.into()).await.map_err(|e| err(&e))?;
        match tokio::time::timeout(Duration::from_secs(10), ack).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(err(&e)),
            Err(_) => Err(err(&"no acknowledgement within 10 s")),
        }
    }

    /// The messages of `stream` through the durable pull consumer `consumer` (shared by
    /// whoever pulls with that name), each to be acknowledged once stored
    /// ([`Delivery::ack`]); one at a time, so in stream order. An unreadable message is
    /// logged and acknowledged.
    async fn pull<T: serde::de::DeserializeOwned>(
        &self,
        stream: &str,
        consumer: &str,
        ack_wait: Duration,
    ) -> Result<impl futures_util::Stream<Item = Result<Delivery<T>, ClusterError>> + use<T>, ClusterError> {
        use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
        use futures_util::StreamExt;
        let err =
            |e: &dyn std::fmt::Display| ClusterError::Consumer { consumer: consumer.into(), error: e.to_string() };
        let c: PullConsumer = self
            .js
            .get_stream(stream)
            .await
            .map_err(|e| err(&e))?
            .get_or_create_consumer(
                consumer,
                pull::Config {
                    durable_name: Some(consumer.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(&e))?;
        let messages = c.messages().await.map_err(|e| err(&e))?;
        let name = consumer.to_string();
        Ok(messages.filter_map(move |m| {
            let name = name.clone();
            async move {
                let msg = match m {
                    Ok(m) => m,
                    Err(e) => return Some(Err(ClusterError::Consumer { consumer: name, error: e.to_string() })),
                };
                match serde_json::from_slice::<T>(&msg.payload) {
                    Ok(item) => Some(Ok(Delivery { item, msg })),
                    Err(e) => {
                        tracing::warn!(subject = %crate::text::sanitize(&msg.subject, 200), error = %e, consumer = %name, "unreadable message: skipped");
                        let _ = msg.ack().await;
                        None
                    }
                }
            }
        }))
    }
}

/// Every value of a bucket that reads as a `T`, in key order (others are skipped).
async fn values<T: serde::de::DeserializeOwned>(store: &kv::Store, bucket: &str) -> Result<Vec<T>, ClusterError> {
    use futures_util::StreamExt;
    let err = |e: &dyn std::fmt::Display| ClusterError::Stream { stream: bucket.into(), error: e.to_string() };
    let mut keys: Vec<String> =
        store.keys().await.map_err(|e| err(&e))?.filter_map(|k| async { k.ok() }).collect().await;
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(v) = store.get(&k).await.map_err(|e| err(&e))?
            && let Ok(t) = serde_json::from_slice::<T>(&v)
        {
            out.push(t);
        }
    }
    Ok(out)
}

/// A message as a consumer receives it: acknowledge it once stored.
pub struct Delivery<T> {
    pub item: T,
    msg: jetstream::Message,
}

impl<T> Delivery<T> {
    /// Stored: the stream may forget it for this consumer.
    pub async fn ack(&self) {
        if let Err(e) = self.msg.ack().await {
            tracing::warn!(error = %e, "acknowledgement not sent; the message will come again");
        }
    }
}
