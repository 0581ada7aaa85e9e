//! `Replay`: reads whole files as fast as the agents take them, with event time from
//! the lines (year-less timestamps are placed relative to the file's modification time).
//! Batches are not checkpointed: a replay is a one-off run over a temporary database.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{BatchBuilder, BatchStats, LineSplitter, LogSink, send_batch};
use crate::config::{IngestConfig, LogFormat};

/// Progress shared with whoever reports it.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    pub lines: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Capture(#[from] super::pcap::CaptureError),
    #[error("the capture reader failed: {0}")]
    Reader(String),
    #[error(transparent)]
    Send(#[from] super::SendError),
    #[error(
        "no line of {path} parsed as format `{format}` ({lines} lines read): is it the right format? \
         (--format auto, auth, web, json or zeek)"
    )]
    NothingParsed { path: String, format: &'static str, lines: u64 },
}

/// Replays one file through the agents and returns what it read.
pub async fn replay_file(
    path: &Path,
    source: &str,
    format: LogFormat,
    cfg: &IngestConfig,
    sink: &LogSink,
    progress: &Progress,
) -> Result<BatchStats, ReplayError> {
    let err = |e| ReplayError::Read { path: path.display().to_string(), source: e };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut head = [0u8; 4];
    let got = file.read(&mut head).map_err(err)?;
    if super::pcap::is_capture(&head[..got]) {
        return replay_capture(path, source, cfg, sink, progress).await;
    }
    std::io::Seek::rewind(&mut file).map_err(err)?;
    let reference: DateTime<Utc> =
        file.metadata().and_then(|m| m.modified()).map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
    // Progress counts the bytes of the file itself (compressed ones for a gzip file).
    let counted = Counted { inner: file, progress };
    // A gzip file (`conn.log.gz`, as Zeek archives its logs) is read through its
    // decompression; several members one after the other are one stream, as for `zcat`.
    let mut file: Box<dyn Read + '_> = if got >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(counted)))
    } else {
        Box::new(counted)
    };
    let mut splitter = LineSplitter::new(cfg.max_line_bytes);
    let mut builder = BatchBuilder::new(format, reference);
    let mut total = BatchStats::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        let (inv0, tr0) = (splitter.invalid_utf8, splitter.truncated);
        if n == 0 {
            let mut lines = Vec::new();
            splitter.finish(&mut |l| lines.push(l));
            builder.lines_at(lines, splitter.take_starts());
        } else {
            let mut lines = Vec::new();
            splitter.push(&buf[..n], &mut |l| lines.push(l));
            builder.lines_at(lines, splitter.take_starts());
        }
        builder.stats.invalid_utf8 += splitter.invalid_utf8 - inv0;
        builder.stats.truncated += splitter.truncated - tr0;
        if builder.stats.lines >= cfg.batch_lines as u64 || (n == 0 && builder.stats.lines > 0) {
            let mut batch = builder.take(source, None, None);
            batch.file = Some(path.display().to_string());
            total.add(&batch.stats);
            progress.lines.fetch_add(batch.stats.lines, Ordering::Relaxed);
            send_batch(sink, batch).await?;
        }
        if n == 0 {
            if total.lines > 0 && builder.parser.records == 0 {
                return Err(ReplayError::NothingParsed {
                    path: path.display().to_string(),
                    format: format.as_str(),
                    lines: total.lines,
                });
            }
            return Ok(total);
        }
    }
}

/// A reader that adds what it reads to the progress.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Replays a packet capture: its flows and DNS queries, in batches.
async fn replay_capture(
    path: &Path,
    source: &str,
    cfg: &IngestConfig,
    sink: &LogSink,
    progress: &Progress,
) -> Result<BatchStats, ReplayError> {
    let p = path.to_path_buf();
    // Reading and assembling flows is CPU work: off the actor thread.
    let (events, stats) = tokio::task::spawn_blocking(move || super::pcap::read(&p))
        .await
        .map_err(|e| ReplayError::Reader(e.to_string()))??;
    tracing::info!(file = %path.display(), ?stats, "capture read");
    if stats.truncated {
        tracing::warn!(file = %path.display(), "capture ends in the middle of a record; what precedes it was read");
    }
    progress.bytes.fetch_add(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0), Ordering::Relaxed);
    let mut total = BatchStats::default();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<_> = events.by_ref().take(cfg.batch_lines.max(1)).collect();
        let lines = chunk.len() as u64;
        let batch = super::LogBatch {
            id: uuid::Uuid::now_v7(),
            source: source.to_string(),
            seq: None,
            checkpoint: None,
            events: Arc::new(chunk),
            stats: BatchStats { lines, ..Default::default() },
            file: Some(path.display().to_string()),
        };
        total.add(&batch.stats);
        progress.lines.fetch_add(lines, Ordering::Relaxed);
        send_batch(sink, batch).await?;
    }
    Ok(total)
}

/// Progress as shared state.
pub fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}
