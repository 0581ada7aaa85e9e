//! The daemon's own throughput: `cargo bench --bench daemon [-- LINES]`.
//!
//! Writes the generated auth log of the replay benchmark (about 15 % attack lines,
//! LINES lines, 200,000 by default), starts the release `warden run` tailing it from the
//! beginning, and measures the time from start until `/metrics` counts every line read
//! and applied — what a replay does not pay: the detector state stored with each batch,
//! checkpoints, durable incidents. Three runs; prints lines per second, incidents and
//! peak resident memory.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "gen.rs"]
mod generator;
#[path = "support/rss.rs"]
mod rss;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use daemon::metric;

fn main() {
    let lines: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("daemon-auth-{lines}.log"));
    let attack =
        generator::generate(&mut std::io::BufWriter::new(std::fs::File::create(&log).unwrap()), lines, 42).unwrap();
    println!(
        "daemon: {lines} auth lines ({:.1} % attack lines) in {}",
        100.0 * attack as f64 / lines as f64,
        log.display()
    );
    for run in 1..=3 {
        one(run, &log, lines);
    }
}

fn one(run: u32, log: &std::path::Path, lines: u64) {
    let tmp = std::env::temp_dir().join(format!("warden-daemon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = tmp.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
            tmp.join("data").display().to_string(),
            log.display().to_string(),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut child = daemon::spawn(&config);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let token_path = tmp.join("data/admin.token");
    let deadline = started + Duration::from_secs(600);
    let mut token = None;
    let took = loop {
        assert!(Instant::now() < deadline, "warden did not read the file in time");
        if token.is_none() {
            token = std::fs::read_to_string(&token_path).ok().filter(|t| !t.is_empty());
        }
        if let Some(t) = &token
            && metric(addr, t, "warden_source_lines_total{source=\"auth\"}").is_some_and(|n| n >= lines)
        {
            break started.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let incidents = token.as_deref().and_then(|t| metric(addr, t, "warden_incidents_opened_total"));
    let peak = rss::status_kb(&child.id().to_string(), "VmHWM");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "daemon run {run}: {lines} lines read and applied in {took:.2} s from start ({:.0} lines/s), {} incidents, peak RSS {}",
        lines as f64 / took,
        incidents.map_or("?".to_string(), |n| n.to_string()),
        peak.map_or("?".to_string(), |k| format!("{:.1} MB", k as f64 / 1024.0))
    );
}
