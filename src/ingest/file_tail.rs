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
use crate::telemetry::{BlindKind, Metrics};

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
/// than that (too short to tell files apart). A file known to be shorter is not opened:
/// opening it is an event on the watched folder, which would wake the tail again.
fn file_fingerprint(path: &Path) -> u64 {
    if std::fs::metadata(path).is_ok_and(|m| m.len() < FINGERPRINT_BYTES as u64) {
        return 0;
    }
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
    /// A read error repeats at every poll: said once per interval, with a count.
    read_errors: crate::telemetry::Throttle,
    /// The file cannot be read now (a blind spot is open).
    unreadable: bool,
    /// The file was there once (opened, or named by the checkpoint) …
    had_file: bool,
    /// … and has been missing since.
    missing_since: Option<std::time::Instant>,
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
            builder: BatchBuilder::new(format, Utc::now()).shipping(cfg.ship),
            cfg,
            open: None,
            seq: 0,
            lines_total: 0,
            missing_reported: false,
            read_errors: crate::telemetry::Throttle::new(Duration::from_secs(60)),
            unreadable: false,
            had_file: cp.is_some(),
            missing_since: None,
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

    /// Reads chunks of the open file until a batch is full (`false`) or the file is at its
    /// end or cannot be read (`true`).
    fn read_chunks(&mut self) -> bool {
        self.builder.parser.set_reference(Utc::now());
        let mut buf = vec![0u8; CHUNK];
        while self.builder.stats.lines < self.cfg.batch_lines as u64 {
            let Some(o) = self.open.as_mut() else { return true };
            let read = o.file.read(&mut buf);
            if read.is_ok() {
                self.readable();
            }
            match read {
                Ok(0) => return true,
                Ok(n) => {
                    if let Some(o) = self.open.as_mut() {
                        o.pos += n as u64;
                    }
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
                    self.read_error(&e);
                    return true;
                }
            }
        }
        false
    }

    fn subject(&self) -> String {
        format!("source:{}", self.source)
    }

    /// The file cannot be read: a blind spot until it can (once per episode).
    fn unreadable(&mut self, why: String) {
        self.unreadable = true;
        let why = crate::text::sanitize(&why, 300);
        self.metrics.blind_spots.raise(BlindKind::SourceUnreadable, &self.subject(), why, false);
    }

    fn readable(&mut self) {
        if std::mem::take(&mut self.unreadable) {
            self.metrics.blind_spots.clear(BlindKind::SourceUnreadable, &self.subject());
        }
    }

    /// The file is missing: once it was there and stays missing longer than
    /// `missing_file_secs`, a deleted log (deliberate: nothing recreated it).
    fn missing_now(&mut self) {
        if !self.had_file {
            return;
        }
        let since = *self.missing_since.get_or_insert_with(std::time::Instant::now);
        let limit = Duration::from_secs(self.cfg.missing_file_secs);
        if since.elapsed() >= limit {
            let detail = format!(
                "{} was removed and has not been recreated for {} s",
                crate::text::sanitize(&self.path.display().to_string(), 200),
                since.elapsed().as_secs()
            );
            self.metrics.blind_spots.raise(BlindKind::LogDeleted, &self.subject(), detail, true);
        }
    }

    fn present(&mut self) {
        self.had_file = true;
        if self.missing_since.take().is_some() {
            self.metrics.blind_spots.clear(BlindKind::LogDeleted, &self.subject());
        }
    }

    /// A truncation with no rotated sibling written in the last two minutes is not
    /// logrotate's copytruncate: someone shortened the log (an event blind spot).
    fn truncated(&mut self, size: u64, offset: u64) {
        if rotated_recently(&self.path) {
            return;
        }
        let detail = format!(
            "{} shrank from {offset} to {size} bytes with no rotated copy beside it",
            crate::text::sanitize(&self.path.display().to_string(), 200)
        );
        let spots = &self.metrics.blind_spots;
        spots.raise_event(BlindKind::LogTruncated, &self.subject(), detail, true, Duration::from_secs(3600));
    }

    /// Counts a read error and says it (once a minute at most: it repeats at every poll).
    fn read_error(&mut self, e: &std::io::Error) {
        if !self.unreadable {
            self.unreadable(format!("cannot read {}: {e}", self.path.display()));
        }
        if let Some(held) = self.read_errors.allow(std::time::Instant::now()) {
            tracing::warn!(source = %self.source, error = %e, held_back = held, "read error; retrying on the next poll");
        }
        self.metrics.inc(&self.metrics.source_errors);
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
                        self.readable();
                        self.present();
                    }
                    Err(e) => {
                        if !self.missing_reported {
                            if e.kind() == std::io::ErrorKind::NotFound {
                                tracing::warn!(source = %self.source, file = %self.path.display(), "file not found; waiting for it to appear");
                            } else {
                                tracing::error!(source = %self.source, file = %self.path.display(), error = %e, "cannot open the file; retrying");
                                self.unreadable(format!("cannot open {}: {e}", self.path.display()));
                            }
                            self.metrics.source_event(&self.source, |c| c.missing += 1);
                            self.missing_reported = true;
                        }
                        if e.kind() == std::io::ErrorKind::NotFound {
                            self.missing_now();
                        }
                        return None;
                    }
                }
            }
            if !self.read_chunks() {
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
                    self.missing_now();
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
                    let offset = o.pos;
                    self.truncated(meta.len(), offset);
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
                Ok(meta) => {
                    self.missing_reported = false;
                    if let Some(o) = self.open.as_mut()
                        && o.fingerprint == 0
                        && meta.len() >= FINGERPRINT_BYTES as u64
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
    let mut tailer = Tailer::new(&source, &path, format, cfg, cp, metrics.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    loop {
        metrics.source_event(&source, |c| c.wakeups += 1);
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

/// Whether a rotated copy of `path` (`NAME.1`, `NAME-20261130`, `NAME.1.gz` …) was
/// written in the last two minutes — what logrotate's copytruncate leaves beside a
/// truncated log.
fn rotated_recently(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) else {
        return false;
    };
    entries.flatten().any(|e| {
        let n = e.file_name();
        let n = n.to_string_lossy();
        let sibling =
            n.len() > name.len() && n.starts_with(name) && matches!(n.as_bytes()[name.len()], b'.' | b'-' | b'_');
        sibling
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().map_or(true, |age| age < Duration::from_secs(120)))
    })
}

/// Watches the file's directory (so creation and renames are seen); an event is only a
/// wake-up for the loop, and only one that can matter: a change to the tailed name
/// (written, created, renamed, removed), never an open or a read — the tail's own
/// opens would wake it again, forever — nor a change to another file of the folder.
fn watch_parent(path: &Path, tx: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_os_string());
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.as_ref().is_ok_and(|ev| !concerns(ev, name.as_deref())) {
            return;
        }
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

/// Whether a folder event can change what the tail reads: not an access (open, read,
/// close without writing), and about the tailed name — or about no name at all (the
/// backend lost events and says "rescan").
fn concerns(ev: &notify::Event, name: Option<&std::ffi::OsStr>) -> bool {
    if matches!(ev.kind, notify::EventKind::Access(_)) {
        return false;
    }
    ev.paths.is_empty() || ev.need_rescan() || ev.paths.iter().any(|p| p.file_name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{BatchAck, BatchError, LogBatch};

    /// Takes every batch and hands its lines to the test.
    struct Sink(tokio::sync::mpsc::UnboundedSender<u64>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<LogBatch> for Sink {
        type Result = Result<BatchAck, BatchError>;
        fn handle(&mut self, b: LogBatch, _: &mut Context<Self>) -> Self::Result {
            let _ = self.0.send(b.stats.lines);
            Ok(BatchAck::Applied { findings: 0 })
        }
    }

    fn wakeups(m: &Metrics) -> u64 {
        m.sources().get("t").map_or(0, |c| c.wakeups)
    }

    /// A tail on a quiet file wakes about once per poll (here: an hour), whatever the
    /// file's size — a file shorter than the fingerprint used to be reopened on every
    /// wake-up, each open woke it again, and it spun on a core forever — while a line
    /// written to it, or a rotation, still wakes it at once.
    async fn quiet_then_written(initial: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        std::fs::write(&path, initial).unwrap();
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cfg = IngestConfig { poll_interval_ms: 3_600_000, ..IngestConfig::default() };
        let _tail = FileTail {
            source: "t".into(),
            path: path.clone(),
            format: LogFormat::Auto,
            cfg,
            kb: Kb::temporary(),
            sink: Sink(tx).start().recipient().into(),
            metrics: metrics.clone(),
        }
        .start();
        if initial.contains(&b'\n') {
            assert!(rx.recv().await.is_some(), "the file's lines are read first");
        }
        while wakeups(&metrics) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Other files of the folder are opened, read and written: not the tail's business.
        for i in 0..50 {
            std::fs::write(dir.path().join("syslog"), format!("line {i}\n")).unwrap();
            let _ = std::fs::read(dir.path().join("syslog"));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let quiet = wakeups(&metrics);
        assert!(quiet <= 3, "{} bytes: woke {quiet} times while nothing was written to it", initial.len());
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"Nov 30 12:00:00 h sshd[1]: Invalid user x from 192.0.2.1\n").unwrap();
        }
        let lines = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("woken by the write");
        assert_eq!(lines, Some(1));
        std::fs::rename(&path, dir.path().join("auth.log.1")).unwrap();
        std::fs::write(&path, "Nov 30 12:00:01 h sshd[2]: Invalid user y from 192.0.2.2\n").unwrap();
        let lines = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("woken by the rotation");
        assert_eq!(lines, Some(1));
    }

    #[actix_rt::test]
    async fn an_empty_file_does_not_spin() {
        quiet_then_written(b"").await;
    }

    #[actix_rt::test]
    async fn a_file_shorter_than_its_fingerprint_does_not_spin() {
        quiet_then_written(b"Nov 30 11:59:59 h sshd[1]: Connection closed by 192.0.2.9 port 22 [preauth]\n").await;
    }

    #[actix_rt::test]
    async fn a_long_file_does_not_spin() {
        let line = "Nov 30 11:59:59 h sshd[1]: Accepted publickey for deploy from 192.0.2.9 port 22 ssh2\n";
        quiet_then_written(line.repeat(200).as_bytes()).await;
    }

    fn open_spot(m: &Metrics, kind: BlindKind) -> Option<crate::telemetry::BlindSpot> {
        m.blind_spots.open().into_iter().find(|s| s.kind == kind)
    }

    /// A path that cannot be read (here a directory: root reads any file) is a blind spot,
    /// one per episode; the episode ends when it reads again.
    #[test]
    fn an_unreadable_file_is_a_blind_spot_until_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        std::fs::create_dir(&path).unwrap();
        let m = Arc::new(Metrics::default());
        let mut t = Tailer::new("t", &path, LogFormat::Auto, IngestConfig::default(), None, m.clone());
        assert!(t.next_batch().is_none());
        let spot = open_spot(&m, BlindKind::SourceUnreadable).expect("a blind spot");
        assert!(spot.detail.contains("cannot read") && spot.detail.contains("auth.log"), "{}", spot.detail);
        assert!(t.next_batch().is_none());
        assert_eq!(m.blind_spots.unreported().len(), 1, "one per episode");
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, "Nov 30 12:00:00 h sshd[1]: Invalid user x from 192.0.2.1\n").unwrap();
        while t.next_batch().is_some() {}
        assert!(open_spot(&m, BlindKind::SourceUnreadable).is_none(), "readable again");
    }

    /// A log shortened with no rotated copy beside it is a deliberate blind spot;
    /// copytruncate (a fresh `NAME.1`) is not.
    #[test]
    fn a_truncation_outside_rotation_is_deliberate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let line = "Nov 30 12:00:00 h sshd[1]: Invalid user x from 192.0.2.1\n".repeat(20);
        std::fs::write(&path, &line).unwrap();
        let m = Arc::new(Metrics::default());
        let mut t = Tailer::new("t", &path, LogFormat::Auto, IngestConfig::default(), None, m.clone());
        while t.next_batch().is_some() {}
        // copytruncate: the copy first, then the truncation.
        std::fs::write(dir.path().join("auth.log.1"), &line).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        while t.next_batch().is_some() {}
        assert!(open_spot(&m, BlindKind::LogTruncated).is_none(), "a rotation");
        // Again, without a copy (the rotated one is two hours old).
        std::fs::write(&path, &line).unwrap();
        while t.next_batch().is_some() {}
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options().write(true).open(dir.path().join("auth.log.1")).unwrap().set_modified(old).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100).unwrap();
        while t.next_batch().is_some() {}
        let spot = open_spot(&m, BlindKind::LogTruncated).expect("a deliberate truncation");
        assert!(spot.deliberate && spot.detail.contains("shrank from"), "{}", spot.detail);
    }

    /// A log that was there and stays removed is a deleted log; one that never existed
    /// is only waited for.
    #[test]
    fn a_log_deleted_and_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let cfg = IngestConfig { missing_file_secs: 0, ..IngestConfig::default() };
        let m = Arc::new(Metrics::default());
        let mut never = Tailer::new("n", &dir.path().join("never.log"), LogFormat::Auto, cfg.clone(), None, m.clone());
        assert!(never.next_batch().is_none());
        assert!(open_spot(&m, BlindKind::LogDeleted).is_none(), "never there");
        std::fs::write(&path, "Nov 30 12:00:00 h sshd[1]: Invalid user x from 192.0.2.1\n").unwrap();
        let mut t = Tailer::new("t", &path, LogFormat::Auto, cfg, None, m.clone());
        while t.next_batch().is_some() {}
        std::fs::remove_file(&path).unwrap();
        while t.next_batch().is_some() {}
        let spot = open_spot(&m, BlindKind::LogDeleted).expect("deleted");
        assert!(spot.deliberate && spot.subject == "source:t", "{spot:?}");
        std::fs::write(&path, "Nov 30 12:00:01 h sshd[1]: Invalid user y from 192.0.2.1\n").unwrap();
        while t.next_batch().is_some() {}
        assert!(open_spot(&m, BlindKind::LogDeleted).is_none(), "recreated");
    }
}
