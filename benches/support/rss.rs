//! Memory figures of processes, for benchmarks that report memory.

// Each bench uses some of them.
#![allow(dead_code)]

/// `VmRSS` from `/proc/self/status`, in kB (0 when unreadable).
pub fn rss_kb() -> u64 {
    status_kb("self", "VmRSS").unwrap_or(0)
}

/// A memory figure (`VmRSS`, `VmHWM`) of process `pid` (a number, or `self`) from
/// `/proc/PID/status`, in kB.
pub fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}
