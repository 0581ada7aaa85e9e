//! `warden replay`: files (logs, captures) through the same agents on a throw-away
//! database, and what came of them.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use warden::config::{Config, LogFormat};
use warden::messages::Incident;
use warden::runtime::Runtime;
use warden::store::Store;

use super::daemon::load_defs;

/// What `warden replay` prints.
pub struct ReplayOutput {
    pub json: bool,
    pub stats: bool,
    pub findings: bool,
    pub format: LogFormat,
}

pub fn replay(files: Vec<PathBuf>, out: ReplayOutput, actors: Option<PathBuf>, config: Option<PathBuf>) -> Result<i32> {
    super::memory::tune();
    let ReplayOutput { json, stats, findings: want_findings, format } = out;
    warden::telemetry::init_tracing("warn");
    let cfg = Config::load(config.as_deref())?;
    let defs = load_defs(actors.as_deref())?;
    let files = expand(files)?;
    // A replay's database is thrown away at the end: a small page cache is enough.
    let store = Store::temporary(cfg.storage.cache_mb.min(8) << 20)?;
    // Replay reads whole files: larger batches mean fewer commits.
    let mut cfg = cfg;
    cfg.ingest.batch_lines = cfg.ingest.batch_lines.max(8_192);
    let sys = actix::System::new();
    let (listing, findings, totals, elapsed, read_secs, analysing_peak, evicted, stored) =
        sys.block_on(async move {
            let rt = Runtime::start_with(&cfg, &defs, store, false)?;
            rt.ready().await;
            let progress = warden::ingest::replay::progress();
            let started = Instant::now();
            let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            let ticker = std::io::stderr().is_terminal().then(|| {
                let p = progress.clone();
                actix_rt::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        let (b, l) = (p.bytes.load(Ordering::Relaxed), p.lines.load(Ordering::Relaxed));
                        let secs = started.elapsed().as_secs_f64().max(1e-3);
                        eprint!(
                            "\r{:5.1}%  {l} lines  {:.0} lines/s   ",
                            100.0 * b as f64 / total_bytes.max(1) as f64,
                            l as f64 / secs
                        );
                    }
                })
            });
            let mut totals = warden::messages::BatchStats::default();
            // One reader thread feeds the agents: matching stays with them (a lane would add
            // to the reader, which is the slower side of a replay).
            let sink: warden::ingest::LogSink = rt.supervisor.clone().recipient().into();
            // One file is read as it is; several are one capture, merged on event time.
            let stats = match files.as_slice() {
                [f] => warden::ingest::replay::replay_file(f, "replay", format, &cfg.ingest, &sink, &progress).await?,
                _ => {
                    warden::ingest::replay::replay_merged(&files, "replay", format, &cfg.ingest, &sink, &progress)
                        .await?
                }
            };
            totals.add(&stats);
            if stats.invalid_utf8 + stats.truncated > 0 {
                tracing::warn!(invalid_utf8 = stats.invalid_utf8, truncated = stats.truncated, "damaged lines");
            }
            let read_secs = started.elapsed().as_secs_f64();
            rt.quiesce().await;
            let evicted = rt.metrics.evictions();
            let elapsed = started.elapsed();
            // The peak while analysing, before the listing below loads every incident.
            let analysing_peak = peak_rss_kb();
            if let Some(t) = ticker {
                t.abort();
                eprint!("\r\x1b[2K");
            }
            // The incidents are listed one at a time (in creation order), never all in memory.
            let listing = Listing::of(rt.kb.reader.clone())?;
            let findings = if want_findings { rt.kb.findings().await? } else { Vec::new() };
            let stored = rt.kb.stats().await?;
            rt.shutdown().await?;
            anyhow::Ok((listing, findings, totals, elapsed, read_secs, analysing_peak, evicted, stored))
        })?;
    let lines = totals.lines;
    if want_findings {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if json {
        listing.print_json()?;
    } else {
        let actions = listing.print_text()?;
        let secs = elapsed.as_secs_f64().max(1e-9);
        println!(
            "replayed {lines} lines in {:.3} s ({:.0} lines/s): {} incidents, {actions} actions",
            secs,
            lines as f64 / secs,
            listing.order.len()
        );
    }
    if stats {
        // Reading, parsing, detection and committing every batch were done at `read_secs`;
        // the rest is incident response working through the findings.
        println!(
            "lines read, parsed and analysed in {read_secs:.3} s ({:.0} lines/s)",
            lines as f64 / read_secs.max(1e-9)
        );
        println!(
            "stored: {} findings, {} incidents, {} actions, {} audit records",
            stored.findings, stored.incidents, stored.actions, stored.audit_records
        );
        // Which parser took how many lines, and how many none understood.
        let mut by_parser: Vec<String> = totals.parsers.iter().map(|(p, n)| format!("{}={n}", p.as_str())).collect();
        by_parser.push(format!("unparsed={}", totals.unparsed));
        println!("lines by parser: {}", by_parser.join(" "));
        // State over its caps (per table, least recent first): what the bounds cost.
        let evicted: Vec<String> = evicted.iter().map(|(t, n)| format!("{t}={n}")).collect();
        println!(
            "state keys evicted over their caps: {}",
            if evicted.is_empty() { "none".into() } else { evicted.join(" ") }
        );
        match (peak_rss_kb(), analysing_peak) {
            (Some(kb), Some(a)) => println!(
                "peak RSS: {:.1} MB ({:.1} MB while analysing, before the listing)",
                kb as f64 / 1024.0,
                a as f64 / 1024.0
            ),
            _ => println!("peak RSS: unknown (no /proc/self/status)"),
        }
    }
    Ok(0)
}

/// Whether a directory's file is replayed: a log, a JSON-lines file or a capture by its
/// name (`conn.log`, `conn.00:00:00-01:00:00.log.gz`, `auth.log.1`, `eve.json`,
/// `trace.pcap`) — not a README or a checksum list next to them.
fn log_by_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains(".log")
        || [".json", ".jsonl", ".json.gz", ".jsonl.gz", ".pcap", ".pcapng", ".cap"].iter().any(|e| name.ends_with(e))
}

/// The files to replay: each file as given, a directory's logs (not hidden, not its
/// subdirectories; other files are skipped, saying so) in name order.
fn expand(given: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for f in given {
        let meta = std::fs::metadata(&f).with_context(|| format!("cannot read {}", f.display()))?;
        if !meta.is_dir() {
            files.push(f);
            continue;
        }
        let mut inside = Vec::new();
        for e in std::fs::read_dir(&f).with_context(|| format!("cannot list {}", f.display()))? {
            let e = e.with_context(|| format!("cannot list {}", f.display()))?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()) {
                continue;
            }
            if log_by_name(&name) {
                inside.push(e.path());
            } else {
                eprintln!(
                    "warden: skipping {}: not a log by its name (name the file to replay it)",
                    e.path().display()
                );
            }
        }
        anyhow::ensure!(!inside.is_empty(), "{} holds no log file to replay", f.display());
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

/// The stored incidents of a replay, read back one at a time.
struct Listing {
    reader: warden::kb::Reader,
    /// Creation time and id of each incident, in the order they are listed.
    order: Vec<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
}

impl Listing {
    fn of(reader: warden::kb::Reader) -> Result<Listing> {
        Ok(Listing { order: reader.incident_order()?, reader })
    }

    fn each(&self, mut f: impl FnMut(&Incident) -> Result<()>) -> Result<()> {
        for (_, id) in &self.order {
            if let Some(i) = self.reader.incident(*id)? {
                f(&i)?;
            }
        }
        Ok(())
    }

    /// The listing as `serde_json::to_string_pretty` prints an array of them.
    fn print_json(&self) -> Result<()> {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if self.order.is_empty() {
            writeln!(out, "[]")?;
            return Ok(());
        }
        let mut first = true;
        write!(out, "[")?;
        self.each(|i| {
            let text = serde_json::to_string_pretty(i)?;
            write!(out, "{}\n  {}", if first { "" } else { "," }, text.replace('\n', "\n  "))?;
            first = false;
            Ok(())
        })?;
        writeln!(out, "\n]")?;
        Ok(())
    }

    /// The text listing; returns the number of actions.
    fn print_text(&self) -> Result<usize> {
        let mut actions = 0;
        self.each(|i| {
            print_incidents(std::slice::from_ref(i));
            actions += i.actions.len();
            Ok(())
        })?;
        Ok(actions)
    }
}

/// VmHWM: the peak resident set size of this process so far, in kB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches(" kB").trim().parse().ok()
}

pub fn print_incidents(incidents: &[Incident]) {
    for i in incidents {
        println!(
            "{}  {:<28} {:<8} {}  {:<9} {}",
            i.id,
            i.kind,
            i.severity.to_string(),
            serde_json::to_value(i.priority).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            serde_json::to_value(i.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
            i.entities.join(",")
        );
        for a in &i.actions {
            let status =
                serde_json::to_value(a.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            println!("    {} {} mode={} status={}: {}", a.kind, a.target, a.mode, status, a.argv.join(" "));
            if a.status == warden::messages::ActionStatus::PendingApproval {
                println!("      waiting for approval: warden approve {} (or reject)", a.id);
            }
        }
        if let Some(run) = &i.playbook {
            let status =
                serde_json::to_value(run.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            println!("    playbook {} {status}, {} step(s) recorded", run.playbook, run.steps.len());
            if let Some(g) = run.gate {
                println!("      waiting for approval: warden approve {g} (or reject)");
            }
        }
        for n in &i.notes {
            println!("    note: {n}");
        }
    }
}
