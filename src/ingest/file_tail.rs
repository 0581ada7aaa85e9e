//! `FileTail`: follows one log file across rotations and restarts.
//!
//! Owns: the open file handle, its `(device, inode)`, the read offset and the partial
//! line held back. Accepts: nothing (it runs a loop woken by notify events on the parent
//! directory and by a poll timer — notify is only a hint). Emits: `LogBatch`es, one in
//! flight at a time, each with the checkpoint it advances to.
//! Survives a restart: the checkpoint `(device, inode, offset, fingerprint, seq)`, stored
//! by the threat-detection agent in the same commit as the batch's effects. On start it
//! resumes there — also when the file was rotated meanwhile (the old file is found among
//! its siblings by inode and drained first).
//!
//! Handles: rename+create rotation (the old file is drained before switching),
//! copytruncate (size below offset → restart at 0), a file that appears only later, a
//! file deleted while tailed, partial last lines, invalid UTF-8, over-long lines.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::{BatchBuilder, FINGERPRINT_BYTES, LineSplitter, LogSink, fingerprint, send_batch};
use crate::config::{IngestConfig, LogFormat};
use crate::kb::Kb;
use crate::messages::Checkpoint;
use crate::telemetry::Metrics;

const CHUNK: usize = 64 * 1024;

struct OpenFile {
    file: File,
    device: u64,
    inode: u64,
    /// Read position (bytes consumed from the file).
    pos: u64,
    fingerprint: u64,
    path: PathBuf,
}

/// Reads the fingerprint of a file: a hash of its first bytes, or 0 while it is shorter
/// than that (too short to tell files apart).
fn file_fingerprint(path: &Path) -> u64 {
    let mut head = vec![0u8; FINGERPRINT_BYTES];
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    if n < FINGERPRINT_BYTES { 0 } else { fingerprint(&head) }
}

/// The tailing state machine, independent of the actor so tests can drive it.
pub struct Tailer {
    pub source: String,
    path: PathBuf,
    cfg: IngestConfig,
    open: Option<OpenFile>,
    splitter: LineSplitter,
    builder: BatchBuilder,
    seq: u64,
    lines_total: u64,
    missing_reported: bool,
    metrics: Arc<Metrics>,
}

impl Tailer {
    pub fn new(
        source: &str,
        path: &Path,
        format: LogFormat,
        cfg: IngestConfig,
        cp: Option<Checkpoint>,
        metrics: Arc<Metrics>,
    ) -> Tailer {
        let mut t = Tailer {
            source: source.to_string(),
            path: path.to_path_buf(),
            splitter: LineSplitter::new(cfg.max_line_bytes),
            builder: BatchBuilder::new(format, Utc::now()),
            cfg,
            open: None,
            seq: 0,
            lines_total: 0,
            missing_reported: false,
            metrics,
        };
        if let Some(cp) = cp {
            t.seq = cp.seq;
            t.lines_total = cp.lines_total;
            t.resume(&cp);
        }
        t
    }

    fn open_at(&self, path: &Path, pos: u64) -> std::io::Result<OpenFile> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        file.seek(SeekFrom::Start(pos))?;
        Ok(OpenFile {
            file,
            device: meta.dev(),
            inode: meta.ino(),
            pos,
            fingerprint: file_fingerprint(path),
            path: path.to_path_buf(),
        })
    }

    fn same_file(cp: &Checkpoint, path: &Path, meta: &std::fs::Metadata) -> bool {
        meta.dev() == cp.device
            && meta.ino() == cp.inode
            && meta.len() >= cp.offset
            && (cp.fingerprint == 0 || file_fingerprint(path) == cp.fingerprint)
    }

    /// Finds where the checkpoint's file is now: at the path, or renamed beside it.
    fn resume(&mut self, cp: &Checkpoint) {
        let mut candidates = vec![self.path.clone()];
        if let Some(dir) = self
            .path
            .parent()
            .and_then(|d| std::fs::read_dir(if d.as_os_str().is_empty() { Path::new(".") } else { d }).ok())
        {
            let mut siblings: Vec<PathBuf> =
                dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| *p != self.path).collect();
            siblings.sort();
            candidates.extend(siblings);
        }
        for c in candidates {
            let Ok(meta) = std::fs::metadata(&c) else {
                continue;
            };
            if meta.is_file() && Self::same_file(cp, &c, &meta) {
                match self.open_at(&c, cp.offset) {
                    Ok(o) => {
                        if c != self.path {
                            tracing::info!(source = %self.source, file = %c.display(), "resuming in the rotated file first");
                        }
                        self.splitter.skipping = cp.skipping;
                        if cp.offset > 0 {
                            self.builder.prime_from(&c);
                        }
                        self.splitter.set_position(cp.offset);
                        self.open = Some(o);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.source, file = %c.display(), error = %e, "cannot reopen the checkpointed file")
                    }
                }
            }
        }
        tracing::warn!(source = %self.source, inode = cp.inode, offset = cp.offset, "checkpointed file is gone; starting the current file from its beginning");
    }

    fn checkpoint(&self) -> Option<Checkpoint> {
        let o = self.open.as_ref()?;
        Some(Checkpoint {
            device: o.device,
            inode: o.inode,
            offset: o.pos - self.splitter.pending() as u64,
            fingerprint: o.fingerprint,
            seq: self.seq,
            skipping: self.splitter.skipping,
            lines_total: self.lines_total,
            cursor: None,
        })
    }

    fn make_batch(&mut self) -> Option<super::LogBatch> {
        if self.builder.stats.lines == 0 {
            return None;
        }
        self.seq += 1;
        self.lines_total += self.builder.stats.lines;
        let cp = self.checkpoint();
        let mut batch = self.builder.take(&self.source, Some(self.seq), cp);
        batch.file = self.open.as_ref().map(|o| o.path.display().to_string());
        Some(batch)
    }

    /// Reads what is available and returns the next batch, or `None` when caught up.
    /// Call until it returns `None`; each batch must be applied before the next call.
    pub fn next_batch(&mut self) -> Option<super::LogBatch> {
        loop {
            if self.open.is_none() {
                match self.open_at(&self.path.clone(), 0) {
                    Ok(o) => {
                        tracing::info!(source = %self.source, file = %self.path.display(), "tailing file");
                        self.splitter.set_position(0);
                        self.open = Some(o);
                        self.missing_reported = false;
                    }
                    Err(e) => {
                        if !self.missing_reported {
                            if e.kind() == std::io::ErrorKind::NotFound {
                                tracing::warn!(source = %self.source, file = %self.path.display(), "file not found; waiting for it to appear");
                            } else {
                                tracing::error!(source = %self.source, file = %self.path.display(), error = %e, "cannot open the file; retrying");
                            }
                            self.metrics.source_event(&self.source, |c| c.missing += 1);
                            self.missing_reported = true;
                        }
                        return None;
                    }
                }
            }
            // Read chunks until a batch is full or the file is at its end.
            let reference = Utc::now();
            self.builder.parser.set_reference(reference);
            let mut buf = vec![0u8; CHUNK];
            let mut at_eof = false;
            while self.builder.stats.lines < self.cfg.batch_lines as u64 {
                let o = self.open.as_mut().expect("opened above");
                match o.file.read(&mut buf) {
                    Ok(0) => {
                        at_eof = true;
                        break;
                    }
                    Ok(n) => {
                        o.pos += n as u64;
                        let (splitter, builder) = (&mut self.splitter, &mut self.builder);
                        let (inv0, tr0) = (splitter.invalid_utf8, splitter.truncated);
                        let mut lines = Vec::new();
                        splitter.push(&buf[..n], &mut |l| lines.push(l));
                        builder.lines_at(lines, splitter.take_starts());
                        builder.stats.invalid_utf8 += splitter.invalid_utf8 - inv0;
                        builder.stats.truncated += splitter.truncated - tr0;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(source = %self.source, error = %e, "read error; retrying on the next poll");
                        self.metrics.inc(&self.metrics.source_errors);
                        at_eof = true;
                        break;
                    }
                }
            }
            if !at_eof {
                return self.make_batch();
            }
            // At the end of the open file: has the path moved on?
            let o = self.open.as_ref().expect("opened above");
            match std::fs::metadata(&self.path) {
                Err(_) => {
                    if !self.missing_reported {
                        tracing::warn!(source = %self.source, file = %self.path.display(), "tailed file was removed; waiting for a new one");
                        self.metrics.source_event(&self.source, |c| c.missing += 1);
                        self.missing_reported = true;
                    }
                    return self.make_batch();
                }
                Ok(meta) if meta.dev() != o.device || meta.ino() != o.inode => {
                    // Rotated (rename+create, or replaced): the old file is drained; its
                    // unterminated last line will never be completed, so emit it.
                    let (splitter, builder) = (&mut self.splitter, &mut self.builder);
                    let inv0 = splitter.invalid_utf8;
                    let mut lines = Vec::new();
                    splitter.finish(&mut |l| lines.push(l));
                    builder.lines_at(lines, splitter.take_starts());
                    builder.stats.invalid_utf8 += splitter.invalid_utf8 - inv0;
                    tracing::info!(source = %self.source, from = %o.path.display(), "file rotated; following the new file");
                    self.metrics.source_event(&self.source, |c| c.rotations += 1);
                    let batch = self.make_batch();
                    self.open = None;
                    self.missing_reported = false;
                    if batch.is_some() {
                        return batch;
                    }
                    continue;
                }
                Ok(meta) if meta.len() < o.pos => {
                    tracing::warn!(source = %self.source, size = meta.len(), offset = o.pos, "file truncated (copytruncate); reading from its start");
                    self.metrics.source_event(&self.source, |c| c.truncations += 1);
                    let batch = self.make_batch();
                    self.builder.stats.file_truncated = true;
                    self.splitter.reset();
                    self.splitter.set_position(0);
                    let o = self.open.as_mut().expect("opened above");
                    o.pos = 0;
                    if let Err(e) = o.file.seek(SeekFrom::Start(0)) {
                        tracing::warn!(source = %self.source, error = %e, "cannot seek after truncation; reopening");
                        self.open = None;
                    }
                    if batch.is_some() {
                        return batch;
                    }
                    continue;
                }
                Ok(_) => {
                    self.missing_reported = false;
                    if let Some(o) = self.open.as_mut()
                        && o.fingerprint == 0
                    {
                        o.fingerprint = file_fingerprint(&o.path);
                    }
                    return self.make_batch();
                }
            }
        }
    }
}

/// The actor that runs a [`Tailer`] until the system stops.
pub struct FileTail {
    pub source: String,
    pub path: PathBuf,
    pub format: LogFormat,
    pub cfg: IngestConfig,
    pub kb: Kb,
    pub sink: LogSink,
    pub metrics: Arc<Metrics>,
}

impl Actor for FileTail {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (source, path, format, cfg) = (self.source.clone(), self.path.clone(), self.format, self.cfg.clone());
        let (kb, sink, metrics) = (self.kb.clone(), self.sink.clone(), self.metrics.clone());
        ctx.spawn(actix::fut::wrap_future(run(source, path, format, cfg, kb, sink, metrics)));
    }
}

async fn run(
    source: String,
    path: PathBuf,
    format: LogFormat,
    cfg: IngestConfig,
    kb: Kb,
    sink: LogSink,
    metrics: Arc<Metrics>,
) {
    let cp = super::stored_checkpoint(&kb, &source).await;
    let poll = Duration::from_millis(cfg.poll_interval_ms);
    let mut tailer = Tailer::new(&source, &path, format, cfg, cp, metrics);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    loop {
        if watcher.is_none() {
            watcher = watch_parent(&path, tx.clone());
        }
        while let Some(batch) = tailer.next_batch() {
            if let Err(e) = send_batch(&sink, batch).await {
                tracing::error!(%source, error = %e, "batch rejected");
            }
        }
        tokio::select! {
            _ = rx.recv() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Watches the file's directory (so creation and renames are seen); every event is only
/// a wake-up for the loop.
fn watch_parent(path: &Path, tx: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.try_send(());
    })
    .ok()?;
    match w.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(w),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory yet; polling");
            None
        }
    }
}
