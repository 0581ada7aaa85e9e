//! `Journald`: follows the systemd journal through `journalctl --output=json`.
//!
//! Owns: the `journalctl` runs and the batch being built. Accepts: nothing (it reads
//! until the system stops). Emits: `LogBatch`es, one in flight at a time, each with the
//! journal cursor of its last entry as its checkpoint — stored by the threat-detection
//! agent in the same commit as the batch's effects, so `kill -9` loses and repeats
//! nothing.
//! Survives a restart: the cursor. On start it resumes after it; when the journal was
//! rotated or vacuumed past it (the oldest entry is newer than the cursor's), that is
//! said (a warning and `warden_source_gaps_total`) and reading resumes at the oldest entry.
//!
//! It runs `journalctl --output=json --after-cursor=…` to the end of the journal, then
//! again when the journal's files change (notify, a hint) or after a second.
//!
//! Each entry becomes a syslog line — `TIME HOST IDENTIFIER[PID]: MESSAGE`, the time the
//! entry's realtime timestamp (µs, RFC 3339), the host `_HOSTNAME`, the identifier
//! `SYSLOG_IDENTIFIER` (else `_COMM`) — and goes through the same parsers as a file's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{BatchBuilder, LogSink, send_batch};
use crate::config::{IngestConfig, LogFormat};
use crate::kb::Kb;
use crate::messages::Checkpoint;
use crate::telemetry::Metrics;

/// Why a journald source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journald source `{source_name}`: cannot run journalctl: {error}")]
    NoJournalctl { source_name: String, error: std::io::Error },
    #[error("journald source `{source_name}`: journal directory {dir}: {error}")]
    Directory { source_name: String, dir: PathBuf, error: std::io::Error },
    #[error("journald source `{source_name}`: journal directory {dir} is not a directory")]
    NotADirectory { source_name: String, dir: PathBuf },
}

/// Checks what can be checked before starting: `journalctl` runs, and the journal
/// directory (when one is given) exists and can be listed.
pub fn check(source: &str, directory: Option<&Path>) -> Result<(), JournalError> {
    let name = || source.to_string();
    if let Some(dir) = directory {
        let meta = std::fs::metadata(dir).map_err(|error| JournalError::Directory {
            source_name: name(),
            dir: dir.into(),
            error,
        })?;
        if !meta.is_dir() {
            return Err(JournalError::NotADirectory { source_name: name(), dir: dir.into() });
        }
        std::fs::read_dir(dir).map_err(|error| JournalError::Directory {
            source_name: name(),
            dir: dir.into(),
            error,
        })?;
    }
    std::process::Command::new("journalctl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|error| JournalError::NoJournalctl { source_name: name(), error })?;
    Ok(())
}

/// One journal entry, as Warden reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry as a syslog line.
    pub line: String,
    pub time: DateTime<Utc>,
    pub cursor: String,
}

/// Why an entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not a JSON object, or without `__CURSOR`/`__REALTIME_TIMESTAMP`.
    Malformed,
    /// No `MESSAGE`: nothing to read, but its cursor (given) counts as read.
    NoMessage(String),
}

/// A field's text: journald writes a string, or an array of bytes for binary data.
fn text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(bytes) => {
            let b: Vec<u8> = bytes.iter().filter_map(|x| x.as_u64()).map(|x| x.min(255) as u8).collect();
            Some(String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

/// A header word: no spaces or control characters (so a field cannot shift the line's
/// parts), at most 255 bytes.
fn word(s: &str) -> String {
    s.chars().take(255).map(|c| if c.is_whitespace() || c.is_control() || c == ':' { '_' } else { c }).collect()
}

/// Turns one line of `journalctl --output=json` into an [`Entry`].
pub fn entry(json: &str) -> Result<Entry, Skip> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| Skip::Malformed)?;
    let m = v.as_object().ok_or(Skip::Malformed)?;
    let cursor = m.get("__CURSOR").and_then(|c| c.as_str()).ok_or(Skip::Malformed)?.to_string();
    let micros: i64 =
        m.get("__REALTIME_TIMESTAMP").and_then(|t| t.as_str()).and_then(|t| t.parse().ok()).ok_or(Skip::Malformed)?;
    let time = DateTime::from_timestamp_micros(micros).ok_or(Skip::Malformed)?;
    let Some(message) = m.get("MESSAGE").and_then(text) else {
        return Err(Skip::NoMessage(cursor));
    };
    let field = |k: &str| m.get(k).and_then(text).filter(|s| !s.is_empty());
    let ident =
        field("SYSLOG_IDENTIFIER").or_else(|| field("_COMM")).map(|s| word(&s)).unwrap_or_else(|| "journal".into());
    let digits = |p: &String| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit());
    let pid = field("SYSLOG_PID").filter(digits).or_else(|| field("_PID").filter(digits));
    let mut line = time.to_rfc3339_opts(SecondsFormat::Micros, true);
    if let Some(h) = field("_HOSTNAME") {
        line.push(' ');
        line.push_str(&word(&h));
    }
    line.push(' ');
    line.push_str(&ident);
    if let Some(p) = pid {
        line.push('[');
        line.push_str(&p);
        line.push(']');
    }
    line.push_str(": ");
    // A multi-line message is one entry: its lines joined.
    line.push_str(&message.trim_end().replace(['\n', '\r'], " "));
    Ok(Entry { line, time, cursor })
}

/// The realtime timestamp (µs) a cursor names (`…;t=hex;…`).
pub fn cursor_time(cursor: &str) -> Option<u64> {
    cursor.split(';').find_map(|p| p.strip_prefix("t=")).and_then(|t| u64::from_str_radix(t, 16).ok())
}

fn journalctl(directory: Option<&Path>) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("journalctl");
    c.arg("--output=json").arg("--no-pager").arg("--all");
    if let Some(d) = directory {
        c.arg(format!("--directory={}", d.display()));
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// The oldest entry the journal still holds: its realtime timestamp (µs).
async fn oldest(directory: Option<&Path>) -> Option<u64> {
    let mut child = journalctl(directory).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.ok()?.ok()??;
    let _ = child.kill().await;
    entry(&first).ok().and_then(|e| u64::try_from(e.time.timestamp_micros()).ok())
}

/// Watches the journal's folders (each event only wakes the reader): the given one, or
/// the system journal's.
fn watch(directory: Option<&Path>, tx: tokio::sync::mpsc::Sender<()>) -> Vec<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dirs: Vec<&Path> = match directory {
        Some(d) => vec![d],
        None => vec![Path::new("/var/log/journal"), Path::new("/run/log/journal")],
    };
    let mut out = Vec::new();
    for d in dirs.into_iter().filter(|d| d.is_dir()) {
        let tx = tx.clone();
        // journalctl opening the files is an access, not a change: it must not wake the
        // reader again (which would run journalctl again, forever).
        let Ok(mut w) = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = tx.try_send(());
            }
        }) else {
            continue;
        };
        if w.watch(d, notify::RecursiveMode::Recursive).is_ok() {
            out.push(w);
        }
    }
    out
}

/// Where a journald source reads from.
#[derive(Debug, Clone)]
pub struct JournalSpec {
    pub directory: Option<PathBuf>,
    pub matches: Vec<String>,
}

/// The actor that follows the journal until the system stops.
pub struct Journald {
    pub source: String,
    pub spec: JournalSpec,
    pub format: LogFormat,
    pub cfg: IngestConfig,
    pub kb: Kb,
    pub sink: LogSink,
    pub metrics: Arc<Metrics>,
}

impl Actor for Journald {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let mut reader = Reader {
            source: self.source.clone(),
            spec: self.spec.clone(),
            cfg: self.cfg.clone(),
            builder: BatchBuilder::new(self.format, Utc::now()).shipping(self.cfg.ship),
            sink: self.sink.clone(),
            metrics: self.metrics.clone(),
            seq: 0,
            lines_total: 0,
            cursor: None,
            pending_cursor: None,
            said: Default::default(),
        };
        let kb = self.kb.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            if let Some(cp) = super::stored_checkpoint(&kb, &reader.source).await {
                (reader.seq, reader.lines_total, reader.cursor) = (cp.seq, cp.lines_total, cp.cursor);
            }
            reader.run().await;
        }));
    }
}

struct Reader {
    source: String,
    spec: JournalSpec,
    cfg: IngestConfig,
    builder: BatchBuilder,
    sink: LogSink,
    metrics: Arc<Metrics>,
    seq: u64,
    lines_total: u64,
    /// The cursor of the last entry sent (and so, once acknowledged, stored).
    cursor: Option<String>,
    /// The cursor of the last entry in the batch being built.
    pending_cursor: Option<String>,
    /// journalctl's complaints already logged.
    said: std::collections::HashSet<String>,
}

impl Reader {
    /// Reads what the journal holds after the cursor, then waits for a change to its
    /// files (or the poll timer) and reads again. `journalctl --follow` is not used: it
    /// can miss the first entry of a journal file that appears while it runs (systemd
    /// #474, #14911) and the first after `--after-cursor` (#38912); a run that reads to
    /// the end and exits does not.
    async fn run(&mut self) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let _watchers = watch(self.spec.directory.as_deref(), tx);
        // One journalctl per second at most when nothing wakes it earlier: it opens
        // every journal file each time.
        let idle = Duration::from_millis(self.cfg.poll_interval_ms.max(1000));
        let pace = Duration::from_millis(self.cfg.poll_interval_ms);
        let mut check_cursor = true;
        let dir = self
            .spec
            .directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "the system journal".into());
        tracing::info!(source = %self.source, journal = %dir, matches = ?self.spec.matches, resume = self.cursor.is_some(), "following the journal");
        loop {
            if check_cursor {
                self.resume_point().await;
            }
            check_cursor = !self.read_once().await;
            tokio::time::sleep(pace).await;
            tokio::select! {
                _ = rx.recv() => {}
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// One `journalctl` run from the cursor to the end of the journal; false when it
    /// failed (its complaints are logged, each once).
    async fn read_once(&mut self) -> bool {
        let mut cmd = journalctl(self.spec.directory.as_deref());
        if let Some(c) = &self.cursor {
            cmd.arg(format!("--after-cursor={c}"));
        }
        cmd.args(&self.spec.matches).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.complain(&format!("cannot start journalctl: {e}"));
                return false;
            }
        };
        let stderr = child.stderr.take().map(|err| {
            tokio::spawn(async move {
                let mut said = Vec::new();
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if said.len() < 64 {
                        said.push(l);
                    }
                }
                said
            })
        });
        if let Some(out) = child.stdout.take() {
            self.drain(out).await;
        }
        let status = child.wait().await;
        if let Some(task) = stderr
            && let Ok(said) = task.await
        {
            for l in said {
                self.complain(&l);
            }
        }
        match status {
            Ok(st) if st.success() => true,
            other => {
                self.complain(&format!("journalctl exited: {other:?}"));
                false
            }
        }
    }

    /// Logs and counts what journalctl said, each distinct message once (it is run
    /// again every second and would repeat itself).
    fn complain(&mut self, what: &str) {
        let what = crate::text::sanitize(what, 512);
        if self.said.contains(&what) {
            return;
        }
        if self.said.len() < 256 {
            self.said.insert(what.clone());
        }
        self.metrics.inc(&self.metrics.source_errors);
        tracing::warn!(source = %self.source, journalctl = %what, "journalctl says");
    }

    /// A cursor older than the journal's oldest entry names an entry that is gone
    /// (rotated or vacuumed): said, counted, and reading starts at the oldest.
    async fn resume_point(&mut self) {
        let Some(at) = self.cursor.as_deref().and_then(cursor_time) else { return };
        if let Some(first) = oldest(self.spec.directory.as_deref()).await
            && first > at
        {
            let lost = DateTime::from_timestamp_micros(at as i64).map(|t| t.to_rfc3339()).unwrap_or_default();
            tracing::warn!(source = %self.source, checkpoint = %lost, "the journal no longer holds the checkpointed entry (rotated or vacuumed): entries after it may be lost; resuming at the oldest entry");
            self.metrics.source_event(&self.source, |c| c.gaps += 1);
            self.cursor = None;
        }
    }

    /// Reads entries until journalctl's output ends, sending a batch each time one is
    /// full, and the rest at the end.
    async fn drain(&mut self, out: tokio::process::ChildStdout) {
        let mut lines = BufReader::new(out).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(l)) => self.entry(&l),
                Ok(None) => break,
                Err(e) => {
                    self.complain(&format!("cannot read journalctl's output: {e}"));
                    break;
                }
            }
            if self.builder.stats.lines >= self.cfg.batch_lines as u64 {
                self.flush().await;
            }
        }
        self.flush().await;
    }

    fn entry(&mut self, json: &str) {
        match entry(json) {
            Ok(e) => {
                let line = if e.line.len() > self.cfg.max_line_bytes {
                    self.builder.stats.truncated += 1;
                    let mut cut = self.cfg.max_line_bytes;
                    while !e.line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    e.line[..cut].to_string()
                } else {
                    e.line
                };
                self.builder.line(line);
                self.pending_cursor = Some(e.cursor);
            }
            Err(Skip::NoMessage(cursor)) => self.pending_cursor = Some(cursor),
            Err(Skip::Malformed) => {
                self.builder.stats.lines += 1;
                self.builder.stats.unparsed += 1;
                tracing::warn!(source = %self.source, entry = %crate::text::sanitize(json, 256), "journal entry without a cursor or a time; skipped");
            }
        }
    }

    async fn flush(&mut self) {
        let Some(cursor) = self.pending_cursor.take() else { return };
        self.seq += 1;
        self.lines_total += self.builder.stats.lines;
        let cp = Checkpoint {
            seq: self.seq,
            lines_total: self.lines_total,
            cursor: Some(cursor.clone()),
            ..Checkpoint::default()
        };
        let batch = self.builder.take(&self.source, Some(self.seq), Some(cp));
        if let Err(e) = send_batch(&self.sink, batch).await {
            tracing::error!(source = %self.source, error = %e, "batch rejected");
        }
        self.cursor = Some(cursor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"_PID":"100","__REALTIME_TIMESTAMP":"1772359200123456","_HOSTNAME":"web1","_COMM":"sshd","MESSAGE":"Failed password for root from 203.0.113.5 port 40000 ssh2","__CURSOR":"s=6efa;i=1;b=0123;m=1;t=64bf5e7b1e240;x=aee1","SYSLOG_IDENTIFIER":"sshd"}"#;

    #[test]
    fn an_entry_is_a_syslog_line_at_its_realtime() {
        let e = entry(ENTRY).unwrap();
        assert_eq!(
            e.line,
            "2026-03-01T10:00:00.123456Z web1 sshd[100]: Failed password for root from 203.0.113.5 port 40000 ssh2"
        );
        assert_eq!(e.time.timestamp_micros(), 1_772_359_200_123_456);
        assert_eq!(cursor_time(&e.cursor), Some(0x64bf5e7b1e240));
        let years = crate::ingest::parse::YearInference::new(Utc::now());
        let s = crate::ingest::parse::syslog(&e.line, &years).unwrap();
        assert_eq!((s.host, s.program, s.pid, s.time), ("web1", "sshd", Some(100), e.time));
    }

    #[test]
    fn fields_cannot_reshape_the_line_and_bad_entries_are_said() {
        let v: serde_json::Value = serde_json::from_str(ENTRY).unwrap();
        let mut m = v.as_object().unwrap().clone();
        m.insert("SYSLOG_IDENTIFIER".into(), "sshd fake: Failed password for root from 6.6.6.6".into());
        m.insert("_HOSTNAME".into(), "evil host".into());
        m.insert("SYSLOG_PID".into(), "1] x".into());
        // Binary data is an array of bytes; a multi-line message stays one line.
        m.insert("MESSAGE".into(), serde_json::json!([65, 10, 66, 255]));
        let e = entry(&serde_json::Value::Object(m.clone()).to_string()).unwrap();
        assert_eq!(
            e.line,
            "2026-03-01T10:00:00.123456Z evil_host sshd_fake__Failed_password_for_root_from_6.6.6.6[100]: A B\u{fffd}"
        );
        m.remove("MESSAGE");
        assert!(matches!(entry(&serde_json::Value::Object(m.clone()).to_string()), Err(Skip::NoMessage(_))));
        m.remove("__CURSOR");
        assert_eq!(entry(&serde_json::Value::Object(m).to_string()), Err(Skip::Malformed));
        assert_eq!(entry("-- No entries --"), Err(Skip::Malformed));
        assert_eq!(entry("[1,2]"), Err(Skip::Malformed));
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let e = check("j", Some(&tmp.path().join("nope"))).unwrap_err().to_string();
        assert!(e.starts_with("journald source `j`: journal directory ") && e.contains("No such file"), "{e}");
        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check("j", Some(&file)).unwrap_err().to_string().contains("is not a directory"));
    }
}
