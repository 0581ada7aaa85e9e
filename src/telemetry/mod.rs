//! Telemetry: tracing setup and the process's counters, rendered for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::messages::{BatchStats, ParserCounts};

mod blind;

pub use blind::{BlindKind, BlindSpot, BlindSpots};

/// Counters since this process started. Durable totals (lines per source, events by
/// kind) come from the knowledge base and are rendered next to them.
#[derive(Debug, Default)]
pub struct Metrics {
    pub findings: AtomicU64,
    pub findings_without_incident: AtomicU64,
    pub incidents: AtomicU64,
    /// Incidents read back from the knowledge base (not held in memory when needed).
    pub incidents_loaded: AtomicU64,
    pub actions: AtomicU64,
    pub envelopes_routed: AtomicU64,
    pub envelopes_handled: AtomicU64,
    pub duplicates_skipped: AtomicU64,
    pub redeliveries: AtomicU64,
    pub dead_letters: AtomicU64,
    pub agent_restarts: AtomicU64,
    pub source_errors: AtomicU64,
    /// Shipped batches an analysis node could not read (skipped, acknowledged).
    pub shipped_unreadable: AtomicU64,
    /// Threat-intel feed reloads, and the indicators the current index holds.
    pub intel_reloads: AtomicU64,
    pub intel_indicators: AtomicU64,
    /// Webhook notifications delivered, and given up on (retries exhausted, queue full).
    pub notifications_sent: AtomicU64,
    pub notifications_failed: AtomicU64,
    sources: Mutex<BTreeMap<String, SourceCounters>>,
    /// What Warden cannot see right now.
    pub blind_spots: BlindSpots,
    /// Per table of attacker-keyed state: keys held now, keys evicted (over its cap).
    tables: Mutex<BTreeMap<&'static str, (Option<u64>, u64)>>,
    /// `[storage] memory_budget_mb`, in bytes (0: not set, as in tests).
    pub memory_budget_bytes: AtomicU64,
}

/// This process's resident set size, in bytes (`VmRSS`; `None` without `/proc`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches(" kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Per-source counters of this process.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct SourceCounters {
    pub lines: u64,
    pub invalid_utf8: u64,
    pub truncated: u64,
    pub unparsed: u64,
    pub events: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub missing: u64,
    /// Times a source resumed past data it could no longer read (a journal vacuumed
    /// past its cursor).
    pub gaps: u64,
    /// Syslog: TCP connections refused (the per-address or total limit), closed for being
    /// idle (the idle timeout, or to make room for a new one).
    pub refused: u64,
    pub idle_closed: u64,
    /// Syslog over UDP: datagrams the kernel dropped on the socket (its receive buffer
    /// was full), as `/proc/net/udp` counts them.
    pub kernel_drops: u64,
    /// Times the source's loop woke up (a file notification or the poll): a quiet source
    /// wakes about once per poll interval.
    pub wakeups: u64,
    /// Lines each parser took (the rest are `unparsed`).
    pub parsers: ParserCounts,
}

impl Metrics {
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_source(&self, source: &str, stats: &BatchStats, events: u64) {
        let mut m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry(source.to_string()).or_default();
        c.lines += stats.lines;
        c.invalid_utf8 += stats.invalid_utf8;
        c.truncated += stats.truncated;
        c.unparsed += stats.unparsed;
        c.parsers.add(&stats.parsers);
        c.events += events;
    }

    /// Updates a source's file-level counters (rotations, truncations, missing file).
    pub fn source_event(&self, source: &str, f: impl FnOnce(&mut SourceCounters)) {
        let mut m = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(source.to_string()).or_default());
    }

    /// A table of attacker-keyed state holds `keys` (when known) after evicting
    /// `evicted` more.
    pub fn state_table(&self, table: &'static str, keys: Option<usize>, evicted: u64) {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.entry(table).or_default();
        if let Some(k) = keys {
            e.0 = Some(k as u64);
        }
        e.1 += evicted;
    }

    /// Keys evicted so far from each table of attacker-keyed state.
    pub fn evictions(&self) -> BTreeMap<&'static str, u64> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(t, (_, e))| (*t, *e)).collect()
    }

    pub fn sources(&self) -> BTreeMap<String, SourceCounters> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The process's counters: name, help, value.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 16] {
        [
            ("warden_findings_total", "Findings opened by this process", &self.findings),
            (
                "warden_findings_without_incident_total",
                "Findings below the severity that opens an incident, stored only",
                &self.findings_without_incident,
            ),
            ("warden_incidents_opened_total", "Incidents opened by this process", &self.incidents),
            (
                "warden_incidents_loaded_total",
                "Incidents read back from the knowledge base because they were not held in memory",
                &self.incidents_loaded,
            ),
            ("warden_actions_total", "Containment actions recorded by this process", &self.actions),
            ("warden_envelopes_routed_total", "Envelopes routed", &self.envelopes_routed),
            ("warden_envelopes_handled_total", "Envelopes handled and acknowledged", &self.envelopes_handled),
            (
                "warden_envelopes_duplicate_total",
                "Redelivered envelopes skipped as already handled",
                &self.duplicates_skipped,
            ),
            (
                "warden_envelopes_redelivered_total",
                "Envelopes delivered again from the durable inbox",
                &self.redeliveries,
            ),
            ("warden_dead_letters_total", "Envelopes given up on", &self.dead_letters),
            ("warden_agent_restarts_total", "Agent restarts", &self.agent_restarts),
            ("warden_source_errors_total", "Source read errors", &self.source_errors),
            (
                "warden_shipped_unreadable_total",
                "Shipped batches that could not be read (skipped)",
                &self.shipped_unreadable,
            ),
            ("warden_intel_reloads_total", "Threat-intel feed reloads after a change", &self.intel_reloads),
            ("warden_notifications_sent_total", "Webhook notifications delivered", &self.notifications_sent),
            (
                "warden_notifications_failed_total",
                "Webhook notifications given up on (retries exhausted or queue full)",
                &self.notifications_failed,
            ),
        ]
    }

    /// Renders the Prometheus text exposition format. `durable` adds series that come
    /// from the knowledge base: `(name, help, labels, value)` — counters when the name
    /// ends in `_total`, gauges otherwise.
    pub fn render(&self, durable: &[(String, String, Vec<(String, String)>, u64)]) -> String {
        let mut out = String::new();
        for (name, help, c) in self.counters() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Ordering::Relaxed));
        }
        let name = "warden_resident_memory_bytes";
        let _ = writeln!(
            out,
            "# HELP {name} Resident memory of the process\n# TYPE {name} gauge\n{name} {}",
            resident_bytes().unwrap_or(0)
        );
        let name = "warden_memory_budget_bytes";
        let _ = writeln!(
            out,
            "# HELP {name} The memory budget the process is sized to stay within ([storage] memory_budget_mb)\n# TYPE {name} gauge\n{name} {}",
            self.memory_budget_bytes.load(Ordering::Relaxed)
        );
        let name = "warden_intel_indicators";
        let _ = writeln!(
            out,
            "# HELP {name} Threat-intel indicators loaded\n# TYPE {name} gauge\n{name} {}",
            self.intel_indicators.load(Ordering::Relaxed)
        );
        let sources = self.sources();
        let per_source: [(&str, &str, fn(&SourceCounters) -> u64); 13] = [
            ("warden_lines_read_total", "Lines read by this process", |c| c.lines),
            ("warden_lines_invalid_utf8_total", "Lines with invalid UTF-8 (decoded lossily)", |c| c.invalid_utf8),
            ("warden_lines_truncated_total", "Lines cut at the length limit", |c| c.truncated),
            ("warden_lines_unparsed_total", "Lines no parser understood", |c| c.unparsed),
            ("warden_events_total", "Authentication events parsed", |c| c.events),
            ("warden_file_rotations_total", "Rotations followed", |c| c.rotations),
            ("warden_file_truncations_total", "Truncations (copytruncate) followed", |c| c.truncations),
            ("warden_file_missing_total", "Times a tailed file was found missing", |c| c.missing),
            (
                "warden_source_gaps_total",
                "Times a source resumed past data no longer there (journal vacuumed past its cursor)",
                |c| c.gaps,
            ),
            ("warden_syslog_refused_total", "Syslog TCP connections refused (per-address or total limit)", |c| {
                c.refused
            }),
            ("warden_syslog_idle_closed_total", "Syslog TCP connections closed for being idle", |c| c.idle_closed),
            (
                "warden_syslog_kernel_drops_total",
                "Syslog UDP datagrams dropped by the kernel (receive buffer full)",
                |c| c.kernel_drops,
            ),
            ("warden_source_wakeups_total", "Times a tailed file's reader woke up (notification or poll)", |c| {
                c.wakeups
            }),
        ];
        for (name, help, get) in per_source {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (src, c) in &sources {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {}", escape_label(src), get(c));
            }
        }
        let name = "warden_lines_parsed_total";
        let _ = writeln!(out, "# HELP {name} Lines each parser took, by source\n# TYPE {name} counter");
        for (src, c) in &sources {
            for (p, n) in c.parsers.iter() {
                let _ = writeln!(out, "{name}{{source=\"{}\",parser=\"{}\"}} {n}", escape_label(src), p.as_str());
            }
        }
        self.render_state(&mut out);
        let mut last = String::new();
        for (name, help, labels, value) in durable {
            if *name != last {
                // Durable totals only ever grow: counters (Prometheus' `_total` names).
                let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name.clone();
            }
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
        out
    }

    /// Blind spots, and the tables of attacker-keyed state (keys, evictions).
    fn render_state(&self, out: &mut String) {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let name = "warden_state_keys";
        let _ =
            writeln!(out, "# HELP {name} Keys held in a table of attacker-keyed detector state\n# TYPE {name} gauge");
        for (table, (keys, _)) in &tables {
            if let Some(k) = keys {
                let _ = writeln!(out, "{name}{{table=\"{table}\"}} {k}");
            }
        }
        let name = "warden_state_evictions_total";
        let _ = writeln!(
            out,
            "# HELP {name} Keys evicted from a table over its cap (least recent first)\n# TYPE {name} counter"
        );
        for (table, (_, evicted)) in &tables {
            let _ = writeln!(out, "{name}{{table=\"{table}\"}} {evicted}");
        }
        let counts = self.blind_spots.counts();
        let name = "warden_blind_spots";
        let _ = writeln!(out, "# HELP {name} Blind spots open now, by kind\n# TYPE {name} gauge");
        for (k, open, _) in &counts {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {open}", k.as_str());
        }
        let name = "warden_blind_spot_episodes_total";
        let _ = writeln!(out, "# HELP {name} Blind spots opened by this process, by kind\n# TYPE {name} counter");
        for (k, _, episodes) in &counts {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {episodes}", k.as_str());
        }
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Logs to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A warning said at most once per interval, with how many like it were held back: an
/// attacker who sends garbage must not be able to flood the log.
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    held: u64,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Throttle {
        Throttle { every, last: None, held: 0 }
    }

    /// `Some(n)`: say it now (`n` were held back since it was last said); `None`: hold it.
    pub fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Metrics, Throttle};
    use std::time::{Duration, Instant};

    /// Durable totals were all typed `gauge`; a `_total` is a counter.
    #[test]
    fn durable_totals_are_counters_and_the_rest_gauges() {
        let series = |name: &str| (name.to_string(), "h".to_string(), vec![], 1u64);
        let text = Metrics::default().render(&[series("warden_storage_ok"), series("warden_source_lines_total")]);
        assert!(text.contains("# TYPE warden_storage_ok gauge\n"), "{text}");
        assert!(text.contains("# TYPE warden_source_lines_total counter\n"), "{text}");
        assert!(text.contains("# TYPE warden_blind_spots gauge\nwarden_blind_spots{kind=\"source_silent\"} 0"));
    }

    #[test]
    fn says_once_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=999 {
            assert_eq!(t.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
    }
}
