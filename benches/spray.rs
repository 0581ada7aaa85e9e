//! Attacker-keyed state under a spray: `cargo bench --bench spray [-- N ...]`.
//!
//! For each N (default 10,000, 100,000 and 1,000,000) writes an auth.log of N failed
//! logins, each from its own IPv6 address (free for an attacker with a /64), all
//! within ten minutes, replays it with the release `warden replay --stats` and prints
//! the cost per line and the peak RSS. Flat figures across N are the point: the
//! detector's tables are capped (`[detection.limits]`) and swept in amortised time.

use std::io::Write;
use std::process::Command;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if args.is_empty() { vec![10_000, 100_000, 1_000_000] } else { args };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    for n in sizes {
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
            let t = std::time::Instant::now();
            let o = Command::new(env!("CARGO_BIN_EXE_warden")).args(["replay", "--stats"]).arg(&file).output().unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let text = String::from_utf8_lossy(&o.stdout);
            let peak = text.lines().find(|l| l.starts_with("peak")).unwrap_or("peak RSS: ?");
            println!(
                "spray {n:>9} distinct sources, run {run}: {:.2} s, {:.2} µs/line, {peak}",
                secs,
                secs * 1e6 / n as f64
            );
        }
    }
}
