//! `Replay`: reads whole files as fast as the agents take them, with event time from
//! the lines (year-less timestamps are placed relative to the file's modification time).
//! Batches are not checkpointed: a replay is a one-off run over a temporary database.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{BatchBuilder, BatchStats, LineSplitter, LogBatch, LogSink, send_batch};
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
    let mut stream = Stream::open(path, format, cfg, progress).await?;
    let mut total = BatchStats::default();
    let mut pipe = Pipeline::default();
    while let Some((events, stats)) = stream.next(cfg.batch_lines)? {
        let mut batch = LogBatch::of(source, events, stats);
        batch.file = Some(path.display().to_string());
        total.add(&stats);
        progress.lines.fetch_add(stats.lines, Ordering::Relaxed);
        pipe.send(sink, batch).await?;
    }
    pipe.finish().await?;
    Ok(total)
}

/// Batches sent one at a time, in order, while the next is read and parsed (and matched,
/// when the sink has a lane: `warden replay`'s has none) on this thread: the agents work
/// on batch N while batch N+1 is prepared. At most one batch in flight and one in hand.
#[derive(Default)]
struct Pipeline {
    in_flight: Option<actix_rt::task::JoinHandle<Result<super::BatchAck, super::SendError>>>,
}

impl Pipeline {
    /// Prepares `batch`, waits for the one in flight to be applied, and sends it.
    async fn send(&mut self, sink: &LogSink, mut batch: LogBatch) -> Result<(), ReplayError> {
        sink.prepare(&mut batch);
        self.finish().await?;
        let sink = sink.clone();
        self.in_flight = Some(actix_rt::spawn(async move { send_batch(&sink, batch).await }));
        // The send reaches the agent's mailbox before this thread reads on.
        tokio::task::yield_now().await;
        Ok(())
    }

    /// Waits for the batch in flight to be applied.
    async fn finish(&mut self) -> Result<(), ReplayError> {
        if let Some(h) = self.in_flight.take() {
            h.await.map_err(|e| super::SendError::SinkGone(e.to_string()))??;
        }
        Ok(())
    }
}

/// Replays several files of one capture (`conn.log dns.log http.log ssl.log`, a pcap,
/// logs of several hosts…) as one stream merged on event time: a connection is read
/// with the name its DNS answer or TLS handshake gave it. Each file keeps its own parser
/// (its own Zeek header); each event says which file it came from (evidence pointers).
pub async fn replay_merged(
    paths: &[std::path::PathBuf],
    source: &str,
    format: LogFormat,
    cfg: &IngestConfig,
    sink: &LogSink,
    progress: &Progress,
) -> Result<BatchStats, ReplayError> {
    /// Lines read from a file at a time; the merge holds at most this many per file.
    const CHUNK: usize = 1024;
    let mut streams = Vec::new();
    for p in paths {
        streams.push((Stream::open(p, format, cfg, progress).await?, std::collections::VecDeque::new()));
    }
    let mut total = BatchStats::default();
    let mut out = Vec::new();
    let mut pipe = Pipeline::default();
    loop {
        // Refill the empty buffers; the file whose next event is earliest goes first,
        // up to the next event of another file.
        for (stream, buf) in &mut streams {
            while buf.is_empty() {
                let Some((events, stats)) = stream.next(CHUNK)? else { break };
                total.add(&stats);
                progress.lines.fetch_add(stats.lines, Ordering::Relaxed);
                buf.extend(events);
            }
        }
        let mut fronts = streams.iter().enumerate().filter_map(|(i, (_, b))| Some((b.front()?.time, i)));
        let Some(first) = fronts.next() else { break };
        let (mut best, mut next) = (first, None::<DateTime<Utc>>);
        for f in fronts {
            if f.0 < best.0 {
                next = Some(best.0);
                best = f;
            } else {
                next = Some(next.map_or(f.0, |n| n.min(f.0)));
            }
        }
        let buf = &mut streams[best.1].1;
        while let Some(ev) = buf.front()
            && next.is_none_or(|n| ev.time <= n)
        {
            out.extend(buf.pop_front());
            if out.len() >= cfg.batch_lines.max(1) {
                let events = std::mem::take(&mut out);
                let stats = BatchStats { lines: events.len() as u64, ..Default::default() };
                pipe.send(sink, LogBatch::of(source, events, stats)).await?;
            }
        }
    }
    if !out.is_empty() {
        let stats = BatchStats { lines: out.len() as u64, ..Default::default() };
        pipe.send(sink, LogBatch::of(source, out, stats)).await?;
    }
    pipe.finish().await?;
    Ok(total)
}

/// One file read a chunk of lines at a time: a log (gzip-compressed or not) through its
/// parser, or a packet capture assembled into flows.
enum Stream<'a> {
    Log(Box<LogStream<'a>>),
    Capture(std::vec::IntoIter<crate::messages::Event>),
}

struct LogStream<'a> {
    path: &'a Path,
    file: Arc<str>,
    reader: Box<dyn Read + 'a>,
    splitter: LineSplitter,
    builder: BatchBuilder,
    format: LogFormat,
    buf: Vec<u8>,
    lines: u64,
    done: bool,
}

impl<'a> Stream<'a> {
    async fn open(
        path: &'a Path,
        format: LogFormat,
        cfg: &IngestConfig,
        progress: &'a Progress,
    ) -> Result<Stream<'a>, ReplayError> {
        let err = |e| ReplayError::Read { path: path.display().to_string(), source: e };
        let mut file = std::fs::File::open(path).map_err(err)?;
        let mut head = [0u8; 4];
        let got = file.read(&mut head).map_err(err)?;
        if super::pcap::is_capture(&head[..got]) {
            return Ok(Stream::Capture(read_capture(path, progress).await?.into_iter()));
        }
        std::io::Seek::rewind(&mut file).map_err(err)?;
        let reference: DateTime<Utc> =
            file.metadata().and_then(|m| m.modified()).map(DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        // Progress counts the bytes of the file itself (compressed ones for a gzip file).
        let counted = Counted { inner: file, progress };
        // A gzip file (`conn.log.gz`, as Zeek archives its logs) is read through its
        // decompression; several members one after the other are one stream, as for `zcat`.
        let reader: Box<dyn Read + 'a> = if got >= 2 && head[..2] == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(counted)))
        } else {
            Box::new(counted)
        };
        Ok(Stream::Log(Box::new(LogStream {
            path,
            file: path.display().to_string().into(),
            reader,
            splitter: LineSplitter::new(cfg.max_line_bytes),
            builder: BatchBuilder::new(format, reference),
            format,
            buf: vec![0u8; 256 * 1024],
            lines: 0,
            done: false,
        })))
    }

    /// The next events (at least `lines` of them unless the file ended) and what they
    /// covered; `None` at the end. A log of which no line parsed is an error.
    fn next(&mut self, lines: usize) -> Result<Option<(Vec<crate::messages::Event>, BatchStats)>, ReplayError> {
        let s = match self {
            Stream::Capture(events) => {
                let chunk: Vec<_> = events.by_ref().take(lines.max(1)).collect();
                let stats = BatchStats { lines: chunk.len() as u64, ..Default::default() };
                return Ok((!chunk.is_empty()).then_some((chunk, stats)));
            }
            Stream::Log(s) => s,
        };
        while !s.done && (s.builder.stats.lines as usize) < lines.max(1) {
            let n = match s.reader.read(&mut s.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReplayError::Read { path: s.path.display().to_string(), source: e }),
            };
            let (inv0, tr0) = (s.splitter.invalid_utf8, s.splitter.truncated);
            let mut got = Vec::new();
            if n == 0 {
                s.splitter.finish(&mut |l| got.push(l));
                s.done = true;
            } else {
                s.splitter.push(&s.buf[..n], &mut |l| got.push(l));
            }
            s.builder.lines_at(got, s.splitter.take_starts());
            s.builder.stats.invalid_utf8 += s.splitter.invalid_utf8 - inv0;
            s.builder.stats.truncated += s.splitter.truncated - tr0;
        }
        if s.builder.stats.lines == 0 {
            if s.lines > 0 && s.builder.parser.records == 0 {
                return Err(ReplayError::NothingParsed {
                    path: s.path.display().to_string(),
                    format: s.format.as_str(),
                    lines: s.lines,
                });
            }
            return Ok(None);
        }
        let mut batch = s.builder.take("", None, None);
        s.lines += batch.stats.lines;
        let mut events = std::mem::take(Arc::make_mut(&mut batch.events));
        for ev in &mut events {
            ev.file = Some(s.file.clone());
        }
        Ok(Some((events, batch.stats)))
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

/// Reads a packet capture into its flows and DNS queries.
async fn read_capture(path: &Path, progress: &Progress) -> Result<Vec<crate::messages::Event>, ReplayError> {
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
    Ok(events)
}

/// Progress as shared state.
pub fn progress() -> Arc<Progress> {
    Arc::new(Progress::default())
}
