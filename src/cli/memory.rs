//! The allocator, tuned for a daemon that must stay within `[storage] memory_budget_mb`.
//!
//! glibc gives threads that allocate at the same time arenas of their own and keeps
//! what is freed in them, so a burst handled on several threads (ingest, detection,
//! incident response, the knowledge base) leaves memory resident long after it was
//! freed. Measured with a flood of 12,000 attackers (a release build, a 64 MiB budget):
//! peak RSS 197 MB with glibc's defaults, 176 MB with two arenas, 127 MB with one arena,
//! a 1 MiB trim threshold and a 256 KiB mmap threshold. The one arena costs nothing
//! measurable here: the hot paths run on one thread each.

/// Sets glibc's malloc options (other C libraries: nothing to do).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once, at start,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Gives free memory back to the kernel (the daemon calls it every few seconds).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
