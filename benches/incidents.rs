//! Resident memory against the number of stored incidents: `cargo bench --bench incidents [-- N ...]`.
//!
//! For each N (default 1,000, 10,000 and 100,000) writes an auth.log in which N
//! attackers, each from its own address, fail six SSH logins (a brute force: one
//! incident each, with its dry-run block), replays it with the release
//! `warden replay --stats` and prints the incidents opened, the cost per incident and
//! the peak RSS. A flat RSS across N is the point: incidents live in the knowledge
//! base, and only the recently used ones (up to `[storage] memory_budget_mb`'s share)
//! are held in memory.

use std::io::Write;
#[path = "support/replay.rs"]
mod support;

fn main() {
    let dir = support::dir();
    for n in support::sizes(&[1_000, 10_000, 100_000]) {
        let file = dir.join(format!("incidents-{n}.log"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        // Attackers one after the other, a few seconds each, over log time; six
        // failures each, spread over a minute.
        for i in 0..n {
            for k in 0..6u64 {
                let t = i * 4 + k * 10;
                let (d, h, m, s) = (1 + t / 86_400, (t / 3600) % 24, (t / 60) % 60, t % 60);
                writeln!(
                    out,
                    "Nov {d:2} {h:02}:{m:02}:{s:02} bastion sshd[{}]: Failed password for root from 2001:db8:{:x}:{:x}::7 port {} ssh2",
                    1000 + i % 30_000,
                    (i >> 16) & 0xffff,
                    i & 0xffff,
                    1024 + (i * 6 + k) % 60_000
                )
                .unwrap();
            }
        }
        drop(out);
        let (secs, text) = support::replay_stats(&file);
        let peak = support::line(&text, "peak");
        let incidents = support::line(&text, "replayed").rsplit(": ").next().unwrap_or("?");
        println!("{n:>7} attackers: {incidents}, {:.1} s, {:.0} µs/attacker, {peak}", secs, secs * 1e6 / n as f64);
    }
}
