//! `Shipper`: the sink of `warden ship`'s sources. It owns the logs stream's
//! publishing for one host; it accepts the sources' `LogBatch`es (their lines unparsed,
//! see `ingest::LineParser`'s shipping mode); it emits each batch to
//! `warden.logs.<host>.<source>` and answers only after JetStream acknowledged it *and*
//! the host's checkpoint past it is committed (flushed) in its own small database.
//! Survives a restart: the checkpoints. A shipper killed between JetStream's
//! acknowledgement and its own commit publishes the batch again on restart; JetStream
//! drops it as a duplicate (the message id derives from the source and the batch's end
//! position) — and [`reconcile`] moves a checkpoint that is behind the stream forward
//! before the sources start, so nothing is sent twice or skipped however long the host
//! was down.

use std::sync::Arc;

use actix::prelude::*;

use super::wire::{self, Shipped};
use super::{Cluster, ClusterError};
use crate::config::LogFormat;
use crate::kb::{Commit, Kb, Write};
use crate::messages::{BatchAck, BatchError, Checkpoint, LogBatch};

/// Publishes batches for one host.
pub struct Shipper {
    pub cluster: Cluster,
    pub host: String,
    pub kb: Kb,
    /// Each source's format (the analysis node parses with it).
    pub formats: Arc<std::collections::HashMap<String, LogFormat>>,
    /// Lines published (for the log line at exit).
    pub shipped: Arc<std::sync::atomic::AtomicU64>,
    /// `[testing] crash_at = "after_publish"`.
    pub crash_after_publish: bool,
}

impl Actor for Shipper {
    type Context = Context<Self>;
}

impl Handler<LogBatch> for Shipper {
    type Result = ResponseFuture<Result<BatchAck, BatchError>>;

    fn handle(&mut self, batch: LogBatch, _: &mut Self::Context) -> Self::Result {
        let (cluster, host, kb) = (self.cluster.clone(), self.host.clone(), self.kb.clone());
        let format = self.formats.get(&batch.source).copied().unwrap_or(LogFormat::Auto);
        let (shipped, crash) = (self.shipped.clone(), self.crash_after_publish);
        Box::pin(async move {
            let unavailable = |e: &dyn std::fmt::Display| BatchError::Unavailable(e.to_string());
            let checkpoint = match (batch.seq, batch.checkpoint.clone()) {
                (Some(seq), Some(mut cp)) => {
                    cp.seq = seq;
                    Some(cp)
                }
                _ => None,
            };
            let out = Shipped {
                format,
                checkpoint: checkpoint.clone(),
                preamble: batch.preamble.clone(),
                lines: batch.events.iter().map(|e| e.raw.clone()).collect(),
            };
            let subject = wire::subject(&host, &batch.source);
            // The same batch (same source, same end position) has the same id.
            let id = match &checkpoint {
                Some(cp) => format!("{subject}.{}.{}.{}.{}", cp.seq, cp.inode, cp.offset, cp.lines_total),
                None => format!("{subject}.{}", batch.id),
            };
            publish(&cluster, &subject, &out, &id).await.map_err(|e| unavailable(&e))?;
            if crash {
                tracing::error!(%subject, "testing: crashing after JetStream's acknowledgement");
                std::process::abort();
            }
            if let Some(cp) = checkpoint {
                let writes = vec![Write::Checkpoint { source: batch.source.clone(), checkpoint: cp }];
                kb.commit(Commit { writes, audit: Vec::new(), flush: true }).await.map_err(|e| unavailable(&e))?;
            }
            shipped.fetch_add(out.lines.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(BatchAck::Applied { findings: 0 })
        })
    }
}

/// Publishes one batch and waits for JetStream's acknowledgement.
async fn publish(cluster: &Cluster, subject: &str, batch: &Shipped, id: &str) -> Result<(), ClusterError> {
    let (headers, body) = wire::encode(batch, id);
    cluster.publish_acked(subject.to_string(), headers, body).await
}

/// Before the sources start: for each source, the checkpoint the stream holds for it
/// (its last shipped batch's) when that is ahead of the local one — the shipper died
/// after JetStream took a batch and before its own commit. Returns the sources moved.
pub async fn reconcile(cluster: &Cluster, host: &str, kb: &Kb, sources: &[String]) -> Result<usize, ClusterError> {
    let stream = cluster.logs_stream_as_host().await?;
    let mut moved = 0;
    for source in sources {
        let subject = wire::subject(host, source);
        let last = match stream.direct_get_last_for_subject(&subject).await {
            Ok(m) => m,
            // Nothing shipped yet (or expired from the stream): the local state stands.
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ClusterError::Stream { stream: cluster.cfg.logs_stream.clone(), error: e.to_string() });
            }
        };
        let Ok(shipped) = wire::decode(Some(&last.headers), &last.payload) else { continue };
        let Some(remote) = shipped.checkpoint else { continue };
        let local: Option<Checkpoint> = kb.checkpoint(source).await.ok().flatten();
        if local.as_ref().is_none_or(|l| l.seq < remote.seq) {
            tracing::info!(%source, seq = remote.seq, "the stream is ahead of this host's checkpoint: resuming after it");
            let writes = vec![Write::Checkpoint { source: source.clone(), checkpoint: remote }];
            kb.commit(Commit { writes, audit: Vec::new(), flush: true })
                .await
                .map_err(|e| ClusterError::Stream { stream: cluster.cfg.logs_stream.clone(), error: e.to_string() })?;
            moved += 1;
        }
    }
    Ok(moved)
}
