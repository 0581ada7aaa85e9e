//! Replay throughput and peak memory:
//! `cargo bench --bench replay [-- auth|web|zeek|capture|pairs] [LINES]`.
//!
//! Generates a deterministic auth.log (about 15 % attack lines), nginx access log (about
//! 5 % attacks), Zeek conn log (web and DNS traffic with scanners and an implant), the
//! conn/dns/http/ssl logs of one capture (sites reached by name, directly and through a
//! proxy, replayed as a directory merged on time) and a conn log of LINES distinct
//! pairs (state at its caps), then runs the release `warden replay` on each three times
//! and reports lines per second, evictions and peak RSS (read by warden from
//! /proc/self/status and printed with `--stats`). `capture` and `pairs` run only when
//! named.
//!
//! `shares` is the shape of the per-finding cost: auth logs with 0, 1, 15 and 50 %
//! attack lines, each replayed on one core (`taskset -c 0`, when there is one), best of
//! three; it prints µs per line and, against the file without attacks, µs per finding
//! (everything a finding brings: its attack lines' parsing and detection, the finding,
//! its incident, actions and audit records).

#[path = "gen.rs"]
mod generator;

use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let kinds: Vec<&str> =
        ["auth", "web", "zeek", "capture", "pairs"].into_iter().filter(|k| args.iter().any(|a| a == k)).collect();
    let kinds = if kinds.is_empty() { vec!["auth", "web", "zeek"] } else { kinds };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    if args.iter().any(|a| a == "shares") {
        return shares(&dir, lines);
    }
    for kind in kinds {
        let file = dir.join(format!("{kind}-{lines}.log"));
        let to_file = || std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let note = match kind {
            "auth" => {
                let attack = generator::generate(&mut to_file(), lines, 42).unwrap();
                format!("{:.1} % attack lines", 100.0 * attack as f64 / lines as f64)
            }
            "web" => {
                let attack = generator::generate_web(&mut to_file(), lines, 42).unwrap();
                format!("nginx access log, {:.1} % attack requests", 100.0 * attack as f64 / lines as f64)
            }
            "zeek" => {
                generator::generate_conn(&mut to_file(), lines, 42).unwrap();
                "Zeek conn log through the network detectors".to_string()
            }
            "capture" => {
                // A directory of the capture's logs.
                std::fs::create_dir_all(&file).unwrap();
                let n = generator::generate_capture(&file, lines, 42).unwrap();
                format!("{n} Zeek records: conn, dns, http, ssl of one capture, merged on time")
            }
            _ => {
                generator::generate_pairs(&mut to_file(), lines).unwrap();
                format!("Zeek conn log of {lines} distinct pairs")
            }
        };
        let size: u64 = if file.is_dir() {
            std::fs::read_dir(&file).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
        } else {
            std::fs::metadata(&file).unwrap().len()
        };
        println!("{kind}: generated {lines} lines ({:.1} MB, {note}) in {}", size as f64 / 1e6, file.display());
        for run in 1..=3 {
            let out =
                Command::new(env!("CARGO_BIN_EXE_warden")).args(["replay", "--stats"]).arg(&file).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            for l in text
                .lines()
                .filter(|l| ["replayed", "peak", "lines read", "state keys"].iter().any(|p| l.starts_with(p)))
            {
                println!("{kind} run {run}: {l}");
            }
        }
    }
}

/// Replays auth logs of several attack shares on one core and prints the cost's shape.
fn shares(dir: &std::path::Path, lines: u64) {
    let pinned = Command::new("taskset").args(["-c", "0", "true"]).status().is_ok_and(|s| s.success());
    if !pinned {
        println!("shares: no taskset here; the figures are for every core");
    }
    let mut base: Option<f64> = None;
    for percent in [0, 1, 15, 50] {
        let file = dir.join(format!("auth-share{percent}-{lines}.log"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let attack = generator::generate_share(&mut out, lines, 42, percent).unwrap();
        drop(out);
        let (mut best, mut findings) = (f64::MAX, 0u64);
        for _ in 0..3 {
            let mut cmd = if pinned { Command::new("taskset") } else { Command::new(env!("CARGO_BIN_EXE_warden")) };
            if pinned {
                cmd.args(["-c", "0", env!("CARGO_BIN_EXE_warden")]);
            }
            let out = cmd.args(["replay", "--stats"]).arg(&file).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |prefix: &str, after: &str| -> f64 {
                let l = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_default();
                l.split(after)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0.0)
            };
            best = best.min(field("replayed", " in "));
            findings = field("stored:", "stored: ") as u64;
        }
        let per_line = best * 1e6 / lines as f64;
        let per_finding = match base {
            Some(b) if findings > 0 => format!("{:.0} µs/finding", (best - b) * 1e6 / findings as f64),
            _ => "—".to_string(),
        };
        println!(
            "shares: {percent:>2} % attack lines ({attack}): {best:.3} s, {:.0} lines/s, {per_line:.2} µs/line, {findings} findings, {per_finding}",
            lines as f64 / best
        );
        if percent == 0 {
            base = Some(best);
        }
    }
}
