//! `Tailer` on real files: checkpoints, rotation while stopped, partial lines,
//! copytruncate, inode reuse, and hostile bytes.

use std::path::Path;
use std::sync::Arc;

use warden::config::{IngestConfig, LogFormat};
use warden::ingest::LogBatch;
use warden::ingest::file_tail::Tailer;
use warden::messages::Checkpoint;
use warden::telemetry::Metrics;

use crate::support::{Daemon, append, eventually, failed};

fn cfg() -> IngestConfig {
    IngestConfig { max_line_bytes: 4096, poll_interval_ms: 50, batch_lines: 4, ..Default::default() }
}

fn tailer(path: &Path, cp: Option<Checkpoint>) -> Tailer {
    Tailer::new("t", path, LogFormat::Auth, cfg(), cp, Arc::new(Metrics::default()))
}

/// Drains everything available; returns the raw lines of the events and the last checkpoint.
fn drain(t: &mut Tailer) -> (Vec<String>, Option<Checkpoint>, Vec<LogBatch>) {
    let mut raw = Vec::new();
    let mut cp = None;
    let mut batches = Vec::new();
    while let Some(b) = t.next_batch() {
        raw.extend(b.events.iter().map(|e| e.raw.clone()));
        cp = b.checkpoint.clone().or(cp);
        batches.push(b);
    }
    (raw, cp, batches)
}

fn lines(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| failed("203.0.113.5", "root", i)).collect()
}

fn trimmed(v: &[String]) -> Vec<String> {
    v.iter().map(|l| l.trim_end().to_string()).collect()
}

#[test]
fn resumes_from_the_checkpoint_across_a_rotation_while_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let all = lines(0..20);
    append(&log, &all[..6].concat());
    let mut t = tailer(&log, None);
    // Read one batch only, as if the process died before the next one was applied.
    let first = t.next_batch().unwrap();
    let n = first.stats.lines as usize;
    assert!(n >= 4);
    let cp = first.checkpoint.clone().unwrap();
    assert_eq!(cp.seq, 1);
    drop(t);
    // While stopped: more lines, a rename+create rotation, and lines in the new file.
    append(&log, &all[6..10].concat());
    std::fs::rename(&log, tmp.path().join("auth.log.1")).unwrap();
    append(&log, &all[10..20].concat());
    let mut t = tailer(&log, Some(cp));
    let (raw, last, batches) = drain(&mut t);
    assert_eq!(raw, trimmed(&all[n..]), "every line after the checkpoint exactly once, in order");
    assert_eq!(batches.first().unwrap().seq, Some(2), "sequence numbers continue");
    assert_eq!(last.unwrap().lines_total, 20);
}

#[test]
fn a_partial_last_line_waits_and_the_checkpoint_excludes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let l = lines(0..2);
    let (head, tail) = l[1].split_at(20);
    append(&log, &format!("{}{head}", l[0]));
    let mut t = tailer(&log, None);
    let (raw, cp, _) = drain(&mut t);
    assert_eq!(raw, trimmed(&l[..1]));
    assert_eq!(cp.unwrap().offset, l[0].len() as u64);
    append(&log, tail);
    let (raw, cp, _) = drain(&mut t);
    assert_eq!(raw, trimmed(&l[1..2]));
    assert_eq!(cp.unwrap().offset, (l[0].len() + l[1].len()) as u64);
}

#[test]
fn copytruncate_restarts_at_the_beginning() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let all = lines(0..6);
    append(&log, &all[..4].concat());
    let mut t = tailer(&log, None);
    assert_eq!(drain(&mut t).0.len(), 4);
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    assert!(drain(&mut t).0.is_empty());
    append(&log, &all[4..].concat());
    assert_eq!(drain(&mut t).0, trimmed(&all[4..]));
}

#[test]
fn a_reused_inode_with_other_content_is_read_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    let all = lines(0..12);
    append(&log, &all[..10].concat());
    let mut t = tailer(&log, None);
    let (_, cp, _) = drain(&mut t);
    let cp = cp.unwrap();
    assert_ne!(cp.fingerprint, 0, "a file over 256 bytes has a fingerprint");
    // Same path and inode but different leading bytes: not the checkpointed file.
    let other = lines(100..112).concat();
    std::fs::write(&log, &other).unwrap();
    let mut t = tailer(&log, Some(cp));
    assert_eq!(drain(&mut t).0.len(), 12);
}

#[test]
fn hostile_bytes_are_counted_and_memory_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, b"").unwrap();
    let mut t = tailer(&log, None);
    assert!(t.next_batch().is_none(), "an empty file yields nothing");
    let mut data = vec![0u8, 1, 2, 0xff, 0xfe, b'\n'];
    data.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
        .unwrap();
    let (_, cp, batches) = drain(&mut t);
    let invalid: u64 = batches.iter().map(|b| b.stats.invalid_utf8).sum();
    let truncated: u64 = batches.iter().map(|b| b.stats.truncated).sum();
    assert_eq!(invalid, 1);
    assert_eq!(truncated, 1);
    // The cut line's tail is being skipped: the checkpoint says so, at the file's end.
    let cp = cp.unwrap();
    assert!(cp.skipping);
    assert_eq!(cp.offset, data.len() as u64);
    append(&log, &format!("rest of the long line\n{}", lines(0..1)[0]));
    let (raw, _, _) = drain(&mut t);
    assert_eq!(raw, trimmed(&lines(0..1)));
}

#[test]
fn a_file_that_appears_later_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("later.log");
    let mut t = tailer(&log, None);
    assert!(t.next_batch().is_none());
    append(&log, &lines(0..3).concat());
    assert_eq!(drain(&mut t).0.len(), 3);
}

/// A tailed log that cannot be read is a blind spot: a `visibility` incident naming the
/// source, once, on the API.
#[test]
fn an_unreadable_log_is_a_visibility_incident() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::create_dir(&log).unwrap();
    let sources = format!("[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\n", log.display().to_string());
    let d = Daemon::start(tmp.path(), &sources, "", None);
    let inc = eventually(30, "the visibility incident", || {
        d.incidents().into_iter().find(|i| i["type"] == "visibility" && i["entities"][0] == "source:auth")
    });
    assert!(inc["title"].as_str().unwrap().contains("cannot be read"), "{inc:#}");
    assert!(inc["notes"][0].as_str().unwrap().contains("cannot read"), "{inc:#}");
    assert_eq!(inc["priority"], "P2");
    // On health (degraded, with the blind spot) and on /metrics.
    let health: serde_json::Value = serde_json::from_str(&d.get("/v1/health").unwrap().body).unwrap();
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert_eq!(health["blind_spots"][0]["kind"], "source_unreadable", "{health:#}");
    assert_eq!(d.metric("warden_blind_spots{kind=\"source_unreadable\"}"), Some(1));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(d.incidents().iter().filter(|i| i["type"] == "visibility").count(), 1);
    // Readable again: the blind spot ends (the incident stays for the record).
    std::fs::remove_dir(&log).unwrap();
    append(&log, &failed("192.0.2.40", "root", 1));
    eventually(30, "the blind spot to end", || {
        d.metric("warden_blind_spots{kind=\"source_unreadable\"}").filter(|n| *n == 0)
    });
}
