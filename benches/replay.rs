//! Replay throughput and peak memory: `cargo bench --bench replay [-- LINES]`.
//!
//! Generates a deterministic auth.log (about 15 % attack lines), then runs the release
//! `warden replay` on it three times and reports lines per second and peak RSS (read by
//! warden from /proc/self/status and printed with `--stats`).

#[path = "gen.rs"]
mod generator;

use std::process::Command;

fn main() {
    let lines: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("auth-{lines}.log"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let attack = generator::generate(&mut out, lines, 42).unwrap();
    drop(out);
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "generated {lines} lines ({:.1} MB, {:.1} % attack lines) in {}",
        size as f64 / 1e6,
        100.0 * attack as f64 / lines as f64,
        file.display()
    );
    for run in 1..=3 {
        let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(["replay", "--stats"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        for l in
            text.lines().filter(|l| l.starts_with("replayed") || l.starts_with("peak") || l.starts_with("lines read"))
        {
            println!("run {run}: {l}");
        }
    }
}
