//! `NatsSource`: a `[[sources]] kind = "nats"` of an analysis node. The shipping hosts
//! are shared between the live analysis nodes that read the logs stream: a host belongs
//! to the node that ranks first for it (rendezvous hashing of node and host names, the
//! same answer on every node); when a node dies, its hosts go to the others, and when one
//! joins, it takes its share. Each host is read through a durable consumer of its own
//! (`warden-<source>-<host>`), shared by whichever node owns the host: its position is
//! kept by the server, so a new owner goes on where the old one stopped.
//!
//! Detector windows live in the memory (and the knowledge base) of the node that reads
//! the host. When another node acknowledged past this node's checkpoint for the host
//! (the host moved here), it first reads the host's last `[cluster] warmup_secs` of logs
//! again, up to where the previous owner had acknowledged, so its windows hold what the
//! old owner's held: an attack that spans the move is seen whole, and the findings the
//! old owner already made come out with the same ids (stored once by the leader). A node
//! restarting on its own hosts reads nothing again.
//!
//! Per host, it emits each shipped batch as a `LogBatch` whose events carry the shipping
//! host (whatever host a line claims), with the stream sequence as the batch's sequence
//! and checkpoint (key `<source>@<host>`). A message is acknowledged only after the batch
//! is applied (its effects and that checkpoint committed and flushed). The consumer hands
//! out one message at a time (`max_ack_pending = 1`), so a host's messages are applied in
//! stream order; one applied but not acknowledged when the node died comes again and is
//! recognised as applied (its sequence is not above the checkpoint's).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use futures_util::StreamExt;

use super::wire;
use super::{Cluster, ClusterError};
use crate::config::ClusterConfig;
use crate::config::cluster::subject_token;
use crate::ingest::{BatchBuilder, LogSink, SendError, send_batch, stored_checkpoint};
use crate::kb::Kb;
use crate::messages::{BatchAck, Checkpoint};
use crate::telemetry::Metrics;

/// How long the server waits for an acknowledgement before it delivers a message again
/// (a node that died holding it); work in progress is signalled well within it.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// How often the hosts and the live nodes are read again.
const ASSIGN_EVERY: Duration = Duration::from_secs(2);

/// Parsers kept per host (one per source of the host); past this they are dropped and
/// rebuilt (each batch carries what a fresh parser needs to read it).
const MAX_PARSERS: usize = 256;

pub struct NatsSource {
    /// The source's name (its checkpoints' keys and its consumers' names start with it).
    pub source: String,
    pub subject: String,
    pub cluster: ClusterConfig,
    pub kb: Kb,
    pub sink: LogSink,
    pub metrics: Arc<Metrics>,
    /// `[testing] crash_at = "before_ack"`.
    pub crash_before_ack: bool,
}

impl Actor for NatsSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let shared = Arc::new(Shared {
            source: self.source.clone(),
            subject: self.subject.clone(),
            node: self.cluster.node_name(),
            cluster: self.cluster.clone(),
            kb: self.kb.clone(),
            sink: self.sink.clone(),
            metrics: self.metrics.clone(),
            crash_before_ack: self.crash_before_ack,
        });
        ctx.spawn(actix::fut::wrap_future(assign(shared)));
    }
}

struct Shared {
    source: String,
    subject: String,
    node: String,
    cluster: ClusterConfig,
    kb: Kb,
    sink: LogSink,
    metrics: Arc<Metrics>,
    crash_before_ack: bool,
}

/// The node that owns `host` among `nodes`: the highest rank of (node, host) — FNV-1a,
/// stable across builds and machines.
pub fn owner<'a>(nodes: &'a [String], host: &str) -> Option<&'a str> {
    let rank = |node: &str| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in node.bytes().chain([0]).chain(host.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Mixed again, so near names do not rank alike.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    };
    nodes.iter().max_by_key(|n| (rank(n), n.as_str())).map(String::as_str)
}

/// The subject of `host`'s messages within the source's `subject`, if the subject can
/// hold any (`warden.logs.>` → `warden.logs.<host>.>`).
fn host_filter(subject: &str, host: &str) -> Option<String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    match tokens.get(2) {
        Some(&">") => Some(format!("warden.logs.{host}.>")),
        Some(&"*") => {
            Some(tokens.iter().enumerate().map(|(i, t)| if i == 2 { host } else { t }).collect::<Vec<_>>().join("."))
        }
        Some(t) if *t == host => Some(subject.to_string()),
        _ => None,
    }
}

/// Reads which hosts there are and which nodes are alive, every two seconds, and keeps
/// one reader running per host this node owns. Ends when the sink is gone.
async fn assign(shared: Arc<Shared>) {
    let mut readers: HashMap<String, actix_rt::task::JoinHandle<()>> = HashMap::new();
    let mut session = None;
    loop {
        if !shared.sink.connected() {
            break;
        }
        if session.is_none() {
            session = match connect(&shared).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(source = %shared.source, error = %e, "NATS source: cluster unreachable; trying again");
                    None
                }
            };
        }
        if let Some((stream, nodes)) = &session {
            let owned = tokio::time::timeout(Duration::from_secs(10), owned(&shared, stream, nodes))
                .await
                .unwrap_or_else(|_| {
                    Err(ClusterError::Consumer {
                        consumer: "hosts and nodes".into(),
                        error: "no answer within 10 s".into(),
                    })
                });
            tracing::debug!(source = %shared.source, ?owned, "hosts this node reads");
            match owned {
                Ok(mine) => {
                    readers.retain(|host, task| {
                        let keep = mine.contains(host) && !task.is_finished();
                        if !keep {
                            if !mine.contains(host) {
                                tracing::info!(source = %shared.source, %host, "host now read by another node");
                            }
                            task.abort();
                        }
                        keep
                    });
                    for host in mine {
                        if let std::collections::hash_map::Entry::Vacant(slot) = readers.entry(host.clone()) {
                            tracing::info!(source = %shared.source, %host, node = %shared.node, "reading the host's logs");
                            let r = HostReader {
                                shared: shared.clone(),
                                host,
                                stream: stream.clone(),
                                builders: HashMap::new(),
                                lines_total: 0,
                            };
                            slot.insert(actix_rt::spawn(r.run()));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(source = %shared.source, error = %e, "NATS source: cannot read hosts or nodes; trying again");
                    session = None;
                }
            }
        }
        tokio::time::sleep(ASSIGN_EVERY).await;
    }
    for task in readers.values() {
        task.abort();
    }
}

async fn connect(
    shared: &Shared,
) -> Result<(async_nats::jetstream::stream::Stream, async_nats::jetstream::kv::Store), ClusterError> {
    let cluster = Cluster::connect(&shared.cluster, &shared.node, Duration::from_secs(10)).await?;
    Ok((cluster.logs_stream().await?, cluster.nodes().await?))
}

/// The hosts in the stream (under the source's subject) this node owns.
async fn owned(
    shared: &Shared,
    stream: &async_nats::jetstream::stream::Stream,
    nodes: &async_nats::jetstream::kv::Store,
) -> Result<Vec<String>, ClusterError> {
    let err = |e: &dyn std::fmt::Display| ClusterError::Stream {
        stream: shared.cluster.logs_stream.clone(),
        error: e.to_string(),
    };
    let mut live: Vec<String> =
        super::lease::live_nodes(nodes).await?.into_iter().filter(|n| n.analyses).map(|n| n.node).collect();
    if !live.contains(&shared.node) {
        live.push(shared.node.clone()); // Its own presence may not be written yet.
    }
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(&shared.subject)
        .await
        .map_err(|e| err(&e))?
        .filter_map(|s| async { s.ok() })
        .collect()
        .await;
    let mut hosts: Vec<String> =
        subjects.iter().filter_map(|(s, _)| wire::host_source(s).ok().map(|(h, _)| h.to_string())).collect();
    hosts.sort();
    hosts.dedup();
    Ok(hosts.into_iter().filter(|h| owner(&live, h) == Some(shared.node.as_str())).collect())
}

/// Reads one host's messages.
struct HostReader {
    shared: Arc<Shared>,
    host: String,
    /// The logs stream, through the node's one connection (which reconnects by itself).
    stream: async_nats::jetstream::stream::Stream,
    /// A batch builder (its parser) per logs subject of the host.
    builders: HashMap<String, BatchBuilder>,
    lines_total: u64,
}

impl HostReader {
    /// The checkpoint's key.
    fn key(&self) -> String {
        format!("{}@{}", self.shared.source, self.host)
    }

    /// Reads until the sink goes away or the task is stopped (the host moved); a lost
    /// connection or consumer is set up again.
    async fn run(mut self) {
        self.lines_total = stored_checkpoint(&self.shared.kb, &self.key()).await.map_or(0, |c| c.lines_total);
        let mut delay = Duration::from_millis(250);
        loop {
            match self.consume().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(source = %self.shared.source, host = %self.host, error = %e, "NATS source interrupted; resuming");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One consumer session: `Ok` when the sink is gone (shutting down).
    async fn consume(&mut self) -> Result<(), ClusterError> {
        let sh = self.shared.clone();
        let Some(filter) = host_filter(&sh.subject, &self.host) else { return Ok(()) };
        let durable = format!("warden-{}-{}", subject_token(&sh.source), self.host);
        let stream = self.stream.clone();
        let err =
            |e: &dyn std::fmt::Display| ClusterError::Consumer { consumer: durable.clone(), error: e.to_string() };
        let mut consumer: PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject: filter.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    deliver_policy: DeliverPolicy::All,
                    max_ack_pending: 1,
                    // A host that stops shipping leaves no consumer behind once its
                    // messages have aged out of the stream.
                    inactive_threshold: Duration::from_secs(sh.cluster.logs_max_age_secs),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(&e))?;
        // Another node acknowledged past what this one applied: the host moved here.
        let floor = consumer.info().await.map_err(|e| err(&e))?.ack_floor.stream_sequence;
        let applied = stored_checkpoint(&sh.kb, &self.key()).await.map_or(0, |c| c.seq);
        if floor > applied
            && sh.cluster.warmup_secs > 0
            && self.warm_up(&stream, &filter, applied, floor).await.is_err()
        {
            return Ok(());
        }
        let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| err(&e))?;
            match self.apply(&m).await {
                Err(_) => return Ok(()),
                Ok(false) => {
                    tracing::info!(source = %sh.source, host = %self.host, "shipped batch already applied (delivered again): acknowledged")
                }
                Ok(true) => {}
            }
            // Acknowledged means gone from the stream for this node: what the batch did
            // must be on disk first.
            if let Err(e) = sh.kb.flush().await {
                return Err(err(&format_args!("the knowledge base did not flush: {e}")));
            }
            if sh.crash_before_ack {
                tracing::error!(source = %sh.source, "testing: crashing before the acknowledgement");
                std::process::abort();
            }
            // Not acknowledged (connection lost): it comes again and is recognised.
            if let Err(e) = m.ack().await {
                tracing::warn!(source = %sh.source, error = %e, "acknowledgement not sent; the batch will come again");
            }
        }
        Err(err(&"the consumer's message stream ended"))
    }

    /// The host's last `warmup_secs` of messages up to `floor` (the last the host's
    /// consumer had acknowledged), applied — those up to `applied` (this node's own
    /// checkpoint) were applied here before and are passed over. `Err` when the sink is
    /// gone.
    async fn warm_up(
        &mut self,
        stream: &async_nats::jetstream::stream::Stream,
        filter: &str,
        applied: u64,
        floor: u64,
    ) -> Result<(), SendError> {
        let since = Utc::now() - chrono::Duration::seconds(i64::try_from(self.shared.cluster.warmup_secs).unwrap_or(0));
        // The client names start times in the `time` crate; its serde form is RFC 3339.
        let Ok(deliver_policy) = serde_json::from_value::<DeliverPolicy>(serde_json::json!({
            "deliver_policy": "by_start_time",
            "opt_start_time": since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        })) else {
            return Ok(());
        };
        let config = pull::Config {
            filter_subject: filter.to_string(),
            ack_policy: AckPolicy::None,
            deliver_policy,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(host = %self.host, error = %e, "warm-up not possible: the host's windows start empty");
                return Ok(());
            }
        };
        let mut read = 0u64;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(u64::MAX);
            if seq > floor {
                break;
            }
            if seq > applied {
                self.apply(&m).await?;
                read += 1;
            }
        }
        tracing::info!(source = %self.shared.source, host = %self.host, messages = read, up_to = floor, "warm-up done: the host's recent logs read again");
        Ok(())
    }

    /// Applies one message; `Ok(false)` when it had been applied before, `Err` when the
    /// sink is gone. A message that cannot be read is said, counted and acknowledged (it
    /// would never read better).
    async fn apply(&mut self, m: &Message) -> Result<bool, SendError> {
        let key = self.key();
        let seq = match m.info() {
            Ok(i) => i.stream_sequence,
            Err(e) => {
                tracing::warn!(source = %self.shared.source, error = %e, "a message without JetStream metadata: skipped");
                return Ok(true);
            }
        };
        let (host, shipped) = match wire::host_source(&m.subject)
            .and_then(|(h, _)| Ok((h, wire::decode(m.headers.as_ref(), &m.payload)?)))
        {
            Ok(x) => x,
            Err(e) => {
                self.shared.metrics.inc(&self.shared.metrics.shipped_unreadable);
                tracing::warn!(source = %self.shared.source, subject = %crate::text::sanitize(&m.subject, 200), seq, error = %e, "shipped batch unreadable: skipped");
                return Ok(true);
            }
        };
        if self.builders.len() >= MAX_PARSERS && !self.builders.contains_key(m.subject.as_str()) {
            self.builders.clear();
        }
        let b =
            self.builders.entry(m.subject.to_string()).or_insert_with(|| BatchBuilder::new(shipped.format, Utc::now()));
        if b.parser.format() != shipped.format {
            *b = BatchBuilder::new(shipped.format, Utc::now());
        }
        b.parser.read_preamble(&shipped.preamble);
        for line in shipped.lines {
            b.line(line);
        }
        for ev in &mut b.events {
            ev.host = host.to_string();
        }
        let lines = b.stats.lines;
        let checkpoint = Checkpoint { seq, lines_total: self.lines_total + lines, ..Checkpoint::default() };
        let batch = b.take(&key, Some(seq), Some(checkpoint));
        // Work in progress keeps the message ours while a slow commit runs.
        let progress = async {
            loop {
                tokio::time::sleep(ACK_WAIT / 3).await;
                let _ = m.ack_with(AckKind::Progress).await;
            }
        };
        tokio::select! {
            r = send_batch(&self.shared.sink, batch) => match r {
                Ok(BatchAck::Applied { .. }) => {
                    self.lines_total += lines;
                    Ok(true)
                }
                Ok(BatchAck::AlreadyApplied) => Ok(false),
                Err(SendError::Rejected(why)) => {
                    tracing::error!(source = %self.shared.source, seq, %why, "shipped batch rejected");
                    Ok(true)
                }
                Err(e) => Err(e),
            },
            _ = progress => unreachable!("the progress loop never ends"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_node_gets_a_share_and_a_dead_nodes_hosts_alone_move() {
        let three = names(&["n1", "n2", "n3"]);
        let hosts: Vec<String> = (0..300).map(|i| format!("web{i}")).collect();
        let owners: Vec<&str> = hosts.iter().map(|h| owner(&three, h).unwrap()).collect();
        for n in ["n1", "n2", "n3"] {
            let share = owners.iter().filter(|o| **o == n).count();
            assert!((60..=140).contains(&share), "{n} owns {share} of 300");
        }
        // n2 dies: its hosts go to the others, no other host moves.
        let two = names(&["n1", "n3"]);
        for (h, before) in hosts.iter().zip(&owners) {
            let after = owner(&two, h).unwrap();
            if *before != "n2" {
                assert_eq!(after, *before, "{h} moved");
            }
        }
        // The order the nodes are listed in does not matter.
        let shuffled = names(&["n3", "n1", "n2"]);
        assert!(hosts.iter().all(|h| owner(&three, h) == owner(&shuffled, h)));
        assert_eq!(owner(&[], "web1"), None);
    }

    #[test]
    fn a_hosts_subject_within_the_sources() {
        assert_eq!(host_filter("warden.logs.>", "web1").as_deref(), Some("warden.logs.web1.>"));
        assert_eq!(host_filter("warden.logs.*.nginx", "web1").as_deref(), Some("warden.logs.web1.nginx"));
        assert_eq!(host_filter("warden.logs.web1.>", "web1").as_deref(), Some("warden.logs.web1.>"));
        assert_eq!(host_filter("warden.logs.web2.>", "web1"), None);
    }
}
