//! The memory budget under a flood: 6,000 attackers, each its own incident, on a daemon
//! sized for 384 MiB (this is a debug build: 65 MiB resident when idle, where a release
//! build needs 19). Incidents live in the knowledge base and the daemon holds only the
//! recent ones (at most the budget's share); the detectors' tables are capped by the
//! budget; resident memory stays within it throughout, and health says so. (A debug
//! build peaks at about 245 MiB here; budgets below what a flood's bursts need are not
//! honoured yet — see the README's "Memory budget".)

use std::time::{Duration, Instant};

use crate::support::*;

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_flood_of_attackers_stays_within_the_memory_budget() {
    const BUDGET_MB: u64 = 384;
    const ATTACKERS: u32 = 6_000;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let sources = format!(
        "[[sources]]\nname = \"auth\"\nkind = \"file\"\npath = {:?}\nformat = \"auth\"\n",
        log.display().to_string()
    );
    let d = Daemon::start(tmp.path(), &sources, &format!("[storage]\nmemory_budget_mb = {BUDGET_MB}\n"), None);
    let pid = d.child.as_ref().unwrap().id();
    let mut peak = rss(pid);
    // Six failures from each address (a brute force: one incident each), written in
    // bursts while memory is sampled.
    for burst in 0..ATTACKERS / 200 {
        let mut text = String::new();
        for i in burst * 200..(burst + 1) * 200 {
            let ip = format!("2001:db8:{:x}:{:x}::9", i >> 8, i & 0xff);
            for k in 0..6 {
                text.push_str(&failed(&ip, "root", (i % 3000) + k));
            }
        }
        append(&log, &text);
        peak = peak.max(rss(pid));
    }
    let started = Instant::now();
    let mut opened = 0;
    while opened < ATTACKERS as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "{opened} of {ATTACKERS} incidents after 10 minutes");
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss(pid));
        opened = d.metric("warden_incidents_opened_total").unwrap_or(0);
    }
    // Every incident is stored; at most the budget's share is held in memory.
    let config = format!("[storage]\nmemory_budget_mb = {BUDGET_MB}\n");
    let shares = warden::config::Config::parse(&config, "w").unwrap().storage.memory_shares();
    let cap = shares.incidents_held as u64;
    let held = d.metric("warden_state_keys{table=\"incidents_held\"}").expect("incidents_held on /metrics");
    assert!(held <= cap, "{held} incidents held, cap {cap}");
    assert!(d.metric("warden_state_evictions_total{table=\"incidents_held\"}").unwrap() > 0);
    // The detector's address table is capped by the budget too (9,216 at 384 MiB).
    let addresses = d.metric("warden_state_keys{table=\"auth_addresses\"}");
    assert!(addresses.is_some_and(|a| a <= shares.detector_addresses as u64), "{addresses:?}");
    assert_eq!(shares.detector_addresses, 9216);
    assert_eq!(d.metric("warden_memory_budget_bytes"), Some(BUDGET_MB << 20));
    let health: serde_json::Value = serde_json::from_str(&d.get("/v1/health").unwrap().body).unwrap();
    assert_eq!(health["memory"]["ok"], true, "{health}");
    println!("peak RSS {:.1} MiB with {opened} incidents, {held} held", peak as f64 / (1 << 20) as f64);
    assert!(
        peak <= BUDGET_MB << 20,
        "peak RSS {:.1} MiB over the {BUDGET_MB} MiB budget",
        peak as f64 / (1 << 20) as f64
    );
}
