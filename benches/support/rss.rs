//! The resident set of this process, for benchmarks that report memory.

/// `VmRSS` from `/proc/self/status`, in kB (0 when unreadable).
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(String::from)))
        .and_then(|v| v.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
