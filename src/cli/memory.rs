//! The allocator, tuned for a daemon that must stay within `[storage] memory_budget_mb`.
//!
//! glibc keeps what is freed in its arenas, so a burst (a flood's batch encodes thousands
//! of findings and envelopes at once) leaves memory resident long after it was freed.
//! Measured with a flood of 12,000 attackers (a release build, a 64 MiB budget, the
//! daemon trimming every 5 s either way): peak RSS 146 MB with glibc's defaults, 127 MB
//! with a 1 MiB trim threshold and a 256 KiB mmap threshold; the auth replay of
//! 1,000,000 lines runs in the same CPU time with either (9.6–10.3 s and 10.1–11.0 s).
//! Fewer arenas saved as much memory but cost 30–50 % more CPU on that replay (one
//! arena: 14.1–15.1 s; two: 12.7–13.1 s — its threads then wait on the arena's lock),
//! so the arenas are left as they are.
//!
//! A 4 MiB top pad keeps that much free at the top of a heap instead of giving it back
//! and faulting it in again for the next batch: on the Zeek replay of 1,000,000 records
//! (a batch of 1,024 records allocates and frees about 600 KB) page faults went from
//! 72,000 to 36,700, peak RSS 111–121 MB before, 113–123 MB after. What it costs at
//! most is 4 MiB resident per heap a thread allocates from.

/// Sets glibc's malloc options (other C libraries: nothing to do), unless
/// `WARDEN_MALLOC_DEFAULTS` is set (to compare, or if they ever hurt).
pub fn tune() {
    if std::env::var_os("WARDEN_MALLOC_DEFAULTS").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called once, at start,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_TOP_PAD, 4 << 20);
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
