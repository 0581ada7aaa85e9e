//! Parsing throughput on one core: `cargo bench --bench parse [-- LINES]`.
//!
//! Splits and parses the generated auth.log in-process (no actors, no storage): the
//! ceiling for `warden replay`.

#[path = "gen.rs"]
mod generator;

use std::time::Instant;

use warden::config::LogFormat;
use warden::ingest::{BatchStats, LineParser, LineSplitter};

fn main() {
    let lines: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut data = Vec::new();
    generator::generate(&mut data, lines, 42).unwrap();
    for run in 1..=3 {
        let started = Instant::now();
        let mut splitter = LineSplitter::new(64 * 1024);
        let mut parser = LineParser::new(LogFormat::Auth, "2026-06-01T00:00:00Z".parse().unwrap());
        let mut stats = BatchStats::default();
        let mut events = Vec::new();
        let mut kept = 0usize;
        for chunk in data.chunks(256 * 1024) {
            splitter.push(chunk, &mut |l| parser.parse(l, &mut stats, &mut events));
            kept += events.len();
            events.clear();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "run {run}: parsed {} lines ({kept} events) in {secs:.3} s: {:.0} lines/s",
            stats.lines,
            stats.lines as f64 / secs
        );
    }
}
