//! Attacker-keyed state under a spray: `cargo bench --bench spray [-- N ...]`.
//!
//! For each N (default 10,000, 100,000 and 1,000,000) writes an auth.log of N failed
//! logins, each from its own IPv6 address (free for an attacker with a /64), all
//! within ten minutes, replays it with the release `warden replay --stats` and prints
//! the cost per line and the peak RSS. Flat figures across N are the point: the
//! detector's tables are capped (`[detection.limits]`) and swept in amortised time.

use std::io::Write;
#[path = "support/replay.rs"]
mod support;

fn main() {
    let dir = support::dir();
    for n in support::sizes(&[10_000, 100_000, 1_000_000]) {
        let file = dir.join(format!("spray-{n}.log"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..n {
            let second = i * 600 / n;
            let (h, m, s) = (10, second / 60, second % 60);
            writeln!(
                out,
                "Nov 30 {h:02}:{m:02}:{s:02} bastion sshd[{}]: Failed password for invalid user u{} from 2001:db8:{:x}:{:x}::1 port {} ssh2",
                1000 + i % 30_000,
                i % 97,
                (i >> 16) & 0xffff,
                i & 0xffff,
                1024 + i % 60_000
            )
            .unwrap();
        }
        drop(out);
        for run in 1..=2 {
            let (secs, text) = support::replay_stats(&file);
            let peak = support::line(&text, "peak");
            println!(
                "spray {n:>9} distinct sources, run {run}: {:.2} s, {:.2} µs/line, {peak}",
                secs,
                secs * 1e6 / n as f64
            );
        }
    }
}
