//! What the memory benchmarks share: their sizes (from the arguments, else the
//! defaults), their folder, and a timed `warden replay --stats` of a file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The sizes given as arguments, else `default`.
pub fn sizes(default: &[u64]) -> Vec<u64> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if args.is_empty() { default.to_vec() } else { args }
}

/// Where the generated files go.
pub fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the release `warden replay --stats` on `file`: seconds taken and what it printed.
pub fn replay_stats(file: &Path) -> (f64, String) {
    let t = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_warden")).args(["replay", "--stats"]).arg(file).output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (secs, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The line of the output starting with `prefix`.
pub fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or("?")
}
