//! `NatsSource`: a `[[sources]] kind = "nats"` of an analysis node. It owns a durable
//! JetStream consumer on the logs stream (filtered by the source's `subject`) and one
//! parser per shipping host and source; it accepts nothing (it reads until the system
//! stops); it emits each shipped batch as a `LogBatch` whose events carry the shipping
//! host (whatever host a line claims), with the stream sequence as the batch's
//! sequence and checkpoint. A message is acknowledged only after the batch is applied
//! (its effects and that checkpoint committed together).
//! Survives a restart: the checkpoint, and the consumer's position on the server. The
//! consumer hands out one message at a time (`max_ack_pending = 1`), so messages are
//! applied in stream order; one that was applied but not acknowledged when the node
//! died comes again and is recognised as applied (its sequence is not above the
//! checkpoint's), then acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use futures_util::StreamExt;

use super::wire;
use super::{Cluster, ClusterError};
use crate::config::ClusterConfig;
use crate::ingest::{BatchBuilder, LogSink, SendError, send_batch, stored_checkpoint};
use crate::kb::Kb;
use crate::messages::{BatchAck, Checkpoint};
use crate::telemetry::Metrics;

/// How long the server waits for an acknowledgement before it delivers a message again
/// (a node that died holding it); work in progress is signalled well within it.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Parsers kept (one per shipping host and source); past this they are dropped and
/// rebuilt (each batch carries what a fresh parser needs to read it).
const MAX_PARSERS: usize = 4096;

pub struct NatsSource {
    /// The source's name (its checkpoint's key; the consumer's durable name with the node).
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
        let node = self.cluster.node_name();
        let reader = Reader {
            source: self.source.clone(),
            subject: self.subject.clone(),
            durable: format!("warden-{node}-{}", crate::config::cluster::subject_token(&self.source)),
            cluster: self.cluster.clone(),
            node,
            kb: self.kb.clone(),
            sink: self.sink.clone(),
            metrics: self.metrics.clone(),
            builders: HashMap::new(),
            lines_total: 0,
            crash_before_ack: self.crash_before_ack,
        };
        ctx.spawn(actix::fut::wrap_future(reader.run()));
    }
}

struct Reader {
    source: String,
    subject: String,
    durable: String,
    cluster: ClusterConfig,
    node: String,
    kb: Kb,
    sink: LogSink,
    metrics: Arc<Metrics>,
    /// A batch builder (its parser) per logs subject.
    builders: HashMap<String, BatchBuilder>,
    lines_total: u64,
    crash_before_ack: bool,
}

impl Reader {
    /// Reads until the sink goes away; a lost connection or consumer is set up again.
    async fn run(mut self) {
        self.lines_total = stored_checkpoint(&self.kb, &self.source).await.map_or(0, |c| c.lines_total);
        let mut delay = Duration::from_millis(250);
        loop {
            match self.consume().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(source = %self.source, error = %e, "NATS source interrupted; resuming");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One consumer session: `Ok` when the sink is gone (shutting down).
    async fn consume(&mut self) -> Result<(), ClusterError> {
        let cluster = Cluster::connect(&self.cluster, &self.node, Duration::from_secs(30)).await?;
        let stream = cluster.logs_stream().await?;
        let durable = self.durable.clone();
        let err =
            |e: &dyn std::fmt::Display| ClusterError::Consumer { consumer: durable.clone(), error: e.to_string() };
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &self.durable,
                pull::Config {
                    durable_name: Some(self.durable.clone()),
                    filter_subject: self.subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    deliver_policy: DeliverPolicy::All,
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
        tracing::info!(source = %self.source, subject = %self.subject, consumer = %self.durable, "reading shipped logs");
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| err(&e))?;
            if self.apply(&m).await.is_err() {
                return Ok(());
            }
            // Acknowledged means gone from the stream for this node: what the batch did
            // must be on disk first.
            if let Err(e) = self.kb.flush().await {
                return Err(err(&format_args!("the knowledge base did not flush: {e}")));
            }
            if self.crash_before_ack {
                tracing::error!(source = %self.source, "testing: crashing before the acknowledgement");
                std::process::abort();
            }
            // Not acknowledged (connection lost): it comes again and is recognised.
            if let Err(e) = m.ack().await {
                tracing::warn!(source = %self.source, error = %e, "acknowledgement not sent; the batch will come again");
            }
        }
        Err(err(&"the consumer's message stream ended"))
    }

    /// Applies one message; `Err` when the sink is gone. A message that cannot be read
    /// is said, counted and acknowledged (it would never read better).
    async fn apply(&mut self, m: &Message) -> Result<(), SendError> {
        let seq = match m.info() {
            Ok(i) => i.stream_sequence,
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "a message without JetStream metadata: skipped");
                return Ok(());
            }
        };
        let (host, shipped) = match wire::host_source(&m.subject)
            .and_then(|(h, _)| Ok((h, wire::decode(m.headers.as_ref(), &m.payload)?)))
        {
            Ok(x) => x,
            Err(e) => {
                self.metrics.inc(&self.metrics.shipped_unreadable);
                tracing::warn!(source = %self.source, subject = %crate::text::sanitize(&m.subject, 200), seq, error = %e, "shipped batch unreadable: skipped");
                return Ok(());
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
        let batch = b.take(&self.source, Some(seq), Some(checkpoint));
        // Work in progress keeps the message ours while a slow commit runs.
        let progress = async {
            loop {
                tokio::time::sleep(ACK_WAIT / 3).await;
                let _ = m.ack_with(AckKind::Progress).await;
            }
        };
        tokio::select! {
            r = send_batch(&self.sink, batch) => match r {
                Ok(BatchAck::Applied { .. }) => {
                    self.lines_total += lines;
                    Ok(())
                }
                Ok(BatchAck::AlreadyApplied) => {
                    tracing::info!(source = %self.source, seq, %host, "shipped batch already applied (delivered again): acknowledged");
                    Ok(())
                }
                Err(SendError::Rejected(why)) => {
                    tracing::error!(source = %self.source, seq, %why, "shipped batch rejected");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ = progress => unreachable!("the progress loop never ends"),
        }
    }
}
