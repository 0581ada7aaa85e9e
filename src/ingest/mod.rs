//! Ingestion: sources that read log lines and the parsers that turn them into events.
//!
//! Sources ([`file_tail`], [`replay`], [`stdin`], [`syslog`]) split bytes into lines
//! with a [`LineSplitter`] (lossy UTF-8, over-long lines cut, both counted), parse them
//! with the source's format ([`parse`]: auth, web, JSON lines, Zeek, or auto), and send
//! [`LogBatch`]es to the threat-detection agent with `send().await`, one batch in flight
//! per source: a slow consumer slows the reader. Only this module names `notify`.

pub mod feeds;
pub mod file_tail;
pub mod journald;
mod lane;
pub mod parse;
pub mod pcap;
pub mod replay;
pub mod stdin;
pub mod syslog;
mod syslog_conns;
pub mod visibility;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::LogFormat;
pub use crate::messages::{BatchAck, BatchError, BatchStats, LogBatch};
use crate::messages::{Checkpoint, Event};
pub use lane::{Lane, LaneMaker, LogSink};

/// Splits a byte stream into lines: lossy UTF-8, lines over `max` bytes cut at `max`
/// and the rest of them discarded, a trailing `\r` removed.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    /// Discarding the rest of a line that was cut.
    pub skipping: bool,
    pub invalid_utf8: u64,
    pub truncated: u64,
    /// Stream offset of the next byte `push` will see, and of the held-back line.
    pos: u64,
    buf_start: u64,
    /// Start offsets of the lines emitted since the last [`LineSplitter::take_starts`].
    starts: Vec<u64>,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max: max.max(1),
            skipping: false,
            invalid_utf8: 0,
            truncated: 0,
            pos: 0,
            buf_start: 0,
            starts: Vec::new(),
        }
    }

    /// Where in the stream the next pushed byte is (a file opened at an offset).
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
        self.buf_start = pos;
        self.starts.clear();
    }

    /// The stream offsets where the lines emitted since the last call began, in order.
    pub fn take_starts(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.starts)
    }

    /// Bytes of an incomplete line held back.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes; complete lines are passed to `emit`.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(String)) {
        while !data.is_empty() {
            if self.skipping {
                match memchr(b'\n', data) {
                    Some(i) => {
                        self.skipping = false;
                        data = &data[i + 1..];
                        self.pos += i as u64 + 1;
                    }
                    None => {
                        self.pos += data.len() as u64;
                        return;
                    }
                }
                continue;
            }
            match memchr(b'\n', data) {
                Some(i) => {
                    self.starts.push(if self.buf.is_empty() { self.pos } else { self.buf_start });
                    if self.buf.is_empty() {
                        if i > self.max {
                            self.cut(&data[..i.min(self.max + 4)], emit);
                        } else {
                            let line = &data[..i];
                            emit(self.decode(line));
                        }
                    } else {
                        let room = self.max - self.buf.len();
                        if i > room {
                            let mut b = std::mem::take(&mut self.buf);
                            b.extend_from_slice(&data[..i.min(room + 4)]);
                            self.cut(&b, emit);
                        } else {
                            let mut b = std::mem::take(&mut self.buf);
                            b.extend_from_slice(&data[..i]);
                            let s = self.decode(&b);
                            emit(s);
                            b.clear();
                            self.buf = b;
                        }
                    }
                    data = &data[i + 1..];
                    self.pos += i as u64 + 1;
                }
                None => {
                    if self.buf.is_empty() {
                        self.buf_start = self.pos;
                    }
                    let room = self.max - self.buf.len();
                    if data.len() > room {
                        self.starts.push(self.buf_start);
                        let mut b = std::mem::take(&mut self.buf);
                        b.extend_from_slice(&data[..data.len().min(room + 4)]);
                        self.cut(&b, emit);
                        self.skipping = true;
                    } else {
                        self.buf.extend_from_slice(data);
                    }
                    self.pos += data.len() as u64;
                    return;
                }
            }
        }
    }

    /// Emits what is held back as a final line (end of a rotated or replayed file).
    pub fn finish(&mut self, emit: &mut impl FnMut(String)) {
        if !self.buf.is_empty() {
            self.starts.push(self.buf_start);
            let b = std::mem::take(&mut self.buf);
            emit(self.decode(&b));
        }
        self.skipping = false;
    }

    /// Forgets a held-back partial line (the file was truncated under it).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.skipping = false;
        self.starts.clear();
    }

    fn cut(&mut self, line: &[u8], emit: &mut impl FnMut(String)) {
        self.truncated += 1;
        // Do not split a UTF-8 sequence at the cut: back off to a char boundary.
        // `line` may run a few bytes past the limit so the cut can back off to a char
        // boundary instead of splitting a UTF-8 sequence.
        let mut end = line.len().min(self.max);
        while end > 0 && end < line.len() && (line[end] & 0xC0) == 0x80 {
            end -= 1;
        }
        // Whoever writes the lines chooses how many are too long: said once per interval
        // for the whole process (a splitter may live for one datagram), with a count.
        static SAID: std::sync::Mutex<crate::telemetry::Throttle> =
            std::sync::Mutex::new(crate::telemetry::Throttle::new(std::time::Duration::from_secs(10)));
        if let Some(held) = SAID.lock().unwrap_or_else(|p| p.into_inner()).allow(std::time::Instant::now()) {
            tracing::warn!(
                max = self.max,
                held_back = held,
                "line too long, cut (counted in warden_lines_truncated_total)"
            );
        }
        let s = self.decode(&line[..end]);
        emit(s);
    }

    fn decode(&mut self, line: &[u8]) -> String {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                self.invalid_utf8 += 1;
                String::from_utf8_lossy(line).into_owned()
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// A cheap, stable hash of a file's first bytes (FNV-1a), to recognise it after a restart.
pub fn fingerprint(head: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in head {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// How many leading bytes form a file's fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// Parses lines of one format into events, counting what each parser took and what
/// none understood.
pub struct LineParser {
    format: LogFormat,
    years: parse::YearInference,
    last_time: Option<DateTime<Utc>>,
    zeek: parse::zeek::ZeekHeader,
    state: parse::auth::ParseState,
    /// Lines a parser understood as records (not headers, not unparsed lines).
    pub records: u64,
    /// Shipping (`warden ship`): each line becomes an event as read, unparsed (the
    /// analysis node parses it); Zeek headers are still followed, for the preamble.
    ship: bool,
}

impl LineParser {
    pub fn new(format: LogFormat, reference: DateTime<Utc>) -> Self {
        LineParser {
            format,
            years: parse::YearInference::new(reference),
            last_time: None,
            zeek: Default::default(),
            state: Default::default(),
            records: 0,
            ship: false,
        }
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The header lines in effect (a Zeek TSV header), which the next record needs.
    pub fn preamble(&self) -> &[String] {
        self.zeek.lines()
    }

    /// Reads the lines a shipper sent ahead of a batch (a Zeek header in effect at its
    /// first line) as header lines: not counted, not events.
    pub fn read_preamble(&mut self, lines: &[String]) {
        for l in lines {
            self.zeek.header(l);
        }
    }

    /// Before reading a file from the middle (a checkpoint), reads its header: a Zeek
    /// log's `#fields` line comes only at the top, and its records cannot be read
    /// without it.
    pub fn prime_from(&mut self, path: &std::path::Path) {
        use std::io::BufRead;
        if !matches!(self.format, LogFormat::Zeek | LogFormat::Auto) {
            return;
        }
        let Ok(f) = std::fs::File::open(path) else { return };
        for line in std::io::BufReader::new(std::io::Read::take(f, 256 * 1024)).lines() {
            let Ok(line) = line else { break };
            if !line.starts_with('#') || !self.zeek.header(&line) {
                break;
            }
        }
    }

    /// Sets the "now" against which year-less timestamps are placed.
    pub fn set_reference(&mut self, reference: DateTime<Utc>) {
        self.years = parse::YearInference::new(reference);
    }

    /// Parses a line into an event. A line no parser understands is counted and still
    /// becomes an event (for keyword rules) at the time of the line before it.
    pub fn parse(&mut self, line: String, stats: &mut BatchStats, out: &mut Vec<Event>) {
        use crate::messages::Parser;
        stats.lines += 1;
        if self.ship {
            if line.starts_with('#') && matches!(self.format, LogFormat::Zeek | LogFormat::Auto) {
                self.zeek.header(&line);
            }
            out.push(Event::unparsed(line, self.last_time.unwrap_or_else(|| self.years.reference())));
            return;
        }
        // Zeek headers (also recognised in `auto`) configure the parser; they are not events.
        if line.starts_with('#') && matches!(self.format, LogFormat::Zeek | LogFormat::Auto) && self.zeek.header(&line)
        {
            stats.parsers.inc(Parser::Zeek);
            return;
        }
        let fallback = self.last_time.unwrap_or_else(|| self.years.reference());
        let tagged = |p: Parser| move |ev: Event| (ev, p);
        let (years, state) = (&self.years, &mut self.state);
        let parsed = match self.format {
            // A file without a TSV header is Zeek's JSON form.
            LogFormat::Zeek if !self.zeek.ready() && line.starts_with('{') => {
                parse::zeek::json_record(line, fallback).map(tagged(Parser::Zeek))
            }
            LogFormat::Zeek => self.zeek.record(line, fallback).map(tagged(Parser::Zeek)),
            LogFormat::Auto if self.zeek.ready() => self.zeek.record(line, fallback).map(tagged(Parser::Zeek)),
            LogFormat::Auth => parse::auth::parse_line(line, years, state),
            LogFormat::Web => parse::web::parse_line(line).map(tagged(Parser::WebAccess)),
            LogFormat::Json => parse::json::parse_line(line, fallback).map(tagged(Parser::Json)),
            LogFormat::Auto => parse::auth::parse_line(line, years, state)
                .or_else(|parse::Unparsed(l)| parse::web::parse_line(l).map(tagged(Parser::WebAccess)))
                .or_else(|parse::Unparsed(l)| {
                    if l.starts_with('{') {
                        parse::zeek::json_record(l, fallback).map(tagged(Parser::Zeek)).or_else(|parse::Unparsed(l)| {
                            parse::json::parse_line(l, fallback).map(tagged(Parser::Json))
                        })
                    } else {
                        Err(parse::Unparsed(l))
                    }
                })
                .or_else(|parse::Unparsed(l)| parse::auth::parse_native(l, years, state)),
        };
        match parsed {
            Ok((ev, parser)) => {
                stats.parsers.inc(parser);
                self.records += 1;
                self.last_time = Some(ev.time);
                out.push(ev);
            }
            Err(parse::Unparsed(raw)) => {
                stats.unparsed += 1;
                out.push(Event::unparsed(raw, fallback));
            }
        }
    }
}

/// Accumulates parsed lines into a batch.
pub struct BatchBuilder {
    pub parser: LineParser,
    pub events: Vec<Event>,
    pub stats: BatchStats,
    /// Shipping: the parser's preamble when the batch's first line came.
    preamble: Vec<String>,
}

impl BatchBuilder {
    pub fn new(format: LogFormat, reference: DateTime<Utc>) -> Self {
        BatchBuilder {
            parser: LineParser::new(format, reference),
            events: Vec::new(),
            stats: BatchStats::default(),
            preamble: Vec::new(),
        }
    }

    /// Shipping or not (`[ingest]` as `warden ship` sets it): see [`LineParser`].
    pub fn shipping(mut self, ship: bool) -> Self {
        self.parser.ship = ship;
        self
    }

    /// See [`LineParser::prime_from`].
    pub fn prime_from(&mut self, path: &std::path::Path) {
        self.parser.prime_from(path)
    }

    pub fn line(&mut self, line: String) {
        self.note_preamble();
        self.parser.parse(line, &mut self.stats, &mut self.events);
    }

    /// Shipping: before a batch's first line, what it needs read first.
    fn note_preamble(&mut self) {
        if self.parser.ship && self.stats.lines == 0 {
            self.preamble = self.parser.preamble().to_vec();
        }
    }

    /// A line that starts at `offset` of the file being read: its event records it.
    pub fn line_at(&mut self, line: String, offset: u64) {
        self.note_preamble();
        let before = self.events.len();
        self.parser.parse(line, &mut self.stats, &mut self.events);
        if let Some(ev) = self.events.get_mut(before) {
            ev.offset = Some(offset);
        }
    }

    /// Feeds a splitter's output with the offsets it recorded.
    pub fn lines_at(&mut self, lines: Vec<String>, starts: Vec<u64>) {
        // Room for an event per line at once (growing by doubling copied every event).
        self.events.reserve(lines.len());
        let mut starts = starts.into_iter();
        for l in lines {
            match starts.next() {
                Some(o) => self.line_at(l, o),
                None => self.line(l),
            }
        }
    }

    /// Takes what was accumulated as a batch.
    pub fn take(&mut self, source: &str, seq: Option<u64>, checkpoint: Option<Checkpoint>) -> LogBatch {
        LogBatch {
            id: Uuid::now_v7(),
            source: source.to_string(),
            seq,
            checkpoint,
            events: std::sync::Arc::new(std::mem::take(&mut self.events)),
            stats: std::mem::take(&mut self.stats),
            file: None,
            preamble: std::mem::take(&mut self.preamble),
            matched: None,
        }
    }
}

/// Starts a file, journald or stdin source on `arbiter`, sending to `sink`; `Ok(false)`
/// for the other kinds (their start needs more: an address, a cluster). `warden run` and
/// `warden ship` start their readers alike through here.
pub fn start_reader(
    arbiter: &actix::ArbiterHandle,
    s: &crate::config::SourceConfig,
    cfg: crate::config::IngestConfig,
    kb: crate::kb::Kb,
    sink: LogSink,
    metrics: std::sync::Arc<crate::telemetry::Metrics>,
) -> Result<bool, journald::JournalError> {
    use crate::config::SourceKind;
    let (source, format) = (s.name.clone(), s.format);
    match s.kind {
        SourceKind::File => {
            let path = s.path.clone().unwrap_or_default();
            file_tail::FileTail::start_in_arbiter(arbiter, move |_| file_tail::FileTail {
                source,
                path,
                format,
                cfg,
                kb,
                sink,
                metrics,
            });
        }
        SourceKind::Journald => {
            journald::check(&source, s.directory.as_deref())?;
            let spec = journald::JournalSpec { directory: s.directory.clone(), matches: s.matches.clone() };
            journald::Journald::start_in_arbiter(arbiter, move |_| journald::Journald {
                source,
                spec,
                format,
                cfg,
                kb,
                sink,
                metrics,
            });
        }
        SourceKind::Stdin => {
            stdin::Stdin::start_in_arbiter(arbiter, move |_| stdin::Stdin { source, format, cfg, sink, metrics });
        }
        SourceKind::SyslogUdp | SourceKind::SyslogTcp | SourceKind::Nats => return Ok(false),
    }
    Ok(true)
}

/// A source's stored checkpoint (`None`: never read), retried until the knowledge base
/// answers — a source must not start from the beginning because a read failed.
pub async fn stored_checkpoint(kb: &crate::kb::Kb, source: &str) -> Option<crate::messages::Checkpoint> {
    loop {
        match kb.checkpoint(source).await {
            Ok(cp) => return cp,
            Err(e) => {
                tracing::error!(%source, error = %e, "cannot read the checkpoint; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends a batch to the log sink and waits for it to be applied. While the
/// threat-detection agent is restarting (or failed) it keeps the batch and retries, so a
/// source never skips lines; this wait is also the backpressure on the reader.
pub async fn send_batch(sink: &LogSink, mut batch: LogBatch) -> Result<BatchAck, SendError> {
    sink.prepare(&mut batch);
    let mut delay = std::time::Duration::from_millis(50);
    let mut retries = 0u32;
    loop {
        match sink.recipient().send(batch.clone()).await {
            Ok(Ok(ack)) => return Ok(ack),
            Ok(Err(BatchError::Rejected(r))) => return Err(SendError::Rejected(r)),
            Ok(Err(e)) => {
                // Said once per wait, not once per retry.
                if retries == 0 {
                    tracing::warn!(source = %batch.source, error = %e, "batch not applied; retrying");
                }
                retries += 1;
            }
            Err(e) => return Err(SendError::SinkGone(e.to_string())),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
}

/// Why a batch could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The reader refused it for good.
    #[error("{0}")]
    Rejected(String),
    /// The supervisor is gone (shutting down).
    #[error("log sink gone: {0}")]
    SinkGone(String),
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_splitter_records_where_each_line_starts() {
        let mut sp = LineSplitter::new(4);
        sp.set_position(100);
        let mut lines = Vec::new();
        for chunk in [&b"a\nb"[..], b"b\nccccccc", b"c\nx\n", b"tail"] {
            sp.push(chunk, &mut |l| lines.push(l));
        }
        sp.finish(&mut |l| lines.push(l));
        assert_eq!(lines, ["a", "bb", "cccc", "x", "tail"]);
        // "a\n"=100, "bb\n"=102, the cut line 105, "x\n" after its 8 c's and newline.
        assert_eq!(sp.take_starts(), [100, 102, 105, 114, 116]);
    }
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> (Vec<String>, LineSplitter) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l| out.push(l));
        }
        (out, s)
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let (out, s) = split(100, &[b"ab", b"c\nde", b"f\r\ng"]);
        assert_eq!(out, vec!["abc", "def"]);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn invalid_utf8_is_lossy_and_counted() {
        let (out, s) = split(100, &[b"ok\n\xff\xfebad\n"]);
        assert_eq!(out[1], "\u{fffd}\u{fffd}bad");
        assert_eq!(s.invalid_utf8, 1);
    }

    #[test]
    fn over_long_lines_are_cut_and_counted() {
        let long = vec![b'x'; 1000];
        let (out, s) = split(10, &[&long, &long, b"\nnext\n"]);
        assert_eq!(out, vec!["xxxxxxxxxx", "next"]);
        assert_eq!(s.truncated, 1);
        let (out, s) = split(10, &[b"0123456789abc\nz\n"]);
        assert_eq!(out, vec!["0123456789", "z"]);
        assert_eq!(s.truncated, 1);
        let (out, _) = split(10, &[b"01234", b"56789abc\nz\n"]);
        assert_eq!(out, vec!["0123456789", "z"]);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let (out, _) = split(4, &["aé€x\n".as_bytes()]);
        assert_eq!(out, vec!["aé"]);
    }

    /// Shipping passes every line on as read (headers too), and a batch that starts
    /// after a Zeek header carries it: a parser that never saw the file reads the
    /// batch's records with it.
    #[test]
    fn a_shipped_batch_carries_the_header_its_records_need() {
        let header =
            ["#separator \\x09", "#path\tconn", "#fields\tts\tid.orig_h\tid.resp_h", "#types\ttime\taddr\taddr"];
        let record = |n: u32| format!("1700000{n:03}.0\t10.0.0.{n}\t198.51.100.1");
        let now = Utc::now();
        let mut b = BatchBuilder::new(LogFormat::Zeek, now).shipping(true);
        for l in header {
            b.line(l.to_string());
        }
        b.line(record(1));
        let first = b.take("zeek", Some(1), None);
        assert!(first.preamble.is_empty(), "the first batch starts with the header itself");
        assert_eq!(first.events.len(), 5, "header lines are shipped as lines");
        assert!(first.events.iter().all(|e| e.fields.is_none()), "nothing parsed on the shipper");
        b.line(record(2));
        let second = b.take("zeek", Some(2), None);
        assert_eq!(second.preamble, header);
        let mut central = BatchBuilder::new(LogFormat::Zeek, now);
        central.parser.read_preamble(&second.preamble);
        central.line(second.events[0].raw.clone());
        let ev = &central.events[0];
        assert_eq!(ev.fields.as_deref().and_then(|f| f.text("id.orig_h")), Some("10.0.0.2"));
        assert_eq!((&*ev.program, central.stats.lines, central.stats.unparsed), ("zeek:conn", 1, 0));
    }
}
