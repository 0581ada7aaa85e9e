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
